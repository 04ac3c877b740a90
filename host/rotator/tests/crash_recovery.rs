//! The fault-injection suite: the real `rotator run` process is aborted at
//! every crash point of a rotation (`ROTATOR_CRASH_AT`), restarted, and the
//! end-state rule is checked against Vault and a real target: PostgreSQL
//! (`postgres-password`, over the `sql` import), RabbitMQ
//! (`rabbitmq-password` in handle mode, over the `http` import) and IAM on
//! moto with authentication on (`aws-iam-access-key`, SigV4 by the host).
//!
//! After every trial: the credential Vault holds logs in to the target, the
//! state record holds no PENDING, and exactly one more rotation was recorded
//! (one more KV version, one more `rotated` history entry); for IAM also at
//! most two keys, the other one Inactive (no orphan). The randomized trial
//! counts are `CRASH_TRIALS` (PostgreSQL, default 200),
//! `CRASH_TRIALS_RABBITMQ`, `CRASH_TRIALS_AWS_IAM` and
//! `CRASH_TRIALS_AWS_STORE` (the IAM job with its key in Secrets Manager;
//! default 40 each); for a secret in Secrets Manager, no `AWSPENDING` is
//! left and `AWSCURRENT` is on the last rotation's version. The same over a
//! daemon without Vault (state records in Secrets Manager as well,
//! `CRASH_TRIALS_AWS_ONLY`, default 20), which also has its API checked.
//! `scripts/crash-trials.sh` runs 1,000 and writes `docs/reliability.md`.

// The throwaway servers of the integration tests, used through the lib
// (not included by path, which would run their own tests here again).
use rotator_tests::{moto, postgres, rabbitmq};
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

/// Every point of the protocol, and the first `calls` host calls' points.
fn points(calls: usize) -> Vec<String> {
    let mut all: Vec<String> = crash::all_points().iter().map(ToString::to_string).collect();
    for n in 1..=calls {
        all.push(format!("before:host-call:{n}"));
        all.push(format!("after:host-call:{n}"));
    }
    all
}

/// One trial per crash point, after a first rotation that creates the
/// secret. A successful rotation passes every point but the rollback ones,
/// and the host-call points of the calls it makes: those that crashed must
/// be exactly the first ones, at least `min_calls` of them. Returns how
/// many host calls a rotation made.
async fn every_point(rig: &Rig, min_calls: usize) -> usize {
    trial(rig, 0, &[]).await;
    let mut calls_reached = Vec::new();
    for (done, point) in (1..).zip(points(min_calls + 6)) {
        let crashed = trial(rig, done, std::slice::from_ref(&point)).await;
        match point.rsplit_once("host-call:").map(|(_, n)| n.parse::<usize>().unwrap()) {
            Some(n) => calls_reached.push((n, crashed)),
            None => assert_eq!(crashed, usize::from(!point.contains("rollback")), "{point}: crashed {crashed} times"),
        }
    }
    let made = calls_reached.iter().filter(|(_, crashed)| *crashed == 1).map(|(n, _)| *n).max().unwrap_or(0);
    for (n, crashed) in &calls_reached {
        assert_eq!(*crashed, usize::from(*n <= made), "host call {n}: crashed {crashed} times (calls made: {made})");
    }
    assert!(made >= min_calls, "a rotation made {made} host calls; expected at least {min_calls}");
    made
}

/// `trials` random runs of up to three crashes in a row (the recovery
/// itself may crash), over the points of a rotation making `calls` calls.
async fn randomized(rig: &Rig, trials: u64, calls: usize) -> (u64, usize, Duration) {
    trial(rig, 0, &[]).await;
    let all = points(calls);
    let mut rng = rand::rng();
    let started = Instant::now();
    let mut crashes_total = 0;
    for t in 0..trials {
        let n = rng.random_range(0..=3);
        let crashes: Vec<String> = (0..n).map(|_| all[rng.random_range(0..all.len())].clone()).collect();
        crashes_total += trial(rig, t + 1, &crashes).await;
    }
    (trials, crashes_total, started.elapsed())
}

