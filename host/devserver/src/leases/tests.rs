//! The lease table over real HTTP: leases are created through the crate
//! API a dynamic-secrets engine uses ([`State::create_lease`]) with a
//! recording backend, then looked up, renewed, revoked and left to expire
//! through the `sys/leases/*` endpoints of a running dev server.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::super::{DevServer, DevServerOptions};
use super::{BoxFuture, LeaseBackend, LeaseView, NewLease};

const ROOT: &str = "lease-test-root";

/// Records revocations and renewals; can be told to fail revocations.
#[derive(Default)]
struct Recorder {
    revoked: Mutex<Vec<String>>,
    renewed: Mutex<Vec<(String, u64)>>,
    fail: AtomicBool,
}

impl LeaseBackend for Recorder {
    fn revoke(&self, lease: LeaseView) -> BoxFuture<Result<(), String>> {
        let failing = self.fail.load(Ordering::SeqCst);
        if !failing {
            self.revoked.lock().unwrap().push(lease.data["user"].as_str().unwrap_or("").to_owned());
        }
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if failing { Err("connection refused".into()) } else { Ok(()) }
        })
    }

    fn renew(&self, lease: LeaseView, ttl: u64) -> BoxFuture<Result<(), String>> {
        self.renewed.lock().unwrap().push((lease.path, ttl));
        Box::pin(async { Ok(()) })
    }
}

struct Env {
    server: DevServer,
    http: reqwest::Client,
    backend: Arc<Recorder>,
}

async fn env() -> Env {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let options =
        DevServerOptions { addr: "127.0.0.1:0".parse().unwrap(), root_token: ROOT.into(), ..Default::default() };
    let server = DevServer::start(options).await.unwrap();
    Env { server, http: reqwest::Client::new(), backend: Arc::default() }
}

impl Env {
    fn lease(&self, user: &str, ttl: u64, max_ttl: u64, renewable: bool, token_accessor: Option<String>) -> String {
        let spec = NewLease {
            path: "test/creds/app".into(),
            ttl,
            max_ttl,
            renewable,
            token_accessor,
            data: json!({ "user": user }),
            backend: Arc::clone(&self.backend) as Arc<dyn LeaseBackend>,
        };
        self.server.shared.lock().create_lease(spec, OffsetDateTime::now_utc()).id.clone()
    }

    async fn call(&self, token: &str, method: &str, path: &str, body: Value) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let resp = self
            .http
            .request(method, format!("{}/v1/{path}", self.server.url()))
            .header("X-Vault-Token", token)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap();
        (status, if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() })
    }

    fn revoked(&self) -> Vec<String> {
        self.backend.revoked.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn devserver_leases_lookup_list_renew_and_revoke() {
    let env = env().await;
    let id = env.lease("alice", 60, 100, true, None);
    let fixed = env.lease("bob", 60, 0, false, None);
    assert!(id.starts_with("test/creds/app/"));

    let (status, body) = env.call(ROOT, "PUT", "sys/leases/lookup", json!({ "lease_id": id })).await;
    assert_eq!(status, 200);
    let keys: Vec<&String> = body["data"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["expire_time", "id", "issue_time", "last_renewal", "path", "renewable", "ttl"]);
    assert_eq!(body["data"]["path"], "test/creds/app");
    assert!((59..=60).contains(&body["data"]["ttl"].as_i64().unwrap()), "{body}");
    let (status, body) = env.call(ROOT, "LIST", "sys/leases/lookup/test/creds/app/", Value::Null).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["keys"].as_array().unwrap().len(), 2);

    let (status, body) = env.call(ROOT, "PUT", "sys/leases/renew", json!({ "lease_id": id, "increment": 30 })).await;
    assert_eq!((status, body["lease_duration"].as_u64(), body["renewable"].as_bool()), (200, Some(30), Some(true)));
    assert_eq!(body["lease_id"], id);
    assert!(body["warnings"].is_null());
    let (status, body) = env.call(ROOT, "PUT", "sys/leases/renew", json!({ "lease_id": id, "increment": 3600 })).await;
    assert_eq!(status, 200, "capping is not an error");
    let capped = body["lease_duration"].as_u64().unwrap();
    assert!((98..=100).contains(&capped), "capped to what is left of max_ttl: {capped}");
    let warning = body["warnings"][0].as_str().unwrap();
    assert!(warning.starts_with("TTL of \"1h\" exceeded the effective max_ttl of \"1m"), "{warning}");
    assert!(warning.ends_with("\"; TTL value is capped accordingly"), "{warning}");
    assert_eq!(env.backend.renewed.lock().unwrap().len(), 2, "the engine hears of each renewal");
    let (_, body) = env.call(ROOT, "PUT", "sys/leases/lookup", json!({ "lease_id": id })).await;
    assert!(body["data"]["last_renewal"].is_string());

    let errors = |body: Value| body["errors"].clone();
    let (status, body) = env.call(ROOT, "PUT", "sys/leases/renew", json!({ "lease_id": fixed })).await;
    assert_eq!((status, errors(body)), (400, json!(["lease is not renewable"])));
    let (status, body) = env.call(ROOT, "PUT", "sys/leases/renew", json!({ "lease_id": "test/creds/app/nope" })).await;
    assert_eq!((status, errors(body)), (400, json!(["lease not found"])));
    let token_lease = json!({ "lease_id": "auth/token/create/abc" });
    let (status, body) = env.call(ROOT, "PUT", "sys/leases/renew", token_lease).await;
    assert_eq!((status, errors(body)), (400, json!(["tokens cannot be renewed through this endpoint"])));

    let (status, _) = env.call(ROOT, "PUT", format!("sys/leases/revoke/{id}").as_str(), Value::Null).await;
    assert_eq!(status, 204);
    assert_eq!(env.revoked(), ["alice"], "revoked in the engine before the answer");
    let (status, body) = env.call(ROOT, "PUT", "sys/leases/lookup", json!({ "lease_id": id })).await;
    assert_eq!((status, errors(body)), (400, json!(["invalid lease"])));
    let (status, _) = env.call(ROOT, "POST", "sys/revoke-prefix/test/creds/", Value::Null).await;
    assert_eq!(status, 204);
    assert_eq!(env.revoked(), ["alice", "bob"]);
    let (status, body) = env.call(ROOT, "LIST", "sys/leases/lookup/test/creds/app/", Value::Null).await;
    assert_eq!((status, errors(body)), (404, json!([])));
}

