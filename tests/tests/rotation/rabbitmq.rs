//! The built-in `rabbitmq-password` plugin end to end against a real
//! RabbitMQ node (one per test binary, [`rabbitmq::shared`]), through the
//! host's `http` import in handle mode: the plugin never holds a password.
//! Rotations are driven by the host library (`setup::load_jobs`,
//! `Job::rotate`) against the in-process dev server. Each test has users of
//! its own, so the tests share the node safely. Every rotation's log output
//! is captured and must not contain any password read from Vault.

use rotator_core::rotation::{Job, RotationError};
use rotator_core::secret::SecretJson;
use rotator_core::vault::VaultClient;
use rotator_tests::logs::{self, capture};
use rotator_tests::rabbitmq::{self, RabbitMq};
use rotator_tests::{dev_server, jobs, store};
use serde_json::{Value, json};

use crate::one_runtime;

/// Where the administrator's credentials are in Vault.
const ADMIN_PATH: &str = "rabbit/admin";

/// The node, started by the first test that needs it.
async fn node() -> &'static RabbitMq {
    tokio::task::spawn_blocking(rabbitmq::shared).await.unwrap()
}

/// One job `id` rotating `secret/rabbit/<id>` with `settings` (a TOML
/// inline table's inside), granted HTTP to the node's management API and,
/// with `admin`, a read of the admin secret.
fn config(rabbit: &RabbitMq, id: &str, settings: &str, admin: bool) -> String {
    let (admin_setting, admin_grant) = if admin {
        (
            format!(r#", admin = {{ mount = "secret", path = "{ADMIN_PATH}" }}"#),
            format!("\n[[jobs.grants]]\npath = \"secret/data/{ADMIN_PATH}\"\noperations = [\"read\"]\n"),
        )
    } else {
        (String::new(), String::new())
    };
    format!(
        r#"
[[jobs]]
id = "{id}"
plugin = "rabbitmq-password"
secret = {{ mount = "secret", path = "rabbit/{id}" }}
interval = "24h"
enabled = false
settings = {{ url = "{url}", {settings}{admin_setting} }}

[[jobs.grants]]
http = "{origin}"
paths = ["/api/users/", "/api/permissions/", "/api/whoami"]
methods = ["GET", "PUT"]
{admin_grant}"#,
        url = rabbit.base_url(),
        origin = rabbit.origin(),
    )
}

async fn write(vault: &VaultClient, path: &str, data: Value) {
    vault.kv_write("secret", path, &SecretJson::new(data.to_string()), None).await.unwrap();
}

/// The job's secret as rotated: (username, password, version).
async fn secret(vault: &VaultClient, id: &str) -> (String, String, u64) {
    let s = vault.kv_read("secret", &format!("rabbit/{id}")).await.unwrap().expect("the secret exists");
    let f = s.data.fields();
    assert_eq!(f.len(), 2, "the secret holds username and password only");
    (f["username"].as_str().unwrap().to_owned(), f["password"].as_str().unwrap().to_owned(), s.version.unwrap())
}

async fn rotate(job: &Job, vault: &VaultClient) {
    job.rotate(&store(vault), "test").await.unwrap_or_else(|e| panic!("{e}"));
}

/// The user's tags, sorted.
async fn tags(rabbit: &RabbitMq, user: &str) -> Vec<String> {
    let (status, body) = rabbit.api("GET", &format!("/api/users/{}", segment(user)), None).await;
    assert_eq!(status, 200, "{body}");
    let mut tags: Vec<String> = match &body["tags"] {
        Value::Array(t) => t.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        Value::String(s) => s.split(',').filter(|t| !t.is_empty()).map(str::to_owned).collect(),
        other => panic!("tags: {other}"),
    };
    tags.sort();
    tags
}

/// The user's permissions as (vhost, configure, write, read), sorted.
async fn permissions(rabbit: &RabbitMq, user: &str) -> Vec<(String, String, String, String)> {
    let (status, body) = rabbit.api("GET", &format!("/api/users/{}/permissions", segment(user)), None).await;
    assert_eq!(status, 200, "{body}");
    let text = |p: &Value, k: &str| p[k].as_str().unwrap().to_owned();
    let mut all: Vec<_> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (text(p, "vhost"), text(p, "configure"), text(p, "write"), text(p, "read")))
        .collect();
    all.sort();
    all
}

fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// No password (nor the admin's) appears anywhere in the captured logs.
fn assert_not_logged(passwords: &[&str]) {
    let text = logs::text();
    for pw in passwords.iter().chain(&[rabbitmq::ADMIN_PASSWORD]) {
        assert!(!text.contains(pw), "a password reached the logs");
    }
}

