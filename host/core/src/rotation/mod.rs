//! Rotating one job: the staged, crash-safe protocol the host drives around
//! a plugin.
//!
//! Order (AWS Secrets Manager's four steps, with the state in Vault):
//! read the current secret → `create` → **stage** PENDING in the job's
//! state record (and in the secret's store, where it has a place for it:
//! Secrets Manager's `AWSPENDING`) → `set` → `test` → **promote** (with a
//! check that the current version is still the one read, so a concurrent
//! writer is detected, never overwritten) → `finish` → record done. The
//! secret store is written before the target changes, so a crash at any
//! point leaves the new value known to Vault, and the next run resumes from
//! the recorded step instead of starting another rotation ([`protocol`]).
//! The protocol drives the secret's store through
//! [`crate::store::SecretStore`], whichever store it is.
//!
//! `set` or `test` failing triggers `rollback` (the plugin restores the
//! previous value in the target) and clears PENDING; the job is marked failed
//! with the reason. Plugin steps run through a [`Session`] (on a blocking
//! thread: a plugin run is synchronous); Vault calls stay on the async
//! runtime. A rotation returns what it recorded ([`Rotation`]): the caller
//! books a failure only when the rotation did not record one.
//!
//! - [`state`]: the state record in Vault.
//! - [`protocol`]: the state machine, including resuming.
//! - [`events`]: what a rotation reports as it goes (audit, metrics, the feed).
//! - [`crash`]: crash points for the fault-injection suite.

mod access;
mod adoption;
pub mod events;
mod hooks;
mod protocol;

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::runtime::Handle;

use crate::config::JobConfig;
use crate::plugin::{
    CurrentSecret, HostCall, HttpBridge, Lost, PlannedAction, Plugin, RunConfig, Session, StartError, Step,
    StepContext, StepError, VaultBridge,
};
use crate::state::{self, JobState, StateError, StateStore};
use crate::store::{SecretAt, SecretStore, StoreError, StoreVersion};
use crate::vault::VaultClient;
pub use events::{NoEvents, Observer, RotationEvent};
pub use protocol::{Finalize, RotateOptions};

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

/// What a successful rotation did. Its only secret is `value`, held
/// zeroizing and shown as `<redacted>` by `Debug`.
#[derive(Debug, Clone)]
pub struct RotationReport {
    pub rotation_id: String,
    pub job: String,
    pub plugin: String,
    pub plugin_sha256: String,
    /// The version the rotation replaced, if any.
    pub previous_version: Option<StoreVersion>,
    /// The version it made current, if the job has a secret.
    pub new_version: Option<StoreVersion>,
    /// The value it made current, if the job has a secret: what the API
    /// answers with, without reading the store again.
    pub value: Option<crate::secret::SecretJson>,
    /// Set when this run finished a rotation an earlier run had started.
    pub resumed_from: Option<state::Stage>,
    pub steps: Vec<StepTiming>,
    pub host_calls: Vec<HostCall>,
}

/// Why a rotation failed. Nothing is left half-done: if the target may have
/// been changed, rollback was attempted and its outcome is included; if the
/// rotation could not end (Vault unreachable, rollback failed), PENDING stays
/// staged in Vault and the next run resumes it.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error("{source}{}", rollback_note(.rollback))]
    Step { source: StepError, rollback: Option<Result<(), StepError>> },
    /// The secret's store failed or refused (Vault, Secrets Manager).
    /// Boxed: the store's errors are large and rare.
    #[error("job `{job}`: {source}{}", rollback_note(.rollback))]
    Store { job: String, source: Box<StoreError>, rollback: Option<Result<(), StepError>> },
    /// Someone else wrote the secret while the rotation ran.
    #[error(
        "job `{job}`: {location} was changed by someone else during the rotation (expected version {}, found {}); not overwritten{}",
        shown(.expected),
        shown(.found),
        rollback_note(.rollback)
    )]
    Conflict {
        job: String,
        location: String,
        expected: Option<StoreVersion>,
        found: Option<StoreVersion>,
        rollback: Option<Result<(), StepError>>,
    },
    /// A rollback an earlier run recorded, finished by this one.
    #[error("job `{job}`: {reason}{}", rollback_note(.rollback))]
    RolledBack { job: String, reason: String, rollback: Option<Result<(), StepError>> },
    #[error(transparent)]
    State(#[from] StateError),
    #[error("job `{job}`: plugin run was lost: {message}")]
    Lost { job: String, message: String },
    /// Stopped on request at a crash point ([`RotateOptions::interrupt_at`]).
    #[error("job `{job}`: interrupted at {point}")]
    Interrupted { job: String, point: String },
    /// The new value is current; its consumers have not adopted it yet, so
    /// `finish` waits (the adoption gate). The rotation stays in progress
    /// and is looked at again; not a failure.
    #[error(
        "job `{job}`: version {version} is current; waiting until {until} for its consumers to adopt it before `finish`"
    )]
    AwaitingAdoption { job: String, version: String, until: time::OffsetDateTime },
}

