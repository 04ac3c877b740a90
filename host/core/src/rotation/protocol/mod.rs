//! The rotation state machine: start a rotation or resume the one in
//! progress, and drive it to an end that satisfies the end-state rule
//! (PENDING is gone, or equals CURRENT).
//!
//! Every transition is written to the job's state record before the next
//! action, so the record always names the last completed step:
//!
//! ```text
//! create ─ stage ─▶ Staged ─ set ─▶ Set ─ test ─▶ Tested ─ promote ─▶ Promoted ─ finish ─▶ done
//!                     │              │                       │ (conflict)
//!                     └── failure ───┴──▶ RollingBack ─ rollback ─▶ done (failed)
//! ```
//!
//! Resuming re-runs the step after the recorded one (steps are idempotent
//! and keyed by the rotation id). A promotion that finds the secret already
//! at PENDING knows a crash hit between writing and recording it. Failures
//! that may pass (Vault unreachable, a rollback that failed) keep PENDING
//! staged and end the run; the next run resumes.
//!
//! The plugin is one [`Session`] per run; each step's timing and host calls
//! come back with its answer. The run returns the record it ended with
//! ([`Rotation::recorded`]), so the caller never has to fish it out of the
//! [`Finalize`] hook.

use time::OffsetDateTime;

mod consumers;
mod note;

use note::{Note, call_summary, event};

use super::events::{NoEvents, Observer};
use super::{Job, Rotation, RotationError, RotationReport, StepTiming};
use crate::crash::{self, Action, Point};
use crate::plugin::{Session, Step, StepContext, StepError};
use crate::secret::SecretJson;
use crate::state::{HistoryEntry, InProgress, JobState, Outcome, Stage, StateError, StateStore, Versioned};
use crate::store::{SecretAt, SecretStore};

/// A hook run on the record that ends a rotation, in the same write, so the
/// scheduler's bookkeeping can never disagree with the outcome.
pub type Finalize<'a> = Box<dyn FnOnce(&mut JobState, Result<(), &RotationError>) + Send + 'a>;

/// Who rotates, who listens, and what to add to the final record.
pub struct RotateOptions<'a> {
    pub actor: String,
    pub observer: &'a dyn Observer,
    pub finalize: Option<Finalize<'a>>,
    /// Stop the run at this crash point (`after:set`, …) as if the process
    /// had died there: no rollback, no cleanup, PENDING left as recorded.
    /// The in-process twin of `ROTATOR_CRASH_AT`, for the plugin harness.
    pub interrupt_at: Option<Point>,
}

impl RotateOptions<'_> {
    pub fn new(actor: impl Into<String>) -> Self {
        Self { actor: actor.into(), observer: &NoEvents, finalize: None, interrupt_at: None }
    }
}

pub(super) async fn run(job: &Job, store: &StateStore, options: RotateOptions<'_>) -> Rotation {
    let (observer, actor) = (options.observer, options.actor.clone());
    let mut attempt = Attempt { rotation_id: uuid::Uuid::new_v4().to_string(), resuming: false };
    let mut driver = match Driver::begin(job, store, options, &mut attempt).await {
        Ok(d) => d,
        Err(e) => {
            // It ended before a driver existed (state unreadable, the plugin
            // not instantiable, `create` failed, …): still say how it ended,
            // so the audit log and the metrics count every attempt.
            let outcome = if attempt.resuming { "kept-pending" } else { "failed" };
            let note = Note { error: Some((e.to_string(), e.kind())), ..Note::new("rotation", outcome) };
            observer.event(&event(job, attempt.rotation_id, actor, note));
            return Rotation { result: Err(e), recorded: None };
        }
    };
    let result = driver.drive().await;
    let (outcome, error) = match &result {
        Ok(_) => ("rotated", None),
        Err(e) if e.awaiting_adoption().is_some() => ("awaiting-adoption", None),
        Err(e) if driver.v.state.in_progress.is_some() => ("kept-pending", Some((e.to_string(), e.kind()))),
        Err(e) => ("failed", Some((e.to_string(), e.kind()))),
    };
    // One event when a rotation starts waiting for adoption, none for each
    // later look (`adopt_noted` tells which).
    if !(outcome == "awaiting-adoption" && driver.adoption_noted) {
        driver.emit(Note { error, ..Note::new("rotation", outcome) });
    }
    // A rotation waiting for adoption ends this run on the record it wrote.
    let recorded = match &result {
        Err(e) if e.awaiting_adoption().is_some() => Some(driver.v.state.clone()),
        _ => driver.recorded.take(),
    };
    Rotation { result, recorded }
}

