//! The dev server keeps Vault's HTTP contract: each test starts it in-process
//! on 127.0.0.1:0, talks to it over real HTTP, and checks statuses, error
//! texts and JSON shapes against the documented samples in
//! `shared/contracts/vault/` (loaded at compile time, so a changed fixture
//! fails here).

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::HeaderMap;
use rotator_devserver::{DevServer, DevServerOptions};
use serde_json::{Value, json};

const SYS: &str = include_str!("../../../../shared/contracts/vault/sys.json");
const TOKEN: &str = include_str!("../../../../shared/contracts/vault/token.json");
const KV2: &str = include_str!("../../../../shared/contracts/vault/kv2.json");
const KV1: &str = include_str!("../../../../shared/contracts/vault/kv1.json");
const ERRORS: &str = include_str!("../../../../shared/contracts/vault/errors.json");

const ROOT: &str = "dev-root-token-for-tests";

// ---------------------------------------------------------------- fixtures

/// Every fixture entry of `file` with this method, path and status.
fn fixtures(file: &str, method: &str, path: &str, status: u16) -> Vec<Value> {
    let entries: Vec<Value> = serde_json::from_str(file).expect("fixture file is JSON");
    entries
        .into_iter()
        .filter(|e| e["method"] == method && e["path"] == path && e["response_status"] == status)
        .collect()
}

/// The documented response of the one sample for method + path (the first
/// with a response body when there are several).
fn sample(file: &str, method: &str, path: &str) -> Value {
    let entries: Vec<Value> = serde_json::from_str(file).expect("fixture file is JSON");
    entries
        .into_iter()
        .find(|e| e["method"] == method && e["path"] == path && !e["response"].is_null())
        .unwrap_or_else(|| panic!("no sample for {method} {path}"))["response"]
        .clone()
}

/// The documented error body for method + path + status (errors.json).
fn error_sample(method: &str, path: &str, status: u16) -> Value {
    fixtures(ERRORS, method, path, status)
        .into_iter()
        .find(|e| !e["response"].is_null())
        .unwrap_or_else(|| panic!("no error sample for {method} {path} {status}"))["response"]
        .clone()
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap_or_else(|| panic!("not an object: {v}")).keys().cloned().collect()
}

fn assert_has_keys(actual: &Value, documented: &Value, what: &str) {
    let missing: Vec<_> = keys(documented).difference(&keys(actual)).cloned().collect();
    assert!(missing.is_empty(), "{what}: missing documented keys {missing:?} in {actual}");
}

const ENVELOPE: [&str; 9] =
    ["request_id", "lease_id", "renewable", "lease_duration", "data", "wrap_info", "warnings", "auth", "mount_type"];

fn assert_envelope(body: &Value) {
    for key in ENVELOPE {
        assert!(body.get(key).is_some(), "envelope lacks {key}: {body}");
    }
    assert_eq!(body["request_id"].as_str().map(str::len), Some(36), "request_id is a uuid: {body}");
    assert_eq!(body["lease_id"], "");
    assert_eq!(body["renewable"], false);
    assert!(body["wrap_info"].is_null() && body["auth"].is_null());
}

/// RFC 3339 in UTC with a fractional second, like "2018-03-22T02:24:06.945319214Z".
fn assert_timestamp(v: &Value) {
    let s = v.as_str().unwrap_or_else(|| panic!("timestamp is not a string: {v}"));
    let b = s.as_bytes();
    assert!(
        s.len() >= 20 && b[4] == b'-' && b[10] == b'T' && b[19] == b'.' && s.ends_with('Z'),
        "not RFC 3339 UTC: {s}"
    );
}

// ------------------------------------------------------------------ client

struct Dev {
    server: DevServer,
    http: reqwest::Client,
}

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Option<Value>,
}

impl Answer {
    fn json(&self) -> &Value {
        self.body.as_ref().unwrap_or_else(|| panic!("status {} without a body", self.status))
    }
}

/// reqwest is built without a rustls provider; install the process-wide one.
fn install_crypto_provider() {
    rotator_core::vault::install_crypto_provider();
}

