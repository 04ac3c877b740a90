//! KV version 2 on any mount: read the newest version, write with
//! check-and-set. (KV v1 and mount detection come with the full client.)

use serde_json::Value;

use super::{VaultClient, VaultError};
use crate::secret::SecretJson;

/// A KV secret as read: its data and the version it came from.
#[derive(Debug, Clone)]
pub struct KvSecret {
    pub data: SecretJson,
    pub version: u64,
}

/// Vault's message for a CAS mismatch (a 400, not a 412).
const CAS_MISMATCH: &str = "check-and-set parameter did not match the current version";

impl VaultClient {
    /// Read the newest version of `<mount>/<path>`. `None` if it does not
    /// exist or its newest version is deleted or destroyed.
    pub async fn kv_read(&self, mount: &str, path: &str) -> Result<Option<KvSecret>, VaultError> {
        let api = kv_data_path(mount, path);
        let resp = match self.request("GET", &api, None).await {
            Ok(r) => r,
            Err(e) if e.status() == Some(404) => return Ok(None),
            Err(e) => return Err(e),
        };
        let body = resp.body.unwrap_or(Value::Null);
        let data = &body["data"];
        if data["data"].is_null() {
            return Ok(None);
        }
        let version = data["metadata"]["version"]
            .as_u64()
            .ok_or_else(|| VaultError::Protocol { path: api.clone(), message: "no data.metadata.version".into() })?;
        let fields = data["data"]
            .as_object()
            .ok_or_else(|| VaultError::Protocol { path: api.clone(), message: "data.data is not an object".into() })?;
        Ok(Some(KvSecret { data: SecretJson::from_map(fields), version }))
    }

    /// Write a new version. With `cas = Some(n)` the write only happens if
    /// the current version is `n` (0: only if the secret does not exist).
    /// Returns the new version.
    pub async fn kv_write(
        &self,
        mount: &str,
        path: &str,
        data: &SecretJson,
        cas: Option<u64>,
    ) -> Result<u64, VaultError> {
        let api = kv_data_path(mount, path);
        // Built as text so the secret is copied as little as possible.
        let options = match cas {
            Some(n) => format!(r#"{{"cas":{n}}}"#),
            None => "{}".into(),
        };
        let body = zeroize::Zeroizing::new(format!(r#"{{"options":{options},"data":{}}}"#, data.expose()));
        let resp = match self.request("POST", &api, Some(body.to_string())).await {
            Ok(r) => r,
            Err(VaultError::Status { status: 400, errors, .. }) if errors.iter().any(|e| e.contains(CAS_MISMATCH)) => {
                return Err(VaultError::CasMismatch { path: api, expected: cas.unwrap_or(0) });
            }
            Err(e) => return Err(e),
        };
        resp.body
            .as_ref()
            .and_then(|b| b["data"]["version"].as_u64())
            .ok_or_else(|| VaultError::Protocol { path: api, message: "no data.version in answer".into() })
    }

    /// The metadata of a KV v2 secret (versions, times, custom_metadata).
    pub async fn kv_metadata(&self, mount: &str, path: &str) -> Result<Option<Value>, VaultError> {
        let api = format!("{}/metadata/{}", mount.trim_matches('/'), path.trim_matches('/'));
        match self.request("GET", &api, None).await {
            Ok(r) => Ok(r.body.map(|b| b["data"].clone())),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The API path of a KV v2 secret's data: `<mount>/data/<path>`.
pub fn kv_data_path(mount: &str, path: &str) -> String {
    format!("{}/data/{}", mount.trim_matches('/'), path.trim_matches('/'))
}
