//! [`StateStore`]: where the job state records are, read and written with
//! check-and-set, and the clients a rotation reaches its secret's store
//! with. Records live in Vault KV v2 (the default) or, for a deployment
//! without Vault, in AWS Secrets Manager ([`super::secrets_manager`]).

use super::secrets_manager::SmRecords;
use std::sync::Arc;

use super::cache::RecordCache;
use super::{Guard, JobState, RecordError};
use crate::aws::{AwsClient, AwsError};
use crate::secret::SecretJson;
use crate::store::kv::KvStore;
use crate::store::kv1::FingerprintKey;
use crate::store::secrets_manager::SecretsManagerStore;
use crate::store::{SecretAt, SecretStore, StoreError, StoreVersion};
use crate::vault::{VaultClient, VaultError};

/// Where job states live, and the clients a rotation reaches its secret's
/// store with: Vault for KV secrets, AWS for Secrets Manager ones. Either
/// may be absent (a deployment without Vault, or one that never names AWS).
#[derive(Debug, Clone)]
pub struct StateStore {
    /// For jobs whose secret lives in Vault KV; `None` without Vault.
    pub vault: Option<VaultClient>,
    /// For jobs whose secret lives in AWS Secrets Manager.
    pub aws: Option<AwsClient>,
    records: Records,
    /// The definitions of jobs added through the API, beside the records
    /// (`<prefix>/_jobs/<id>`; `_` starts no job id), so they survive a
    /// restart and every daemon on the same store sees them.
    definitions: Records,
    /// The versions consumers said they use (`<prefix>/_adopted/<job>`), for
    /// jobs with an `adoption = { ack = true }` gate.
    acks: Records,
    /// With replicas: whether this process owns a job right now (every
    /// record write and target step asks; see [`super::fence`]).
    guard: Option<Arc<dyn Guard>>,
    /// The idle records this process last read or wrote, shared by every
    /// clone (see [`super::cache`] for why check-and-set makes it safe).
    cache: Arc<RecordCache>,
}

#[derive(Debug, Clone)]
enum Records {
    /// `<mount>/<prefix>/<job>` in KV v2.
    Vault { client: VaultClient, mount: String, prefix: String },
    /// The secret `<prefix><job>` in Secrets Manager.
    SecretsManager(SmRecords),
}

/// A state record and the version it was read at (`None`: no record yet,
/// so the next write must create it).
#[derive(Debug, Clone, Default)]
pub struct Versioned {
    pub state: JobState,
    pub version: Option<StoreVersion>,
}

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state of job `{job}` at {location}: {source}")]
    Vault { job: String, location: String, source: VaultError },
    #[error("state of job `{job}` at {location}: {source}")]
    Aws { job: String, location: String, source: Box<AwsError> },
    /// Another writer wrote the record since it was read (Secrets Manager;
    /// Vault's own check-and-set answer is a [`StateError::Vault`]).
    #[error("state of job `{job}` at {location}: written by someone else since it was read")]
    Conflict { job: String, location: String },
    #[error("state of job `{job}` at {location}: {source}")]
    Corrupt { job: String, location: String, source: RecordError },
    /// This replica does not own the job (any more): nothing was written.
    #[error("job `{job}`: not written by this replica: {why}")]
    Fenced { job: String, why: super::Fenced },
}

impl StateError {
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Vault { source, .. } => source.is_transient(),
            Self::Aws { source, .. } => source.is_transient(),
            Self::Conflict { .. } | Self::Corrupt { .. } | Self::Fenced { .. } => false,
        }
    }

    /// Someone else wrote the record since we read it.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Vault { source: VaultError::CasMismatch { .. }, .. } | Self::Conflict { .. })
    }

    /// This replica lost (or never had) the job: it must stop, write
    /// nothing and touch nothing; the owner carries on.
    pub fn is_fenced(&self) -> bool {
        matches!(self, Self::Fenced { .. })
    }
}

impl StateStore {
    /// Records in Vault KV v2 at `<mount>/<prefix>/<job>`; KV secrets
    /// through the same client.
    pub fn new(vault: VaultClient, mount: impl Into<String>, prefix: impl Into<String>) -> Self {
        let (mount, prefix): (String, String) = (mount.into(), prefix.into());
        let definitions = Records::Vault {
            client: vault.clone(),
            mount: mount.clone(),
            prefix: format!("{}/_jobs", prefix.trim_matches('/')),
        };
        let acks = Records::Vault {
            client: vault.clone(),
            mount: mount.clone(),
            prefix: format!("{}/_adopted", prefix.trim_matches('/')),
        };
        let records = Records::Vault { client: vault.clone(), mount, prefix };
        Self { vault: Some(vault), aws: None, records, definitions, acks, guard: None, cache: Arc::default() }
    }