fn trials(var: &str, default: u64) -> u64 {
    std::env::var(var).ok().and_then(|n| n.parse().ok()).unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_crash_point_recovers_without_lockout() {
    // set's ALTER ROLE and test's login; the third point is never reached.
    assert_eq!(every_point(&Rig::new("").await, 2).await, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn randomized_crashes_never_lock_anyone_out() {
    let (trials, crashes, took) = randomized(&Rig::new("").await, trials("CRASH_TRIALS", 200), 2).await;
    // Read by scripts/crash-trials.sh for docs/reliability.md.
    println!("crash trials: 0 lockouts / {trials} trials ({crashes} crashes) in {took:.0?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn rabbitmq_every_crash_point_recovers_without_lockout() {
    // At least: reading the admin's credentials, setting the password,
    // proving it.
    every_point(&Rig::rabbitmq().await, 3).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rabbitmq_randomized_crashes_never_lock_anyone_out() {
    let rig = Rig::rabbitmq().await;
    let calls = 12;
    let (trials, crashes, took) = randomized(&rig, trials("CRASH_TRIALS_RABBITMQ", 40), calls).await;
    println!("rabbitmq crash trials: 0 lockouts / {trials} trials ({crashes} crashes) in {took:.0?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn aws_iam_every_crash_point_recovers_without_lockout() {
    // create: ListAccessKeys, DeleteAccessKey (the previous, inactive key),
    // CreateAccessKey; test: GetCallerIdentity; finish: UpdateAccessKey.
    assert_eq!(every_point(&Rig::aws_iam().await, 5).await, 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn aws_iam_randomized_crashes_never_lock_anyone_out() {
    let rig = Rig::aws_iam().await;
    // A create after a crash may also ask GetAccessKeyLastUsed of an orphan.
    let calls = 8;
    let (trials, crashes, took) = randomized(&rig, trials("CRASH_TRIALS_AWS_IAM", 40), calls).await;
    println!("aws-iam crash trials: 0 lockouts / {trials} trials ({crashes} crashes) in {took:.0?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_manager_every_crash_point_leaves_no_awspending() {
    // kv-random in Secrets Manager: the plugin makes no host calls; the
    // store's own calls are the host's.
    assert_eq!(every_point(&Rig::kv_random_in_secrets_manager().await, 0).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_manager_iam_every_crash_point_recovers_without_lockout() {
    assert_eq!(every_point(&Rig::aws_iam_in_secrets_manager().await, 5).await, 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_manager_iam_randomized_crashes_never_lock_anyone_out() {
    let rig = Rig::aws_iam_in_secrets_manager().await;
    let (trials, crashes, took) = randomized(&rig, trials("CRASH_TRIALS_AWS_STORE", 40), 8).await;
    println!("aws-store crash trials: 0 lockouts / {trials} trials ({crashes} crashes) in {took:.0?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_vault_every_crash_point_leaves_no_awspending() {
    // The state records are Secrets Manager secrets too: each crash lands
    // between the record's writes and the secret's labels.
    assert_eq!(every_point(&Rig::kv_random_without_vault().await, 0).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_vault_randomized_crashes_leave_no_awspending() {
    let rig = Rig::kv_random_without_vault().await;
    let (trials, crashes, took) = randomized(&rig, trials("CRASH_TRIALS_AWS_ONLY", 20), 0).await;
    println!("aws-only crash trials: 0 lockouts / {trials} trials ({crashes} crashes) in {took:.0?}");
}

/// Not a crash test, but the same world: a daemon whose config and
/// environment name no Vault starts, is ready, rotates on request, and
/// answers the routes that are about Vault with a 404 that says why.
#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_without_vault_is_ready_and_rotates_on_request() {
    let rig = Rig::kv_random_without_vault().await;
    let mut p = rig.daemon(None);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !p.is_up() {
        assert!(Instant::now() < deadline && p.child.try_wait().unwrap().is_none(), "not up:\n{}", p.output());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let base = format!("http://{}", p.api_addr().expect("the startup line names the API"));
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str| {
        http.request(method, format!("{base}{path}")).bearer_auth("crash-suite-api-token-0123456789").send()
    };
    assert_eq!(call(reqwest::Method::GET, "/readyz").await.unwrap().status(), 200);
    let status: serde_json::Value = call(reqwest::Method::GET, "/status").await.unwrap().json().await.unwrap();
    assert_eq!(status["readiness"]["checks"]["vault"], "not used", "{status}");
    assert_eq!(status["readiness"]["status"], "ready", "{status}");

    // A job without a record is due at once: its first rotation.
    while !(rig.state().await.rotations == 1 && rig.state().await.in_progress.is_none()) {
        assert!(Instant::now() < deadline, "the first rotation did not end:\n{}", p.output());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    rig.check(1, "the first rotation without Vault").await;
    let rotated = call(reqwest::Method::POST, "/jobs/app-db/rotate").await.unwrap();
    assert_eq!(rotated.status(), 200, "{}", rotated.text().await.unwrap());
    rig.check(2, "rotated on request without Vault").await;
    let job: serde_json::Value = call(reqwest::Method::GET, "/jobs/app-db").await.unwrap().json().await.unwrap();
    assert_eq!(job["rotations"], 2, "{job}");

    for path in ["/kv/secret/app/db", "/token", "/dynamic/app"] {
        let answer = call(reqwest::Method::GET, path).await.unwrap();
        assert_eq!(answer.status(), 404, "{path}");
        let text = answer.text().await.unwrap();
        assert!(text.contains("runs without Vault"), "{path}: {text}");
    }
    p.signal("TERM");
    assert!(p.child.wait().unwrap().success());
    let text = p.output();
    assert!(text.contains("running without Vault"), "{text}");
    assert!(!text.to_lowercase().contains("vault token"), "no token is looked up or renewed:\n{text}");
}
