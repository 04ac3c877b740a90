//! The audit log: one JSON line per thing the daemon did to a secret,
//! chained so that editing, removing or reordering a record is detectable,
//! keyed so that only the key holder can write a chain that verifies, and
//! anchored in Vault so that cutting the end off is detectable too.
//!
//! **The chain.** Each line is an [`AuditRecord`] whose `prev` field holds
//! the previous record's hash; the first record's `prev` is
//! [`GENESIS_PREV`] (64 zeros). A log is one of two kinds, fixed by its
//! first record and never mixed:
//!
//! - **keyed** (`[daemon] audit_key` set, see [`AuditKey`]): every record
//!   also carries `mac`, the HMAC-SHA256 (hex) of the record's line as it
//!   would be written *without* the `mac` field. A record's hash is its
//!   `mac`. Anyone without the key can neither forge a record nor rebuild
//!   the chain after an edit.
//! - **unkeyed** (no key; the format of logs written before keys existed):
//!   a record's hash is the sha256 of its line's bytes. This catches
//!   accidents and clumsy edits only: anyone who can write the file can
//!   rebuild a consistent chain.
//!
//! Verifying with a key demands the keyed kind: a record without `mac`
//! fails, so an attacker cannot downgrade a keyed log to an unkeyed one. A
//! keyed log cannot be verified without its key (the command says so), and
//! the writer refuses to continue a log of the other kind.
//!
//! **The anchor.** Each time a rotation writes its job's state record in
//! Vault (check-and-set, after every step; see [`crate::state`]),
//! the record carries the log's head as an [`AuditAnchor`]: the first
//! record's hash (which log), the newest `seq` and its hash. The head is
//! read after the rotation's events were appended, so it names a record
//! already written to the file. [`verify_anchored`] then reports a file that
//! ends before an anchored record (**truncated**), holds another record at
//! that `seq` (**rewritten**), or is another log altogether.
//!
//! **What it proves, and what not.** A file that verifies with the key and
//! agrees with every anchor is, up to the newest anchor, exactly what the
//! daemon wrote; past it, every record is one the key holder wrote, in
//! order, but records *after* the newest anchor (at least the last
//! rotation's final `rotation` record) can be cut without a trace until the
//! next rotation anchors a later head. Someone holding the key *and* write
//! access to the state records in Vault can still rewrite history. A job's
//! record keeps only its newest anchor, and the writer replaces it only if
//! the file agrees with it as far as the writer knows without reading it
//! ([`AuditLog::anchor_over`]: the anchored record is not past the end and,
//! if it is among the newest 4096, has the anchored hash); otherwise the
//! old anchor stays and the daemon logs `AUDIT LOG cut short`. A cut made
//! while the daemon is down is therefore still in Vault after it restarts
//! and writes on, until it restarts again or writes 4096 more records:
//! verify regularly, or ship the log elsewhere, to close that window. Without
//! `audit_fsync`, a power loss can lose records an anchor names: that looks
//! like truncation, and is.
//!
//! **No secret values.** A record carries identities (job, plugin, rotation
//! id), step names, outcomes, Vault *paths* and an error message, and has no
//! field that holds secret data. Error messages from rotations are already
//! redacted (see `secret::Redactor`); callers must pass only such messages.
//! The key itself never reaches a record, a log line or an error.
//!
//! **Sizes.** A line is at most [`MAX_LINE_BYTES`]: an event that would
//! make a longer one has its error and paths shortened, visibly.

mod anchor;
mod key;
mod observer;
mod tail;
mod verify;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_keyed;

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use crate::state::AuditAnchor;
pub use anchor::{AnchorProblem, AnchorReadError, Anchored, Anchors, JobAnchor, read_anchors, verify_anchored};
pub use key::{AuditKey, KeyError, MAX_KEY_BYTES, MIN_KEY_BYTES};
pub use verify::{
    TamperReason, Tampering, VerifyError, VerifyOptions, VerifySummary, verify, verify_reader, verify_with,
};

/// `prev` of the first record in a file.
pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The longest line the log writes and `verify` reads, newline excluded.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// The sha256 (lowercase hex) of one line's bytes, without the newline:
/// a record's hash in an unkeyed log.
pub fn line_hash(line: &[u8]) -> String {
    hex::encode(Sha256::digest(line))
}

/// Which plugin acted: the same identity the daemon logs and pins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginIdentity {
    pub name: String,
    pub version: String,
    /// Hex sha256 of the component bytes.
    pub sha256: String,
}

impl From<&crate::plugin::Plugin> for PluginIdentity {
    fn from(plugin: &crate::plugin::Plugin) -> Self {
        Self {
            name: plugin.info().name.clone(),
            version: plugin.info().version.clone(),
            sha256: plugin.sha256().into(),
        }
    }
}