    /// Records as secrets `<prefix><job>` in Secrets Manager in `region`,
    /// for a deployment without Vault; secrets in AWS through `aws`.
    pub fn in_secrets_manager(aws: AwsClient, prefix: impl Into<String>, region: impl Into<String>) -> Self {
        let (prefix, region): (String, String) = (prefix.into(), region.into());
        let definitions =
            Records::SecretsManager(SmRecords::new(aws.clone(), format!("{prefix}_jobs/"), region.clone()));
        let acks = Records::SecretsManager(SmRecords::new(aws.clone(), format!("{prefix}_adopted/"), region.clone()));
        let records = Records::SecretsManager(SmRecords::new(aws.clone(), prefix, region));
        Self { vault: None, aws: Some(aws), records, definitions, acks, guard: None, cache: Arc::default() }
    }

    /// The same, reaching AWS with `aws` for jobs whose secret is there.
    pub fn with_aws(mut self, aws: AwsClient) -> Self {
        self.aws = Some(aws);
        self
    }

    /// The same, reaching Vault with `vault` for jobs whose secret is in KV.
    pub fn with_vault(mut self, vault: VaultClient) -> Self {
        self.vault = Some(vault);
        self
    }

    /// The same, asking `guard` before every record write and target step
    /// (replicas sharing the jobs).
    pub fn with_guard(mut self, guard: Arc<dyn Guard>) -> Self {
        self.guard = Some(guard);
        self
    }

    /// The same with no guard: for one-off rotations that no replica owns.
    pub fn without_guard(&self) -> Self {
        Self { guard: None, ..self.clone() }
    }

    /// May this process act on `job` now, under ownership `epoch` (the one
    /// a rotation started under; `None`: any)? Always, without replicas.
    /// A rotation whose job moved away and back is fenced too: what it
    /// holds in memory may be stale.
    // The store's own error type, as every method here returns; called once
    // per step, never in a hot loop.
    #[allow(clippy::result_large_err)]
    pub fn check_owner(&self, job: &str, epoch: Option<u64>) -> Result<(), StateError> {
        let Some(g) = &self.guard else { return Ok(()) };
        let fenced = |why| StateError::Fenced { job: job.into(), why };
        let now = g.check(job).map_err(fenced)?;
        match epoch {
            Some(e) if e != now.epoch => Err(fenced(super::Fenced(format!(
                "ownership of job `{job}` changed since the rotation started (epoch {e}, now {})",
                now.epoch
            )))),
            _ => Ok(()),
        }
    }

    /// This replica's fence for `job`, when replicas share the jobs and it
    /// owns the job.
    pub fn fence(&self, job: &str) -> Option<super::Fence> {
        self.guard.as_ref()?.check(job).ok()
    }

    /// The store of a job's secret at `at`.
    pub fn secret_store(&self, at: &SecretAt) -> Result<Box<dyn SecretStore>, StoreError> {
        let refused = |message: String| StoreError::Refused { location: at.to_string(), message };
        match at {
            SecretAt::Kv(loc) => match &self.vault {
                Some(vault) => {
                    let store = KvStore::new(vault.clone(), loc.clone());
                    // KV v1 secrets: their fingerprint key lives beside the records.
                    Ok(Box::new(match &self.records {
                        Records::Vault { client, mount, prefix } => {
                            store.with_fingerprint_key(FingerprintKey::beside_state(client.clone(), mount, prefix))
                        }
                        Records::SecretsManager(_) => store,
                    }))
                }
                None => Err(refused("this daemon runs without Vault (no [vault] section)".into())),
            },
            SecretAt::Aws(id) => {
                let Some(aws) = &self.aws else {
                    return Err(refused("this daemon has no AWS client (no job of its config names AWS)".into()));
                };
                let region = crate::aws::credentials::region(aws.env(), id.region.as_deref())
                    .map_err(|e| refused(e.to_string()))?;
                Ok(Box::new(SecretsManagerStore::new(aws.clone(), id, region)))
            }
        }
    }

    /// Where `job`'s record is, for messages.
    pub fn location(&self, job: &str) -> String {
        match &self.records {
            Records::Vault { mount, prefix, .. } => {
                format!("{}/{}/{job}", mount.trim_matches('/'), prefix.trim_matches('/'))
            }
            Records::SecretsManager(sm) => sm.location(job),
        }
    }

    /// Where the records are, for messages.
    pub fn describe(&self) -> String {
        match &self.records {
            Records::Vault { mount, prefix, .. } => format!("{}/{}", mount.trim_matches('/'), prefix.trim_matches('/')),
            Records::SecretsManager(sm) => sm.location(""),
        }
    }

