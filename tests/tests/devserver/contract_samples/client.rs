//! The client's side: each documented answer of an endpoint rotator reads,
//! parsed with the same functions the client parses Vault's answers with.

use std::time::Duration;

use rotator_core::vault::VaultError;
use rotator_core::vault::auth::lease_from;
use rotator_core::vault::kv::{KvVersion, parse_read, parse_write};
use rotator_core::vault::leases::{parse_dynamic, parse_renewed};
use serde_json::Value;

type Parsed = Result<(), String>;

fn ensure(ok: bool, what: impl FnOnce() -> String) -> Parsed {
    if ok { Ok(()) } else { Err(what()) }
}

/// `VaultClient::kv_read` on a KV v1 mount.
pub fn kv1_read(body: &Value) -> Parsed {
    let secret = parse_read(KvVersion::V1, body).map_err(|e| e.to_string())?.ok_or("no secret")?;
    ensure(secret.version.is_none() && secret.data.fields()["foo"] == "bar", || "v1 fields".into())
}

/// `VaultClient::kv_read` on a KV v2 mount.
pub fn kv2_read(body: &Value) -> Parsed {
    let secret = parse_read(KvVersion::V2, body).map_err(|e| e.to_string())?.ok_or("no live version")?;
    ensure(secret.version == Some(2) && secret.data.fields()["foo"] == "bar", || "v2 version and fields".into())
}

/// `VaultClient::kv_write`: the new version.
pub fn kv2_write(body: &Value) -> Parsed {
    ensure(parse_write(body) == Some(1), || "no data.version".into())
}

/// Every login (`AuthMethod::login`): a client token and its lease.
pub fn login(body: &Value) -> Parsed {
    let auth = &body["auth"];
    ensure(auth["client_token"].as_str().is_some_and(|t| !t.is_empty()), || "no auth.client_token".into())?;
    let lease = lease_from(auth, "lease_duration", "token_policies");
    ensure(!lease.ttl.is_zero() && lease.renewable && !lease.policies.is_empty(), || format!("{lease:?}"))
}

/// `VaultClient::lookup_self`.
pub fn lookup_self(body: &Value) -> Parsed {
    let data = &body["data"];
    let lease = lease_from(data, "ttl", "policies");
    let ttl = data["ttl"].as_u64().ok_or("no data.ttl")?;
    ensure(lease.ttl == Duration::from_secs(ttl) && !lease.policies.is_empty(), || format!("{lease:?}"))
}

/// `VaultClient::renew_self`.
pub fn renew_self(body: &Value) -> Parsed {
    let lease = lease_from(&body["auth"], "lease_duration", "token_policies");
    ensure(lease.ttl == Duration::from_secs(3600) && lease.renewable && !lease.policies.is_empty(), || {
        format!("{lease:?}")
    })
}

/// `LeaseApi::renew`.
pub fn lease_renewed(body: &Value) -> Parsed {
    let renewed = parse_renewed(body);
    ensure(!renewed.lease_duration.is_zero() && renewed.renewable, || format!("{renewed:?}"))
}

/// `LeaseApi::fetch` of database credentials.
pub fn dynamic(body: &Value) -> Parsed {
    let secret = parse_dynamic("database/creds/readonly", body).map_err(|e| e.to_string())?;
    ensure(secret.data.field_names() == ["password", "username"], || "username and password".into())
}

/// Every failed call (`VaultClient::request`): a typed error with the
/// status and Vault's messages.
pub fn error(status: u16, body: &Value) -> Parsed {
    let err = VaultError::from_status("GET", "some/path", status, Some(body));
    let documented: Vec<String> =
        body["errors"].as_array().ok_or("no errors")?.iter().filter_map(|m| m.as_str().map(str::to_owned)).collect();
    ensure(err.status() == Some(status) && err.messages() == documented, || format!("{err}"))
}