#[test]
fn single_user_rotates_in_handle_mode_with_admin_credentials_from_vault() {
    one_runtime().block_on(async {
        capture();
        let rabbit = node().await;
        // A name that must be percent-encoded to stay one path segment.
        let user = "orders/app svc";
        rabbit.create_user(user, "initial-orders-pw", &["monitoring"]).await;
        let before = tags(rabbit, user).await;
        let server = dev_server().await;
        let settings = format!(r#"username = "{user}", password = {{ length = 40 }}"#);
        let (vault, jobs, _rt) = jobs(&server, &config(rabbit, "single", &settings, true));
        write(&vault, ADMIN_PATH, json!({"username": rabbit.admin_user(), "password": rabbit.admin_password()})).await;
        write(&vault, "rabbit/single", json!({"username": user, "password": "initial-orders-pw"})).await;

        let mut previous = "initial-orders-pw".to_owned();
        let mut seen = vec![previous.clone()];
        for round in 2..=3u64 {
            rotate(&jobs[0], &vault).await;
            let (name, password, version) = secret(&vault, "single").await;
            assert_eq!((name.as_str(), version), (user, round));
            assert_eq!(password.len(), 40);
            assert!(!seen.contains(&password), "a password repeated");
            assert!(rabbit.authenticates(user, &password).await, "the new password in Vault does not log in");
            assert!(!rabbit.authenticates(user, &previous).await, "the old password still logs in");
            assert_eq!(tags(rabbit, user).await, before, "the user's tags were not kept");
            seen.push(password.clone());
            previous = password;
        }
        // The host redacts every value of the job's secret from plugin output,
        // the user name included, so the line is found by its wording.
        let changed = logs::lines_with(&["job=\"single\"", "changed the password of RabbitMQ user `"]);
        assert_eq!(changed.len(), 2, "the plugin's log lines: {changed:?}");
        let seen: Vec<&str> = seen.iter().map(String::as_str).collect();
        assert_not_logged(&seen);
    })
}

#[test]
fn alternating_users_take_turns_and_a_missing_second_user_copies_tags_and_permissions() {
    one_runtime().block_on(async {
        capture();
        let rabbit = node().await;
        let (first, second) = ("alt-first", "alt-second");
        rabbit.create_user(first, "initial-alt-pw", &["administrator"]).await;
        rabbit.set_permissions(first).await;
        let (status, body) = rabbit.api("PUT", "/api/vhosts/alt-orders", None).await;
        assert!(matches!(status, 201 | 204), "{status} {body}");
        let narrow = json!({"configure": "^alt-.*", "write": ".*", "read": "^orders$"});
        let (status, body) = rabbit.api("PUT", &format!("/api/permissions/alt-orders/{first}"), Some(narrow)).await;
        assert!(matches!(status, 201 | 204), "{status} {body}");
        let server = dev_server().await;
        // No `admin`: the current user (an administrator) makes the calls.
        let settings = format!(r#"strategy = "alternating-users", usernames = ["{first}", "{second}"]"#);
        let (vault, jobs, _rt) = jobs(&server, &config(rabbit, "alternating", &settings, false));
        write(&vault, "rabbit/alternating", json!({"username": first, "password": "initial-alt-pw"})).await;

        // First rotation: the second user does not exist; it is created with
        // the first's tags and permissions, and the first is not touched.
        rotate(&jobs[0], &vault).await;
        let (name, second_pw, _) = secret(&vault, "alternating").await;
        assert_eq!(name, second);
        assert!(rabbit.authenticates(second, &second_pw).await);
        assert!(rabbit.authenticates(first, "initial-alt-pw").await, "the active user was touched");
        assert_eq!(tags(rabbit, second).await, tags(rabbit, first).await);
        let copied = permissions(rabbit, second).await;
        assert_eq!(copied.len(), 2, "{copied:?}");
        assert_eq!(copied, permissions(rabbit, first).await);

        // Second rotation: back to the first user, logged in as the second.
        rotate(&jobs[0], &vault).await;
        let (name, first_pw, version) = secret(&vault, "alternating").await;
        assert_eq!((name.as_str(), version), (first, 3));
        assert!(rabbit.authenticates(first, &first_pw).await);
        assert!(!rabbit.authenticates(first, "initial-alt-pw").await, "the first user's old password still works");
        assert!(rabbit.authenticates(second, &second_pw).await, "the now inactive user lost its password early");
        assert_not_logged(&["initial-alt-pw", &second_pw, &first_pw]);
    })
}

#[test]
fn a_failed_test_rolls_back_and_the_current_password_still_works() {
    one_runtime().block_on(async {
    capture();
    let rabbit = node().await;
    let user = "no-management";
    // A user without any tag may use AMQP but not the management API, so
    // `test` (GET /api/whoami as the user) is refused after `set` succeeded.
    let body = json!({"password": "initial-plain-pw", "tags": ""});
    let (status, answer) = rabbit.api("PUT", &format!("/api/users/{user}"), Some(body)).await;
    assert!(matches!(status, 201 | 204), "{status} {answer}");
    let server = dev_server().await;
    let (vault, jobs, _rt) = jobs(&server, &config(rabbit, "untagged", &format!(r#"username = "{user}""#), true));
    write(&vault, ADMIN_PATH, json!({"username": rabbit.admin_user(), "password": rabbit.admin_password()})).await;
    write(&vault, "rabbit/untagged", json!({"username": user, "password": "initial-plain-pw"})).await;

    let err = jobs[0].rotate(&store(&vault), "test").await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, RotationError::Step { .. }), "{msg}");
    assert!(msg.contains("RabbitMQ refused the new password of user `"), "{msg}");
    assert!(msg.ends_with("; rolled back"), "{msg}");
    let (_, password, version) = secret(&vault, "untagged").await;
    assert_eq!((password.as_str(), version), ("initial-plain-pw", 1), "the failed rotation changed Vault");
    assert!(tags(rabbit, user).await.is_empty(), "rollback changed the user's tags");
    assert_eq!(logs::lines_with(&["job=\"untagged\"", "restored the previous password"]).len(), 1);

    // Prove the restored password: give the user the management tag while
    // keeping its password hash as it is, then log in with the current one.
    let (_, current) = rabbit.api("GET", &format!("/api/users/{user}"), None).await;
    let keep = json!({"password_hash": current["password_hash"], "hashing_algorithm": current["hashing_algorithm"], "tags": "management"});
    let (status, answer) = rabbit.api("PUT", &format!("/api/users/{user}"), Some(keep)).await;
    assert!(matches!(status, 201 | 204), "{status} {answer}");
    assert!(rabbit.authenticates(user, "initial-plain-pw").await, "the current password no longer works");
    assert_not_logged(&["initial-plain-pw"]);
    })
}

#[test]
fn a_missing_admin_secret_is_a_config_error_and_nothing_changes() {
    one_runtime().block_on(async {
        capture();
        let rabbit = node().await;
        let user = "admin-missing";
        rabbit.create_user(user, "initial-missing-pw", &[]).await;
        let server = dev_server().await;
        let (vault, jobs, _rt) = jobs(&server, &config(rabbit, "noadmin", &format!(r#"username = "{user}""#), true));
        write(&vault, "rabbit/noadmin", json!({"username": user, "password": "initial-missing-pw"})).await;

        let msg = jobs[0].rotate(&store(&vault), "test").await.unwrap_err().to_string();
        assert!(msg.contains("the admin secret secret/rabbit/admin does not exist"), "{msg}");
        assert_eq!(secret(&vault, "noadmin").await.2, 1);
        assert!(rabbit.authenticates(user, "initial-missing-pw").await);
    })
}

#[test]
fn without_admin_an_administrator_changes_its_own_password() {
    one_runtime().block_on(async {
        capture();
        let rabbit = node().await;
        let user = "self-admin";
        rabbit.create_user(user, "initial-self-pw", &["administrator"]).await;
        let server = dev_server().await;
        // No `admin`: the job's own credential makes the calls, and each
        // rotation logs in with what the previous one set.
        let (vault, jobs, _rt) = jobs(&server, &config(rabbit, "self", &format!(r#"username = "{user}""#), false));
        write(&vault, "rabbit/self", json!({"username": user, "password": "initial-self-pw"})).await;

        let mut seen = vec!["initial-self-pw".to_owned()];
        for _ in 0..2 {
            rotate(&jobs[0], &vault).await;
            let (_, password, _) = secret(&vault, "self").await;
            assert!(rabbit.authenticates(user, &password).await, "the new password does not log in");
            assert!(!rabbit.authenticates(user, seen.last().unwrap()).await, "the old password still logs in");
            assert!(!seen.contains(&password));
            seen.push(password);
        }
        assert_eq!(tags(rabbit, user).await, ["administrator", "management"], "the tags were not kept");
        let seen: Vec<&str> = seen.iter().map(String::as_str).collect();
        assert_not_logged(&seen);
    })
}

#[test]
fn a_dry_run_describes_the_calls_and_changes_nothing() {
    one_runtime().block_on(async {
        capture();
        let rabbit = node().await;
        let user = "plan-first";
        rabbit.create_user(user, "initial-plan-pw", &[]).await;
        let server = dev_server().await;
        let settings = format!(r#"strategy = "alternating-users", usernames = ["{user}", "plan-second"]"#);
        let (vault, jobs, _rt) = jobs(&server, &config(rabbit, "planned", &settings, true));
        write(&vault, "rabbit/planned", json!({"username": user, "password": "initial-plan-pw"})).await;

        let plan = jobs[0].plan(&store(&vault)).await.unwrap_or_else(|e| panic!("{e}"));
        let summaries: Vec<&str> = plan.plugin_actions.iter().map(|a| a.summary.as_str()).collect();
        let url = rabbit.base_url();
        for want in [
            "the host generates a 32-character password for user `plan-second`".to_owned(),
            format!("as the administrator in secret/{ADMIN_PATH}: GET {url}/api/users/plan-second (keep its tags)"),
            "if missing, create it with the other user's tags and vhost permissions".to_owned(),
            format!("GET {url}/api/whoami as `plan-second` with the new password"),
            "nothing to undo: the current user was not touched".to_owned(),
        ] {
            assert!(summaries.iter().any(|s| s.contains(&want)), "missing {want:?} in {summaries:#?}");
        }
        // Nothing was written, and the second user was not created.
        assert_eq!(secret(&vault, "planned").await.2, 1);
        assert_eq!(rabbit.api("GET", "/api/users/plan-second", None).await.0, 404);
        assert!(rabbit.authenticates(user, "initial-plan-pw").await);
    })
}
