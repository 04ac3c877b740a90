//! What a rotation says about itself as it runs: one [`Note`] per step or
//! outcome, made into a [`RotationEvent`] for the observer (audit log,
//! metrics, the live feed).

use super::super::Job;
use super::super::events::RotationEvent;
use crate::plugin::{CallOutcome, HostCall};

/// What one event says; the rotation's identity is added by `Driver::emit`.
pub(super) struct Note {
    pub(super) step: &'static str,
    pub(super) outcome: &'static str,
    pub(super) duration: Option<std::time::Duration>,
    pub(super) vault_paths: Vec<String>,
    /// The message and the failure's kind.
    pub(super) error: Option<(String, &'static str)>,
    pub(super) denied_calls: u32,
}

impl Note {
    pub(super) fn new(step: &'static str, outcome: &'static str) -> Self {
        Self { step, outcome, duration: None, vault_paths: Vec::new(), error: None, denied_calls: 0 }
    }
}

/// The event for `note` about `job`'s rotation `rotation_id`.
pub(super) fn event(job: &Job, rotation_id: String, actor: String, note: Note) -> RotationEvent {
    let Note { step, outcome, duration, vault_paths, error, denied_calls } = note;
    let (error, kind) = match error {
        Some((message, kind)) => (Some(message), Some(kind)),
        None => (None, None),
    };
    RotationEvent {
        job: job.config.id.clone(),
        plugin: job.plugin.label(),
        plugin_sha256: job.plugin.sha256().to_owned(),
        rotation_id,
        actor,
        step,
        outcome,
        duration,
        vault_paths,
        error,
        kind,
        denied_calls,
    }
}

/// The paths a step's host calls touched, and how many of those calls the
/// job's grants refused.
pub(super) fn call_summary(calls: &[HostCall]) -> (Vec<String>, u32) {
    let mut paths: Vec<String> = calls.iter().map(|c| c.path.clone()).collect();
    paths.dedup();
    let denied = calls.iter().filter(|c| c.outcome == CallOutcome::Denied).count();
    (paths, denied as u32)
}
