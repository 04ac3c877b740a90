//! Rotations end to end: real components, the dev server over real HTTP.

use rotator_core::store::StoreVersion::Kv;
use std::collections::HashSet;
use std::net::TcpListener;

use rotator_core::rotation::RotationError;
use rotator_tests::postgres::app_connection;
use rotator_tests::{dev_server, fixture, jobs, logs, store};
use serde_json::{Value, json};

const KV_JOB: &str = r#"
[[jobs]]
id = "app"
plugin = "kv-random"
secret = { mount = "secret", path = "team/app" }
interval = "1h"
settings = { field = "password", length = 40, alphabet = "abcdefXYZ0123!", rules = [
    { charset = "XYZ", min_chars = 3 },
    { charset = "0123", min_chars = 4 },
    { charset = "!", min_chars = 1 },
] }
"#;

fn obeys_policy(pw: &str) -> bool {
    pw.chars().count() == 40
        && pw.chars().all(|c| "abcdefXYZ0123!".contains(c))
        && pw.chars().filter(|c| "XYZ".contains(*c)).count() >= 3
        && pw.chars().filter(|c| "0123".contains(*c)).count() >= 4
        && pw.contains('!')
}

#[tokio::test(flavor = "multi_thread")]
async fn kv_random_rotates_the_field_keeps_the_others_and_bumps_the_version() {
    let server = dev_server().await;
    let (vault, jobs, _rt) = jobs(&server, KV_JOB);
    let job = &jobs[0];
    let initial = rotator_core::secret::SecretJson::new(
        json!({"username": "app", "password": "initial-password", "host": "db1"}).to_string(),
    );
    assert_eq!(vault.kv_write("secret", "team/app", &initial, Some(0)).await.unwrap(), 1);

    let mut seen = HashSet::new();
    for round in 0..5u64 {
        let report = job.rotate(&store(&vault), "test").await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(report.previous_version, Some(Kv(round + 1)));
        assert_eq!(report.new_version, Some(Kv(round + 2)));
        let now = vault.kv_read("secret", "team/app").await.unwrap().unwrap();
        assert_eq!(now.version, Some(round + 2));
        let fields = now.data.fields();
        assert_eq!(fields["username"], "app");
        assert_eq!(fields["host"], "db1");
        let pw = fields["password"].as_str().unwrap().to_owned();
        assert_ne!(pw, "initial-password");
        assert!(obeys_policy(&pw), "policy broken by {pw:?}");
        assert!(seen.insert(pw), "a password repeated");
    }
    let meta = vault.kv_metadata("secret", "team/app").await.unwrap().unwrap();
    assert_eq!(meta["current_version"], 6);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_secret_is_created_with_cas_zero() {
    let server = dev_server().await;
    let (vault, jobs, _rt) = jobs(&server, KV_JOB);
    let report = jobs[0].rotate(&store(&vault), "test").await.unwrap();
    assert_eq!((report.previous_version, report.new_version), (None, Some(Kv(1))));
    let s = vault.kv_read("secret", "team/app").await.unwrap().unwrap();
    assert_eq!(s.data.field_names(), vec!["password".to_owned()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_plans_without_writing() {
    let server = dev_server().await;
    let (vault, jobs, _rt) = jobs(&server, KV_JOB);
    let plan = jobs[0].plan(&store(&vault)).await.unwrap();
    assert_eq!(plan.current_version, None);
    assert!(
        plan.plugin_actions.iter().any(|a| a.summary.contains("40-character value for field `password`")),
        "{plan:?}"
    );
    assert!(plan.host_actions.iter().any(|h| h.contains("cas=0")), "{plan:?}");
    assert!(vault.kv_read("secret", "team/app").await.unwrap().is_none(), "dry run wrote the secret");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_refuses_a_plan_that_writes_even_when_the_job_grants_it() {
    logs::capture();
    let server = dev_server().await;
    // Stands where the database would be: a dry run may not reach it.
    let database = TcpListener::bind("127.0.0.1:0").unwrap();
    database.set_nonblocking(true).unwrap();
    let toml = format!(
        r#"{connection}
[[jobs]]
id = "planner"
plugin = "{plugin}"
interval = "1h"
settings = {{ sql = "app" }}
grants = [
    {{ path = "secret/data/fixture/plan-marker", operations = ["write"] }},
    {{ sql = "app", operations = ["execute"] }},
]
"#,
        connection = app_connection(database.local_addr().unwrap().port()),
        plugin = fixture("fixture_plan_writes"),
    );
    let (vault, jobs, _rt) = jobs(&server, &toml);

    let err = jobs[0].plan(&store(&vault)).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, RotationError::Step { .. }), "{msg}");
    assert!(msg.contains("write on `secret/data/fixture/plan-marker` refused: job `planner` is in a dry run"), "{msg}");
    assert!(msg.contains("execute on sql connection `app` refused: job `planner` is in a dry run"), "{msg}");

    // Nothing changed: no write reached Vault, the database was never
    // contacted and its admin credentials were never read.
    assert!(vault.kv_read("secret", "fixture/plan-marker").await.unwrap().is_none(), "the plan wrote");
    let stats = server.stats();
    assert!(stats.by_method.keys().all(|m| m == "GET" || m == "LIST"), "{:?}", stats.by_method);
    assert_eq!(stats.requests("secret/data/pg/admin"), 0, "admin credentials were read");
    assert_eq!(database.accept().unwrap_err().kind(), std::io::ErrorKind::WouldBlock, "the database was contacted");
    // Both refusals were logged like any other denial.
    let (plugin, reason) = (jobs[0].plugin.label(), "a dry run's plan is read-only");
    assert_eq!(logs::denials("planner", &plugin, reason, "write", "secret/data/fixture/plan-marker"), 1);
    assert_eq!(logs::denials("planner", &plugin, reason, "execute", "app"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_concurrent_writer_is_detected_and_not_overwritten() {
    let server = dev_server().await;
    let toml = format!(
        r#"
[[jobs]]
id = "contested"
plugin = "{}"
secret = {{ mount = "secret", path = "shared/thing" }}
interval = "1h"
settings = {{ mount = "secret", path = "shared/thing" }}
grants = [{{ path = "secret/data/shared/thing", operations = ["write"] }}]
"#,
        fixture("fixture_meddler")
    );
    let (vault, jobs, _rt) = jobs(&server, &toml);
    let before = rotator_core::secret::SecretJson::new(r#"{"v":"original"}"#.into());
    vault.kv_write("secret", "shared/thing", &before, Some(0)).await.unwrap();

    let err = jobs[0].rotate(&store(&vault), "test").await.unwrap_err();
    assert!(matches!(err, RotationError::Conflict { expected: Some(Kv(1)), found: Some(Kv(2)), .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("secret/shared/thing was changed by someone else"), "{msg}");
    assert!(msg.ends_with("; rolled back"), "{msg}");
    // PENDING is cleared and the failure recorded.
    let state = store(&vault).load("contested").await.unwrap().state;
    assert!(state.in_progress.is_none());
    assert!(state.last_error.unwrap().contains("changed by someone else"));
    // The other writer's version stands; the rotation wrote nothing.
    let now = vault.kv_read("secret", "shared/thing").await.unwrap().unwrap();
    assert_eq!(now.version, Some(2));
    assert_eq!(now.data.fields()["written_by"], Value::from("someone else"));
}
