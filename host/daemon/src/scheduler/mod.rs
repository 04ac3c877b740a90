//! The running scheduler: every job's next run in one deadline queue, the
//! state of each job mirrored from (and persisted to) Vault, a global limit
//! on concurrent rotations, `not_within` pairs, retries and `rotate now`.
//! The jobs themselves and the views the API shows of them are in the
//! [`registry`]; this module decides when each runs.
//!
//! Flow: [`Scheduler::add`] reads a job's record from Vault and queues its
//! next run (an unfinished rotation is due at once, so it is resumed). The
//! loop in [`Scheduler::run`] pops due jobs and spawns a rotation for each;
//! the rotation's final state write carries the schedule's bookkeeping (see
//! [`rotator_core::schedule::cycle`]), and the job is queued again from the record. Shutdown
//! ([`Scheduler::stop`]) stops popping and waits for running rotations: a
//! started rotation always ends (or stays staged in Vault for the next run),
//! and a run still waiting for a concurrency slot never starts.

pub mod feed;
pub mod queue;
pub mod registry;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use queue::DeadlineQueue;
use registry::{Registry, Unclaimed};
use rotator_core::metrics::Metrics;
use rotator_core::rotation::{Job, Observer, RotateOptions, Rotation, RotationError, RotationEvent, RotationReport};
use rotator_core::schedule::cycle::{self, Due, RunOutcome};
use rotator_core::state::{JobState, StateStore, Versioned};
use rotator_core::supervise::{self, Panicked};

/// Which jobs this daemon may run, when replicas share them (the
/// replicas' ownership table); without one, every job is ours.
pub trait Ownership: Send + Sync {
    /// Whether this daemon owns `job` right now.
    fn owns(&self, job: &str) -> bool;
    /// Who does, for callers sent elsewhere: the owner's id and, if it
    /// published one, its API address.
    fn owner(&self, job: &str) -> Option<(String, Option<String>)>;
}

/// How long to wait before trying again when Vault could not be asked
/// about a job at all: 30 s, or the job's interval if shorter (a job that
/// rotates every few seconds would otherwise miss several slots).
const UNREACHABLE_RETRY: Duration = Duration::from_secs(30);

/// How often a rotation waiting for its consumers (the adoption gate) is
/// looked at again; an acknowledgement through the API looks at once.
const ADOPTION_POLL: Duration = Duration::from_secs(2);

fn unreachable_retry(job: &Job) -> Duration {
    match job.config.schedule.cadence {
        rotator_core::schedule::spec::Cadence::Interval(every) => every.min(UNREACHABLE_RETRY),
        rotator_core::schedule::spec::Cadence::Cron(_) => UNREACHABLE_RETRY,
    }
}

/// Runs jobs on their schedules. Cheap to clone; all clones share state.
#[derive(Clone)]
pub struct Scheduler {
    inner: Arc<Inner>,
}

struct Inner {
    store: StateStore,
    jobs: Registry,
    queue: DeadlineQueue<String>,
    limit: Semaphore,
    /// Rotation events for watchers: live, and the recent backlog.
    feed: feed::Feed,
    observers: Vec<Arc<dyn Observer>>,
    running: Mutex<JoinSet<()>>,
    /// True once shutdown began: no rotation starts after that.
    stopped: watch::Sender<bool>,
    /// Where a rotation that panicked is counted.
    metrics: Metrics,
    /// `[daemon] max_rotations_per_second`: scheduled runs start spaced.
    pace: Option<rotator_core::pace::Pace>,
    /// With replicas: which jobs are ours to run.
    ownership: Option<Arc<dyn Ownership>>,
}

/// Why `rotate now` or a job change was refused.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error("no job `{0}`")]
    UnknownJob(String),
    #[error("job `{0}` already exists")]
    Duplicate(String),
    #[error("job `{0}` is rotating right now; try again when it ends")]
    Busy(String),
    #[error("job `{job}` must wait until {until}: a job paired with it by not_within rotated too recently")]
    Blocked { job: String, until: OffsetDateTime },
    #[error("job `{0}` was not rotated: the daemon is shutting down")]
    ShuttingDown(String),
    /// Replicas share the jobs and another one owns this job.
    #[error("job `{job}` {}", elsewhere(owner.as_deref(), at.as_deref()))]
    NotOwner { job: String, owner: Option<String>, at: Option<String> },
    /// The rotation panicked; the job was released and the failure booked.
    #[error("job `{job}`: {source}")]
    Panicked { job: String, source: Panicked },
    #[error(transparent)]
    Rotation(#[from] RotationError),
}

