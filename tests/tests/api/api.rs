//! The operator API over real HTTP on loopback: whole daemons (no jobs)
//! against the in-process dev server and, for dynamic credentials and root
//! rotation, a real PostgreSQL. Every daemon log line of the test binary is
//! captured, and no secret value (nor the API token) may appear in it.

use std::time::Duration;

use rotator_core::vault::{VaultClient, VaultOptions};
use rotator_tests::api::{Api, error_message};
use rotator_tests::logs;
use rotator_tests::postgres::{Postgres, SUPERUSER_PASSWORD};
use rotator_tests::{ROOT, dev_server, http_client};
use secrecy::SecretString;
use serde_json::{Value, json};

fn assert_not_logged(values: &[&str]) {
    let text = logs::text();
    assert!(text.contains("DEBUG") || text.contains("INFO"), "the log capture works");
    for v in values {
        let line = text.lines().find(|l| l.contains(v));
        assert!(line.is_none(), "secret value {v:?} appears in the logs: {line:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn health_is_open_everything_else_needs_the_token_and_errors_are_json() {
    let server = dev_server().await;
    let api = Api::start(&server, false).await;

    // The probes say one word; the reasons are behind the token
    // (every route's access is checked in api_surface.rs).
    let ready = api.send(None, "GET", "/readyz", None).await;
    assert_eq!((ready.status, ready.body), (200, json!({ "status": "ready" })));
    // Anyone can probe, but a burst of probes asks Vault once per second at
    // most: one probe checks, the others wait for and share its answer.
    let checked = || server.stats().by_path.get("sys/health").copied().unwrap_or(0);
    let before = checked();
    let burst = (0..64).map(|_| api.send(None, "GET", "/readyz", None));
    let answers = futures_util::future::join_all(burst).await;
    assert!(answers.iter().all(|a| a.status == 200), "a probe in the burst was not ready");
    assert!(checked() - before <= 2, "64 probes asked Vault {} times", checked() - before);
    let status = api.expect(200, "GET", "/status", None).await;
    let checks = json!({ "vault": "ok", "token": "ok", "task_panics": 0 });
    assert_eq!(status["readiness"], json!({ "status": "ready", "checks": checks }));
    let wrong = api.send(Some("not-the-token-but-long-enough"), "GET", "/token", None).await;
    assert_eq!((wrong.status, error_message(&wrong.body)), (401, "the API token is not valid"));
    let almost = &api.token[..api.token.len() - 1];
    assert_eq!(api.send(Some(almost), "GET", "/leases", None).await.status, 401);
    let basic = api.http.get(format!("{}/token", api.base)).header("Authorization", format!("Basic {}", api.token));
    assert_eq!(basic.send().await.unwrap().status().as_u16(), 401);

    // The daemon's own token: the dev root token never expires.
    let token = api.expect(200, "GET", "/token", None).await;
    assert_eq!(token["policies"], json!(["root"]));
    assert_eq!((token["expires"].clone(), token["budget_seconds"].clone()), (json!(false), Value::Null));
    assert_eq!(token["renewals"], 0);
    assert_eq!((token["stranded"].clone(), token["reloads"].clone()), (json!(false), json!(0)));

    // The served document lists every route.
    let doc = api.expect(200, "GET", "/openapi.json", None).await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/leases/{lease_id}"]["delete"].is_object());

    // Errors name the problem in one JSON field.
    let (status, body) = api.call("GET", "/nowhere", None).await;
    assert_eq!((status, error_message(&body)), (404, "no such endpoint: GET /nowhere"));
    assert_eq!(api.call("PUT", "/leases", None).await.0, 405);
    let bad_json = api.send(Some(&api.token), "POST", "/kv/app/x", Some("{\"data\": ")).await;
    assert_eq!(bad_json.status, 400);
    assert!(error_message(&bad_json.body).starts_with("invalid JSON body"), "{}", bad_json.body);
    let body = api.expect(400, "POST", "/kv/app/x", Some(json!({ "data": "a-secret-string-value" }))).await;
    assert_eq!(error_message(&body), "`data` must be a JSON object of the secret's fields");
    let body = api.expect(400, "POST", "/kv/app/x", Some(json!({ "data": {}, "extra": 1 }))).await;
    assert!(error_message(&body).contains("unknown field `extra`"), "{body}");
    let body = api.expect(400, "GET", "/kv/app%3Fversion=1", None).await;
    assert!(error_message(&body).contains("escape `%3F`"), "{body}");
    let body = api.expect(400, "GET", "/kv/app/x?bogus=1", None).await;
    assert!(error_message(&body).contains("bogus"), "{body}");
    let body = api.expect(404, "GET", "/kv/app/missing", None).await;
    assert_eq!(error_message(&body), "no secret at secret/app/missing");
    api.expect(200, "POST", "/kv/app/x", Some(json!({ "data": { "k": "v1-value" } }))).await;
    let body = api.expect(409, "POST", "/kv/app/x", Some(json!({ "data": { "k": "v2-value" }, "cas": 0 }))).await;
    assert!(error_message(&body).contains("check-and-set"), "{body}");
    let api_token = api.token.clone();
    api.stop().await;

    // A daemon whose Vault token goes bad (revoked behind its back; it
    // could not start with a bad one) is not ready, and Vault's refusal
    // comes back as a 502 with Vault's message.
    let http = http_client(Duration::from_secs(10));
    let (status, created) = rotator_tests::call(&http, &server, Some(ROOT), "POST", "auth/token/create", None).await;
    assert_eq!(status, 200, "{created}");
    let doomed = created["auth"]["client_token"].as_str().unwrap().to_owned();
    let broken = Api::start_as(&server, &doomed, false).await;
    let revoke = json!({ "token": doomed });
    let (status, _) = rotator_tests::call(&http, &server, Some(ROOT), "POST", "auth/token/revoke", Some(revoke)).await;
    assert_eq!(status, 204);
    let ready = broken.send(None, "GET", "/readyz", None).await;
    assert_eq!((ready.status, ready.body), (503, json!({ "status": "not ready" })));
    let readiness = broken.expect(200, "GET", "/status", None).await["readiness"].clone();
    assert_eq!(readiness["error"], "the daemon's vault token is invalid or expired");
    assert_eq!((readiness["status"].clone(), readiness["checks"]["vault"].clone()), (json!("not ready"), json!("ok")));
    let body = broken.expect(502, "GET", "/token", None).await;
    assert!(error_message(&body).contains("vault answered 403"), "{body}");
    assert!(error_message(&body).contains("permission denied"), "{body}");
    let token = broken.token.clone();
    broken.stop().await;
    assert_not_logged(&[&api_token, &token, "a-secret-string-value", "v1-value", "v2-value"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn kv_reads_writes_and_rotations_are_redacted_unless_revealed() {
    let server = dev_server().await;
    let api = Api::start(&server, false).await;
    let open = Api::start(&server, true).await;
    let vault = VaultClient::new(VaultOptions::new(server.url(), SecretString::from(ROOT))).unwrap();

    let secret = json!({ "username": "svc-billing", "password": "initial-password-1" });
    let written = api.expect(200, "POST", "/kv/billing/db", Some(json!({ "data": secret }))).await;
    assert_eq!(written, json!({ "mount": "secret", "path": "billing/db", "version": 1 }));
    let read = api.expect(200, "GET", "/kv/billing/db", None).await;
    assert_eq!(read["data"], json!({ "username": "<redacted>", "password": "<redacted>" }));
    assert_eq!((read["version"].clone(), read["redacted"].clone()), (json!(1), json!(true)));
    let revealed = open.expect(200, "GET", "/kv/billing/db?mount=secret", None).await;
    assert_eq!((revealed["data"].clone(), revealed["redacted"].clone()), (secret.clone(), json!(false)));

    // Versions: a check-and-set write, then the old version by number.
    let v2 = json!({ "username": "svc-billing", "password": "second-password-2" });
    api.expect(200, "POST", "/kv/billing/db", Some(json!({ "data": v2, "cas": 1 }))).await;
    assert_eq!(open.expect(200, "GET", "/kv/billing/db?version=1", None).await["data"], secret);
    assert_eq!(open.expect(200, "GET", "/kv/billing/db", None).await["version"], 2);
    api.expect(404, "GET", "/kv/billing/db?version=9", None).await;

    // Rotate one field: a new random value in Vault, other fields kept,
    // fixed fields added, the answer redacted.
    let body = json!({ "field": "password", "length": 40, "preserve_fields": { "api_key": "fixed-api-key-value" } });
    let rotated = api.expect(200, "POST", "/kv/billing/db/rotate", Some(body)).await;
    assert_eq!((rotated["previous_version"].clone(), rotated["version"].clone()), (json!(2), json!(3)));
    assert_eq!(rotated["plugin"].as_str().map(|p| p.starts_with("kv-random@")), Some(true));
    let redacted = json!({ "username": "<redacted>", "password": "<redacted>", "api_key": "<redacted>" });
    assert_eq!(rotated["data"], redacted);
    let now = vault.kv_read("secret", "billing/db").await.unwrap().unwrap().data.fields();
    let password = now["password"].as_str().unwrap().to_owned();
    assert_eq!(password.len(), 40);
    assert!(password != "second-password-2" && password.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!((now["username"].as_str(), now["api_key"].as_str()), (Some("svc-billing"), Some("fixed-api-key-value")));

    // Revealed, the answer carries what Vault now holds; the mount may come
    // from the body, and a missing secret is created.
    let body = json!({ "field": "token", "alphabet": "abcdef", "mount": "secret" });
    let created = open.expect(200, "POST", "/kv/fresh/app/rotate", Some(body)).await;
    let token = created["data"]["token"].as_str().unwrap().to_owned();
    assert_eq!((created["version"].clone(), token.len()), (json!(1), 32));
    assert!(token.chars().all(|c| "abcdef".contains(c)));
    let stored = vault.kv_read("secret", "fresh/app").await.unwrap().unwrap().data.fields();
    assert_eq!(stored["token"].as_str(), Some(token.as_str()));

    // Bad rotation requests are refused before anything runs.
    let body =
        api.expect(400, "POST", "/kv/billing/db/rotate", Some(json!({ "field": "password", "length": 4 }))).await;
    assert!(error_message(&body).contains("length: 4 is less than the minimum of 8"), "{body}");
    let body = json!({ "field": "password", "preserve_fields": "a-secret-string-value" });
    let body = api.expect(400, "POST", "/kv/billing/db/rotate", Some(body)).await;
    assert_eq!(error_message(&body), "`preserve_fields` must be a JSON object");
    api.expect(400, "POST", "/kv/billing/db/rotate", Some(json!({ "length": 12 }))).await;

    // KV v1: no versions and no check-and-set; rotated all the same, with
    // keyed fingerprints for versions (issue 16; `rotation/kv1.rs`).
    let (status, _) = rotator_tests::call(
        &http_client(Duration::from_secs(10)),
        &server,
        Some(ROOT),
        "POST",
        "sys/mounts/kv1",
        Some(json!({ "type": "kv", "options": { "version": "1" } })),
    )
    .await;
    assert_eq!(status, 204);
    let v1 = json!({ "data": { "key": "kv1-secret-value" } });
    assert_eq!(api.expect(200, "POST", "/kv/app?mount=kv1", Some(v1)).await["version"], Value::Null);
    assert_eq!(open.expect(200, "GET", "/kv/app?mount=kv1", None).await["data"]["key"], "kv1-secret-value");
    let body = api.expect(400, "GET", "/kv/app?mount=kv1&version=1", None).await;
    assert!(error_message(&body).contains("keeps no versions"), "{body}");
    let body = api.expect(200, "POST", "/kv/app/rotate?mount=kv1", Some(json!({ "field": "key" }))).await;
    for version in [&body["previous_version"], &body["version"]] {
        assert!(version.as_str().is_some_and(|v| v.starts_with("kv1:")), "{body}");
    }
    assert_ne!(open.expect(200, "GET", "/kv/app?mount=kv1", None).await["data"]["key"], "kv1-secret-value");

    let tokens = [api.token.clone(), open.token.clone()];
    api.stop().await;
    open.stop().await;
    let mut values = vec!["initial-password-1", "second-password-2", "fixed-api-key-value", "kv1-secret-value"];
    values.extend([password.as_str(), token.as_str(), tokens[0].as_str(), tokens[1].as_str()]);
    values.push("a-secret-string-value");
    assert_not_logged(&values);
}

/// Vault's PostgreSQL creation statement for role `app`.
const CREATE: &str = r#"CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"#;
const ROOT_PASSWORD: &str = "initial-root-password";

#[tokio::test(flavor = "multi_thread")]
async fn dynamic_credentials_are_tracked_and_revoked_and_database_root_rotates() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let admin = pg.connect("postgres", SUPERUSER_PASSWORD).await.unwrap();
    admin
        .batch_execute(&format!("CREATE ROLE vaultadmin WITH LOGIN SUPERUSER PASSWORD '{ROOT_PASSWORD}'"))
        .await
        .unwrap();
    let server = dev_server().await;
    let vault = VaultClient::new(VaultOptions::new(server.url(), SecretString::from(ROOT))).unwrap();
    let setup = [
        ("sys/mounts/database", json!({ "type": "database" })),
        ("database/config/pg", pg.vault_config("vaultadmin", ROOT_PASSWORD, json!(["app"]))),
        ("database/roles/app", json!({ "db_name": "pg", "creation_statements": CREATE, "default_ttl": "1h" })),
    ];
    for (path, body) in setup {
        vault.request("POST", path, Some(body.to_string())).await.unwrap_or_else(|e| panic!("{path}: {e}"));
    }
    let api = Api::start(&server, false).await;
    let open = Api::start(&server, true).await;

    // Redacted credentials, tracked by that daemon.
    let creds = api.expect(200, "GET", "/dynamic/app", None).await;
    assert_eq!(creds["data"], json!({ "username": "<redacted>", "password": "<redacted>" }));
    assert_eq!((creds["path"].as_str(), creds["renewable"].as_bool()), (Some("database/creds/app"), Some(true)));
    assert_eq!(creds["lease_duration"], 3600);
    let leases = api.expect(200, "GET", "/leases", None).await["leases"].clone();
    assert_eq!(leases.as_array().unwrap().len(), 1);
    assert_eq!(leases[0]["lease_id"], creds["lease_id"]);

    // Revealed credentials log in; the lease is listed with its timing,
    // then revoked, after which the login is gone and the lease untracked.
    let creds = open.expect(200, "GET", "/dynamic/app?mount=database", None).await;
    let (user, password) = (creds["data"]["username"].as_str().unwrap(), creds["data"]["password"].as_str().unwrap());
    assert!(pg.logs_in(user, password).await);
    let lease_id = creds["lease_id"].as_str().unwrap();
    assert!(lease_id.starts_with("database/creds/app/"), "{lease_id}");
    let leases = open.expect(200, "GET", "/leases", None).await["leases"].clone();
    let lease = &leases[0];
    assert_eq!((lease["lease_id"].as_str(), lease["next_action"].as_str()), (Some(lease_id), Some("renew")));
    let ttl = lease["ttl_seconds"].as_u64().unwrap();
    assert!((3590..=3600).contains(&ttl), "{lease}");
    let next = lease["next_action_in_seconds"].as_u64().unwrap();
    assert!(next > 2000 && next < ttl, "renewal at about 2/3 of the TTL: {lease}");
    assert_eq!(lease["budget_seconds"], ttl);
    let status = open.expect(200, "GET", "/status", None).await;
    assert_eq!(status["leases"][0]["lease_id"], lease_id, "/status shows the lease too");
    let revoked = open.expect(200, "DELETE", &format!("/leases/{lease_id}"), None).await;
    assert_eq!(revoked, json!({ "revoked": lease_id }));
    assert!(!pg.logs_in(user, password).await, "a revoked credential still logs in");
    assert_eq!(open.expect(200, "GET", "/leases", None).await["leases"], json!([]));
    let body = open.expect(404, "DELETE", &format!("/leases/{lease_id}"), None).await;
    assert!(error_message(&body).starts_with("no tracked lease"), "{body}");

    // Bad roles and mounts.
    let body = api.expect(400, "GET", "/dynamic/app?mount=data*", None).await;
    assert!(error_message(&body).contains("not a plain name"), "{body}");
    let (status, body) = api.call("GET", "/dynamic/nope", None).await;
    assert!([400, 404].contains(&status), "{status} {body}");
    assert!(error_message(&body).contains("vault answered"), "{body}");

    // Root rotation: Vault changes the root password, the plugin is granted
    // exactly this connection's two paths, and Vault still manages the database.
    let rotated = api.expect(200, "POST", "/rotate/database-root", Some(json!({ "connection": "pg" }))).await;
    let calls = json!([
        { "operation": "write", "path": "database/rotate-root/pg" },
        { "operation": "read", "path": "database/config/pg" },
    ]);
    assert_eq!((rotated["vault_calls"].clone(), rotated["mount"].clone()), (calls, json!("database")));
    assert!(!pg.logs_in("vaultadmin", ROOT_PASSWORD).await, "the old root password still works");
    let creds = open.expect(200, "GET", "/dynamic/app", None).await;
    let (user2, password2) = (creds["data"]["username"].as_str().unwrap(), creds["data"]["password"].as_str().unwrap());
    assert!(pg.logs_in(user2, password2).await);

    let body = json!({ "mount": "database", "connection": "*" });
    let body = api.expect(400, "POST", "/rotate/database-root", Some(body)).await;
    assert!(error_message(&body).contains("not a plain name"), "{body}");
    let (status, body) = api.call("POST", "/rotate/database-root", Some(json!({ "connection": "missing" }))).await;
    assert_eq!(status, 502, "{body}");
    assert!(error_message(&body).contains("database-root"), "{body}");

    let tokens = [api.token.clone(), open.token.clone()];
    api.stop().await;
    open.stop().await;
    assert_not_logged(&[password, password2, ROOT_PASSWORD, SUPERUSER_PASSWORD, &tokens[0], &tokens[1]]);
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_are_added_rotated_watched_and_removed_over_the_api() {
    let server = dev_server().await;
    let api = Api::start(&server, false).await;
    // Seed 000's job format: created, then rotated at once (its secret is new).
    let seed = json!({"type": "kv_random", "mount": "secret", "path": "web/app", "field": "password",
                      "length": 24, "interval_seconds": 3600});
    let job = api.expect(200, "POST", "/scheduler/jobs", Some(seed.clone())).await;
    assert_eq!(job["id"], "kv-secret-web-app");
    assert_eq!(job["schedule"], "every 1h");
    api.expect(409, "POST", "/scheduler/jobs", Some(seed)).await;
    let bad = api.expect(400, "POST", "/scheduler/jobs", Some(json!({"id": "x", "plugin": "kv-random"}))).await;
    assert!(bad["error"].as_str().unwrap().contains("job needs a schedule"), "{bad}");
    for _ in 0..100 {
        if api.expect(200, "GET", "/jobs/kv-secret-web-app", None).await["rotations"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The live feed sees a manual rotation, step by step.
    let mut feed = api
        .http
        .get(format!("{}/events", api.base))
        .header("Authorization", format!("Bearer {}", api.token))
        .send()
        .await
        .unwrap();
    assert_eq!(feed.status(), 200);
    let rotated = api.expect(200, "POST", "/jobs/kv-secret-web-app/rotate", None).await;
    assert_eq!(rotated["version"], 2);
    let mut text = String::new();
    while !text.contains(r#""step":"rotation""#) {
        let chunk = tokio::time::timeout(Duration::from_secs(10), feed.chunk()).await.unwrap().unwrap().unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    for step in ["create", "stage", "set", "test", "promote", "finish"] {
        assert!(text.contains(&format!(r#""step":"{step}""#)), "{step} missing from the feed:\n{text}");
    }
    assert!(text.contains("event: rotation") && text.contains(r#""actor":"api""#), "{text}");

    let job = api.expect(200, "GET", "/jobs/kv-secret-web-app", None).await;
    assert_eq!(job["rotations"], 2);
    assert_eq!(job["history"].as_array().unwrap().len(), 2);
    assert!(job["next_due"].is_string());
    let list = api.expect(200, "GET", "/scheduler/jobs", None).await;
    assert_eq!(list["jobs"].as_array().unwrap().len(), 1);
    let metrics = api.http.get(format!("{}/metrics", api.base)).bearer_auth(&api.token).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    // Counted by plugin (this daemon's only rotations are this job's two),
    // and the job's own series is its last success, for alerting.
    let has = |prefix: &str, suffix: &str| metrics.lines().any(|l| l.starts_with(prefix) && l.ends_with(suffix));
    assert!(has(r#"rotator_rotations_total{plugin="kv-random@"#, r#",outcome="rotated"} 2"#), "{metrics}");
    assert!(has(r#"rotator_step_duration_seconds_count{plugin="kv-random@"#, r#",step="set"} 2"#), "{metrics}");
    let last = r#"rotator_job_last_success_timestamp_seconds{job="kv-secret-web-app"} "#;
    let last = metrics.lines().find(|l| l.starts_with(last)).expect("the job's last success");
    let at: i64 = last.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((time::OffsetDateTime::now_utc().unix_timestamp() - at).abs() < 600, "{last}");
    assert!(!metrics.contains(r#"job_needs_attention{job="kv-secret-web-app"}"#), "{metrics}");
    api.expect(404, "POST", "/jobs/nope/rotate", None).await;
    api.expect(200, "DELETE", "/scheduler/jobs/kv-secret-web-app", None).await;
    api.expect(404, "GET", "/jobs/kv-secret-web-app", None).await;
    drop(feed);
    api.stop().await;
}
