//! The built-in `postgres-password` plugin end to end, through the host's
//! `sql` import: rotations are driven by the host library (`setup::load_jobs`,
//! `Job::rotate`) against the in-process dev server and a real PostgreSQL.
//! Admin credentials come from a Vault KV secret or from environment
//! variables, never from the plugin. Every rotation's log output is captured
//! and must not contain any password the rotation generated.

use std::net::TcpListener;

use rotator_core::plugin::CallOutcome;
use rotator_core::rotation::{Job, RotationError};
use rotator_core::secret::SecretJson;
use rotator_core::vault::VaultClient;
use rotator_tests::logs::{self, capture};
use rotator_tests::postgres::{Postgres, SUPERUSER_PASSWORD};
use rotator_tests::{dev_server, jobs};
use serde_json::{Value, json};

/// A connection `app` to `port` with admin credentials from `credentials`,
/// and one job `id` rotating `secret/<id>` with `settings`; `grant` adds the
/// job's `sql` grant.
fn config(port: u16, credentials: &str, id: &str, settings: &str, grant: bool) -> String {
    let grants = if grant { r#"grants = [{ sql = "app", operations = ["execute", "login"] }]"# } else { "" };
    format!(
        r#"
[sql.connections.app]
url = "postgres://127.0.0.1:{port}/postgres"
credentials = {credentials}

[[jobs]]
id = "{id}"
plugin = "postgres-password"
secret = {{ mount = "secret", path = "{id}" }}
interval = "24h"
settings = {settings}
{grants}
"#
    )
}

const VAULT_ADMIN: &str = r#"{ vault = { mount = "secret", path = "pg/admin" } }"#;

async fn write(vault: &VaultClient, path: &str, data: Value) {
    vault.kv_write("secret", path, &SecretJson::new(data.to_string()), None).await.unwrap();
}

/// The job's secret as rotated: (username, password, version).
async fn secret(vault: &VaultClient, path: &str) -> (String, String, u64) {
    let s = vault.kv_read("secret", path).await.unwrap().expect("the secret exists");
    let f = s.data.fields();
    (f["username"].as_str().unwrap().to_owned(), f["password"].as_str().unwrap().to_owned(), s.version.unwrap())
}

async fn rotate(job: &Job, vault: &VaultClient) -> rotator_core::rotation::RotationReport {
    job.rotate(&rotator_tests::store(vault), "test").await.unwrap_or_else(|e| panic!("{e}"))
}

fn assert_not_logged(passwords: &[&str]) {
    let logs = logs::text();
    for pw in passwords {
        assert!(!logs.contains(pw), "a password reached the logs");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn single_user_sets_a_new_password_and_the_old_one_is_refused() {
    capture();
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let admin = pg.connect("postgres", SUPERUSER_PASSWORD).await.unwrap();
    admin.batch_execute("CREATE ROLE app_user LOGIN PASSWORD 'initial-app-pw'").await.unwrap();
    let server = dev_server().await;
    let settings = r#"{ connection = "app", strategy = "single-user", username = "app_user" }"#;
    let (vault, jobs, _rt) = jobs(&server, &config(pg.port, VAULT_ADMIN, "app-db", settings, true));
    write(&vault, "pg/admin", json!({"username": "postgres", "password": SUPERUSER_PASSWORD})).await;
    let initial = json!({"username": "app_user", "password": "initial-app-pw", "host": "db.internal"});
    write(&vault, "app-db", initial).await;

    let admin_reads = server.stats().requests("secret/data/pg/admin");
    let report = rotate(&jobs[0], &vault).await;
    let (user, first, version) = secret(&vault, "app-db").await;
    assert_eq!(
        (user.as_str(), version, report.new_version),
        ("app_user", 2, Some(rotator_core::store::StoreVersion::Kv(2)))
    );
    assert_eq!(first.len(), 32);
    let kept = vault.kv_read("secret", "app-db").await.unwrap().unwrap().data.fields();
    assert_eq!(kept["host"], "db.internal", "other fields of the secret are kept");
    assert!(pg.logs_in("app_user", &first).await, "the new password logs in");
    assert!(!pg.logs_in("app_user", "initial-app-pw").await, "the old password is refused");
    let calls: Vec<_> =
        report.host_calls.iter().map(|c| (c.function, c.path.as_str(), c.operation, c.detail.as_deref())).collect();
    assert_eq!(
        calls,
        [("sql.execute", "app", "execute", Some("ALTER")), ("sql.try-login", "app", "login", None)],
        "every call is recorded with the connection and the statement's keyword"
    );
    assert!(report.host_calls.iter().all(|c| c.outcome == CallOutcome::Ok));
    let admin_reads = server.stats().requests("secret/data/pg/admin") - admin_reads;
    assert_eq!(admin_reads, 1, "admin credentials are resolved once per run");

    // The admin credentials are resolved at connect time: rotate them, and
    // the next run connects with the new ones.
    admin.batch_execute("CREATE ROLE second_admin LOGIN SUPERUSER PASSWORD 'second-admin-pw'").await.unwrap();
    write(&vault, "pg/admin", json!({"username": "second_admin", "password": "second-admin-pw"})).await;
    admin.batch_execute("ALTER ROLE postgres PASSWORD 'superuser-pw-changed'").await.unwrap();
    rotate(&jobs[0], &vault).await;
    let (_, second, _) = secret(&vault, "app-db").await;
    assert!(pg.logs_in("app_user", &second).await && !pg.logs_in("app_user", &first).await);

    // The plugin declares `username` public (issue 16): the role shows in
    // plugin lines, every other value of the secret is redacted.
    assert!(logs::text().contains("changed the password of role `app_user` on `app`"), "plugin lines are captured");
    assert_not_logged(&[&first, &second]);
}

#[tokio::test(flavor = "multi_thread")]
async fn alternating_users_keep_the_previous_credential_valid_for_one_more_interval() {
    capture();
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let admin = pg.connect("postgres", SUPERUSER_PASSWORD).await.unwrap();
    // Admin credentials from environment variables. Cargo sets these two for
    // every test run, so the test needs no `set_var` (unsound with threads).
    let (env_user, env_password) = (env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"));
    assert_eq!(std::env::var("CARGO_PKG_NAME").as_deref(), Ok(env_user), "run the tests through cargo");
    admin
        .batch_execute(&format!(
            "CREATE ROLE \"{env_user}\" LOGIN SUPERUSER PASSWORD '{env_password}';
             CREATE ROLE app_a LOGIN PASSWORD 'a-initial';
             CREATE ROLE app_b LOGIN PASSWORD 'b-initial';"
        ))
        .await
        .unwrap();
    let server = dev_server().await;
    let env_admin = r#"{ env = { username = "CARGO_PKG_NAME", password = "CARGO_PKG_VERSION" } }"#;
    let settings =
        r#"{ connection = "app", strategy = "alternating-users", usernames = ["app_a", "app_b"], length = 20 }"#;
    let (vault, jobs, _rt) = jobs(&server, &config(pg.port, env_admin, "pair", settings, true));

    rotate(&jobs[0], &vault).await;
    let (user1, pw1, _) = secret(&vault, "pair").await;
    assert_eq!((user1.as_str(), pw1.len()), ("app_a", 20), "the first role when there is no current secret");
    assert!(pg.logs_in("app_a", &pw1).await);
    assert!(pg.logs_in("app_b", "b-initial").await, "the other role is untouched");

    rotate(&jobs[0], &vault).await;
    let (user2, pw2, _) = secret(&vault, "pair").await;
    assert_eq!(user2, "app_b", "the username flips");
    assert!(pg.logs_in("app_b", &pw2).await, "the current credential logs in");
    assert!(pg.logs_in("app_a", &pw1).await, "the previous credential still logs in");

    rotate(&jobs[0], &vault).await;
    let (user3, pw3, version) = secret(&vault, "pair").await;
    assert_eq!((user3.as_str(), version), ("app_a", 3));
    assert!(pg.logs_in("app_a", &pw3).await && pg.logs_in("app_b", &pw2).await);
    assert!(!pg.logs_in("app_a", &pw1).await, "the oldest credential is refused after two rotations");
    assert_not_logged(&[&pw1, &pw2, &pw3]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_test_rolls_the_password_back() {
    capture();
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let admin = pg.connect("postgres", SUPERUSER_PASSWORD).await.unwrap();
    admin
        .batch_execute(
            "CREATE ROLE locked NOLOGIN PASSWORD 'locked-old-pw';
             CREATE ROLE active_a LOGIN PASSWORD 'active-a-pw';
             CREATE ROLE locked_b NOLOGIN PASSWORD 'locked-b-old-pw';",
        )
        .await
        .unwrap();
    let server = dev_server().await;
    let single = r#"{ connection = "app", strategy = "single-user", username = "locked" }"#;
    let (vault, single_jobs, _rt) = jobs(&server, &config(pg.port, VAULT_ADMIN, "locked", single, true));
    write(&vault, "pg/admin", json!({"username": "postgres", "password": SUPERUSER_PASSWORD})).await;
    write(&vault, "locked", json!({"username": "locked", "password": "locked-old-pw"})).await;

    let err = single_jobs[0].rotate(&rotator_tests::store(&vault), "test").await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, RotationError::Step { .. }), "{msg}");
    assert!(msg.contains("test: permanent failure: `app` refused the new password of role"), "{msg}");
    assert!(msg.ends_with("; rolled back"), "{msg}");
    assert_eq!(secret(&vault, "locked").await.2, 1, "nothing was promoted");
    admin.batch_execute("ALTER ROLE locked LOGIN").await.unwrap();
    assert!(pg.logs_in("locked", "locked-old-pw").await, "rollback restored the previous password");

    // Alternating: the inactive role cannot log in, so its new password is
    // cleared and the active role's credential is untouched.
    let pair = r#"{ connection = "app", strategy = "alternating-users", usernames = ["active_a", "locked_b"] }"#;
    let (_, pair_jobs, _rt2) = jobs(&server, &config(pg.port, VAULT_ADMIN, "pair-locked", pair, true));
    write(&vault, "pair-locked", json!({"username": "active_a", "password": "active-a-pw"})).await;
    let err = pair_jobs[0].rotate(&rotator_tests::store(&vault), "test").await.unwrap_err().to_string();
    assert!(err.contains("refused the new password") && err.ends_with("; rolled back"), "{err}");
    assert!(pg.logs_in("active_a", "active-a-pw").await, "the current credential still works");
    let row =
        admin.query_one("SELECT rolpassword IS NULL FROM pg_authid WHERE rolname = 'locked_b'", &[]).await.unwrap();
    assert!(row.get::<_, bool>(0), "the abandoned password was cleared");
    assert!(logs::text().contains("cleared the password of inactive role"));
}

/// The error an operator reads when a job names a role that is not there
/// (the daemon books this text as the job's `last_error`, the one a
/// needs-attention job shows) names the role (issue 16: it read
/// `role "[REDACTED]" does not exist`),
/// and still shows no password; a job that declares `public_fields = []`
/// hides the role again.
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_role_is_named_in_the_error_and_no_password_is() {
    capture();
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let server = dev_server().await;
    let settings = r#"{ connection = "app", strategy = "single-user", username = "ghost_role" }"#;
    let (vault, ghost, _rt) = jobs(&server, &config(pg.port, VAULT_ADMIN, "ghost", settings, true));
    write(&vault, "pg/admin", json!({"username": "postgres", "password": SUPERUSER_PASSWORD})).await;
    write(&vault, "ghost", json!({"username": "ghost_role", "password": "ghost-old-password"})).await;

    let msg = ghost[0].rotate(&rotator_tests::store(&vault), "test").await.unwrap_err().to_string();
    assert!(msg.contains(r#"set: permanent failure: sql statement failed: role "ghost_role" does not exist"#), "{msg}");
    assert!(!msg.contains("ghost-old-password") && !msg.contains(SUPERUSER_PASSWORD), "{msg}");
    assert_not_logged(&["ghost-old-password", SUPERUSER_PASSWORD]);
    assert_eq!(secret(&vault, "ghost").await.2, 1, "nothing was promoted");

    let hidden = config(pg.port, VAULT_ADMIN, "ghost-hidden", settings, true) + "public_fields = []\n";
    let (_, hidden, _rt2) = jobs(&server, &hidden);
    write(&vault, "ghost-hidden", json!({"username": "ghost_role", "password": "ghost-old-password"})).await;
    let msg = hidden[0].rotate(&rotator_tests::store(&vault), "test").await.unwrap_err().to_string();
    assert!(msg.contains(r#"role "[REDACTED]" does not exist"#), "{msg}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_without_the_sql_grant_is_denied_before_the_database_is_contacted() {
    capture();
    // Stands where the database would be: nothing may connect to it.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = dev_server().await;
    let settings = r#"{ connection = "app", strategy = "single-user", username = "app_user" }"#;
    let (vault, jobs, _rt) = jobs(&server, &config(port, VAULT_ADMIN, "ungranted", settings, false));

    let err = jobs[0].rotate(&rotator_tests::store(&vault), "test").await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("set: permanent failure: sql access denied"), "{msg}");
    assert!(msg.contains("execute on sql connection `app` is not granted to job `ungranted`"), "{msg}");
    assert!(msg.ends_with("; rolled back"), "{msg}");
    assert_eq!(listener.accept().unwrap_err().kind(), std::io::ErrorKind::WouldBlock, "the database was contacted");
    assert_eq!(server.stats().requests("secret/data/pg/admin"), 0, "admin credentials were read");
    let plugin = jobs[0].plugin.label();
    let denials = logs::denials("ungranted", &plugin, "not in the job's grants", "execute", "app");
    assert!(denials >= 1, "denials are logged with job, plugin, operation and connection");
}
