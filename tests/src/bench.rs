//! What the end-to-end benches (`tests/benches/`) share: their one
//! argument, latency figures from a run's timings, and the Markdown rows
//! docs/benchmarks.md takes.

use std::time::{Duration, Instant};

use rotator_core::rotation::Job;
use rotator_core::state::StateStore;

/// A run's latencies and throughput.
pub struct Figures {
    pub median: Duration,
    pub p99: Duration,
    pub per_second: f64,
}

/// The figures of `times` (one per rotation), `wall` being the run's length.
pub fn figures(mut times: Vec<Duration>, wall: Duration) -> Figures {
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    Figures { median: at(0.5), p99: at(0.99), per_second: times.len() as f64 / wall.as_secs_f64() }
}

/// `rotations` rotations of `job`, one after another, after a warm-up one
/// (so every measured rotation finds the state of an earlier one).
pub async fn sequential(job: &Job, store: &StateStore, rotations: usize) -> Figures {
    job.rotate(store, "bench").await.expect("warm-up rotation");
    let mut times = Vec::with_capacity(rotations);
    let started = Instant::now();
    for _ in 0..rotations {
        let t = Instant::now();
        job.rotate(store, "bench").await.expect("rotation");
        times.push(t.elapsed());
    }
    figures(times, started.elapsed())
}

/// Every job at once, each rotating its share of `rotations`.
pub async fn concurrent(jobs: &[Job], store: &StateStore, rotations: usize) -> Figures {
    let started = Instant::now();
    let per_job = rotations.div_ceil(jobs.len());
    let runs = jobs.iter().map(|job| async move {
        let mut times = Vec::with_capacity(per_job);
        for _ in 0..per_job {
            let t = Instant::now();
            job.rotate(store, "bench").await.expect("rotation");
            times.push(t.elapsed());
        }
        times
    });
    let times: Vec<Duration> = futures_util::future::join_all(runs).await.into_iter().flatten().collect();
    figures(times, started.elapsed())
}

/// `--rotations N` from the command line, or `default`.
pub fn rotations_arg(default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--rotations")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// Print the Markdown table of `runs` (name, figures).
pub fn print_table(runs: &[(&str, &Figures)]) {
    println!("| run | median | p99 | rotations/s |");
    println!("| --- | ---: | ---: | ---: |");
    for (name, f) in runs {
        println!("| {name} | {:.1} ms | {:.1} ms | {:.1} |", ms(f.median), ms(f.p99), f.per_second);
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
