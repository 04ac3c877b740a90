//! The world a harness run happens in: the dev server, a root Vault client,
//! the loaded plugin, the job every check builds on, and the ways checks
//! look at state without ever holding on to a value.
//!
//! State is compared by fingerprint (a sha256 of the canonical JSON), so a
//! check can say "differs" or "unchanged" and the values themselves go no
//! further than the function that read them.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use secrecy::SecretString;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::runtime::Handle;

use super::progress::Compiling;
use super::report::{CallRecord, Environment, PluginSummary, other_grants};
use super::{Harness, HarnessError, postgres};
use rotator_core::config::{JobConfig, PluginRef, SecretLocation, SqlConnection, SqlConnections, SqlCredentials};
use rotator_core::plugin::{
    CurrentSecret, Grants, HostCall, HttpBridge, Plugin, RunConfig, RunLimits, Runtime, RuntimeOptions, StepContext,
    VaultBridge, read_builtin, read_file,
};
use rotator_core::rotation::Job;
use rotator_core::secret::SecretJson;
use rotator_core::state::StateStore;
use rotator_core::vault::{VaultClient, VaultError, VaultOptions};
use rotator_devserver::{DevServer, DevServerOptions};

/// Where the harness keeps job state records, away from anything a plugin
/// is likely to use.
const STATE_PREFIX: &str = "rotator-harness/state";

/// What a root read of a path shows, reduced to a fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Observed {
    /// The data's sha256 (for KV v2, of the secret's fields only, not of
    /// its metadata, which changes with every write).
    Value([u8; 32]),
    /// The read failed, with Vault's status if it answered.
    Unreadable(Option<u16>),
}

/// The job's secret: its version and a fingerprint of its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SecretState {
    pub version: Option<u64>,
    pub fingerprint: Option<[u8; 32]>,
}

/// sha256 of a secret's fields as canonical JSON.
pub(super) fn fingerprint(secret: &SecretJson) -> [u8; 32] {
    digest(&Value::Object(secret.fields()))
}

fn digest(value: &Value) -> [u8; 32] {
    // serde_json's map is ordered, so equal data gives equal text.
    Sha256::digest(value.to_string().as_bytes()).into()
}

/// One harness run's world.
pub(super) struct Env {
    pub server: DevServer,
    /// A client with the dev server's root token.
    pub vault: VaultClient,
    pub store: StateStore,
    pub plugin: Plugin,
    plugin_ref: PluginRef,
    pub settings: Value,
    pub grants: Arc<Grants>,
    pub secret: SecretLocation,
    limits: RunLimits,
    postgres: Option<String>,
    /// The connections the `sql` import reaches (those the grants name).
    sql: Arc<SqlConnections>,
    /// Every host call any run made, for the capabilities check.
    calls: Mutex<Vec<CallRecord>>,
    /// Owns the epoch ticker that enforces step deadlines.
    _runtime: Arc<Runtime>,
}

