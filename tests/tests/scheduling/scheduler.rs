//! The scheduler against the dev server in real time: restarts neither
//! repeat nor skip a rotation, downtime is caught up once, paired jobs keep
//! apart, the concurrency limit holds, failing jobs end up needing
//! attention until a manual rotation succeeds, and shutdown finishes what
//! runs and starts nothing more.

use std::time::Duration;

use rotator_core::rotation::Job;
use rotator_core::schedule::Schedule;
use rotator_core::secret::SecretJson;
use rotator_core::state::{Outcome, StateStore};
use rotator_daemon::scheduler::{Scheduler, SchedulerError};
use rotator_devserver::{DevServer, FaultRules};
use rotator_tests::postgres::{Postgres, SUPERUSER_PASSWORD};
use rotator_tests::{dev_server, jobs, store};
use time::OffsetDateTime;
use tokio::sync::watch;

fn kv_job(id: &str, extra: &str) -> String {
    format!(
        "[[jobs]]\nid = \"{id}\"\nplugin = \"kv-random\"\nsecret = {{ path = \"sched/{id}\" }}\n{extra}\nsettings = {{ field = \"password\" }}\n"
    )
}

/// A scheduler running `jobs` until the returned sender is told to stop.
async fn start(server: &DevServer, toml: &str, max_concurrent: usize) -> (Scheduler, watch::Sender<bool>, StateStore) {
    start_paced(server, toml, max_concurrent, None).await
}

/// [`start`], with scheduled rotations limited to `per_second`.
async fn start_paced(
    server: &DevServer,
    toml: &str,
    max_concurrent: usize,
    per_second: Option<u32>,
) -> (Scheduler, watch::Sender<bool>, StateStore) {
    let (vault, jobs, _rt) = jobs(server, toml);
    let store = store(&vault);
    let scheduler = Scheduler::new(store.clone(), max_concurrent, Vec::new()).with_rate_limit(per_second);
    for job in jobs {
        scheduler.add(job).await.unwrap();
    }
    let (stop, rx) = watch::channel(false);
    let running = scheduler.clone();
    tokio::spawn(async move { running.run(rx).await });
    (scheduler, stop, store)
}

