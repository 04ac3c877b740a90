//! The daemon's operator HTTP API: health, KV reads and writes, one-off
//! rotations, dynamic credentials and their leases, the daemon's own token.
//!
//! Every route is one entry of [`ROUTES`]: its method, its axum pattern, who
//! may call it and its handler. [`router`] builds the server from that list,
//! and the OpenAPI document (`openapi.json`, served at `GET /openapi.json`)
//! is checked against it by a test, so a route cannot be served without
//! being documented or documented without being served. Adding a route means
//! adding a [`Route`] here and its operation to `openapi.json`.
//!
//! Every route except the health probes (`/healthz`, `/livez`, `/readyz`,
//! which answer a status word and nothing else) and the dashboard's static
//! files needs `Authorization: Bearer <token>` ([`auth`]); `/status`, with
//! job ids, paths and leases, is guarded like the rest. Request bodies are
//! capped at [`MAX_REQUEST_BODY`], refused before they are read when their
//! declared length is over it ([`body`]). The dashboard
//! ([`dashboard`], at `/`) holds no data itself: the page calls the guarded
//! routes with the token the operator gives it. Secret values in answers become `"<redacted>"` unless
//! the daemon runs with `reveal_secrets`. Errors are `{"error": "…"}` with a
//! status that says whose fault it was ([`error`]).

mod auth;
mod body;
mod dashboard;
mod error;
mod health;
pub mod jobs;
mod kv;
mod leases;
mod observe;
mod openapi;
mod params;
mod rotate;

use std::sync::{Arc, RwLock};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use axum::{Json, Router};
use serde_json::{Map, Value};

use rotator_core::plugin::Runtime;
use rotator_core::secret::SecretJson;
use rotator_core::vault::VaultClient;
use rotator_core::vault::leases::LeaseManager;
use rotator_core::vault::lifetime::TokenStatus;

pub use auth::{API_TOKEN_ENV, ApiToken, ApiTokenError, MIN_TOKEN_LEN};
pub use body::MAX_REQUEST_BODY;
pub use dashboard::CONTENT_SECURITY_POLICY;
pub use error::ApiError;
pub use rotate::BuiltinPlugins;

/// What every secret value in an answer becomes unless secrets are revealed.
pub const REDACTED: &str = "<redacted>";

/// What the API can see of the daemon.
pub struct ApiState {
    /// The live job registry: `/status`, `/scheduler/jobs` and `/jobs/{id}`
    /// show what it holds now.
    pub jobs: crate::scheduler::registry::Registry,
    pub started: Instant,
    pub token: Arc<RwLock<TokenStatus>>,
    pub leases: LeaseManager<Option<VaultClient>>,
    /// The client API calls to Vault go through (the daemon's identity);
    /// `None` when the daemon runs without Vault.
    pub vault: Option<VaultClient>,
    pub options: ApiOptions,
    /// Adds, removes and rotates jobs; the live feed.
    pub scheduler: crate::scheduler::Scheduler,
    /// Rendered at `/metrics`.
    pub metrics: rotator_core::metrics::Metrics,
    /// Turns true when the daemon stops: long-lived answers (the live
    /// feed) end then.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// The public `/readyz` probe's last answer and when it was found.
    pub ready_probe: health::ProbeCache,
    /// Reads the config file again (`POST /reload`); `None` for a daemon
    /// not started from a file.
    pub reloader: Option<Arc<crate::reload::Reloader>>,
    /// With `[daemon] replicas`: this replica (its `/status` part, and the
    /// kept API jobs announced to the others).
    pub replicas: Option<crate::replicas::Replicas>,
    /// The ids of the jobs added through the API or restored from their
    /// kept definitions: the ones another replica's removal may remove.
    pub kept_jobs: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

/// How the API guards itself and what it may show.
pub struct ApiOptions {
    /// The bearer token every non-health route demands.
    pub token: ApiToken,
    /// Show secret values instead of [`REDACTED`].
    pub reveal_secrets: bool,
    /// The built-in plugins one-off rotations run.
    pub plugins: BuiltinPlugins,
    /// The only directories a job added through the API may load a plugin
    /// file from (`[daemon] plugin_dirs`); empty: built-ins only.
    pub plugin_dirs: Vec<std::path::PathBuf>,
}

impl ApiOptions {
    /// Options that redact secrets and allow built-in plugins only for jobs
    /// added at run time; rotations load built-ins from `runtime`.
    pub fn new(token: ApiToken, runtime: Arc<Runtime>) -> Self {
        Self { token, reveal_secrets: false, plugins: BuiltinPlugins::new(runtime), plugin_dirs: Vec::new() }
    }
}

impl ApiState {
    /// Note that the API job `id` is (`true`) or is no longer (`false`) one
    /// of the kept jobs, and tell the other replicas.
    pub fn kept(&self, id: &str, kept: bool) {
        let mut jobs = self.kept_jobs.lock().unwrap_or_else(|p| p.into_inner());
        let changed = if kept { jobs.insert(id.to_owned()) } else { jobs.remove(id) };
        if let (true, Some(r)) = (changed, &self.replicas) {
            r.jobs_changed();
        }
    }

