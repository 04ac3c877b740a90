//! A secret in Vault KV version 1: one unversioned value per path, no
//! check-and-set. [`super::kv::KvStore`] hands a v1 mount (as Vault's mount
//! table says, asked once per mount) to this module.
//!
//! What v2 gives for free is rebuilt as honestly as v1 allows:
//!
//! - **Versions are fingerprints.** A value's "version" is
//!   `kv1:` + the first 128 bits of HMAC-SHA256 over its canonical JSON
//!   (sorted keys), keyed by a random key kept beside the job states
//!   ([`FingerprintKey`]). It tells values apart the way a version number
//!   tells writes apart, and it may be shown (state record, audit log, API
//!   answers) because without the key it says nothing about the value,
//!   even a weak hand-set one. Two writes of the same value share a
//!   fingerprint; the protocol never needs to tell those apart.
//! - **PENDING lives in the state record**, as for v2: staging writes
//!   nothing here.
//! - **Promotion** reads the value, checks its fingerprint is still the
//!   one the rotation read (else [`StoreError::Conflict`], nothing
//!   written), and writes PENDING. Rotator's own writers are serialised by
//!   the job's state record, which is written with check-and-set before
//!   any promotion; an outside writer is not: one that writes between the
//!   read and the write (one round trip) is overwritten. docs/architecture.md
//!   says so.
//! - **Resume** compares fingerprints: PENDING current means promoted.
//!   A v1 mount keeps no older value, so reading "the version the rotation
//!   read" answers the current value only while it still is that version.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::{StoreError, StoreVersion, Stored};
use crate::secret::SecretJson;
use crate::vault::kv::SecretLocation;
use crate::vault::{VaultClient, VaultError};

/// The prefix of a KV v1 fingerprint "version".
pub const FINGERPRINT_PREFIX: &str = "kv1:";

/// Where the fingerprint key lives: a KV v2 secret beside the job states,
/// `<prefix>/_kv1/fingerprint-key` (a folder, so it is never listed as a
/// job). Created once, with check-and-set, by whichever daemon needs it
/// first; every daemon on the same state store shares it.
#[derive(Debug, Clone)]
pub struct FingerprintKey {
    vault: VaultClient,
    mount: String,
    path: String,
}

impl FingerprintKey {
    /// The key beside the state records at `<mount>/<prefix>`.
    pub fn beside_state(vault: VaultClient, mount: &str, prefix: &str) -> Self {
        let path = format!("{}/_kv1/fingerprint-key", prefix.trim_matches('/'));
        Self { vault, mount: mount.trim_matches('/').to_owned(), path }
    }

    /// Where it is, for messages.
    pub fn location(&self) -> String {
        format!("{}/{}", self.mount, self.path)
    }