async fn start() -> Dev {
    install_crypto_provider();
    let server = DevServer::start(DevServerOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        root_token: ROOT.into(),
        ..Default::default()
    })
    .await
    .expect("dev server starts");
    Dev { server, http: reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap() }
}

impl Dev {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        self.send(Some(ROOT), method, path, body, None).await
    }

    async fn patch(&self, path: &str, body: Value) -> Answer {
        self.send(Some(ROOT), "PATCH", path, Some(body), Some("application/merge-patch+json")).await
    }

    async fn send(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
        content_type: Option<&str>,
    ) -> Answer {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(method, format!("{}/v1/{path}", self.server.url()));
        if let Some(token) = token {
            req = req.header("X-Vault-Token", token);
        }
        if let Some(body) = body {
            req = req.header("Content-Type", content_type.unwrap_or("application/json")).body(body.to_string());
        }
        let resp = req.send().await.expect("request reaches the dev server");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap();
        let body = if bytes.is_empty() { None } else { Some(serde_json::from_slice(&bytes).expect("body is JSON")) };
        Answer { status, headers, body }
    }

    async fn put_secret(&self, path: &str, data: Value) -> Answer {
        self.call("POST", &format!("secret/data/{path}"), Some(json!({ "data": data }))).await
    }
}

// ------------------------------------------------------------------- tests

#[tokio::test]
async fn health_and_seal_status_have_the_documented_shape_without_a_token() {
    let dev = start().await;
    let health = dev.send(None, "GET", "sys/health", None, None).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.headers["content-type"], "application/json");
    assert_eq!(health.headers["cache-control"], "no-store");
    let samples = fixtures(SYS, "GET", "/v1/sys/health", 200);
    assert_eq!(samples.len(), 3, "OpenBao and Vault samples");
    for s in &samples {
        assert_has_keys(health.json(), &s["response"], "sys/health");
    }
    let vault_ce = samples.iter().find(|s| s["server"] == "vault").unwrap();
    assert_eq!(keys(health.json()), keys(&vault_ce["response"]), "exactly Vault CE's keys");
    let h = health.json();
    assert_eq!(
        (h["initialized"].clone(), h["sealed"].clone(), h["standby"].clone()),
        (json!(true), json!(false), json!(false))
    );
    assert!(h["server_time_utc"].as_i64().unwrap() > 1_700_000_000);
    assert!(h["cluster_name"].as_str().unwrap().starts_with("vault-cluster-"));

    let head = dev.send(None, "HEAD", "sys/health", None, None).await;
    assert_eq!((head.status, head.body.is_none()), (200, true));
    let overridden = dev.send(None, "GET", "sys/health?activecode=203", None, None).await;
    assert_eq!(overridden.status, 203);
    assert_eq!(dev.send(None, "POST", "sys/health", Some(json!({})), None).await.status, 405);

    let seal = dev.send(None, "GET", "sys/seal-status", None, None).await;
    assert_eq!(seal.status, 200);
    let unsealed = fixtures(SYS, "GET", "/v1/sys/seal-status", 200)
        .into_iter()
        .find(|s| s["response"]["sealed"] == false)
        .unwrap();
    assert_has_keys(seal.json(), &unsealed["response"], "sys/seal-status");
    assert_eq!(seal.json()["sealed"], false);
    assert_eq!(seal.json()["cluster_id"], h["cluster_id"]);
}

#[tokio::test]
async fn every_other_path_needs_the_root_token() {
    let dev = start().await;
    let denied = error_sample("*", "*", 403);
    for token in [None, Some("not-the-root-token")] {
        for (method, path) in [("GET", "sys/mounts"), ("GET", "secret/data/app"), ("GET", "nope/at/all")] {
            let answer = dev.send(token, method, path, None, None).await;
            assert_eq!(answer.status, 403, "{method} {path} with {token:?}");
            assert_eq!(answer.json(), &denied, "documented 403 body");
            assert_eq!(answer.headers["content-type"], "application/json");
        }
    }
    let bearer = dev
        .http
        .get(format!("{}/v1/auth/token/lookup-self", dev.server.url()))
        .header("Authorization", format!("Bearer {ROOT}"))
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200, "Authorization: Bearer is accepted too");
}

