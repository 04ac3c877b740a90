//! The adapter for `rotator:plugin@0.1.0` (`wit/rotator-plugin@0.1.0/`).
//!
//! It owns everything of this version: its `bindgen!`, its names (the
//! export and imports a component must match), and every conversion between
//! the generated types and the host's domain types, both ways: the exports
//! the host calls (`describe`, `plan`, the steps) and the imports a plugin
//! calls (`vault`, `sql`, `log`, each forwarded through the host-call budget
//! [`Gate`] to the capability modules). Generated types never leave this
//! file. The folder is frozen, so this adapter is too: the host's logic
//! lives in the domain modules and is shared by every version.

use wasmtime::Store;
use wasmtime::component::{Component, InstancePre, Linker};

use self::generated::exports::rotator::plugin::rotator as export;
use self::generated::rotator::plugin::{log, sql, types, vault};
use crate::plugin::imports::{Gate, Gated, LogLevel, SqlError, SqlValue, VaultError};
use crate::plugin::{
    Capability, Description, Failure, Operation, PlannedAction, RunState, Step, StepContext, VaultGrant,
};
use crate::secret::SecretJson;
use crate::vault::kv::KvSecret;

mod generated {
    wasmtime::component::bindgen!({
        world: "plugin",
        path: "../../wit/rotator-plugin@0.1.0",
    });
}

/// The WIT package version this adapter speaks.
pub const VERSION: &str = "0.1.0";

/// The interface every plugin of this version exports.
pub const EXPORT: &str = "rotator:plugin/rotator@0.1.0";

/// The host's interfaces a plugin of this version may import.
pub const IMPORTS: &[&str] = &[
    "rotator:plugin/types@0.1.0",
    "rotator:plugin/vault@0.1.0",
    "rotator:plugin/sql@0.1.0",
    "rotator:plugin/log@0.1.0",
];

/// Add this version's imports to the linker, each behind the run's
/// host-call budget.
pub fn add_to_linker(linker: &mut Linker<RunState>) -> wasmtime::Result<()> {
    generated::Plugin::add_to_linker::<RunState, Gated>(linker, |s| Gate(&mut s.host))
}

/// A component of this version, linked and ready to instantiate.
pub struct Pre(generated::PluginPre<RunState>);

impl Pre {
    /// Check the linked component against this version's world.
    pub fn new(pre: InstancePre<RunState>) -> wasmtime::Result<Self> {
        generated::PluginPre::new(pre).map(Self)
    }

    pub fn component(&self) -> &Component {
        self.0.instance_pre().component()
    }

    pub fn instantiate(&self, store: &mut Store<RunState>) -> wasmtime::Result<Instance> {
        Ok(Instance { plugin: self.0.instantiate(store)?, context: None })
    }
}

/// What a call returns: a trap as the outer error, the plugin's own error
/// as a [`Failure`].
pub type Answer<R> = wasmtime::Result<Result<R, Failure>>;

/// A live instance of a component of this version.
pub struct Instance {
    plugin: generated::Plugin,
    /// The WIT form of the last context, rebuilt only when the context
    /// changes (it is the same for every step of a rotation).
    context: Option<types::Context>,
}

impl Instance {
    fn rotator(&self) -> &export::Guest {
        self.plugin.rotator_plugin_rotator()
    }

    /// `describe`, unchecked (the loader checks sizes and the schema).
    pub fn describe(&self, store: &mut Store<RunState>) -> wasmtime::Result<Description> {
        let info = self.rotator().call_describe(store)?;
        Ok(Description {
            name: info.name,
            version: info.version,
            description: info.description,
            settings_schema: info.settings_schema,
            capabilities: info.capabilities.into_iter().map(capability).collect(),
        })
    }