/// The rotation an attempt is about, as far as [`Driver::begin`] got.
struct Attempt {
    /// A new rotation's id, or the one being resumed.
    rotation_id: String,
    /// Whether a staged rotation was found (its PENDING stays staged).
    resuming: bool,
}

struct Driver<'a> {
    job: &'a Job,
    store: &'a StateStore,
    options: RotateOptions<'a>,
    /// The store of the job's secret, if it has one.
    secret: Option<Box<dyn SecretStore>>,
    /// The record as last written; `in_progress` is set while running.
    v: Versioned,
    session: Session,
    ctx: StepContext,
    pending: SecretJson,
    steps: Vec<StepTiming>,
    resumed_from: Option<Stage>,
    /// The record that ended the rotation, once it is written.
    recorded: Option<JobState>,
    /// With replicas: the ownership epoch the run began under; every step
    /// and write checks it still holds (see `state::fence`).
    epoch: Option<u64>,
    /// The rotation was already waiting for adoption when this run began.
    adoption_noted: bool,
}

/// What a new rotation and a resumed one both start from.
struct Start<'a> {
    job: &'a Job,
    store: &'a StateStore,
    options: RotateOptions<'a>,
    secret: Option<Box<dyn SecretStore>>,
    v: Versioned,
    session: Session,
    epoch: Option<u64>,
}

impl<'a> Driver<'a> {
    fn from_start(s: Start<'a>, ctx: StepContext, pending: SecretJson, resumed_from: Option<Stage>) -> Self {
        let adoption_noted = s.v.state.in_progress.as_ref().is_some_and(|p| p.adoption_since.is_some());
        Self {
            job: s.job,
            store: s.store,
            options: s.options,
            secret: s.secret,
            v: s.v,
            session: s.session,
            ctx,
            pending,
            steps: Vec::new(),
            resumed_from,
            recorded: None,
            epoch: s.epoch,
            adoption_noted,
        }
    }

