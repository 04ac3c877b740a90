//! Conformance tests for [rotator](https://github.com/) plugins, from a
//! plugin author's `cargo test`.
//!
//! [`PluginTest`] runs your component against an in-process, Vault-compatible
//! dev server exactly as the daemon would, then checks the rules every
//! plugin must keep: steps are idempotent under one rotation id, a rotation
//! interrupted anywhere resumes to a clean end, a failing `test` rolls back,
//! `plan` changes nothing, and every host call is covered by a capability
//! `describe` declares. It is a thin layer over [`harness`], which
//! also backs `rotator plugin test`.
//!
//! ```no_run
//! use rotator_plugin_test::{PluginTest, json};
//!
//! # async fn my_plugin_conforms() {
//! // In a #[tokio::test] (any flavour: the harness runs on its own thread).
//! PluginTest::new("target/wasm32-wasip2/release/my_plugin.wasm")
//!     .settings(json!({ "target": "secret/app/db" }))
//!     .grant("secret/data/app/*", ["read", "write"])
//!     .run()
//!     .await
//!     .assert_conforms();
//! # }
//! ```
//!
//! Build the component first (`cargo build --release --target
//! wasm32-wasip2`). Without `.grant(…)`, the plugin is granted exactly what
//! it declares. A failed assertion prints the whole report: each step with
//! its timing and host calls, and each check with its reason.

pub mod harness;

use crate::harness::{ArgError, Harness, HarnessError, InputError, parse_plugin, parse_sql_connection};
use rotator_core::plugin::VaultGrant;
use rotator_core::plugin::connections::SqlConnection;
use rotator_core::secret::SecretJson;
use secrecy::SecretString;

pub use crate::harness::{CheckResult, Report, Status, names};
pub use serde_json::{Value, json};

/// One plugin under test, configured step by step, then [`PluginTest::run`].
pub struct PluginTest {
    source: String,
    settings: Value,
    grants: Vec<VaultGrant>,
    secret: Option<(String, String)>,
    initial_secret: Option<Value>,
    postgres_url: Option<SecretString>,
    seeds: Vec<(String, String, Value)>,
    sql: Vec<Result<SqlConnection, InputError>>,
    /// A `grant` that did not parse, reported when the test runs.
    bad_grant: Option<ArgError>,
}

impl PluginTest {
    /// Test the component at `plugin` (a `.wasm` path), or a plugin built
    /// into rotator by name (`kv-random`).
    pub fn new(plugin: impl Into<String>) -> Self {
        Self {
            source: plugin.into(),
            settings: json!({}),
            grants: Vec::new(),
            secret: None,
            initial_secret: None,
            postgres_url: None,
            seeds: Vec::new(),
            sql: Vec::new(),
            bad_grant: None,
        }
    }

    /// The job's `settings` (checked against the plugin's schema).
    pub fn settings(mut self, settings: Value) -> Self {
        self.settings = settings;
        self
    }

    /// Grant `operations` (`read`, `write`, `delete`, `list`) on the Vault
    /// path pattern `path`. Any grant replaces the default of granting what
    /// the plugin declares.
    pub fn grant<'a>(mut self, path: &str, operations: impl IntoIterator<Item = &'a str>) -> Self {
        let ops: Vec<&str> = operations.into_iter().collect();
        match crate::harness::parse_grant(&format!("{path}:{}", ops.join(","))) {
            Ok(g) => self.grants.push(g),
            Err(e) => self.bad_grant = Some(e),
        }
        self
    }

    /// Where the job's secret lives on the dev server (default
    /// `secret` / `harness/app`).
    pub fn secret(mut self, mount: &str, path: &str) -> Self {
        self.secret = Some((mount.into(), path.into()));
        self
    }

    /// The secret's value before the first rotation (a JSON object).
    pub fn initial_secret(mut self, data: Value) -> Self {
        self.initial_secret = Some(data);
        self
    }

    /// Another KV secret written before the checks, one the plugin reads
    /// (an administrator's credential, say); a JSON object.
    pub fn seed_secret(mut self, mount: &str, path: &str, data: Value) -> Self {
        self.seeds.push((mount.into(), path.into(), data));
        self
    }

    /// An SQL connection for the plugin's `sql` import: `spec` is
    /// `NAME=postgres://host:port/db` (no credentials), `admin_env` names
    /// the environment variables with the admin's user and password
    /// (`PGUSER:PGPASSWORD`). A bad one is reported when the test runs.
    pub fn sql(mut self, spec: &str, admin_env: &str) -> Self {
        self.sql.push(parse_sql_connection(spec, admin_env));
        self
    }

    /// A PostgreSQL for the dev server's database engine: mounted at
    /// `database/` with connection and role `harness`. Vault takes over the
    /// URL user's password, so use a throwaway user.
    pub fn postgres_url(mut self, url: impl Into<String>) -> Self {
        self.postgres_url = Some(SecretString::from(url.into()));
        self
    }

    /// Run the protocol and every check. `Err` only when the plugin could not
    /// be tested at all (not found, wrong world, settings against its schema).
    pub async fn try_run(self) -> Result<Conformance, HarnessError> {
        if let Some(e) = self.bad_grant {
            return Err(HarnessError::Grant(e));
        }
        let grants = if self.grants.is_empty() { None } else { Some(self.grants) };
        let mut harness = Harness::new(parse_plugin(&self.source), self.settings, grants);
        if let Some((mount, path)) = self.secret {
            harness = harness.secret(mount, path);
        }
        if let Some(data) = self.initial_secret {
            harness = harness.initial_secret(SecretJson::new(data.to_string()));
        }
        if let Some(url) = self.postgres_url {
            harness = harness.postgres_url(url);
        }
        for (mount, path, data) in self.seeds {
            let data = SecretJson::parse(data.to_string())
                .map_err(|e| InputError::Secret { flag: "seed_secret", why: e.to_string() })?;
            harness = harness.seed_secret(mount, path, data);
        }
        for connection in self.sql {
            harness = harness.sql_connection(connection?);
        }
        Ok(Conformance { report: harness.run().await? })
    }

    /// [`PluginTest::try_run`], panicking if the plugin could not be tested.
    pub async fn run(self) -> Conformance {
        let source = self.source.clone();
        self.try_run().await.unwrap_or_else(|e| panic!("cannot test plugin {source}: {e}"))
    }
}

/// What the checks found.
#[derive(Debug)]
pub struct Conformance {
    /// Steps, timings, host calls and every check's verdict.
    pub report: Report,
}

impl Conformance {
    /// Every step succeeded and no check failed.
    pub fn is_ok(&self) -> bool {
        self.report.is_ok()
    }

    /// The check called `name` (one of [`names`]).
    pub fn check(&self, name: &str) -> Option<&CheckResult> {
        self.report.check(name)
    }

    /// Panic with the whole report unless the plugin conforms.
    #[track_caller]
    pub fn assert_conforms(&self) {
        assert!(self.is_ok(), "the plugin does not conform:\n{}", self.report);
    }
}