/// The part of a rotation a record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    /// Plugin `create`: a new value was generated.
    Create,
    /// The host staged the pending value before applying it.
    Stage,
    /// Plugin `set`: the target was changed.
    Set,
    /// Plugin `test`: the new value was proven.
    Test,
    /// The host wrote the new KV version (check-and-set).
    Promote,
    /// Plugin `finish`.
    Finish,
    /// Plugin `rollback`: the target was restored.
    Rollback,
    /// The host recorded the rotation's outcome (e.g. in KV metadata).
    Record,
    /// A run picked up a rotation an earlier run left unfinished.
    Resume,
    /// The rotation as a whole: its overall outcome.
    Rotation,
}

/// How a step (or the rotation) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    /// An error (transient, permanent, invalid config, Vault failure).
    Failed,
    /// A plugin's call was refused by its grants.
    Denied,
    /// The check-and-set lost to a concurrent writer; nothing was overwritten.
    Conflict,
    /// The plugin trapped (panic, out of memory, bad component).
    Trapped,
    /// The plugin ran past its step deadline.
    TimedOut,
    /// The run ended early with the new value still staged in Vault; the
    /// next run resumes it.
    KeptPending,
}

/// What the caller reports; [`AuditLog::append`] adds `seq`, `time` and
/// `prev`. Holds no secret values (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Who started it: `scheduler`, `api:<caller>`, `cli`, …
    pub actor: String,
    pub job: String,
    pub plugin: PluginIdentity,
    pub rotation_id: String,
    pub step: Step,
    pub outcome: Outcome,
    /// What the step's host calls touched (paths only, never values): Vault
    /// paths, SQL connection names, and `<origin><path>` of HTTP requests
    /// (never their query).
    pub vault_paths: Vec<String>,
    /// A redacted error message when the step did not succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl AuditEvent {
    /// An event with no Vault paths and no error; add them with
    /// [`paths`](Self::paths) and [`error`](Self::error).
    pub fn new(
        actor: impl Into<String>,
        job: impl Into<String>,
        plugin: PluginIdentity,
        rotation_id: impl Into<String>,
        step: Step,
        outcome: Outcome,
    ) -> Self {
        Self {
            actor: actor.into(),
            job: job.into(),
            plugin,
            rotation_id: rotation_id.into(),
            step,
            outcome,
            vault_paths: Vec::new(),
            error: None,
        }
    }

    /// The Vault paths the step touched.
    pub fn paths<S: Into<String>>(mut self, paths: impl IntoIterator<Item = S>) -> Self {
        self.vault_paths = paths.into_iter().map(Into::into).collect();
        self
    }

    /// A (redacted) error message.
    pub fn error(mut self, message: impl Into<String>) -> Self {
        self.error = Some(message.into());
        self
    }
}

/// One line of the log: `seq`, `time`, the event's fields, `prev`, then
/// `mac` in a keyed log, in that order. [`verify`] accepts a line only in
/// exactly the form this type serializes to, so a field added to (or
/// reformatted in) a record is noticed even where no hash covers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// 1 for the first record of a file, then +1 per record.
    pub seq: u64,
    /// RFC 3339, UTC.
    pub time: String,
    #[serde(flatten)]
    pub event: AuditEvent,
    /// The previous record's hash; [`GENESIS_PREV`] first.
    pub prev: String,
    /// Keyed logs only: HMAC-SHA256 (hex) of this line without this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

impl AuditRecord {
    /// Parse one line (without its newline), refusing anything but the exact
    /// bytes [`AuditLog::append`] would have written for it.
    pub fn parse_line(line: &[u8]) -> Result<Self, LineError> {
        let record: Self = serde_json::from_slice(line).map_err(|e| LineError::Json(e.to_string()))?;
        if record.to_line() != line {
            return Err(LineError::NotExact);
        }
        Ok(record)
    }

    /// The record as one line of JSON, without the newline.
    fn to_line(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an audit record always serializes")
    }

    /// The bytes `mac` is computed over: the line without the `mac` field.
    fn signed_bytes(&self) -> Vec<u8> {
        Self { mac: None, ..self.clone() }.to_line()
    }

    /// Whether `mac` is present and is this record's MAC under `key`.
    fn mac_matches(&self, key: &AuditKey) -> bool {
        self.mac.as_deref().is_some_and(|mac| key.verify(&self.signed_bytes(), mac))
    }

    /// This record's hash, as the next `prev` and an anchor name it, given
    /// its exact `line`.
    fn hash(&self, line: &[u8]) -> String {
        self.mac.clone().unwrap_or_else(|| line_hash(line))
    }
}

