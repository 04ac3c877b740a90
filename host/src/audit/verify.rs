//! Walking an audit log's hash chain and naming the first record that is not
//! what was written.
//!
//! Each line is checked in order: it is complete (ends in a newline), it is
//! an [`AuditRecord`] in exactly the form the log writes, its `seq` follows
//! the previous one, its `prev` is the sha256 of the previous line, and its
//! `time` is RFC 3339. A `prev` mismatch on line N means line N-1 was changed
//! *or* line N's `prev` was; line N+1 decides which (if its `prev` matches
//! line N, line N is intact).
//!
//! Truncating the end of the file is not detectable here: see the module
//! docs of [`crate::audit`].

use std::fmt;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use super::{AuditRecord, GENESIS_PREV, line_hash};

/// A chain that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifySummary {
    /// Records in the file.
    pub records: u64,
    /// `seq` of the last record (`None` for an empty file).
    pub last_seq: Option<u64>,
    /// sha256 of the last line ([`GENESIS_PREV`] for an empty file): keep it
    /// elsewhere to detect a later truncation.
    pub last_hash: String,
}

/// The first record that is not what was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tampering {
    /// 1-based line number in the file.
    pub line: u64,
    /// The record's `seq` as written, or, when the line has no readable
    /// `seq`, the one expected at that position.
    pub seq: u64,
    pub reason: TamperReason,
}

impl fmt::Display for Tampering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {} (seq {}): {}", self.line, self.seq, self.reason)
    }
}

/// Why a record is taken as tampered with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TamperReason {
    #[error("not a valid audit record ({0})")]
    NotARecord(String),
    #[error("incomplete last line (no newline): a write was cut short or the file was cut")]
    Unterminated,
    #[error("seq {found} where {expected} was expected: records were removed, inserted or reordered")]
    SeqGap { expected: u64, found: u64 },
    #[error("`prev` of the first record is not the all-zero start value: records before it were removed")]
    BadStart,
    #[error("record was changed after it was written: its sha256 does not match `prev` in line {next_line}")]
    Changed { next_line: u64 },
    #[error("`prev` does not match the sha256 of line {prev_line}, and its own sha256 is not the next line's `prev`")]
    PrevMismatch { prev_line: u64 },
    #[error("`time` is not an RFC 3339 timestamp ({0})")]
    BadTime(String),
}

/// Why a file could not be verified.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot read audit log {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("tampered: {0}")]
    Tampered(Tampering),
}

/// Verify the chain in the file at `path`.
pub fn verify(path: &Path) -> Result<VerifySummary, VerifyError> {
    let io = |source| VerifyError::Io { path: path.to_path_buf(), source };
    let file = std::fs::File::open(path).map_err(io)?;
    verify_reader(std::io::BufReader::new(file)).map_err(|e| match e {
        VerifyError::Io { source, .. } => io(source),
        tampered => tampered,
    })
}

/// [`verify`] over any reader (errors carry an empty path).
pub fn verify_reader(reader: impl BufRead) -> Result<VerifySummary, VerifyError> {
    let mut lines = Lines { reader, number: 0 };
    // (line number, seq, sha256) of the last good record.
    let mut last: Option<(u64, u64, String)> = None;
    let mut pending = lines.next()?;
    while let Some(line) = pending.take() {
        let expected_seq = last.as_ref().map_or(1, |(_, seq, _)| seq + 1);
        let tampered = |seq, reason| Err(VerifyError::Tampered(Tampering { line: line.number, seq, reason }));
        if !line.terminated {
            return tampered(seq_guess(&line.bytes, expected_seq), TamperReason::Unterminated);
        }
        let record = match AuditRecord::parse_line(&line.bytes) {
            Ok(r) => r,
            Err(why) => return tampered(seq_guess(&line.bytes, expected_seq), TamperReason::NotARecord(why)),
        };
        if record.seq != expected_seq {
            return tampered(record.seq, TamperReason::SeqGap { expected: expected_seq, found: record.seq });
        }
        let hash = line_hash(&line.bytes);
        pending = lines.next()?;
        match &last {
            None if record.prev != GENESIS_PREV => return tampered(record.seq, TamperReason::BadStart),
            Some((prev_line, prev_seq, prev_hash)) if record.prev != *prev_hash => {
                let next_vouches = pending.as_ref().is_some_and(|next| prev_field(&next.bytes) == Some(hash.clone()));
                return if next_vouches || pending.is_none() {
                    // This line is intact (or nothing says otherwise): the
                    // one before it changed.
                    Err(VerifyError::Tampered(Tampering {
                        line: *prev_line,
                        seq: *prev_seq,
                        reason: TamperReason::Changed { next_line: line.number },
                    }))
                } else {
                    tampered(record.seq, TamperReason::PrevMismatch { prev_line: *prev_line })
                };
            }
            _ => {}
        }
        if let Err(e) = time::OffsetDateTime::parse(&record.time, &time::format_description::well_known::Rfc3339) {
            return tampered(record.seq, TamperReason::BadTime(e.to_string()));
        }
        last = Some((line.number, record.seq, hash));
    }
    Ok(match last {
        Some((number, seq, hash)) => VerifySummary { records: number, last_seq: Some(seq), last_hash: hash },
        None => VerifySummary { records: 0, last_seq: None, last_hash: GENESIS_PREV.to_owned() },
    })
}

/// The `seq` of a line that is JSON but not a valid record, else `expected`.
fn seq_guess(bytes: &[u8], expected: u64) -> u64 {
    serde_json::from_slice::<serde_json::Value>(bytes).ok().and_then(|v| v["seq"].as_u64()).unwrap_or(expected)
}

/// The `prev` field of a line, if it has one.
fn prev_field(bytes: &[u8]) -> Option<String> {
    serde_json::from_slice::<serde_json::Value>(bytes).ok().and_then(|v| v["prev"].as_str().map(str::to_owned))
}

struct Line {
    number: u64,
    /// Without the newline.
    bytes: Vec<u8>,
    terminated: bool,
}

/// Lines as exact bytes (not `BufRead::lines`, which would drop `\r` and
/// reject invalid UTF-8 instead of letting the record check report it).
struct Lines<R> {
    reader: R,
    number: u64,
}

impl<R: BufRead> Lines<R> {
    fn next(&mut self) -> Result<Option<Line>, VerifyError> {
        let mut bytes = Vec::new();
        let n = self
            .reader
            .read_until(b'\n', &mut bytes)
            .map_err(|source| VerifyError::Io { path: PathBuf::new(), source })?;
        if n == 0 {
            return Ok(None);
        }
        let terminated = bytes.last() == Some(&b'\n');
        if terminated {
            bytes.pop();
        }
        self.number += 1;
        Ok(Some(Line { number: self.number, bytes, terminated }))
    }
}
