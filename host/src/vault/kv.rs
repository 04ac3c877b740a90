//! KV secrets on any mount, version 1 or 2.
//!
//! The version is learned per mount from `sys/internal/ui/mounts/<path>`
//! (the endpoint the `vault kv` CLI uses; any token with access to the mount
//! may ask), with `sys/mounts` as a fallback, and cached once known; a
//! failed lookup is an error, never a guess. Version 2 gives versions, check-and-set and custom metadata;
//! version 1 is plain read/write, so a check-and-set write to it is refused
//! rather than silently done without the check.

use serde_json::{Map, Value};

use super::{VaultClient, VaultError};
use crate::secret::SecretJson;

/// A KV mount's version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvVersion {
    V1,
    V2,
}

/// A KV secret as read: its data and, on KV v2, the version it came from.
#[derive(Debug, Clone)]
pub struct KvSecret {
    pub data: SecretJson,
    pub version: Option<u64>,
}

/// Vault's message for a CAS mismatch (a 400, not a 412).
const CAS_MISMATCH: &str = "check-and-set parameter did not match the current version";

fn clean(p: &str) -> &str {
    p.trim_matches('/')
}

impl VaultClient {
    /// The KV version of `mount`, learned from Vault once and cached.
    ///
    /// Only answers are cached: an error (Vault down, sealed, a denied
    /// preflight) is returned and the next call asks again, so one blip at
    /// startup cannot make a KV v1 mount look like v2 for the life of the
    /// process.
    pub async fn kv_version(&self, mount: &str) -> Result<KvVersion, VaultError> {
        let mount = clean(mount).to_owned();
        if let Some(v) = self.inner.kv_versions.lock().unwrap_or_else(|p| p.into_inner()).get(&mount) {
            return Ok(*v);
        }
        let version = self.ask_kv_version(&mount).await?;
        self.inner.kv_versions.lock().unwrap_or_else(|p| p.into_inner()).insert(mount, version);
        Ok(version)
    }

    /// Ask Vault which KV version serves `mount`.
    ///
    /// `sys/internal/ui/mounts/<mount>` first: it is what the `vault kv`
    /// CLI asks, and Vault answers it for any token with some capability
    /// under the mount, so a least-privilege policy needs nothing extra.
    /// `sys/mounts` (the full mount table) needs `read` on `sys/mounts`,
    /// which such a policy rarely grants, so it is only the fallback: when
    /// the preflight is refused (403) or unknown (404: a Vault older than
    /// 0.10, or a proxy filtering `sys/internal`), a token that may read the
    /// mount table still gets an exact answer. If the fallback fails too, the
    /// preflight's error is returned: it is the one that names the problem
    /// (a 403 there means the token has no access to the mount at all).
    async fn ask_kv_version(&self, mount: &str) -> Result<KvVersion, VaultError> {
        let preflight = match self.request("GET", &format!("sys/internal/ui/mounts/{mount}"), None).await {
            Ok(r) => return Ok(version_from_options(&r.body.unwrap_or(Value::Null)["data"])),
            Err(e) if matches!(e.status(), Some(403 | 404)) => e,
            Err(e) => return Err(e),
        };
        let table = match self.request("GET", "sys/mounts", None).await {
            Ok(r) => r.body.unwrap_or(Value::Null),
            Err(fallback) => {
                tracing::debug!(mount, error = %fallback, "sys/mounts fallback for the KV version failed too");
                return Err(preflight);
            }
        };
        // Vault lists mounts both at the top level (older servers) and
        // under `data`; keys end in `/`.
        let key = format!("{mount}/");
        match table["data"].get(&key).or_else(|| table.get(&key)) {
            Some(entry) => Ok(version_from_options(entry)),
            None => Err(preflight),
        }
    }

    /// The API path of a secret's data on `mount`.
    pub async fn try_kv_data_path(&self, mount: &str, path: &str) -> Result<String, VaultError> {
        Ok(match self.kv_version(mount).await? {
            KvVersion::V2 => kv_data_path(mount, path),
            KvVersion::V1 => kv_v1_path(mount, path),
        })
    }

    /// Read the newest version of `<mount>/<path>`. `None` if it does not
    /// exist or (KV v2) its newest version is deleted or destroyed.
    pub async fn kv_read(&self, mount: &str, path: &str) -> Result<Option<KvSecret>, VaultError> {
        self.kv_read_version(mount, path, None).await
    }

