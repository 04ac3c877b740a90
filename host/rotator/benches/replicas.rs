//! What replicas cost and how fast they take over (issue 13), with real
//! `rotator run` processes on one dev server:
//!
//! - **Takeover after SIGKILL**: two replicas; the one holding a shard is
//!   killed; the time until the survivor holds every shard, per lease TTL
//!   (median and p99 of `--trials`), beside the TTL itself.
//! - **Coordination cost and jobs per replica**: `--jobs` kv-random jobs
//!   rotating once a minute, on 1, 2 and 3 replicas: the Vault requests the
//!   replicas spend on coordination per job per minute (their own metric),
//!   against those the rotations make; the jobs each replica holds; the
//!   rotations done in a `--window` and their lateness against their slot.
//!
//! `cargo bench -p rotator --bench replicas -- [--trials 10] [--jobs 3000] [--window 60]`
//! (docs/benchmarks.md, "Replicas").

use rotator_tests::{moto, postgres, rabbitmq};
#[path = "../tests/support/cluster.rs"]
#[allow(dead_code)]
mod cluster;
#[path = "../tests/support/rig.rs"]
#[allow(dead_code)]
mod rig;

use std::time::{Duration, Instant};

use cluster::Cluster;

#[allow(unused_imports)]
use {moto as _, postgres as _, rabbitmq as _};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|n| n.parse().ok()).unwrap_or(default)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Time from SIGKILL of one of two replicas to the survivor holding every
/// shard, `trials` times.
async fn takeover(ttl: Duration, trials: u64) -> Vec<f64> {
    let mut c = Cluster::new(2, 8, 0, Duration::from_secs(60), ttl).await;
    c.spawn(0);
    c.spawn(1);
    let mut took = Vec::new();
    for t in 0..trials {
        c.settled(2, Duration::from_secs(120)).await;
        let victim = (t % 2) as usize;
        c.kill(victim);
        let killed = Instant::now();
        c.settled(1, Duration::from_secs(120)).await;
        took.push(killed.elapsed().as_secs_f64());
        c.spawn(victim);
    }
    took.sort_by(f64::total_cmp);
    took
}

/// A metric summed over a replica's series.
async fn metric(c: &mut Cluster, i: usize, name: &str, filter: &str) -> f64 {
    let text = c.metrics(i).await;
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(filter))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

/// One row of the scale table: `replicas` replicas holding `jobs` jobs.
async fn scale(replicas: usize, jobs: usize, window: Duration) -> String {
    let mut c = Cluster::new(replicas, jobs, 0, Duration::from_secs(60), Duration::from_secs(15)).await;
    for i in 0..replicas {
        c.spawn(i);
    }
    c.settled(replicas, Duration::from_secs(300)).await;
    // Let every replica arm what it holds.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let before = snapshot(&mut c, replicas).await;
    let from = time::OffsetDateTime::now_utc();
    tokio::time::sleep(window).await;
    let after = snapshot(&mut c, replicas).await;
    let minutes = window.as_secs_f64() / 60.0;
    let coordination = (after.0 - before.0) / jobs as f64 / minutes;
    let all_requests = (after.1 - before.1) / jobs as f64 / minutes;
    let rotations = after.2 - before.2;
    let mut held = Vec::new();
    for i in 0..replicas {
        held.push(c.status(i).await["replica"]["jobs_owned"].as_u64().unwrap_or(0).to_string());
    }
    let mut late = Vec::new();
    for job in c.jobs() {
        let h = c.vault.kv_read("secret", &format!("rotator/state/{job}")).await.unwrap();
        let Some(h) = h else { continue };
        let state = rotator_core::state::JobState::from_secret(&h.data).unwrap();
        for e in state.history.iter().filter(|e| e.started >= from) {
            if let Some(slot) = e.slot {
                late.push((e.started - slot).as_seconds_f64());
            }
        }
    }
    late.sort_by(f64::total_cmp);
    let (p50, p99) = if late.is_empty() { (0.0, 0.0) } else { (percentile(&late, 0.5), percentile(&late, 0.99)) };
    for i in 0..replicas {
        c.stop(i);
    }
    format!(
        "| {replicas} | {jobs} | {} | {rotations:.0} | {:.3} s / {:.3} s | {coordination:.3} | {all_requests:.2} |",
        held.join(" / "),
        p50,
        p99
    )
}

/// (coordination requests, all Vault requests, rotations) over every replica.
async fn snapshot(c: &mut Cluster, replicas: usize) -> (f64, f64, f64) {
    let mut s = (0.0, 0.0, 0.0);
    for i in 0..replicas {
        s.0 += metric(c, i, "rotator_replica_vault_requests_total", "").await;
        s.1 += metric(c, i, "rotator_vault_requests_total", "").await;
        s.2 += metric(c, i, "rotator_rotations_total", "outcome=\"rotated\"").await;
    }
    s
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let trials = arg("--trials", 10);
    let jobs = arg("--jobs", 3000) as usize;
    let window = Duration::from_secs(arg("--window", 60));
    println!("## Takeover after SIGKILL ({trials} trials per TTL)\n");
    println!("| lease TTL | median | p99 | max |\n| ---: | ---: | ---: | ---: |");
    for ttl in [3, 15] {
        let took = takeover(Duration::from_secs(ttl), trials).await;
        println!(
            "| {ttl} s | {:.2} s | {:.2} s | {:.2} s |",
            percentile(&took, 0.5),
            percentile(&took, 0.99),
            took.last().unwrap()
        );
    }
    println!("\n## {jobs} jobs at one rotation a minute each, lease TTL 15 s, {} s window\n", window.as_secs());
    println!(
        "| replicas | jobs | jobs held per replica | rotations in window | lateness p50 / p99 | coordination requests per job per minute | all Vault requests per job per minute |"
    );
    println!("| ---: | ---: | --- | ---: | ---: | ---: | ---: |");
    for replicas in 1..=3 {
        println!("{}", scale(replicas, jobs, window).await);
    }
}