    /// The Vault client, or the answer for a daemon that runs without
    /// Vault (routes about Vault's KV, tokens and leases do not exist then).
    pub fn vault(&self) -> Result<&VaultClient, ApiError> {
        self.vault.as_ref().ok_or_else(|| {
            ApiError::not_found(
                "this daemon runs without Vault ([daemon] state is in AWS and there is no [vault] section)",
            )
        })
    }

    /// A secret's fields as an answer shows them: each value replaced by
    /// [`REDACTED`] unless secrets are revealed.
    pub fn show(&self, data: &SecretJson) -> Value {
        let fields = data.fields();
        if self.options.reveal_secrets {
            return Value::Object(fields);
        }
        Value::Object(fields.into_iter().map(|(k, _)| (k, Value::from(REDACTED))).collect::<Map<_, _>>())
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone who can reach the port: health probes and the dashboard's
    /// static files, none of which hold data.
    Public,
    /// Callers presenting the API token.
    Token,
}

/// The handler of a route, given the method filter of its entry.
pub type Handler = fn(MethodFilter) -> MethodRouter<Arc<ApiState>>;

/// One route: the single source of truth for the router and the OpenAPI test.
pub struct Route {
    pub method: Method,
    /// axum pattern; `{*name}` captures the rest, slashes included, and is
    /// documented as `{name}`.
    pub pattern: &'static str,
    pub access: Access,
    pub handler: Handler,
    /// More documented paths the same handler answers (it dispatches on the
    /// captured rest, as `POST /kv/{path}/rotate` does).
    pub also: &'static [&'static str],
}

impl Route {
    const fn new(method: Method, pattern: &'static str, access: Access, handler: Handler) -> Self {
        Self { method, pattern, access, handler, also: &[] }
    }

