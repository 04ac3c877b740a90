//! The job registry: every job the daemon knows right now, its record as
//! last read or written, whether it is rotating, and the one view of a job
//! the API and the dashboard show ([`JobView`]).
//!
//! The scheduler's loop adds and removes jobs, claims one for a run and
//! books what the run left; everything else only reads. `/status`,
//! `/scheduler/jobs` and `/jobs/{id}` read this registry (never a copy made
//! at startup), so a job added or removed through the API shows at once.
//! A clone is a handle on the same jobs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use time::OffsetDateTime;

use rotator_core::rotation::Job;
use rotator_core::schedule::spec::{Cadence, describe};
use rotator_core::state::{HistoryEntry, JobState};

/// The jobs the daemon knows. Cheap to clone; clones share the jobs.
#[derive(Clone, Default)]
pub struct Registry {
    jobs: Arc<Mutex<HashMap<String, Entry>>>,
}

struct Entry {
    job: Arc<Job>,
    /// The record as last read or written. Holds PENDING while a rotation
    /// runs: never shown, only summarized by [`JobView`].
    state: JobState,
    running: bool,
    last_started: Option<OffsetDateTime>,
}

/// A job as the API and dashboard show it (`/status`, `/scheduler/jobs`,
/// `/jobs/{id}`). No secret values.
#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    pub id: String,
    pub plugin: String,
    pub plugin_sha256: String,
    pub secret: Option<String>,
    /// `every 24h` or `cron 0 3 * * * (UTC)`, with the window if any.
    pub schedule: String,
    /// The interval of an interval job, in seconds; `null` for a cron job
    /// (the field stays, so clients of the Flask service that read it find
    /// it, and a null says "not an interval" where 0 would mislead).
    pub interval_seconds: Option<u64>,
    /// The cron expression of a cron job (UTC); `null` for an interval job.
    pub cron: Option<String>,
    pub enabled: bool,
    pub running: bool,
    pub needs_attention: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_rotation: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_due: Option<OffsetDateTime>,
    pub retries: u32,
    pub failed_cycles: u32,
    pub rotations: u64,
    pub last_error: Option<String>,
    /// `rotation id` and the last step completed, for an unfinished rotation.
    pub in_progress: Option<InProgress>,
    pub history: Vec<HistoryEntry>,
    /// The job's fields as given in the Flask service's format, which the
    /// API echoes beside these (issue 16); not serialised here.
    #[serde(skip)]
    pub given: Option<Arc<serde_json::Map<String, serde_json::Value>>>,
}

/// An unfinished rotation as a [`JobView`] shows it, without its value.
#[derive(Debug, Clone, Serialize)]
pub struct InProgress {
    pub id: String,
    pub stage: &'static str,
    pub attempt: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub started: OffsetDateTime,
}

