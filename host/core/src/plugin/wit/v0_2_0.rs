//! The adapter for `rotator:plugin@0.2.0` (`wit/rotator-plugin@0.2.0/`).
//!
//! As the 0.1.0 adapter, it owns this version's `bindgen!`, names and
//! conversions, and nothing of the host's logic. What 0.2.0 adds is mapped
//! here onto the domain: the `http` import (to [`HttpRequest`] and back),
//! secrets shown through the run's handle table (the context's current
//! secret, the pending one, and every `kv-read`), and a `create` that
//! returns a [`NewSecret`] for the run to complete.

use std::time::Duration;

use wasmtime::Store;
use wasmtime::component::{Component, InstancePre, Linker};

use self::generated::exports::rotator::plugin::rotator as export;
use self::generated::rotator::plugin::{http, log, sql, types, vault};
use super::Answer;
use crate::plugin::generate::{GeneratedField, NewSecret, ValuePolicy};
use crate::plugin::handles::{SecretAccess, ShownSecret};
use crate::plugin::imports::http::{Auth, Body, Capture, CaptureSource, HttpError, HttpRequest, HttpResponse, Text};
use crate::plugin::imports::{Gate, Gated, LogLevel, SqlError, SqlValue, VaultError};
use crate::plugin::{
    Access, Capability, Description, Failure, HttpGrant, Operation, PlannedAction, RunState, Step, StepContext,
    VaultGrant,
};
use crate::secret::SecretJson;

mod generated {
    wasmtime::component::bindgen!({
        world: "plugin",
        path: "../../wit/rotator-plugin@0.2.0",
    });
}

/// The WIT package version this adapter speaks.
pub const VERSION: &str = "0.2.0";

/// The interface every plugin of this version exports.
pub const EXPORT: &str = "rotator:plugin/rotator@0.2.0";

/// The host's interfaces a plugin of this version may import.
pub const IMPORTS: &[&str] = &[
    "rotator:plugin/types@0.2.0",
    "rotator:plugin/vault@0.2.0",
    "rotator:plugin/sql@0.2.0",
    "rotator:plugin/http@0.2.0",
    "rotator:plugin/log@0.2.0",
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
            access: match info.access {
                types::SecretAccess::Values => Access::Values,
                types::SecretAccess::Handles => Access::Handles,
            },
            visible_fields: info.visible_fields,
        })
    }

    /// `plan`, with the summaries as the plugin wrote them (unredacted).
    pub fn plan(&mut self, store: &mut Store<RunState>, ctx: &StepContext) -> Answer<Vec<PlannedAction>> {
        let wctx = self.context(store, ctx);
        let raw = self.rotator().call_plan(&mut *store, &wctx);
        self.context = Some(wctx);
        Ok(raw?.map(actions).map_err(failure))
    }

    /// `create`: the plugin's part of the new secret, for the run to
    /// complete.
    pub fn create(&mut self, store: &mut Store<RunState>, ctx: &StepContext) -> Answer<NewSecret> {
        let wctx = self.context(store, ctx);
        let raw = self.rotator().call_create(&mut *store, &wctx);
        self.context = Some(wctx);
        Ok(raw?.map(new_secret).map_err(failure))
    }

    /// One of the steps given the pending secret: `set`, `test`, `finish`
    /// or `rollback`. The pending secret is shown through the handle table.
    pub fn pending_step(
        &mut self,
        store: &mut Store<RunState>,
        step: Step,
        ctx: &StepContext,
        pending: &SecretJson,
    ) -> Answer<()> {
        let wctx = self.context(store, ctx);
        let host = &mut store.data_mut().host;
        let secret = secret(host.handles.show("pending", pending, &host.access), None);
        let r = self.rotator();
        let raw = match step {
            Step::Set => r.call_set(&mut *store, &wctx, &secret),
            Step::Test => r.call_test(&mut *store, &wctx, &secret),
            Step::Finish => r.call_finish(&mut *store, &wctx, &secret),
            _ => r.call_rollback(&mut *store, &wctx, &secret),
        };
        self.context = Some(wctx);
        Ok(raw?.map_err(failure))
    }

    /// The WIT context for `ctx`, taken from the cache if it is the same
    /// rotation and attempt (the handles it names are still in the table).
    fn context(&mut self, store: &mut Store<RunState>, ctx: &StepContext) -> types::Context {
        if let Some(cached) = self.context.take()
            && cached.rotation_id == ctx.rotation_id
            && cached.attempt == ctx.attempt
        {
            return cached;
        }
        let host = &mut store.data_mut().host;
        let access = host.access.clone();
        types::Context {
            job_id: ctx.job_id.clone(),
            rotation_id: ctx.rotation_id.clone(),
            settings: ctx.settings.to_string(),
            current: ctx.current.as_ref().map(|c| secret(host.handles.show("current", &c.data, &access), c.version)),
            attempt: ctx.attempt,
            access: match access {
                SecretAccess::Values => types::SecretAccess::Values,
                SecretAccess::Handles { .. } => types::SecretAccess::Handles,
            },
        }
    }
}

