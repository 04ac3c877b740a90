//! rotator's own Vault identity in real time against the dev server: an
//! AppRole login with short TTLs renewed and replaced by the token watcher,
//! a least-privilege policy that is enough for a rotation, a token whose
//! policy lacks `renew-self` that does not flood Vault, and a token file that
//! is read again when its token can no longer be extended, and a userpass
//! login that logs in again by name and password.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use rotator_core::vault::lifetime::{ClientTokenApi, TokenStatus, watch_token};
use rotator_core::vault::{AuthMethod, VaultClient, VaultOptions};
use rotator_daemon::daemon::Identity;
use rotator_daemon::setup;
use rotator_devserver::DevServer;
use rotator_tests::{ROOT, dev_server};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::sync::watch;

/// The policy a kv-random daemon needs, and nothing more.
const ROTATOR_POLICY: &str = r#"
path "secret/data/app/*" { capabilities = ["create", "read", "update"] }
path "secret/data/rotator/state/*" { capabilities = ["create", "read", "update"] }
path "auth/token/renew-self" { capabilities = ["update"] }
path "auth/token/lookup-self" { capabilities = ["read"] }
"#;

async fn root(server: &DevServer) -> VaultClient {
    VaultClient::new(VaultOptions::new(server.url(), SecretString::from(ROOT))).unwrap()
}

async fn call(c: &VaultClient, method: &str, path: &str, body: Value) -> Value {
    c.request(method, path, Some(body.to_string()))
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
        .body
        .unwrap_or(Value::Null)
}

