//! Per-run resource limits: memory cap and step deadline.
//!
//! Memory is capped by a [`wasmtime::ResourceLimiter`] that remembers whether
//! the cap was hit, so a failed allocation that ends in a trap is reported as
//! "memory limit" instead of a bare `unreachable`. Time is capped with epoch
//! interruption: one ticker thread per engine advances the epoch every
//! [`TICK`], and each step gets a deadline in ticks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::Engine;

/// Default memory cap per plugin run.
pub const DEFAULT_MEMORY: usize = 64 << 20;
/// Default deadline per protocol step.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// Epoch granularity: deadlines are accurate to about this much.
pub const TICK: Duration = Duration::from_millis(5);
/// Tables beyond this many elements are refused (a runaway guest, not a real need).
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// Limits for one plugin run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunLimits {
    pub memory: usize,
    pub step_timeout: Duration,
}

impl Default for RunLimits {
    fn default() -> Self {
        Self { memory: DEFAULT_MEMORY, step_timeout: DEFAULT_STEP_TIMEOUT }
    }
}

impl RunLimits {
    /// The step timeout in epoch ticks, at least one.
    pub fn deadline_ticks(&self) -> u64 {
        (self.step_timeout.as_nanos().div_ceil(TICK.as_nanos()) as u64).max(1)
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

/// Advances an engine's epoch every [`TICK`] until dropped.
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
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    engine.increment_epoch();
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

    #[test]
    fn deadline_rounds_up_to_whole_ticks() {
        let l = RunLimits { memory: 1, step_timeout: Duration::from_millis(12) };
        assert_eq!(l.deadline_ticks(), 3);
        let l = RunLimits { memory: 1, step_timeout: Duration::ZERO };
        assert_eq!(l.deadline_ticks(), 1);
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
