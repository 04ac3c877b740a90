//! The client's KV support on the dev server: the version of each mount is
//! learned from Vault (a failed lookup is an error and is asked again, never
//! cached as a guess), KV v1 reads and writes plainly and refuses
//! check-and-set, KV v2 keeps versions, custom metadata and listings.

use std::time::Duration;

use rotator_core::secret::SecretJson;
use rotator_core::vault::{KvVersion, RequestRetry, VaultClient, VaultError, VaultOptions};
use rotator_devserver::{DevServer, FaultRules};
use rotator_tests::{ROOT, dev_server};
use secrecy::SecretString;
use serde_json::{Map, Value, json};

fn secret(v: Value) -> SecretJson {
    SecretJson::new(v.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn kv_versions_are_detected_per_mount_and_v1_refuses_cas() {
    let server = dev_server().await;
    let c = VaultClient::new(VaultOptions::new(server.url(), SecretString::from(ROOT))).unwrap();
    c.request("POST", "sys/mounts/legacy", Some(json!({"type": "kv", "options": {"version": "1"}}).to_string()))
        .await
        .unwrap();
    assert_eq!(c.kv_version("legacy").await.unwrap(), KvVersion::V1);
    assert_eq!(c.kv_version("secret").await.unwrap(), KvVersion::V2);

    assert_eq!(c.kv_write("legacy", "app/db", &secret(json!({"password": "one"})), None).await.unwrap(), 0);
    let read = c.kv_read("legacy", "app/db").await.unwrap().unwrap();
    assert_eq!((read.version, read.data.fields()["password"].clone()), (None, json!("one")));
    let err = c.kv_write("legacy", "app/db", &secret(json!({"password": "two"})), Some(0)).await.unwrap_err();
    assert!(matches!(err, VaultError::Config(_)), "{err}");
    assert!(err.to_string().contains("KV version 1"), "{err}");
    assert_eq!(c.kv_list("legacy", "app").await.unwrap(), vec!["db"]);
    assert_eq!(c.try_kv_data_path("legacy", "app/db").await.unwrap().as_str(), "legacy/app/db");
    assert_eq!(c.try_kv_data_path("secret", "app/db").await.unwrap().as_str(), "secret/data/app/db");
}

#[tokio::test(flavor = "multi_thread")]
async fn kv_v2_keeps_versions_custom_metadata_and_listings() {
    let server = dev_server().await;
    let c = VaultClient::new(VaultOptions::new(server.url(), SecretString::from(ROOT))).unwrap();
    assert_eq!(c.kv_write("secret", "team/a", &secret(json!({"k": "v1"})), Some(0)).await.unwrap(), 1);
    assert_eq!(c.kv_write("secret", "team/a", &secret(json!({"k": "v2"})), Some(1)).await.unwrap(), 2);
    let conflict = c.kv_write("secret", "team/a", &secret(json!({"k": "v3"})), Some(1)).await.unwrap_err();
    assert!(matches!(conflict, VaultError::CasMismatch { expected: 1, .. }), "{conflict}");
    c.kv_write("secret", "team/sub/b", &secret(json!({"x": "y"})), None).await.unwrap();

    let mut custom = Map::new();
    custom.insert("owner".into(), json!("rotator"));
    c.kv_write_metadata("secret", "team/a", &custom, Some(5)).await.unwrap();
    let meta = c.kv_metadata("secret", "team/a").await.unwrap().unwrap();
    assert_eq!(meta["custom_metadata"]["owner"], "rotator");
    assert_eq!(meta["max_versions"], 5);
    assert_eq!(meta["current_version"], 2);

    let mut keys = c.kv_list("secret", "team").await.unwrap();
    keys.sort();
    assert_eq!(keys, vec!["a", "sub/"]);
    assert!(c.kv_list("secret", "nothing/here").await.unwrap().is_empty());
    assert!(c.kv_read("secret", "team/missing").await.unwrap().is_none());
}

/// Answer the next `count` requests under `prefix` with `status`.
fn fault(server: &DevServer, prefix: &str, status: u16, count: u32) {
    server.set_faults(Some(FaultRules {
        rate: 1.0,
        statuses: vec![status],
        path_prefix: Some(prefix.into()),
        remaining: Some(count),
        ..FaultRules::default()
    }));
}

async fn mount_v1(c: &VaultClient, mount: &str) {
    let body = json!({"type": "kv", "options": {"version": "1"}}).to_string();
    c.request("POST", &format!("sys/mounts/{mount}"), Some(body)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_kv_version_lookup_is_an_error_and_is_asked_again() {
    let server = dev_server().await;
    let quick = RequestRetry { attempts: 2, base: Duration::from_millis(10), max: Duration::from_millis(20) };
    let c =
        VaultClient::new(VaultOptions { retry: quick, ..VaultOptions::new(server.url(), SecretString::from(ROOT)) })
            .unwrap();
    mount_v1(&c, "legacy").await;

    // Vault sealed while the version is first asked: the KV call fails
    // (no guess of "v2" is made or remembered)...
    fault(&server, "sys/internal/ui/mounts/legacy", 503, 2);
    let err = c.kv_read("legacy", "app/db").await.unwrap_err();
    assert_eq!(err.status(), Some(503), "{err}");
    // ...and once Vault is back the mount is known for what it is.
    assert_eq!(c.kv_version("legacy").await.unwrap(), KvVersion::V1);
    assert_eq!(server.stats().requests("sys/internal/ui/mounts/legacy"), 3);
    assert_eq!(c.kv_write("legacy", "app/db", &secret(json!({"password": "one"})), None).await.unwrap(), 0);
    assert_eq!(c.kv_read("legacy", "app/db").await.unwrap().unwrap().version, None);

    // A preflight that is unknown (404: old Vault, a filtering proxy) falls
    // back to the mount table, which the root token may read.
    mount_v1(&c, "old").await;
    fault(&server, "sys/internal/ui/mounts/old", 404, 1);
    assert_eq!(c.kv_version("old").await.unwrap(), KvVersion::V1);
    assert_eq!(server.stats().requests("sys/mounts"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_preflight_without_the_mount_table_is_the_preflight_error() {
    let server = dev_server().await;
    let root = VaultClient::new(VaultOptions::new(server.url(), SecretString::from(ROOT))).unwrap();
    mount_v1(&root, "legacy").await;
    let policy = r#"path "legacy/app/*" { capabilities = ["create", "read", "update"] }"#;
    root.request("PUT", "sys/policies/acl/legacy-app", Some(json!({"policy": policy}).to_string())).await.unwrap();
    let created = root
        .request("POST", "auth/token/create", Some(json!({"policies": ["legacy-app"]}).to_string()))
        .await
        .unwrap()
        .body
        .unwrap();
    let token = created["auth"]["client_token"].as_str().unwrap().to_owned();
    let c = VaultClient::new(VaultOptions::new(server.url(), SecretString::from(token))).unwrap();

    fault(&server, "sys/internal/ui/mounts/legacy", 403, 1);
    let err = c.kv_version("legacy").await.unwrap_err();
    assert_eq!(err.status(), Some(403), "{err}");
    assert!(err.to_string().contains("sys/internal/ui/mounts/legacy"), "the preflight's error: {err}");
    assert_eq!(server.stats().requests("sys/mounts"), 1, "the mount table was tried");
    // Nothing was cached: the next ask (preflight allowed again) answers.
    assert_eq!(c.kv_version("legacy").await.unwrap(), KvVersion::V1);
    c.kv_write("legacy", "app/db", &secret(json!({"password": "one"})), None).await.unwrap();
}