    /// The job's record, or an empty one (no version) if it has none, as
    /// the store has it now.
    pub async fn load(&self, job: &str) -> Result<Versioned, StateError> {
        let epoch = self.epoch(job);
        if epoch.is_none() {
            self.cache.forget(job);
        }
        let Some((text, version)) = self.read_raw(&self.records, job).await? else {
            self.cache.forget(job);
            return Ok(Versioned::default());
        };
        let state = JobState::from_secret(&text).map_err(|source| StateError::Corrupt {
            job: job.into(),
            location: self.location(job),
            source,
        })?;
        let v = Versioned { state, version: Some(version) };
        if let Some(epoch) = epoch {
            self.cache.put(job, &v, epoch);
        }
        Ok(v)
    }

    /// The job's record as this process last read or wrote it, when that
    /// was an idle record under the current ownership; else as
    /// [`Self::load`]. `true` with a kept record: a write based on it may
    /// meet a conflict that a fresh read would not have (see
    /// [`super::cache`]), and the caller should read afresh then.
    pub async fn load_kept(&self, job: &str) -> Result<(Versioned, bool), StateError> {
        match self.epoch(job).and_then(|epoch| self.cache.get(job, epoch)) {
            Some(v) => Ok((v, true)),
            None => Ok((self.load(job).await?, false)),
        }
    }

    /// The ownership epoch records of `job` are kept under: `Some(None)`
    /// without replicas, `None` (keep nothing) when this replica does not
    /// own the job.
    fn epoch(&self, job: &str) -> Option<Option<u64>> {
        match &self.guard {
            None => Some(None),
            Some(g) => g.check(job).ok().map(|f| Some(f.epoch)),
        }
    }

    /// The text at `job` in `records` and its version, if there is one.
    async fn read_raw(&self, records: &Records, job: &str) -> Result<Option<(SecretJson, StoreVersion)>, StateError> {
        Ok(Some(match records {
            Records::Vault { client, mount, prefix } => {
                let found = client.kv_read(mount, &kv_path(prefix, job)).await.map_err(|e| self.vault_error(job, e))?;
                let Some(secret) = found else { return Ok(None) };
                let version = secret.version.unwrap_or(0);
                (secret.data, StoreVersion::Kv(version))
            }
            Records::SecretsManager(sm) => {
                let Some((text, id)) = sm.read(job).await.map_err(|e| self.aws_error(job, e))? else {
                    return Ok(None);
                };
                (text, StoreVersion::Id(id))
            }
        }))
    }

    /// Write `v.state` if the record is still at `v.version`, and move
    /// `v.version` on.
    /// With replicas, the write carries this replica's fence and is refused
    /// (nothing written) if the replica does not own the job or the record
    /// read is from a newer ownership epoch.
    pub async fn save(&self, job: &str, v: &mut Versioned) -> Result<(), StateError> {
        let mut epoch = None;
        if let Some(guard) = &self.guard {
            let fenced = |why| StateError::Fenced { job: job.into(), why };
            let mine = guard.check(job).map_err(fenced)?;
            epoch = Some(mine.epoch);
            v.state.fence = Some(super::admit(v.state.fence.as_ref(), mine).map_err(fenced)?);
        }
        match self.write_raw(&self.records, job, &v.state.to_secret(), v.version.as_ref()).await {
            Ok(version) => {
                v.version = Some(version);
                self.cache.put(job, v, epoch);
                Ok(())
            }
            Err(e) => {
                // Written or not, its version is unknown now.
                self.cache.forget(job);
                Err(e)
            }
        }
    }

    /// Write `data` at `job` in `records` if it is still at `expected`.
    async fn write_raw(
        &self,
        records: &Records,
        job: &str,
        data: &SecretJson,
        expected: Option<&StoreVersion>,
    ) -> Result<StoreVersion, StateError> {
        Ok(match records {
            Records::Vault { client, mount, prefix } => {
                let cas = match expected {
                    None => 0,
                    Some(StoreVersion::Kv(n)) => *n,
                    Some(StoreVersion::Id(_)) => return Err(self.conflict(job)),
                };
                let written = client.kv_write(mount, &kv_path(prefix, job), data, Some(cas)).await;
                StoreVersion::Kv(written.map_err(|e| self.vault_error(job, e))?)
            }
            Records::SecretsManager(sm) => {
                let expected = match expected {
                    None => None,
                    Some(StoreVersion::Id(id)) => Some(id.as_str()),
                    Some(StoreVersion::Kv(_)) => return Err(self.conflict(job)),
                };
                match sm.write(job, data, expected).await.map_err(|e| self.aws_error(job, e))? {
                    Some(id) => StoreVersion::Id(id),
                    None => return Err(self.conflict(job)),
                }
            }
        })
    }

    /// Keep the definition of a job added through the API (a JSON object
    /// of job fields), replacing an earlier one of that id.
    pub async fn save_definition(&self, job: &str, definition: &serde_json::Value) -> Result<(), StateError> {
        self.replace(&self.definitions, job, definition).await
    }

