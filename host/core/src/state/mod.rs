//! A job's state record: the rotation in progress (with its PENDING value),
//! the schedule's memory (last and next rotation, retries, failed cycles,
//! needs-attention) and a short history.
//!
//! One record per job, in Vault KV v2 (`<state mount>/<state prefix>/<job
//! id>`) or, in a deployment without Vault, as a secret of its own in AWS
//! Secrets Manager ([`secrets_manager`]); [`StateStore`] reads and writes
//! either, always with check-and-set against the version read, so two
//! daemons never overwrite each other silently.
//!
//! Keeping PENDING in the same record as the step makes staging atomic: a
//! record either says "set is next, with this value" or says nothing.
//!
//! The record holds a secret (PENDING) while a rotation runs, so it lives in
//! a secret store under the same protection as the secrets, and its
//! `Debug` and the views the API shows never include it.
//!
//! It also carries the audit log's **anchor** ([`AuditAnchor`]): the head of
//! the log (sequence number and hash) as it was when the record was written.
//! Riding on writes the protocol makes anyway costs no extra round trip,
//! and the check-and-set that guards the record guards the anchor too.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::secret::SecretJson;
use crate::store::StoreVersion;

mod cache;
mod fence;
mod secrets_manager;
mod store;

pub use fence::{Fence, Fenced, Guard, admit};
pub use store::{StateError, StateStore, Versioned};

/// The steps of a rotation in progress, in order. The record names the last
/// one completed; resuming starts with the one after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// PENDING is in Vault; `set` is next.
    Staged,
    /// The target has PENDING; `test` is next.
    Set,
    /// PENDING works on the target; promotion is next.
    Tested,
    /// PENDING is the current KV version; `finish` is next.
    Promoted,
    /// `set` or `test` failed; `rollback` is (re)run, then PENDING is cleared.
    RollingBack,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Staged => "staged",
            Self::Set => "set",
            Self::Tested => "tested",
            Self::Promoted => "promoted",
            Self::RollingBack => "rolling-back",
        }
    }
}

/// A rotation that has staged its PENDING value and not ended yet.
#[derive(Clone, Serialize, Deserialize)]
pub struct InProgress {
    /// The rotation id (the plugin's idempotency token).
    pub id: String,
    pub stage: Stage,
    #[serde(with = "time::serde::rfc3339")]
    pub started: OffsetDateTime,
    /// Tries so far, counting the one that staged.
    pub attempt: u32,
    /// The version PENDING replaces (promotion's check), if the secret had
    /// a value.
    pub base_version: Option<StoreVersion>,
    /// The version promotion made current.
    #[serde(default)]
    pub new_version: Option<StoreVersion>,
    /// Why the rotation is being rolled back.
    #[serde(default)]
    pub error: Option<String>,
    /// Who started it (`scheduler`, `api:…`, `cli`).
    pub actor: String,
    /// When the job's adoption gate began waiting for consumers (its
    /// hooks were told then): the deadline counts from here, across
    /// restarts.
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub adoption_since: Option<OffsetDateTime>,
    /// Not serialized by serde: spliced into the record text (see
    /// [`JobState::to_secret`]) so it is only ever held zeroizing.
    #[serde(skip)]
    pub pending: Option<SecretJson>,
}

impl std::fmt::Debug for InProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProgress")
            .field("id", &self.id)
            .field("stage", &self.stage)
            .field("attempt", &self.attempt)
            .field("base_version", &self.base_version)
            .field("pending", &self.pending.as_ref().map(|_| crate::secret::REDACTED))
            .finish()
    }
}

/// How a finished rotation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Rotated,
    /// Rolled back (or never touched the target): the old value stands.
    Failed,
}

/// One finished rotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub id: String,
    pub outcome: Outcome,
    #[serde(with = "time::serde::rfc3339")]
    pub started: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub finished: OffsetDateTime,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub version: Option<StoreVersion>,
    pub actor: String,
    /// The schedule slot the rotation belonged to (a scheduled run's), so
    /// "each slot rotated once" can be checked from the records.
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub slot: Option<OffsetDateTime>,
    /// Who ended it, when replicas share the jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fence: Option<Fence>,
}

