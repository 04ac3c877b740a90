//! The plugin test harness: run a plugin against an in-process dev server,
//! record the protocol, and check the rules every plugin must keep.
//!
//! `rotator plugin test` and the `rotator-plugin-test` crate (for plugin
//! authors' `cargo test`) are thin fronts over [`Harness`]. A run:
//!
//! 1. starts a dev server on 127.0.0.1:0 (and, given a PostgreSQL URL,
//!    mounts its database engine on it: `postgres`), loads the plugin and
//!    checks the settings against its schema (`env`);
//! 2. drives the protocol once, step by step, recording each step's timing
//!    and host calls (`walk`, over `session`);
//! 3. runs the conformance checks, each a named pass/fail/skip:
//!    `idempotency`, `resume` (every crash point), `rollback` (a
//!    failing test, made to fail by a fault the dev server injects:
//!    `faults`), `plan` and `capabilities`;
//! 4. returns a [`Report`] (`report`), which holds no secret value.
//!
//! Every check uses its own job id, so each has its own state record; they
//! share the dev server and the job's secret and run one after another.
//! The harness runs on a runtime of its own (on its own thread), so callers
//! may await it from any executor, `#[tokio::test]`'s single thread included.

mod capabilities;
mod env;
mod faults;
mod idempotency;
mod inputs;
mod plan;
mod postgres;
mod progress;
mod report;
mod resume;
mod rollback;
mod session;
mod settings;
mod walk;

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use secrecy::SecretString;
use serde_json::Value;

pub use inputs::{InputError, MAX_SECRET_BYTES, parse_seed, parse_sql_connection, read_initial_secret};
pub use report::{
    CallRecord, CheckResult, Environment, PluginSummary, Report, Status, StepRecord, group_repeats, names,
};
pub use settings::{Lang, MAX_SETTINGS_BYTES, SettingsError, read_settings};

use rotator_core::config::{PluginRef, SecretLocation};
use rotator_core::plugin::connections::{SqlConnection, SqlConnections};
use rotator_core::plugin::grants::GrantError;
use rotator_core::plugin::limits::STEP_TIMEOUT_RANGE;
use rotator_core::plugin::{LoadError, Operation, RunLimits, RuntimeError, VaultGrant};
use rotator_core::secret::SecretJson;
use rotator_core::vault::{VaultClient, VaultError};

/// The plugin named on a command line: a file if `s` names an existing
/// file or ends in `.wasm`, else a built-in name (`kv-random`).
pub fn parse_plugin(s: &str) -> PluginRef {
    if s.ends_with(".wasm") || Path::new(s).is_file() {
        PluginRef::File(s.into())
    } else {
        PluginRef::Builtin(s.into())
    }
}

/// Prepares the dev server before the checks (mount an engine, write the
/// plugin's target), with a root client. Errors are shown as written.
pub type Setup = Box<dyn FnOnce(VaultClient) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send>;