    /// Read version `at` of `<mount>/<path>` (KV v2), or the newest with
    /// `None`. `None` if that version does not exist, is deleted or is
    /// destroyed. Asking a KV v1 mount for a version is an error: it keeps
    /// only the newest value.
    pub async fn kv_read_version(
        &self,
        mount: &str,
        path: &str,
        at: Option<u64>,
    ) -> Result<Option<KvSecret>, VaultError> {
        let version = self.kv_version(mount).await?;
        let mut api = self.try_kv_data_path(mount, path).await?;
        match (at, version) {
            (None, _) => {}
            (Some(n), KvVersion::V2) => api.push_str(&format!("?version={n}")),
            (Some(_), KvVersion::V1) => {
                return Err(VaultError::Config(format!(
                    "`{}` is a KV version 1 mount, which keeps no versions",
                    clean(mount)
                )));
            }
        }
        let body = match self.request("GET", &api, None).await {
            Ok(r) => r.body.unwrap_or(Value::Null),
            Err(e) if e.status() == Some(404) => return Ok(None),
            Err(e) => return Err(e),
        };
        parse_read(version, &body).map_err(|message| VaultError::Protocol { path: api, message })
    }

    /// Write a new version. With `cas = Some(n)` (KV v2 only) the write only
    /// happens if the current version is `n` (0: only if the secret does not
    /// exist). Returns the new version (0 on KV v1, which has none).
    pub async fn kv_write(
        &self,
        mount: &str,
        path: &str,
        data: &SecretJson,
        cas: Option<u64>,
    ) -> Result<u64, VaultError> {
        let api = self.try_kv_data_path(mount, path).await?;
        if self.kv_version(mount).await? == KvVersion::V1 {
            if cas.is_some() {
                return Err(VaultError::Config(format!(
                    "`{}` is a KV version 1 mount, which has no check-and-set; rotate secrets on KV v2",
                    clean(mount)
                )));
            }
            self.request("POST", &api, Some(data.expose().to_owned())).await?;
            return Ok(0);
        }
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
            .and_then(parse_write)
            .ok_or_else(|| VaultError::Protocol { path: api, message: "no data.version in answer".into() })
    }

    /// The metadata of a KV v2 secret (versions, times, custom_metadata).
    pub async fn kv_metadata(&self, mount: &str, path: &str) -> Result<Option<Value>, VaultError> {
        let api = format!("{}/metadata/{}", clean(mount), clean(path));
        match self.request("GET", &api, None).await {
            Ok(r) => Ok(r.body.map(|b| b["data"].clone())),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Set a KV v2 secret's `custom_metadata` (and optionally `max_versions`).
    pub async fn kv_write_metadata(
        &self,
        mount: &str,
        path: &str,
        custom_metadata: &Map<String, Value>,
        max_versions: Option<u32>,
    ) -> Result<(), VaultError> {
        let api = format!("{}/metadata/{}", clean(mount), clean(path));
        let mut body = serde_json::json!({ "custom_metadata": custom_metadata });
        if let Some(n) = max_versions {
            body["max_versions"] = n.into();
        }
        self.request("POST", &api, Some(body.to_string())).await.map(|_| ())
    }

    /// The keys under a folder (folders end in `/`); empty if there are none.
    pub async fn kv_list(&self, mount: &str, path: &str) -> Result<Vec<String>, VaultError> {
        let api = match self.kv_version(mount).await? {
            KvVersion::V2 => format!("{}/metadata/{}", clean(mount), clean(path)),
            KvVersion::V1 => format!("{}/{}", clean(mount), clean(path)),
        };
        match self.request("LIST", &api, None).await {
            Ok(r) => Ok(r
                .body
                .and_then(|b| b["data"]["keys"].as_array().cloned())
                .unwrap_or_default()
                .into_iter()
                .filter_map(|k| k.as_str().map(str::to_owned))
                .collect()),
            Err(e) if e.status() == Some(404) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }
}

/// The version a mount's entry (`{"options": {"version": "2"}, ...}`)
/// declares. Like the `vault kv` CLI: no options or no version means 1.
fn version_from_options(entry: &Value) -> KvVersion {
    match entry["options"]["version"].as_str() {
        Some("2") => KvVersion::V2,
        _ => KvVersion::V1,
    }
}

/// Parse a KV read answer. `None` for a KV v2 version that is deleted or
/// destroyed (`data.data` is null).
pub fn parse_read(version: KvVersion, body: &Value) -> Result<Option<KvSecret>, String> {
    let (fields, number) = match version {
        KvVersion::V1 => (&body["data"], None),
        KvVersion::V2 => {
            let data = &body["data"];
            if data["data"].is_null() {
                return Ok(None);
            }
            let n = data["metadata"]["version"].as_u64().ok_or("no data.metadata.version")?;
            (&data["data"], Some(n))
        }
    };
    let fields = fields.as_object().ok_or("secret data is not an object")?;
    Ok(Some(KvSecret { data: SecretJson::from_map(fields), version: number }))
}

/// The new version from a KV v2 write answer.
pub fn parse_write(body: &Value) -> Option<u64> {
    body["data"]["version"].as_u64()
}

/// The API path of a KV v2 secret's data: `<mount>/data/<path>`.
pub fn kv_data_path(mount: &str, path: &str) -> String {
    format!("{}/data/{}", clean(mount), clean(path))
}

/// The API path of a KV v1 secret: `<mount>/<path>`.
pub fn kv_v1_path(mount: &str, path: &str) -> String {
    format!("{}/{}", clean(mount), clean(path))
}
