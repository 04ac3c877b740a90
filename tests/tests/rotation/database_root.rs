//! The built-in `database-root` plugin end to end: Vault (the dev server's
//! database engine) rotates the root credential of a real PostgreSQL, the
//! plugin proves the new one works by requesting and revoking credentials,
//! and only the paths the job grants are reachable.

use rotator_core::rotation::RotationError;
use rotator_tests::postgres::{Postgres, SUPERUSER_PASSWORD};
use rotator_tests::{dev_server, jobs};
use serde_json::json;

const JOB: &str = r#"
[[jobs]]
id = "orders-root"
plugin = "database-root"
interval = "24h"
settings = { mount = "db", connection = "orders", verify_role = "probe" }
grants = [
    { path = "db/rotate-root/orders", operations = ["write"] },
    { path = "db/config/orders", operations = ["read"] },
    { path = "db/creds/probe", operations = ["read"] },
    { path = "sys/leases/revoke", operations = ["write"] },
]
"#;

#[tokio::test(flavor = "multi_thread")]
async fn database_root_rotates_the_root_password_and_vault_still_manages_the_database() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let admin = pg.connect("postgres", SUPERUSER_PASSWORD).await.unwrap();
    admin.batch_execute("CREATE ROLE vaultadmin WITH LOGIN SUPERUSER PASSWORD 'initial-root-pw'").await.unwrap();

    let server = dev_server().await;
    let (vault, jobs, _rt) = jobs(&server, JOB);
    let setup = [
        ("sys/mounts/db", json!({"type": "database"})),
        ("db/config/orders", pg.vault_config("vaultadmin", "initial-root-pw", json!(["probe"]))),
        (
            "db/roles/probe",
            json!({
                "db_name": "orders",
                "creation_statements": r#"CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"#,
                "default_ttl": "5m",
            }),
        ),
    ];
    for (path, body) in setup {
        vault.request("POST", path, Some(body.to_string())).await.unwrap_or_else(|e| panic!("{path}: {e}"));
    }
    assert!(pg.logs_in("vaultadmin", "initial-root-pw").await);

    let report = jobs[0].rotate(&rotator_tests::store(&vault), "test").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.new_version, None, "the root password never leaves Vault");
    let calls: Vec<(&str, &str)> = report.host_calls.iter().map(|c| (c.operation, c.path.as_str())).collect();
    assert_eq!(
        calls,
        vec![
            ("write", "db/rotate-root/orders"),
            ("read", "db/config/orders"),
            ("read", "db/creds/probe"),
            ("write", "sys/leases/revoke")
        ]
    );
    assert!(!pg.logs_in("vaultadmin", "initial-root-pw").await, "the old root password still works");
    // Vault still manages the database with the password only it knows.
    let creds = vault.request("GET", "db/creds/probe", None).await.unwrap().body.unwrap();
    let (user, pw) = (creds["data"]["username"].as_str().unwrap(), creds["data"]["password"].as_str().unwrap());
    assert!(pg.logs_in(user, pw).await);
    // The probe credential the plugin created was revoked by it.
    let leases = vault.request("LIST", "sys/leases/lookup/db/creds/probe", None).await.unwrap().body.unwrap();
    assert_eq!(leases["data"]["keys"].as_array().unwrap().len(), 1, "only the lease made above remains");
}

#[tokio::test(flavor = "multi_thread")]
async fn database_root_without_the_grant_is_denied_before_vault_is_called() {
    let server = dev_server().await;
    let ungranted = JOB.split("grants = [").next().unwrap();
    let (vault, jobs, _rt) = jobs(&server, ungranted);
    vault.request("POST", "sys/mounts/db", Some(json!({"type": "database"}).to_string())).await.unwrap();
    let err = jobs[0].rotate(&rotator_tests::store(&vault), "test").await.unwrap_err();
    assert!(matches!(err, RotationError::Step { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("plugin database-root@0.1.0: set: permanent failure: vault access denied"), "{msg}");
    assert!(msg.contains("write on `db/rotate-root/orders` is not granted to job `orders-root`"), "{msg}");
    assert!(msg.ends_with("; rolled back"), "{msg}");
    assert_eq!(server.stats().requests("db/rotate-root/orders"), 0);
}
