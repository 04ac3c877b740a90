//! Every dynamic credential the API hands out stays alive, against the dev
//! server's database engine and a real PostgreSQL: two requests for one
//! role get two credentials, both renewed past their first TTL until one is
//! revoked; a lease Vault caps is kept until its max TTL, then dropped; the
//! lease table is bounded; reuse mode (Vault Agent's way) answers with the
//! live credential; and a restarted daemon renews the leases its
//! predecessor handed out, from records that never hold the credential.

use std::time::Duration;

use rotator_core::vault::leases::LeaseRecord;
use rotator_core::vault::{VaultClient, VaultOptions};
use rotator_devserver::DevServer;
use rotator_tests::api::{Api, ApiSetup, error_message};
use rotator_tests::postgres::{Postgres, SUPERUSER_PASSWORD};
use rotator_tests::{ROOT, dev_server};
use secrecy::SecretString;
use serde_json::{Value, json};

const CREATE: &str = r#"CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"#;

/// The database engine at `database/` on `pg`, one role per `(name, ttl, max_ttl)`.
async fn database(server: &DevServer, pg: &Postgres, roles: &[(&str, &str, &str)]) -> VaultClient {
    let vault = VaultClient::new(VaultOptions::new(server.url(), SecretString::from(ROOT))).unwrap();
    let mut setup = vec![
        ("sys/mounts/database".to_owned(), json!({ "type": "database" })),
        ("database/config/pg".to_owned(), pg.vault_config("postgres", SUPERUSER_PASSWORD, json!("*"))),
    ];
    for (name, ttl, max_ttl) in roles {
        let role = json!({ "db_name": "pg", "creation_statements": CREATE, "default_ttl": ttl, "max_ttl": max_ttl });
        setup.push((format!("database/roles/{name}"), role));
    }
    for (path, body) in setup {
        vault.request("POST", &path, Some(body.to_string())).await.unwrap_or_else(|e| panic!("{path}: {e}"));
    }
    vault
}

/// A daemon showing secret values, with `vault` as its `[vault]` keys.
async fn daemon(server: &DevServer, vault: &str) -> Api {
    let jobs = if vault.is_empty() { String::new() } else { format!("[vault]\n{vault}\n") };
    Api::start_with(server, ApiSetup { reveal_secrets: true, jobs, ..ApiSetup::default() }).await
}

/// `(username, password)` of a `GET /dynamic/…` answer.
fn login(creds: &Value) -> (String, String) {
    let field = |k: &str| creds["data"][k].as_str().unwrap_or_else(|| panic!("no {k} in {creds}")).to_owned();
    (field("username"), field("password"))
}

fn lease_id(creds: &Value) -> String {
    creds["lease_id"].as_str().unwrap().to_owned()
}

/// The lease ids `GET /leases` lists, sorted.
async fn listed(api: &Api) -> Vec<String> {
    let leases = api.expect(200, "GET", "/leases", None).await["leases"].clone();
    let mut ids: Vec<String> =
        leases.as_array().unwrap().iter().map(|l| l["lease_id"].as_str().unwrap().into()).collect();
    ids.sort();
    ids
}

/// The text of `lease_id`'s record beside the job states, if there is one.
async fn record(vault: &VaultClient, lease_id: &str) -> Option<String> {
    let at = format!("rotator/state/_leases/{}", LeaseRecord::key(lease_id));
    vault.kv_read("secret", at.as_str()).await.unwrap().map(|s| s.data.expose().to_owned())
}

