//! The TOML configuration: what the operator writes and what it means.
//!
//! Parsing is strict (`deny_unknown_fields`, typed values) and reports every
//! problem at once, each with file, line and column (see [`parse`]). Secrets
//! are never written inline: the Vault token is a reference to an
//! environment variable or a file ([`SecretRef`]), and the admin credentials
//! of SQL connections ([`sql`]) are a Vault KV path or environment variables.
//!
//! ```toml
//! [vault]
//! address = "http://127.0.0.1:8200"     # default: $VAULT_ADDR
//! token = { env = "VAULT_TOKEN" }       # or { file = "/run/token" }
//!
//! [daemon]
//! api_addr = "127.0.0.1:8080"
//! api_token = { env = "ROTATOR_API_TOKEN" }   # the operator API's bearer token
//! audit_log = "audit.jsonl"
//! audit_key = { env = "ROTATOR_AUDIT_KEY" }   # hex, >= 32 bytes: keys the audit chain
//!
//! [[jobs]]
//! id = "demo-kv"
//! plugin = "kv-random"                  # a built-in, or a path to a .wasm
//! secret = { mount = "secret", path = "demo/app" }   # or { aws = { id = "prod/app", region = "eu-west-1" } }
//! interval = "10s"
//! settings = { field = "password", length = 24 }
//! ```

pub mod adoption;
mod checks;
mod diagnostic;
mod grants;
pub mod hooks;
mod output_limits;
mod parse;
pub mod replicas;
mod schedule;
pub mod seed_env;
pub mod sql;
pub mod units;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};

pub use diagnostic::{Collector, ConfigErrors, Diagnostic, SourceFile};
pub use hooks::Hook;
pub use parse::{Parsed, load, load_partial, parse, parse_partial};
pub use sql::{SqlConnection, SqlConnections, SqlCredentials};
// Defined beside what uses them (a leaf, the Vault client); named here too
// because the config is where operators meet them.
pub use crate::secret::SecretRef;
pub use crate::store::{AwsSecretId, SecretAt};
pub use crate::vault::kv::SecretLocation;

use crate::plugin::{Access, Grants, RunLimits};
use crate::schedule::Schedule;

/// A whole configuration file, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub source: Arc<SourceFile>,
    /// The folder relative plugin paths are resolved against.
    pub base_dir: PathBuf,
    /// `None`: this config runs without Vault (its state records are in
    /// AWS and it has no `[vault]` section), so nothing in it may name Vault.
    /// Without a `[vault]` section but with records in Vault: the defaults
    /// (`$VAULT_ADDR`, `$VAULT_TOKEN`).
    pub vault: Option<VaultConfig>,
    pub daemon: DaemonConfig,
    /// `[sql.connections.*]`: every declared SQL connection.
    pub sql: SqlConnections,
    pub jobs: Vec<JobConfig>,
}

/// `[vault]`: where Vault is and who we are there.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultConfig {
    /// Default: `$VAULT_ADDR`. An `http` or `https` URL with a host and
    /// nothing after it (no credentials, path, query or fragment).
    #[serde(default, deserialize_with = "checks::vault_address")]
    pub address: Option<String>,
    /// Default: `$VAULT_TOKEN`.
    #[serde(default)]
    pub token: Option<SecretRef>,
    /// Default: `$VAULT_NAMESPACE`.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Per-request timeout ([`units::VAULT_TIMEOUT`]).
    #[serde(default = "default_vault_timeout", deserialize_with = "units::bounded::vault_timeout")]
    pub timeout: Duration,
    /// PEM CA certificate for Vault's TLS. Default: `$VAULT_CACERT`.
    #[serde(default)]
    pub ca_cert: Option<PathBuf>,
    /// How to log in. Default: the token above (or `$VAULT_TOKEN`).
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// Revoke every lease rotator holds when it shuts down.
    #[serde(default)]
    pub revoke_leases_on_shutdown: bool,
    /// At most this many lease renewals per second, spread evenly (1 to 10,000).
    #[serde(default = "default_renewal_rate", deserialize_with = "checks::renewal_rate")]
    pub lease_renewals_per_second: u32,
    /// At most this many leases tracked at once (1 to 1,000,000); a request
    /// for a dynamic credential beyond it is refused before Vault mints one.
    #[serde(default = "default_max_leases", deserialize_with = "checks::max_leases")]
    pub max_tracked_leases: u32,
    /// `GET /dynamic/<role>` answers with the path's live credential while
    /// its lease is valid (Vault Agent's way) instead of a fresh one each time.
    #[serde(default)]
    pub reuse_dynamic_credentials: bool,
}

