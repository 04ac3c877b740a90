//! One plugin instance driven from async code: the one way the rotation
//! driver, the dry run and the conformance harness run a plugin.
//!
//! A [`Session`] instantiates the plugin once (a [`Run`]: fresh store, the
//! job's limits and grants) and runs each step on tokio's blocking pool,
//! because a run is synchronous and its Vault import blocks on the async
//! runtime. The step's deadline is armed inside the run (see [`super::run`]),
//! so a step that runs away is stopped there, not here.
//!
//! The session owns its run outright: the run moves to the blocking thread
//! for one step and comes back with the answer, so no lock is shared and
//! nothing is read back through one. Each step's answer ([`StepOutcome`])
//! carries its own timing and the host calls it made. If the blocking
//! thread panics, the run is gone: that step and every later one report
//! [`Lost`].

use std::time::{Duration, Instant};

use super::{HostCall, PlannedAction, Plugin, Run, RunConfig, Step, StepContext, StepError};
use crate::secret::SecretJson;

/// A live plugin instance for one job, stepped from async code.
pub struct Session {
    job: String,
    /// `None` once a step's thread panicked and took the run with it.
    run: Option<Run>,
}

/// What one step did.
#[derive(Debug)]
pub struct StepOutcome<T> {
    /// The plugin's answer, already redacted and bounded by the run.
    pub result: Result<T, StepError>,
    /// How long the step ran (the plugin call only, not the thread hop).
    pub duration: Duration,
    /// The host calls the plugin made during this step, in order.
    pub calls: Vec<HostCall>,
}

/// The plugin run could not be driven any further: the host code running a
/// step panicked (a bug), and the instance went with it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("job `{job}`: plugin run was lost: {message}")]
pub struct Lost {
    pub job: String,
    pub message: String,
}

/// Why a session could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The plugin could not be instantiated (a typed plugin failure).
    #[error(transparent)]
    Plugin(#[from] StepError),
    #[error(transparent)]
    Lost(#[from] Lost),
}

impl Session {
    /// Instantiate `plugin` for `job` with `config`, on the blocking pool
    /// (instantiation runs guest code too).
    pub async fn start(plugin: &Plugin, job: &str, config: RunConfig) -> Result<Self, StartError> {
        let (plugin, id) = (plugin.clone(), job.to_owned());
        let run = tokio::task::spawn_blocking(move || plugin.start(&id, config))
            .await
            .map_err(|e| Lost { job: job.to_owned(), message: e.to_string() })??;
        Ok(Self { job: job.to_owned(), run: Some(run) })
    }

    /// Every host call the plugin made in this session so far.
    pub fn host_calls(&self) -> &[HostCall] {
        self.run.as_ref().map_or(&[], Run::host_calls)
    }

    /// `plan`, with the job's grants as the session was started with them.
    pub async fn plan(&mut self, ctx: &StepContext) -> Result<StepOutcome<Vec<PlannedAction>>, Lost> {
        let ctx = ctx.clone();
        self.call(move |r| r.plan(&ctx)).await
    }

    /// `create`: the new secret.
    pub async fn create(&mut self, ctx: &StepContext) -> Result<StepOutcome<SecretJson>, Lost> {
        let ctx = ctx.clone();
        self.call(move |r| r.create(&ctx)).await
    }

    /// `set`, `test`, `finish` or `rollback` with `pending`; any other step
    /// is `rollback` (the one step that must run whatever came before).
    pub async fn pending_step(
        &mut self,
        step: Step,
        ctx: &StepContext,
        pending: &SecretJson,
    ) -> Result<StepOutcome<()>, Lost> {
        let (ctx, pending) = (ctx.clone(), pending.clone());
        self.call(move |r| match step {
            Step::Set => r.set(&ctx, &pending),
            Step::Test => r.test(&ctx, &pending),
            Step::Finish => r.finish(&ctx, &pending),
            _ => r.rollback(&ctx, &pending),
        })
        .await
    }

    /// Move the run to the blocking pool for `f`, time it, take the calls it
    /// made, and take the run back.
    async fn call<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut Run) -> Result<T, StepError> + Send + 'static,
    ) -> Result<StepOutcome<T>, Lost> {
        let lost = |message: String| Lost { job: self.job.clone(), message };
        let mut run = self.run.take().ok_or_else(|| lost("an earlier step's thread panicked".into()))?;
        let (run, outcome) = tokio::task::spawn_blocking(move || {
            let before = run.host_calls().len();
            let started = Instant::now();
            let result = f(&mut run);
            let duration = started.elapsed();
            let calls = run.host_calls()[before..].to_vec();
            (run, StepOutcome { result, duration, calls })
        })
        .await
        .map_err(|e| lost(e.to_string()))?;
        self.run = Some(run);
        Ok(outcome)
    }
}
