//! Walking an audit log's chain and naming the first record that is not
//! what was written.
//!
//! Each line is checked in order: it is complete (ends in a newline) and at
//! most [`MAX_LINE_BYTES`], it is an [`AuditRecord`] in exactly the form the
//! log writes, it is of the log's kind (keyed records carry `mac`; with a
//! key, every record must), its `seq` follows the previous one, its `mac`
//! (keyed) is right, its `prev` is the previous record's hash, and its
//! `time` is RFC 3339.
//!
//! Who is blamed: in a keyed log each record's own MAC says whether *it*
//! changed, so a wrong `prev` with a right MAC means records around it were
//! removed, inserted or copied from elsewhere. In an unkeyed log a `prev`
//! mismatch on line N means line N-1 was changed *or* line N's `prev` was;
//! line N+1 decides which (if its `prev` matches line N, line N is intact).
//!
//! Cutting off the end is not detectable from the file alone: the caller
//! asks for the hashes at the anchored `seq`s ([`VerifyOptions::hashes_at`])
//! and hands the result to [`super::check_anchors`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

use super::{AuditKey, AuditRecord, GENESIS_PREV, MAX_LINE_BYTES};

/// What to verify with, and what to report beyond pass or fail.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// The chain's key: every record must carry a MAC made with it. Without
    /// a key, only an unkeyed log can be verified.
    pub key: Option<AuditKey>,
    /// The `seq`s whose hashes [`VerifySummary::hashes`] should hold (those
    /// that anchors name).
    pub hashes_at: BTreeSet<u64>,
}

/// A chain that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifySummary {
    /// Records in the file.
    pub records: u64,
    /// `seq` of the last record (`None` for an empty file).
    pub last_seq: Option<u64>,
    /// The last record's hash ([`GENESIS_PREV`] for an empty file).
    pub last_hash: String,
    /// Whether the records carry MACs (all of them checked with the key).
    pub keyed: bool,
    /// The first record's hash, which names the log in anchors.
    pub log: Option<String>,
    /// The hash at each `seq` asked for that the file has.
    pub hashes: BTreeMap<u64, String>,
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
    #[error("line longer than {MAX_LINE_BYTES} bytes, which the log never writes")]
    TooLong,
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
    #[error(
        "record has no `mac` but the log is verified with a key: an unkeyed record in a keyed log was forged, or the log rebuilt without the key"
    )]
    Unkeyed,
    #[error("record has a `mac` but the log started unkeyed: the kinds are never mixed")]
    Mixed,
    #[error("`mac` is wrong: the record was changed after it was written, or written with another key")]
    BadMac,
    #[error("`prev` is not the MAC of line {prev_line}: records were removed, inserted or copied from another log")]
    NotLinked { prev_line: u64 },
}

/// Why a file could not be verified.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot read audit log {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("tampered: {0}")]
    Tampered(Tampering),
    #[error(
        "the log is keyed (line {line} carries a `mac`): verify it with its key, `--config` naming [daemon] audit_key"
    )]
    NeedsKey { line: u64 },
}

/// Verify the unkeyed chain in the file at `path`.
pub fn verify(path: &Path) -> Result<VerifySummary, VerifyError> {
    verify_with(path, &VerifyOptions::default())
}

/// Verify the chain in the file at `path` as `options` say.
pub fn verify_with(path: &Path, options: &VerifyOptions) -> Result<VerifySummary, VerifyError> {
    let io = |source| VerifyError::Io { path: path.to_path_buf(), source };
    let file = std::fs::File::open(path).map_err(io)?;
    verify_reader(std::io::BufReader::new(file), options).map_err(|e| match e {
        VerifyError::Io { source, .. } => io(source),
        other => other,
    })
}

/// The last good record: where it is and what it hashes to.
struct Good {
    line: u64,
    seq: u64,
    hash: String,
}

