//! One plugin run driven step by step, outside the rotation protocol, so the
//! harness can repeat a step, time it exactly and see exactly which host
//! calls it made. Steps run on the blocking pool (a run is synchronous and
//! its Vault import blocks on the async runtime), as in the daemon.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::env::Env;
use super::report::{CallRecord, StepRecord};
use rotator_core::plugin::{PlannedAction, Run, Step, StepContext, StepError};
use rotator_core::secret::SecretJson;

/// A live plugin instance (a fresh store) for one job.
pub(super) struct Session {
    run: Arc<Mutex<Run>>,
}

/// Run `f` on the blocking pool, re-raising a panic of the host code.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

impl Session {
    /// Instantiate the plugin for `job` with the environment's grants.
    pub async fn start(env: &Env, job: &str) -> Result<Self, StepError> {
        let (plugin, config, job) = (env.plugin.clone(), env.run_config(), job.to_owned());
        let run = blocking(move || plugin.start(&job, config)).await?;
        Ok(Self { run: Arc::new(Mutex::new(run)) })
    }

    /// Run one export, timing it and collecting the host calls it made.
    async fn call<T: Send + 'static>(
        &self,
        env: &Env,
        step: Step,
        f: impl FnOnce(&mut Run) -> Result<T, StepError> + Send + 'static,
    ) -> (StepRecord, Result<T, StepError>) {
        let run = self.run.clone();
        let (elapsed, calls, result) = blocking(move || {
            let mut run = run.lock().unwrap_or_else(|p| p.into_inner());
            let before = run.host_calls().len();
            let started = Instant::now();
            let result = f(&mut run);
            let elapsed = started.elapsed();
            let calls: Vec<CallRecord> = run.host_calls()[before..].iter().map(CallRecord::from).collect();
            (elapsed, calls, result)
        })
        .await;
        env.note_calls(&calls);
        let record = StepRecord {
            step: step.as_str().to_owned(),
            by: "plugin",
            duration_ms: elapsed.as_secs_f64() * 1e3,
            ok: result.is_ok(),
            error: result.as_ref().err().map(|e| e.failure.to_string()),
            host_calls: calls,
        };
        (record, result)
    }

    pub async fn plan(&self, env: &Env, ctx: &StepContext) -> (StepRecord, Result<Vec<PlannedAction>, StepError>) {
        let ctx = ctx.clone();
        self.call(env, Step::Plan, move |r| r.plan(&ctx)).await
    }

    pub async fn create(&self, env: &Env, ctx: &StepContext) -> (StepRecord, Result<SecretJson, StepError>) {
        let ctx = ctx.clone();
        self.call(env, Step::Create, move |r| r.create(&ctx)).await
    }

    /// `set`, `test`, `finish` or `rollback` with `pending`.
    pub async fn pending_step(
        &self,
        env: &Env,
        step: Step,
        ctx: &StepContext,
        pending: &SecretJson,
    ) -> (StepRecord, Result<(), StepError>) {
        let (ctx, pending) = (ctx.clone(), pending.clone());
        self.call(env, step, move |r| match step {
            Step::Set => r.set(&ctx, &pending),
            Step::Test => r.test(&ctx, &pending),
            Step::Finish => r.finish(&ctx, &pending),
            _ => r.rollback(&ctx, &pending),
        })
        .await
    }
}
