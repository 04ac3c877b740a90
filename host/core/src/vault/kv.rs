//! KV secrets on any mount, version 1 or 2.
//!
//! The version is learned per mount from `sys/internal/ui/mounts/<path>`
//! (the endpoint the `vault kv` CLI uses; any token with access to the mount
//! may ask), with `sys/mounts` as a fallback, and cached once known; a
//! failed lookup is an error, never a guess. Version 2 gives versions, check-and-set and custom metadata;
//! version 1 is plain read/write, so a check-and-set write to it is refused
//! rather than silently done without the check.
//!
//! The same lookup tells the mount's type, and only a mount of type `kv` is
//! served: `sys`, `auth/token` or `cubbyhole` named as a "mount" would
//! otherwise be written to as KV version 1, with the daemon's identity.
//! Mounts and paths are [`VaultPath`]s (or text parsed into one), and API
//! paths are joined from their segments, never from raw text.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::path::{AsVaultPath, PathError, VaultPath, shown};
use super::{AnswerError, Target, VaultClient, VaultError};
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

/// A mount and a secret path, each parsed into its canonical form.
fn locate(
    mount: &(impl AsVaultPath + ?Sized),
    path: &(impl AsVaultPath + ?Sized),
) -> Result<(VaultPath, VaultPath), VaultError> {
    Ok((mount.to_vault_path()?, path.to_vault_path()?))
}

