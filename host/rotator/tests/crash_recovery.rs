//! The fault-injection suite: the real `rotator run` process is aborted at
//! every crash point of a rotation (`ROTATOR_CRASH_AT`), restarted, and the
//! end-state rule is checked against Vault and a real PostgreSQL.
//!
//! After every trial: the password Vault holds logs in to PostgreSQL, the
//! state record holds no PENDING, and exactly one more rotation was recorded
//! (one more KV version, one more `rotated` history entry). The randomized
//! trial count is `CRASH_TRIALS` (default 200); `scripts/crash-trials.sh`
//! runs 1,000 and writes `docs/reliability.md`.

#[path = "../../../tests/src/postgres.rs"]
#[allow(dead_code)]
mod postgres;
#[path = "support/rig.rs"]
#[allow(dead_code)]
mod rig;

use std::time::{Duration, Instant};

use rand::Rng;
use rig::{Proc, Rig};
use rotator_core::crash;

/// Run the daemon until it aborts at its crash point, or until the record
/// shows `rotations` done with nothing in progress (then stop it with
/// SIGTERM, once it is up). Returns whether it crashed.
async fn drive(rig: &Rig, mut p: Proc, rotations: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = p.child.try_wait() {
            let text = p.output();
            assert!(text.contains("crash point"), "rotator exited with {status} without a crash point:\n{text}");
            return true;
        }
        let s = rig.state().await;
        if p.is_up() && s.rotations >= rotations && s.in_progress.is_none() {
            p.signal("TERM");
            let status = p.child.wait().unwrap();
            let text = p.output();
            // It may have reached a late crash point just before the signal.
            assert!(status.success() || text.contains("crash point"), "rotator stopped with {status}:\n{text}");
            return !status.success();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = p.child.kill();
    panic!("the rotation did not settle in 60 s: {}", p.output());
}

/// One trial: make a rotation due, run the daemon with `crashes` armed one
/// after another (each restart arms the next), then a clean daemon, and
/// check the result.
async fn trial(rig: &Rig, before: u64, crashes: &[String]) -> usize {
    rig.make_due().await;
    let mut crashed = 0;
    for point in crashes {
        crashed += usize::from(drive(rig, rig.daemon(Some(point)), before + 1).await);
    }
    let clean = drive(rig, rig.daemon(None), before + 1).await;
    assert!(!clean, "no crash point was armed");
    rig.check(before + 1, &format!("after crashes {crashes:?}")).await;
    crashed
}

/// Every point a single-user PostgreSQL rotation passes: the protocol's
/// actions and each host call the plugin makes.
fn points() -> Vec<String> {
    let mut all: Vec<String> = crash::all_points().iter().map(ToString::to_string).collect();
    for n in 1..=3 {
        all.push(format!("before:host-call:{n}"));
        all.push(format!("after:host-call:{n}"));
    }
    all
}

#[tokio::test(flavor = "multi_thread")]
async fn every_crash_point_recovers_without_lockout() {
    let rig = Rig::new("").await;
    let mut done = 0;
    // The first rotation creates the secret; each point gets one trial.
    trial(&rig, done, &[]).await;
    done += 1;
    for point in points() {
        let crashed = trial(&rig, done, std::slice::from_ref(&point)).await;
        done += 1;
        // A successful rotation passes every point but the rollback ones
        // (and the plugin makes two host calls: set's and test's).
        let reached = !point.contains("rollback") && !point.ends_with("host-call:3");
        assert_eq!(crashed, usize::from(reached), "{point}: crashed {crashed} times");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn randomized_crashes_never_lock_anyone_out() {
    let trials: u64 = std::env::var("CRASH_TRIALS").ok().and_then(|n| n.parse().ok()).unwrap_or(200);
    let rig = Rig::new("").await;
    trial(&rig, 0, &[]).await;
    let all = points();
    let mut rng = rand::rng();
    let started = Instant::now();
    let mut crashes_total = 0;
    for t in 0..trials {
        // Up to three crashes in a row: the recovery itself may crash.
        let n = rng.random_range(0..=3);
        let crashes: Vec<String> = (0..n).map(|_| all[rng.random_range(0..all.len())].clone()).collect();
        crashes_total += trial(&rig, t + 1, &crashes).await;
    }
    // Read by scripts/crash-trials.sh for docs/reliability.md.
    println!("crash trials: 0 lockouts / {trials} trials ({crashes_total} crashes) in {:.0?}", started.elapsed());
}
