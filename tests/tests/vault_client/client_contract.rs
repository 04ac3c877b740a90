//! Every documented response sample in `shared/contracts/vault/` parses with
//! the client's own parsers, and every documented error body becomes a typed
//! error with its status and messages. (The dev server's side of the same
//! samples is in `devserver_contract.rs`.)

use std::time::Duration;

use rotator_core::vault::kv::{KvVersion, parse_read, parse_write};
use rotator_core::vault::leases::{parse_dynamic, parse_renewed};
use rotator_core::vault::{VaultError, auth::lease_from};
use serde_json::Value;

fn samples(file: &str) -> Vec<Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/contracts/vault").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// The response of the sample with this method and path (the first, or the
/// one whose status matches).
fn response(file: &str, method: &str, path: &str) -> Value {
    samples(file)
        .into_iter()
        .find(|e| e["method"] == method && e["path"] == path && !e["response"].is_null())
        .unwrap_or_else(|| panic!("no {method} {path} sample in {file}"))["response"]
        .clone()
}

#[test]
fn kv_samples_parse() {
    let read = response("kv2.json", "GET", "/v1/:secret-mount-path/data/:path");
    let secret = parse_read(KvVersion::V2, &read).unwrap().expect("a live version");
    assert_eq!(secret.version, Some(2));
    assert_eq!(secret.data.fields()["foo"], "bar");
    let write = response("kv2.json", "POST", "/v1/:secret-mount-path/data/:path");
    assert_eq!(parse_write(&write), Some(1));
    let v1 = response("kv1.json", "GET", "/v1/secret/:path");
    let secret = parse_read(KvVersion::V1, &v1).unwrap().unwrap();
    assert_eq!((secret.version, secret.data.fields()["foo"].clone()), (None, Value::from("bar")));
    // A deleted version reads as 404 with data.data null: "no live secret".
    let deleted = serde_json::json!({"data": {"data": null, "metadata": {"version": 3, "deletion_time": "2024-01-01T00:00:00Z"}}});
    assert!(parse_read(KvVersion::V2, &deleted).unwrap().is_none());
}

#[test]
fn token_and_login_samples_parse() {
    let lookup = response("token.json", "GET", "/v1/auth/token/lookup-self");
    let lease = lease_from(&lookup["data"], "ttl", "policies");
    assert_eq!(lease.ttl, Duration::from_secs(lookup["data"]["ttl"].as_u64().unwrap()));
    assert!(!lease.policies.is_empty());
    let renew = response("token.json", "POST", "/v1/auth/token/renew-self");
    let lease = lease_from(&renew["auth"], "lease_duration", "token_policies");
    assert_eq!((lease.ttl, lease.renewable), (Duration::from_secs(3600), true));
    assert_eq!(lease.policies, vec!["web", "stage"]);
    for (file, path) in [
        ("token.json", "/v1/auth/token/create"),
        ("approle.json", "/v1/auth/approle/login"),
        ("kubernetes.json", "/v1/auth/kubernetes/login"),
        ("jwt.json", "/v1/auth/jwt/login"),
    ] {
        let auth = &response(file, "POST", path)["auth"];
        assert!(auth["client_token"].as_str().is_some_and(|t| !t.is_empty()), "{file}");
        let lease = lease_from(auth, "lease_duration", "token_policies");
        assert!(!lease.ttl.is_zero() && !lease.policies.is_empty(), "{file}: {lease:?}");
    }
}

#[test]
fn lease_and_dynamic_secret_samples_parse() {
    let renewed = parse_renewed(&response("leases.json", "POST", "/v1/sys/leases/renew"));
    assert_eq!((renewed.lease_duration, renewed.renewable), (Duration::from_secs(2_764_790), true));
    let creds = response("database.json", "GET", "/v1/database/creds/:name");
    let secret = parse_dynamic("database/creds/readonly", &creds).unwrap();
    assert_eq!(secret.data.field_names(), vec!["password".to_owned(), "username".to_owned()]);
}

#[test]
fn error_samples_become_typed_errors() {
    let mut checked = 0;
    for e in samples("errors.json") {
        let Some(status) = e["response_status"].as_u64() else { continue };
        if status < 400 || e["response"].is_null() {
            continue;
        }
        let err = VaultError::from_status("POST", "some/path", status as u16, Some(&e["response"]));
        let expected: Vec<String> =
            e["response"]["errors"].as_array().unwrap().iter().map(|m| m.as_str().unwrap().to_owned()).collect();
        assert_eq!(err.status(), Some(status as u16));
        assert_eq!(err.messages(), expected);
        assert_eq!(err.is_transient(), status == 429 || status >= 500, "{status}");
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} error samples");
}