/// How the log is written: how hard each append pushes the record to disk,
/// and the chain's key.
#[derive(Debug, Clone, Default)]
pub struct AuditOptions {
    /// `fsync` (`sync_data`) after every record. Off by default: each record
    /// is written with one `write` and reaches the kernel at once, which
    /// survives a daemon crash but not a power loss.
    pub fsync: bool,
    /// Key the chain (HMAC-SHA256); `None` writes an unkeyed sha256 chain.
    pub key: Option<AuditKey>,
}

/// Why a line is not an audit record. Records hold no secret values, so
/// serde_json's message (which may quote a field) is safe to show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("{0}")]
    Json(String),
    #[error("not in the exact form the log writes (a field added, reordered or reformatted)")]
    NotExact,
}

/// Why the audit log could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot open audit log {}: {source}", path.display())]
    Open { path: PathBuf, source: std::io::Error },
    #[error(
        "audit log {} ends in an incomplete line (a write was cut short); check it with `rotator audit verify` and move it aside",
        path.display()
    )]
    Unterminated { path: PathBuf },
    #[error("the {which} record of audit log {} is not readable ({message}); check it with `rotator audit verify`", path.display())]
    Corrupt { path: PathBuf, which: &'static str, message: String },
    #[error(
        "audit log {} is unkeyed and [daemon] audit_key is set: a keyed chain cannot continue it; verify it, then move it aside",
        path.display()
    )]
    Unkeyed { path: PathBuf },
    #[error(
        "audit log {} is keyed and no [daemon] audit_key is set: configure the key it was written with, or move it aside",
        path.display()
    )]
    Keyed { path: PathBuf },
    #[error(
        "the last record of audit log {} does not carry a valid MAC under [daemon] audit_key: the key changed or the record was edited; check it with `rotator audit verify --config`",
        path.display()
    )]
    KeyMismatch { path: PathBuf },
    #[error("cannot write to audit log {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
}

/// An open audit log. Cheap to clone; clones append to the same chain.
///
/// Appends are serialized by a mutex and each is one `write` of a whole line
/// (plus an optional fsync), so calling [`append`](Self::append) from async
/// code blocks the thread only for that long. Only one `AuditLog` (one
/// process) may write a given file: two writers would fork the chain.
#[derive(Clone)]
pub struct AuditLog {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    options: AuditOptions,
    writer: Mutex<Writer>,
}

struct Writer {
    file: File,
    /// Bytes in the file: where a failed append is cut back to.
    len: u64,
    next_seq: u64,
    /// The newest record's hash.
    prev: String,
    /// The first record's hash, once there is one: the log's identity.
    log: Option<String>,
    /// `(seq, hash)` of the newest records (the last one found on opening,
    /// then each one written), at most [`RECENT`]: what a stored anchor is
    /// checked against before it is replaced.
    recent: VecDeque<(u64, String)>,
}

/// How many recent record hashes the writer keeps (about 100 bytes each).
const RECENT: usize = 4096;

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.inner.path)
            .field("fsync", &self.inner.options.fsync)
            .field("keyed", &self.inner.options.key.is_some())
            .finish()
    }
}

