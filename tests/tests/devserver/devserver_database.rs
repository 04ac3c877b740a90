//! The dev server's database secrets engine against a real PostgreSQL
//! cluster ([`rotator_tests::postgres`]): connections verified by
//! connecting, dynamic credentials that log in and are dropped when their
//! lease is revoked or expires, renewals that move `VALID UNTIL`, root
//! rotation, static roles, `allowed_roles`, SCRAM hashing, and the shapes of
//! `shared/contracts/vault/database.json`. Each test has its own cluster and
//! dev server (clusters are stopped when a test ends, even when it fails),
//! so the tests run in parallel.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rotator_devserver::DevServer;
use rotator_tests::postgres::{Postgres, SUPERUSER_PASSWORD};
use serde_json::{Value, json};
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

const DATABASE: &str = include_str!("../../../../shared/contracts/vault/database.json");

/// Vault's PostgreSQL creation statements, as one string of two statements.
const CREATE: &str = r#"CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'; GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{{name}}";"#;

struct Env {
    server: DevServer,
    http: reqwest::Client,
    pg: Postgres,
}

async fn env() -> Env {
    let http = rotator_tests::http_client(Duration::from_secs(30));
    let pg = tokio::task::spawn_blocking(Postgres::start).await.expect("the PostgreSQL cluster starts");
    let server = rotator_tests::dev_server().await;
    Env { server, http, pg }
}

impl Env {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_as(self.server.root_token(), method, path, body).await
    }

    async fn call_as(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        rotator_tests::call(&self.http, &self.server, Some(token), method, path, body).await
    }

    /// Enable the engine at `mount`.
    async fn mount(&self, mount: &str) {
        let (status, body) =
            self.call("POST", &format!("sys/mounts/{mount}"), Some(json!({ "type": "database" }))).await;
        assert_eq!(status, 204, "{body}");
    }

    /// The templated URL of the test cluster.
    fn connection_url(&self) -> String {
        self.pg.templated_url()
    }

    /// A config body for connection `pg` as `user`.
    fn config_body(&self, user: &str, password: &str, allowed: Value) -> Value {
        self.pg.vault_config(user, password, allowed)
    }

    /// Configure connection `pg` of `mount`; must succeed without warnings.
    async fn configure(&self, mount: &str, user: &str, password: &str, allowed: Value) {
        let body = self.config_body(user, password, allowed);
        let (status, answer) = self.call("POST", &format!("{mount}/config/pg"), Some(body)).await;
        assert_eq!(status, 204, "{answer}");
    }

    async fn role(&self, mount: &str, name: &str, body: Value) {
        let (status, answer) = self.call("POST", &format!("{mount}/roles/{name}"), Some(body)).await;
        assert_eq!(status, 204, "{answer}");
    }

    /// `GET creds/:role`, which must succeed: the whole envelope.
    async fn creds(&self, mount: &str, role: &str) -> Value {
        let (status, body) = self.call("GET", &format!("{mount}/creds/{role}"), None).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    async fn login(&self, user: &str, password: &str) -> Result<Client, tokio_postgres::Error> {
        self.pg.connect(user, password).await
    }

    async fn superuser(&self) -> Client {
        self.login("postgres", SUPERUSER_PASSWORD).await.expect("the superuser logs in")
    }

    /// `user` logs in with `password` and is who it says.
    async fn assert_logs_in(&self, user: &str, password: &str) -> Client {
        let client = self.login(user, password).await.unwrap_or_else(|e| panic!("{user} cannot log in: {e}"));
        let me: String = client.query_one("SELECT current_user::text", &[]).await.unwrap().get(0);
        assert_eq!(me, user);
        client
    }

    /// PostgreSQL refuses `user` with `password` (a dropped role looks the
    /// same as a wrong password).
    async fn assert_refused(&self, user: &str, password: &str, why: &str) {
        match self.login(user, password).await {
            Ok(_) => panic!("{why}: {user} still logs in"),
            Err(e) => assert_eq!(e.code(), Some(&SqlState::INVALID_PASSWORD), "{why}: {e}"),
        }
    }

    async fn role_exists(&self, user: &str) -> bool {
        let row = self.superuser().await.query_one("SELECT count(*) FROM pg_roles WHERE rolname = $1", &[&user]).await;
        row.unwrap().get::<_, i64>(0) == 1
    }

    /// The role's `VALID UNTIL`, in Unix seconds.
    async fn valid_until(&self, user: &str) -> f64 {
        let query = "SELECT extract(epoch FROM rolvaliduntil)::float8 FROM pg_roles WHERE rolname = $1";
        self.superuser().await.query_one(query, &[&user]).await.unwrap().get(0)
    }
}

