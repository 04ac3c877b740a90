//! Scheduler lateness: how long after its deadline a job actually starts,
//! with 10,000 jobs in the deadline queue.
//!
//! The scheduler's loop is reproduced exactly: one consumer awaits
//! [`DeadlineQueue::next`] and spawns a task per due job (as
//! `Scheduler::run` does); the task records `now − deadline` when it starts.
//! Deadlines are spread uniformly over a few seconds, and a second task keeps
//! inserting new deadlines meanwhile (re-arming jobs, as finished rotations
//! do), so early wake-ups are part of what is measured. Real time, multi-thread
//! runtime, no Vault: the number is the scheduler's own cost.
//!
//! Run: `cargo bench -p rotator-daemon --bench scheduler_lateness`
//! (`-- --jobs N --spread-ms M` to change the load.)

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rotator_daemon::scheduler::queue::DeadlineQueue;
use tokio::time::Instant;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn main() {
    let jobs = arg("--jobs", 10_000) as usize;
    let spread = Duration::from_millis(arg("--spread-ms", 5_000));
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let lateness = rt.block_on(async move {
        let queue = Arc::new(DeadlineQueue::new());
        let samples = Arc::new(Mutex::new(Vec::with_capacity(jobs * 2)));
        let start = Instant::now() + Duration::from_millis(200);
        // Half the jobs are queued up front, half arrive while it runs.
        let step = spread / jobs as u32;
        for i in (0..jobs).step_by(2) {
            queue.schedule(i, start + step * i as u32);
        }
        let inserter = {
            let queue = queue.clone();
            tokio::spawn(async move {
                for i in (1..jobs).step_by(2) {
                    let at = start + step * i as u32;
                    // Inserted shortly before it is due: an early wake-up.
                    tokio::time::sleep_until(at - Duration::from_millis(20)).await;
                    queue.schedule(i, at);
                }
            })
        };
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..jobs {
            let (_, deadline) = queue.next().await;
            let samples = samples.clone();
            tasks.spawn(async move {
                let late = Instant::now().saturating_duration_since(deadline);
                samples.lock().unwrap().push(late);
            });
        }
        inserter.await.unwrap();
        while tasks.join_next().await.is_some() {}
        Arc::try_unwrap(samples).unwrap().into_inner().unwrap()
    });
    let mut sorted = lateness;
    sorted.sort();
    println!("scheduler lateness, {jobs} jobs over {spread:?} (deadline → task start):");
    for (name, p) in [("median", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999)] {
        println!("  {name:<6} {:>9.3} ms", percentile(&sorted, p).as_secs_f64() * 1e3);
    }
    println!("  max    {:>9.3} ms", sorted.last().unwrap().as_secs_f64() * 1e3);
    let p99 = percentile(&sorted, 0.99);
    println!("target p99 ≤ 5 ms: {}", if p99 <= Duration::from_millis(5) { "met" } else { "NOT MET" });
}