    /// Note that `job`'s consumers use `version` (its adoption gate).
    pub async fn save_adoption(&self, job: &str, version: &str) -> Result<(), StateError> {
        self.replace(&self.acks, job, &serde_json::json!({ "version": version })).await
    }

    /// The version `job`'s consumers last said they use, if any.
    pub async fn adoption(&self, job: &str) -> Result<Option<String>, StateError> {
        let Some((text, _)) = self.read_raw(&self.acks, job).await? else { return Ok(None) };
        let value: serde_json::Value = serde_json::from_str(text.expose()).unwrap_or_default();
        Ok(value["version"].as_str().map(str::to_owned))
    }

    /// Write `value` at `job` in `records`, whatever is there.
    async fn replace(&self, records: &Records, job: &str, value: &serde_json::Value) -> Result<(), StateError> {
        let data = SecretJson::new(value.to_string());
        for _ in 0..3 {
            let current = self.read_raw(records, job).await?.map(|(_, v)| v);
            match self.write_raw(records, job, &data, current.as_ref()).await {
                Err(e) if e.is_conflict() => continue,
                other => return other.map(drop),
            }
        }
        Err(self.conflict(job))
    }

    /// Forget a job's definition (its state record stays, as for any job).
    pub async fn delete_definition(&self, job: &str) -> Result<(), StateError> {
        match &self.definitions {
            Records::Vault { client, mount, prefix } => {
                let path = format!("{}/metadata/{}", mount.trim_matches('/'), kv_path(prefix, job));
                match client.request("DELETE", path.as_str(), None).await {
                    Err(e) if e.status() != Some(404) => Err(self.vault_error(job, e)),
                    _ => Ok(()),
                }
            }
            Records::SecretsManager(sm) => sm.delete(job).await.map_err(|e| self.aws_error(job, e)),
        }
    }

    /// Every kept definition, by job id. One that is not a JSON object is
    /// skipped with a warning (someone else wrote it).
    pub async fn definitions(&self) -> Result<Vec<(String, serde_json::Value)>, StateError> {
        let ids = match &self.definitions {
            Records::Vault { client, mount, prefix } => match client.kv_list(mount, prefix).await {
                Ok(keys) => keys.into_iter().filter(|k| !k.ends_with('/')).collect(),
                Err(e) if e.status() == Some(404) => Vec::new(),
                Err(source) => return Err(StateError::Vault { job: "*".into(), location: self.describe(), source }),
            },
            Records::SecretsManager(sm) => sm.list().await.map_err(|e| self.aws_error("*", e))?,
        };
        let mut out = Vec::new();
        for id in ids {
            let Some((text, _)) = self.read_raw(&self.definitions, &id).await? else { continue };
            match serde_json::from_str::<serde_json::Value>(text.expose()) {
                Ok(serde_json::Value::Object(mut v)) => {
                    // Secrets Manager's writes carry an id of their own.
                    v.remove("write_id");
                    out.push((id, serde_json::Value::Object(v)));
                }
                _ => tracing::warn!(job = %id, "a kept job definition is not a JSON object; skipped"),
            }
        }
        Ok(out)
    }

    /// The ids of the jobs that have a record, or `None` if listing is not
    /// allowed (Vault's 403, AWS's AccessDenied): callers fall back to the
    /// jobs they know.
    pub async fn list_jobs(&self) -> Result<Option<Vec<String>>, StateError> {
        let location = self.describe();
        match &self.records {
            Records::Vault { client, mount, prefix } => match client.kv_list(mount, prefix).await {
                // Folders (`x/`) hold no job record: job ids have no `/`.
                Ok(keys) => Ok(Some(keys.into_iter().filter(|k| !k.ends_with('/')).collect())),
                Err(e) if e.status() == Some(403) => Ok(None),
                Err(source) => Err(StateError::Vault { job: "*".into(), location, source }),
            },
            Records::SecretsManager(sm) => match sm.list().await {
                Ok(jobs) => Ok(Some(jobs)),
                Err(e) if e.code() == Some("AccessDeniedException") => Ok(None),
                Err(source) => Err(StateError::Aws { job: "*".into(), location, source: Box::new(source) }),
            },
        }
    }

    fn vault_error(&self, job: &str, source: VaultError) -> StateError {
        StateError::Vault { job: job.into(), location: self.location(job), source }
    }

    fn aws_error(&self, job: &str, source: AwsError) -> StateError {
        StateError::Aws { job: job.into(), location: self.location(job), source: Box::new(source) }
    }

    /// A version of the other kind of store: a record read elsewhere.
    fn conflict(&self, job: &str) -> StateError {
        StateError::Conflict { job: job.into(), location: self.location(job) }
    }
}

fn kv_path(prefix: &str, job: &str) -> String {
    format!("{}/{job}", prefix.trim_matches('/'))
}