    /// `plan`, with the summaries as the plugin wrote them (unredacted).
    pub fn plan(&mut self, store: &mut Store<RunState>, ctx: &StepContext) -> Answer<Vec<PlannedAction>> {
        let wctx = self.context(ctx);
        let raw = self.rotator().call_plan(store, &wctx);
        self.context = Some(wctx);
        Ok(raw?
            .map(|actions| {
                actions.into_iter().map(|a| PlannedAction { step: step(a.step), summary: a.summary }).collect()
            })
            .map_err(failure))
    }

    /// `create`: the new secret's JSON text, unchecked.
    pub fn create(&mut self, store: &mut Store<RunState>, ctx: &StepContext) -> Answer<String> {
        let wctx = self.context(ctx);
        let raw = self.rotator().call_create(store, &wctx);
        self.context = Some(wctx);
        Ok(raw?.map_err(failure))
    }

    /// One of the steps given the pending secret: `set`, `test`, `finish`
    /// or `rollback`.
    pub fn pending_step(
        &mut self,
        store: &mut Store<RunState>,
        step: Step,
        ctx: &StepContext,
        pending: &SecretJson,
    ) -> Answer<()> {
        let wctx = self.context(ctx);
        let secret = types::Secret { data: pending.expose().to_owned(), version: None };
        let r = self.rotator();
        let raw = match step {
            Step::Set => r.call_set(store, &wctx, &secret),
            Step::Test => r.call_test(store, &wctx, &secret),
            Step::Finish => r.call_finish(store, &wctx, &secret),
            _ => r.call_rollback(store, &wctx, &secret),
        };
        self.context = Some(wctx);
        Ok(raw?.map_err(failure))
    }

    /// The WIT context for `ctx`, taken from the cache if it is the same
    /// rotation and attempt.
    fn context(&mut self, ctx: &StepContext) -> types::Context {
        if let Some(cached) = self.context.take()
            && cached.rotation_id == ctx.rotation_id
            && cached.attempt == ctx.attempt
        {
            return cached;
        }
        types::Context {
            job_id: ctx.job_id.clone(),
            rotation_id: ctx.rotation_id.clone(),
            settings: ctx.settings.to_string(),
            current: ctx
                .current
                .as_ref()
                .map(|c| types::Secret { data: c.data.expose().to_owned(), version: c.version }),
            attempt: ctx.attempt,
        }
    }
}

fn capability(c: types::Capability) -> Capability {
    match c {
        types::Capability::Vault(v) => Capability::Vault(VaultGrant {
            path: v.path,
            operations: v.operations.into_iter().map(operation).collect(),
        }),
        types::Capability::Sql(connection) => Capability::Sql(connection),
    }
}

fn operation(op: types::Operation) -> Operation {
    match op {
        types::Operation::Read => Operation::Read,
        types::Operation::Write => Operation::Write,
        types::Operation::Delete => Operation::Delete,
        types::Operation::List => Operation::List,
    }
}

fn step(s: types::Step) -> Step {
    match s {
        types::Step::Create => Step::Create,
        types::Step::Set => Step::Set,
        types::Step::Test => Step::Test,
        types::Step::Finish => Step::Finish,
        types::Step::Rollback => Step::Rollback,
    }
}

/// The plugin's error, its message as the plugin wrote it (the run redacts).
fn failure(e: types::RotateError) -> Failure {
    match e {
        types::RotateError::InvalidConfig(m) => Failure::InvalidConfig(m),
        types::RotateError::Transient(m) => Failure::Transient(m),
        types::RotateError::Permanent(m) => Failure::Permanent(m),
    }
}

impl types::Host for Gate<'_> {}

impl log::Host for Gate<'_> {
    fn write(&mut self, level: log::Level, message: String) {
        let level = match level {
            log::Level::Debug => LogLevel::Debug,
            log::Level::Info => LogLevel::Info,
            log::Level::Warn => LogLevel::Warn,
            log::Level::Error => LogLevel::Error,
        };
        self.log(level, message);
    }
}