    /// The key: read, or created (32 random bytes) if there is none yet.
    pub async fn load(&self) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        for _ in 0..3 {
            if let Some(found) = self.vault.kv_read(self.mount.as_str(), self.path.as_str()).await? {
                return parse_key(&found.data).ok_or_else(|| VaultError::Protocol {
                    path: self.location(),
                    message: "the KV v1 fingerprint key is not 32 bytes of hex in field `key`".into(),
                });
            }
            let fresh = Zeroizing::new(rand::random::<[u8; 32]>().to_vec());
            let text = SecretJson::new(format!(r#"{{"key":"{}"}}"#, Zeroizing::new(hex::encode(&*fresh)).as_str()));
            match self.vault.kv_write(self.mount.as_str(), self.path.as_str(), &text, Some(0)).await {
                Ok(_) => return Ok(fresh),
                // Another daemon created it first: read theirs.
                Err(VaultError::CasMismatch { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(VaultError::Protocol { path: self.location(), message: "the fingerprint key kept changing".into() })
    }
}

fn parse_key(data: &SecretJson) -> Option<Zeroizing<Vec<u8>>> {
    let fields = data.fields();
    let bytes = Zeroizing::new(hex::decode(fields.get("key")?.as_str()?).ok()?);
    (bytes.len() == 32).then_some(bytes)
}

/// The fingerprint of `data` under `key`.
pub fn fingerprint(key: &[u8], data: &SecretJson) -> StoreVersion {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    // `fields()` is a sorted map: the same value always hashes the same.
    let canonical = Zeroizing::new(Value::Object(data.fields()).to_string());
    mac.update(canonical.as_bytes());
    let tag = mac.finalize().into_bytes();
    StoreVersion::Id(format!("{FINGERPRINT_PREFIX}{}", hex::encode(&tag[..16])))
}

/// One KV v1 secret with the fingerprint key loaded.
pub(super) struct Kv1<'a> {
    pub vault: &'a VaultClient,
    pub location: &'a SecretLocation,
    pub key: Zeroizing<Vec<u8>>,
}

impl Kv1<'_> {
    fn error(&self, action: &'static str, source: VaultError) -> StoreError {
        StoreError::Vault { action, location: self.location.to_string(), source }
    }

    async fn current(&self) -> Result<Option<Stored>, StoreError> {
        let found = self.vault.kv_read(&self.location.mount, &self.location.path).await;
        let found = found.map_err(|e| self.error("reading", e))?;
        Ok(found.map(|s| {
            let version = Some(fingerprint(&self.key, &s.data));
            Stored { data: s.data, version }
        }))
    }

    /// The current value, or the value at `version` while it is current.
    pub async fn read(&self, version: Option<&StoreVersion>) -> Result<Option<Stored>, StoreError> {
        let current = self.current().await?;
        Ok(match version {
            None => current,
            Some(v) => current.filter(|c| c.version.as_ref() == Some(v)),
        })
    }

    /// Write `pending` if the value is still the one fingerprinted `base`.
    pub async fn promote(&self, pending: &SecretJson, base: Option<&StoreVersion>) -> Result<StoreVersion, StoreError> {
        let new = fingerprint(&self.key, pending);
        let current = self.current().await?;
        let found = current.as_ref().and_then(|c| c.version.clone());
        if found.as_ref() == Some(&new) {
            // Promoted before a crash (or PENDING equals the value read).
            return Ok(new);
        }
        if found.as_ref() != base {
            return Err(StoreError::Conflict { location: self.location.to_string(), expected: base.cloned(), found });
        }
        let (mount, path) = (&self.location.mount, &self.location.path);
        self.vault.kv_write(mount, path, pending, None).await.map_err(|e| self.error("promoting", e))?;
        Ok(new)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use proptest::prelude::*;
    use proptest::test_runner::{Config as Cases, RngSeed, TestRunner};

    use super::*;

    fn json(v: &Value) -> SecretJson {
        SecretJson::new(v.to_string())
    }

    /// The fingerprint depends on the value, not on how its keys are
    /// ordered, and different values (or keys) give different ones.
    fn run_fingerprint_property(rng_seed: RngSeed, cases: u32) {
        let differed = Cell::new(0u32);
        let config = Cases { cases, rng_seed, failure_persistence: None, ..Cases::default() };
        let fields = prop::collection::btree_map("[a-z]{1,6}", "[ -~]{0,12}", 1..6);
        TestRunner::new(config)
            .run(&(fields.clone(), fields, any::<[u8; 32]>()), |(a, b, key)| {
                let forward: serde_json::Map<String, Value> =
                    a.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect();
                let backward = format!(
                    "{{{}}}",
                    a.iter()
                        .rev()
                        .map(|(k, v)| format!("{}:{}", Value::from(k.as_str()), Value::from(v.as_str())))
                        .collect::<Vec<_>>()
                        .join(",")
                );
                let one = fingerprint(&key, &json(&Value::Object(forward.clone())));
                prop_assert_eq!(&one, &fingerprint(&key, &SecretJson::new(backward)));
                let StoreVersion::Id(text) = &one else { panic!("a fingerprint is an id") };
                prop_assert!(text.starts_with(FINGERPRINT_PREFIX) && text.len() == FINGERPRINT_PREFIX.len() + 32);
                let other: serde_json::Map<String, Value> =
                    b.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect();
                if other != forward {
                    differed.set(differed.get() + 1);
                    prop_assert_ne!(&one, &fingerprint(&key, &json(&Value::Object(other))));
                }
                let mut other_key = key;
                other_key[0] ^= 1;
                prop_assert_ne!(&one, &fingerprint(&other_key, &json(&Value::Object(forward))));
                Ok(())
            })
            .unwrap();
        assert!(differed.get() >= cases / 2, "only {differed:?} distinct pairs");
    }

    #[test]
    fn property_fingerprints_follow_the_value_and_the_key() {
        run_fingerprint_property(RngSeed::Fixed(0x006b_7631), 3_000);
    }

    #[test]
    fn property_fingerprints_random_seed() {
        run_fingerprint_property(RngSeed::Random, 1_000);
    }

    #[test]
    fn a_stored_key_must_be_32_bytes_of_hex() {
        let good = hex::encode([7u8; 32]);
        assert_eq!(parse_key(&json(&serde_json::json!({ "key": good }))).unwrap().len(), 32);
        for bad in
            [serde_json::json!({ "key": "zz" }), serde_json::json!({ "key": "00" }), serde_json::json!({ "k": good })]
        {
            assert!(parse_key(&json(&bad)).is_none(), "{bad}");
        }
    }
}
