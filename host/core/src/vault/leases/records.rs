//! Tracked leases kept in Vault KV v2 beside the job state records, so a
//! restarted daemon renews the credentials its predecessor handed out.
//!
//! One record per lease at `<mount>/<prefix>/_leases/<sha256 of the lease
//! id, hex>`: the id hashed, because lease ids contain `/` and may be long,
//! and a flat folder lists in one call. A record holds the lease id, its
//! path, whether it was renewable, the increment renewals ask for, its
//! expiry and (once Vault capped a renewal) its max-TTL time, as Unix
//! seconds. Never the credential: a record leaks nothing to a reader of the
//! state mount.
//!
//! Records are written without check-and-set: each has one writer at a
//! time in practice, and two daemons writing the same lease's record write
//! the same facts (renewing a lease twice is harmless). A record read back
//! is checked before it is believed: known fields only, bounded sizes, a
//! key that is the hash of its lease id, and a lease id under its path (as
//! Vault issues them), so a record written by hand cannot point the daemon
//! at a lease of another path.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::api::MAX_TTL;
use crate::secret::SecretJson;
use crate::vault::{AsVaultPath, VaultClient, VaultError};

/// Longest lease id or path believed from a record. Vault's lease ids are
/// a path plus a 24-character id; paths are far shorter than this.
const MAX_ID_LEN: usize = 1024;

/// What is kept of a tracked lease. No credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseRecord {
    pub lease_id: String,
    pub path: String,
    pub renewable: bool,
    /// What each renewal asks for: the TTL first issued, in seconds.
    pub increment_seconds: u64,
    /// When the lease expires (as of its last renewal), Unix seconds.
    pub expires_at: u64,
    /// When it expires at the latest (known once Vault capped a renewal).
    pub max_expires_at: Option<u64>,
}

/// Why a stored record was not believed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordProblem {
    #[error("not a lease record: {0}")]
    Malformed(String),
    #[error("lease id or path longer than {MAX_ID_LEN} bytes")]
    TooLong,
    #[error("stored under a key that is not its lease id's hash")]
    WrongKey,
    #[error("the lease id is not under its path")]
    NotUnderPath,
    #[error("increment longer than ten years")]
    HugeIncrement,
}

impl LeaseRecord {
    /// The key of `lease_id`'s record: its SHA-256, hex.
    pub fn key(lease_id: &str) -> String {
        hex::encode(Sha256::digest(lease_id.as_bytes()))
    }

    /// Parse and check a record read at `key`.
    pub fn parse(key: &str, text: &str) -> Result<Self, RecordProblem> {
        let r: Self = serde_json::from_str(text).map_err(|e| RecordProblem::Malformed(e.to_string()))?;
        if r.lease_id.len() > MAX_ID_LEN || r.path.len() > MAX_ID_LEN {
            return Err(RecordProblem::TooLong);
        }
        if Self::key(&r.lease_id) != key {
            return Err(RecordProblem::WrongKey);
        }
        let under = r.lease_id.strip_prefix(r.path.as_str()).and_then(|rest| rest.strip_prefix('/'));
        if r.path.is_empty() || under.is_none_or(str::is_empty) {
            return Err(RecordProblem::NotUnderPath);
        }
        if r.increment_seconds > MAX_TTL.as_secs() {
            return Err(RecordProblem::HugeIncrement);
        }
        Ok(r)
    }
}

/// Unix seconds of `t` (0 before the epoch).
pub(super) fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// How far `at` (Unix seconds) is from now: `Ok` ahead, `Err` behind.
pub(super) fn from_now(at: u64) -> Result<Duration, Duration> {
    let at = UNIX_EPOCH + Duration::from_secs(at.min(unix(SystemTime::now()) + MAX_TTL.as_secs()));
    at.duration_since(SystemTime::now()).map_err(|e| e.duration())
}

/// Where the records are: `<mount>/<folder>/<key>` in KV v2.
#[derive(Debug, Clone)]
pub struct LeaseRecords {
    client: VaultClient,
    mount: String,
    folder: String,
}

impl LeaseRecords {
    /// Records under `<mount>/<state prefix>/_leases` (`_` starts no job id,
    /// so no job's record is there).
    pub fn beside_state(client: VaultClient, mount: &str, state_prefix: &str) -> Self {
        let folder = format!("{}/_leases", state_prefix.trim_matches('/'));
        Self { client, mount: mount.trim_matches('/').to_owned(), folder }
    }

    /// Where the records are, for messages.
    pub fn describe(&self) -> String {
        format!("{}/{}", self.mount, self.folder)
    }

    fn at(&self, key: &str) -> String {
        format!("{}/{key}", self.folder)
    }

    /// Write (or overwrite) the record of `r.lease_id`.
    pub async fn save(&self, r: &LeaseRecord) -> Result<(), VaultError> {
        let text = serde_json::to_string(r).expect("a record serialises");
        let key = LeaseRecord::key(&r.lease_id);
        self.client.kv_write(self.mount.as_str(), self.at(&key).as_str(), &SecretJson::new(text), None).await.map(drop)
    }

    /// Forget `lease_id`'s record, every version of it. Gone already is fine.
    pub async fn delete(&self, lease_id: &str) -> Result<(), VaultError> {
        let path = format!("{}/metadata/{}", self.mount, self.at(&LeaseRecord::key(lease_id)));
        match self.client.request("DELETE", path.as_str(), None).await {
            Err(e) if e.status() != Some(404) => Err(e),
            _ => Ok(()),
        }
    }