/// [`verify_with`] over any reader (errors carry an empty path).
pub fn verify_reader(reader: impl BufRead, options: &VerifyOptions) -> Result<VerifySummary, VerifyError> {
    let mut lines = Lines { reader, number: 0 };
    let mut last: Option<Good> = None;
    let mut summary = VerifySummary {
        records: 0,
        last_seq: None,
        last_hash: GENESIS_PREV.to_owned(),
        keyed: options.key.is_some(),
        log: None,
        hashes: BTreeMap::new(),
    };
    let mut pending = lines.next()?;
    while let Some(line) = pending.take() {
        let expected_seq = last.as_ref().map_or(1, |g| g.seq + 1);
        let tampered = |seq, reason| Err(VerifyError::Tampered(Tampering { line: line.number, seq, reason }));
        match line.end {
            End::Newline => {}
            End::Eof => return tampered(seq_guess(&line.bytes, expected_seq), TamperReason::Unterminated),
            End::TooLong => return tampered(expected_seq, TamperReason::TooLong),
        }
        let record = match AuditRecord::parse_line(&line.bytes) {
            Ok(r) => r,
            Err(why) => {
                return tampered(seq_guess(&line.bytes, expected_seq), TamperReason::NotARecord(why.to_string()));
            }
        };
        match (&options.key, record.mac.is_some(), &last) {
            (Some(_), false, _) => return tampered(record.seq, TamperReason::Unkeyed),
            (None, true, None) => return Err(VerifyError::NeedsKey { line: line.number }),
            (None, true, Some(_)) => return tampered(record.seq, TamperReason::Mixed),
            _ => {}
        }
        if record.seq != expected_seq {
            return tampered(record.seq, TamperReason::SeqGap { expected: expected_seq, found: record.seq });
        }
        let hash = record.hash(&line.bytes);
        pending = lines.next()?;
        match (&options.key, &last) {
            (Some(key), _) if !record.mac_matches(key) => return tampered(record.seq, TamperReason::BadMac),
            (_, None) if record.prev != GENESIS_PREV => return tampered(record.seq, TamperReason::BadStart),
            (Some(_), Some(prev)) if record.prev != prev.hash => {
                return tampered(record.seq, TamperReason::NotLinked { prev_line: prev.line });
            }
            (None, Some(prev)) if record.prev != prev.hash => {
                let next_vouches = pending.as_ref().is_some_and(|next| prev_field(&next.bytes) == Some(hash.clone()));
                return if next_vouches || pending.is_none() {
                    // This line is intact (or nothing says otherwise): the
                    // one before it changed.
                    Err(VerifyError::Tampered(Tampering {
                        line: prev.line,
                        seq: prev.seq,
                        reason: TamperReason::Changed { next_line: line.number },
                    }))
                } else {
                    tampered(record.seq, TamperReason::PrevMismatch { prev_line: prev.line })
                };
            }
            _ => {}
        }
        if let Err(e) = time::OffsetDateTime::parse(&record.time, &time::format_description::well_known::Rfc3339) {
            return tampered(record.seq, TamperReason::BadTime(e.to_string()));
        }
        if summary.log.is_none() {
            summary.log = Some(hash.clone());
        }
        if options.hashes_at.contains(&record.seq) {
            summary.hashes.insert(record.seq, hash.clone());
        }
        last = Some(Good { line: line.number, seq: record.seq, hash });
    }
    if let Some(good) = last {
        summary.records = good.line;
        summary.last_seq = Some(good.seq);
        summary.last_hash = good.hash;
    }
    Ok(summary)
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
    end: End,
}

/// How a line ended.
enum End {
    Newline,
    /// The file ended first.
    Eof,
    /// [`MAX_LINE_BYTES`] passed first (the rest was not read).
    TooLong,
}

/// Lines as exact bytes (not `BufRead::lines`, which would drop `\r` and
/// reject invalid UTF-8 instead of letting the record check report it),
/// each read no further than [`MAX_LINE_BYTES`].
struct Lines<R> {
    reader: R,
    number: u64,
}

impl<R: BufRead> Lines<R> {
    fn next(&mut self) -> Result<Option<Line>, VerifyError> {
        let mut bytes = Vec::new();
        let limit = MAX_LINE_BYTES as u64 + 1;
        let n = (&mut self.reader)
            .take(limit)
            .read_until(b'\n', &mut bytes)
            .map_err(|source| VerifyError::Io { path: PathBuf::new(), source })?;
        if n == 0 {
            return Ok(None);
        }
        let end = if bytes.last() == Some(&b'\n') {
            bytes.pop();
            End::Newline
        } else if n as u64 == limit {
            End::TooLong
        } else {
            End::Eof
        };
        self.number += 1;
        Ok(Some(Line { number: self.number, bytes, end }))
    }
}