    /// Every OpenAPI path this route answers.
    pub fn documented_paths(&self) -> Vec<String> {
        let mut paths = vec![self.pattern.replace("{*", "{")];
        paths.extend(self.also.iter().map(|p| (*p).to_owned()));
        paths
    }
}

use Access::{Public, Token};

/// Every route the API serves.
pub const ROUTES: &[Route] = &[
    Route::new(Method::GET, "/", Public, |m| on(m, dashboard::index)),
    Route::new(Method::GET, "/assets/app.js", Public, |m| on(m, dashboard::app_js)),
    Route::new(Method::GET, "/assets/style.css", Public, |m| on(m, dashboard::style_css)),
    Route::new(Method::GET, "/assets/icon.png", Public, |m| on(m, dashboard::icon_png)),
    Route::new(Method::GET, "/healthz", Public, |m| on(m, health::alive)),
    Route::new(Method::GET, "/livez", Public, |m| on(m, health::alive)),
    Route::new(Method::GET, "/readyz", Public, |m| on(m, health::readyz)),
    Route::new(Method::GET, "/status", Token, |m| on(m, health::status)),
    Route::new(Method::GET, "/token", Token, |m| on(m, health::token)),
    Route::new(Method::GET, "/openapi.json", Token, |m| on(m, openapi::document)),
    Route::new(Method::GET, "/kv/{*path}", Token, |m| on(m, kv::read)),
    Route {
        method: Method::POST,
        pattern: "/kv/{*path}",
        access: Token,
        handler: |m| on(m, kv::write_or_rotate),
        also: &["/kv/{path}/rotate"],
    },
    Route::new(Method::GET, "/dynamic/{role}", Token, |m| on(m, leases::dynamic)),
    Route::new(Method::GET, "/leases", Token, |m| on(m, leases::list)),
    Route::new(Method::DELETE, "/leases/{*lease_id}", Token, |m| on(m, leases::revoke)),
    Route::new(Method::POST, "/rotate/database-root", Token, |m| on(m, rotate::database_root)),
    Route::new(Method::POST, "/reload", Token, |m| on(m, jobs::reload)),
    Route::new(Method::GET, "/scheduler/jobs", Token, |m| on(m, jobs::list)),
    Route::new(Method::POST, "/scheduler/jobs", Token, |m| on(m, jobs::add)),
    Route::new(Method::DELETE, "/scheduler/jobs/{id}", Token, |m| on(m, jobs::remove)),
    Route::new(Method::GET, "/jobs/{id}", Token, |m| on(m, jobs::show)),
    Route::new(Method::POST, "/jobs/{id}/rotate", Token, |m| on(m, jobs::rotate_now)),
    Route::new(Method::POST, "/jobs/{id}/adopted", Token, |m| on(m, jobs::adopted)),
    Route::new(Method::GET, "/events", Token, |m| on(m, observe::events)),
    Route::new(Method::GET, "/metrics", Token, |m| on(m, observe::metrics)),
];

/// The API's router: [`ROUTES`], guarded, with JSON answers for unknown
/// paths and methods.
///
/// Layers, outermost first: a panic in any handler is caught ([`catch_panics`]);
/// the token is checked (guarded routes); the body is bounded ([`body`]),
/// so a caller without the token never gets a byte of its body read.
pub fn router(state: Arc<ApiState>) -> Router {
    let mut router = Router::new();
    for route in ROUTES {
        let filter = MethodFilter::try_from(route.method.clone()).expect("ROUTES use standard methods");
        let mut handler = (route.handler)(filter).layer(middleware::from_fn(body::limit));
        if route.access == Token {
            handler = handler.route_layer(middleware::from_fn_with_state(state.clone(), auth::require_token));
        }
        router = router.route(route.pattern, handler);
    }
    router
        .fallback(no_route)
        .method_not_allowed_fallback(no_method)
        .layer(middleware::from_fn_with_state(state.clone(), catch_panics))
        .with_state(state)
}

/// A handler that panics answers 500 in the API's shape; the panic is
/// logged and counted, and `/readyz` turns unready ([`rotator_core::supervise`]).
async fn catch_panics(State(state): State<Arc<ApiState>>, req: Request, next: Next) -> Response {
    match rotator_core::supervise::catch(&state.metrics, "api", None, next.run(req)).await {
        Ok(response) => response,
        Err(panicked) => ApiError::internal(panicked.to_string()).into_response(),
    }
}

async fn no_route(req: Request) -> ApiError {
    ApiError::not_found(format!("no such endpoint: {} {}", req.method(), req.uri().path()))
}

async fn no_method(req: Request) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
}

/// `Json` with the answer type this API always uses.
type Answer = Result<Json<Value>, ApiError>;