fn default_renewal_rate() -> u32 {
    20
}

fn default_max_leases() -> u32 {
    crate::vault::leases::DEFAULT_MAX_LEASES as u32
}

/// `[vault.auth]`: an auth method that can log in again when the token runs
/// out. Secrets (secret ids, JWTs) are references, read at each login.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(tag = "method", rename_all = "lowercase", deny_unknown_fields)]
pub enum AuthConfig {
    /// `role_id` and `secret_id` from env vars or files.
    Approle {
        #[serde(default = "default_approle_mount")]
        mount: String,
        role_id: SecretRef,
        secret_id: SecretRef,
    },
    /// The pod's service-account token.
    Kubernetes {
        #[serde(default = "default_kubernetes_mount")]
        mount: String,
        role: String,
        #[serde(default = "default_jwt_path")]
        jwt_path: PathBuf,
    },
    /// Any JWT Vault is configured to trust.
    Jwt {
        #[serde(default = "default_jwt_mount")]
        mount: String,
        role: String,
        jwt: SecretRef,
    },
    /// A username and a password (the password from an env var or a file).
    Userpass {
        #[serde(default = "default_userpass_mount")]
        mount: String,
        username: String,
        password: SecretRef,
    },
}

fn default_approle_mount() -> String {
    "approle".into()
}

fn default_kubernetes_mount() -> String {
    "kubernetes".into()
}

fn default_jwt_mount() -> String {
    "jwt".into()
}

fn default_userpass_mount() -> String {
    "userpass".into()
}

fn default_jwt_path() -> PathBuf {
    crate::vault::KUBERNETES_JWT_PATH.into()
}

impl Default for VaultConfig {
    fn default() -> Self {
        Self {
            address: None,
            token: None,
            namespace: None,
            timeout: default_vault_timeout(),
            ca_cert: None,
            auth: None,
            revoke_leases_on_shutdown: false,
            lease_renewals_per_second: default_renewal_rate(),
            max_tracked_leases: default_max_leases(),
            reuse_dynamic_credentials: false,
        }
    }
}

fn default_vault_timeout() -> Duration {
    Duration::from_secs(10)
}