/// The documented `data` of a database.json sample.
fn sample(method: &str, path: &str, server: &str) -> Value {
    let entries: Vec<Value> = serde_json::from_str(DATABASE).unwrap();
    let entry = entries.into_iter().find(|e| e["method"] == method && e["path"] == path && e["server"] == server);
    entry.unwrap_or_else(|| panic!("no sample for {method} {path}"))["response"]["data"].clone()
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap_or_else(|| panic!("not an object: {v}")).keys().cloned().collect()
}

fn credentials(creds: &Value) -> (String, String) {
    let text = |k: &str| creds["data"][k].as_str().unwrap_or_else(|| panic!("no {k} in {creds}")).to_owned();
    (text("username"), text("password"))
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

fn first_error(body: &Value) -> String {
    body["errors"][0].as_str().unwrap_or_else(|| panic!("no error in {body}")).to_owned()
}

#[tokio::test]
async fn devserver_database_config_verifies_the_connection_and_hides_the_password() {
    let env = env().await;
    env.mount("db").await;
    env.configure("db", "postgres", SUPERUSER_PASSWORD, json!("readonly, other")).await;
    let (status, body) = env.call("GET", "db/config/pg", None).await;
    assert_eq!(status, 200, "{body}");
    let data = &body["data"];
    assert_eq!(data["allowed_roles"], json!(["readonly", "other"]), "a comma string is a list");
    assert_eq!(data["plugin_name"], "postgresql-database-plugin");
    assert_eq!(data["connection_details"], json!({ "connection_url": env.connection_url(), "username": "postgres" }));
    assert_eq!(data["root_credentials_rotate_statements"], json!([]));
    assert!(!body.to_string().contains(SUPERUSER_PASSWORD), "a read never shows the password: {body}");

    let wrong = "not-the-superuser-password";
    let mut bad = env.config_body("postgres", wrong, json!("*"));
    let (status, body) = env.call("POST", "db/config/bad", Some(bad.clone())).await;
    assert_eq!(status, 400, "{body}");
    let error = first_error(&body);
    assert!(error.starts_with("error creating database object: error verifying connection: "), "{error}");
    assert!(error.contains("password authentication failed"), "{error}");
    assert!(!error.contains(wrong), "the error does not echo the password: {error}");
    assert_eq!(env.call("GET", "db/config/bad", None).await, (404, json!({ "errors": [] })), "nothing saved");
    let (status, body) = env.call("LIST", "db/config", None).await;
    assert_eq!((status, &body["data"]["keys"]), (200, &json!(["pg"])));

    bad["verify_connection"] = json!(false);
    assert_eq!(env.call("POST", "db/config/bad", Some(bad)).await.0, 204, "saved unchecked when asked");
    assert_eq!(env.call("GET", "db/config/bad", None).await.0, 200);
    assert_eq!(env.call("DELETE", "db/config/bad", None).await.0, 204);
    assert_eq!(env.call("GET", "db/config/bad", None).await.0, 404);

    let literal = json!({ "plugin_name": "postgresql-database-plugin", "connection_url": env.pg.superuser_url() });
    let (status, body) = env.call("POST", "db/config/literal", Some(literal)).await;
    assert_eq!(status, 200, "a warning turns 204 into 200: {body}");
    assert!(first_warning(&body).starts_with("Password found in connection_url"), "{body}");
    let (_, body) = env.call("GET", "db/config/literal", None).await;
    let redacted = format!("postgres://postgres:xxxxx@127.0.0.1:{}/postgres", env.pg.port);
    assert_eq!(body["data"]["connection_details"]["connection_url"], redacted);
    assert!(!body.to_string().contains(SUPERUSER_PASSWORD));

    let (status, body) = env.call("POST", "db/config/x", Some(json!({ "connection_url": "postgresql://h/db" }))).await;
    assert_eq!((status, body), (400, json!({ "errors": ["empty plugin name"] })));
    let mysql = json!({ "plugin_name": "mysql-database-plugin", "connection_url": "u:p@tcp(127.0.0.1:3306)/" });
    let (status, body) = env.call("POST", "db/config/x", Some(mysql)).await;
    assert_eq!(status, 400);
    assert!(first_error(&body).starts_with("error creating database object: "), "{body}");
    let (status, body) =
        env.call("POST", "db/config/x", Some(json!({ "plugin_name": "postgresql-database-plugin" }))).await;
    assert_eq!(
        (status, first_error(&body).as_str()),
        (400, "error creating database object: connection_url cannot be empty")
    );
}

fn first_warning(body: &Value) -> String {
    body["warnings"][0].as_str().unwrap_or_else(|| panic!("no warning in {body}")).to_owned()
}

#[tokio::test]
async fn devserver_database_creds_log_in_until_revoked_or_expired() {
    let env = env().await;
    env.mount("db").await;
    env.configure("db", "postgres", SUPERUSER_PASSWORD, json!("*")).await;
    env.role("db", "app", json!({ "db_name": "pg", "creation_statements": CREATE, "default_ttl": "1h" })).await;

    let creds = env.creds("db", "app").await;
    let (user, password) = credentials(&creds);
    assert!(user.starts_with("v-root-app-") && user.len() <= 63, "Vault's username template: {user}");
    assert_eq!((creds["lease_duration"].as_u64(), creds["renewable"].as_bool()), (Some(3600), Some(true)));
    let lease = creds["lease_id"].as_str().unwrap().to_owned();
    assert!(lease.starts_with("db/creds/app/"), "{lease}");
    let session = env.assert_logs_in(&user, &password).await;

    let (status, body) = env.call("PUT", "sys/leases/lookup", Some(json!({ "lease_id": lease }))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((&body["data"]["path"], &body["data"]["renewable"]), (&json!("db/creds/app"), &json!(true)));
    assert!((3590..=3600).contains(&body["data"]["ttl"].as_i64().unwrap()), "{body}");

    let (status, body) = env.call("PUT", "sys/leases/revoke", Some(json!({ "lease_id": lease }))).await;
    assert_eq!(status, 204, "{body}");
    env.assert_refused(&user, &password, "after sys/leases/revoke").await;
    assert!(!env.role_exists(&user).await, "the role was dropped");
    assert!(session.query_one("SELECT 1", &[]).await.is_err(), "its open session was ended");
    let (status, _) = env.call("PUT", "sys/leases/lookup", Some(json!({ "lease_id": lease }))).await;
    assert_eq!(status, 400, "the lease is gone");

    env.role("db", "short", json!({ "db_name": "pg", "creation_statements": [CREATE], "default_ttl": "2s" })).await;
    let creds = env.creds("db", "short").await;
    assert_eq!(creds["lease_duration"], 2);
    let (user, password) = credentials(&creds);
    env.assert_logs_in(&user, &password).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
    while env.role_exists(&user).await && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!env.role_exists(&user).await, "the expiry task dropped the role");
    env.assert_refused(&user, &password, "after the lease expired").await;

    // A lease dies with the token that asked for it.
    let policy = json!({ "policy": "path \"db/creds/*\" { capabilities = [\"read\"] }" });
    assert_eq!(env.call("PUT", "sys/policies/acl/dbcreds", Some(policy)).await.0, 204);
    let (status, token) = env.call("POST", "auth/token/create", Some(json!({ "policies": ["dbcreds"] }))).await;
    assert_eq!(status, 200, "{token}");
    let token = token["auth"]["client_token"].as_str().unwrap().to_owned();
    let (status, creds) = env.call_as(&token, "GET", "db/creds/app", None).await;
    assert_eq!(status, 200, "{creds}");
    let (user, password) = credentials(&creds);
    assert!(user.starts_with("v-token-app-"), "the token's display name: {user}");
    env.assert_logs_in(&user, &password).await;
    assert_eq!(env.call("POST", "auth/token/revoke", Some(json!({ "token": token }))).await.0, 204);
    env.assert_refused(&user, &password, "after its token was revoked").await;

    // Unmounting revokes what the mount issued.
    let (user, password) = credentials(&env.creds("db", "app").await);
    assert_eq!(env.call("DELETE", "sys/mounts/db", None).await.0, 204);
    env.assert_refused(&user, &password, "after the mount was disabled").await;
    assert!(!env.role_exists(&user).await);
}

#[tokio::test]
async fn devserver_database_renew_moves_valid_until_up_to_max_ttl() {
    let env = env().await;
    env.mount("db").await;
    env.configure("db", "postgres", SUPERUSER_PASSWORD, json!(["app"])).await;
    let role = json!({ "db_name": "pg", "creation_statements": [CREATE], "default_ttl": 30, "max_ttl": "100s" });
    env.role("db", "app", role).await;
    let issued = now();
    let creds = env.creds("db", "app").await;
    assert_eq!(creds["lease_duration"], 30);
    let (user, password) = credentials(&creds);
    let lease = creds["lease_id"].as_str().unwrap().to_owned();
    let v0 = env.valid_until(&user).await;
    assert!((issued + 33.0..=issued + 37.0).contains(&v0), "VALID UNTIL is the TTL plus 5 s: {}", v0 - issued);

    let renew = |increment: u64| json!({ "lease_id": lease, "increment": increment });
    let (status, body) = env.call("PUT", "sys/leases/renew", Some(renew(60))).await;
    assert_eq!((status, body["lease_duration"].as_u64()), (200, Some(60)), "{body}");
    assert!(body["warnings"].is_null(), "{body}");
    let renewed = now();
    let v1 = env.valid_until(&user).await;
    assert!(v1 > v0 && (renewed + 62.0..=renewed + 66.0).contains(&v1), "moved to now + 60 + 5: {}", v1 - renewed);

    let (status, body) = env.call("PUT", "sys/leases/renew", Some(renew(3600))).await;
    assert_eq!(status, 200, "capping is not an error: {body}");
    let capped = body["lease_duration"].as_u64().unwrap();
    assert!((95..=100).contains(&capped), "capped to what is left of max_ttl: {capped}");
    let warning = first_warning(&body);
    assert!(warning.starts_with("TTL of \"1h\" exceeded the effective max_ttl of \"1m"), "{warning}");
    assert!(warning.ends_with("\"; TTL value is capped accordingly"), "{warning}");
    let v2 = env.valid_until(&user).await;
    assert!(v2 > v1 && v2 <= issued + 100.0 + 5.0 + 2.0, "capped by max_ttl too: {}", v2 - issued);
    env.assert_logs_in(&user, &password).await;
}

#[tokio::test]
async fn devserver_database_rotate_root_locks_out_the_old_password() {
    let env = env().await;
    let first = "vaultadmin-first-password";
    let admin = env.superuser().await;
    admin.batch_execute(&format!("CREATE ROLE vaultadmin WITH LOGIN SUPERUSER PASSWORD '{first}'")).await.unwrap();
    env.mount("db").await;
    env.configure("db", "vaultadmin", first, json!("*")).await;
    env.role("db", "app", json!({ "db_name": "pg", "creation_statements": CREATE, "default_ttl": "1h" })).await;
    let before = env.creds("db", "app").await;

    let (status, body) = env.call("POST", "db/rotate-root/pg", None).await;
    assert_eq!((status, &body), (204, &Value::Null));
    env.assert_refused("vaultadmin", first, "the old root password").await;
    let (_, body) = env.call("GET", "db/config/pg", None).await;
    assert_eq!(body["data"]["connection_details"]["username"], "vaultadmin");
    assert!(body["data"]["connection_details"].get("password").is_none());
    assert!(!body.to_string().contains(first), "{body}");

    let (user, password) = credentials(&env.creds("db", "app").await);
    env.assert_logs_in(&user, &password).await;
    let (old_user, old_password) = credentials(&before);
    let lease = json!({ "lease_id": before["lease_id"] });
    assert_eq!(env.call("PUT", "sys/leases/revoke", Some(lease)).await.0, 204, "revoked with the new root password");
    env.assert_refused(&old_user, &old_password, "a lease issued before the rotation").await;

    assert_eq!(env.call("POST", "db/rotate-root/pg", None).await.0, 204, "rotates again");
    let (user, password) = credentials(&env.creds("db", "app").await);
    env.assert_logs_in(&user, &password).await;

    let (status, body) = env.call("POST", "db/rotate-root/nope", None).await;
    assert_eq!(status, 500, "Vault's plain error: {body}");
    assert!(first_error(&body).contains("failed to find entry for connection with name: \"nope\""), "{body}");
    let (status, _) = env.call("GET", "db/rotate-root/pg", None).await;
    assert_eq!(status, 405);
    env.superuser().await;
}

#[tokio::test]
async fn devserver_database_allowed_roles_and_unknown_roles() {
    let env = env().await;
    env.mount("db").await;
    env.configure("db", "postgres", SUPERUSER_PASSWORD, json!(["read*"])).await;
    for (name, db) in [("readonly", "pg"), ("writer", "pg"), ("orphan", "missing")] {
        env.role("db", name, json!({ "db_name": db, "creation_statements": CREATE })).await;
    }
    let creds = env.creds("db", "readonly").await;
    assert_eq!(creds["lease_duration"], 2_764_800, "no TTL: the mount's default (768h)");

    let (status, body) = env.call("GET", "db/creds/writer", None).await;
    assert_eq!(
        (status, body),
        (500, json!({ "errors": ["1 error occurred:\n\t* \"writer\" is not an allowed role\n\n"] }))
    );
    let (status, body) = env.call("GET", "db/creds/nope", None).await;
    assert_eq!((status, body), (400, json!({ "errors": ["unknown role: nope"] })));
    let (status, body) = env.call("GET", "db/creds/orphan", None).await;
    assert_eq!(status, 500);
    assert!(first_error(&body).contains("failed to find entry for connection with name: \"missing\""), "{body}");
    assert_eq!(env.call("POST", "db/creds/readonly", Some(json!({}))).await.0, 405);
    assert_eq!(env.call("GET", "db/roles/nope", None).await, (404, json!({ "errors": [] })));
    let (status, body) = env.call("POST", "db/roles/x", Some(json!({ "creation_statements": CREATE }))).await;
    assert_eq!((status, body), (400, json!({ "errors": ["database name is required"] })));
    let (status, body) = env.call("LIST", "db/roles", None).await;
    assert_eq!((status, &body["data"]["keys"]), (200, &json!(["orphan", "readonly", "writer"])));
    let static_clash = json!({ "db_name": "pg", "username": "postgres", "rotation_period": "1h" });
    let (status, body) = env.call("POST", "db/static-roles/writer", Some(static_clash)).await;
    assert_eq!((status, body), (400, json!({ "errors": ["Role and Static Role names must be unique"] })));

    // An update changes only what it sends: the password is kept (the
    // connection is verified again with it).
    let update = json!({ "allowed_roles": "*" });
    assert_eq!(env.call("POST", "db/config/pg", Some(update)).await.0, 204);
    let (user, password) = credentials(&env.creds("db", "writer").await);
    env.assert_logs_in(&user, &password).await;

    // A failing statement rolls the whole creation back, and the error
    // names the failure without echoing the statement.
    let broken = json!({
        "db_name": "pg",
        "creation_statements": [r#"CREATE ROLE "{{name}}" LOGIN PASSWORD '{{password}}'"#, "SELECT * FROM no_such_table"],
    });
    env.role("db", "readbroken", broken).await;
    let (status, body) = env.call("GET", "db/creds/readbroken", None).await;
    assert_eq!(status, 500, "{body}");
    let error = first_error(&body);
    assert!(error.contains("failed to execute query: ERROR: relation \"no_such_table\" does not exist"), "{error}");
    let left: i64 = env
        .superuser()
        .await
        .query_one("SELECT count(*) FROM pg_roles WHERE rolname LIKE 'v-root-readbrok-%'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "the CREATE ROLE was rolled back");
    let unquoted = json!({ "db_name": "pg", "creation_statements": r#"CREATE ROLE "{{name}}" PASSWORD {{password}}"# });
    env.role("db", "readunquoted", unquoted).await;
    let (status, body) = env.call("GET", "db/creds/readunquoted", None).await;
    let error = first_error(&body);
    assert_eq!(status, 500, "{body}");
    // SQLSTATE 42601 is a syntax error; its wording depends on the random
    // password (one that starts with a digit is "trailing junk after
    // numeric literal"), so the code is what is checked.
    assert!(error.contains("failed to execute query: ERROR: ") && error.contains("(SQLSTATE 42601)"), "{error}");
    assert!(!error.contains("at or near"), "no echo of the statement: {error}");

    assert_eq!(env.call("DELETE", "db/roles/writer", None).await.0, 204);
    let (status, body) = env.call("GET", "db/creds/writer", None).await;
    assert_eq!((status, body), (400, json!({ "errors": ["unknown role: writer"] })));
}

#[tokio::test]
async fn devserver_database_shapes_match_the_contract() {
    let env = env().await;
    env.mount("database").await;
    env.configure("database", "postgres", SUPERUSER_PASSWORD, json!(["readonly"])).await;
    let (_, body) = env.call("GET", "database/config/pg", None).await;
    assert_eq!(keys(&body["data"]), keys(&sample("GET", "/v1/database/config/:name", "openbao")), "{body}");

    let documented = sample("GET", "/v1/database/roles/:name", "openbao");
    let role = json!({
        "db_name": "pg",
        "creation_statements": documented["creation_statements"],
        "default_ttl": "1h",
        "max_ttl": "24h",
    });
    env.role("database", "readonly", role).await;
    let (status, body) = env.call("GET", "database/roles/readonly", None).await;
    assert_eq!(status, 200);
    assert_eq!(keys(&body["data"]), keys(&documented), "{body}");
    for key in ["creation_statements", "credential_type", "default_ttl", "max_ttl", "renew_statements"] {
        assert_eq!(body["data"][key], documented[key], "{key}");
    }
    assert_eq!(body["data"]["db_name"], "pg");

    let creds = env.creds("database", "readonly").await;
    assert_eq!(keys(&creds["data"]), keys(&sample("GET", "/v1/database/creds/:name", "openbao")));
    let envelope = ["auth", "data", "lease_duration", "lease_id", "mount_type", "renewable", "request_id"];
    for key in envelope.into_iter().chain(["warnings", "wrap_info"]) {
        assert!(creds.get(key).is_some(), "envelope field {key}: {creds}");
    }
    assert!(creds["lease_id"].as_str().unwrap().starts_with("database/creds/readonly/"));
    assert_eq!(
        (&creds["lease_duration"], &creds["renewable"], &creds["mount_type"]),
        (&json!(3600), &json!(true), &json!("database"))
    );
    let (user, password) = credentials(&creds);
    let session = env.assert_logs_in(&user, &password).await;
    assert!(session.query_one("SELECT count(*) FROM pg_class", &[]).await.is_ok(), "the documented grants ran");
}

#[tokio::test]
async fn devserver_database_static_roles_rotate_on_demand_and_on_schedule() {
    let env = env().await;
    let admin = env.superuser().await;
    admin
        .batch_execute("CREATE ROLE static_app LOGIN PASSWORD 'static-first-password'; CREATE ROLE static_fast LOGIN")
        .await
        .unwrap();
    env.mount("database").await;
    env.configure("database", "postgres", SUPERUSER_PASSWORD, json!("*")).await;

    let body = json!({ "db_name": "pg", "username": "static_app", "rotation_period": "1h" });
    let (status, answer) = env.call("POST", "database/static-roles/app", Some(body)).await;
    assert_eq!(status, 204, "{answer}");
    env.assert_refused("static_app", "static-first-password", "rotated when the role was created").await;
    let (_, role) = env.call("GET", "database/static-roles/app", None).await;
    let documented = keys(&sample("GET", "/v1/database/static-roles/:name", "openbao"));
    assert!(keys(&role["data"]).is_superset(&documented), "{role}");
    assert_eq!((&role["data"]["rotation_period"], &role["data"]["rotation_statements"]), (&json!(3600), &json!([])));

    let (status, creds) = env.call("GET", "database/static-creds/app", None).await;
    assert_eq!(status, 200, "{creds}");
    assert_eq!(keys(&creds["data"]), keys(&sample("GET", "/v1/database/static-creds/:name", "vault")));
    assert!((3595..=3600).contains(&creds["data"]["ttl"].as_i64().unwrap()), "{creds}");
    let first = creds["data"]["password"].as_str().unwrap().to_owned();
    env.assert_logs_in("static_app", &first).await;

    assert_eq!(env.call("POST", "database/rotate-role/app", None).await.0, 204);
    let (_, creds) = env.call("GET", "database/static-creds/app", None).await;
    let second = creds["data"]["password"].as_str().unwrap().to_owned();
    assert_ne!(first, second);
    env.assert_refused("static_app", &first, "after rotate-role").await;
    env.assert_logs_in("static_app", &second).await;

    let (status, body) = env.call("GET", "database/static-creds/nope", None).await;
    assert_eq!((status, body), (400, json!({ "errors": ["unknown role: nope"] })));
    let (status, body) = env.call("POST", "database/rotate-role/nope", None).await;
    assert_eq!((status, body), (400, json!({ "errors": ["no static role found for role name"] })));
    let too_fast = json!({ "db_name": "pg", "username": "static_fast", "rotation_period": 2 });
    let (status, body) = env.call("POST", "database/static-roles/x", Some(too_fast)).await;
    assert_eq!((status, body), (400, json!({ "errors": ["rotation_period must be 5 seconds or more"] })));
    let ghost = json!({ "db_name": "pg", "username": "nobody_here", "rotation_period": "1h" });
    let (status, body) = env.call("POST", "database/static-roles/ghost", Some(ghost)).await;
    assert_eq!(status, 500, "{body}");
    assert!(first_error(&body).contains("user does not appear to exist"), "{body}");
    assert_eq!(env.call("GET", "database/static-roles/ghost", None).await.0, 404, "nothing saved");

    let fast = json!({ "db_name": "pg", "username": "static_fast", "rotation_period": 5 });
    assert_eq!(env.call("POST", "database/static-roles/fast", Some(fast)).await.0, 204);
    let (_, creds) = env.call("GET", "database/static-creds/fast", None).await;
    let initial = creds["data"]["password"].as_str().unwrap().to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut current = initial.clone();
    while current == initial && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let (_, creds) = env.call("GET", "database/static-creds/fast", None).await;
        current = creds["data"]["password"].as_str().unwrap().to_owned();
    }
    assert_ne!(current, initial, "rotated by the background task after rotation_period");
    env.assert_refused("static_fast", &initial, "after the scheduled rotation").await;
    env.assert_logs_in("static_fast", &current).await;
}

#[tokio::test]
async fn devserver_database_scram_password_authentication_hashes_before_sending() {
    let env = env().await;
    let admin = env.superuser().await;
    // Plain passwords this root user sends would be stored as md5 hashes.
    admin
        .batch_execute(
            "CREATE ROLE scramroot LOGIN SUPERUSER PASSWORD 'scram-root-password';
             ALTER ROLE scramroot SET password_encryption = 'md5'",
        )
        .await
        .unwrap();
    env.mount("db").await;
    let mut config = env.config_body("scramroot", "scram-root-password", json!("*"));
    config["password_authentication"] = json!("scram-sha-256");
    let (status, body) = env.call("POST", "db/config/pg", Some(config)).await;
    assert_eq!(status, 204, "{body}");
    env.role("db", "app", json!({ "db_name": "pg", "creation_statements": CREATE })).await;
    let (user, password) = credentials(&env.creds("db", "app").await);
    env.assert_logs_in(&user, &password).await;
    let stored: String =
        admin.query_one("SELECT rolpassword FROM pg_authid WHERE rolname = $1", &[&user]).await.unwrap().get(0);
    assert!(stored.starts_with("SCRAM-SHA-256$4096:"), "the server stored the verifier sent: {stored}");

    let mut plain = env.config_body("scramroot", "scram-root-password", json!("*"));
    plain["password_authentication"] = json!("password");
    assert_eq!(env.call("POST", "db/config/plain", Some(plain)).await.0, 204);
    env.role("db", "plain", json!({ "db_name": "plain", "creation_statements": CREATE })).await;
    let (user, _) = credentials(&env.creds("db", "plain").await);
    let stored: String =
        admin.query_one("SELECT rolpassword FROM pg_authid WHERE rolname = $1", &[&user]).await.unwrap().get(0);
    assert!(stored.starts_with("md5"), "without it the plain password went over the wire: {stored}");
}

#[tokio::test]
async fn devserver_database_custom_revocation_statements_run_instead_of_the_default() {
    let env = env().await;
    env.mount("db").await;
    env.configure("db", "postgres", SUPERUSER_PASSWORD, json!("*")).await;
    let admin = env.superuser().await;
    admin.batch_execute("CREATE TABLE revoked (name text)").await.unwrap();
    // Vault's documented PostgreSQL revocation, plus a trace the default
    // revocation would never leave.
    let revoke = [
        r#"INSERT INTO revoked VALUES ('{{name}}');"#,
        r#"REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA public FROM "{{name}}";"#,
        r#"DROP ROLE IF EXISTS "{{name}}";"#,
    ];
    let role = json!({ "db_name": "pg", "creation_statements": CREATE, "revocation_statements": revoke });
    env.role("db", "custom", role).await;
    let (_, body) = env.call("GET", "db/roles/custom", None).await;
    assert_eq!(body["data"]["revocation_statements"], json!(revoke), "{body}");

    let creds = env.creds("db", "custom").await;
    let (user, password) = credentials(&creds);
    env.assert_logs_in(&user, &password).await;
    let lease = creds["lease_id"].as_str().unwrap();
    let (status, body) = env.call("PUT", "sys/leases/revoke", Some(json!({ "lease_id": lease }))).await;
    assert_eq!(status, 204, "{body}");
    assert!(!env.role_exists(&user).await, "the custom DROP ROLE ran");
    env.assert_refused(&user, &password, "after the custom revocation").await;
    let traced: Vec<String> =
        admin.query("SELECT name FROM revoked", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(traced, vec![user], "the role's own statements ran, with {{{{name}}}} filled in");
}
