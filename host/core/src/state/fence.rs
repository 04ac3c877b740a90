//! Fencing: when several daemons share the jobs (`[daemon] replicas`), only
//! the replica that owns a job may write its record or act on its target,
//! and a replica that lost ownership while it was paused must not complete
//! a write when it wakes.
//!
//! Two checks do it, both cheap:
//! - **Before acting**, the [`Guard`] (the daemon's ownership table) says
//!   whether this process still owns the job, by its own monotonic clock:
//!   ownership ends a safety margin before any other replica may take over.
//! - **In the record**, every write carries the writer's [`Fence`]
//!   (replica, epoch); epochs only grow, one per change of owner. A write is
//!   refused when the record read already carries a newer epoch, and every
//!   write is check-and-set against the version read, so a paused replica's
//!   write based on a record that a newer owner has since written fails.
//!
//! What remains is the window between the guard's check and the action it
//! allows: a pause longer than the margin landing exactly there. The new
//! owner then resumes the same rotation (same id, same PENDING), so a late
//! `set` repeats a value that is already recorded; docs/architecture.md
//! ("Replicas") states the limit.

use serde::{Deserialize, Serialize};

/// Who wrote a record, under which ownership epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fence {
    /// The writing replica's id.
    pub replica: String,
    /// Its ownership epoch for the job's shard when it wrote.
    pub epoch: u64,
}

/// Why this process may not write a job's record or act on its target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Fenced(pub String);

/// The right to act on a job, asked before every record write and every
/// step that touches a target.
pub trait Guard: Send + Sync + std::fmt::Debug {
    /// This replica's fence for `job` if it owns the job right now.
    fn check(&self, job: &str) -> Result<Fence, Fenced>;
}

/// The fence to write with, given the one on the record read (`stored`) and
/// ours: refused when the record is already from a newer epoch.
pub fn admit(stored: Option<&Fence>, mine: Fence) -> Result<Fence, Fenced> {
    match stored {
        Some(s) if s.epoch > mine.epoch => Err(Fenced(format!(
            "the record was written by replica `{}` under epoch {}, newer than this replica's epoch {}",
            s.replica, s.epoch, mine.epoch
        ))),
        _ => Ok(mine),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn fence(epoch: u64) -> Fence {
        Fence { replica: format!("r{epoch}"), epoch }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]
        /// Over any order of attempted writes, the epochs that land on a
        /// record never go down.
        #[test]
        fn epochs_on_a_record_never_go_down(writes in proptest::collection::vec(0u64..20, 0..64)) {
            let mut stored: Option<Fence> = None;
            let mut landed = Vec::new();
            for e in writes {
                if let Ok(f) = admit(stored.as_ref(), fence(e)) {
                    landed.push(f.epoch);
                    stored = Some(f);
                }
            }
            prop_assert!(landed.windows(2).all(|w| w[0] <= w[1]), "{:?}", landed);
        }
    }

    #[test]
    fn an_older_epoch_is_refused_and_says_by_whom() {
        let err = admit(Some(&fence(7)), fence(3)).unwrap_err();
        assert!(err.0.contains("`r7`") && err.0.contains("epoch 7") && err.0.contains("epoch 3"), "{err}");
        assert_eq!(admit(Some(&fence(3)), fence(3)).unwrap().epoch, 3);
        assert_eq!(admit(None, fence(1)).unwrap().epoch, 1);
    }
}