impl vault::Host for Gate<'_> {
    fn kv_read(&mut self, mount: String, path: String) -> Result<Option<types::Secret>, vault::VaultError> {
        let found = self.vault("vault.kv-read").and_then(|h| h.kv_read(mount, path));
        found.map(|s| s.map(kv_secret)).map_err(vault_error)
    }

    fn kv_write(
        &mut self,
        mount: String,
        path: String,
        data: String,
        cas: Option<u64>,
    ) -> Result<u64, vault::VaultError> {
        self.vault("vault.kv-write").and_then(|h| h.kv_write(mount, path, data, cas)).map_err(vault_error)
    }

    fn request(&mut self, method: String, path: String, body: Option<String>) -> Result<String, vault::VaultError> {
        self.vault("vault.request").and_then(|h| h.vault_request(method, path, body)).map_err(vault_error)
    }
}

fn kv_secret(s: KvSecret) -> types::Secret {
    types::Secret { data: s.data.expose().to_owned(), version: s.version }
}

fn vault_error(e: VaultError) -> vault::VaultError {
    match e {
        VaultError::Denied(m) => vault::VaultError::Denied(m),
        VaultError::Status { code, errors } => vault::VaultError::Status(vault::VaultStatus { code, errors }),
        VaultError::CasMismatch(m) => vault::VaultError::CasMismatch(m),
        VaultError::Unavailable(m) => vault::VaultError::Unavailable(m),
    }
}

impl sql::Host for Gate<'_> {
    fn execute(
        &mut self,
        connection: String,
        statement: String,
        params: Vec<sql::SqlValue>,
    ) -> Result<u64, sql::SqlError> {
        let params = params.into_iter().map(sql_value_in).collect();
        self.sql("sql.execute").and_then(|h| h.sql_execute(connection, statement, params)).map_err(sql_error)
    }

    fn query(
        &mut self,
        connection: String,
        statement: String,
        params: Vec<sql::SqlValue>,
    ) -> Result<Vec<Vec<sql::SqlValue>>, sql::SqlError> {
        let params = params.into_iter().map(sql_value_in).collect();
        let rows = self.sql("sql.query").and_then(|h| h.sql_query(connection, statement, params));
        rows.map(|rows| rows.into_iter().map(|row| row.into_iter().map(sql_value_out).collect()).collect())
            .map_err(sql_error)
    }

    fn try_login(&mut self, connection: String, username: String, password: String) -> Result<bool, sql::SqlError> {
        self.sql("sql.try-login").and_then(|h| h.sql_try_login(connection, username, password)).map_err(sql_error)
    }
}

fn sql_value_in(v: sql::SqlValue) -> SqlValue {
    match v {
        sql::SqlValue::Null => SqlValue::Null,
        sql::SqlValue::Boolean(b) => SqlValue::Boolean(b),
        sql::SqlValue::Int(n) => SqlValue::Int(n),
        sql::SqlValue::Float(f) => SqlValue::Float(f),
        sql::SqlValue::Text(s) => SqlValue::Text(s),
    }
}

fn sql_value_out(v: SqlValue) -> sql::SqlValue {
    match v {
        SqlValue::Null => sql::SqlValue::Null,
        SqlValue::Boolean(b) => sql::SqlValue::Boolean(b),
        SqlValue::Int(n) => sql::SqlValue::Int(n),
        SqlValue::Float(f) => sql::SqlValue::Float(f),
        SqlValue::Text(s) => sql::SqlValue::Text(s),
    }
}

fn sql_error(e: SqlError) -> sql::SqlError {
    match e {
        SqlError::Denied(m) => sql::SqlError::Denied(m),
        SqlError::UnknownConnection(m) => sql::SqlError::UnknownConnection(m),
        SqlError::Failed(m) => sql::SqlError::Failed(m),
        SqlError::Unavailable(m) => sql::SqlError::Unavailable(m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_names_carry_this_adapters_version() {
        for name in std::iter::once(&EXPORT).chain(IMPORTS) {
            assert!(name.starts_with("rotator:plugin/"), "{name}");
            assert_eq!(name.rsplit_once('@').map(|(_, v)| v), Some(VERSION), "{name}");
        }
    }
}