#[tokio::test]
async fn unknown_paths_are_404_and_unsupported_methods_405() {
    let dev = start().await;
    let unknown = dev.call("GET", "nope/foo", None).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json(), &json!({"errors": ["no handler for route \"nope/foo\". route entry not found."]}));
    assert_eq!(dev.call("DELETE", "secret/config", None).await.status, 405);
    let odd = dev.call("BREW", "secret/data/app", None).await;
    assert_eq!((odd.status, odd.json()), (405, &json!({"errors": []})));
    let outside = dev.http.get(format!("{}/v2/sys/health", dev.server.url())).send().await.unwrap();
    assert_eq!(outside.status(), 404);
}

#[tokio::test]
async fn token_lookup_self_describes_the_root_token() {
    let dev = start().await;
    let answer = dev.call("GET", "auth/token/lookup-self", None).await;
    assert_eq!(answer.status, 200);
    let body = answer.json();
    assert_envelope(body);
    assert_eq!(body["mount_type"], "token");
    let data = &body["data"];
    assert_has_keys(data, &sample(TOKEN, "GET", "/v1/auth/token/lookup-self")["data"], "lookup-self data");
    assert_eq!(data["id"], ROOT);
    assert_eq!(data["policies"], json!(["root"]));
    assert_eq!(data["display_name"], "root");
    assert_eq!((data["ttl"].clone(), data["creation_ttl"].clone()), (json!(0), json!(0)));
    assert!(data["expire_time"].is_null());
    assert_eq!(data["orphan"], true);
    assert_eq!(data["path"], "auth/token/root");
    let renew = dev.call("POST", "auth/token/renew-self", Some(json!({}))).await;
    assert_eq!((renew.status, renew.json()), (400, &json!({"errors": ["lease is not renewable"]})));
}

#[tokio::test]
async fn sys_mounts_lists_the_dev_mounts_like_the_sample() {
    let dev = start().await;
    let answer = dev.call("GET", "sys/mounts", None).await;
    assert_eq!(answer.status, 200);
    let body = answer.json();
    assert_envelope(body);
    let documented = sample(SYS, "GET", "/v1/sys/mounts");
    assert_eq!(keys(&body["data"]), keys(&documented["data"]), "sys/, secret/, cubbyhole/, identity/");
    for (path, entry) in documented["data"].as_object().unwrap() {
        assert_eq!(keys(&body["data"][path]), keys(entry), "{path} has the sample's fields");
        assert_eq!(body["data"][path]["type"], entry["type"]);
        assert_eq!(body[path], body["data"][path], "{path} is copied to the top level too");
    }
    assert_eq!(body["data"]["secret/"]["options"], json!({"version": "2"}));

    let one = dev.call("GET", "sys/mounts/cubbyhole", None).await;
    assert_eq!(one.status, 200);
    let documented = sample(SYS, "GET", "/v1/sys/mounts/:path");
    assert_has_keys(one.json(), &documented, "sys/mounts/:path top level");
    assert_eq!(keys(&one.json()["data"]), keys(&documented["data"]));
    assert_eq!(one.json()["type"], "cubbyhole");
}