/// Why the harness could not test the plugin at all (as opposed to a plugin
/// failing a check, which is in the [`Report`]).
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("{0}")]
    Load(#[from] LoadError),
    #[error("settings do not match the plugin's schema:\n  {}", .0.join("\n  "))]
    Settings(Vec<String>),
    #[error("invalid grant: {0}")]
    Grant(ArgError),
    #[error("cannot start the harness: {0}")]
    Start(String),
    #[error("cannot start the harness: {0}")]
    Runtime(#[from] RuntimeError),
    #[error("dev server: {0}")]
    DevServer(#[from] std::io::Error),
    #[error("{action}: {source}")]
    Vault { action: String, source: VaultError },
    #[error("setup: {0}")]
    Setup(String),
    #[error("postgres: {0}")]
    Postgres(String),
    #[error("{0}")]
    Input(#[from] InputError),
}

/// A plugin test: what to run, with what. Build it, then [`Harness::run`].
pub struct Harness {
    plugin: PluginRef,
    settings: Value,
    /// `None`: the capabilities the plugin declares.
    grants: Option<Vec<VaultGrant>>,
    secret: SecretLocation,
    initial_secret: Option<SecretJson>,
    seeds: Vec<(SecretLocation, SecretJson)>,
    postgres_url: Option<SecretString>,
    sql: SqlConnections,
    limits: RunLimits,
    setup: Option<Setup>,
    progress: bool,
}

impl Harness {
    /// Test `plugin` with the job settings `settings` and `grants` (`None`:
    /// grant exactly what the plugin declares). The job's secret is
    /// `secret/harness/app` unless [`Harness::secret`] says otherwise.
    pub fn new(plugin: PluginRef, settings: Value, grants: Option<Vec<VaultGrant>>) -> Self {
        Self {
            plugin,
            settings,
            grants,
            secret: SecretLocation { mount: "secret".into(), path: "harness/app".into() },
            initial_secret: None,
            seeds: Vec::new(),
            postgres_url: None,
            sql: SqlConnections::new(),
            limits: RunLimits::default(),
            setup: None,
            progress: false,
        }
    }

    /// Where the job's secret lives (a KV v2 mount on the dev server).
    pub fn secret(mut self, mount: impl Into<String>, path: impl Into<String>) -> Self {
        self.secret = SecretLocation { mount: mount.into(), path: path.into() };
        self
    }

    /// Write this JSON object as the secret's first version before the checks.
    pub fn initial_secret(mut self, data: SecretJson) -> Self {
        self.initial_secret = Some(data);
        self
    }

    /// Write `data` to the KV v2 secret `mount`/`path` before the checks:
    /// a secret the plugin reads, such as an administrator's credential.
    /// Repeatable.
    pub fn seed_secret(mut self, mount: impl Into<String>, path: impl Into<String>, data: SecretJson) -> Self {
        self.seeds.push((SecretLocation { mount: mount.into(), path: path.into() }, data));
        self
    }

    /// A PostgreSQL the dev server's database engine manages: it is mounted
    /// at `database/` with connection `harness` (connecting as the URL's
    /// user, whose password Vault then owns: use a throwaway user) and a
    /// role `harness` that creates short-lived login roles.
    pub fn postgres_url(mut self, url: SecretString) -> Self {
        self.postgres_url = Some(url);
        self
    }

    /// A connection the host's `sql` import reaches by its name (see
    /// [`parse_sql_connection`]); the plugin is granted it when its declared
    /// `sql` capability names it (or is `*` and the settings'
    /// `connection` names it). Repeatable.
    pub fn sql_connection(mut self, connection: SqlConnection) -> Self {
        self.sql.insert(connection.name.clone(), connection);
        self
    }

    /// Memory cap and step deadline of every run (the job defaults otherwise).
    pub fn limits(mut self, limits: RunLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Show a line on stderr while the plugin compiles (only when it is
    /// not in the compilation cache): redrawn in place on a terminal, two
    /// plain lines otherwise. Off by default.
    pub fn progress(mut self, show: bool) -> Self {
        self.progress = show;
        self
    }

    /// Prepare the dev server before the checks run.
    pub fn setup(mut self, setup: Setup) -> Self {
        self.setup = Some(setup);
        self
    }

    /// Start the dev server, run the protocol and every check, stop.
    pub async fn run(self) -> Result<Report, HarnessError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("rotator-harness".into())
            .spawn(move || {
                let result = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
                    Ok(rt) => rt.block_on(self.run_here()),
                    Err(e) => Err(HarnessError::Start(format!("async runtime: {e}"))),
                };
                let _ = tx.send(result);
            })
            .map_err(|e| HarnessError::Start(format!("harness thread: {e}")))?;
        rx.await.unwrap_or_else(|_| Err(HarnessError::Start("the harness thread panicked".into())))
    }

    async fn run_here(self) -> Result<Report, HarnessError> {
        let env = env::Env::start(self).await?;
        let walk = walk::run(&env).await;
        let checks = vec![
            idempotency::check(&env).await,
            resume::check(&env, &walk).await,
            rollback::check(&env, &walk).await,
            plan::check(&walk),
            capabilities::check(&env),
        ];
        let report = Report { plugin: env.summary(), environment: env.environment(), steps: walk.steps, checks };
        env.shutdown().await;
        Ok(report)
    }
}

/// Why a value given on the command line (or to the builder in `lib.rs`)
/// was refused. Step timeouts, operations and grants are never secret, so
/// the value is quoted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgError {
    #[error("invalid duration `{text}`: {why} (try \"500ms\", \"2s\")")]
    Duration { text: String, why: String },
    #[error(
        "a step timeout must be between {} and {}, not {}",
        humantime::format_duration(STEP_TIMEOUT_RANGE.0),
        humantime::format_duration(STEP_TIMEOUT_RANGE.1),
        humantime::format_duration(*.0)
    )]
    StepTimeout(Duration),
    #[error("unknown operation `{0}` (read, write, delete, list)")]
    Operation(String),
    #[error("`{0}` is not PATH:OPS")]
    NotPathOps(String),
    #[error(transparent)]
    Grant(#[from] GrantError),
}

/// A step deadline from `"500ms"`, `"2s"`…, within the range a job's
/// `limits.step_timeout` allows ([`STEP_TIMEOUT_RANGE`]).
pub fn parse_step_timeout(s: &str) -> Result<Duration, ArgError> {
    let d = humantime::parse_duration(s).map_err(|e| ArgError::Duration { text: s.to_owned(), why: e.to_string() })?;
    let (min, max) = STEP_TIMEOUT_RANGE;
    if d < min || d > max {
        return Err(ArgError::StepTimeout(d));
    }
    Ok(d)
}

/// An operation by its policy name (`read`, `write`, `delete`, `list`).
pub fn parse_operation(s: &str) -> Result<Operation, ArgError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "read" => Ok(Operation::Read),
        "write" => Ok(Operation::Write),
        "delete" => Ok(Operation::Delete),
        "list" => Ok(Operation::List),
        other => Err(ArgError::Operation(other.to_owned())),
    }
}