    /// Resume the rotation in progress, or create and stage a new one.
    async fn begin(
        job: &'a Job,
        store: &'a StateStore,
        options: RotateOptions<'a>,
        attempt: &mut Attempt,
    ) -> Result<Self, RotationError> {
        let id = job.config.id.as_str();
        let epoch = store.fence(id).map(|f| f.epoch);
        // The record as this process last wrote it, if it kept it: one
        // round trip less; a stale one is caught by the staging write below.
        let (mut v, kept) = store.load_kept(id).await?;
        if let Some(p) = &v.state.in_progress {
            *attempt = Attempt { rotation_id: p.id.clone(), resuming: true };
        }
        let secret = job.secret_store(store).map_err(|e| job.store_error(e))?;
        let session = Session::start(&job.plugin, id, job.run_config(store.vault.as_ref())).await?;
        if let Some(p) = v.state.in_progress.as_mut() {
            p.attempt = p.attempt.saturating_add(1);
        }
        let start = Start { job, store, options, secret, v, session, epoch };
        if let Some(p) = start.v.state.in_progress.as_ref() {
            let (rotation_id, stage, attempt, base) = (p.id.clone(), p.stage, p.attempt, p.base_version.clone());
            let pending = p.pending.clone().expect("a loaded rotation in progress has its pending value");
            if p.adoption_since.is_some() {
                // Looking again at a rotation waiting for adoption is routine.
                tracing::debug!(job = %id, rotation = %rotation_id, "looking at a rotation waiting for adoption");
            } else {
                tracing::warn!(job = %id, rotation = %rotation_id, after = stage.as_str(), attempt, "resuming an unfinished rotation");
            }
            // The plugin sees the value PENDING replaces, for rollback.
            let current = job.read_secret(start.secret.as_deref(), base.as_ref()).await?.map(|(c, _)| c);
            let ctx = job.step_context(&rotation_id, current, attempt);
            let mut d = Self::from_start(start, ctx, pending, Some(stage));
            // Looking again at a rotation waiting for adoption is no resume
            // worth an event (it happens every few seconds).
            if !d.adoption_noted {
                d.emit(Note::new("resume", "started"));
            }
            if stage < Stage::Promoted {
                if d.already_promoted().await? {
                    // The crash came after promotion: never run `set`,
                    // `test` or a rollback against a value now current.
                    tracing::info!(job = %id, rotation = %rotation_id, "PENDING is already current: finishing");
                    d.in_progress().stage = Stage::Promoted;
                } else {
                    // A crash may have come between the record and the
                    // store's own staging; staging again is idempotent.
                    d.stage_in_store().await?;
                }
            }
            return Ok(d);
        }

        let (current, base_version) = match job.read_secret(start.secret.as_deref(), None).await? {
            Some((c, v)) => (Some(c), v),
            None => (None, None),
        };
        let rotation_id = attempt.rotation_id.clone();
        let ctx = job.step_context(&rotation_id, current, 1);
        tracing::info!(job = %id, plugin = %job.plugin.label(), rotation = %rotation_id, "rotation started");
        let mut d = Self::from_start(start, ctx, SecretJson::new("{}".into()), None);
        d.pending = match d.step(Step::Create).await? {
            (Ok(()), Some(secret)) => secret,
            (Err(e), _) => return Err(RotationError::Step { source: e, rollback: None }),
            (Ok(()), None) => unreachable!("create yields a secret"),
        };
        d.v.state.in_progress = Some(InProgress {
            id: rotation_id,
            stage: Stage::Staged,
            started: OffsetDateTime::now_utc(),
            attempt: 1,
            base_version,
            new_version: None,
            error: None,
            actor: d.options.actor.clone(),
            adoption_since: None,
            pending: Some(d.pending.clone()),
        });
        d.point(Point::before(Action::Stage))?;
        let started = std::time::Instant::now();
        // The record first: a crash before the store's own staging is
        // resumed (and stages there), never a label nobody records.
        match d.save().await {
            Err(e) if kept && e.is_conflict() => d.stage_on_fresh_record(e).await?,
            other => other?,
        }
        d.stage_in_store().await?;
        d.point(Point::after(Action::Stage))?;
        let mut paths = vec![d.state_location()];
        if let (Some(SecretAt::Aws(_)), Some(secret)) = (&d.job.config.secret, &d.secret) {
            paths.push(secret.location());
        }
        d.emit(Note { duration: Some(started.elapsed()), vault_paths: paths, ..Note::new("stage", "ok") });
        Ok(d)
    }

    /// A crash point: abort the process if armed, or stop this run if the
    /// caller asked to be interrupted here.
    // The error is the rotation's own (large) error type; this is called a
    // dozen times per rotation, never in a hot loop.
    #[allow(clippy::result_large_err)]
    fn point(&self, point: Point) -> Result<(), RotationError> {
        crash::point(point);
        match self.options.interrupt_at {
            Some(p) if p == point => {
                Err(RotationError::Interrupted { job: self.job.config.id.clone(), point: p.to_string() })
            }
            _ => Ok(()),
        }
    }

    fn in_progress(&mut self) -> &mut InProgress {
        self.v.state.in_progress.as_mut().expect("a rotation is in progress while driving")
    }