/// How many finished rotations a record remembers.
pub const HISTORY_LEN: usize = 20;

/// Everything rotator remembers about a job between runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JobState {
    /// The last successful rotation's end.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_rotation: Option<OffsetDateTime>,
    /// The slot the next automatic rotation belongs to.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub slot: Option<OffsetDateTime>,
    /// When that rotation starts (the slot plus jitter, or a retry time).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub next_due: Option<OffsetDateTime>,
    /// Failed tries in the current cycle.
    #[serde(default)]
    pub retries: u32,
    /// Cycles in a row that ended failed.
    #[serde(default)]
    pub failed_cycles: u32,
    /// Too many failed cycles: automatic rotation waits for a human.
    #[serde(default)]
    pub needs_attention: bool,
    /// The last failure, for operators.
    #[serde(default)]
    pub last_error: Option<String>,
    /// Successful rotations ever.
    #[serde(default)]
    pub rotations: u64,
    #[serde(default)]
    pub in_progress: Option<InProgress>,
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
    /// The audit log's head when this record was last written by a
    /// rotation; `rotator audit verify --config` compares it with the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_anchor: Option<AuditAnchor>,
    /// The replica and ownership epoch of the last write, when replicas
    /// share the jobs ([`fence`]): a write from an older epoch is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fence: Option<Fence>,
}

/// A record of the audit log that Vault vouches for: a file that no longer
/// holds it (cut short), or holds something else at `seq` (rewritten), is
/// caught by `rotator audit verify --config`. Holds hashes, no secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditAnchor {
    /// The hash of the log's first record: which log this anchor is about
    /// (a file replaced or moved aside has another).
    pub log: String,
    /// The `seq` of the newest record written when the anchor was taken.
    pub seq: u64,
    /// That record's hash: its MAC in a keyed log, the sha256 of its line
    /// in an unkeyed one (what the next record's `prev` holds).
    pub hash: String,
}

/// The record as read back: PENDING as raw JSON text, borrowed from the
/// zeroizing buffer it came in.
#[derive(Deserialize)]
struct Stored<'a> {
    #[serde(flatten)]
    state: JobState,
    #[serde(borrow, default)]
    pending: Option<&'a RawValue>,
}

impl JobState {
    /// The record as KV data. PENDING is spliced in as text, so the secret
    /// is copied only into zeroizing buffers.
    pub fn to_secret(&self) -> SecretJson {
        let body = serde_json::to_string(self).expect("a job state serializes");
        match self.in_progress.as_ref().and_then(|p| p.pending.as_ref()) {
            None => SecretJson::new(body),
            Some(pending) => {
                let mut text = Zeroizing::new(String::with_capacity(body.len() + pending.expose().len() + 16));
                text.push_str("{\"pending\":");
                text.push_str(pending.expose());
                text.push(',');
                text.push_str(&body[1..]);
                SecretJson::new(std::mem::take(&mut *text))
            }
        }
    }

    /// Parse a record read from KV.
    pub fn from_secret(data: &SecretJson) -> Result<Self, RecordError> {
        let stored: Stored<'_> =
            serde_json::from_str(data.expose()).map_err(|e| RecordError::Unreadable(e.to_string()))?;
        let mut state = stored.state;
        if let (Some(p), Some(raw)) = (state.in_progress.as_mut(), stored.pending) {
            p.pending = Some(SecretJson::new(raw.get().to_owned()));
        }
        if state.in_progress.as_ref().is_some_and(|p| p.pending.is_none()) {
            return Err(RecordError::PendingMissing);
        }
        Ok(state)
    }

    /// Remember a finished rotation, newest first.
    pub fn push_history(&mut self, entry: HistoryEntry) {
        self.history.insert(0, entry);
        self.history.truncate(HISTORY_LEN);
    }
}

