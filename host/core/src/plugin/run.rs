//! One rotation's plugin run: a fresh store, the protocol steps, typed errors.
//!
//! Each step gets the job's deadline (an absolute `Instant`, checked by the
//! store's epoch-deadline callback: see [`super::limits`]), runs under the
//! job's memory cap and starts with a fresh host-call budget. Log lines and
//! error messages from the plugin are held until the step ends and then
//! redacted with every secret the run has seen, including the one the step
//! just produced, and cut to the job's [`OutputLimits`] (redacted first, so
//! a secret is never shown in part). A plan's summaries are cut the same
//! way; a new secret over its cap is refused unseen, and so are the log
//! lines of its step, which could not be redacted against it. A trap
//! poisons the instance, so the next step (typically `rollback`) gets a
//! fresh instance in a fresh store.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::{Engine, Store, Trap};
use zeroize::Zeroize;

use secrecy::ExposeSecret;

use super::connections::SqlConnections;
use super::generate::NewSecret;
use super::handles::SecretAccess;
use super::imports::http::HttpBridge;
use super::imports::{HostCall, HostState, LogLevel, VaultBridge};
use super::limits::{self, MAX_PLAN_ACTIONS, OutputLimits};
use super::wit::{self, Instance};
use super::{Failure, Grants, PlannedAction, Plugin, RunLimits, RunState, Step, StepContext, StepError};
use crate::secret::{PublicFields, Redactor, SecretJson};

/// Per-run settings from the job.
#[derive(Clone, Default)]
pub struct RunConfig {
    pub limits: RunLimits,
    pub grants: Arc<Grants>,
    pub vault: Option<VaultBridge>,
    /// The SQL connections the job is granted, by name.
    pub sql: Arc<SqlConnections>,
    /// The client for the `http` import; `None` refuses every request.
    pub http: Option<HttpBridge>,
    /// Values or handles (the job's `secret_access`).
    pub access: SecretAccess,
    /// Fields of the job's secrets left readable in what the plugin says
    /// (the job's `public_fields`, else the plugin's); empty: none.
    pub public: PublicFields,
}

/// A live plugin instance for one rotation.
pub struct Run {
    plugin: Plugin,
    job_id: String,
    config: RunConfig,
    store: Store<RunState>,
    instance: Instance,
    redactor: Redactor,
    poisoned: bool,
}

/// A store with the job's limits and a WASI context that grants nothing.
pub(super) fn new_store(engine: &Engine, job_id: &str, plugin: &str, config: &RunConfig) -> Store<RunState> {
    let host = HostState::new(job_id.to_owned(), plugin.to_owned(), config);
    let mut store = Store::new(engine, RunState::new(host, config.limits.memory));
    store.limiter(|s| &mut s.limiter);
    store.epoch_deadline_callback(|ctx| Ok(limits::next_check(ctx.data().deadline, Instant::now())));
    // Instantiation runs guest code (start functions) too: give it a deadline.
    arm_deadline(&mut store, &config.limits);
    store
}

/// The current step must stop `step_timeout` from now.
fn arm_deadline(store: &mut Store<RunState>, limits: &RunLimits) {
    let now = Instant::now();
    store.data_mut().deadline = now + limits.step_timeout;
    if let wasmtime::UpdateDeadline::Continue(ticks) = limits::next_check(store.data().deadline, now) {
        store.set_epoch_deadline(ticks);
    }
}

/// Run `f` with a fresh deadline, memory-cap flag and host-call budget.
pub(super) fn with_deadline<R>(
    store: &mut Store<RunState>,
    limits: &RunLimits,
    f: impl FnOnce(&mut Store<RunState>) -> wasmtime::Result<R>,
) -> wasmtime::Result<R> {
    arm_deadline(store, limits);
    let data = store.data_mut();
    data.limiter.hit = false;
    data.host.budget.reset();
    data.host.deadline = data.deadline;
    f(store)
}

