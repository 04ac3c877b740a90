//! Per-run resource limits: memory cap, step deadline, and caps on
//! everything a plugin hands back to the host.
//!
//! Memory is capped by a [`wasmtime::ResourceLimiter`] that remembers whether
//! the cap was hit, so a failed allocation that ends in a trap is reported as
//! "memory limit" instead of a bare `unreachable`.
//!
//! Time is capped with epoch interruption, against an absolute deadline. One
//! ticker thread per engine advances the epoch at absolute times (every
//! [`TICK`] after it started, so an oversleep never shifts later ticks), and
//! a store's epoch-deadline callback compares `Instant::now()` with the
//! step's deadline instead of counting ticks: counted ticks drift late by
//! every oversleep, which made a 10 s deadline fire up to 0.8 s late. Far
//! from the deadline the callback asks to be woken after half the time left
//! (in ticks), so it runs a few dozen times per step at most; in the last
//! ticks it runs every tick, so a runaway step stops within about one tick
//! of its deadline (measured in `benches/deadline_overshoot.rs`).
//!
//! Output is capped by [`OutputLimits`]: error messages, log lines (each and
//! how many), plan summaries, the new secret's size and host calls per step.
//! Each has a default and a hard limit a job's `limits = { … }` may not pass.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wasmtime::{Engine, UpdateDeadline};

/// Default memory cap per plugin run.
pub const DEFAULT_MEMORY: usize = 64 << 20;
/// Default deadline per protocol step.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// The shortest and the longest step deadline a job (or `rotator plugin
/// test --step-timeout`) may set.
pub const STEP_TIMEOUT_RANGE: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(600));
/// Epoch granularity. A runaway step stops at most about one tick (plus the
/// ticker's wake-up latency) after its deadline; 2 ms leaves room for a
/// loaded machine's scheduling delay under the promised 10 ms, and costs one
/// atomic increment per tick.
pub const TICK: Duration = Duration::from_millis(2);
/// Tables beyond this many elements are refused (a runaway guest, not a real need).
const MAX_TABLE_ELEMENTS: usize = 100_000;
/// A plan may list at most this many actions (a protocol has five steps;
/// a plugin that lists more is describing something else).
pub const MAX_PLAN_ACTIONS: usize = 64;

/// Limits for one plugin run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunLimits {
    pub memory: usize,
    pub step_timeout: Duration,
    /// Caps on what the plugin returns.
    pub output: OutputLimits,
}

impl Default for RunLimits {
    fn default() -> Self {
        Self { memory: DEFAULT_MEMORY, step_timeout: DEFAULT_STEP_TIMEOUT, output: OutputLimits::default() }
    }
}

/// Caps on everything a plugin returns to the host, per step. Text over its
/// cap is redacted, then cut on a character boundary and marked
/// `…[truncated N bytes]`; a new secret over its cap is refused; host calls
/// over the cap are denied and fail the step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputLimits {
    /// Bytes of an error message kept.
    pub error_message: usize,
    /// Bytes of one log line kept.
    pub log_line: usize,
    /// Log lines kept per step; the rest are counted in one closing line.
    pub log_lines: usize,
    /// Bytes of one plan action's summary kept.
    pub plan_summary: usize,
    /// The largest new secret (its JSON text) `create` may return.
    pub secret: usize,
    /// Vault and SQL calls allowed per step.
    pub host_calls: usize,
}

impl OutputLimits {
    /// What a job gets unless its `limits` say otherwise.
    pub const DEFAULT: Self = Self {
        error_message: 4 << 10,
        log_line: 4 << 10,
        log_lines: 100,
        plan_summary: 1 << 10,
        secret: 64 << 10,
        host_calls: 1_000,
    };
    /// The largest values a job may configure: together they bound what one
    /// step can put into the daemon's log and answers (at most 16 MiB of
    /// log lines per step) and how hard it can drive Vault.
    pub const HARD: Self = Self {
        error_message: 64 << 10,
        log_line: 16 << 10,
        log_lines: 1_000,
        plan_summary: 16 << 10,
        secret: 1 << 20,
        host_calls: 10_000,
    };
    /// The smallest values a job may configure (smaller would hide the
    /// message itself behind the marker).
    pub const MIN: Self =
        Self { error_message: 256, log_line: 256, log_lines: 1, plan_summary: 64, secret: 1 << 10, host_calls: 1 };
}

impl Default for OutputLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The largest answer `describe` may give, field by field: a name and a
/// version short enough to head every log line and error, and a
/// description, settings schema and capability list of a sane size. A
/// plugin over any of them is refused at load.
pub const DESCRIBE_CAPS: DescribeCaps =
    DescribeCaps { name: 64, version: 64, description: 4 << 10, settings_schema: 64 << 10, capabilities: 64 };

/// See [`DESCRIBE_CAPS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DescribeCaps {
    pub name: usize,
    pub version: usize,
    pub description: usize,
    pub settings_schema: usize,
    pub capabilities: usize,
}