impl From<Lost> for RotationError {
    fn from(e: Lost) -> Self {
        Self::Lost { job: e.job, message: e.message }
    }
}

impl From<StartError> for RotationError {
    fn from(e: StartError) -> Self {
        match e {
            StartError::Plugin(source) => Self::Step { source, rollback: None },
            StartError::Lost(lost) => lost.into(),
        }
    }
}

/// How a rotation ended, and the job's record as it wrote it last.
#[derive(Debug)]
pub struct Rotation {
    pub result: Result<RotationReport, RotationError>,
    /// The record that ended the rotation (history, outcome and the
    /// [`Finalize`] hook's bookkeeping in it), when this run wrote one.
    /// `None` when the run stopped before (nothing staged, PENDING kept
    /// for the next run, or that last write failed): the outcome is not
    /// booked in Vault, and the caller books it, once.
    pub recorded: Option<JobState>,
}

fn shown(v: &Option<StoreVersion>) -> String {
    v.as_ref().map_or_else(|| "none".into(), ToString::to_string)
}

fn rollback_note(r: &Option<Result<(), StepError>>) -> String {
    match r {
        None => String::new(),
        Some(Ok(())) => "; rolled back".into(),
        Some(Err(e)) => format!("; ROLLBACK FAILED (pending value kept in Vault, will retry): {}", e.failure),
    }
}

impl RotationError {
    /// Worth retrying soon (Vault down, plugin said transient).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Step { source, rollback } => {
                source.failure.is_transient() || matches!(rollback, Some(Err(e)) if e.failure.is_transient())
            }
            Self::Store { source, .. } => source.is_transient(),
            Self::State(e) => e.is_transient(),
            Self::Conflict { .. } => false,
            Self::RolledBack { rollback, .. } => matches!(rollback, Some(Err(e)) if e.failure.is_transient()),
            Self::Lost { .. } | Self::Interrupted { .. } | Self::AwaitingAdoption { .. } => true,
        }
    }

    /// The rotation waits for its consumers (not a failure): look again soon.
    pub fn awaiting_adoption(&self) -> Option<time::OffsetDateTime> {
        match self {
            Self::AwaitingAdoption { until, .. } => Some(*until),
            _ => None,
        }
    }

    /// This replica lost the job mid-run (see `state::fence`): it stopped
    /// without rolling back; the owner resumes the rotation.
    pub fn is_fenced(&self) -> bool {
        matches!(self, Self::State(e) if e.is_fenced())
    }

    /// A short machine name for metrics and audit records.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Step { source, .. } => source.failure.kind(),
            Self::Store { source, .. } => source.kind(),
            Self::Conflict { .. } => "conflict",
            Self::RolledBack { .. } => "rolled-back",
            Self::State(e) if e.is_fenced() => "fenced",
            Self::State(_) => "state",
            Self::Lost { .. } => "lost",
            Self::Interrupted { .. } => "interrupted",
            Self::AwaitingAdoption { .. } => "awaiting-adoption",
        }
    }

    fn set_rollback(&mut self, outcome: Result<(), StepError>) {
        match self {
            Self::Step { rollback, .. }
            | Self::Store { rollback, .. }
            | Self::Conflict { rollback, .. }
            | Self::RolledBack { rollback, .. } => *rollback = Some(outcome),
            Self::State(_) | Self::Lost { .. } | Self::Interrupted { .. } | Self::AwaitingAdoption { .. } => {}
        }
    }
}