/// Turn a wasmtime error from a call into a [`Failure`].
pub(super) fn classify_trap(
    e: wasmtime::Error,
    store: &mut Store<RunState>,
    limits: &RunLimits,
    _step: Step,
) -> Failure {
    if store.data().limiter.hit {
        return Failure::MemoryLimit(limits.memory);
    }
    if matches!(e.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
        return Failure::Deadline(limits.step_timeout);
    }
    let trap = match e.downcast_ref::<Trap>() {
        Some(t) => t.to_string(),
        None => format!("{e:#}"),
    };
    match panic_message(&store.data().stderr.contents()) {
        Some(panic) => Failure::Trap(format!("{panic} ({trap})")),
        None => Failure::Trap(trap),
    }
}

/// Why instantiation failed. A component whose initial memory is larger
/// than the job's cap can never start, so that is the memory limit (a
/// configuration problem), not a transient instantiation failure to retry.
fn instantiate_failure(e: wasmtime::Error, store: &Store<RunState>, limits: &RunLimits) -> Failure {
    if store.data().limiter.hit {
        return Failure::MemoryLimit(limits.memory);
    }
    Failure::Instantiate(format!("{e:#}"))
}

/// The `panicked at …` line a Rust guest writes to stderr, if any.
fn panic_message(stderr: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(stderr);
    let start = text.find("panicked at")?;
    let rest = &text[start..];
    // Rust prints "panicked at file:line:col:\nmessage".
    let mut lines = rest.lines();
    let head = lines.next()?.trim_end_matches(':').to_owned();
    match lines.next() {
        Some(msg) if !msg.trim().is_empty() => Some(format!("{head}: {}", msg.trim())),
        _ => Some(head),
    }
}

impl Plugin {
    /// Start a run for `job_id`: a fresh store and instance.
    pub fn start(&self, job_id: &str, config: RunConfig) -> Result<Run, StepError> {
        let mut store = new_store(&self.0.engine, job_id, &self.label(), &config);
        let instance = self.0.pre.instantiate(&mut store).map_err(|e| StepError {
            job: job_id.to_owned(),
            plugin: self.label(),
            step: Step::Create,
            failure: instantiate_failure(e, &store, &config.limits),
        })?;
        Ok(Run {
            plugin: self.clone(),
            job_id: job_id.to_owned(),
            redactor: Redactor::with_public(config.public.clone()),
            config,
            store,
            instance,
            poisoned: false,
        })
    }
}

impl Run {
    /// Register a secret so it is scrubbed from everything the plugin says.
    pub fn learn_secret(&mut self, secret: &SecretJson) {
        self.redactor.add_secret(secret);
    }

    /// Every host call the plugin made so far.
    pub fn host_calls(&self) -> &[HostCall] {
        &self.store.data().host.calls
    }

    /// The plan: at most [`MAX_PLAN_ACTIONS`] actions, each summary redacted
    /// and cut to the job's cap.
    pub fn plan(&mut self, ctx: &StepContext) -> Result<Vec<PlannedAction>, StepError> {
        self.learn_current(ctx);
        let raw = self.call(Step::Plan, |i, s| i.plan(s, ctx));
        let actions = self.conclude(Step::Plan, raw)?;
        if actions.len() > MAX_PLAN_ACTIONS {
            let why = format!("plan listed {} actions; at most {MAX_PLAN_ACTIONS} are allowed", actions.len());
            return Err(self.step_error(Step::Plan, Failure::BadOutput(why)));
        }
        let (redactor, cap) = (&mut self.redactor, self.config.limits.output.plan_summary);
        Ok(actions
            .into_iter()
            .map(|a| PlannedAction { step: a.step, summary: redactor.redact_capped(&a.summary, cap, 0) })
            .collect())
    }