impl DescribeCaps {
    /// Why a `describe` answer of these sizes (bytes; capabilities counted)
    /// is refused, if it is.
    pub fn problem(
        &self,
        name: usize,
        version: usize,
        description: usize,
        schema: usize,
        caps: usize,
    ) -> Option<String> {
        [
            ("name", name, self.name, "bytes"),
            ("version", version, self.version, "bytes"),
            ("description", description, self.description, "bytes"),
            ("settings schema", schema, self.settings_schema, "bytes"),
            ("capability list", caps, self.capabilities, "entries"),
        ]
        .into_iter()
        .find(|(_, got, cap, _)| got > cap)
        .map(|(what, got, cap, unit)| format!("its {what} has {got} {unit}; at most {cap} are allowed"))
    }
}

/// Caps linear memory and remembers a refusal.
pub struct MemoryLimiter {
    pub limit: usize,
    pub hit: bool,
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.hit = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// What the epoch-deadline callback answers at `now` for a step due at
/// `deadline`: stop once it is due; otherwise wake again after half the time
/// left, in ticks (at least one). Half, because a tick may arrive late; as
/// long as ticks are less than twice as long as [`TICK`], the next check
/// still comes before the deadline, and the last ones come every tick.
pub fn next_check(deadline: Instant, now: Instant) -> UpdateDeadline {
    match deadline.checked_duration_since(now) {
        None => UpdateDeadline::Interrupt,
        Some(left) if left.is_zero() => UpdateDeadline::Interrupt,
        Some(left) => UpdateDeadline::Continue(ticks_for(left / 2)),
    }
}

/// Whole ticks in `d`, at least one.
pub fn ticks_for(d: Duration) -> u64 {
    ((d.as_nanos() / TICK.as_nanos()) as u64).max(1)
}

/// Advances an engine's epoch at absolute times, every [`TICK`], until dropped.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub fn start(engine: &Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let engine = engine.clone();
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("rotator-epoch".into())
            .spawn(move || {
                let mut next = Instant::now() + TICK;
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                    engine.increment_epoch();
                    // The next tick is due one TICK after this one was due,
                    // not after this one happened; a tick missed entirely (the
                    // thread was not scheduled) is skipped, not made up in a
                    // burst.
                    next += TICK;
                    let now = Instant::now();
                    if next <= now {
                        next = now + TICK;
                    }
                }
            })
            .expect("spawning the epoch thread");
        Self { stop, thread: Some(thread) }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn continue_ticks(u: UpdateDeadline) -> Option<u64> {
        match u {
            UpdateDeadline::Continue(n) => Some(n),
            _ => None,
        }
    }

    #[test]
    fn the_callback_stops_a_step_once_its_deadline_has_passed() {
        let now = Instant::now();
        assert!(matches!(next_check(now, now), UpdateDeadline::Interrupt));
        assert!(matches!(next_check(now, now + Duration::from_nanos(1)), UpdateDeadline::Interrupt));
    }

    #[test]
    fn the_callback_waits_half_the_time_left_and_at_least_a_tick() {
        let now = Instant::now();
        assert_eq!(continue_ticks(next_check(now + Duration::from_secs(10), now)), Some(2_500));
        assert_eq!(continue_ticks(next_check(now + TICK * 3, now)), Some(1));
        assert_eq!(continue_ticks(next_check(now + Duration::from_nanos(1), now)), Some(1));
        // Even the longest deadline needs only a few dozen wake-ups.
        let (mut left, mut wakes) = (STEP_TIMEOUT_RANGE.1, 0);
        while left > TICK {
            left -= TICK * continue_ticks(next_check(now + left, now)).unwrap() as u32;
            wakes += 1;
        }
        assert!(wakes < 40, "{wakes} wake-ups");
    }

    #[test]
    fn defaults_lie_within_the_hard_limits() {
        let (min, d, hard) = (OutputLimits::MIN, OutputLimits::DEFAULT, OutputLimits::HARD);
        for (lo, v, hi) in [
            (min.error_message, d.error_message, hard.error_message),
            (min.log_line, d.log_line, hard.log_line),
            (min.log_lines, d.log_lines, hard.log_lines),
            (min.plan_summary, d.plan_summary, hard.plan_summary),
            (min.secret, d.secret, hard.secret),
            (min.host_calls, d.host_calls, hard.host_calls),
        ] {
            assert!(lo <= v && v <= hi, "{lo} <= {v} <= {hi}");
        }
    }

    #[test]
    fn describe_answers_over_a_cap_are_named() {
        let caps = DESCRIBE_CAPS;
        assert_eq!(caps.problem(64, 64, 4096, 65536, 64), None);
        assert_eq!(caps.problem(65, 1, 1, 1, 1).unwrap(), "its name has 65 bytes; at most 64 are allowed");
        assert_eq!(caps.problem(1, 1, 1, 1, 65).unwrap(), "its capability list has 65 entries; at most 64 are allowed");
    }

    #[test]
    fn limiter_refuses_growth_past_the_cap_and_remembers() {
        use wasmtime::ResourceLimiter;
        let mut l = MemoryLimiter { limit: 1 << 20, hit: false };
        assert!(l.memory_growing(0, 1 << 19, None).unwrap());
        assert!(!l.hit);
        assert!(!l.memory_growing(0, 2 << 20, None).unwrap());
        assert!(l.hit);
    }
}
