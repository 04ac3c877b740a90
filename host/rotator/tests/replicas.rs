//! Replicas on Vault (issue 13), with real processes: `rotator run`
//! replicas on one dev server share kv-random and PostgreSQL jobs, and are
//! killed, frozen and cut off from Vault while they rotate. What they did is
//! then read back from every version Vault kept of each job's record and
//! secret:
//!
//! - every slot rotated at most once, and each rotation made exactly one
//!   new version of the secret (no double rotation);
//! - no slot was missed beyond the catch-up rule (a slot that passes while
//!   the job's run is late is merged into that run), outside the stretches
//!   when Vault was answering 503;
//! - the ownership epochs on a record's versions never go down (no write
//!   by a replica fenced off by a newer owner);
//! - every rotation ever staged ended, with its own id (a takeover resumes
//!   it), PENDING is cleared, and every PostgreSQL password in Vault logs in.
//!
//! `CHAOS_SECONDS` (default 40) bounds the chaos; `CHAOS_SEED` replays one.
//! `scripts/replica-chaos.sh` runs longer trials for docs/reliability.md.

use rotator_tests::{moto, postgres, rabbitmq};
#[path = "support/cluster.rs"]
#[allow(dead_code)]
mod cluster;
#[path = "support/rig.rs"]
#[allow(dead_code)]
mod rig;

use std::time::{Duration, Instant};

use cluster::Cluster;
use rand::{Rng, SeedableRng};
use rotator_devserver::FaultRules;
use time::OffsetDateTime;

// The rig's module names these; this binary uses only PostgreSQL.
#[allow(unused_imports)]
use {moto as _, rabbitmq as _};

const INTERVAL: Duration = Duration::from_secs(4);
const TTL: Duration = Duration::from_secs(3);

/// Check a job's history as read back from Vault.
async fn check_job(c: &Cluster, job: &str, outages: &[(OffsetDateTime, OffsetDateTime)]) -> Tally {
    let h = c.history(job).await;
    let last = h.records.last().expect("a record");
    assert!(last.in_progress.is_none(), "{job}: PENDING left behind: {:?}", last.in_progress);
    let rotated = h.rotated();
    assert!(!rotated.is_empty(), "{job}: never rotated");
    assert_eq!(rotated.len() as u64, h.secret_versions, "{job}: one secret version per rotation");
    let mut slots: Vec<_> = rotated.iter().filter_map(|r| r.slot).collect();
    let n = slots.len();
    slots.sort();
    slots.dedup();
    assert_eq!(slots.len(), n, "{job}: a slot rotated twice: {rotated:?}");
    let epochs = h.epochs();
    assert!(epochs.windows(2).all(|w| w[0] <= w[1]), "{job}: a write from an older epoch landed: {epochs:?}");
    let ended: std::collections::BTreeSet<String> = h.entries().into_iter().map(|e| e.id).collect();
    for id in h.started().keys() {
        assert!(ended.contains(id), "{job}: rotation {id} was staged and never ended");
    }
    // During an outage a run or a takeover's first read fails, and is
    // retried after the interval: slots in those stretches may be missed.
    let slack = INTERVAL * 2 + TTL;
    let (in_outage, missed): (Vec<_>, Vec<_>) = h
        .missed(INTERVAL)
        .into_iter()
        .partition(|g| outages.iter().any(|(from, to)| *g >= *from - INTERVAL && *g <= *to + slack));
    assert!(missed.is_empty(), "{job}: slots missed beyond the catch-up rule: {missed:?}\n{:?}", h.entries());
    if job.starts_with("pg-") {
        let fields = h.current.fields();
        let (user, password) = (fields["username"].as_str().unwrap(), fields["password"].as_str().unwrap());
        assert!(
            c.pg.as_ref().unwrap().logs_in(user, password).await,
            "{job}: LOCKOUT: the password in Vault is refused"
        );
    }
    Tally { rotations: rotated.len(), merged: merged_slots(&h), missed_in_outages: in_outage.len() }
}

/// What one job's history adds to the run's figures.
#[derive(Default)]
struct Tally {
    rotations: usize,
    /// Slots merged into a late run by the catch-up rule.
    merged: usize,
    /// Slots missed while Vault answered 503.
    missed_in_outages: usize,
}