/// Where a job this replica does not own is run, for [`SchedulerError::NotOwner`].
fn elsewhere(owner: Option<&str>, at: Option<&str>) -> String {
    match (owner, at) {
        (Some(o), Some(a)) => format!("is run by replica `{o}` (API at {a})"),
        (Some(o), None) => format!("is run by replica `{o}`"),
        (None, _) => {
            "is held by no replica right now (the replicas are sharing out the jobs); try again shortly".into()
        }
    }
}

/// The monotonic instant for a wall-clock time, at most ~30 years ahead
/// (dates from Vault may say year 9999; `Instant` arithmetic must not overflow).
fn to_instant(at: OffsetDateTime) -> Instant {
    const FAR: Duration = Duration::from_secs(30 * 365 * 86_400);
    let ahead = Duration::try_from(at - OffsetDateTime::now_utc()).unwrap_or(Duration::ZERO).min(FAR);
    Instant::now() + ahead
}

impl Observer for Inner {
    fn event(&self, event: &RotationEvent) {
        for o in &self.observers {
            o.event(event);
        }
        self.feed.publish(event.clone());
    }

    fn anchor(&self, previous: Option<&rotator_core::state::AuditAnchor>) -> Option<rotator_core::state::AuditAnchor> {
        self.observers.anchor(previous)
    }
}

impl Scheduler {
    /// A scheduler with no jobs yet. `observers` see every rotation event.
    pub fn new(store: StateStore, max_concurrent: usize, observers: Vec<Arc<dyn Observer>>) -> Self {
        Self::with_metrics(store, max_concurrent, observers, Metrics::default())
    }

    /// [`Self::new`], counting rotations that panic in `metrics` (the
    /// daemon's, so that `/readyz` sees them).
    pub fn with_metrics(
        store: StateStore,
        max_concurrent: usize,
        observers: Vec<Arc<dyn Observer>>,
        metrics: Metrics,
    ) -> Self {
        let inner = Inner {
            store,
            jobs: Registry::default(),
            queue: DeadlineQueue::new(),
            limit: Semaphore::new(max_concurrent.max(1)),
            feed: feed::Feed::default(),
            observers,
            running: Mutex::new(JoinSet::new()),
            stopped: watch::Sender::new(false),
            metrics,
            pace: None,
            ownership: None,
        };
        Self { inner: Arc::new(inner) }
    }

    /// Rotation events as they happen, and the recent ones (for the live feed).
    pub fn feed(&self) -> &feed::Feed {
        &self.inner.feed
    }

    /// The jobs and their views (what the API reads).
    pub fn registry(&self) -> &Registry {
        &self.inner.jobs
    }

    /// Add a job and queue its next run from its record in Vault. A job
    /// whose rotation was left unfinished is due at once.
    pub async fn add(&self, job: Job) -> Result<(), SchedulerError> {
        let id = job.config.id.clone();
        self.register(job)?;
        self.arm(&id).await;
        Ok(())
    }

    /// Know a job (the API finds it, `rotate now` runs it) without queueing
    /// it yet: [`Self::arm`] reads its record and queues its next run.
    /// The daemon registers its configured jobs before its API answers and
    /// queues them after, as reading each record may wait for Vault.
    // The scheduler's own (large) error type; called once per job.
    #[allow(clippy::result_large_err)]
    pub fn register(&self, job: Job) -> Result<(), SchedulerError> {
        let id = job.config.id.clone();
        if !self.inner.jobs.insert(job) {
            return Err(SchedulerError::Duplicate(id));
        }
        Ok(())
    }

    /// Where the job records (and kept API job definitions) live.
    pub fn store(&self) -> &StateStore {
        &self.inner.store
    }

    /// Use a new definition of a known job (a reload changed its plugin,
    /// settings or schedule) from its next run on, and queue that run
    /// anew. A rotation already running ends on the definition it started
    /// with.
    pub async fn replace(&self, job: Job) -> Result<(), SchedulerError> {
        let id = job.config.id.clone();
        if !self.inner.jobs.replace(job) {
            return Err(SchedulerError::UnknownJob(id));
        }
        self.inner.queue.cancel(&id);
        self.arm(&id).await;
        Ok(())
    }

