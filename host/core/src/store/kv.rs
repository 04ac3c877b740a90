//! A secret in Vault KV v2. KV keeps versions but has no staging labels, so
//! PENDING lives only in the job's state record (staged there by the
//! protocol's first record write, under the same Vault protection), and
//! promotion is a new version written with check-and-set against the one
//! the rotation read. A secret on a KV v1 mount (as Vault's mount table
//! says) is handed to [`super::kv1`], which has no versions and no
//! check-and-set and does what it can without them.

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::kv1::{FingerprintKey, Kv1};
use super::{SecretStore, StoreError, StoreVersion, Stored};
use crate::secret::SecretJson;
use crate::vault::kv::{KvVersion, SecretLocation};
use crate::vault::{VaultClient, VaultError};

/// A job's secret at a KV location.
pub struct KvStore {
    vault: VaultClient,
    location: SecretLocation,
    /// What fingerprints KV v1 values; `None`: v1 secrets are refused.
    key: Option<FingerprintKey>,
}

impl KvStore {
    pub fn new(vault: VaultClient, location: SecretLocation) -> Self {
        Self { vault, location, key: None }
    }

    /// Rotate KV v1 secrets too, fingerprinting values with `key`.
    pub fn with_fingerprint_key(mut self, key: FingerprintKey) -> Self {
        self.key = Some(key);
        self
    }

    /// The v1 side, if the secret's mount is KV v1.
    async fn v1(&self) -> Result<Option<Kv1<'_>>, StoreError> {
        let version = self.vault.kv_version(&self.location.mount).await.map_err(|e| self.error("reading", e))?;
        if version == KvVersion::V2 {
            return Ok(None);
        }
        let Some(key) = &self.key else {
            return Err(StoreError::Refused {
                location: self.location.to_string(),
                message: "a KV version 1 secret is rotated only with the state records in Vault KV (its fingerprint key lives there)".into(),
            });
        };
        let loaded = key.load().await.map_err(|source| StoreError::Vault {
            action: "reading the KV v1 fingerprint key at",
            location: key.location(),
            source,
        })?;
        Ok(Some(Kv1 { vault: &self.vault, location: &self.location, key: loaded }))
    }

    async fn read_any(&self, version: Option<&StoreVersion>) -> Result<Option<Stored>, StoreError> {
        if let Some(v1) = self.v1().await? {
            return v1.read(version).await;
        }
        match version {
            None => self.read_at(None).await,
            Some(StoreVersion::Kv(n)) => self.read_at(Some(*n)).await,
            // A version id from another store: never read "current" instead.
            Some(other) => Err(self.not_a_number(other)),
        }
    }

    async fn promote_any(&self, pending: &SecretJson, base: Option<&StoreVersion>) -> Result<StoreVersion, StoreError> {
        match self.v1().await? {
            Some(v1) => v1.promote(pending, base).await,
            None => self.write(pending, base).await,
        }
    }

    fn error(&self, action: &'static str, source: VaultError) -> StoreError {
        StoreError::Vault { action, location: self.location.to_string(), source }
    }

    fn not_a_number(&self, version: &StoreVersion) -> StoreError {
        StoreError::Refused {
            location: self.location.to_string(),
            message: format!("version `{version}` is not a KV version number"),
        }
    }

    async fn read_at(&self, version: Option<u64>) -> Result<Option<Stored>, StoreError> {
        let (mount, path) = (&self.location.mount, &self.location.path);
        let found = match version {
            None => self.vault.kv_read(mount, path).await,
            Some(v) => self.vault.kv_read_version(mount, path, Some(v)).await,
        };
        let found = found.map_err(|e| self.error("reading", e))?;
        Ok(found.map(|s| Stored { data: s.data, version: s.version.map(StoreVersion::Kv) }))
    }

    async fn write(&self, pending: &SecretJson, base: Option<&StoreVersion>) -> Result<StoreVersion, StoreError> {
        let expected = match base {
            None => 0,
            Some(StoreVersion::Kv(n)) => *n,
            Some(other) => return Err(self.not_a_number(other)),
        };
        let (mount, path) = (&self.location.mount, &self.location.path);
        match self.vault.kv_write(mount, path, pending, Some(expected)).await {
            Ok(v) => Ok(StoreVersion::Kv(v)),
            Err(VaultError::CasMismatch { .. }) => {
                // Either we wrote it before a crash, or someone else wrote.
                let now = self.read_at(None).await?;
                match now {
                    Some(cur) if cur.data.fields() == pending.fields() => {
                        Ok(cur.version.unwrap_or(StoreVersion::Kv(expected + 1)))
                    }
                    other => Err(StoreError::Conflict {
                        location: self.location.to_string(),
                        expected: base.cloned(),
                        found: other.and_then(|c| c.version),
                    }),
                }
            }
            Err(e) => Err(self.error("promoting", e)),
        }
    }
}

impl SecretStore for KvStore {
    fn location(&self) -> String {
        self.location.to_string()
    }

    fn read<'a>(&'a self, version: Option<&'a StoreVersion>) -> BoxFuture<'a, Result<Option<Stored>, StoreError>> {
        self.read_any(version).boxed()
    }

    fn stage<'a>(&'a self, _rotation: &'a str, _pending: &'a SecretJson) -> BoxFuture<'a, Result<(), StoreError>> {
        // The state record holds PENDING; nothing to write here.
        futures_util::future::ready(Ok(())).boxed()
    }

    fn promote<'a>(
        &'a self,
        _rotation: &'a str,
        pending: &'a SecretJson,
        base: Option<&'a StoreVersion>,
    ) -> BoxFuture<'a, Result<StoreVersion, StoreError>> {
        self.promote_any(pending, base).boxed()
    }

    fn unstage<'a>(&'a self, _rotation: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        // Clearing the state record's PENDING is the protocol's final write.
        futures_util::future::ready(Ok(())).boxed()
    }
}