impl AuditLog {
    /// [`open_with`](Self::open_with) default options (flush, no fsync, no key).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, AuditError> {
        Self::open_with(path, AuditOptions::default())
    }

    /// Open `path` for appending: create it (mode 0600) if missing, or
    /// continue the chain after its last line. Only the first and last lines
    /// are read (the last one's MAC checked, if keyed); run [`verify`] to
    /// check the rest. A log of the other kind (keyed vs unkeyed) is refused.
    pub fn open_with(path: impl AsRef<Path>, options: AuditOptions) -> Result<Self, AuditError> {
        let path = path.as_ref().to_path_buf();
        let open_error = |source| AuditError::Open { path: path.clone(), source };
        let file =
            OpenOptions::new().read(true).append(true).create(true).mode(0o600).open(&path).map_err(open_error)?;
        let len = file.metadata().map_err(open_error)?.len();
        let mut writer =
            Writer { file, len, next_seq: 1, prev: GENESIS_PREV.to_owned(), log: None, recent: VecDeque::new() };
        if len > 0 {
            let corrupt = |which, message| AuditError::Corrupt { path: path.clone(), which, message };
            let read = |which, line: std::io::Result<tail::Line>| match line.map_err(open_error)? {
                tail::Line::Complete(bytes) => {
                    let record = AuditRecord::parse_line(&bytes).map_err(|m| corrupt(which, m.to_string()))?;
                    Ok((record, bytes))
                }
                tail::Line::Unterminated => Err(AuditError::Unterminated { path: path.clone() }),
                tail::Line::TooLong => Err(corrupt(which, format!("longer than {MAX_LINE_BYTES} bytes"))),
            };
            let (last, last_bytes) = read("last", tail::last_line(&writer.file, len))?;
            let (first, first_bytes) = read("first", tail::first_line(&writer.file, len))?;
            match (&options.key, &last.mac) {
                (Some(_), None) => return Err(AuditError::Unkeyed { path }),
                (None, Some(_)) => return Err(AuditError::Keyed { path }),
                (Some(key), Some(_)) if !last.mac_matches(key) => return Err(AuditError::KeyMismatch { path }),
                _ => {}
            }
            writer.next_seq = last.seq + 1;
            writer.prev = last.hash(&last_bytes);
            writer.log = Some(first.hash(&first_bytes));
            writer.recent.push_back((last.seq, writer.prev.clone()));
        }
        Ok(Self { inner: Arc::new(Inner { path, options, writer: Mutex::new(writer) }) })
    }

    /// The file this log writes.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The newest record already written (`None` while the log is empty):
    /// what a state record stores as its anchor.
    pub fn head(&self) -> Option<AuditAnchor> {
        self.anchor_over(None)
    }

    /// Append one record; returns its `seq`. On error nothing was recorded:
    /// a partly written line is cut off again, so the chain stays valid.
    pub fn append(&self, event: AuditEvent) -> Result<u64, AuditError> {
        let time = now_rfc3339();
        // A panic while holding the lock cannot leave the writer half-updated
        // (its fields change only after a successful write), so poison is moot.
        let mut w = self.inner.writer.lock().unwrap_or_else(|p| p.into_inner());
        let seq = w.next_seq;
        let mut record = AuditRecord { seq, time, event, prev: w.prev.clone(), mac: None };
        let mut line = self.sign(&mut record);
        if line.len() > MAX_LINE_BYTES {
            record.event.shorten();
            line = self.sign(&mut record);
        }
        let hash = record.hash(&line);
        line.push(b'\n');
        let fsync = self.inner.options.fsync;
        let written = w.file.write_all(&line).and_then(|()| w.file.flush()).and_then(|()| match fsync {
            true => w.file.sync_data(),
            false => Ok(()),
        });
        if let Err(source) = written {
            let len = w.len;
            if let Err(e) = w.file.set_len(len) {
                tracing::error!(path = %self.inner.path.display(), error = %e, "cannot cut a failed audit write back");
            }
            return Err(AuditError::Write { path: self.inner.path.clone(), source });
        }
        w.len += line.len() as u64;
        w.next_seq = seq + 1;
        if w.log.is_none() {
            w.log = Some(hash.clone());
        }
        if w.recent.len() == RECENT {
            w.recent.pop_front();
        }
        w.recent.push_back((seq, hash.clone()));
        w.prev = hash;
        Ok(seq)
    }

    /// Set `record.mac` if the log is keyed; the record's line.
    fn sign(&self, record: &mut AuditRecord) -> Vec<u8> {
        record.mac = None;
        if let Some(key) = &self.inner.options.key {
            record.mac = Some(key.mac(&record.to_line()));
        }
        record.to_line()
    }
}

/// What is kept of an over-long error message, and of each over-long path.
const SHORT_ERROR_BYTES: usize = 16 * 1024;
const SHORT_PATH_BYTES: usize = 1024;
/// How many paths an over-long record keeps.
const SHORT_PATHS: usize = 64;

impl AuditEvent {
    /// Make the event fit in a line: the parts a plugin influences (error,
    /// paths, plugin name and version) are cut, each with a marker saying
    /// how much was dropped.
    fn shorten(&mut self) {
        if let Some(error) = &mut self.error {
            cut(error, SHORT_ERROR_BYTES);
        }
        if self.vault_paths.len() > SHORT_PATHS {
            let dropped = self.vault_paths.len() - SHORT_PATHS;
            self.vault_paths.truncate(SHORT_PATHS);
            self.vault_paths.push(format!("…[{dropped} more paths]"));
        }
        for path in &mut self.vault_paths {
            cut(path, SHORT_PATH_BYTES);
        }
        cut(&mut self.plugin.name, SHORT_PATH_BYTES);
        cut(&mut self.plugin.version, SHORT_PATH_BYTES);
    }
}

/// Cut `text` to at most `max` bytes (on a character boundary), marking
/// how many bytes went.
fn cut(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let end = (0..=max).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    let dropped = text.len() - end;
    text.truncate(end);
    text.push_str(&format!("…[truncated {dropped} bytes]"));
}

/// Now, as RFC 3339 in UTC (`2025-01-31T12:00:00.123456789Z`).
fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("the current time always formats as RFC 3339")
}
