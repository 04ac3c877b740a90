//! The client's KV support on the dev server: the version of each mount is
//! learned from Vault, KV v1 reads and writes plainly and refuses
//! check-and-set, KV v2 keeps versions, custom metadata and listings.

use rotator::secret::SecretJson;
use rotator::vault::{KvVersion, VaultClient, VaultError, VaultOptions};
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
    assert_eq!(c.kv_version("legacy").await, KvVersion::V1);
    assert_eq!(c.kv_version("secret").await, KvVersion::V2);

    assert_eq!(c.kv_write("legacy", "app/db", &secret(json!({"password": "one"})), None).await.unwrap(), 0);
    let read = c.kv_read("legacy", "app/db").await.unwrap().unwrap();
    assert_eq!((read.version, read.data.fields()["password"].clone()), (None, json!("one")));
    let err = c.kv_write("legacy", "app/db", &secret(json!({"password": "two"})), Some(0)).await.unwrap_err();
    assert!(matches!(err, VaultError::Config(_)), "{err}");
    assert!(err.to_string().contains("KV version 1"), "{err}");
    assert_eq!(c.kv_list("legacy", "app").await.unwrap(), vec!["db"]);
    assert_eq!(c.kv_data_path("legacy", "app/db").await, "legacy/app/db");
    assert_eq!(c.kv_data_path("secret", "app/db").await, "secret/data/app/db");
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