/// `[daemon]`: how the daemon itself runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// Where the HTTP API listens.
    #[serde(default = "default_api_addr")]
    pub api_addr: SocketAddr,
    /// At most this many rotations run at once (1 to 1,024).
    #[serde(default = "default_max_concurrent", deserialize_with = "checks::max_concurrent")]
    pub max_concurrent_rotations: u32,
    /// At most this many scheduled rotations start per second, spread
    /// evenly (1 to 10,000); unset: no limit beyond the concurrency cap.
    #[serde(default, deserialize_with = "checks::rotation_rate")]
    pub max_rotations_per_second: Option<u32>,
    /// Compiled-plugin cache; default `~/.cache/rotator`.
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    /// How long shutdown waits for running rotations to finish
    /// ([`units::SHUTDOWN_GRACE`]).
    #[serde(default = "default_grace", deserialize_with = "units::bounded::shutdown_grace")]
    pub shutdown_grace: Duration,
    /// Where each job's state record (rotation in progress, schedule) lives.
    #[serde(default)]
    pub state: StateConfig,
    /// The hash-chained audit log (JSON lines), as written: relative paths
    /// are resolved against the config's folder by [`Config::audit_log`].
    /// No audit log when unset.
    #[serde(default)]
    pub audit_log: Option<PathBuf>,
    /// fsync the audit log after every record (default: flush only).
    #[serde(default)]
    pub audit_fsync: bool,
    /// The audit chain's HMAC key, as a reference (never inline): its text
    /// is hex, at least 32 bytes (`openssl rand -hex 32`). Unset: the chain
    /// is an unkeyed sha256 chain. See [`crate::audit`].
    #[serde(default)]
    pub audit_key: Option<SecretRef>,
    /// The bearer token the operator API demands. Default:
    /// `$ROTATOR_API_TOKEN`; `rotator run` refuses to start without one.
    #[serde(default)]
    pub api_token: Option<SecretRef>,
    /// Show secret values in API answers (KV reads, dynamic credentials,
    /// rotations) instead of `"<redacted>"`.
    #[serde(default)]
    pub reveal_secrets: bool,
    /// The only directories a job added through the API may load a plugin
    /// file from, as written (relative to the config's folder; see
    /// [`Config::plugin_dirs`]). Default: none, so such jobs run built-ins
    /// only. Jobs in the config file may name any file.
    #[serde(default)]
    pub plugin_dirs: Vec<PathBuf>,
    /// Several daemons share the jobs of one config ([`replicas`]); unset:
    /// this daemon rotates every job.
    #[serde(default)]
    pub replicas: Option<replicas::ReplicasConfig>,
}

/// `[daemon] state`: where each job's state record lives.
///
/// - `{ mount, prefix }` (the default, `secret` and `rotator/state`): Vault
///   KV v2, job `x`'s record at `<mount>/<prefix>/x`; rotator's token needs
///   create, read, update and list there.
/// - `{ aws = { prefix, region } }`: AWS Secrets Manager, job `x`'s record
///   is the secret `<prefix>x` (see `state::secrets_manager`); rotator's
///   AWS identity needs Create/Put/GetSecretValue and ListSecrets on it.
///   With no `[vault]` section, the daemon then runs without Vault at all.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawState")]
pub enum StateConfig {
    Vault { mount: String, prefix: String },
    Aws(AwsStateConfig),
}

/// `[daemon] state = { aws = { prefix, region } }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsStateConfig {
    /// Prepended to the job id to name its record's secret.
    #[serde(default = "default_aws_state_prefix", deserialize_with = "checks::aws_state_prefix")]
    pub prefix: String,
    /// Default: the AWS chain's region (`AWS_REGION`, the profile).
    #[serde(default, deserialize_with = "checks::aws_region")]
    pub region: Option<String>,
}

/// `state` as written: either store's keys, checked for being one store.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawState {
    #[serde(default, deserialize_with = "checks::state_mount")]
    mount: Option<String>,
    #[serde(default, deserialize_with = "checks::state_prefix")]
    prefix: Option<String>,
    #[serde(default)]
    aws: Option<AwsStateConfig>,
}

impl TryFrom<RawState> for StateConfig {
    type Error = &'static str;

    fn try_from(raw: RawState) -> Result<Self, Self::Error> {
        match raw {
            RawState { mount: None, prefix: None, aws: Some(aws) } => Ok(Self::Aws(aws)),
            RawState { mount, prefix, aws: None } => Ok(Self::Vault {
                mount: mount.unwrap_or_else(default_mount),
                prefix: prefix.unwrap_or_else(default_state_prefix),
            }),
            RawState { aws: Some(_), .. } => Err("daemon.state: give `mount` and `prefix` (Vault KV) \
                 or `aws = { prefix, region }` (Secrets Manager), not both"),
        }
    }
}

impl StateConfig {
    /// Records kept in Vault (the daemon needs Vault then).
    pub fn in_vault(&self) -> bool {
        matches!(self, Self::Vault { .. })
    }
}

impl Default for StateConfig {
    fn default() -> Self {
        Self::Vault { mount: default_mount(), prefix: default_state_prefix() }
    }
}

fn default_aws_state_prefix() -> String {
    "rotator/state/".into()
}