    /// Stop scheduling a job. A rotation already running ends normally.
    pub fn remove(&self, id: &str) -> bool {
        self.inner.queue.cancel(&id.to_owned());
        self.inner.jobs.remove(id)
    }

    /// Whether this daemon runs `id` (always, without replicas).
    fn owns(&self, id: &str) -> bool {
        self.inner.ownership.as_ref().is_none_or(|o| o.owns(id))
    }

    /// Replicas share the jobs through `ownership`. Set before the
    /// scheduler is shared.
    pub fn with_ownership(mut self, ownership: Arc<dyn Ownership>) -> Self {
        let inner = Arc::get_mut(&mut self.inner).expect("ownership is set before the scheduler is shared");
        inner.ownership = Some(ownership);
        self
    }

    /// This daemon gained the jobs `select` picks (a replica took their
    /// shard): read each record and queue its next run. An unfinished
    /// rotation is due at once, so a takeover resumes it with its rotation id.
    pub async fn gained(&self, select: impl Fn(&str) -> bool) {
        for (id, _) in self.inner.jobs.ids_where(select) {
            self.inner.queue.cancel(&id);
            self.arm(&id).await;
        }
    }

    /// Look at job `id` now (a consumer acknowledged a version: a rotation
    /// waiting for adoption can go on at once).
    pub fn poke(&self, id: &str) {
        if self.inner.jobs.contains(id) && self.owns(id) {
            self.inner.queue.schedule(id.to_owned(), Instant::now());
        }
    }

    /// This daemon lost the jobs `select` picks: their queued runs are
    /// dropped (a rotation already running meets the fence at its next step).
    pub fn lost(&self, select: impl Fn(&str) -> bool) {
        for (id, _) in self.inner.jobs.ids_where(select) {
            self.inner.queue.cancel(&id);
        }
    }

