//! What a rotation tells the rest of the daemon as it goes: one event per
//! protocol action (plugin steps and the host's own Vault writes), for the
//! audit log, metrics and the dashboard's live feed.
//!
//! Events carry names, ids, timings, outcomes and the Vault paths touched —
//! never a secret value: [`RotationEvent`] has no field that could hold one.

use std::time::Duration;

use crate::metrics::Metrics;
use crate::state::AuditAnchor;

/// One protocol action of one rotation.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RotationEvent {
    pub job: String,
    /// `name@version`.
    pub plugin: String,
    pub plugin_sha256: String,
    pub rotation_id: String,
    /// Who asked: `scheduler`, `api:<caller>`, `cli`.
    pub actor: String,
    /// `create`, `stage`, `set`, `test`, `promote`, `finish`, `rollback`,
    /// `resume`, or `rotation` for the overall outcome.
    pub step: &'static str,
    /// `ok`, `failed`, `started`, `rotated`, `rolled-back`, `kept-pending`.
    pub outcome: &'static str,
    #[serde(rename = "duration_ms", serialize_with = "millis")]
    pub duration: Option<Duration>,
    /// What the action's host calls touched: Vault paths (without `/v1/`),
    /// SQL connection names, HTTP `<origin><path>` (never the query).
    pub vault_paths: Vec<String>,
    /// Why it failed. Already free of secret values (errors are built from
    /// redacted plugin output and Vault messages).
    pub error: Option<String>,
    /// The failure's machine name (`trap`, `deadline`, `conflict`, …).
    pub kind: Option<&'static str>,
    /// Host calls the plugin made in this step that its grants refused.
    pub denied_calls: u32,
}

fn millis<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(d.as_secs_f64() * 1e3),
        None => s.serialize_none(),
    }
}

/// Receives rotation events. Called on the async runtime: must not block.
pub trait Observer: Send + Sync {
    fn event(&self, event: &RotationEvent);

    /// If this observer writes an audit log: the anchor a state record
    /// should store in place of `previous` (the log's head, i.e. the newest
    /// record already in the file, unless `previous` shows the file was cut
    /// since). The protocol stores it with each state write, so Vault
    /// vouches for the log (see [`crate::audit`]).
    fn anchor(&self, _previous: Option<&AuditAnchor>) -> Option<AuditAnchor> {
        None
    }
}

/// An observer that ignores everything.
pub struct NoEvents;

impl Observer for NoEvents {
    fn event(&self, _: &RotationEvent) {}
}

/// Every observer in a list, in order.
impl Observer for Vec<std::sync::Arc<dyn Observer>> {
    fn event(&self, event: &RotationEvent) {
        for o in self {
            o.event(event);
        }
    }

    /// The first audit log's head (a daemon writes one log).
    fn anchor(&self, previous: Option<&AuditAnchor>) -> Option<AuditAnchor> {
        self.iter().find_map(|o| o.anchor(previous))
    }
}

/// Rotation events → metrics: the outcome and each step's duration per
/// plugin, traps and grant denials per plugin. (The per-job gauges come
/// from the job list at scrape time: [`Metrics::set_jobs`].)
impl Observer for Metrics {
    fn event(&self, e: &RotationEvent) {
        if e.step == "rotation" {
            self.rotation(&e.plugin, e.outcome);
        } else if let Some(took) = e.duration {
            self.step_duration(&e.plugin, e.step, took);
        }
        if matches!(e.kind, Some("trap" | "memory-limit" | "deadline")) && e.step != "rotation" {
            self.plugin_trap(&e.plugin);
        }
        for _ in 0..e.denied_calls {
            self.plugin_denial(&e.plugin);
        }
    }
}
