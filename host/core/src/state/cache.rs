//! The records this process last read or wrote, so a rotation can start
//! without reading its job's record back from the store (issue 15: one
//! Vault round trip of the five a kv-random rotation makes).
//!
//! Why it is safe: every record write is check-and-set against the version
//! it is based on. A record someone else wrote since (another process, an
//! operator, a replica that owned the job in between) has a newer version,
//! so the first write based on a stale entry is refused and nothing is
//! overwritten; the rotation then reads the record afresh
//! (`protocol::Driver::begin`). Two rules keep that the only way an entry
//! can be wrong:
//! - **Only idle records.** An entry is kept only when no rotation is in
//!   progress, so it never holds a PENDING value and a cached start never
//!   skips a resume this process knows about.
//! - **Tied to the ownership epoch.** With replicas, an entry is used only
//!   under the epoch it was kept under: a job whose shard moved away and
//!   back is read afresh, as a takeover must.
//!
//! The cache is bounded ([`CAPACITY`]); beyond it an arbitrary entry makes
//! room, which costs that job one read at its next rotation, nothing more.

use std::collections::HashMap;
use std::sync::Mutex;

use super::Versioned;
use crate::store::StoreVersion;

/// Records kept at most: about 2-6 KiB each (the history is most of it).
pub const CAPACITY: usize = 16_384;

#[derive(Default)]
pub(super) struct RecordCache {
    entries: Mutex<HashMap<String, Entry>>,
}

/// A count, not the records: `StateStore`'s `Debug` would otherwise print
/// up to [`CAPACITY`] schedules and histories.
impl std::fmt::Debug for RecordCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kept = self.entries.lock().map_or(0, |e| e.len());
        f.debug_struct("RecordCache").field("kept", &kept).finish()
    }
}

struct Entry {
    state: super::JobState,
    version: StoreVersion,
    /// The ownership epoch it was read or written under (`None`: no replicas).
    epoch: Option<u64>,
}

impl RecordCache {
    /// `job`'s record as last seen under `epoch`, if kept.
    pub(super) fn get(&self, job: &str, epoch: Option<u64>) -> Option<Versioned> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let e = entries.get(job).filter(|e| e.epoch == epoch)?;
        Some(Versioned { state: e.state.clone(), version: Some(e.version.clone()) })
    }

    /// Remember `v` as `job`'s record under `epoch`, or forget the job if
    /// `v` has a rotation in progress or no version.
    pub(super) fn put(&self, job: &str, v: &Versioned, epoch: Option<u64>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (Some(version), None) = (&v.version, &v.state.in_progress) else {
            entries.remove(job);
            return;
        };
        if entries.len() >= CAPACITY && !entries.contains_key(job) {
            let victim = entries.keys().next().cloned();
            if let Some(victim) = victim {
                entries.remove(&victim);
            }
        }
        entries.insert(job.to_owned(), Entry { state: v.state.clone(), version: version.clone(), epoch });
    }

    /// Forget `job`'s record: a write failed, so its version is unknown.
    pub(super) fn forget(&self, job: &str) {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).remove(job);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::secret::SecretJson;
    use crate::state::{InProgress, JobState, Stage};

    fn idle(rotations: u64, version: u64) -> Versioned {
        Versioned { state: JobState { rotations, ..JobState::default() }, version: Some(StoreVersion::Kv(version)) }
    }

    fn in_progress() -> Versioned {
        let mut v = idle(1, 2);
        v.state.in_progress = Some(InProgress {
            id: "r".into(),
            stage: Stage::Staged,
            started: time::OffsetDateTime::UNIX_EPOCH,
            attempt: 1,
            base_version: None,
            new_version: None,
            error: None,
            actor: "cli".into(),
            adoption_since: None,
            pending: Some(SecretJson::new(r#"{"password":"cache-must-not-hold-this"}"#.into())),
        });
        v
    }

    #[test]
    fn a_record_with_a_rotation_in_progress_is_never_kept() {
        let cache = RecordCache::default();
        cache.put("a", &idle(1, 1), None);
        cache.put("a", &in_progress(), None);
        assert!(cache.get("a", None).is_none(), "the older idle entry is gone too");
        assert_eq!(format!("{cache:?}"), "RecordCache { kept: 0 }");
    }

    #[test]
    fn an_entry_is_used_only_under_the_epoch_it_was_kept_under() {
        let cache = RecordCache::default();
        cache.put("a", &idle(3, 7), Some(4));
        assert!(cache.get("a", Some(5)).is_none());
        assert!(cache.get("a", None).is_none());
        let got = cache.get("a", Some(4)).unwrap();
        assert_eq!((got.state.rotations, got.version), (3, Some(StoreVersion::Kv(7))));
    }

    proptest! {
        /// Whatever the order of keeps and forgets: the cache never grows
        /// past its bound, and what it returns is the last idle record put
        /// for that job, never an older one and never after a forget or a
        /// record in progress.
        #[test]
        fn the_cache_returns_only_the_last_idle_record(ops in proptest::collection::vec((0u8..3, 0u16..40), 1..400)) {
            let cache = RecordCache::default();
            let mut model: HashMap<String, u64> = HashMap::new();
            for (i, (op, job)) in ops.into_iter().enumerate() {
                let job = format!("job-{job}");
                match op {
                    0 => { cache.put(&job, &idle(i as u64, i as u64), None); model.insert(job.clone(), i as u64); }
                    1 => { cache.put(&job, &in_progress(), None); model.remove(&job); }
                    _ => { cache.forget(&job); model.remove(&job); }
                }
                let got = cache.get(&job, None).map(|v| v.state.rotations);
                prop_assert_eq!(got, model.get(&job).copied());
                prop_assert!(cache.len() <= CAPACITY);
            }
        }
    }

    #[test]
    fn a_full_cache_makes_room_and_stays_bounded() {
        let cache = RecordCache::default();
        for i in 0..CAPACITY + 10 {
            cache.put(&format!("job-{i}"), &idle(i as u64, 1), None);
        }
        assert_eq!(cache.len(), CAPACITY);
        let last = format!("job-{}", CAPACITY + 9);
        assert_eq!(cache.get(&last, None).unwrap().state.rotations, (CAPACITY + 9) as u64);
    }
}