    /// `create`: the new secret, completed by the host (generated and
    /// captured fields). It is learned by the redactor before the step's
    /// log lines are written; so are captured values, whatever the step's
    /// outcome. A field the host would fill (generated or captured) must
    /// not be public: its value is a secret the host made, and a later
    /// step (after a resume, say) could not tell it from an identifier.
    pub fn create(&mut self, ctx: &StepContext) -> Result<SecretJson, StepError> {
        self.learn_current(ctx);
        self.store.data_mut().host.captured.clear();
        let raw = self.call(Step::Create, |i, s| i.create(s, ctx));
        let captured = std::mem::take(&mut self.store.data_mut().host.captured);
        for (_, value) in &captured {
            self.redactor.add_str(value.expose_secret());
        }
        let limit = self.config.limits.output.secret;
        let parsed = match raw {
            Ok(Ok(NewSecret { mut data, .. })) if data.len() > limit => {
                let size = data.len();
                data.zeroize();
                self.withhold_logs(Step::Create);
                Err(Failure::SecretTooLarge { size, limit })
            }
            Ok(Ok(new)) => match public_host_field(&self.config.public, &new, &captured) {
                Some(field) => Err(Failure::BadOutput(format!(
                    "field `{field}` is public for this job, but its value would come from the host (generated or \
                     captured), and such values are always secret"
                ))),
                None => match new.complete(captured, limit) {
                    Ok(secret) => {
                        self.redactor.add_secret(&secret);
                        Ok(Ok(secret))
                    }
                    Err(Failure::SecretTooLarge { size, limit }) => {
                        self.withhold_logs(Step::Create);
                        Err(Failure::SecretTooLarge { size, limit })
                    }
                    Err(f) => Err(f),
                },
            },
            Ok(Err(e)) => Ok(Err(e)),
            Err(f) => Err(f),
        };
        self.conclude(Step::Create, parsed)
    }

    pub fn set(&mut self, ctx: &StepContext, pending: &SecretJson) -> Result<(), StepError> {
        self.pending_step(Step::Set, ctx, pending)
    }

    pub fn test(&mut self, ctx: &StepContext, pending: &SecretJson) -> Result<(), StepError> {
        self.pending_step(Step::Test, ctx, pending)
    }

    pub fn finish(&mut self, ctx: &StepContext, pending: &SecretJson) -> Result<(), StepError> {
        self.pending_step(Step::Finish, ctx, pending)
    }

    pub fn rollback(&mut self, ctx: &StepContext, pending: &SecretJson) -> Result<(), StepError> {
        self.pending_step(Step::Rollback, ctx, pending)
    }

    fn pending_step(&mut self, step: Step, ctx: &StepContext, pending: &SecretJson) -> Result<(), StepError> {
        self.redactor.add_secret(pending);
        self.learn_current(ctx);
        let raw = self.call(step, |i, s| i.pending_step(s, step, ctx, pending));
        self.conclude(step, raw)
    }

    /// The current secret is scrubbed from everything the plugin says.
    fn learn_current(&mut self, ctx: &StepContext) {
        if let Some(cur) = &ctx.current {
            self.redactor.add_secret(&cur.data);
        }
    }

    /// Call one export under the deadline; a trap poisons the instance.
    fn call<R>(
        &mut self,
        step: Step,
        f: impl FnOnce(&mut Instance, &mut Store<RunState>) -> wit::Answer<R>,
    ) -> Result<Result<R, Failure>, Failure> {
        if self.poisoned {
            self.reinstantiate()?;
        }
        let limits = self.config.limits;
        self.store.data_mut().host.step = step;
        let instance = &mut self.instance;
        match with_deadline(&mut self.store, &limits, |s| f(instance, s)) {
            Ok(r) => Ok(r),
            Err(e) => {
                self.poisoned = true;
                Err(classify_trap(e, &mut self.store, &limits, step))
            }
        }
    }

