//! The audit log: one JSON line per thing the daemon did to a secret, chained
//! by hash so that editing, removing or reordering a record is detectable.
//!
//! Each line is an [`AuditRecord`]. Its `prev` field is the sha256 (hex) of
//! the exact bytes of the previous line, without its newline; the first
//! record's `prev` is [`GENESIS_PREV`] (64 zeros). [`AuditLog`] appends
//! records (one writer per file, flushed per record, fsync optional) and
//! [`verify`] walks a file and names the first record that is not what was
//! written.
//!
//! **No secret values.** A record carries identities (job, plugin, rotation
//! id), step names, outcomes, Vault *paths* and an error message, and has no
//! field that holds secret data. Error messages from rotations are already
//! redacted (see `secret::Redactor`); callers must pass only such messages.
//!
//! **What a chain cannot show.** Cutting records off the *end* of the file
//! leaves a valid, shorter chain: [`verify`] cannot detect it, nor a
//! well-formed edit of the very last record (no later `prev` covers it).
//! Compare [`VerifySummary::records`] and [`VerifySummary::last_hash`] with
//! a copy kept elsewhere (a log shipper, a periodic note in another system)
//! to catch that. Likewise an attacker who can rewrite the whole file can
//! rebuild a consistent chain; the chain proves integrity only relative to
//! a trusted later hash.

mod observer;
mod verify;

#[cfg(test)]
mod tests;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use verify::{TamperReason, Tampering, VerifyError, VerifySummary, verify, verify_reader};

/// `prev` of the first record in a file.
pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The sha256 (lowercase hex) of one line's bytes, without the newline:
/// what the next record's `prev` must be.
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
    /// Vault paths the step read or wrote (paths only, never values).
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

/// One line of the log: `seq`, `time`, the event's fields, `prev`, in that
/// order. [`verify`] accepts a line only in exactly the form this type
/// serializes to, so a field added to (or reformatted in) the last record,
/// which no later `prev` covers, is still noticed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// 1 for the first record of a file, then +1 per record.
    pub seq: u64,
    /// RFC 3339, UTC.
    pub time: String,
    #[serde(flatten)]
    pub event: AuditEvent,
    /// sha256 (hex) of the previous line's bytes; [`GENESIS_PREV`] first.
    pub prev: String,
}

impl AuditRecord {
    /// Parse one line (without its newline), refusing anything but the exact
    /// bytes [`AuditLog::append`] would have written for it.
    pub fn parse_line(line: &[u8]) -> Result<Self, String> {
        let record: Self = serde_json::from_slice(line).map_err(|e| e.to_string())?;
        if record.to_line() != line {
            return Err("not in the exact form the log writes (a field added, reordered or reformatted)".into());
        }
        Ok(record)
    }

    /// The record as one line of JSON, without the newline.
    fn to_line(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an audit record always serializes")
    }
}

/// How hard each append pushes the record to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AuditOptions {
    /// `fsync` (`sync_data`) after every record. Off by default: each record
    /// is written with one `write` and reaches the kernel at once, which
    /// survives a daemon crash but not a power loss.
    pub fsync: bool,
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
    #[error("the last record of audit log {} is not readable ({message}); check it with `rotator audit verify`", path.display())]
    Corrupt { path: PathBuf, message: String },
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
    prev: String,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").field("path", &self.inner.path).field("fsync", &self.inner.options.fsync).finish()
    }
}

impl AuditLog {
    /// [`open_with`](Self::open_with) default options (flush, no fsync).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, AuditError> {
        Self::open_with(path, AuditOptions::default())
    }

    /// Open `path` for appending: create it (mode 0600) if missing, or
    /// continue the chain after its last line. Only the last line is read;
    /// run [`verify`] to check the rest.
    pub fn open_with(path: impl AsRef<Path>, options: AuditOptions) -> Result<Self, AuditError> {
        let path = path.as_ref().to_path_buf();
        let open_error = |source| AuditError::Open { path: path.clone(), source };
        let file =
            OpenOptions::new().read(true).append(true).create(true).mode(0o600).open(&path).map_err(open_error)?;
        let len = file.metadata().map_err(open_error)?.len();
        let (next_seq, prev) = if len == 0 {
            (1, GENESIS_PREV.to_owned())
        } else {
            let last =
                last_line(&file, len).map_err(open_error)?.ok_or(AuditError::Unterminated { path: path.clone() })?;
            let record = AuditRecord::parse_line(&last)
                .map_err(|message| AuditError::Corrupt { path: path.clone(), message })?;
            (record.seq + 1, line_hash(&last))
        };
        let writer = Mutex::new(Writer { file, len, next_seq, prev });
        Ok(Self { inner: Arc::new(Inner { path, options, writer }) })
    }

    /// The file this log writes.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Append one record; returns its `seq`. On error nothing was recorded:
    /// a partly written line is cut off again, so the chain stays valid.
    pub fn append(&self, event: AuditEvent) -> Result<u64, AuditError> {
        let time = now_rfc3339();
        // A panic while holding the lock cannot leave the writer half-updated
        // (its fields change only after a successful write), so poison is moot.
        let mut w = self.inner.writer.lock().unwrap_or_else(|p| p.into_inner());
        let seq = w.next_seq;
        let mut line = AuditRecord { seq, time, event, prev: w.prev.clone() }.to_line();
        let hash = line_hash(&line);
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
        w.prev = hash;
        Ok(seq)
    }
}

/// Now, as RFC 3339 in UTC (`2025-01-31T12:00:00.123456789Z`).
fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("the current time always formats as RFC 3339")
}

/// The bytes of the file's last line without its newline, read backwards from
/// the end; `None` if the file does not end in a newline.
fn last_line(file: &File, len: u64) -> std::io::Result<Option<Vec<u8>>> {
    const CHUNK: u64 = 4096;
    let mut end = [0u8];
    file.read_exact_at(&mut end, len - 1)?;
    if end[0] != b'\n' {
        return Ok(None);
    }
    let mut line = Vec::new();
    let mut pos = len - 1;
    while pos > 0 {
        let start = pos.saturating_sub(CHUNK);
        let mut chunk = vec![0; (pos - start) as usize];
        file.read_exact_at(&mut chunk, start)?;
        let found = chunk.iter().rposition(|&b| b == b'\n');
        if let Some(i) = found {
            chunk.drain(..=i);
        }
        chunk.extend_from_slice(&line);
        line = chunk;
        if found.is_some() {
            break;
        }
        pos = start;
    }
    Ok(Some(line))
}