/// Why a job could not be claimed for a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Unclaimed {
    Unknown,
    Busy,
    /// A `not_within` partner ran too recently (or runs now): not before this.
    Blocked(OffsetDateTime),
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every job, by id.
    pub fn views(&self) -> Vec<JobView> {
        let mut out: Vec<JobView> = self.lock().values().map(view).collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// The job `id`, if the daemon knows it.
    pub fn view(&self, id: &str) -> Option<JobView> {
        self.lock().get(id).map(view)
    }

    /// The ids of the jobs `select` picks, and whether each is rotating.
    pub fn ids_where(&self, select: impl Fn(&str) -> bool) -> Vec<(String, bool)> {
        self.lock().iter().filter(|(id, _)| select(id)).map(|(id, e)| (id.clone(), e.running)).collect()
    }

    /// Whether the daemon knows the job `id`.
    pub fn contains(&self, id: &str) -> bool {
        self.lock().contains_key(id)
    }

    /// Add `job` with an empty record; false if its id is taken.
    pub(super) fn insert(&self, job: Job) -> bool {
        let mut jobs = self.lock();
        if jobs.contains_key(&job.config.id) {
            return false;
        }
        let entry = Entry { job: Arc::new(job), state: JobState::default(), running: false, last_started: None };
        jobs.insert(entry.job.config.id.clone(), entry);
        true
    }

    /// Swap in a new definition of a known job, keeping its state and its
    /// running mark: a run in progress holds the old definition and ends on
    /// it. False if the id is unknown.
    pub(super) fn replace(&self, job: Job) -> bool {
        match self.lock().get_mut(&job.config.id) {
            Some(entry) => {
                entry.job = Arc::new(job);
                true
            }
            None => false,
        }
    }

    pub(super) fn remove(&self, id: &str) -> bool {
        self.lock().remove(id).is_some()
    }

    pub fn job(&self, id: &str) -> Option<Arc<Job>> {
        self.lock().get(id).map(|e| e.job.clone())
    }

    /// The job's record as last read or written (empty if unknown).
    pub(super) fn state(&self, id: &str) -> JobState {
        self.lock().get(id).map(|e| e.state.clone()).unwrap_or_default()
    }

    pub(super) fn set_state(&self, id: &str, state: JobState) {
        if let Some(e) = self.lock().get_mut(id) {
            e.state = state;
        }
    }

    /// Mark the job running, unless it is unknown, running already, or a
    /// `not_within` partner blocks it at `now`. One lock for the check and
    /// the mark, so two paired jobs cannot both pass.
    pub(super) fn claim(&self, id: &str, now: OffsetDateTime) -> Result<Arc<Job>, Unclaimed> {
        let mut jobs = self.lock();
        let entry = jobs.get(id).ok_or(Unclaimed::Unknown)?;
        if entry.running {
            return Err(Unclaimed::Busy);
        }
        if let Some(until) = blocked_until(&jobs, id, now) {
            return Err(Unclaimed::Blocked(until));
        }
        let entry = jobs.get_mut(id).expect("checked above");
        entry.running = true;
        entry.last_started = Some(now);
        Ok(entry.job.clone())
    }

    /// The run of `id` ended.
    pub(super) fn release(&self, id: &str) {
        if let Some(e) = self.lock().get_mut(id) {
            e.running = false;
        }
    }
}

/// When `id` may start, if a `not_within` partner is running or started
/// too recently. Pairs work both ways, whichever job names the other.
fn blocked_until(jobs: &HashMap<String, Entry>, id: &str, now: OffsetDateTime) -> Option<OffsetDateTime> {
    let me = jobs.get(id)?;
    let mine = me.job.config.schedule.not_within.iter().map(|n| (n.job.as_str(), n.duration));
    let theirs = jobs.iter().flat_map(|(other_id, other)| {
        other
            .job
            .config
            .schedule
            .not_within
            .iter()
            .filter(|n| n.job == id)
            .map(move |n| (other_id.as_str(), n.duration))
    });
    mine.chain(theirs)
        .filter_map(|(other, apart)| {
            let other = jobs.get(other)?;
            match (other.running, other.last_started) {
                (true, _) => Some(now + apart),
                (false, Some(t)) if now < t + apart => Some(t + apart),
                _ => None,
            }
        })
        .max()
}

fn view(e: &Entry) -> JobView {
    let s = &e.state;
    let schedule = &e.job.config.schedule;
    let (interval_seconds, cron) = match &schedule.cadence {
        Cadence::Interval(d) => (Some(d.as_secs()), None),
        Cadence::Cron(c) => (None, Some(c.to_string())),
    };
    JobView {
        id: e.job.config.id.clone(),
        plugin: e.job.plugin.label(),
        plugin_sha256: e.job.plugin.sha256().to_owned(),
        secret: e.job.config.secret.as_ref().map(ToString::to_string),
        schedule: describe(schedule),
        interval_seconds,
        cron,
        enabled: e.job.config.enabled,
        running: e.running,
        needs_attention: s.needs_attention,
        last_rotation: s.last_rotation,
        next_due: if s.needs_attention { None } else { s.next_due },
        retries: s.retries,
        failed_cycles: s.failed_cycles,
        rotations: s.rotations,
        last_error: s.last_error.clone(),
        in_progress: s.in_progress.as_ref().map(|p| InProgress {
            id: p.id.clone(),
            stage: p.stage.as_str(),
            attempt: p.attempt,
            started: p.started,
        }),
        history: s.history.clone(),
        given: e.job.config.given.clone(),
    }
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