fn secret(shown: ShownSecret, version: Option<u64>) -> types::Secret {
    let handles = shown.handles.into_iter().map(|(field, handle)| types::FieldHandle { field, handle }).collect();
    types::Secret { data: shown.data, handles, version }
}

fn new_secret(n: types::NewSecret) -> NewSecret {
    let generate = n
        .generate
        .into_iter()
        .map(|g| GeneratedField {
            field: g.field,
            policy: ValuePolicy {
                length: g.policy.length,
                alphabet: g.policy.alphabet,
                rules: g.policy.rules.into_iter().map(|r| (r.charset, r.min_chars)).collect(),
            },
        })
        .collect();
    NewSecret { data: n.data, generate }
}

fn capability(c: types::Capability) -> Capability {
    match c {
        types::Capability::Vault(v) => Capability::Vault(VaultGrant {
            path: v.path,
            operations: v.operations.into_iter().map(operation).collect(),
        }),
        types::Capability::Sql(connection) => Capability::Sql(connection),
        types::Capability::Http(h) => {
            Capability::Http(HttpGrant { origin: h.origin, paths: h.paths, methods: h.methods })
        }
    }
}

super::shared::shared_imports!();

impl vault::Host for Gate<'_> {
    /// In handle mode the plugin is shown only the visible fields of what
    /// it read, and a handle for each field.
    fn kv_read(&mut self, mount: String, path: String) -> Result<Option<types::Secret>, vault::VaultError> {
        let found = self.vault("vault.kv-read").and_then(|h| h.kv_read(mount, path)).map_err(vault_error)?;
        let host = self.state();
        Ok(found.map(|s| secret(host.handles.show_read(&s.data, &host.access), s.version)))
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

impl http::Host for Gate<'_> {
    fn send(&mut self, request: http::Request) -> Result<http::Response, http::HttpError> {
        let request = request_in(request);
        self.http("http.send").and_then(|h| h.http_send(request)).map(response_out).map_err(http_error)
    }
}

fn text(t: http::Text) -> Text {
    match t {
        http::Text::Plain(s) => Text::Plain(s),
        http::Text::Secret(h) => Text::Secret(h),
    }
}

fn pairs(list: Vec<(String, http::Text)>) -> Vec<(String, Text)> {
    list.into_iter().map(|(k, v)| (k, text(v))).collect()
}

fn request_in(r: http::Request) -> HttpRequest {
    HttpRequest {
        method: r.method,
        url: r.url,
        query: pairs(r.query),
        headers: r.headers.into_iter().map(|h| (h.name, text(h.value))).collect(),
        body: match r.body {
            http::Body::Empty => Body::Empty,
            http::Body::Bytes(b) => Body::Bytes(b),
            http::Body::Json(j) => Body::Json { document: j.document, secrets: j.secrets },
            http::Body::Form(f) => Body::Form(pairs(f)),
        },
        auth: match r.auth {
            http::Auth::None => Auth::None,
            http::Auth::Basic(b) => Auth::Basic { username: text(b.username), password: text(b.password) },
            http::Auth::Bearer(t) => Auth::Bearer(text(t)),
            http::Auth::AwsSigv4(a) => Auth::AwsSigV4 {
                access_key_id: text(a.access_key_id),
                secret_access_key: a.secret_access_key,
                session_token: a.session_token.map(text),
                region: a.region,
                service: a.service,
            },
        },
        captures: r
            .captures
            .into_iter()
            .map(|c| Capture {
                field: c.field,
                source: match c.source {
                    http::CaptureSource::JsonPointer(p) => CaptureSource::JsonPointer(p),
                    http::CaptureSource::XmlPath(p) => CaptureSource::XmlPath(p),
                },
            })
            .collect(),
        timeout: r.timeout_ms.map(|ms| Duration::from_millis(ms.into())),
    }
}

fn response_out(r: HttpResponse) -> http::Response {
    http::Response {
        status: r.status,
        headers: r.headers,
        body: r.body,
        captured: r.captured.into_iter().map(|(field, handle)| types::FieldHandle { field, handle }).collect(),
    }
}

fn http_error(e: HttpError) -> http::HttpError {
    match e {
        HttpError::Denied(m) => http::HttpError::Denied(m),
        HttpError::InvalidRequest(m) => http::HttpError::InvalidRequest(m),
        HttpError::Dns(m) => http::HttpError::Dns(m),
        HttpError::Connect(m) => http::HttpError::Connect(m),
        HttpError::Tls(m) => http::HttpError::Tls(m),
        HttpError::Timeout(m) => http::HttpError::Timeout(m),
        HttpError::TooLarge(m) => http::HttpError::TooLarge(m),
        HttpError::BadResponse(m) => http::HttpError::BadResponse(m),
    }
}