    async fn drive(&mut self) -> Result<RotationReport, RotationError> {
        loop {
            match self.in_progress().stage {
                // `set` and `test` are idempotent by contract, so their
                // completion is not recorded: a resume from `staged` runs
                // them again (docs/architecture.md, "Which writes safety needs").
                Stage::Staged => match self.step(Step::Set).await?.0 {
                    Ok(()) => self.in_progress().stage = Stage::Set,
                    Err(e) => return self.roll_back(RotationError::Step { source: e, rollback: None }).await,
                },
                Stage::Set => match self.step(Step::Test).await?.0 {
                    Ok(()) => self.in_progress().stage = Stage::Tested,
                    Err(e) => return self.roll_back(RotationError::Step { source: e, rollback: None }).await,
                },
                Stage::Tested => {
                    if let Err(e) = self.promote().await {
                        return match e {
                            // Vault may come back: PENDING works in the target and stays staged.
                            e if e.is_transient() => Err(e),
                            e => self.roll_back(e).await,
                        };
                    }
                    // Not recorded either: a resume finds PENDING current
                    // in the store (`already_promoted`) and goes on to finish.
                    self.in_progress().stage = Stage::Promoted;
                }
                Stage::Promoted => {
                    if self.job.config.adoption.is_some() {
                        if let Some(kept) = self.await_adoption().await? {
                            return Ok(kept);
                        }
                    } else {
                        self.tell_hooks().await;
                    }
                    return match self.step(Step::Finish).await?.0 {
                        Ok(()) => self.done().await,
                        // The new value is current and works; finish is retried on the next run.
                        Err(e) => Err(RotationError::Step { source: e, rollback: None }),
                    };
                }
                Stage::RollingBack => {
                    let reason = self.in_progress().error.clone().unwrap_or_else(|| "unknown".into());
                    let err = RotationError::RolledBack { job: self.job.config.id.clone(), reason, rollback: None };
                    return self.finish_rollback(err).await;
                }
            }
        }
    }

    /// Run one plugin step with its crash points, timing and event.
    async fn step(&mut self, step: Step) -> Result<(Result<(), StepError>, Option<SecretJson>), RotationError> {
        let name = step.as_str();
        // Describe and plan never run inside a rotation: no point to name.
        let action = step_action(step);
        if let Some(a) = action {
            self.point(Point::before(a))?;
        }
        // A replica that lost the job touches nothing more (see state::fence).
        self.owner()?;
        let (result, duration, calls) = if step == Step::Create {
            let o = self.session.create(&self.ctx).await?;
            (o.result.map(Some), o.duration, o.calls)
        } else {
            let o = self.session.pending_step(step, &self.ctx, &self.pending).await?;
            (o.result.map(|()| None), o.duration, o.calls)
        };
        if let Some(a) = action {
            self.point(Point::after(a))?;
        }
        self.steps.push(StepTiming { step, duration });
        let (paths, denied) = call_summary(&calls);
        let (outcome, error) = match &result {
            Ok(_) => ("ok", None),
            Err(e) => ("failed", Some((e.to_string(), e.failure.kind()))),
        };
        tracing::debug!(job = %self.job.config.id, step = name, duration = %humantime::format_duration(duration), ok = result.is_ok(), "step");
        self.emit(Note {
            duration: Some(duration),
            vault_paths: paths,
            error,
            denied_calls: denied,
            ..Note::new(name, outcome)
        });
        Ok(match result {
            Ok(secret) => (Ok(()), secret),
            Err(e) => (Err(e), None),
        })
    }