fn default_mount() -> String {
    "secret".into()
}

fn default_state_prefix() -> String {
    "rotator/state".into()
}

impl Default for DaemonConfig {
    fn default() -> Self {
        Self {
            api_addr: default_api_addr(),
            max_concurrent_rotations: default_max_concurrent(),
            max_rotations_per_second: None,
            cache_dir: None,
            shutdown_grace: default_grace(),
            state: StateConfig::default(),
            audit_log: None,
            audit_fsync: false,
            audit_key: None,
            api_token: None,
            reveal_secrets: false,
            plugin_dirs: Vec::new(),
            replicas: None,
        }
    }
}

fn default_api_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_max_concurrent() -> u32 {
    4
}

fn default_grace() -> Duration {
    Duration::from_secs(30)
}

/// Which plugin a job runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PluginRef {
    /// Embedded in the binary, by name.
    Builtin(String),
    /// A component file, resolved against the config's folder.
    File(PathBuf),
}

/// One `[[jobs]]` entry.
#[derive(Debug, Clone)]
pub struct JobConfig {
    pub id: String,
    pub plugin: PluginRef,
    /// Refuse the plugin unless its sha256 matches.
    pub sha256: Option<String>,
    /// Where the secret lives: Vault KV or AWS Secrets Manager.
    pub secret: Option<SecretAt>,
    /// When it rotates: `interval` or `cron`, window, jitter, retries.
    pub schedule: Schedule,
    /// The `settings` table as JSON, handed to the plugin.
    pub settings: Value,
    pub limits: RunLimits,
    pub grants: Arc<Grants>,
    /// The SQL connections the job's grants name (and only those).
    pub sql: Arc<SqlConnections>,
    /// `secret_access`: values or handles; `None`: the plugin's preference.
    pub secret_access: Option<Access>,
    /// `visible_fields`: in handle mode, what the plugin reads in clear;
    /// `None`: the fields the plugin asks for.
    pub visible_fields: Option<Vec<String>>,
    /// `public_fields`: fields of the secret shown unredacted in what the
    /// plugin says; `None`: the fields the plugin declares.
    pub public_fields: Option<crate::secret::PublicFields>,
    pub enabled: bool,
    /// Told after promotion, in this order ([`hooks`]).
    pub hooks: Vec<Hook>,
    /// Wait for consumers to use the new value before `finish` ([`adoption`]).
    pub adoption: Option<adoption::Adoption>,
    /// Where things are in the file, for errors found after parsing.
    pub spans: JobSpans,
    /// The job's fields as they were given, when that was the Flask
    /// service's job object (the environment, `POST /scheduler/jobs`):
    /// `GET /scheduler/jobs` echoes them beside ours. `None` for a job in
    /// our own format.
    pub given: Option<Arc<Map<String, Value>>>,
}

impl JobConfig {
    /// A job that exists outside any config file (a one-off API rotation,
    /// the plugin harness): never scheduled, default limits, no SQL
    /// connections, nothing to locate errors in.
    pub fn unscheduled(
        id: String,
        plugin: PluginRef,
        secret: Option<SecretAt>,
        settings: Value,
        grants: Arc<Grants>,
    ) -> Self {
        Self {
            id,
            plugin,
            sha256: None,
            secret,
            schedule: Schedule::every(Duration::from_secs(86_400)),
            sql: Default::default(),
            settings,
            limits: RunLimits::default(),
            grants,
            secret_access: None,
            visible_fields: None,
            public_fields: None,
            enabled: false,
            hooks: Vec::new(),
            adoption: None,
            spans: JobSpans::default(),
            given: None,
        }
    }
}

/// Source locations of a job, for diagnostics found after parsing (plugin
/// load errors, settings that fail the plugin's schema).
#[derive(Debug, Clone, Default)]
pub struct JobSpans {
    pub job: Range<usize>,
    pub plugin: Range<usize>,
    pub settings: Range<usize>,
    /// JSON pointer inside settings → span of that value.
    pub settings_items: HashMap<String, Range<usize>>,
    pub not_within: Range<usize>,
}

