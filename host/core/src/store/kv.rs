//! A secret in Vault KV v2. KV keeps versions but has no staging labels, so
//! PENDING lives only in the job's state record (staged there by the
//! protocol's first record write, under the same Vault protection), and
//! promotion is a new version written with check-and-set against the one
//! the rotation read.

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::{SecretStore, StoreError, StoreVersion, Stored};
use crate::secret::SecretJson;
use crate::vault::kv::SecretLocation;
use crate::vault::{VaultClient, VaultError};

/// A job's secret at a KV v2 location.
pub struct KvStore {
    vault: VaultClient,
    location: SecretLocation,
}

impl KvStore {
    pub fn new(vault: VaultClient, location: SecretLocation) -> Self {
        Self { vault, location }
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
        match version {
            None => self.read_at(None).boxed(),
            Some(StoreVersion::Kv(n)) => self.read_at(Some(*n)).boxed(),
            // A version id from another store: never read "current" instead.
            Some(other) => futures_util::future::ready(Err(self.not_a_number(other))).boxed(),
        }
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
        self.write(pending, base).boxed()
    }

    fn unstage<'a>(&'a self, _rotation: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        // Clearing the state record's PENDING is the protocol's final write.
        futures_util::future::ready(Ok(())).boxed()
    }
}
