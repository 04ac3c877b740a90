//! The size and render time of a `/metrics` scrape at scale.
//!
//! 10,000 jobs (by default) each finish one rotation: every step event of a
//! kv-random rotation goes through the daemon's metrics observer, then the
//! per-job gauges are set from the job list as a scrape does (each job with
//! its last success, 1 % needing attention). The bench prints the scrape's
//! bytes and lines, and the median and worst render time over 20 renders.
//!
//! Run: `cargo bench -p rotator-core --bench metrics_scrape` (`-- --jobs N`).

use std::time::{Duration, Instant};

use rotator_core::metrics::{JobGauges, Metrics};
use rotator_core::rotation::{Observer, RotationEvent};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn event(job: &str, step: &'static str, outcome: &'static str) -> RotationEvent {
    RotationEvent {
        job: job.to_owned(),
        plugin: "kv-random@0.1.0".into(),
        plugin_sha256: "0".repeat(64),
        rotation_id: "r".into(),
        actor: "scheduler".into(),
        step,
        outcome,
        duration: Some(Duration::from_micros(250)),
        vault_paths: Vec::new(),
        error: None,
        kind: None,
        denied_calls: 0,
    }
}

fn main() {
    let jobs = arg("--jobs", 10_000);
    let metrics = Metrics::new();
    let ids: Vec<String> = (0..jobs).map(|i| format!("job-{i:05}")).collect();
    for id in &ids {
        for step in ["create", "stage", "set", "test", "promote", "finish"] {
            metrics.event(&event(id, step, "ok"));
        }
        metrics.event(&event(id, "rotation", "rotated"));
        metrics.vault_request(Some(200));
    }
    let now = time::OffsetDateTime::now_utc();
    let mut times = Vec::new();
    let mut text = String::new();
    for _ in 0..20 {
        let started = Instant::now();
        metrics.set_jobs(ids.iter().enumerate().map(|(i, id)| JobGauges {
            id,
            needs_attention: i % 100 == 0,
            last_success: Some(now),
        }));
        text = metrics.render();
        times.push(started.elapsed());
    }
    times.sort();
    println!("jobs: {jobs}");
    println!("scrape: {} bytes, {} lines", text.len(), text.lines().count());
    println!(
        "render (set the job gauges, then render): median {:?}, max {:?}",
        times[times.len() / 2],
        times[times.len() - 1]
    );
    let per_job = text.lines().filter(|l| l.contains("job=\"job-00001\"")).count();
    println!("series for one healthy job: {per_job}");
}