    /// Write the step's log lines and turn its outcome into a redacted,
    /// bounded result. A step that ran over its host-call budget fails so,
    /// whatever the plugin answered (unless the host stopped it first).
    fn conclude<R>(&mut self, step: Step, raw: Result<Result<R, Failure>, Failure>) -> Result<R, StepError> {
        self.flush_logs(step);
        let budget = self.store.data().host.budget;
        let (redactor, cap) = (&mut self.redactor, self.config.limits.output.error_message);
        let failure = match raw {
            Ok(_) if budget.refused > 0 => Failure::HostCallLimit { limit: budget.limit, refused: budget.refused },
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(f)) | Err(f) => redact_failure(redactor, f, cap),
        };
        Err(self.step_error(step, failure))
    }

    fn step_error(&self, step: Step, failure: Failure) -> StepError {
        StepError { job: self.job_id.clone(), plugin: self.plugin.label(), step, failure }
    }

    fn flush_logs(&mut self, step: Step) {
        let logs = self.store.data_mut().host.logs.take();
        let OutputLimits { log_line: cap, log_lines: max, .. } = self.config.limits.output;
        let (job, plugin, step) = (&self.job_id, self.plugin.label(), step.as_str());
        for line in logs.lines {
            let message = self.redactor.redact_capped(&line.message, cap, line.cut);
            match line.level {
                LogLevel::Debug => tracing::debug!(target: "plugin", job, plugin, step, "{message}"),
                LogLevel::Info => tracing::info!(target: "plugin", job, plugin, step, "{message}"),
                LogLevel::Warn => tracing::warn!(target: "plugin", job, plugin, step, "{message}"),
                LogLevel::Error => tracing::error!(target: "plugin", job, plugin, step, "{message}"),
            }
        }
        if logs.dropped_lines > 0 {
            let (lines, bytes) = (logs.dropped_lines, logs.dropped_bytes);
            tracing::warn!(
                target: "plugin",
                job,
                plugin,
                step,
                "{lines} further log line(s) ({bytes} bytes) of this step were dropped: the job keeps {max} per step"
            );
        }
    }

    /// Drop the step's log lines unwritten (they may quote a secret the
    /// redactor was not given), saying how many.
    fn withhold_logs(&mut self, step: Step) {
        let logs = self.store.data_mut().host.logs.take();
        let lines = logs.lines.len() + logs.dropped_lines;
        if lines > 0 {
            let (job, plugin, step) = (&self.job_id, self.plugin.label(), step.as_str());
            tracing::warn!(
                target: "plugin",
                job,
                plugin,
                step,
                "{lines} log line(s) of this step were withheld: its secret was refused, so they cannot be redacted"
            );
        }
    }

    fn reinstantiate(&mut self) -> Result<(), Failure> {
        let calls = std::mem::take(&mut self.store.data_mut().host.calls);
        let mut store = new_store(&self.plugin.0.engine, &self.job_id, &self.plugin.label(), &self.config);
        store.data_mut().host.calls = calls;
        self.instance = self
            .plugin
            .0
            .pre
            .instantiate(&mut store)
            .map_err(|e| instantiate_failure(e, &store, &self.config.limits))?;
        self.store = store;
        self.poisoned = false;
        Ok(())
    }
}

/// The first field of the new secret that the host would fill (generated
/// or captured) although the job shows it as public.
fn public_host_field<'a>(
    public: &PublicFields,
    new: &'a NewSecret,
    captured: &'a [(String, secrecy::SecretString)],
) -> Option<&'a str> {
    let generated = new.generate.iter().map(|g| g.field.as_str());
    generated.chain(captured.iter().map(|(f, _)| f.as_str())).find(|f| public.contains(f))
}

/// A failure's text (the plugin's message, or the host's about the plugin)
/// redacted and cut to `cap` bytes.
fn redact_failure(r: &mut Redactor, f: Failure, cap: usize) -> Failure {
    match f {
        Failure::InvalidConfig(m) => Failure::InvalidConfig(r.redact_capped(&m, cap, 0)),
        Failure::Transient(m) => Failure::Transient(r.redact_capped(&m, cap, 0)),
        Failure::Permanent(m) => Failure::Permanent(r.redact_capped(&m, cap, 0)),
        Failure::Trap(m) => Failure::Trap(r.redact_capped(&m, cap, 0)),
        Failure::BadOutput(m) => Failure::BadOutput(r.redact_capped(&m, cap, 0)),
        Failure::Instantiate(m) => Failure::Instantiate(r.redact_capped(&m, cap, 0)),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::panic_message;

    #[test]
    fn panic_message_is_taken_from_rust_stderr() {
        let stderr = b"\nthread '<unnamed>' panicked at src/lib.rs:9:9:\nfixture panicked on purpose\nnote: run with `RUST_BACKTRACE=1`\n";
        assert_eq!(panic_message(stderr).as_deref(), Some("panicked at src/lib.rs:9:9: fixture panicked on purpose"));
        assert_eq!(panic_message(b"nothing here"), None);
    }
}