#[tokio::test]
async fn devserver_failed_revocations_stay_until_forced() {
    let env = env().await;
    let id = env.lease("carol", 60, 0, true, None);
    env.backend.fail.store(true, Ordering::SeqCst);
    let (status, body) = env.call(ROOT, "PUT", "sys/leases/revoke", json!({ "lease_id": id })).await;
    assert_eq!(status, 400);
    assert!(body["errors"][0].as_str().unwrap().contains("connection refused"), "{body}");
    let (status, _) = env.call(ROOT, "PUT", "sys/leases/lookup", json!({ "lease_id": id })).await;
    assert_eq!(status, 200, "a failed revocation keeps the lease");
    let (status, _) = env.call(ROOT, "PUT", "sys/leases/revoke-force/test/", Value::Null).await;
    assert_eq!(status, 204);
    let (status, _) = env.call(ROOT, "PUT", "sys/leases/lookup", json!({ "lease_id": id })).await;
    assert_eq!(status, 400, "revoke-force drops it whatever the engine said");
}

#[tokio::test]
async fn devserver_leases_expire_and_die_with_their_token() {
    let env = env().await;
    let short = env.lease("dave", 1, 0, true, None);
    let creator = json!({ "policy": "path \"auth/token/create\" { capabilities = [\"update\"] }" });
    assert_eq!(env.call(ROOT, "PUT", "sys/policies/acl/creator", creator).await.0, 204);
    let (status, created) = env.call(ROOT, "POST", "auth/token/create", json!({ "policies": ["creator"] })).await;
    assert_eq!(status, 200);
    let parent = created["auth"]["client_token"].as_str().unwrap().to_owned();
    let (status, child) = env.call(&parent, "POST", "auth/token/create", json!({})).await;
    assert_eq!(status, 200, "{child}");
    let child_accessor = child["auth"]["accessor"].as_str().unwrap().to_owned();
    let owned = env.lease("erin", 600, 0, true, Some(child_accessor));

    let (status, _) = env.call(ROOT, "POST", "auth/token/revoke", json!({ "token": parent })).await;
    assert_eq!(status, 204);
    assert_eq!(env.revoked(), ["erin"], "the child's lease went with the parent");
    assert!(env.server.shared.lock().leases.get(&owned).is_none());

    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while env.server.shared.lock().leases.get(&short).is_some() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(env.server.shared.lock().leases.get(&short).is_none(), "the expiry task revoked it");
    assert_eq!(env.revoked(), ["erin", "dave"]);
}