    /// Read the job's record and queue its next run.
    pub(crate) async fn arm(&self, id: &str) {
        let Some(job) = self.inner.jobs.job(id) else { return };
        if !self.owns(id) {
            // Another replica runs it; it is armed if its shard comes here.
            return;
        }
        let enabled = job.config.enabled;
        let mut v = match self.inner.store.load(id).await {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(job = %id, error = %e, "cannot read the job's state; trying again later");
                self.inner.queue.schedule(id.to_owned(), Instant::now() + unreachable_retry(&job));
                return;
            }
        };
        let now = OffsetDateTime::now_utc();
        let first_seen = match v.state.last_rotation.or(v.state.next_due) {
            Some(_) => None,
            None => self.secret_updated(&job).await,
        };
        let (due, changed) = cycle::next_due(&job.config.schedule, &mut v.state, now, first_seen, &mut rand::rng());
        if changed && let Err(e) = self.inner.store.save(id, &mut v).await {
            tracing::warn!(job = %id, error = %e, "could not record the next rotation time");
        }
        if v.state.needs_attention {
            tracing::error!(job = %id, "job NEEDS ATTENTION: it failed too often and is not rotated automatically");
        }
        let resume = v.state.in_progress.is_some();
        self.inner.jobs.set_state(id, v.state);
        match due {
            Due::At(at) if enabled || resume => self.inner.queue.schedule(id.to_owned(), to_instant(at)),
            _ => {}
        }
    }

    /// When the job's secret last changed, for a job with no record yet.
    async fn secret_updated(&self, job: &Job) -> Option<OffsetDateTime> {
        // Known for KV secrets only: an AWS secret's first rotation is due
        // at once, as for a job without a secret.
        let loc = job.config.secret.as_ref()?.kv()?;
        // kv_metadata answers the metadata answer's `data` object (kv2.json).
        let meta = self.inner.store.vault.as_ref()?.kv_metadata(&loc.mount, &loc.path).await.ok()??;
        let updated = meta.get("updated_time")?.as_str()?;
        OffsetDateTime::parse(updated, &time::format_description::well_known::Rfc3339).ok()
    }

    /// Begin shutdown: from now on no rotation starts, including runs that
    /// are waiting for a concurrency slot (they end with
    /// [`SchedulerError::ShuttingDown`]). Rotations already running go on.
    pub fn stop(&self) {
        self.inner.stopped.send_replace(true);
    }

    /// Run until `stop` turns true (or [`Self::stop`] is called), then wait
    /// for running rotations.
    pub async fn run(&self, mut stop: watch::Receiver<bool>) {
        let mut stopped = self.inner.stopped.subscribe();
        loop {
            let id = tokio::select! {
                (id, _) = self.inner.queue.next() => id,
                _ = stop.wait_for(|s| *s) => break,
                _ = stopped.wait_for(|s| *s) => break,
            };
            let this = self.clone();
            let mut running = self.inner.running.lock().unwrap_or_else(|p| p.into_inner());
            // Forget finished runs, so months of rotations hold no memory.
            while running.try_join_next().is_some() {}
            // The rotation catches its own panics; this catches one in
            // handling its outcome, so it is counted rather than lost.
            running.spawn(async move {
                let metrics = this.inner.metrics.clone();
                let job = id.clone();
                let _ = supervise::catch(&metrics, "schedule", Some(&job), this.scheduled(id)).await;
            });
        }
        self.stop();
        let mut running = std::mem::take(&mut *self.inner.running.lock().unwrap_or_else(|p| p.into_inner()));
        while running.join_next().await.is_some() {}
    }

    /// At most `per_second` scheduled rotations start per second, spread
    /// evenly (`[daemon] max_rotations_per_second`), beside the concurrency
    /// cap: a daemon back from a long outage catches up at a steady rate.
    /// An operator's `rotate now` is not held back. Set before the
    /// scheduler is shared.
    pub fn with_rate_limit(mut self, per_second: Option<u32>) -> Self {
        let inner = Arc::get_mut(&mut self.inner).expect("the rate limit is set before the scheduler is shared");
        inner.pace = per_second.map(rotator_core::pace::Pace::per_second);
        self
    }

    /// A scheduled run's turn under the rate limit, unless shutdown begins first.
    async fn turn(&self, id: &str) -> Result<(), SchedulerError> {
        let Some(pace) = &self.inner.pace else { return Ok(()) };
        let mut stopped = self.inner.stopped.subscribe();
        tokio::select! {
            biased;
            _ = stopped.wait_for(|s| *s) => Err(SchedulerError::ShuttingDown(id.to_owned())),
            () = pace.acquire() => Ok(()),
        }
    }

    /// A slot under the concurrency limit, unless shutdown begins first.
    /// Shutdown wins a tie, so nothing starts once it has begun.
    async fn slot(&self, id: &str) -> Result<tokio::sync::SemaphorePermit<'_>, SchedulerError> {
        let mut stopped = self.inner.stopped.subscribe();
        tokio::select! {
            biased;
            _ = stopped.wait_for(|s| *s) => Err(SchedulerError::ShuttingDown(id.to_owned())),
            permit = self.inner.limit.acquire() => Ok(permit.expect("the limit is never closed")),
        }
    }

    /// A queued run came due.
    async fn scheduled(&self, id: String) {
        match self.rotate(&id, "scheduler", false).await {
            Ok(_) | Err(SchedulerError::Rotation(_)) => {}
            Err(SchedulerError::Blocked { until, .. }) => {
                tracing::info!(job = %id, until = %until, "waiting: a paired job (not_within) rotated too recently");
                self.inner.queue.schedule(id, to_instant(until));
            }
            Err(e @ SchedulerError::ShuttingDown(_)) => tracing::info!(job = %id, error = %e, "scheduled run skipped"),
            Err(e) => tracing::debug!(job = %id, error = %e, "scheduled run skipped"),
        }
    }

    /// Rotate a job now, on behalf of `actor`, whatever its schedule says.
    /// Success clears needs-attention; failure leaves the schedule as it was.
    pub async fn rotate_now(&self, id: &str, actor: &str) -> Result<RotationReport, SchedulerError> {
        self.rotate(id, actor, true).await
    }

    /// Claim the job, rotate it, release it and queue its next run, in a
    /// task of its own: a caller that gives up (an API client hanging up)
    /// cannot cancel the run halfway and leave the job claimed.
    async fn rotate(&self, id: &str, actor: &str, manual: bool) -> Result<RotationReport, SchedulerError> {
        let (this, job_id, actor) = (self.clone(), id.to_owned(), actor.to_owned());
        match tokio::spawn(async move { this.rotate_claimed(&job_id, &actor, manual).await }).await {
            Ok(result) => result,
            // A panic outside the rotation itself (booking or queueing the
            // next run); the job was released before either.
            Err(e) if e.is_panic() => {
                let source = supervise::record(&self.inner.metrics, "rotation", Some(id), &*e.into_panic());
                Err(SchedulerError::Panicked { job: id.to_owned(), source })
            }
            // Cancelled: only when the runtime itself goes away.
            Err(_) => Err(SchedulerError::ShuttingDown(id.to_owned())),
        }
    }

    async fn rotate_claimed(&self, id: &str, actor: &str, manual: bool) -> Result<RotationReport, SchedulerError> {
        self.check_owner(id)?;
        if !manual {
            self.turn(id).await?;
        }
        let _permit = self.slot(id).await?;
        // Claimed while holding a permit, so two paired jobs waiting for
        // the limit cannot both pass before either starts.
        let job = self.inner.jobs.claim(id, OffsetDateTime::now_utc()).map_err(|why| match why {
            Unclaimed::Unknown => SchedulerError::UnknownJob(id.to_owned()),
            Unclaimed::Busy => SchedulerError::Busy(id.to_owned()),
            Unclaimed::Blocked(until) => SchedulerError::Blocked { job: id.to_owned(), until },
        })?;
        let ran =
            supervise::catch(&self.inner.metrics, "rotation", Some(id), self.rotate_job(&job, actor, manual)).await;
        self.inner.jobs.release(id);
        if let Ok((Err(e), recorded)) = &ran
            && let Some(until) = e.awaiting_adoption()
        {
            if let Some(state) = recorded {
                self.inner.jobs.set_state(id, state.clone());
            }
            // Not a failure: the rotation stays in progress (its record
            // says so) and is looked at again soon, or at its deadline.
            let at = to_instant(until).min(Instant::now() + ADOPTION_POLL);
            self.inner.queue.schedule(id.to_owned(), at);
            return ran.expect("checked").0.map_err(SchedulerError::from);
        }
        if let Ok((Err(e), _)) = &ran
            && e.is_fenced()
        {
            // Another replica owns the job now and resumes what was left;
            // this one writes nothing more about it.
            tracing::warn!(job = %id, error = %e, "stopped: this replica no longer owns the job");
            return ran.expect("checked").0.map_err(SchedulerError::from);
        }
        let (result, state) = match ran {
            Ok((result, state)) => (result.map_err(SchedulerError::from), state),
            // Not retried at once: the same bug would strike again. The
            // failure is booked like a permanent one, so the job waits for
            // its next cycle (or an operator's `rotate now`).
            Err(source) => {
                let booked = self.book_failure(&job, false, source.to_string(), manual).await;
                (Err(SchedulerError::Panicked { job: id.to_owned(), source }), Some(booked))
            }
        };
        if self.inner.jobs.contains(id) && self.owns(id) {
            self.requeue(id, &job, state).await;
        }
        result
    }

    /// `NotOwner` if another replica runs `id`.
    // The scheduler's own error type, which the API maps; once per run.
    #[allow(clippy::result_large_err)]
    fn check_owner(&self, id: &str) -> Result<(), SchedulerError> {
        let Some(o) = &self.inner.ownership else { return Ok(()) };
        if o.owns(id) {
            return Ok(());
        }
        let (owner, at) = o.owner(id).map_or((None, None), |(owner, at)| (Some(owner), at));
        Err(SchedulerError::NotOwner { job: id.to_owned(), owner, at })
    }

    /// Run a job that is not scheduled (a one-off API rotation) under the
    /// same concurrency limit, shutdown, state store and observers as
    /// scheduled ones.
    pub async fn rotate_once(&self, job: &Job, actor: &str) -> Result<RotationReport, SchedulerError> {
        let _permit = self.slot(&job.config.id).await?;
        let options = RotateOptions { observer: &*self.inner, ..RotateOptions::new(actor) };
        // Not a scheduled job: no replica owns it, so no fence applies; the
        // record's check-and-set still orders concurrent callers.
        Ok(job.rotate_with(&self.inner.store.without_guard(), options).await?)
    }

    /// Run the rotation and book its outcome in the job's record. Returns
    /// the record as booked (to queue the next run from) when known.
    async fn rotate_job(
        &self,
        job: &Job,
        actor: &str,
        manual: bool,
    ) -> (Result<RotationReport, RotationError>, Option<JobState>) {
        let schedule = job.config.schedule.clone();
        let finalize = Box::new(move |state: &mut JobState, result: Result<(), &RotationError>| {
            let outcome = match result {
                Ok(()) => RunOutcome::Rotated,
                Err(e) => RunOutcome::Failed { retryable: e.is_transient() },
            };
            cycle::after_run(&schedule, state, outcome, OffsetDateTime::now_utc(), manual, &mut rand::rng());
        });
        let options = RotateOptions { finalize: Some(finalize), ..RotateOptions::new(actor) };
        let options = RotateOptions { observer: &*self.inner, ..options };
        let Rotation { result, recorded } = job.rotate_recorded(&self.inner.store, options).await;
        match &result {
            Ok(r) => {
                tracing::info!(job = %job.config.id, version = r.new_version.as_ref().map(tracing::field::display), resumed = r.resumed_from.is_some(), "rotated")
            }
            Err(e) if e.awaiting_adoption().is_some() => {
                tracing::debug!(job = %job.config.id, error = %e, "waiting for adoption")
            }
            Err(e) => {
                tracing::error!(job = %job.config.id, transient = e.is_transient(), error = %e, "rotation failed")
            }
        }
        let state = match (&result, recorded) {
            // Fenced: nothing of this run is ours to book.
            (Err(e), _) if e.is_fenced() => None,
            // Waiting for adoption is no failure: the record as it stands.
            (Err(e), recorded) if e.awaiting_adoption().is_some() => recorded,
            // The final record was written, with the booking in it.
            (_, Some(state)) => Some(state),
            // The run ended before a final record was written (nothing
            // staged, PENDING kept for the next run, or that write failed):
            // book the failure here, once.
            (Err(e), None) => Some(self.book_failure(job, e.is_transient(), e.to_string(), manual).await),
            (Ok(_), None) => None,
        };
        (result, state)
    }

    /// Book a failed run (`error` says why) in the job's record. Returns the
    /// record as booked, even if Vault refused the write, so the retry
    /// backoff still holds.
    async fn book_failure(&self, job: &Job, retryable: bool, error: String, manual: bool) -> JobState {
        let id = &job.config.id;
        let outcome = RunOutcome::Failed { retryable };
        let cached = || self.inner.jobs.state(id);
        for _ in 0..3 {
            let mut v = match self.inner.store.load(id).await {
                Ok(v) => v,
                Err(_) => Versioned { state: cached(), version: None },
            };
            let now = OffsetDateTime::now_utc();
            cycle::after_run(&job.config.schedule, &mut v.state, outcome, now, manual, &mut rand::rng());
            v.state.last_error = Some(error.clone());
            match self.inner.store.save(id, &mut v).await {
                Err(e) if e.is_conflict() => continue,
                Err(e) => tracing::warn!(job = %id, error = %e, "could not record the failure"),
                Ok(()) => {}
            }
            return v.state;
        }
        cached()
    }

    /// Queue the next run from the record the run left (read back from
    /// Vault only if the run could not say what it booked).
    async fn requeue(&self, id: &str, job: &Job, booked: Option<JobState>) {
        let state = match booked {
            Some(state) => state,
            None => match self.inner.store.load(id).await {
                Ok(v) => v.state,
                Err(e) => {
                    tracing::error!(job = %id, error = %e, "cannot read the job's state; trying again later");
                    self.inner.queue.schedule(id.to_owned(), Instant::now() + unreachable_retry(job));
                    return;
                }
            },
        };
        let next = match (&state.next_due, state.needs_attention, job.config.enabled) {
            (_, true, _) => {
                tracing::error!(job = %id, "job NEEDS ATTENTION: automatic rotation stops until someone rotates it");
                None
            }
            (Some(t), false, true) => Some(*t),
            _ => None,
        };
        self.inner.jobs.set_state(id, state);
        if let Some(at) = next {
            self.inner.queue.schedule(id.to_owned(), to_instant(at));
        }
    }
}