impl Env {
    /// Load and check the plugin, start the dev server, prepare it.
    pub async fn start(h: Harness) -> Result<Self, HarnessError> {
        let options = RuntimeOptions { max_concurrent_runs: 8, ..RuntimeOptions::default() };
        let runtime = Runtime::new(options)?;
        let (origin, bytes) = match &h.plugin {
            PluginRef::Builtin(name) => read_builtin(name)?,
            PluginRef::File(path) => read_file(path)?,
        };
        // Only for what will compile: not for a file that is not wasm at all.
        let compiles = h.progress && bytes.starts_with(b"\0asm") && !runtime.is_compiled(&bytes);
        let shown = compiles.then(|| Compiling::start(&origin, bytes.len()));
        let plugin = runtime.load(&origin, &bytes, None);
        if let Some(shown) = shown {
            shown.done(plugin.is_ok());
        }
        let plugin = plugin?;
        let plugin_ref = h.plugin.clone();
        let problems = plugin.validate_settings(&h.settings);
        if !problems.is_empty() {
            let shown = problems.into_iter().map(|p| format!("settings{}: {}", p.pointer.replace('/', "."), p.message));
            return Err(HarnessError::Settings(shown.collect()));
        }
        let setting = |key: &str| h.settings.get(key).and_then(|c| c.as_str());
        let declared = Grants::from_capabilities(&plugin.info().capabilities, setting("connection"), setting("url"));
        let grants = match h.grants.clone() {
            Some(vault) => Grants { vault, ..declared },
            None => declared,
        };
        for g in &grants.vault {
            g.validate().map_err(|e| HarnessError::Grant(e.into()))?;
        }

        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let server = DevServer::start(DevServerOptions { addr, ..DevServerOptions::default() }).await?;
        let token = SecretString::from(server.root_token().to_owned());
        let vault = VaultClient::new(VaultOptions::new(server.url(), token))
            .map_err(|source| HarnessError::Vault { action: "connecting to the dev server".into(), source })?;
        let postgres = match &h.postgres_url {
            Some(url) => Some(postgres::mount_database(&vault, url).await?),
            None => None,
        };
        if let Some(setup) = h.setup {
            setup(vault.clone()).await.map_err(HarnessError::Setup)?;
        }
        let initial = h.initial_secret.as_ref().map(|data| (&h.secret, data, "the initial secret"));
        let seeds = h.seeds.iter().map(|(at, data)| (at, data, "a seeded secret"));
        for (at, data, what) in initial.into_iter().chain(seeds) {
            vault
                .kv_write(&at.mount, &at.path, data, None)
                .await
                .map_err(|source| HarnessError::Vault { action: format!("writing {what} to {at}"), source })?;
        }
        Ok(Self {
            store: StateStore::new(vault.clone(), "secret", STATE_PREFIX),
            server,
            vault,
            plugin,
            plugin_ref,
            settings: h.settings,
            grants: Arc::new(grants),
            secret: h.secret,
            limits: h.limits,
            postgres,
            sql: Arc::new(h.sql),
            calls: Mutex::new(Vec::new()),
            _runtime: runtime,
        })
    }

    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }

    /// A job as the daemon would build it from config, with id `id`.
    pub fn job(&self, id: &str) -> Job {
        let (plugin, secret) = (self.plugin_ref.clone(), Some(self.secret.clone().into()));
        let config = JobConfig::unscheduled(id.to_owned(), plugin, secret, self.settings.clone(), self.grants.clone());
        let config = JobConfig { limits: self.limits, sql: self.sql.clone(), ..config };
        Job { config, plugin: self.plugin.clone() }
    }

    /// What a plugin run gets: the job's limits and grants, the root client.
    pub fn run_config(&self) -> RunConfig {
        RunConfig {
            limits: self.limits,
            grants: self.grants.clone(),
            vault: Some(VaultBridge { client: self.vault.clone(), handle: Handle::current() }),
            sql: self.sql.clone(),
            http: (!self.grants.http.is_empty()).then(HttpBridge::current),
            // As a job of this plugin would be run: its own preference.
            access: self.job("harness").access(),
            public: self.job("harness").public_fields(),
        }
    }

    /// The context of every step of rotation `rotation_id` of job `job`.
    pub fn context(&self, job: &str, rotation_id: &str, current: Option<CurrentSecret>) -> StepContext {
        StepContext {
            job_id: job.to_owned(),
            rotation_id: rotation_id.to_owned(),
            settings: self.settings.clone(),
            current,
            attempt: 1,
        }
    }

    /// The job's secret as the host reads it before a rotation.
    pub async fn read_current(&self) -> Result<Option<CurrentSecret>, VaultError> {
        let found = self.vault.kv_read(&self.secret.mount, &self.secret.path).await?;
        Ok(found.map(|s| CurrentSecret { data: s.data, version: s.version }))
    }

    /// The host's promotion: write `pending` as the secret's next version,
    /// with check-and-set against `base`.
    pub async fn promote(&self, pending: &SecretJson, base: Option<u64>) -> Result<u64, VaultError> {
        self.vault.kv_write(&self.secret.mount, &self.secret.path, pending, Some(base.unwrap_or(0))).await
    }

    pub async fn secret_state(&self) -> Result<SecretState, VaultError> {
        let found = self.read_current().await?;
        Ok(SecretState {
            version: found.as_ref().and_then(|s| s.version),
            fingerprint: found.as_ref().map(|s| fingerprint(&s.data)),
        })
    }

    /// What a root `GET` of `path` shows.
    pub async fn observe(&self, path: &str) -> Observed {
        match self.vault.request("GET", path, None).await {
            Ok(resp) => {
                let data = resp.body.as_ref().and_then(|b| b.get("data")).cloned().unwrap_or(Value::Null);
                let kv2 = data.get("metadata").is_some();
                Observed::Value(digest(if kv2 { data.get("data").unwrap_or(&Value::Null) } else { &data }))
            }
            Err(e) => Observed::Unreadable(e.status()),
        }
    }

    /// [`Env::observe`] for each path.
    pub async fn observe_all(&self, paths: &[String]) -> BTreeMap<String, Observed> {
        let mut out = BTreeMap::new();
        for p in paths {
            out.insert(p.clone(), self.observe(p).await);
        }
        out
    }

    /// Remember host calls for the capabilities check.
    pub fn note_calls<'a>(&self, calls: impl IntoIterator<Item = &'a CallRecord>) {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).extend(calls.into_iter().cloned());
    }

    /// Remember the host calls a whole rotation reported.
    pub fn note_host_calls(&self, calls: &[HostCall]) {
        let records: Vec<CallRecord> = calls.iter().map(CallRecord::from).collect();
        self.note_calls(&records);
    }

    /// What the plugin declares, as grants.
    pub fn declared(&self) -> Grants {
        let setting = |key: &str| self.settings.get(key).and_then(|c| c.as_str());
        Grants::from_capabilities(&self.plugin.info().capabilities, setting("connection"), setting("url"))
    }

    pub fn calls(&self) -> Vec<CallRecord> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn summary(&self) -> PluginSummary {
        PluginSummary {
            label: self.plugin.label(),
            origin: self.plugin.origin().to_owned(),
            sha256: self.plugin.sha256().to_owned(),
            capabilities: self.declared().vault,
            others: other_grants(&self.declared()),
        }
    }

    pub fn environment(&self) -> Environment {
        Environment {
            vault: self.server.url(),
            secret: self.secret.to_string(),
            grants: self.grants.vault.clone(),
            other_grants: other_grants(&self.grants),
            sql: self.sql.values().map(shown_connection).collect(),
            postgres: self.postgres.clone(),
        }
    }
}

/// A connection for the report: its name, URL (checked to hold no
/// credentials) and where the admin's credentials come from.
fn shown_connection(c: &SqlConnection) -> String {
    let admin = match &c.credentials {
        SqlCredentials::Env { username, password } => format!("${username}/${password}"),
        SqlCredentials::Vault(at) => format!("{}/{}", at.mount, at.path),
    };
    format!("{} → {} (admin from {admin})", c.name, c.url)
}

/// The paths of the calls in `calls` that changed something (successful
/// writes and deletes), each once, in order.
pub(super) fn written_paths(calls: &[CallRecord]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in calls {
        if matches!(c.operation.as_str(), "write" | "delete") && c.outcome == "ok" && !out.contains(&c.target) {
            out.push(c.target.clone());
        }
    }
    out
}
