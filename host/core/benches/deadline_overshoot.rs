//! Deadline overshoot: how long after its step deadline a runaway plugin is
//! actually stopped.
//!
//! The `fixture-spin` plugin's `create` loops forever. Each iteration starts
//! a fresh run with the given `step_timeout`, calls `create` and times it
//! until the deadline failure comes back; the overshoot is that time minus
//! the deadline. It includes the call's entry, the trap and its unwinding:
//! what a caller waiting for the step sees. Deadlines of 100 ms, 1 s and
//! 10 s, a few iterations each (the 10 s case costs 10 s per iteration).
//!
//! Run: `cargo bench -p rotator-core --bench deadline_overshoot`
//! (`-- --iterations N` for N runs of the 100 ms and 1 s cases; the 10 s
//! case runs max(N / 10, 3) times.)

use std::time::{Duration, Instant};

use rotator_core::plugin::{Failure, RunConfig, RunLimits, Runtime, RuntimeOptions, StepContext};
use rotator_test_artifacts::build_artifact;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let iterations = arg("--iterations", 30);
    let runtime = Runtime::new(RuntimeOptions { max_concurrent_runs: 4, ..Default::default() }).expect("runtime");
    let spin = runtime.load_file(&build_artifact("fixture_spin"), None).expect("fixture-spin");
    let ctx = StepContext {
        job_id: "bench".into(),
        rotation_id: "r".into(),
        settings: serde_json::json!({}),
        current: None,
        attempt: 1,
    };
    println!("{:>9}  {:>4}  {:>10}  {:>10}  {:>10}", "deadline", "runs", "min", "median", "max");
    for (deadline, runs) in [
        (Duration::from_millis(100), iterations),
        (Duration::from_secs(1), iterations),
        (Duration::from_secs(10), (iterations / 10).max(3)),
    ] {
        let limits = RunLimits { step_timeout: deadline, ..Default::default() };
        let config = RunConfig { limits, ..RunConfig::default() };
        let mut overshoot = Vec::with_capacity(runs as usize);
        for _ in 0..runs {
            let mut run = spin.start("bench", config.clone()).expect("start");
            let started = Instant::now();
            let err = run.create(&ctx).expect_err("spin never returns");
            let elapsed = started.elapsed();
            assert_eq!(err.failure, Failure::Deadline(deadline), "{err}");
            overshoot.push(elapsed.saturating_sub(deadline));
        }
        overshoot.sort();
        let (min, median, max) = (overshoot[0], overshoot[overshoot.len() / 2], overshoot[overshoot.len() - 1]);
        println!(
            "{:>9}  {:>4}  {:>10}  {:>10}  {:>10}",
            humantime::format_duration(deadline).to_string(),
            runs,
            ms(min),
            ms(median),
            ms(max)
        );
    }
}
