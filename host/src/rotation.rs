//! One rotation of one job: the protocol the host drives around a plugin.
//!
//! Order: read the current secret → `create` → `set` → `test` → promote (a
//! new KV version, written with check-and-set against the version read, so a
//! concurrent writer is detected, never overwritten) → `finish`. If `set`,
//! `test` or the promotion fails, `rollback` asks the plugin to restore the
//! previous value in the target. Plugin steps run on a blocking thread (a
//! plugin run is synchronous); Vault calls stay on the async runtime.
//!
//! Staging PENDING in Vault and resuming after a crash build on this module.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::runtime::Handle;

use crate::config::{JobConfig, SecretLocation};
use crate::plugin::{
    CurrentSecret, HostCall, PlannedAction, Plugin, Run, RunConfig, Step, StepContext, StepError, VaultBridge,
};
use crate::secret::SecretJson;
use crate::vault::{VaultClient, VaultError};

/// A configured job with its loaded plugin.
#[derive(Debug, Clone)]
pub struct Job {
    pub config: JobConfig,
    pub plugin: Plugin,
}

/// How long one step took.
#[derive(Debug, Clone, Serialize)]
pub struct StepTiming {
    pub step: Step,
    pub duration: Duration,
}

/// What a successful rotation did. Holds no secret values.
#[derive(Debug, Clone)]
pub struct RotationReport {
    pub rotation_id: String,
    pub job: String,
    pub plugin: String,
    pub plugin_sha256: String,
    /// The KV version the rotation replaced, if any.
    pub previous_version: Option<u64>,
    /// The KV version it wrote, if the job has a secret.
    pub new_version: Option<u64>,
    pub steps: Vec<StepTiming>,
    pub host_calls: Vec<HostCall>,
}

/// Why a rotation failed. Nothing is left half-done: if the target may have
/// been changed, rollback was attempted and its outcome is included.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error("{source}{}", rollback_note(.rollback))]
    Step { source: StepError, rollback: Option<Result<(), StepError>> },
    #[error("job `{job}`: {action} {location}: {source}{}", rollback_note(.rollback))]
    Vault {
        job: String,
        action: &'static str,
        location: String,
        source: VaultError,
        rollback: Option<Result<(), StepError>>,
    },
    #[error("job `{job}`: plugin run was lost: {message}")]
    Lost { job: String, message: String },
}

fn rollback_note(r: &Option<Result<(), StepError>>) -> String {
    match r {
        None => String::new(),
        Some(Ok(())) => "; rolled back".into(),
        Some(Err(e)) => format!("; ROLLBACK FAILED: {}", e.failure),
    }
}

impl RotationError {
    /// Worth retrying soon (Vault down, plugin said transient).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Step { source, .. } => source.failure.is_transient(),
            Self::Vault { source, .. } => source.is_transient(),
            Self::Lost { .. } => true,
        }
    }
}

/// What `--dry-run` shows: the plugin's plan and the host's own steps.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub job: String,
    pub plugin: String,
    pub current_version: Option<u64>,
    pub plugin_actions: Vec<PlannedAction>,
    pub host_actions: Vec<String>,
}

impl Job {
    fn step_context(&self, rotation_id: &str, current: Option<CurrentSecret>, attempt: u32) -> StepContext {
        StepContext {
            job_id: self.config.id.clone(),
            rotation_id: rotation_id.to_owned(),
            settings: self.config.settings.clone(),
            current,
            attempt,
        }
    }

    fn run_config(&self, vault: &VaultClient) -> RunConfig {
        RunConfig {
            limits: self.config.limits,
            grants: self.config.grants.clone(),
            vault: Some(VaultBridge { client: vault.clone(), handle: Handle::current() }),
            sql: self.config.sql.clone(),
        }
    }

    async fn read_current(&self, vault: &VaultClient) -> Result<Option<CurrentSecret>, RotationError> {
        let Some(loc) = &self.config.secret else { return Ok(None) };
        let found = vault.kv_read(&loc.mount, &loc.path).await.map_err(|source| RotationError::Vault {
            job: self.config.id.clone(),
            action: "reading",
            location: loc.to_string(),
            source,
            rollback: None,
        })?;
        Ok(found.map(|s| CurrentSecret { data: s.data, version: s.version }))
    }

    /// The dry run: what would happen, with no side effects.
    pub async fn plan(&self, vault: &VaultClient) -> Result<Plan, RotationError> {
        let current = self.read_current(vault).await?;
        let current_version = current.as_ref().and_then(|c| c.version);
        let ctx = self.step_context("dry-run", current, 1);
        let run = self.start(vault).await?;
        let (_, actions) = on_blocking(&run, move |r| r.plan(&ctx)).await?;
        let actions = actions.map_err(|source| RotationError::Step { source, rollback: None })?;
        Ok(Plan {
            job: self.config.id.clone(),
            plugin: self.plugin.label(),
            current_version,
            plugin_actions: actions,
            host_actions: host_actions(self.config.secret.as_ref(), current_version),
        })
    }

    async fn start(&self, vault: &VaultClient) -> Result<SharedRun, RotationError> {
        let plugin = self.plugin.clone();
        let (id, cfg) = (self.config.id.clone(), self.run_config(vault));
        tokio::task::spawn_blocking(move || plugin.start(&id, cfg))
            .await
            .map_err(|e| RotationError::Lost { job: self.config.id.clone(), message: e.to_string() })?
            .map(|run| Arc::new(Mutex::new(run)))
            .map_err(|source| RotationError::Step { source, rollback: None })
    }