impl JobSpans {
    /// The most precise span for a JSON pointer into the settings.
    pub fn settings_span(&self, pointer: &str) -> Range<usize> {
        let mut p = pointer.to_owned();
        loop {
            if let Some(span) = self.settings_items.get(&p) {
                return span.clone();
            }
            match p.rfind('/') {
                Some(i) => p.truncate(i),
                None => return self.settings.clone(),
            }
        }
    }
}

impl Config {
    /// Nothing configured: the defaults and no jobs (what is left of a file
    /// that could not be read or has syntax errors).
    fn empty(source: Arc<SourceFile>, base_dir: &Path) -> Self {
        Self {
            source,
            base_dir: base_dir.to_path_buf(),
            vault: Some(VaultConfig::default()),
            daemon: DaemonConfig::default(),
            sql: SqlConnections::default(),
            jobs: Vec::new(),
        }
    }

    pub fn job(&self, id: &str) -> Option<&JobConfig> {
        self.jobs.iter().find(|j| j.id == id)
    }

    /// `[daemon] audit_log`, resolved against the config's folder.
    pub fn audit_log(&self) -> Option<PathBuf> {
        self.daemon.audit_log.as_ref().map(|p| self.base_dir.join(p))
    }

    /// `[daemon] plugin_dirs`, resolved against the config's folder.
    pub fn plugin_dirs(&self) -> Vec<PathBuf> {
        self.daemon.plugin_dirs.iter().map(|p| self.base_dir.join(p)).collect()
    }

    /// A collector for problems found after parsing (e.g. by `check`).
    pub fn collector(&self) -> Collector {
        Collector::new(self.source.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn the_audit_log_is_resolved_against_the_config_folder() {
        let parse = |text: &str| super::parse("t.toml", text, Path::new("/etc/rotator")).unwrap();
        let relative = parse("[daemon]\naudit_log = \"audit/log.jsonl\"\naudit_fsync = true\n");
        assert_eq!(relative.audit_log(), Some(Path::new("/etc/rotator/audit/log.jsonl").to_path_buf()));
        assert!(relative.daemon.audit_fsync);
        let absolute = parse("[daemon]\naudit_log = \"/var/log/rotator/audit.jsonl\"\n");
        assert_eq!(absolute.audit_log(), Some(Path::new("/var/log/rotator/audit.jsonl").to_path_buf()));
        let none = parse("");
        assert_eq!((none.audit_log(), none.daemon.audit_fsync), (None, false));
    }

    #[test]
    fn the_audit_key_is_a_reference_and_needs_a_log() {
        let parse = |text: &str| super::parse("t.toml", text, Path::new("/etc/rotator"));
        let keyed = parse("[daemon]\naudit_log = \"a.jsonl\"\naudit_key = { env = \"ROTATOR_AUDIT_KEY\" }\n").unwrap();
        assert_eq!(keyed.daemon.audit_key, Some(super::SecretRef::Env("ROTATOR_AUDIT_KEY".into())));
        // A key written inline is refused without being echoed, whatever its type.
        for inline in ["\"00112233deadbeef\"", "112233445566", "[\"00112233deadbeef\"]", "0.112233"] {
            for key in ["audit_key", "api_token"] {
                let err = parse(&format!("[daemon]\naudit_log = \"a.jsonl\"\n{key} = {inline}\n")).unwrap_err();
                let err = err.to_string();
                assert!(!err.contains("112233") && err.contains("a secret is never written inline"), "{err}");
            }
        }
        let unknown = parse("[daemon]\naudit_log = \"a.jsonl\"\naudit_key = { vault = \"x\" }\n").unwrap_err();
        assert!(unknown.to_string().contains("unknown variant `vault`, expected `env` or `file`"), "{unknown}");
        let orphan = parse("[daemon]\naudit_key = { file = \"k\" }\n").unwrap_err().to_string();
        assert!(orphan.contains("daemon.audit_key is set but daemon.audit_log is not"), "{orphan}");
    }
}