/// Slots skipped between answered ones (merged into a late run, or missed
/// in an outage).
fn merged_slots(h: &cluster::History) -> usize {
    let slots: Vec<_> = h.entries().iter().filter_map(|e| e.slot).collect();
    let (first, last) = (slots.iter().min(), slots.iter().max());
    match (first, last) {
        (Some(a), Some(b)) => {
            let span = ((*b - *a).as_seconds_f64() / INTERVAL.as_secs_f64()).round() as usize + 1;
            let mut distinct = slots.clone();
            distinct.sort();
            distinct.dedup();
            span.saturating_sub(distinct.len())
        }
        _ => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_rotate_each_slot_once_through_kills_pauses_and_vault_outages() {
    let seconds: u64 = std::env::var("CHAOS_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(40);
    let seed: u64 = std::env::var("CHAOS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("chaos: seed {seed} (CHAOS_SEED replays it), {seconds} s");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut c = Cluster::new(3, 6, 2, INTERVAL, TTL).await;
    for i in 0..3 {
        c.spawn(i);
    }
    for i in 0..3 {
        c.api(i).await;
    }
    c.settled(3, Duration::from_secs(60)).await;
    // Each replica's own view catches up at its next heartbeat.
    tokio::time::sleep(TTL / 2).await;
    let mut owned: Vec<String> = Vec::new();
    for i in 0..3 {
        let s = c.status(i).await;
        assert_eq!(s["replica"]["members"].as_array().map(Vec::len), Some(3), "{s}");
        let jobs = s["replica"]["jobs"].as_array().unwrap();
        assert_eq!(s["replica"]["jobs_owned"].as_u64(), Some(jobs.len() as u64), "{s}");
        owned.extend(jobs.iter().map(|j| j.as_str().unwrap().to_owned()));
    }
    owned.sort();
    let mut all = c.jobs();
    all.sort();
    assert_eq!(owned, all, "each job is owned by exactly one replica");
    // `rotate now` on a replica that does not own the job names the owner.
    let job = c.kv_jobs[0].clone();
    let mut sent_elsewhere = 0;
    for i in 0..3 {
        let (status, body) = c.rotate_now(i, &job).await;
        match status {
            409 if body.contains("is run by replica") => {
                assert!(body.contains("API at 127.0.0.1:"), "{body}");
                sent_elsewhere += 1;
            }
            // The owner rotates it (or says it is rotating right now).
            _ => assert!(status == 200 || body.contains("rotating right now"), "{status}: {body}"),
        }
    }
    assert_eq!(sent_elsewhere, 2, "the two replicas that do not own `{job}` name its owner");

    let (mut kills, mut pauses, mut outages) = (0, 0, Vec::new());
    let end = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(rng.random_range(500..2500))).await;
        let i = rng.random_range(0..3);
        match rng.random_range(0..3) {
            0 => {
                c.kill(i);
                kills += 1;
                tokio::time::sleep(Duration::from_millis(rng.random_range(200..3000))).await;
                c.spawn(i);
            }
            1 => {
                // Past the lease: the others take over meanwhile.
                c.signal(i, "STOP");
                pauses += 1;
                tokio::time::sleep(TTL + Duration::from_millis(rng.random_range(500..2500))).await;
                c.signal(i, "CONT");
            }
            _ => {
                let from = OffsetDateTime::now_utc();
                let all = FaultRules { rate: 1.0, statuses: vec![503], ..Default::default() };
                c.server.set_faults(Some(all));
                tokio::time::sleep(Duration::from_millis(rng.random_range(500..2500))).await;
                c.server.set_faults(None);
                outages.push((from, OffsetDateTime::now_utc()));
            }
        }
    }
    // Quiet again: every replica up, the split even, a few more slots.
    for i in 0..3 {
        c.api(i).await;
    }
    c.settled(3, Duration::from_secs(60)).await;
    tokio::time::sleep(INTERVAL * 2).await;
    let mut fenced = 0;
    for i in 0..3 {
        let out = c.stop(i);
        fenced += out.matches("no longer owns the job").count();
    }
    let mut total = Tally::default();
    for job in c.jobs() {
        let t = check_job(&c, &job, &outages).await;
        total.rotations += t.rotations;
        total.merged += t.merged;
        total.missed_in_outages += t.missed_in_outages;
    }
    eprintln!(
        "chaos: seed {seed}: {kills} kills, {pauses} pauses, {} outages; {} rotations of {} jobs, 0 double, \
         {} slots merged by catch-up ({} of them in outages); {fenced} runs fenced",
        outages.len(),
        total.rotations,
        c.jobs().len(),
        total.merged,
        total.missed_in_outages,
    );
}

/// A replica frozen right after `set` (its new password is in PostgreSQL,
/// staged in its record) loses the job to the other replica, which resumes
/// the same rotation and ends it; the frozen one, continued, is fenced at
/// its next step and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_frozen_mid_rotation_is_fenced_and_the_other_resumes_its_rotation() {
    let mut c = Cluster::new(2, 0, 1, INTERVAL, TTL).await;
    // Alone, r0 owns every shard, and freezes at its first `set`; r1 joins
    // only then (without the pause), so the resumed `set` runs on.
    c.spawn_with(0, &[(rotator_core::crash::PAUSE_ENV, "after:set")]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !c.procs[0].as_mut().unwrap().output().contains("pause point after:set") {
        assert!(Instant::now() < deadline, "r0 did not reach `set` in 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let frozen = 0;
    c.spawn(1);
    let staged = c.history("pg-0").await.records.last().unwrap().in_progress.clone().expect("staged");
    // The other takes over after the lease and ends the same rotation.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let h = c.history("pg-0").await;
        if h.rotated().iter().any(|r| r.id == staged.id) {
            break;
        }
        assert!(Instant::now() < deadline, "the rotation was not resumed: {:?}", h.records.last());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = c.history("pg-0").await.records.len();
    c.signal(frozen, "CONT");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !c.procs[frozen].as_mut().unwrap().output().contains("no longer owns the job") {
        assert!(Instant::now() < deadline, "the frozen replica was not fenced");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let h = c.history("pg-0").await;
    let other = h.rotated().into_iter().find(|r| r.id == staged.id).unwrap();
    let frozen_id =
        h.records.iter().find_map(|r| r.in_progress.as_ref().filter(|p| p.id == staged.id).and(r.fence.clone()));
    let taker = other.fence.expect("the resumed rotation names its replica");
    assert_ne!(Some(&taker), frozen_id.as_ref(), "the rotation was ended by the other replica");
    assert!(taker.epoch > frozen_id.map(|f| f.epoch).unwrap_or(0), "the takeover came under a newer epoch");
    let frozen_name = format!("r{frozen}-");
    let later: Vec<_> = h.records[before..].iter().filter_map(|r| r.fence.as_ref()).collect();
    assert!(
        later.iter().all(|f| !f.replica.starts_with(&frozen_name) || f.epoch > taker.epoch),
        "a fenced write landed: {later:?}"
    );
    assert!(h.epochs().windows(2).all(|w| w[0] <= w[1]), "{:?}", h.epochs());
    let fields = h.current.fields();
    assert!(
        c.pg.as_ref().unwrap().logs_in("app_0", fields["password"].as_str().unwrap()).await,
        "LOCKOUT after the takeover"
    );
    let out = c.stop(frozen);
    assert!(!out.contains("rolled back"), "the fenced replica rolled back:\n{out}");
    c.stop(1 - frozen);
}

/// A dynamic credential handed out by a replica that then dies is renewed
/// by the survivor (from the lease records beside the job records), so its
/// holder keeps it past its TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leases_of_a_dead_replica_are_renewed_by_the_survivor() {
    let mut c = Cluster::new(2, 0, 1, Duration::from_secs(3600), TTL).await;
    let pg = c.pg.as_ref().unwrap();
    let create = r#"CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"#;
    let setup = [
        ("sys/mounts/database".to_owned(), serde_json::json!({ "type": "database" })),
        (
            "database/config/pg".to_owned(),
            pg.vault_config("postgres", postgres::SUPERUSER_PASSWORD, serde_json::json!("*")),
        ),
        (
            "database/roles/app".to_owned(),
            serde_json::json!({ "db_name": "pg", "creation_statements": create, "default_ttl": "15s", "max_ttl": "10m" }),
        ),
    ];
    for (path, body) in setup {
        c.vault.request("POST", &path, Some(body.to_string())).await.unwrap_or_else(|e| panic!("{path}: {e}"));
    }
    c.spawn(0);
    c.spawn(1);
    c.settled(2, Duration::from_secs(60)).await;
    let (status, creds) = c.get(0, "/dynamic/app").await;
    assert_eq!(status, 200, "{creds}");
    let (user, password) = (
        creds["data"]["username"].as_str().unwrap().to_owned(),
        creds["data"]["password"].as_str().unwrap().to_owned(),
    );
    let lease = creds["lease_id"].as_str().unwrap().to_owned();
    c.kill(0);
    // Past the lease's TTL, and past the takeover: still alive, renewed by r1.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let pg = c.pg.as_ref().unwrap();
    assert!(pg.logs_in(&user, &password).await, "the credential r0 handed out died with r0");
    let (_, leases) = c.get(1, "/leases").await;
    let tracked = leases["leases"].as_array().unwrap().iter().any(|l| l["lease_id"] == lease.as_str());
    assert!(tracked, "r1 does not renew {lease}: {leases}");
    let out = c.stop(1);
    assert!(!out.contains(&password), "a credential in the survivor's log");
}