    /// Rotate now. `attempt` is 1 for a first try.
    pub async fn rotate(&self, vault: &VaultClient, attempt: u32) -> Result<RotationReport, RotationError> {
        let rotation_id = uuid::Uuid::new_v4().to_string();
        let job = &self.config.id;
        let current = self.read_current(vault).await?;
        let previous_version = current.as_ref().and_then(|c| c.version);
        let ctx = self.step_context(&rotation_id, current, attempt);
        let run = self.start(vault).await?;
        let mut steps = Vec::new();
        tracing::info!(job, plugin = %self.plugin.label(), rotation = %rotation_id, "rotation started");

        let pending = self.step(&run, &mut steps, Step::Create, &ctx, None).await?.expect("create yields a secret");
        for step in [Step::Set, Step::Test] {
            if let Err(e) = self.step(&run, &mut steps, step, &ctx, Some(&pending)).await {
                return Err(self.rolled_back(&run, &ctx, &pending, e).await);
            }
        }
        let new_version = match &self.config.secret {
            Some(loc) => {
                match vault.kv_write(&loc.mount, &loc.path, &pending, Some(previous_version.unwrap_or(0))).await {
                    Ok(v) => Some(v),
                    Err(source) => {
                        let e = RotationError::Vault {
                            job: job.clone(),
                            action: "promoting",
                            location: loc.to_string(),
                            source,
                            rollback: None,
                        };
                        return Err(self.rolled_back(&run, &ctx, &pending, e).await);
                    }
                }
            }
            None => None,
        };
        self.step(&run, &mut steps, Step::Finish, &ctx, Some(&pending)).await?;
        tracing::info!(job, plugin = %self.plugin.label(), rotation = %rotation_id, ?new_version, "rotation done");
        Ok(RotationReport {
            rotation_id,
            job: job.clone(),
            plugin: self.plugin.label(),
            plugin_sha256: self.plugin.sha256().to_owned(),
            previous_version,
            new_version,
            steps,
            host_calls: run.lock().map(|r| r.host_calls().to_vec()).unwrap_or_default(),
        })
    }

    /// Run one step on a blocking thread and time it. `create` returns the
    /// new secret; the other steps return `None`.
    async fn step(
        &self,
        run: &SharedRun,
        steps: &mut Vec<StepTiming>,
        step: Step,
        ctx: &StepContext,
        pending: Option<&SecretJson>,
    ) -> Result<Option<SecretJson>, RotationError> {
        let (ctx, pending) = (ctx.clone(), pending.cloned());
        let (duration, result) = on_blocking(run, move |r| match (step, pending) {
            (Step::Create, _) => r.create(&ctx).map(Some),
            (Step::Set, Some(p)) => r.set(&ctx, &p).map(|()| None),
            (Step::Test, Some(p)) => r.test(&ctx, &p).map(|()| None),
            (Step::Finish, Some(p)) => r.finish(&ctx, &p).map(|()| None),
            (_, p) => r.rollback(&ctx, &p.unwrap_or_else(|| SecretJson::new("{}".into()))).map(|()| None),
        })
        .await?;
        steps.push(StepTiming { step, duration });
        tracing::debug!(job = %self.config.id, %step, ?duration, ok = result.is_ok(), "step");
        result.map_err(|source| RotationError::Step { source, rollback: None })
    }

    /// Ask the plugin to undo `set`, and attach the outcome to `err`.
    async fn rolled_back(
        &self,
        run: &SharedRun,
        ctx: &StepContext,
        pending: &SecretJson,
        mut err: RotationError,
    ) -> RotationError {
        let (ctx, pending) = (ctx.clone(), pending.clone());
        let outcome = match on_blocking(run, move |r| r.rollback(&ctx, &pending)).await {
            Ok((_, r)) => r,
            Err(lost) => return lost,
        };
        if let Err(e) = &outcome {
            tracing::error!(job = %self.config.id, error = %e, "rollback failed: the target may hold an unrecorded value");
        }
        match &mut err {
            RotationError::Step { rollback, .. } | RotationError::Vault { rollback, .. } => *rollback = Some(outcome),
            RotationError::Lost { .. } => {}
        }
        err
    }
}

/// A run shared with the blocking thread that executes its steps. Only one
/// step runs at a time, so the lock is never contended.
type SharedRun = Arc<Mutex<Run>>;

/// Run `f` on the blocking pool and time it.
async fn on_blocking<T: Send + 'static>(
    run: &SharedRun,
    f: impl FnOnce(&mut Run) -> T + Send + 'static,
) -> Result<(Duration, T), RotationError> {
    let run = run.clone();
    tokio::task::spawn_blocking(move || {
        let mut run = run.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let started = Instant::now();
        let out = f(&mut run);
        (started.elapsed(), out)
    })
    .await
    .map_err(|e| RotationError::Lost { job: String::new(), message: e.to_string() })
}

fn host_actions(secret: Option<&SecretLocation>, current: Option<u64>) -> Vec<String> {
    let Some(loc) = secret else {
        return vec!["no secret path: nothing is written to KV".into()];
    };
    let cas = current.unwrap_or(0);
    vec![
        match current {
            Some(v) => format!("read {loc} (current version {v})"),
            None => format!("read {loc} (does not exist yet)"),
        },
        format!("after set and test succeed: write {loc} as version {} with cas={cas}", cas + 1),
        "on failure: call rollback, leave the secret unchanged".into(),
    ]
}
