//! From a checked [`Config`] to runnable parts: the Vault client and the
//! jobs with their plugins loaded. Shared by `run`, `dev`, `check` and
//! `rotate`, so every command loads and validates the same way.

use std::collections::HashMap;
use std::sync::Arc;

use secrecy::SecretString;

use rotator_core::audit::{AuditError, KeyError};
use rotator_core::aws::{AwsClient, AwsEnv};
use rotator_core::config::{
    AuthConfig, Collector, Config, ConfigErrors, Parsed, PluginRef, SecretAt, SecretRef, StateConfig, VaultConfig,
};
use rotator_core::plugin::{Plugin, Runtime, RuntimeOptions};
use rotator_core::rotation::{Job, Observer};
use rotator_core::state::StateStore;
use rotator_core::vault::{AuthMethod, TokenLease, VaultClient, VaultError, VaultOptions};

/// Who the daemon is in Vault: how it logs in and its token as of startup.
#[derive(Debug, Clone)]
pub struct Identity {
    pub method: AuthMethod,
    pub lease: TokenLease,
    /// Where relative credential files are resolved.
    pub base_dir: std::path::PathBuf,
}

impl Identity {
    /// A token that never expires and is never renewed (unit tests).
    #[cfg(test)]
    pub(crate) fn static_token() -> Self {
        let lease =
            TokenLease { ttl: std::time::Duration::ZERO, renewable: false, policies: vec![], accessor: String::new() };
        Self { method: AuthMethod::Token, lease, base_dir: ".".into() }
    }
}

