//! Comparing a log file with the anchors Vault holds for it: the one check
//! that sees records cut off the end (or a whole file replaced), which no
//! chain can show by itself.
//!
//! Anchors live in the jobs' state records ([`JobState::audit_anchor`]).
//! [`read_anchors`] lists the state prefix (jobs added at run time have
//! records too) and reads each record. Read them *before* the file: every
//! anchor names a record that was already in the file when it was stored,
//! so a file read afterwards holds it even while the daemon keeps writing.
//!
//! [`JobState::audit_anchor`]: crate::state::JobState::audit_anchor

use std::fmt;
use std::path::Path;

use super::{AuditAnchor, AuditKey, VerifyError, VerifyOptions, VerifySummary, verify_with};
use crate::state::{StateError, StateStore};

/// One job's anchor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobAnchor {
    pub job: String,
    pub anchor: AuditAnchor,
}

/// The anchors found in Vault.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Anchors {
    /// Sorted by job id.
    pub anchors: Vec<JobAnchor>,
    /// Whether the state prefix could be listed. If not, only the jobs the
    /// caller named were read (jobs added through the API are missed).
    pub listed: bool,
}

impl Anchors {
    /// The `seq`s the anchors name (what to ask `verify` for).
    pub fn seqs(&self) -> std::collections::BTreeSet<u64> {
        self.anchors.iter().map(|a| a.anchor.seq).collect()
    }

    /// The anchor with the highest `seq`.
    pub fn newest(&self) -> Option<&JobAnchor> {
        self.anchors.iter().max_by_key(|a| a.anchor.seq)
    }
}

/// Why the anchors could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AnchorReadError {
    #[error("listing the job state records: {0}")]
    List(#[source] StateError),
    #[error(transparent)]
    State(#[from] StateError),
}

/// Every job's anchor under `store`: the jobs its prefix lists, plus
/// `known` (the config's jobs, in case listing is not allowed).
pub async fn read_anchors(store: &StateStore, known: &[String]) -> Result<Anchors, AnchorReadError> {
    let mut jobs: Vec<String> = known.to_vec();
    let listed = match store.list_jobs().await.map_err(AnchorReadError::List)? {
        Some(listed) => {
            jobs.extend(listed);
            true
        }
        None => false,
    };
    jobs.sort();
    jobs.dedup();
    let mut anchors = Vec::new();
    for job in jobs {
        if let Some(anchor) = store.load(&job).await?.state.audit_anchor {
            anchors.push(JobAnchor { job, anchor });
        }
    }
    Ok(Anchors { anchors, listed })
}

/// An anchor the file does not agree with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnchorProblem {
    /// The file ends before the anchored record.
    Truncated { anchor: JobAnchor, file_ends_at: u64 },
    /// The file has another record at the anchored `seq`.
    Rewritten { anchor: JobAnchor, found: String },
    /// The anchor is about a log that starts with another record: this
    /// file replaced the one the daemon wrote (or that one was moved aside
    /// and the job has not rotated since).
    OtherLog { anchor: JobAnchor, file_log: String },
}

impl fmt::Display for AnchorProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let said = |a: &JobAnchor| format!("anchor for job {} says seq {} hash {}", a.job, a.anchor.seq, a.anchor.hash);
        match self {
            Self::Truncated { anchor, file_ends_at } => {
                write!(f, "truncated: {}, file ends at seq {file_ends_at}", said(anchor))
            }
            Self::Rewritten { anchor, found } => {
                write!(f, "rewritten: {}, the file's record {} hashes to {found}", said(anchor), anchor.anchor.seq)
            }
            Self::OtherLog { anchor, file_log } => write!(
                f,
                "replaced: {}, in a log whose first record hashes to {}; this file's first record hashes to {file_log}",
                said(anchor),
                anchor.anchor.log
            ),
        }
    }
}

/// A file that verified, and what the anchors say against it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchored {
    pub summary: VerifySummary,
    /// Empty when every anchor agrees with the file.
    pub problems: Vec<AnchorProblem>,
}

/// Verify the chain in `path` (with `key`, if given) and compare it with
/// `anchors` (read before the file; see the module docs).
pub fn verify_anchored(path: &Path, key: Option<AuditKey>, anchors: &Anchors) -> Result<Anchored, VerifyError> {
    let options = VerifyOptions { key, hashes_at: anchors.seqs() };
    let summary = verify_with(path, &options)?;
    let problems = check_anchors(&summary, anchors);
    Ok(Anchored { summary, problems })
}

/// What each anchor says that the verified file (`summary`, made with
/// [`Anchors::seqs`] as its `hashes_at`) contradicts, in job order.
pub(super) fn check_anchors(summary: &VerifySummary, anchors: &Anchors) -> Vec<AnchorProblem> {
    let file_ends_at = summary.last_seq.unwrap_or(0);
    let mut problems = Vec::new();
    for a in &anchors.anchors {
        let anchor = a.clone();
        let problem = match &summary.log {
            // An empty file is the shortest cut, whatever log it once was.
            Some(log) if *log != a.anchor.log => Some(AnchorProblem::OtherLog { anchor, file_log: log.clone() }),
            _ if a.anchor.seq > file_ends_at || a.anchor.seq == 0 => {
                Some(AnchorProblem::Truncated { anchor, file_ends_at })
            }
            _ => match summary.hashes.get(&a.anchor.seq) {
                Some(found) if *found == a.anchor.hash => None,
                found => {
                    let found = found.cloned().unwrap_or_else(|| "(not asked for)".into());
                    Some(AnchorProblem::Rewritten { anchor, found })
                }
            },
        };
        problems.extend(problem);
    }
    problems
}