#[tokio::test]
async fn a_kv_v1_mount_can_be_enabled_used_and_disabled() {
    let dev = start().await;
    let enable = json!({"type": "kv", "description": "v1 store", "options": {"version": "1"}});
    let enabled = dev.call("POST", "sys/mounts/legacy", Some(enable.clone())).await;
    assert_eq!((enabled.status, enabled.body.is_none()), (204, true));
    let again = dev.call("POST", "sys/mounts/legacy", Some(enable)).await;
    assert_eq!((again.status, again.json()), (400, &json!({"errors": ["path is already in use at legacy/"]})));
    let info = dev.call("GET", "sys/mounts/legacy", None).await;
    assert_eq!(
        (info.json()["data"]["type"].clone(), info.json()["options"].clone()),
        (json!("kv"), json!({"version": "1"}))
    );

    let secret = json!({"password": "hunter2", "ttl": "1h"});
    assert_eq!(dev.call("POST", "legacy/app/db", Some(secret.clone())).await.status, 204);
    let read = dev.call("GET", "legacy/app/db", None).await;
    assert_eq!(read.status, 200);
    assert_envelope(read.json());
    assert_has_keys(read.json(), &sample(KV1, "GET", "/v1/secret/:path"), "kv v1 read");
    assert_eq!(read.json()["data"], secret, "v1 stores the body itself");
    assert_eq!(read.json()["lease_duration"], 3600, "the ttl key is the advisory lease");
    assert_eq!(read.json()["mount_type"], "kv");
    assert_eq!(dev.call("LIST", "legacy", None).await.json()["data"]["keys"], json!(["app/"]));
    assert_eq!(dev.call("GET", "legacy/app?list=true", None).await.json()["data"]["keys"], json!(["db"]));
    assert_eq!(dev.call("DELETE", "legacy/app/db", None).await.status, 204);
    let gone = dev.call("GET", "legacy/app/db", None).await;
    assert_eq!((gone.status, gone.json()), (404, &json!({"errors": []})));

    assert_eq!(dev.call("DELETE", "sys/mounts/legacy", None).await.status, 204);
    assert_eq!(dev.call("GET", "legacy/app/db", None).await.status, 404);
    let mounts = dev.call("GET", "sys/mounts", None).await;
    assert!(mounts.json()["data"].get("legacy/").is_none());

    let v2 = dev.call("POST", "sys/mounts/team/kv", Some(json!({"type": "kv-v2"}))).await;
    assert_eq!(v2.status, 204);
    assert_eq!(
        dev.call("POST", "team/kv/data/x", Some(json!({"data": {"a": "b"}}))).await.json()["data"]["version"],
        1
    );
    let bad = dev.call("POST", "sys/mounts/elsewhere", Some(json!({"type": "no-such-engine"}))).await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn kv2_writes_make_versions_and_reads_pick_them() {
    let dev = start().await;
    let first = dev.put_secret("app/db", json!({"password": "one"})).await;
    assert_eq!(first.status, 200);
    assert_envelope(first.json());
    let documented_write = sample(KV2, "POST", "/v1/:secret-mount-path/data/:path");
    assert_eq!(keys(&first.json()["data"]), keys(&documented_write["data"]));
    assert_eq!(first.json()["data"]["version"], 1);
    assert_eq!(first.json()["data"]["deletion_time"], "");
    assert_timestamp(&first.json()["data"]["created_time"]);
    assert_eq!(dev.put_secret("app/db", json!({"password": "two"})).await.json()["data"]["version"], 2);

    let latest = dev.call("GET", "secret/data/app/db", None).await;
    assert_eq!(latest.status, 200);
    let documented_read = sample(KV2, "GET", "/v1/:secret-mount-path/data/:path");
    assert_eq!(keys(&latest.json()["data"]), keys(&documented_read["data"]));
    assert_eq!(keys(&latest.json()["data"]["metadata"]), keys(&documented_read["data"]["metadata"]));
    assert_eq!(latest.json()["data"]["data"], json!({"password": "two"}));
    assert_eq!(latest.json()["data"]["metadata"]["version"], 2);
    assert_eq!(latest.json()["mount_type"], "kv");
    let older = dev.call("GET", "secret/data/app/db?version=1", None).await;
    assert_eq!(older.json()["data"]["data"], json!({"password": "one"}));

    let missing = dev.call("GET", "secret/data/never/written", None).await;
    assert_eq!((missing.status, missing.json()), (404, &error_sample("GET", "/v1/:secret-mount-path/data/:path", 404)));
    assert_eq!(dev.call("GET", "secret/data/app/db?version=9", None).await.status, 404);

    let config = dev.call("GET", "secret/config", None).await;
    assert_eq!(keys(&config.json()["data"]), keys(&sample(KV2, "GET", "/v1/:secret-mount-path/config")["data"]));
    assert_eq!(config.json()["data"], json!({"cas_required": false, "delete_version_after": "0s", "max_versions": 0}));
}

#[tokio::test]
async fn kv2_check_and_set_is_enforced_with_vaults_errors() {
    let dev = start().await;
    let cas = |n: u64, v: &str| json!({"options": {"cas": n}, "data": {"v": v}});
    assert_eq!(dev.call("POST", "secret/data/k", Some(cas(0, "a"))).await.json()["data"]["version"], 1);
    let mismatch = dev.call("POST", "secret/data/k", Some(cas(0, "b"))).await;
    let documented = fixtures(ERRORS, "POST", "/v1/:secret-mount-path/data/:path", 400);
    let cas_mismatch =
        documented.iter().find(|e| e["response"]["errors"][0].as_str().unwrap().contains("did not match")).unwrap();
    assert_eq!((mismatch.status, mismatch.json()), (400, &cas_mismatch["response"]));
    assert_eq!(dev.call("POST", "secret/data/k", Some(cas(5, "b"))).await.json(), &cas_mismatch["response"]);
    assert_eq!(dev.call("POST", "secret/data/k", Some(cas(1, "b"))).await.json()["data"]["version"], 2);
    assert_eq!(dev.call("GET", "secret/data/k", None).await.json()["data"]["data"]["v"], "b");

    assert_eq!(dev.call("POST", "secret/config", Some(json!({"cas_required": true}))).await.status, 204);
    let required =
        documented.iter().find(|e| e["response"]["errors"][0].as_str().unwrap().contains("required")).unwrap();
    let without = dev.put_secret("k", json!({"v": "c"})).await;
    assert_eq!((without.status, without.json()), (400, &required["response"]));
    assert_eq!(dev.call("POST", "secret/data/k", Some(cas(2, "c"))).await.json()["data"]["version"], 3);
}

#[tokio::test]
async fn kv2_soft_delete_undelete_and_destroy() {
    let dev = start().await;
    dev.put_secret("svc", json!({"token": "one"})).await;
    dev.put_secret("svc", json!({"token": "two"})).await;

    assert_eq!(dev.call("DELETE", "secret/data/svc", None).await.status, 204);
    let deleted = dev.call("GET", "secret/data/svc", None).await;
    assert_eq!(deleted.status, 404);
    let body = deleted.json();
    assert_envelope(body);
    assert!(body["data"]["data"].is_null(), "no secret in a deleted version: {body}");
    assert_eq!(body["data"]["metadata"]["version"], 2);
    assert_eq!(body["data"]["metadata"]["destroyed"], false);
    assert_timestamp(&body["data"]["metadata"]["deletion_time"]);
    assert_eq!(dev.call("GET", "secret/data/svc?version=1", None).await.status, 200, "older versions stay");

    let undelete = dev.call("POST", "secret/undelete/svc", Some(json!({"versions": [2]}))).await;
    assert_eq!(undelete.status, 204);
    let back = dev.call("GET", "secret/data/svc", None).await;
    assert_eq!((back.status, back.json()["data"]["data"].clone()), (200, json!({"token": "two"})));

    assert_eq!(dev.call("POST", "secret/delete/svc", Some(json!({"versions": [1]}))).await.status, 204);
    assert_eq!(dev.call("GET", "secret/data/svc?version=1", None).await.status, 404);
    let no_versions = dev.call("POST", "secret/delete/svc", Some(json!({}))).await;
    assert_eq!(no_versions.status, 400);

    assert_eq!(dev.call("POST", "secret/destroy/svc", Some(json!({"versions": [2]}))).await.status, 204);
    let destroyed = dev.call("GET", "secret/data/svc", None).await;
    assert_eq!(destroyed.status, 404);
    assert!(destroyed.json()["data"]["data"].is_null());
    assert_eq!(destroyed.json()["data"]["metadata"]["destroyed"], true);
    let undestroy = dev.call("POST", "secret/undelete/svc", Some(json!({"versions": [2]}))).await;
    assert_eq!(undestroy.status, 204);
    assert_eq!(dev.call("GET", "secret/data/svc", None).await.status, 404, "destroyed is forever");
    let meta = dev.call("GET", "secret/metadata/svc", None).await;
    assert_eq!(meta.json()["data"]["versions"]["2"]["destroyed"], true);
    assert_timestamp(&meta.json()["data"]["versions"]["1"]["deletion_time"]);
}

#[tokio::test]
async fn kv2_listing_marks_folders_and_empty_is_404() {
    let dev = start().await;
    let empty = dev.call("LIST", "secret/metadata/", None).await;
    assert_eq!((empty.status, empty.json()), (404, &error_sample("LIST", "*", 404)));
    for path in ["app", "team/a", "team/b/c"] {
        dev.put_secret(path, json!({"x": "y"})).await;
    }
    let root = dev.call("LIST", "secret/metadata", None).await;
    assert_eq!(root.status, 200);
    assert_envelope(root.json());
    let documented = sample(KV2, "LIST", "/v1/:secret-mount-path/metadata/:path");
    assert_eq!(keys(&root.json()["data"]), keys(&documented["data"]));
    assert_eq!(root.json()["data"]["keys"], json!(["app", "team/"]));
    let team = dev.call("GET", "secret/metadata/team/?list=true", None).await;
    assert_eq!(team.json()["data"]["keys"], json!(["a", "b/"]));
    assert_eq!(dev.call("LIST", "secret/metadata/nothing/here", None).await.status, 404);
}

#[tokio::test]
async fn kv2_metadata_reads_writes_patches_and_deletes() {
    let dev = start().await;
    for n in 1..=3 {
        dev.put_secret("cfg", json!({"n": n})).await;
    }
    let meta = dev.call("GET", "secret/metadata/cfg", None).await;
    assert_eq!(meta.status, 200);
    let documented = sample(KV2, "GET", "/v1/:secret-mount-path/metadata/:path");
    let data = &meta.json()["data"];
    assert_eq!(keys(data), keys(&documented["data"]));
    assert_eq!(keys(&data["versions"]["1"]), keys(&documented["data"]["versions"]["1"]));
    assert_eq!((data["current_version"].clone(), data["oldest_version"].clone()), (json!(3), json!(0)));
    assert_eq!(keys(&data["versions"]), ["1", "2", "3"].map(String::from).into());
    assert_eq!(data["created_time"], data["versions"]["1"]["created_time"]);
    assert_eq!(data["updated_time"], data["versions"]["3"]["created_time"]);
    assert!(data["custom_metadata"].is_null());

    let settings = json!({"max_versions": 2, "custom_metadata": {"owner": "jdoe"}});
    assert_eq!(dev.call("POST", "secret/metadata/cfg", Some(settings)).await.status, 204);
    let fourth = dev.put_secret("cfg", json!({"n": 4})).await;
    assert_eq!(fourth.json()["data"]["custom_metadata"], json!({"owner": "jdoe"}));
    let trimmed = dev.call("GET", "secret/metadata/cfg", None).await;
    let data = &trimmed.json()["data"];
    assert_eq!(keys(&data["versions"]), ["3", "4"].map(String::from).into(), "max_versions drops the oldest");
    assert_eq!((data["max_versions"].clone(), data["oldest_version"].clone()), (json!(2), json!(3)));
    assert_eq!(dev.call("GET", "secret/data/cfg?version=1", None).await.status, 404);

    let patch = json!({"max_versions": 5, "custom_metadata": {"team": "ops", "owner": null}});
    assert_eq!(dev.patch("secret/metadata/cfg", patch.clone()).await.status, 204);
    let patched = dev.call("GET", "secret/metadata/cfg", None).await;
    assert_eq!(patched.json()["data"]["custom_metadata"], json!({"team": "ops"}));
    assert_eq!(patched.json()["data"]["max_versions"], 5);
    let wrong_type = dev.send(Some(ROOT), "PATCH", "secret/metadata/cfg", Some(patch), None).await;
    assert_eq!(wrong_type.status, 415, "PATCH needs application/merge-patch+json");

    assert_eq!(dev.call("DELETE", "secret/metadata/cfg", None).await.status, 204);
    assert_eq!(dev.call("GET", "secret/metadata/cfg", None).await.status, 404);
    assert_eq!(dev.call("GET", "secret/data/cfg", None).await.status, 404);
    assert_eq!(
        dev.call("POST", "secret/data/cfg", Some(json!({"options": {"cas": 0}, "data": {"n": 1}}))).await.status,
        200
    );
}

#[tokio::test]
async fn kv2_patch_merges_into_a_new_version() {
    let dev = start().await;
    dev.put_secret("p", json!({"user": "app", "pass": "old", "extra": {"a": "1", "b": "2"}})).await;
    let patched = dev.patch("secret/data/p", json!({"data": {"pass": "new", "extra": {"b": null}}})).await;
    assert_eq!(patched.status, 200);
    assert_eq!(keys(&patched.json()["data"]), keys(&sample(KV2, "PATCH", "/v1/:secret-mount-path/data/:path")["data"]));
    assert_eq!(patched.json()["data"]["version"], 2);
    let read = dev.call("GET", "secret/data/p", None).await;
    assert_eq!(read.json()["data"]["data"], json!({"user": "app", "pass": "new", "extra": {"a": "1"}}));
    let plain_json = dev.send(Some(ROOT), "PATCH", "secret/data/p", Some(json!({"data": {}})), None).await;
    assert_eq!(plain_json.status, 415);
    assert_eq!(dev.patch("secret/data/absent", json!({"data": {"a": "b"}})).await.status, 404);
    let stale = dev.patch("secret/data/p", json!({"options": {"cas": 1}, "data": {"a": "b"}})).await;
    assert_eq!(stale.status, 400);
}

#[tokio::test]
async fn the_vault_cli_preflight_sees_the_kv_version() {
    let dev = start().await;
    let preflight = dev.call("GET", "sys/internal/ui/mounts/secret/app/db", None).await;
    assert_eq!(preflight.status, 200);
    assert_eq!(preflight.json()["data"]["path"], "secret/");
    assert_eq!(preflight.json()["data"]["options"]["version"], "2");
    assert_eq!(dev.call("GET", "sys/internal/ui/mounts/nowhere/x", None).await.status, 403);
}

#[tokio::test]
async fn rotators_own_vault_client_works_against_it() {
    use rotator_core::secret::SecretJson;
    use rotator_core::vault::{VaultClient, VaultError, VaultOptions};
    let dev = start().await;
    let mut options = VaultOptions::new(dev.server.url(), ROOT.to_string().into());
    options.timeout = Duration::from_secs(5);
    let client = VaultClient::new(options).unwrap();
    assert_eq!(client.health().await.unwrap()["sealed"], false);
    let secret = SecretJson::parse(r#"{"password":"s3cret"}"#.into()).unwrap();
    assert_eq!(client.kv_write("secret", "jobs/db", &secret, Some(0)).await.unwrap(), 1);
    let read = client.kv_read("secret", "jobs/db").await.unwrap().expect("written");
    assert_eq!((read.version, read.data.fields()["password"].clone()), (Some(1), json!("s3cret")));
    let stale = client.kv_write("secret", "jobs/db", &secret, Some(0)).await.unwrap_err();
    assert!(matches!(stale, VaultError::CasMismatch { .. }), "{stale}");
    assert!(client.kv_read("secret", "jobs/none").await.unwrap().is_none());
}

#[tokio::test]
async fn banner_and_shutdown() {
    let dev = start().await;
    let banner = dev.server.banner();
    assert!(banner.contains(&dev.server.url()) && banner.contains(ROOT), "{banner}");
    assert!(banner.contains("NOT") && banner.to_lowercase().contains("production"), "{banner}");
    assert!(dev.server.url().starts_with("http://127.0.0.1:"));
    assert_eq!(dev.server.root_token(), ROOT);
    let url = dev.server.url();
    dev.server.shutdown().await;
    let after = dev.http.get(format!("{url}/v1/sys/health")).send().await;
    assert!(after.is_err(), "nothing listens after shutdown");

    let generated = DevServer::start(DevServerOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        root_token: String::new(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(generated.root_token().starts_with("hvs.") && generated.root_token().len() > 20);
    generated.shutdown().await;
}