/// Why the config could not be turned into parts. Each names what to fix;
/// none carries a secret value.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("no Vault address: set [vault] address or VAULT_ADDR")]
    NoVaultAddress,
    #[error("no Vault token: set [vault] token = {{ env = \"…\" }}, [vault.auth], or VAULT_TOKEN")]
    NoVaultToken,
    /// The configured token reference could not be read (names the source).
    #[error("vault token: {0}")]
    VaultToken(String),
    #[error("{0}")]
    VaultClient(#[source] VaultError),
    #[error("vault login ({method}): {source}")]
    Login { method: &'static str, source: VaultError },
    #[error("checking the vault token: {0}")]
    TokenLookup(#[source] VaultError),
    #[error("plugin runtime: {0}")]
    Runtime(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("{0}")]
    AuditKey(#[from] KeyError),
    #[error("{0}")]
    AuditLog(#[from] AuditError),
    /// A job's secret or the state records are in AWS and the AWS chain
    /// gave no client (`what`: "job `x`" or "the state records").
    #[error("AWS (for {what}): {source}")]
    Aws { what: String, source: rotator_core::aws::AwsError },
    /// The records are in Vault but there is no Vault client (a caller
    /// built the config by hand).
    #[error("the state records are in Vault, but this config has no Vault")]
    NoVault,
}

/// Overrides for the `[vault]` section (used by `rotator dev`).
#[derive(Default)]
pub struct VaultOverride {
    pub address: Option<String>,
    pub token: Option<SecretString>,
}

/// Build the Vault client: config first, then `VAULT_ADDR`, `VAULT_TOKEN`
/// and `VAULT_NAMESPACE`, like Vault's own tools. `None` for a config that
/// runs without Vault, unless `over` names an address (`rotator dev`).
pub fn vault_client(config: &Config, over: VaultOverride) -> Result<Option<VaultClient>, SetupError> {
    let default = VaultConfig::default();
    let v = match (&config.vault, &over.address) {
        (Some(v), _) => v,
        (None, Some(_)) => &default,
        (None, None) => return Ok(None),
    };
    let address = over
        .address
        .or_else(|| v.address.clone())
        .or_else(|| std::env::var("VAULT_ADDR").ok())
        .ok_or(SetupError::NoVaultAddress)?;
    let token = match (over.token, &v.token) {
        (Some(t), _) => t,
        (None, Some(r)) => r.resolve(&config.base_dir).map_err(|e| SetupError::VaultToken(e.to_string()))?,
        // An auth method logs in before the first request.
        (None, None) if v.auth.is_some() => SecretString::from(String::new()),
        (None, None) => std::env::var("VAULT_TOKEN").map(SecretString::from).map_err(|_| SetupError::NoVaultToken)?,
    };
    let namespace = v.namespace.clone().or_else(|| std::env::var("VAULT_NAMESPACE").ok());
    let ca_cert = v.ca_cert.clone().or_else(|| std::env::var_os("VAULT_CACERT").map(Into::into));
    let options = VaultOptions { namespace, timeout: v.timeout, ca_cert, ..VaultOptions::new(address, token) };
    VaultClient::new(options).map(Some).map_err(SetupError::VaultClient)
}

/// The auth method the config asks for (the plain token if none; a token
/// from a file is read again when it can no longer be renewed).
pub fn auth_method(config: &Config) -> AuthMethod {
    let vault = config.vault.clone().unwrap_or_default();
    match vault.auth {
        None => match &vault.token {
            Some(SecretRef::File(path)) => AuthMethod::TokenFile(path.clone()),
            _ => AuthMethod::Token,
        },
        Some(AuthConfig::Approle { mount, role_id, secret_id }) => AuthMethod::AppRole { mount, role_id, secret_id },
        Some(AuthConfig::Kubernetes { mount, role, jwt_path }) => AuthMethod::Kubernetes { mount, role, jwt_path },
        Some(AuthConfig::Jwt { mount, role, jwt }) => AuthMethod::Jwt { mount, role, jwt },
        Some(AuthConfig::Userpass { mount, username, password }) => AuthMethod::UserPass { mount, username, password },
    }
}

/// Log in (or, for a plain token, look it up) so the daemon knows its
/// token's TTL before it starts renewing.
pub async fn identity(config: &Config, client: &VaultClient) -> Result<Identity, SetupError> {
    let method = auth_method(config);
    let lease = match method.login(client, &config.base_dir).await {
        Ok(Some(lease)) => lease,
        Ok(None) => client.lookup_self().await.map_err(SetupError::TokenLookup)?,
        Err(source) => return Err(SetupError::Login { method: method.name(), source }),
    };
    Ok(Identity { method, lease, base_dir: config.base_dir.clone() })
}

/// The plugin runtime sized and cached as the config says.
pub fn runtime(config: &Config) -> Result<Arc<Runtime>, SetupError> {
    let mut options = RuntimeOptions {
        // Room for every concurrent rotation plus `describe` during reloads.
        max_concurrent_runs: config.daemon.max_concurrent_rotations.saturating_mul(2).max(8),
        ..RuntimeOptions::default()
    };
    if let Some(dir) = &config.daemon.cache_dir {
        options.cache_dir = Some(config.base_dir.join(dir));
    }
    Runtime::new(options).map_err(|e| SetupError::Runtime(e.into()))
}

/// Load every job's plugin (each distinct plugin once) and check each job's
/// settings against its plugin's schema. All problems are reported at once,
/// located in the config file.
pub fn load_jobs(config: &Config, runtime: &Arc<Runtime>) -> Result<Vec<Job>, ConfigErrors> {
    let mut c = config.collector();
    let jobs = load_jobs_into(config, runtime, &mut c);
    c.finish()?;
    Ok(jobs)
}

/// What `rotator check` does: the jobs that parsed get their plugins loaded
/// and their settings checked even when other parts of the file are wrong,
/// and every problem (parse, plugin, schema) comes back in one report, in
/// file order.
pub fn check(parsed: Parsed, runtime: &Arc<Runtime>) -> Result<Vec<Job>, ConfigErrors> {
    let Parsed { config, mut problems } = parsed;
    let jobs = load_jobs_into(&config, runtime, &mut problems);
    problems.finish()?;
    Ok(jobs)
}

/// [`load_jobs`], recording problems in `c`; the jobs that loaded.
fn load_jobs_into(config: &Config, runtime: &Arc<Runtime>, c: &mut Collector) -> Vec<Job> {
    let mut loaded: HashMap<(PluginRef, Option<String>), Plugin> = HashMap::new();
    let mut jobs = Vec::new();
    for job in &config.jobs {
        let key = (job.plugin.clone(), job.sha256.clone());
        let plugin = match loaded.get(&key) {
            Some(p) => p.clone(),
            None => {
                let result = match &job.plugin {
                    PluginRef::Builtin(name) => runtime.load_builtin(name, job.sha256.as_deref()),
                    PluginRef::File(path) => runtime.load_file(path, job.sha256.as_deref()),
                };
                match result {
                    Ok(p) => {
                        loaded.insert(key, p.clone());
                        p
                    }
                    Err(e) => {
                        c.error(job.spans.plugin.clone(), format!("job `{}`: {e}", job.id));
                        continue;
                    }
                }
            }
        };
        for problem in plugin.validate_settings(&job.settings) {
            let field = if problem.pointer.is_empty() {
                "settings".to_owned()
            } else {
                format!("settings{}", problem.pointer.replace('/', "."))
            };
            c.error(
                job.spans.settings_span(&problem.pointer),
                format!("job `{}`: {field}: {} (plugin {})", job.id, problem.message, plugin.label()),
            );
        }
        let loaded = Job { config: job.clone(), plugin };
        for problem in loaded.access_problems() {
            c.error(job.spans.job.clone(), problem);
        }
        jobs.push(loaded);
    }
    jobs
}

/// Where the config keeps job state records (in Vault through `vault`, or
/// in Secrets Manager), with an AWS client (credentials from the standard
/// chain, checked now) when the records or a job's secret live in AWS.
pub fn state_store(config: &Config, vault: Option<&VaultClient>) -> Result<StateStore, SetupError> {
    let aws_job = config.jobs.iter().find(|j| matches!(j.secret, Some(SecretAt::Aws(_))));
    let what = match (&config.daemon.state, aws_job) {
        (StateConfig::Aws(_), _) => Some("the state records".to_owned()),
        (StateConfig::Vault { .. }, Some(job)) => Some(format!("job `{}`", job.id)),
        (StateConfig::Vault { .. }, None) => None,
    };
    let aws = match what {
        None => None,
        Some(what) => {
            let timeout = config.vault.as_ref().map_or(DEFAULT_AWS_TIMEOUT, |v| v.timeout);
            let aws = AwsClient::from_env(AwsEnv::from_process(), timeout)
                .map_err(|source| SetupError::Aws { what: what.clone(), source })?;
            tracing::info!(credentials = %aws.describe_credentials(), "AWS client for {what}");
            Some(aws)
        }
    };
    let store = match (&config.daemon.state, vault, aws) {
        (StateConfig::Vault { mount, prefix }, Some(vault), aws) => {
            let store = StateStore::new(vault.clone(), mount.clone(), prefix.clone());
            match aws {
                Some(aws) => store.with_aws(aws),
                None => store,
            }
        }
        (StateConfig::Vault { .. }, None, _) => return Err(SetupError::NoVault),
        (StateConfig::Aws(records), vault, Some(aws)) => {
            let region = rotator_core::aws::credentials::region(aws.env(), records.region.as_deref())
                .map_err(|e| SetupError::Aws { what: "the state records".into(), source: e.into() })?;
            let store = StateStore::in_secrets_manager(aws, records.prefix.clone(), region);
            match vault {
                Some(vault) => store.with_vault(vault.clone()),
                None => store,
            }
        }
        (StateConfig::Aws(_), _, None) => unreachable!("records in AWS always build an AWS client above"),
    };
    Ok(store)
}

/// The AWS timeout when there is no `[vault]` section to take it from.
const DEFAULT_AWS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Who hears about every rotation step besides the daemon's metrics: the
/// audit log, if the config names one (keyed if it names a key).
pub fn observers(config: &Config) -> Result<Vec<Arc<dyn Observer>>, SetupError> {
    let mut out: Vec<Arc<dyn Observer>> = Vec::new();
    if let Some(path) = config.audit_log() {
        let key = rotator_core::audit::AuditKey::from_config(config)?;
        let options = rotator_core::audit::AuditOptions { fsync: config.daemon.audit_fsync, key };
        let log = rotator_core::audit::AuditLog::open_with(&path, options)?;
        out.push(Arc::new(log));
    }
    Ok(out)
}