/// A running token watcher; `stop` ends it and returns what it did.
struct Watcher {
    status: Arc<RwLock<TokenStatus>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Watcher {
    fn start(client: &VaultClient, identity: &Identity) -> Self {
        let status = Arc::new(RwLock::new(TokenStatus::default()));
        let (stop, rx) = watch::channel(false);
        let api = ClientTokenApi {
            client: client.clone(),
            method: identity.method.clone(),
            base_dir: identity.base_dir.clone(),
        };
        let task = tokio::spawn(watch_token(Arc::new(api), identity.lease.clone(), status.clone(), rx));
        Self { status, stop, task }
    }

    fn status(&self) -> TokenStatus {
        self.status.read().unwrap().clone()
    }

    async fn stop(self) -> TokenStatus {
        self.stop.send(true).unwrap();
        self.task.await.unwrap();
        self.status.read().unwrap().clone()
    }
}

/// Run the token watcher for `secs` of real time.
async fn watch_for(client: &VaultClient, identity: &Identity, secs: f64) -> TokenStatus {
    let watcher = Watcher::start(client, identity);
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    watcher.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn approle_tokens_are_renewed_then_replaced_and_least_privilege_suffices() {
    let server = dev_server().await;
    let admin = root(&server).await;
    call(&admin, "POST", "sys/auth/approle", json!({"type": "approle"})).await;
    call(&admin, "PUT", "sys/policies/acl/rotator", json!({"policy": ROTATOR_POLICY})).await;
    call(
        &admin,
        "POST",
        "auth/approle/role/rotator",
        json!({"token_policies": ["rotator"], "token_ttl": "3s", "token_max_ttl": "6s"}),
    )
    .await;
    let role_id = call(&admin, "GET", "auth/approle/role/rotator/role-id", Value::Null).await["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret_id = call(&admin, "POST", "auth/approle/role/rotator/secret-id", json!({})).await["data"]["secret_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("role-id"), &role_id).unwrap();
    std::fs::write(dir.path().join("secret-id"), &secret_id).unwrap();
    let toml = format!(
        r#"
[vault]
address = "{}"
auth = {{ method = "approle", role_id = {{ file = "role-id" }}, secret_id = {{ file = "secret-id" }} }}

[[jobs]]
id = "app"
plugin = "kv-random"
secret = {{ path = "app/db" }}
interval = "1h"
settings = {{ field = "password" }}
"#,
        server.url()
    );
    let cfg = rotator_core::config::parse("identity.toml", &toml, dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let client = setup::vault_client(&cfg, Default::default()).unwrap().expect("the config uses Vault");
    let identity = setup::identity(&cfg, &client).await.unwrap();
    assert_eq!(identity.lease.ttl, Duration::from_secs(3));
    assert!(identity.lease.renewable);
    assert_eq!(identity.lease.policies, vec!["default", "rotator"]);

    // 6 s max TTL: the watcher must renew, then log in again before expiry.
    // The watcher keeps running through the rotation below: a 3 s token
    // left alone may expire between any two requests.
    let watcher = Watcher::start(&client, &identity);
    tokio::time::sleep(Duration::from_secs(8)).await;
    let status = watcher.status();
    assert!(status.renewals >= 1, "{status:?}");
    assert!(status.logins >= 1, "{status:?}");
    client.lookup_self().await.expect("the token in use is alive");

    // The least-privilege token rotates its secret, and nothing else.
    let runtime = setup::runtime(&cfg).unwrap();
    let jobs = setup::load_jobs(&cfg, &runtime).unwrap();
    let report = jobs[0].rotate(&rotator_tests::store(&client), "test").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.new_version, Some(rotator_core::store::StoreVersion::Kv(1)));
    let other = rotator_core::secret::SecretJson::new(r#"{"x":"y"}"#.into());
    let denied = client.kv_write("secret", "other/thing", &other, None).await.unwrap_err();
    assert_eq!(denied.status(), Some(403), "{denied}");
    watcher.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_whose_policy_lacks_renew_self_does_not_flood_vault() {
    let server = dev_server().await;
    let admin = root(&server).await;
    call(
        &admin,
        "PUT",
        "sys/policies/acl/no-renew",
        json!({"policy": r#"path "secret/data/*" { capabilities = ["read"] }"#}),
    )
    .await;
    let created = call(
        &admin,
        "POST",
        "auth/token/create",
        json!({"policies": ["no-renew"], "no_default_policy": true, "ttl": "4s"}),
    )
    .await;
    let token = created["auth"]["client_token"].as_str().unwrap().to_owned();
    let client = VaultClient::new(VaultOptions::new(server.url(), SecretString::from(token))).unwrap();
    let lease = rotator_core::vault::TokenLease {
        ttl: Duration::from_secs(4),
        renewable: true,
        policies: vec![],
        accessor: String::new(),
    };
    let identity = Identity { method: AuthMethod::Token, lease, base_dir: ".".into() };

    let status = watch_for(&client, &identity, 5.0).await;
    let renewals = server.stats().requests("auth/token/renew-self");
    // One denied try at ≈2.8 s, then retries at half the time left (here
    // one more, a second before expiry), and none once the token expired.
    assert!((1..=2).contains(&renewals), "{renewals} renew-self requests in 5 s");
    assert!(status.renew_denied);
    assert!(status.stranded);
}

/// Wait (up to 20 s) until `ready` holds.
async fn until(what: &str, ready: impl Fn() -> bool) {
    for _ in 0..200 {
        if ready() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_file_is_read_again_when_its_token_cannot_be_extended() {
    let server = dev_server().await;
    let admin = root(&server).await;
    let token = |ttl: &str, renewable: bool| {
        let admin = admin.clone();
        let body = json!({"policies": ["default"], "ttl": ttl, "renewable": renewable});
        async move {
            call(&admin, "POST", "auth/token/create", body).await["auth"]["client_token"].as_str().unwrap().to_owned()
        }
    };
    let (old, new) = (token("8s", false).await, token("1h", true).await);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("vault-token"), format!("{old}\n")).unwrap();
    let toml = format!("[vault]\naddress = \"{}\"\ntoken = {{ file = \"vault-token\" }}\n", server.url());
    let cfg = rotator_core::config::parse("token-file.toml", &toml, dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let client = setup::vault_client(&cfg, Default::default()).unwrap().expect("the config uses Vault");
    let identity = setup::identity(&cfg, &client).await.unwrap();
    assert!(matches!(&identity.method, AuthMethod::TokenFile(p) if p.as_os_str() == "vault-token"));
    assert!(!identity.lease.renewable);

    // Not renewable: stranded from the start, first retry at half its 8 s.
    // A file holding something Vault refuses is not taken.
    std::fs::write(dir.path().join("vault-token"), "not-a-token").unwrap();
    let watcher = Watcher::start(&client, &identity);
    let lookups = || server.stats().requests("auth/token/lookup-self");
    until("the watcher to try the file", || lookups() >= 2).await;
    assert!(watcher.status().stranded);
    assert_eq!(client.token().expose_secret(), old, "a refused token was taken");

    // The operator drops in a good token: the next retry (≈2 s later) takes it.
    std::fs::write(dir.path().join("vault-token"), &new).unwrap();
    until("the new token to be picked up", || watcher.status().reloads == 1).await;
    assert_eq!(client.token().expose_secret(), new);
    let status = watcher.stop().await;
    assert!(!status.stranded && status.renewable, "{status:?}");
    assert!(client.lookup_self().await.unwrap().ttl > Duration::from_secs(3000));
}

#[tokio::test(flavor = "multi_thread")]
async fn userpass_logs_in_again_by_name_and_password_and_never_shows_the_password() {
    let server = dev_server().await;
    let admin = root(&server).await;
    call(&admin, "POST", "sys/auth/userpass", json!({"type": "userpass"})).await;
    call(&admin, "PUT", "sys/policies/acl/rotator", json!({"policy": ROTATOR_POLICY})).await;
    let first = "first-userpass-password-6f1c";
    let user = json!({"password": first, "token_policies": "rotator", "token_ttl": "2s", "token_max_ttl": "4s"});
    call(&admin, "POST", "auth/userpass/users/Rotator", user).await;
    // Usernames are case-insensitive; a read shows token settings, never the password.
    let read = call(&admin, "GET", "auth/userpass/users/ROTATOR", Value::Null).await;
    assert_eq!(read["data"]["token_policies"], json!(["rotator"]));
    assert!(!read.to_string().contains(first) && read["data"].get("password").is_none(), "{read}");
    let list = call(&admin, "LIST", "auth/userpass/users", Value::Null).await;
    assert_eq!(list["data"]["keys"], json!(["rotator"]));

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("password"), first).unwrap();
    let toml = format!(
        "[vault]\naddress = \"{}\"\nauth = {{ method = \"userpass\", username = \"rotator\", password = {{ file = \"password\" }} }}\n",
        server.url()
    );
    let cfg = rotator_core::config::parse("userpass.toml", &toml, dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let client = setup::vault_client(&cfg, Default::default()).unwrap().expect("the config uses Vault");
    let identity = setup::identity(&cfg, &client).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((identity.method.name(), identity.lease.ttl), ("userpass", Duration::from_secs(2)));
    assert_eq!(identity.lease.policies, vec!["default", "rotator"]);
    client.lookup_self().await.expect("the userpass token works");

    // 4 s max TTL: the watcher logs in again with the same name and password.
    let status = watch_for(&client, &identity, 6.0).await;
    assert!(status.logins >= 1, "{status:?}");
    client.lookup_self().await.expect("the new token works");

    // A changed password: the old one is refused, without being echoed.
    let second = "second-userpass-password-90ab";
    call(&admin, "POST", "auth/userpass/users/rotator/password", json!({"password": second})).await;
    let refused = setup::identity(&cfg, &client).await.unwrap_err().to_string();
    assert!(
        refused.contains("vault login (userpass)") && refused.contains("invalid username or password"),
        "{refused}"
    );
    assert!(!refused.contains(first) && !refused.contains(second), "{refused}");
    std::fs::write(dir.path().join("password"), second).unwrap();
    setup::identity(&cfg, &client).await.expect("the new password logs in");

    // A username that would leave its path segment, or hide a `/` or `.`
    // in an escape, never reaches Vault: the request log stays empty.
    server.start_request_log();
    for hostile in ["../token", "a/b", "", "..", ".", "a%2Fb", "%2e%2e", "a\\b", " rotator", "a?x=1", "a#b"] {
        let bad = toml.replace("username = \"rotator\"", &format!("username = {hostile:?}"));
        let cfg = rotator_core::config::parse("userpass.toml", &bad, dir.path()).unwrap();
        let refused = setup::identity(&cfg, &client).await.expect_err(hostile).to_string();
        assert!(!refused.contains(second), "{hostile}: {refused}");
    }
    let reached = server.take_request_log();
    assert!(reached.is_empty(), "hostile usernames reached the server: {reached:?}");
}