/// Wait (up to a minute) until `done` says so; false if it never did.
async fn eventually<F: std::future::Future<Output = bool>>(mut done: impl FnMut() -> F) -> bool {
    for _ in 0..600 {
        if done().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn every_credential_handed_out_is_renewed_until_revoked_or_its_max_ttl() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let server = dev_server().await;
    let vault = database(&server, &pg, &[("app", "2s", "1m"), ("short", "2s", "4s")]).await;
    let api = daemon(&server, "").await;

    let first = api.expect(200, "GET", "/dynamic/app", None).await;
    let second = api.expect(200, "GET", "/dynamic/app", None).await;
    let short = api.expect(200, "GET", "/dynamic/short", None).await;
    let (a, b) = (lease_id(&first), lease_id(&second));
    assert_ne!(a, b, "two requests, two credentials");
    assert_eq!(listed(&api).await, sorted(vec![a.clone(), b.clone(), lease_id(&short)]));
    // Each lease is kept beside the job states, without its credential.
    for creds in [&first, &second, &short] {
        let text = record(&vault, &lease_id(creds)).await.expect("a lease record");
        let (user, password) = login(creds);
        assert!(!text.contains(&password) && !text.contains(&user), "{text}");
    }

    // Twice the TTL the credentials were issued with: without renewals the
    // engine would have dropped both users.
    tokio::time::sleep(Duration::from_secs(4)).await;
    for creds in [&first, &second] {
        let (user, password) = login(creds);
        assert!(pg.logs_in(&user, &password).await, "{} was not kept alive", lease_id(creds));
    }

    // Revoking one ends that one only.
    let revoked = api.expect(200, "DELETE", &format!("/leases/{a}"), None).await;
    assert_eq!(revoked, json!({ "revoked": a }));
    let (user, password) = login(&first);
    assert!(!pg.logs_in(&user, &password).await, "a revoked credential still logs in");
    let (user, password) = login(&second);
    assert!(pg.logs_in(&user, &password).await, "revoking one credential ended another");
    assert!(record(&vault, &a).await.is_none(), "the revoked lease's record is gone");

    // The capped lease is dropped at its 4 s max TTL, and so is its record.
    let s = lease_id(&short);
    assert!(
        eventually(|| async { !listed(&api).await.contains(&s) }).await,
        "a lease past its max TTL is still tracked"
    );
    assert_eq!(listed(&api).await, vec![b.clone()]);
    assert!(record(&vault, &s).await.is_none());
    // Said as reaching its max TTL; on a loaded machine a renewal can come
    // after the 2 s TTL ran out first, and the drop says that instead.
    let said = |why: &str| !rotator_tests::logs::lines_with(&[&s, why]).is_empty();
    assert!(
        said("reached its max TTL") || said("expired before it could be renewed"),
        "the drop of {s} was not logged"
    );
    api.stop().await;
    let logged = rotator_tests::logs::text();
    for creds in [&first, &second, &short] {
        assert!(!logged.contains(&login(creds).1), "a password was logged");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn reuse_mode_answers_with_the_live_credential_and_the_table_is_bounded() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let server = dev_server().await;
    let vault = database(&server, &pg, &[("app", "1h", "24h"), ("other", "1h", "24h")]).await;

    let agent = daemon(&server, "reuse_dynamic_credentials = true").await;
    let first = agent.expect(200, "GET", "/dynamic/app", None).await;
    let again = agent.expect(200, "GET", "/dynamic/app", None).await;
    assert_eq!((lease_id(&again), login(&again)), (lease_id(&first), login(&first)), "the live credential, again");
    let (user, password) = login(&first);
    assert!(pg.logs_in(&user, &password).await);
    let other = agent.expect(200, "GET", "/dynamic/other", None).await;
    assert_ne!(lease_id(&other), lease_id(&first), "another path, another credential");
    assert_eq!(listed(&agent).await.len(), 2);
    // A revoked live credential is not handed out again.
    for creds in [&first, &other] {
        agent.expect(200, "DELETE", &format!("/leases/{}", lease_id(creds)), None).await;
    }
    let fresh = agent.expect(200, "GET", "/dynamic/app", None).await;
    assert_ne!(lease_id(&fresh), lease_id(&first));
    agent.expect(200, "DELETE", &format!("/leases/{}", lease_id(&fresh)), None).await;
    agent.stop().await;

    // One lease at most: the second request mints nothing.
    let bounded = daemon(&server, "max_tracked_leases = 1").await;
    let one = bounded.expect(200, "GET", "/dynamic/app", None).await;
    let body = bounded.expect(503, "GET", "/dynamic/app", None).await;
    assert!(error_message(&body).contains("max_tracked_leases"), "{body}");
    let issued = vault.request("LIST", "sys/leases/lookup/database/creds/app", None).await.unwrap();
    let keys = issued.body.unwrap()["data"]["keys"].as_array().unwrap().len();
    assert_eq!(keys, 1, "the refused request minted nothing");
    bounded.expect(200, "DELETE", &format!("/leases/{}", lease_id(&one)), None).await;
    bounded.expect(200, "GET", "/dynamic/app", None).await;
    bounded.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_daemon_renews_the_leases_its_predecessor_handed_out() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let server = dev_server().await;
    let vault = database(&server, &pg, &[("app", "5s", "10m")]).await;
    let first = daemon(&server, "").await;
    let issued =
        [first.expect(200, "GET", "/dynamic/app", None).await, first.expect(200, "GET", "/dynamic/app", None).await];
    first.stop().await;

    let second = daemon(&server, "").await;
    let ids = sorted(issued.iter().map(lease_id).collect());
    assert!(eventually(|| async { listed(&second).await == ids }).await, "the kept leases are tracked again");
    // Longer than the TTL: only the second daemon's renewals keep them.
    tokio::time::sleep(Duration::from_secs(8)).await;
    for creds in &issued {
        let (user, password) = login(creds);
        assert!(pg.logs_in(&user, &password).await, "{} was not renewed after the restart", lease_id(creds));
    }
    // Revoked through the new daemon: gone in the database and the records.
    let gone = lease_id(&issued[0]);
    second.expect(200, "DELETE", &format!("/leases/{gone}"), None).await;
    let (user, password) = login(&issued[0]);
    assert!(!pg.logs_in(&user, &password).await);
    assert!(record(&vault, &gone).await.is_none());
    assert!(record(&vault, &lease_id(&issued[1])).await.is_some());
    second.stop().await;
}
