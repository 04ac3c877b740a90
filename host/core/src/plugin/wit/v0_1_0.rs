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
use super::Answer;
use crate::plugin::generate::NewSecret;
use crate::plugin::imports::{Gate, Gated, LogLevel, SqlError, SqlValue, VaultError};
use crate::plugin::{
    Access, Capability, Description, Failure, Operation, PlannedAction, RunState, Step, StepContext, VaultGrant,
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
            access: Access::Values,
            visible_fields: Vec::new(),
        })
    }

    /// `plan`, with the summaries as the plugin wrote them (unredacted).
    pub fn plan(&mut self, store: &mut Store<RunState>, ctx: &StepContext) -> Answer<Vec<PlannedAction>> {
        let wctx = self.context(ctx);
        let raw = self.rotator().call_plan(store, &wctx);
        self.context = Some(wctx);
        Ok(raw?.map(actions).map_err(failure))
    }

    /// `create`: the new secret's JSON text, unchecked, which this version's
    /// plugins write whole.
    pub fn create(&mut self, store: &mut Store<RunState>, ctx: &StepContext) -> Answer<NewSecret> {
        let wctx = self.context(ctx);
        let raw = self.rotator().call_create(store, &wctx);
        self.context = Some(wctx);
        Ok(raw?.map(NewSecret::whole).map_err(failure))
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

super::shared::shared_imports!();

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
