//! The adoption gate's PostgreSQL kind (`pg_sessions`) with alternating
//! users on a real PostgreSQL: a rotation whose old role still has a session
//! open waits (the new value is current, `finish` not run); once that
//! session ends, the same rotation goes on and finishes. The first rotation,
//! with no old credential, has nobody to wait for.

use std::time::Duration;

use rotator_core::rotation::RotateOptions;
use rotator_tests::events::Recorder;
use rotator_tests::postgres::{Postgres, SUPERUSER_PASSWORD};
use rotator_tests::{dev_server, jobs, store};

#[tokio::test(flavor = "multi_thread")]
async fn finish_waits_until_no_session_of_the_old_role_is_left() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let admin = pg.connect("postgres", SUPERUSER_PASSWORD).await.unwrap();
    admin
        .batch_execute("CREATE ROLE gate_a LOGIN PASSWORD 'a0'; CREATE ROLE gate_b LOGIN PASSWORD 'b0';")
        .await
        .unwrap();
    let server = dev_server().await;
    let toml = format!(
        r#"
[sql.connections.app]
url = "postgres://127.0.0.1:{port}/postgres"
credentials = {{ vault = {{ mount = "secret", path = "pg/admin" }} }}

[[jobs]]
id = "gated"
plugin = "postgres-password"
secret = {{ path = "gated" }}
interval = "24h"
settings = {{ connection = "app", strategy = "alternating-users", usernames = ["gate_a", "gate_b"] }}
grants = [{{ sql = "app" }}]
adoption = {{ pg_sessions = "app", timeout = "5m" }}
"#,
        port = pg.port
    );
    let (vault, jobs, _rt) = jobs(&server, &toml);
    let admin_secret = rotator_core::secret::SecretJson::new(Postgres::admin_secret());
    vault.kv_write("secret", "pg/admin", &admin_secret, None).await.unwrap();
    let store = store(&vault);
    let recorder = Recorder::default();
    let rotate = || jobs[0].rotate_with(&store, RotateOptions { observer: &recorder, ..RotateOptions::new("test") });

    // No old credential: nothing to wait for.
    let first = rotate().await.unwrap_or_else(|e| panic!("{e}"));
    let current = vault.kv_read("secret", "gated").await.unwrap().unwrap().data.fields();
    assert_eq!(current["username"], "gate_a");
    // An application holds a session as gate_a.
    let app = pg.connect("gate_a", current["password"].as_str().unwrap()).await.unwrap();
    app.query_one("SELECT 1", &[]).await.unwrap();

    let waiting = rotate().await.expect_err("the old role has a session");
    assert!(waiting.awaiting_adoption().is_some(), "{waiting}");
    let rotation = store.load("gated").await.unwrap().state.in_progress.expect("still in progress");
    let now = vault.kv_read("secret", "gated").await.unwrap().unwrap().data.fields();
    assert_eq!(now["username"], "gate_b", "the new value is current meanwhile");
    let finished = |id: &str| recorder.all().iter().any(|e| e.rotation_id == id && e.step == "finish");
    assert!(!finished(&rotation.id), "finish ran while gate_a had a session");
    assert!(rotate().await.unwrap_err().awaiting_adoption().is_some(), "still waiting on a second look");

    drop(app);
    // The server notices the closed session at once, but give it a moment.
    let mut report = None;
    for _ in 0..50 {
        match rotate().await {
            Ok(r) => {
                report = Some(r);
                break;
            }
            Err(e) if e.awaiting_adoption().is_some() => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("{e}"),
        }
    }
    let report = report.expect("adopted once the session ended");
    assert_eq!(report.rotation_id, rotation.id, "the same rotation went on");
    assert!(finished(&rotation.id) && first.rotation_id != rotation.id);
    assert!(store.load("gated").await.unwrap().state.in_progress.is_none());
}