/// A grant from `PATH:OPS`, e.g. `secret/data/app/*:read,write`.
pub fn parse_grant(spec: &str) -> Result<VaultGrant, ArgError> {
    let (path, ops) = spec.rsplit_once(':').ok_or_else(|| ArgError::NotPathOps(spec.to_owned()))?;
    let operations = ops.split(',').map(parse_operation).collect::<Result<Vec<_>, _>>()?;
    let grant = VaultGrant { path: path.to_owned(), operations };
    grant.validate()?;
    Ok(grant)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_parse_from_path_and_operations() {
        let g = parse_grant("secret/data/app/*:read,write").unwrap();
        assert_eq!(g.path, "secret/data/app/*");
        assert_eq!(g.operations, vec![Operation::Read, Operation::Write]);
        assert!(parse_grant("secret/data/app").unwrap_err().to_string().contains("PATH:OPS"));
        assert!(parse_grant("secret/x:read,frob").unwrap_err().to_string().contains("unknown operation `frob`"));
        assert!(parse_grant("secret/*/x:read").is_err());
    }

    #[test]
    fn step_timeouts_are_held_to_the_config_range() {
        assert_eq!(parse_step_timeout("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_step_timeout("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_step_timeout("10m"), Ok(Duration::from_secs(600)));
        assert!(parse_step_timeout("99ms").unwrap_err().to_string().contains("between 100ms and 10m"));
        assert!(parse_step_timeout("11m").unwrap_err().to_string().contains("not 11m"));
        assert!(parse_step_timeout("soon").unwrap_err().to_string().contains("invalid duration `soon`"));
    }

    #[test]
    fn plugin_sources_are_files_or_builtin_names() {
        assert_eq!(parse_plugin("kv-random"), PluginRef::Builtin("kv-random".into()));
        assert_eq!(parse_plugin("target/x.wasm"), PluginRef::File("target/x.wasm".into()));
    }
}
