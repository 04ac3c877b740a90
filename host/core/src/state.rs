//! A job's state record, kept in Vault: the rotation in progress (with its
//! PENDING value), the schedule's memory (last and next rotation, retries,
//! failed cycles, needs-attention) and a short history.
//!
//! One record per job at `<state mount>/<state prefix>/<job id>` (KV v2),
//! always written with check-and-set against the version read, so two
//! daemons (or a daemon and a human) never overwrite each other silently.
//! Keeping PENDING in the same record as the step makes staging atomic: a
//! record either says "set is next, with this value" or says nothing.
//!
//! The record holds a secret (PENDING) while a rotation runs, so it lives in
//! Vault under the same protection as the secrets, and its `Debug` and the
//! views the API shows never include it.
//!
//! It also carries the audit log's **anchor** ([`AuditAnchor`]): the head of
//! the log (sequence number and hash) as it was when the record was written.
//! Riding on writes the protocol makes anyway costs no extra round trip,
//! and the check-and-set that guards the record guards the anchor too.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::aws::AwsClient;
use crate::secret::SecretJson;
use crate::store::kv::KvStore;
use crate::store::secrets_manager::SecretsManagerStore;
use crate::store::{SecretAt, SecretStore, StoreError, StoreVersion};
use crate::vault::{VaultClient, VaultError};

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

/// Where job states live in Vault, and the clients a rotation reaches its
/// secret's store with.
#[derive(Debug, Clone)]
pub struct StateStore {
    pub vault: VaultClient,
    pub mount: String,
    pub prefix: String,
    /// For jobs whose secret lives in AWS Secrets Manager.
    pub aws: Option<AwsClient>,
}

/// A state record and the KV version it was read at (0: none yet).
#[derive(Debug, Clone, Default)]
pub struct Versioned {
    pub state: JobState,
    pub version: u64,
}

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state of job `{job}` at {location}: {source}")]
    Vault { job: String, location: String, source: VaultError },
    #[error("state of job `{job}` at {location}: {source}")]
    Corrupt { job: String, location: String, source: RecordError },
}

/// Why a state record read from KV is not one this daemon can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// serde_json's reason (a position and the expected shape).
    #[error("unreadable state record: {0}")]
    Unreadable(String),
    #[error("state record has a rotation in progress without its pending value")]
    PendingMissing,
}

impl StateError {
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Vault { source, .. } if source.is_transient())
    }

    /// Someone else wrote the record since we read it.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Vault { source: VaultError::CasMismatch { .. }, .. })
    }
}

impl StateStore {
    pub fn new(vault: VaultClient, mount: impl Into<String>, prefix: impl Into<String>) -> Self {
        Self { vault, mount: mount.into(), prefix: prefix.into(), aws: None }
    }

    /// The same, reaching AWS with `aws` for jobs whose secret is there.
    pub fn with_aws(mut self, aws: AwsClient) -> Self {
        self.aws = Some(aws);
        self
    }

    /// The store of a job's secret at `at`.
    pub fn secret_store(&self, at: &SecretAt) -> Result<Box<dyn SecretStore>, StoreError> {
        match at {
            SecretAt::Kv(loc) => Ok(Box::new(KvStore::new(self.vault.clone(), loc.clone()))),
            SecretAt::Aws(id) => {
                let refused = |message: String| StoreError::Refused { location: at.to_string(), message };
                let Some(aws) = &self.aws else {
                    return Err(refused("this daemon has no AWS client (no job of its config names AWS)".into()));
                };
                let region = crate::aws::credentials::region(aws.env(), id.region.as_deref())
                    .map_err(|e| refused(e.to_string()))?;
                Ok(Box::new(SecretsManagerStore::new(aws.clone(), id, region)))
            }
        }
    }

    fn path(&self, job: &str) -> String {
        format!("{}/{job}", self.prefix.trim_matches('/'))
    }

    /// Where `job`'s record is, for messages.
    pub fn location(&self, job: &str) -> String {
        format!("{}/{}", self.mount.trim_matches('/'), self.path(job))
    }

    /// The job's record, or an empty one (version 0) if it has none.
    pub async fn load(&self, job: &str) -> Result<Versioned, StateError> {
        let found = self.vault.kv_read(&self.mount, &self.path(job)).await.map_err(|source| StateError::Vault {
            job: job.into(),
            location: self.location(job),
            source,
        })?;
        let Some(secret) = found else { return Ok(Versioned::default()) };
        let state = JobState::from_secret(&secret.data).map_err(|source| StateError::Corrupt {
            job: job.into(),
            location: self.location(job),
            source,
        })?;
        Ok(Versioned { state, version: secret.version.unwrap_or(0) })
    }

    /// Write `v.state` if the record is still at `v.version`, and move
    /// `v.version` on.
    pub async fn save(&self, job: &str, v: &mut Versioned) -> Result<(), StateError> {
        let data = v.state.to_secret();
        let version = self
            .vault
            .kv_write(&self.mount, &self.path(job), &data, Some(v.version))
            .await
            .map_err(|source| StateError::Vault { job: job.into(), location: self.location(job), source })?;
        v.version = version;
        Ok(())
    }
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
            });
        }
        assert_eq!(s.history.len(), HISTORY_LEN);
        assert_eq!(s.history[0].id, "29");
    }
}
