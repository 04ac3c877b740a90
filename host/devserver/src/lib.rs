//! `rotator dev`: an in-memory, Vault-compatible server for development,
//! like `vault server -dev`.
//!
//! It speaks Vault's HTTP API closely enough that real clients (hvac,
//! rotator's own [`crate::vault`] client, and the calls the `vault` CLI makes
//! for `status` and `kv`) work against it unchanged: the same paths, methods,
//! status codes and JSON shapes, taken from the samples in
//! `shared/contracts/vault/`. Nothing is persisted and there is no TLS; the
//! banner says so loudly.
//!
//! How a request flows:
//!
//! - `http` turns the HTTP request into a logical `Request` (Vault's
//!   method-to-operation rules, `?list=true`, the merge-patch content type),
//!   answers the unauthenticated sys/ endpoints, checks the token, and routes
//!   by the longest mount prefix, as Vault's router does.
//! - `faults` may disturb the request first (tests of clients) and counts
//!   every answer.
//! - `access` checks the token (expiry, uses) and its policies (`policy`)
//!   for the operation on the path; `routing` sends the request to its
//!   engine by the longest mount prefix.
//! - `mounts` is the mount table: path prefix to `mounts::Engine`. New
//!   engines (database, ...) are new variants there.
//! - `sys`, `token`, `auth` (AppRole, JWT, Kubernetes), `kv1`, `kv2` and
//!   `database` (PostgreSQL credentials) are the engines; `leases` is the
//!   lease table dynamic secrets use, and `expiry` the task that revokes
//!   what has run out (next to it runs the database engine's static-role
//!   rotation task).
//! - `wrapping` stores answers behind single-use wrapping tokens
//!   (`X-Vault-Wrap-TTL`, sys/wrapping/*).
//! - `response` is the only place that knows the wire shapes.
//!
//! All state sits behind one `std::sync::Mutex`. Handlers run under it and
//! never await; one that must (revoking a database credential) answers
//! [`Handled::Later`] with a future that runs after the lock is released.
//! Logs name paths and statuses only, never secret values or tokens.

mod access;
mod auth;
mod database;
mod expiry;
mod faults;
mod http;
mod kv1;
mod kv2;
mod leases;
mod mounts;
mod policy;
mod response;
mod routing;
mod sys;
mod token;
mod ttl;
mod util;
mod wrapping;

pub use faults::{DevServerStats, FaultRules, SeenRequest};
pub use http::{DRAIN_LIMIT, MAX_REQUEST_SIZE};

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Map, Value};
use time::OffsetDateTime;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

use faults::Faults;
use leases::LeaseTable;
use mounts::MountTable;
use policy::PolicyStore;
use response::Reply;
use token::TokenStore;
use wrapping::WrapStore;

/// The Vault release whose API the dev server follows; reported by
/// sys/health and sys/seal-status with a build tag saying what it really is.
const VAULT_VERSION: &str = "1.16.0+rotator.dev";

/// How to start the dev server.
#[derive(Clone)]
pub struct DevServerOptions {
    /// Where to listen; port 0 picks a free port.
    pub addr: SocketAddr,
    /// The root token clients must send. Empty: a random `hvs.` token.
    pub root_token: String,
    /// Faults to inject from the start (tests); see [`DevServer::set_faults`].
    pub faults: Option<FaultRules>,
}

impl Default for DevServerOptions {
    fn default() -> Self {
        Self { addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 8200)), root_token: String::new(), faults: None }
    }
}

impl std::fmt::Debug for DevServerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevServerOptions")
            .field("addr", &self.addr)
            .field("faults", &self.faults)
            .finish_non_exhaustive()
    }
}

/// A running dev server. Dropping it stops serving; [`DevServer::shutdown`]
/// also waits for the server task to end.
pub struct DevServer {
    addr: SocketAddr,
    root_token: String,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
    expiry: JoinHandle<()>,
}