/// Why a state record read back is not one this daemon can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// serde_json's reason (a position and the expected shape).
    #[error("unreadable state record: {0}")]
    Unreadable(String),
    #[error("state record has a rotation in progress without its pending value")]
    PendingMissing,
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn with_pending() -> JobState {
        JobState {
            rotations: 3,
            in_progress: Some(InProgress {
                id: "r1".into(),
                stage: Stage::Set,
                started: datetime!(2026-11-22 10:00 UTC),
                attempt: 1,
                base_version: Some(StoreVersion::Kv(4)),
                new_version: None,
                error: None,
                actor: "scheduler".into(),
                adoption_since: None,
                pending: Some(SecretJson::new(r#"{"password":"n3w-value"}"#.into())),
            }),
            ..JobState::default()
        }
    }

    #[test]
    fn a_record_round_trips_with_its_pending_value() {
        let state = with_pending();
        let back = JobState::from_secret(&state.to_secret()).unwrap();
        let p = back.in_progress.unwrap();
        assert_eq!(p.stage, Stage::Set);
        assert_eq!(p.base_version, Some(StoreVersion::Kv(4)));
        assert_eq!(p.pending.unwrap().expose(), r#"{"password":"n3w-value"}"#);
        assert_eq!(back.rotations, 3);
        let idle = JobState::from_secret(&JobState::default().to_secret()).unwrap();
        assert!(idle.in_progress.is_none());
    }

    #[test]
    fn versions_are_read_as_the_number_or_id_each_store_wrote() {
        let mut state = with_pending();
        let p = state.in_progress.as_mut().unwrap();
        p.base_version = Some(StoreVersion::Id("a1b2c3d4-0000-4000-8000-000000000001".into()));
        p.new_version = Some(StoreVersion::Id("rotation-id".into()));
        let text = state.to_secret();
        assert!(text.expose().contains(r#""base_version":"a1b2c3d4-0000-4000-8000-000000000001""#));
        let back = JobState::from_secret(&text).unwrap().in_progress.unwrap();
        assert_eq!(back.new_version, Some(StoreVersion::Id("rotation-id".into())));
        // A record a daemon wrote before stores existed: plain numbers.
        let old = r#"{"pending":{"p":"x"},"in_progress":{"id":"r","stage":"set","started":"2026-11-22T10:00:00Z",
            "attempt":1,"base_version":7,"new_version":null,"actor":"cli"},
            "history":[{"id":"h","outcome":"rotated","started":"2026-11-22T10:00:00Z","finished":"2026-11-22T10:00:00Z","version":7,"actor":"cli"}]}"#;
        let old = JobState::from_secret(&SecretJson::new(old.into())).unwrap();
        assert_eq!(old.in_progress.unwrap().base_version, Some(StoreVersion::Kv(7)));
        assert_eq!(old.history[0].version, Some(StoreVersion::Kv(7)));
    }

    #[test]
    fn debug_never_shows_the_pending_value() {
        let shown = format!("{:?}", with_pending());
        assert!(!shown.contains("n3w-value"), "{shown}");
        assert!(shown.contains("Set"));
    }

    #[test]
    fn a_record_in_progress_without_pending_is_refused() {
        let mut state = with_pending();
        let text = serde_json::to_string(&state).unwrap();
        assert!(JobState::from_secret(&SecretJson::new(text)).is_err());
        state.in_progress = None;
        assert!(JobState::from_secret(&state.to_secret()).is_ok());
    }

    #[test]
    fn history_keeps_the_newest() {
        let mut s = JobState::default();
        for i in 0..30 {
            s.push_history(HistoryEntry {
                id: i.to_string(),
                outcome: Outcome::Rotated,
                started: datetime!(2026-11-22 10:00 UTC),
                finished: datetime!(2026-11-22 10:00 UTC),
                error: None,
                version: None,
                actor: "cli".into(),
                slot: None,
                fence: None,
            });
        }
        assert_eq!(s.history.len(), HISTORY_LEN);
        assert_eq!(s.history[0].id, "29");
    }
}