/// What `--dry-run` shows: the plugin's plan and the host's own steps.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub job: String,
    pub plugin: String,
    pub current_version: Option<StoreVersion>,
    /// A rotation an earlier run left unfinished, which a real run resumes.
    pub resumes: Option<String>,
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

    /// What a plugin session of this job runs with; without Vault, a
    /// plugin's Vault calls fail typed ("no Vault connection").
    fn run_config(&self, vault: Option<&VaultClient>) -> RunConfig {
        RunConfig {
            limits: self.config.limits,
            grants: self.config.grants.clone(),
            vault: vault.map(|client| VaultBridge { client: client.clone(), handle: Handle::current() }),
            sql: self.config.sql.clone(),
            http: (!self.config.grants.http.is_empty()).then(HttpBridge::current),
            access: self.access(),
            public: self.public_fields(),
        }
    }

    /// The error of the job's secret store.
    fn store_error(&self, source: StoreError) -> RotationError {
        match source {
            StoreError::Conflict { location, expected, found } => {
                RotationError::Conflict { job: self.config.id.clone(), location, expected, found, rollback: None }
            }
            source => RotationError::Store { job: self.config.id.clone(), source: Box::new(source), rollback: None },
        }
    }

    /// The store the job's secret lives in, if it has one.
    fn secret_store(&self, store: &StateStore) -> Result<Option<Box<dyn SecretStore>>, StoreError> {
        self.config.secret.as_ref().map(|at| store.secret_store(at)).transpose()
    }

    /// The job's secret as it is now (newest version), or at `version`,
    /// and the version it was read at.
    async fn read_secret(
        &self,
        secret: Option<&dyn SecretStore>,
        version: Option<&StoreVersion>,
    ) -> Result<Option<(CurrentSecret, Option<StoreVersion>)>, RotationError> {
        let Some(secret) = secret else { return Ok(None) };
        let found = secret.read(version).await.map_err(|e| self.store_error(e))?;
        Ok(found.map(|s| {
            let number = s.version.as_ref().and_then(StoreVersion::number);
            (CurrentSecret { data: s.data, version: number }, s.version)
        }))
    }

    /// The dry run: what would happen, with no side effects. The plugin's
    /// `plan` runs with the job's grants made read-only, so a plugin that
    /// tries to write anyway is refused (and the refusal logged) instead of
    /// trusted.
    pub async fn plan(&self, store: &StateStore) -> Result<Plan, RotationError> {
        let vault = store.vault.as_ref();
        let state = store.load(&self.config.id).await?;
        let resumes = state.state.in_progress.as_ref().map(|p| {
            format!("rotation {} (started {}) is past `{}`: a run resumes it", p.id, p.started, p.stage.as_str())
        });
        let secret = self.secret_store(store).map_err(|e| self.store_error(e))?;
        let current = self.read_secret(secret.as_deref(), None).await?;
        let (current, current_version) = match current {
            Some((c, v)) => (Some(c), v),
            None => (None, None),
        };
        let ctx = self.step_context("dry-run", current, 1);
        let mut config = self.run_config(vault);
        config.grants = Arc::new(config.grants.to_read_only());
        let mut session = Session::start(&self.plugin, &self.config.id, config).await?;
        let actions = session.plan(&ctx).await?.result;
        let actions = actions.map_err(|source| RotationError::Step { source, rollback: None })?;
        Ok(Plan {
            job: self.config.id.clone(),
            plugin: self.plugin.label(),
            current_version: current_version.clone(),
            resumes,
            plugin_actions: actions,
            host_actions: host_actions(store, &self.config.id, self.config.secret.as_ref(), current_version.as_ref()),
        })
    }

    /// Rotate now, or finish the rotation an earlier run left unfinished.
    pub async fn rotate(&self, store: &StateStore, actor: &str) -> Result<RotationReport, RotationError> {
        self.rotate_with(store, RotateOptions::new(actor)).await
    }

    /// [`Job::rotate`] with an observer and a hook on the final state write.
    pub async fn rotate_with(
        &self,
        store: &StateStore,
        options: RotateOptions<'_>,
    ) -> Result<RotationReport, RotationError> {
        self.rotate_recorded(store, options).await.result
    }

    /// [`Job::rotate_with`], returning the record the rotation ended with
    /// too, so a caller that books outcomes (the scheduler) books each
    /// exactly once: in the rotation's own final write when
    /// [`Rotation::recorded`] is `Some`, else itself.
    pub async fn rotate_recorded(&self, store: &StateStore, options: RotateOptions<'_>) -> Rotation {
        protocol::run(self, store, options).await
    }
}

fn host_actions(
    store: &StateStore,
    job: &str,
    secret: Option<&SecretAt>,
    current: Option<&StoreVersion>,
) -> Vec<String> {
    let state = store.location(job);
    let mut out = Vec::new();
    match (secret, current) {
        (Some(at), Some(v)) => out.push(format!("read {at} (current version {v})")),
        (Some(at), None) => out.push(format!("read {at} (does not exist yet)")),
        (None, _) => out.push("no secret: nothing is written to a secret store".into()),
    }
    out.push(format!("stage the new value as PENDING in {state} (check-and-set), before the target changes"));
    if let Some(SecretAt::Aws(_)) = secret {
        out.push("stage it in Secrets Manager too: a version labelled AWSPENDING, the rotation id as its token".into());
    }
    out.push(format!("record each step in {state}; a crash resumes from the last recorded step"));
    match (secret, current) {
        (Some(SecretAt::Kv(loc)), _) => {
            let cas = current.and_then(StoreVersion::number).unwrap_or(0);
            out.push(format!("after set and test succeed: write {loc} as version {} with cas={cas}", cas + 1));
        }
        (Some(at @ SecretAt::Aws(_)), Some(v)) => {
            out.push(format!("after set and test succeed: move AWSCURRENT of {at} from version {v} to the new one"));
        }
        (Some(at @ SecretAt::Aws(_)), None) => {
            out.push(format!("after set and test succeed: label the new version of {at} AWSCURRENT"));
        }
        (None, _) => {}
    }
    out.push("on failure: call rollback, clear PENDING, leave the secret unchanged".into());
    out
}