    /// At most `limit` records, each checked; the ones not believed are
    /// logged and skipped, not deleted (someone else may own them).
    pub async fn load(&self, limit: usize) -> Result<Vec<LeaseRecord>, VaultError> {
        let keys: Vec<String> = match self.client.kv_list(self.mount.as_str(), self.folder.as_str()).await {
            Ok(keys) => keys.into_iter().filter(|k| !k.ends_with('/')).collect(),
            Err(e) if e.status() == Some(404) => Vec::new(),
            Err(e) => return Err(e),
        };
        if keys.len() > limit {
            tracing::error!(
                found = keys.len(),
                limit,
                at = %self.describe(),
                "more lease records than the daemon may track; the rest are not renewed by this daemon"
            );
        }
        let mut out = Vec::new();
        for key in keys.into_iter().take(limit) {
            // A key that is not a plain name would only fail as a path.
            if key.as_str().to_vault_path().is_err() {
                tracing::warn!(key = %key, at = %self.describe(), "a lease record key is not a plain name; skipped");
                continue;
            }
            let Some(secret) = self.client.kv_read(self.mount.as_str(), self.at(&key).as_str()).await? else {
                continue;
            };
            match LeaseRecord::parse(&key, secret.data.expose()) {
                Ok(r) => out.push(r),
                Err(problem) => {
                    tracing::warn!(key = %key, at = %self.describe(), %problem, "a lease record is not believed; skipped")
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use proptest::prelude::*;
    use proptest::test_runner::{Config as Cases, RngSeed, TestRunner};

    use super::*;

    fn record(lease_id: &str, path: &str) -> LeaseRecord {
        LeaseRecord {
            lease_id: lease_id.into(),
            path: path.into(),
            renewable: true,
            increment_seconds: 3600,
            expires_at: 1_900_000_000,
            max_expires_at: None,
        }
    }

    #[test]
    fn a_record_round_trips_and_hand_written_ones_are_checked() {
        let r = record("database/creds/app/abc", "database/creds/app");
        let key = LeaseRecord::key(&r.lease_id);
        assert_eq!(LeaseRecord::parse(&key, &serde_json::to_string(&r).unwrap()), Ok(r.clone()));
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(LeaseRecord::parse(&LeaseRecord::key("other"), &text), Err(RecordProblem::WrongKey));
        let other = record("database/creds/admin/abc", "database/creds/app");
        let key = LeaseRecord::key(&other.lease_id);
        assert_eq!(LeaseRecord::parse(&key, &serde_json::to_string(&other).unwrap()), Err(RecordProblem::NotUnderPath));
        let bare = record("database/creds/app/", "database/creds/app");
        let key = LeaseRecord::key(&bare.lease_id);
        assert_eq!(LeaseRecord::parse(&key, &serde_json::to_string(&bare).unwrap()), Err(RecordProblem::NotUnderPath));
        let extra = text.replacen('{', r#"{"password":"x","#, 1);
        let key = LeaseRecord::key(&r.lease_id);
        assert!(matches!(LeaseRecord::parse(&key, &extra), Err(RecordProblem::Malformed(_))));
        let long = record(&format!("p/{}", "x".repeat(MAX_ID_LEN)), "p");
        let key = LeaseRecord::key(&long.lease_id);
        assert_eq!(LeaseRecord::parse(&key, &serde_json::to_string(&long).unwrap()), Err(RecordProblem::TooLong));
    }

    /// Whatever is stored, parsing answers and never panics; a record it
    /// believes is at its key, short, and its lease id is under its path.
    fn run_parse_property(rng_seed: RngSeed, cases: u32) {
        let (believed, refused) = (Cell::new(0u32), Cell::new(0u32));
        let config = Cases { cases, rng_seed, failure_persistence: None, ..Cases::default() };
        let ids = "[a-z]{1,3}(/[a-z]{0,3}){0,4}";
        let paths = "[a-z]{0,3}(/[a-z]{0,3}){0,2}";
        let input =
            (".{0,200}", "[0-9a-f]{0,64}", (ids, paths, "[a-z/]{0,3}", any::<bool>()), any::<u64>(), any::<bool>());
        TestRunner::new(config)
            .run(&input, |(junk, key, (id, path, suffix, nested), inc, at_key)| {
                // Half the ids are built under their path, as Vault issues them.
                let id = if nested { format!("{path}/{suffix}") } else { id };
                prop_assert!(
                    LeaseRecord::parse(&key, &junk).is_err() || serde_json::from_str::<LeaseRecord>(&junk).is_ok()
                );
                let r = LeaseRecord { increment_seconds: inc % (2 * MAX_TTL.as_secs()), ..record(&id, &path) };
                let key = if at_key { LeaseRecord::key(&id) } else { key };
                match LeaseRecord::parse(&key, &serde_json::to_string(&r).unwrap()) {
                    Ok(got) => {
                        believed.set(believed.get() + 1);
                        prop_assert_eq!(&got, &r);
                        prop_assert_eq!(LeaseRecord::key(&got.lease_id), key);
                        prop_assert!(got.lease_id.len() > got.path.len() + 1);
                        let under = format!("{}/", got.path);
                        prop_assert!(got.lease_id.starts_with(&under), "{} not under {}", got.lease_id, under);
                        prop_assert!(got.increment_seconds <= MAX_TTL.as_secs());
                    }
                    Err(_) => refused.set(refused.get() + 1),
                }
                Ok(())
            })
            .unwrap();
        // Both sides exercised, or the property proves nothing.
        assert!(
            believed.get() >= cases / 50 && refused.get() >= cases / 4,
            "believed {believed:?}, refused {refused:?}"
        );
    }

    #[test]
    fn property_stored_records_are_parsed_or_refused() {
        run_parse_property(RngSeed::Fixed(0x1ea5e), 4_000);
    }

    #[test]
    fn property_stored_records_random_seed() {
        run_parse_property(RngSeed::Random, 1_000);
    }
}
