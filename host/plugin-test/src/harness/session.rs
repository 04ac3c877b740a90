//! The harness's view of a plugin session: core's [`plugin::Session`] (the
//! one way rotator drives a plugin: one instance, steps on the blocking pool
//! under the job's deadline), with each step turned into a [`StepRecord`]
//! for the report and its host calls noted in the environment. Driven step
//! by step, outside the rotation protocol, so the harness can repeat a step,
//! time it exactly and see exactly which host calls it made.
//!
//! A lost run (the host code running a step panicked) is a bug in rotator,
//! not a finding about the plugin: it is raised as a panic, as the blocking
//! pool would have.

use super::env::Env;
use super::report::{CallRecord, StepRecord};
use rotator_core::plugin::{self, PlannedAction, StartError, Step, StepContext, StepError, StepOutcome};
use rotator_core::secret::SecretJson;

/// A live plugin instance (a fresh store) for one job.
pub(super) struct Session(plugin::Session);

impl Session {
    /// Instantiate the plugin for `job` with the environment's grants.
    pub async fn start(env: &Env, job: &str) -> Result<Self, StepError> {
        match plugin::Session::start(&env.plugin, job, env.run_config()).await {
            Ok(s) => Ok(Self(s)),
            Err(StartError::Plugin(e)) => Err(e),
            Err(StartError::Lost(lost)) => panic!("{lost}"),
        }
    }

    pub async fn plan(&mut self, env: &Env, ctx: &StepContext) -> (StepRecord, Result<Vec<PlannedAction>, StepError>) {
        let outcome = self.0.plan(ctx).await;
        record(env, Step::Plan, outcome)
    }

    pub async fn create(&mut self, env: &Env, ctx: &StepContext) -> (StepRecord, Result<SecretJson, StepError>) {
        let outcome = self.0.create(ctx).await;
        record(env, Step::Create, outcome)
    }

    /// `set`, `test`, `finish` or `rollback` with `pending`.
    pub async fn pending_step(
        &mut self,
        env: &Env,
        step: Step,
        ctx: &StepContext,
        pending: &SecretJson,
    ) -> (StepRecord, Result<(), StepError>) {
        let outcome = self.0.pending_step(step, ctx, pending).await;
        record(env, step, outcome)
    }
}

/// The report's record of one step, its calls noted in `env`.
fn record<T>(
    env: &Env,
    step: Step,
    outcome: Result<StepOutcome<T>, plugin::Lost>,
) -> (StepRecord, Result<T, StepError>) {
    let StepOutcome { result, duration, calls } = outcome.unwrap_or_else(|lost| panic!("{lost}"));
    let calls: Vec<CallRecord> = calls.iter().map(CallRecord::from).collect();
    env.note_calls(&calls);
    let record = StepRecord {
        step: step.as_str().to_owned(),
        by: "plugin",
        duration_ms: duration.as_secs_f64() * 1e3,
        ok: result.is_ok(),
        error: result.as_ref().err().map(|e| e.failure.to_string()),
        failure: result.as_ref().err().map(|e| e.failure.kind()),
        host_calls: calls,
    };
    (record, result)
}