    /// Does the secret's store already hold PENDING as its current value,
    /// in a version other than the one the rotation read? Then the rotation
    /// was promoted before a crash (promotion is not recorded), and that
    /// version is the new one. (A plugin may create a value equal to the
    /// current one; the version tells that case apart.)
    async fn already_promoted(&mut self) -> Result<bool, RotationError> {
        let Some(secret) = &self.secret else { return Ok(false) };
        let base = self.v.state.in_progress.as_ref().and_then(|p| p.base_version.clone());
        let current = secret.read(None).await.map_err(|e| self.job.store_error(e))?;
        match current {
            Some(c) if c.version != base && c.data.fields() == self.pending.fields() => {
                self.in_progress().new_version = c.version;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Stage PENDING in the secret's store, where it has a place for it.
    // `&mut self`: the future must not need the driver to be `Sync`.
    async fn stage_in_store(&mut self) -> Result<(), RotationError> {
        self.owner()?;
        let Some(secret) = &self.secret else { return Ok(()) };
        let rotation = &self.v.state.in_progress.as_ref().expect("staging a rotation in progress").id;
        secret.stage(rotation, &self.pending).await.map_err(|e| self.job.store_error(e))
    }

    /// Take the rotation's PENDING mark off in the secret's store.
    async fn unstage(&mut self) -> Result<(), RotationError> {
        self.owner()?;
        let Some(secret) = &self.secret else { return Ok(()) };
        let rotation = &self.v.state.in_progress.as_ref().expect("unstaging a rotation in progress").id;
        secret.unstage(rotation).await.map_err(|e| self.job.store_error(e))
    }

    /// Make PENDING the secret's current version, if the current one is
    /// still the version the rotation read.
    async fn promote(&mut self) -> Result<(), RotationError> {
        let Some(secret) = &self.secret else { return Ok(()) };
        let p = self.v.state.in_progress.as_ref().expect("promoting a rotation in progress");
        let (rotation, base) = (p.id.clone(), p.base_version.clone());
        self.point(Point::before(Action::Promote))?;
        self.owner()?;
        let started = std::time::Instant::now();
        let promoted = secret.promote(&rotation, &self.pending, base.as_ref()).await;
        let version = promoted.map_err(|e| self.job.store_error(e))?;
        let paths = vec![secret.location()];
        self.point(Point::after(Action::Promote))?;
        self.in_progress().new_version = Some(version);
        self.emit(Note { duration: Some(started.elapsed()), vault_paths: paths, ..Note::new("promote", "ok") });
        Ok(())
    }

    /// Record the rollback, then run it.
    async fn roll_back(&mut self, err: RotationError) -> Result<RotationReport, RotationError> {
        let p = self.in_progress();
        p.stage = Stage::RollingBack;
        p.error = Some(err.to_string());
        if let Err(save) = self.save().await {
            // Still roll back; the record keeps the earlier step, which a
            // later run repeats harmlessly.
            tracing::error!(job = %self.job.config.id, error = %save, "could not record the rollback");
        }
        self.finish_rollback(err).await
    }

    async fn finish_rollback(&mut self, mut err: RotationError) -> Result<RotationReport, RotationError> {
        let outcome = self.step(Step::Rollback).await?.0;
        if let Err(e) = &outcome {
            tracing::error!(job = %self.job.config.id, error = %e, "rollback failed: PENDING stays staged in Vault");
            err.set_rollback(outcome);
            return Err(err);
        }
        err.set_rollback(Ok(()));
        if let Err(e) = self.unstage().await {
            // The record keeps RollingBack; the next run repeats both.
            tracing::error!(job = %self.job.config.id, error = %e, "could not take PENDING off the secret's store");
            return Err(e);
        }
        let message = err.to_string();
        self.point(Point::before(Action::RecordRollback))?;
        self.end(Err(&err), None).await?;
        self.point(Point::after(Action::RecordRollback))?;
        tracing::error!(job = %self.job.config.id, error = %message, "rotation failed and was rolled back");
        Err(err)
    }

    async fn done(&mut self) -> Result<RotationReport, RotationError> {
        self.done_with(None).await
    }

    /// End a rotation whose new value is current; `attention` (why) flags
    /// the job for an operator in the same write.
    async fn done_with(&mut self, attention: Option<String>) -> Result<RotationReport, RotationError> {
        self.point(Point::before(Action::RecordDone))?;
        let (rotation_id, previous_version, new_version) = {
            let p = self.in_progress();
            (p.id.clone(), p.base_version.clone(), p.new_version.clone())
        };
        self.unstage().await?;
        self.end(Ok(()), attention).await?;
        self.point(Point::after(Action::RecordDone))?;
        tracing::info!(job = %self.job.config.id, plugin = %self.job.plugin.label(), rotation = %rotation_id, new_version = new_version.as_ref().map(tracing::field::display), "rotation done");
        Ok(RotationReport {
            rotation_id,
            job: self.job.config.id.clone(),
            plugin: self.job.plugin.label(),
            plugin_sha256: self.job.plugin.sha256().to_owned(),
            previous_version,
            new_version,
            value: self.secret.is_some().then(|| self.pending.clone()),
            resumed_from: self.resumed_from,
            steps: std::mem::take(&mut self.steps),
            host_calls: self.session.host_calls().to_vec(),
        })
    }

    /// Clear PENDING and remember the outcome, in one write.
    async fn end(
        &mut self,
        result: Result<(), &RotationError>,
        attention: Option<String>,
    ) -> Result<(), RotationError> {
        let (outcome, error) = match result {
            Ok(()) => (Outcome::Rotated, attention.clone()),
            Err(e) => (Outcome::Failed, Some(e.to_string())),
        };
        let error = error.as_deref();
        let p = self.v.state.in_progress.take().expect("ending a rotation in progress");
        let now = OffsetDateTime::now_utc();
        let fence = self.store.fence(&self.job.config.id);
        let state = &mut self.v.state;
        // The slot is a scheduled rotation's; a manual one belongs to none.
        let slot = state.slot.filter(|_| p.actor == "scheduler");
        if outcome == Outcome::Rotated {
            state.rotations = state.rotations.saturating_add(1);
            state.last_rotation = Some(now);
        }
        state.last_error = error.map(str::to_owned);
        state.push_history(HistoryEntry {
            id: p.id.clone(),
            outcome,
            started: p.started,
            finished: now,
            error: error.map(str::to_owned),
            version: p.new_version.clone(),
            actor: p.actor.clone(),
            slot,
            fence,
        });
        if let Some(finalize) = self.options.finalize.take() {
            finalize(state, result);
        }
        if let Some(why) = attention {
            // After the schedule's own bookkeeping, which clears it on success.
            state.needs_attention = true;
            state.last_error = Some(why);
        }
        if let Err(e) = self.save().await {
            // Not written: the rotation stays in progress and is resumed.
            self.v.state.in_progress = Some(p);
            return Err(e.into());
        }
        self.recorded = Some(self.v.state.clone());
        Ok(())
    }

    /// Write the record (check-and-set), with the audit log's head as its
    /// anchor. The head is read only now, after every event of this
    /// rotation so far was appended (appends are synchronous), so the
    /// anchor names a record that is already in the file. The log keeps
    /// the stored anchor instead if that one shows the file was cut.
    async fn save(&mut self) -> Result<(), StateError> {
        self.store.check_owner(&self.job.config.id, self.epoch)?;
        if let Some(anchor) = self.options.observer.anchor(self.v.state.audit_anchor.as_ref()) {
            self.v.state.audit_anchor = Some(anchor);
        }
        self.store.save(&self.job.config.id, &mut self.v).await
    }

    /// Staging met a conflict because the record this run started from was
    /// one this process kept, and someone else has written the record since
    /// (see `state::cache`). Stage again on the record as it is now if
    /// only bookkeeping changed (the schedule, the last error). If a
    /// rotation is in progress there, or one ended since (the secret this
    /// run read may be older than that rotation's value, and a rollback to
    /// it would undo that rotation on the target), this run stops with
    /// `conflict` before touching anything; the next run starts afresh.
    async fn stage_on_fresh_record(&mut self, conflict: StateError) -> Result<(), StateError> {
        let fresh = self.store.load(&self.job.config.id).await?;
        let last_ended = |s: &JobState| s.history.first().map(|h| h.id.clone());
        let rotated_since =
            fresh.state.rotations != self.v.state.rotations || last_ended(&fresh.state) != last_ended(&self.v.state);
        if fresh.state.in_progress.is_some() || rotated_since {
            return Err(conflict);
        }
        tracing::debug!(job = %self.job.config.id, "the kept state record was stale; staging on the one read now");
        let mine = self.v.state.in_progress.take();
        self.v = fresh;
        self.v.state.in_progress = mine;
        self.save().await
    }

    /// Does this process still own the job? (Always, without replicas.)
    // The error is the rotation's own (large) error type, as for `point`.
    #[allow(clippy::result_large_err)]
    fn owner(&self) -> Result<(), RotationError> {
        Ok(self.store.check_owner(&self.job.config.id, self.epoch)?)
    }

    fn state_location(&self) -> String {
        self.store.location(&self.job.config.id)
    }

    fn emit(&self, note: Note) {
        let rotation_id =
            self.v.state.in_progress.as_ref().map(|p| p.id.clone()).unwrap_or_else(|| self.ctx.rotation_id.clone());
        self.options.observer.event(&event(self.job, rotation_id, self.options.actor.clone(), note));
    }
}

/// The crash-point action of a plugin step.
fn step_action(step: Step) -> Option<Action> {
    Some(match step {
        Step::Create => Action::Create,
        Step::Set => Action::Set,
        Step::Test => Action::Test,
        Step::Finish => Action::Finish,
        Step::Rollback => Action::Rollback,
        Step::Describe | Step::Plan => return None,
    })
}