async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) {
    for _ in 0..300 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn rotations(store: &StateStore, id: &str) -> u64 {
    store.load(id).await.unwrap().state.rotations
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_neither_repeats_nor_skips_and_downtime_is_caught_up_once() {
    let server = dev_server().await;
    let toml = kv_job("app", "interval = \"1h\"");
    // A new job whose secret does not exist rotates at once, once.
    let (_s, stop, store) = start(&server, &toml, 4).await;
    wait_for("the first rotation", async || rotations(&store, "app").await == 1).await;
    stop.send(true).unwrap();
    let state = store.load("app").await.unwrap().state;
    // The next slot is the job's own point of the following hour.
    let (last, due) = (state.last_rotation.unwrap(), state.next_due.unwrap());
    assert_eq!(
        Some(due),
        Some(Schedule::every(Duration::from_secs(3600)).spread_for("app").next_slot(Some(last), last))
    );
    assert!(due > last && due <= last + time::Duration::hours(1), "next rotation at {due}, last at {last}");

    // Restart: nothing is due, nothing runs.
    let (_s, stop, store) = start(&server, &toml, 4).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(rotations(&store, "app").await, 1, "a restart repeated the rotation");
    stop.send(true).unwrap();

    // Down for five slots: one catch-up rotation, then an hour's wait.
    let mut v = store.load("app").await.unwrap();
    let now = OffsetDateTime::now_utc();
    v.state.last_rotation = Some(now - time::Duration::hours(6));
    v.state.slot = Some(now - time::Duration::hours(5));
    v.state.next_due = v.state.slot;
    store.save("app", &mut v).await.unwrap();
    let (_s, stop, store) = start(&server, &toml, 4).await;
    wait_for("the catch-up rotation", async || rotations(&store, "app").await == 2).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(rotations(&store, "app").await, 2, "downtime was caught up more than once");
    stop.send(true).unwrap();
    let secret = store.vault.as_ref().unwrap().kv_read("secret", "sched/app").await.unwrap().unwrap();
    assert_eq!(secret.version, Some(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn scheduled_rotations_start_no_faster_than_the_rate_limit_but_rotate_now_is_not_held() {
    let server = dev_server().await;
    let ids: Vec<String> = (0..6).map(|i| format!("paced-{i}")).collect();
    let toml: String = ids.iter().map(|id| kv_job(id, "interval = \"1h\"")).collect();
    // All six are due at once (no secret yet); 5 per second, 8 at a time.
    let before = OffsetDateTime::now_utc();
    let (scheduler, stop, store) = start_paced(&server, &toml, 8, Some(5)).await;
    let mut started = Vec::new();
    for id in &ids {
        wait_for("every paced job's first rotation", async || rotations(&store, id).await == 1).await;
        started.push(store.load(id).await.unwrap().state.history[0].started);
    }
    started.sort();
    // Six turns 200 ms apart, the first no earlier than the scheduler: the
    // last starts at least a second after it, however fast the machine (a
    // slow one only starts later).
    let spread = started[5] - before;
    assert!(spread >= time::Duration::seconds(1), "six paced starts within {spread} of the start");
    // An operator's rotation does not queue behind the pace.
    let report = scheduler.rotate_now("paced-0", "test").await.unwrap();
    assert!(report.new_version.is_some());
    stop.send(true).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn paired_jobs_keep_apart_and_the_concurrency_limit_holds() {
    let server = dev_server().await;
    let mut toml = kv_job("first", "interval = \"1h\"");
    toml.push_str(&kv_job("second", "interval = \"1h\"\nnot_within = { job = \"first\", duration = \"2s\" }"));
    for id in ["c1", "c2", "c3"] {
        toml.push_str(&kv_job(id, "interval = \"1h\""));
    }
    let (scheduler, stop, store) = start(&server, &toml, 1).await;
    wait_for("every job's first rotation", async || {
        scheduler.registry().views().iter().all(|v| v.rotations == 1 && !v.running)
    })
    .await;
    stop.send(true).unwrap();

    let mut runs = Vec::new();
    for v in scheduler.registry().views() {
        let h = store.load(&v.id).await.unwrap().state.history;
        assert_eq!(h.len(), 1, "{}", v.id);
        runs.push((v.id.clone(), h[0].started, h[0].finished));
    }
    let started = |id: &str| runs.iter().find(|r| r.0 == id).unwrap().1;
    let apart = (started("second") - started("first")).abs();
    assert!(apart >= time::Duration::seconds(2), "paired jobs started {apart} apart");
    // One at a time: no two runs overlap.
    runs.sort_by_key(|r| r.1);
    for pair in runs.windows(2) {
        assert!(pair[1].1 >= pair[0].2, "{} overlapped {}", pair[1].0, pair[0].0);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_failing_every_cycle_needs_attention_until_a_manual_rotation_succeeds() {
    let server = dev_server().await;
    let toml = kv_job("flaky", "interval = \"1s\"\nretry = { attempts = 1, needs_attention_after = 2 }");
    // Vault refuses the promotion (a permanent error: no retries in a cycle).
    server.set_faults(Some(FaultRules {
        rate: 1.0,
        statuses: vec![400],
        path_prefix: Some("secret/data/sched/flaky".into()),
        methods: vec!["POST".into()],
        ..FaultRules::default()
    }));
    let (scheduler, stop, store) = start(&server, &toml, 4).await;
    wait_for("needs-attention", async || scheduler.registry().view("flaky").is_some_and(|v| v.needs_attention)).await;
    let view = scheduler.registry().view("flaky").unwrap();
    assert_eq!(view.failed_cycles, 2);
    assert_eq!(view.next_due, None, "a job needing attention is not scheduled");
    assert!(view.last_error.as_deref().unwrap_or("").contains("rolled back"), "{view:?}");
    let state = store.load("flaky").await.unwrap().state;
    assert!(state.in_progress.is_none(), "a failed rotation left PENDING behind");
    assert!(state.history.iter().all(|h| h.outcome == Outcome::Failed));
    // It stays put: no more automatic attempts.
    let attempts = state.history.len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(store.load("flaky").await.unwrap().state.history.len(), attempts);

    // Someone fixes Vault and rotates by hand: the flag clears.
    server.set_faults(None);
    let report = scheduler.rotate_now("flaky", "api:test").await.unwrap();
    assert_eq!(report.new_version, Some(rotator_core::store::StoreVersion::Kv(1)));
    let view = scheduler.registry().view("flaky").unwrap();
    assert!(!view.needs_attention);
    assert_eq!(view.failed_cycles, 0);
    assert!(view.next_due.is_some());
    assert_eq!(store.load("flaky").await.unwrap().state.history[0].actor, "api:test");
    stop.send(true).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_can_be_added_and_removed_at_runtime() {
    let server = dev_server().await;
    let (scheduler, stop, store) = start(&server, "", 4).await;
    let (_vault, mut extra, _rt) = jobs(&server, &kv_job("late", "interval = \"1h\""));
    let job: Job = extra.remove(0);
    scheduler.add(job.clone()).await.unwrap();
    assert!(scheduler.add(job).await.is_err(), "a duplicate id is refused");
    wait_for("the added job's rotation", async || rotations(&store, "late").await == 1).await;
    assert!(scheduler.remove("late"));
    assert!(scheduler.registry().view("late").is_none());
    assert!(scheduler.rotate_now("late", "test").await.is_err());
    stop.send(true).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_job_whose_secret_exists_waits_for_its_slot_after_its_last_change() {
    let server = dev_server().await;
    let http = rotator_tests::http_client(Duration::from_secs(10));
    let written = rotator_tests::call(
        &http,
        &server,
        Some(rotator_tests::ROOT),
        "POST",
        "secret/data/sched/old",
        Some(serde_json::json!({"data": {"password": "set by hand"}})),
    )
    .await;
    assert_eq!(written.0, 200, "{}", written.1);
    let changed = written.1["data"]["created_time"].as_str().expect("the write answers its time").to_owned();
    let changed = OffsetDateTime::parse(&changed, &time::format_description::well_known::Rfc3339).unwrap();
    let (_s, stop, store) = start(&server, &kv_job("old", "interval = \"1h\""), 4).await;
    let state = store.load("old").await.unwrap().state;
    // Not at once: at the job's own grid point within the hour after the
    // change (interval jobs spread over their interval).
    let hour = Duration::from_secs(3600);
    let expected = Schedule::every(hour).spread_for("old").next_slot(Some(changed), changed);
    assert_eq!(state.slot, Some(expected));
    assert!(expected > changed && expected <= changed + hour, "{expected}");
    assert_eq!(state.rotations, 0);
    stop.send(true).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_finishes_the_running_rotation_and_starts_no_waiting_one() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let admin = pg.connect("postgres", SUPERUSER_PASSWORD).await.unwrap();
    admin.batch_execute("CREATE ROLE app_user LOGIN PASSWORD 'initial-password'").await.unwrap();
    let server = dev_server().await;
    let mut toml = pg.single_user_job("db", "sched/db", "app_user");
    // Room for the held `set` step on a busy machine.
    toml.push_str("limits = { step_timeout = \"5m\" }\n");
    toml.push_str(&kv_job("waiting", "interval = \"1h\"\nenabled = false"));
    let (vault, _, _rt) = jobs(&server, &toml);
    vault.kv_write("secret", "pg/admin", &SecretJson::new(Postgres::admin_secret()), None).await.unwrap();

    // `db`'s first rotation is due at once and stops inside `set`, holding
    // the only slot; `waiting` is rotated by hand and waits for that slot.
    let held = pg.hold_role("app_user").await;
    let (scheduler, stop, store) = start(&server, &toml, 1).await;
    pg.wait_for_lock_waiter().await;
    let waiting = {
        let scheduler = scheduler.clone();
        tokio::spawn(async move { scheduler.rotate_now("waiting", "test").await })
    };

    stop.send(true).unwrap();
    // Refused at once, while `db` still holds the slot.
    let refused = tokio::time::timeout(Duration::from_secs(60), waiting)
        .await
        .expect("a run waiting for a slot was not refused at shutdown")
        .unwrap();
    match refused {
        Err(SchedulerError::ShuttingDown(id)) => assert_eq!(id, "waiting"),
        other => panic!("a run waiting for a slot went on after shutdown: {:?}", other.map(|r| r.rotation_id)),
    }
    assert!(store.load("db").await.unwrap().state.in_progress.is_some(), "db's rotation is under way");

    held.batch_execute("ROLLBACK").await.unwrap();
    wait_for("db's rotation to finish", async || rotations(&store, "db").await == 1).await;
    let db = store.load("db").await.unwrap().state;
    assert!(db.in_progress.is_none(), "PENDING left behind: {:?}", db.in_progress);
    let secret = vault.kv_read("secret", "sched/db").await.unwrap().expect("db's secret was written");
    assert!(pg.logs_in("app_user", secret.data.fields()["password"].as_str().unwrap()).await);
    assert_eq!(rotations(&store, "waiting").await, 0);
    assert!(vault.kv_read("secret", "sched/waiting").await.unwrap().is_none(), "the waiting run started");
    assert!(matches!(scheduler.rotate_now("db", "test").await, Err(SchedulerError::ShuttingDown(_))));
}
