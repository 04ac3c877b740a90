//! Vault misbehaving during every step of a PostgreSQL rotation: 500s,
//! 503 (sealed), 429 and timeouts, injected at random by the dev server into
//! every request (the state record, the secret, the admin credentials). Each
//! attempt may fail; none may lock anyone out, and retrying converges.
//!
//! "Locked out" means no password Vault holds for the job (the current
//! secret or the staged PENDING value) logs in to PostgreSQL.

use std::time::Duration;

use rotator_core::rotation::Job;
use rotator_core::secret::SecretJson;
use rotator_core::state::StateStore;
use rotator_core::vault::VaultClient;
use rotator_devserver::{DevServer, FaultRules};
use rotator_tests::postgres::{Postgres, SUPERUSER_PASSWORD};
use rotator_tests::{dev_server, jobs, store};

const ROLE: &str = "faulty_app";

/// Some password Vault knows for the job logs in.
async fn nobody_locked_out(pg: &Postgres, vault: &VaultClient, store: &StateStore) -> bool {
    let mut known = Vec::new();
    if let Some(s) = vault.kv_read("secret", "faulty/app").await.unwrap() {
        known.push(s.data);
    }
    if let Some(p) = store.load("app").await.unwrap().state.in_progress {
        known.extend(p.pending);
    }
    for secret in known {
        if let Some(pw) = secret.fields()["password"].as_str()
            && pg.logs_in(ROLE, pw).await
        {
            return true;
        }
    }
    false
}

async fn rotate_until_done(
    server: &DevServer,
    pg: &Postgres,
    job: &Job,
    vault: &VaultClient,
    rules: FaultRules,
) -> u32 {
    let store = store(vault);
    for attempt in 1..=60 {
        server.set_faults(Some(rules.clone()));
        let result = job.rotate(&store, "test").await;
        server.set_faults(None);
        assert!(nobody_locked_out(pg, vault, &store).await, "LOCKOUT after attempt {attempt}: {result:?}");
        if result.is_ok() {
            return attempt;
        }
    }
    panic!("60 attempts under {rules:?} and no rotation completed");
}

#[tokio::test(flavor = "multi_thread")]
async fn rotations_survive_500_503_429_and_timeouts_at_every_step() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let admin = pg.connect("postgres", SUPERUSER_PASSWORD).await.unwrap();
    admin.batch_execute(&format!("CREATE ROLE {ROLE} LOGIN PASSWORD 'first-password'")).await.unwrap();
    let server = dev_server().await;
    let toml = format!("[vault]\ntimeout = \"300ms\"\n{}", pg.single_user_job("app", "faulty/app", ROLE));
    let (vault, jobs, _rt) = jobs(&server, &toml);
    vault.kv_write("secret", "pg/admin", &SecretJson::new(Postgres::admin_secret()), None).await.unwrap();
    let initial = serde_json::json!({"username": ROLE, "password": "first-password"}).to_string();
    vault.kv_write("secret", "faulty/app", &SecretJson::new(initial), None).await.unwrap();

    let cases = [
        ("500", FaultRules { rate: 0.6, statuses: vec![500], ..FaultRules::default() }),
        ("503 sealed", FaultRules { rate: 0.6, statuses: vec![503], ..FaultRules::default() }),
        ("429", FaultRules { rate: 0.6, statuses: vec![429], ..FaultRules::default() }),
        ("timeouts", FaultRules { rate: 0.35, delay: Some(Duration::from_millis(600)), ..FaultRules::default() }),
    ];
    let (mut rotations, mut attempts_total) = (0, 0);
    for (name, rules) in cases {
        // Several rotations per kind, so faults land on different steps.
        for _ in 0..2 {
            let attempts = rotate_until_done(&server, &pg, &jobs[0], &vault, rules.clone()).await;
            rotations += 1;
            attempts_total += attempts;
            eprintln!("{name}: rotation {rotations} done after {attempts} attempt(s)");
        }
    }
    // The client retries transient answers itself, so a rotation may
    // succeed at its first attempt however many faults it met: what must
    // hold is that faults were answered at all.
    let injected = server.stats().faults_injected;
    assert!(injected > 0, "the faults never bit ({attempts_total} attempts for {rotations} rotations)");
    let state = store(&vault).load("app").await.unwrap().state;
    assert!(state.in_progress.is_none());
    assert_eq!(state.rotations, rotations);
    let secret = vault.kv_read("secret", "faulty/app").await.unwrap().unwrap();
    assert_eq!(secret.version, Some(rotations + 1), "one KV version per rotation");
    assert!(pg.logs_in(ROLE, secret.data.fields()["password"].as_str().unwrap()).await);
    assert!(!pg.logs_in(ROLE, "first-password").await);
}