impl VaultClient {
    /// The KV version of `mount`, learned from Vault once and cached.
    ///
    /// Only answers are cached: an error (Vault down, sealed, a denied
    /// preflight) is returned and the next call asks again, so one blip at
    /// startup cannot make a KV v1 mount look like v2 for the life of the
    /// process. A mount whose type is not `kv` (`sys`, `auth/token`,
    /// `cubbyhole`, a database engine) is [`VaultError::NotKv`]: the KV
    /// helpers refuse it rather than treat it as KV version 1.
    pub async fn kv_version(&self, mount: &(impl AsVaultPath + ?Sized)) -> Result<KvVersion, VaultError> {
        let mount = mount.to_vault_path()?;
        if let Some(v) = self.inner.kv_versions.lock().unwrap_or_else(|p| p.into_inner()).get(mount.as_str()) {
            return Ok(*v);
        }
        let version = self.ask_kv_version(&mount).await?;
        self.inner.kv_versions.lock().unwrap_or_else(|p| p.into_inner()).insert(mount.as_str().to_owned(), version);
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
    async fn ask_kv_version(&self, mount: &VaultPath) -> Result<KvVersion, VaultError> {
        let ui_mounts = VaultPath::parse("sys/internal/ui/mounts")?.join(mount);
        let preflight = match self.request("GET", &ui_mounts, None).await {
            Ok(r) => return kv_mount_version(mount, &r.body.unwrap_or(Value::Null)["data"]),
            Err(e) if matches!(e.status(), Some(403 | 404)) => e,
            Err(e) => return Err(e),
        };
        let table = match self.request("GET", "sys/mounts", None).await {
            Ok(r) => r.body.unwrap_or(Value::Null),
            Err(fallback) => {
                tracing::debug!(%mount, error = %fallback, "sys/mounts fallback for the KV version failed too");
                return Err(preflight);
            }
        };
        // Vault lists mounts both at the top level (older servers) and
        // under `data`; keys end in `/`.
        let key = format!("{mount}/");
        match table["data"].get(&key).or_else(|| table.get(&key)) {
            Some(entry) => kv_mount_version(mount, entry),
            None => Err(preflight),
        }
    }

    /// The API path of a secret's data on `mount`.
    pub async fn try_kv_data_path(
        &self,
        mount: &(impl AsVaultPath + ?Sized),
        path: &(impl AsVaultPath + ?Sized),
    ) -> Result<VaultPath, VaultError> {
        let (mount, path) = locate(mount, path)?;
        Ok(match self.kv_version(&mount).await? {
            KvVersion::V2 => kv_data_path(&mount, &path),
            KvVersion::V1 => kv_v1_path(&mount, &path),
        })
    }

    /// Read the newest version of `<mount>/<path>`. `None` if it does not
    /// exist or (KV v2) its newest version is deleted or destroyed.
    pub async fn kv_read(
        &self,
        mount: &(impl AsVaultPath + ?Sized),
        path: &(impl AsVaultPath + ?Sized),
    ) -> Result<Option<KvSecret>, VaultError> {
        self.kv_read_version(mount, path, None).await
    }

    /// Read version `at` of `<mount>/<path>` (KV v2), or the newest with
    /// `None`. `None` if that version does not exist, is deleted or is
    /// destroyed. Asking a KV v1 mount for a version is an error: it keeps
    /// only the newest value.
    pub async fn kv_read_version(
        &self,
        mount: &(impl AsVaultPath + ?Sized),
        path: &(impl AsVaultPath + ?Sized),
        at: Option<u64>,
    ) -> Result<Option<KvSecret>, VaultError> {
        let (mount, path) = locate(mount, path)?;
        let version = self.kv_version(&mount).await?;
        let api = self.try_kv_data_path(&mount, &path).await?;
        let query = match (at, version) {
            (None, _) => None,
            (Some(n), KvVersion::V2) => Some(format!("version={n}")),
            (Some(_), KvVersion::V1) => {
                return Err(VaultError::Config(format!("`{mount}` is a KV version 1 mount, which keeps no versions")));
            }
        };
        let body = match self.request("GET", Target { path: api.clone(), query }, None).await {
            Ok(r) => r.body.unwrap_or(Value::Null),
            Err(e) if e.status() == Some(404) => return Ok(None),
            Err(e) => return Err(e),
        };
        parse_read(version, &body).map_err(|e| VaultError::Protocol { path: api.to_string(), message: e.to_string() })
    }

    /// Write a new version. With `cas = Some(n)` (KV v2 only) the write only
    /// happens if the current version is `n` (0: only if the secret does not
    /// exist). Returns the new version (0 on KV v1, which has none).
    pub async fn kv_write(
        &self,
        mount: &(impl AsVaultPath + ?Sized),
        path: &(impl AsVaultPath + ?Sized),
        data: &SecretJson,
        cas: Option<u64>,
    ) -> Result<u64, VaultError> {
        let (mount, path) = locate(mount, path)?;
        let api = self.try_kv_data_path(&mount, &path).await?;
        if self.kv_version(&mount).await? == KvVersion::V1 {
            if cas.is_some() {
                return Err(VaultError::Config(format!(
                    "`{mount}` is a KV version 1 mount, which has no check-and-set; rotate secrets on KV v2"
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
                return Err(VaultError::CasMismatch { path: api.to_string(), expected: cas.unwrap_or(0) });
            }
            Err(e) => return Err(e),
        };
        resp.body
            .as_ref()
            .and_then(parse_write)
            .ok_or_else(|| VaultError::Protocol { path: api.to_string(), message: "no data.version in answer".into() })
    }

    /// The metadata of a KV v2 secret (versions, times, custom_metadata).
    pub async fn kv_metadata(
        &self,
        mount: &(impl AsVaultPath + ?Sized),
        path: &(impl AsVaultPath + ?Sized),
    ) -> Result<Option<Value>, VaultError> {
        let (mount, path) = locate(mount, path)?;
        self.kv_version(&mount).await?;
        match self.request("GET", &mount.child("metadata").join(&path), None).await {
            Ok(r) => Ok(r.body.map(|b| b["data"].clone())),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Set a KV v2 secret's `custom_metadata` (and optionally `max_versions`).
    pub async fn kv_write_metadata(
        &self,
        mount: &(impl AsVaultPath + ?Sized),
        path: &(impl AsVaultPath + ?Sized),
        custom_metadata: &Map<String, Value>,
        max_versions: Option<u32>,
    ) -> Result<(), VaultError> {
        let (mount, path) = locate(mount, path)?;
        self.kv_version(&mount).await?;
        let mut body = serde_json::json!({ "custom_metadata": custom_metadata });
        if let Some(n) = max_versions {
            body["max_versions"] = n.into();
        }
        self.request("POST", &mount.child("metadata").join(&path), Some(body.to_string())).await.map(|_| ())
    }

    /// The keys under a folder (folders end in `/`); empty if there are none.
    /// An empty `path` lists the mount's top level.
    pub async fn kv_list(
        &self,
        mount: &(impl AsVaultPath + ?Sized),
        path: &(impl AsVaultPath + ?Sized),
    ) -> Result<Vec<String>, VaultError> {
        let mount = mount.to_vault_path()?;
        let folder = match path.to_vault_path() {
            Ok(p) => Some(p),
            Err(PathError::Empty) => None,
            Err(e) => return Err(e.into()),
        };
        let base = match self.kv_version(&mount).await? {
            KvVersion::V2 => mount.child("metadata"),
            KvVersion::V1 => mount,
        };
        let api = folder.map_or_else(|| base.clone(), |f| base.join(&f));
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

/// The KV version of `mount` from its entry in Vault's mount table (or the
/// preflight's answer, which also names the mount's `path`): an error
/// unless the entry's `type` is `kv` and it is `mount` itself, not a mount
/// above it. Like the `vault kv` CLI, no options or no version means 1.
fn kv_mount_version(mount: &VaultPath, entry: &Value) -> Result<KvVersion, VaultError> {
    let not_kv = |found: String| VaultError::NotKv { mount: mount.to_string(), found };
    match entry["type"].as_str() {
        Some("kv") => {}
        Some(other) => return Err(not_kv(format!("its type is `{}`", shown(other)))),
        None => return Err(not_kv("Vault names no type for it".into())),
    }
    // The preflight answers for the mount serving a path, so `secret/app`
    // is answered with `secret/`: that is a path inside a mount, not one.
    // (Under a namespace the answer may carry the namespace in front.)
    if let Some(serving) = entry["path"].as_str() {
        let serving = serving.trim_end_matches('/');
        let exact = serving == mount.as_str() || serving.ends_with(&format!("/{mount}"));
        if !exact {
            return Err(not_kv(format!("it lies inside the mount `{}`", shown(serving))));
        }
    }
    Ok(match entry["options"]["version"].as_str() {
        Some("2") => KvVersion::V2,
        _ => KvVersion::V1,
    })
}

/// Parse a KV read answer. `None` for a KV v2 version that is deleted or
/// destroyed (`data.data` is null).
pub fn parse_read(version: KvVersion, body: &Value) -> Result<Option<KvSecret>, AnswerError> {
    let (fields, number) = match version {
        KvVersion::V1 => (&body["data"], None),
        KvVersion::V2 => {
            let data = &body["data"];
            if data["data"].is_null() {
                return Ok(None);
            }
            let n = data["metadata"]["version"].as_u64().ok_or(AnswerError::NoVersion)?;
            (&data["data"], Some(n))
        }
    };
    let fields = fields.as_object().ok_or(AnswerError::DataNotObject)?;
    Ok(Some(KvSecret { data: SecretJson::from_map(fields), version: number }))
}

/// The new version from a KV v2 write answer.
pub fn parse_write(body: &Value) -> Option<u64> {
    body["data"]["version"].as_u64()
}

/// The API path of a KV v2 secret's data: `<mount>/data/<path>`.
pub fn kv_data_path(mount: &VaultPath, path: &VaultPath) -> VaultPath {
    mount.child("data").join(path)
}

/// The API path of a KV v1 secret: `<mount>/<path>`.
pub fn kv_v1_path(mount: &VaultPath, path: &VaultPath) -> VaultPath {
    mount.join(path)
}

/// Where a job's secret lives: a KV mount and a path in it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SecretLocation {
    #[serde(default = "default_mount")]
    pub mount: String,
    pub path: String,
}

fn default_mount() -> String {
    "secret".into()
}

impl std::fmt::Display for SecretLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.mount.trim_matches('/'), self.path.trim_matches('/'))
    }
}