impl std::fmt::Debug for DevServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevServer").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl DevServer {
    /// Bind (port 0 allowed) and serve in a background tokio task.
    pub async fn start(options: DevServerOptions) -> std::io::Result<DevServer> {
        let listener = tokio::net::TcpListener::bind(options.addr).await?;
        let addr = listener.local_addr()?;
        let root_token = if options.root_token.is_empty() { random_token() } else { options.root_token };
        let shared = Arc::new(Shared::new(&root_token, options.faults));
        let expiry = tokio::spawn(background(Arc::clone(&shared)));
        let app = http::router(Arc::clone(&shared));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        tracing::info!(%addr, "vault dev server listening");
        Ok(DevServer { addr, root_token, shared, stop: Some(stop), task: Some(task), expiry })
    }

    /// Change (or with `None`, stop) fault injection; takes effect for the
    /// next request.
    pub fn set_faults(&self, rules: Option<FaultRules>) {
        self.shared.faults.set_rules(rules);
    }

    /// Counts of the requests answered so far, by path and by status.
    pub fn stats(&self) -> DevServerStats {
        self.shared.faults.stats()
    }

    /// Start (or restart, emptying it) the request log: from now on every
    /// request is kept as the server resolved it ([`SeenRequest`]), up to
    /// [`faults::MAX_LOGGED_REQUESTS`]. Off by default: a long-running
    /// `rotator dev` keeps nothing.
    pub fn start_request_log(&self) {
        self.shared.faults.start_log();
    }

    /// The requests logged since [`start_request_log`](Self::start_request_log),
    /// oldest first; the log is emptied and stays on.
    pub fn take_request_log(&self) -> Vec<SeenRequest> {
        self.shared.faults.take_log()
    }

    /// The address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// "http://127.0.0.1:PORT" (a wildcard bind is reported as loopback).
    pub fn url(&self) -> String {
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!("http://{}", SocketAddr::new(ip, self.addr.port()))
    }

    /// The token that is allowed everything.
    pub fn root_token(&self) -> &str {
        &self.root_token
    }

    /// The loud multi-line "not for production" banner with address and root
    /// token, like `vault server -dev` prints.
    pub fn banner(&self) -> String {
        let url = self.url();
        let token = &self.root_token;
        format!(
            "\
==> rotator dev server started! It is NOT for production.

WARNING! Dev mode is enabled. This server keeps everything in memory, so
every secret is lost when it stops. It listens without TLS and it grants
everything to the root token printed below. Never store real secrets in it.

To point the vault CLI, hvac or rotator at it:

    $ export VAULT_ADDR='{url}'
    $ export VAULT_TOKEN='{token}'

Address:    {url}
Root Token: {token}
Mounts:     secret/ (kv version 2), cubbyhole/

Development mode should NOT be used in production installations!
"
        )
    }

    /// Stop serving and wait for the task to end.
    pub async fn shutdown(mut self) {
        self.expiry.abort();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            match task.await {
                Ok(Ok(())) => tracing::info!(addr = %self.addr, "vault dev server stopped"),
                Ok(Err(e)) => {
                    tracing::warn!(addr = %self.addr, error = %e, "vault dev server failed")
                }
                Err(e) => {
                    tracing::warn!(addr = %self.addr, error = %e, "vault dev server task ended abnormally")
                }
            }
        }
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        // Stop serving even when nobody awaited shutdown().
        self.expiry.abort();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The server's background work, aborted as one task when it stops: the
/// expiry task and the database engine's static-role rotations.
async fn background(shared: Arc<Shared>) {
    tokio::join!(expiry::run(Arc::clone(&shared)), database::run_rotations(shared));
}

/// A random root token in Vault's service-token style.
fn random_token() -> String {
    token::random_token_id()
}

/// Eight random hex digits (accessors, cluster names).
pub(crate) fn random_hex8() -> String {
    format!("{:08x}", rand::random::<u32>())
}

/// Facts about the server that never change while it runs.
pub(crate) struct ServerInfo {
    pub cluster_name: String,
    pub cluster_id: String,
    pub version: &'static str,
}

/// Everything the request handlers share.
pub(crate) struct Shared {
    pub info: ServerInfo,
    state: Mutex<State>,
    /// Fault injection and counters: checked before the state is touched.
    pub faults: Faults,
    /// Wakes the expiry task when something may expire sooner.
    pub wake: Arc<Notify>,
}

impl Shared {
    fn new(root_token: &str, faults: Option<FaultRules>) -> Self {
        let wake = Arc::new(Notify::new());
        let now = OffsetDateTime::now_utc();
        Self {
            info: ServerInfo {
                cluster_name: format!("vault-cluster-{}", random_hex8()),
                cluster_id: uuid::Uuid::new_v4().to_string(),
                version: VAULT_VERSION,
            },
            state: Mutex::new(State {
                mounts: MountTable::with_defaults(),
                tokens: TokenStore::with_root(root_token, now),
                policies: PolicyStore::with_defaults(),
                leases: LeaseTable::default(),
                wraps: WrapStore::default(),
                wake: Arc::clone(&wake),
            }),
            faults: Faults::new(faults),
            wake,
        }
    }

    /// The state. A panic in one handler must not take the server down, so
    /// a poisoned lock is taken over rather than propagated.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The mutable state: the mount table (with each engine's data), the
/// token store, the policies and the lease table.
pub(crate) struct State {
    pub mounts: MountTable,
    pub tokens: TokenStore,
    pub policies: PolicyStore,
    pub leases: LeaseTable,
    /// Answers wrapped behind wrapping tokens.
    pub wraps: WrapStore,
    /// Tell the expiry task something new may expire (`notify_one`).
    pub wake: Arc<Notify>,
}

/// A boxed future for work that must run without the state lock.
pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A handler's answer: ready now, or after async work done with the state
/// lock released (revoking leases, talking to a database).
pub(crate) enum Handled {
    Now(Reply),
    Later(BoxFuture<Reply>),
}

impl From<Reply> for Handled {
    fn from(reply: Reply) -> Self {
        Handled::Now(reply)
    }
}

/// Vault's logical operations, derived from the HTTP method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Operation {
    Read,
    /// POST and PUT. Engines have one handler for Vault's create and
    /// update; the ACL check tells them apart by the engine's existence
    /// check (see `policy::required`).
    Write,
    Patch,
    Delete,
    List,
    Head,
}

/// One authenticated logical request, as engines see it.
pub(crate) struct Request {
    pub op: Operation,
    /// The path after `/v1/` (with a trailing "/" for LIST, as Vault adds).
    pub path: String,
    /// The JSON body for writes and patches, the query for everything else.
    pub data: Map<String, Value>,
    /// The caller's token (already checked); empty for logins.
    pub client_token: String,
    /// Its accessor, to key per-token storage without keeping the token.
    pub token_accessor: String,
    /// Its policies (empty for logins).
    pub policies: Vec<String>,
    pub now: OffsetDateTime,
    /// `X-Vault-Wrap-TTL` in seconds: the answer will be wrapped.
    pub wrap_ttl: Option<u64>,
}

impl Request {
    /// The caller holds the `root` policy.
    pub fn is_root(&self) -> bool {
        self.policies.iter().any(|p| p == "root")
    }
}
