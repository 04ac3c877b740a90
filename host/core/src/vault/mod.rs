//! The Vault client: one HTTP client, one token, typed errors.
//!
//! Everything rotator does in Vault goes through [`VaultClient::request`], so
//! the dev server and a production Vault see exactly the same calls. A
//! request names a canonical [`VaultPath`] ([`path`]); its URL is built from
//! the path's segments ([`api_url`]), never by pasting text, so the path a
//! grant was checked against is the path Vault receives. KV
//! helpers on top of it live in [`kv`]. Vault's `{"errors": [...]}` answers
//! become [`VaultError::Status`] with the status code and messages; an error
//! status whose body is not JSON (a proxy's HTML page) becomes the same typed
//! error with no messages, so it is retried like any other. A `Retry-After`
//! on a 429 or 503 is honoured, up to [`MAX_RETRY_AFTER`].
//! With [`VaultClient::with_metrics`], every HTTP exchange (each retry
//! included) is counted by status in `rotator_vault_requests_total`.

pub mod auth;
mod error;
pub mod kv;
pub mod leases;
pub mod lifetime;
pub mod path;
pub mod retry;
#[cfg(test)]
mod stub_tests;
#[cfg(test)]
mod tests;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::metrics::Metrics;

pub use auth::{AuthMethod, KUBERNETES_JWT_PATH, TokenLease};
pub use error::{AnswerError, VaultError};
pub use kv::{KvSecret, KvVersion};
pub use path::{AsVaultPath, PathError, VaultPath};
pub use retry::{Backoff, RequestRetry};

/// How to reach Vault.
#[derive(Clone)]
pub struct VaultOptions {
    /// e.g. `https://vault.example:8200` or `http://127.0.0.1:8200`.
    pub address: String,
    pub token: SecretString,
    pub namespace: Option<String>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// PEM file of the CA that signed Vault's certificate (`VAULT_CACERT`).
    pub ca_cert: Option<std::path::PathBuf>,
    /// Retries of one request on transient failures.
    pub retry: RequestRetry,
}

impl VaultOptions {
    /// Options with defaults for everything but address and token.
    pub fn new(address: impl Into<String>, token: SecretString) -> Self {
        Self {
            address: address.into(),
            token,
            namespace: None,
            timeout: Duration::from_secs(10),
            ca_cert: None,
            retry: RequestRetry::default(),
        }
    }
}

/// A cheap-to-clone handle on one Vault identity.
#[derive(Clone)]
pub struct VaultClient {
    inner: Arc<Inner>,
}

struct Inner {
    base: String,
    /// `base` parsed once; every request URL is built from it and a
    /// [`VaultPath`]'s segments ([`api_url`]).
    base_url: reqwest::Url,
    /// Replaced when the token watcher logs in again.
    token: RwLock<SecretString>,
    namespace: Option<String>,
    retry: RequestRetry,
    http: reqwest::Client,
    /// KV version per mount, learned on first use.
    kv_versions: std::sync::Mutex<std::collections::HashMap<String, KvVersion>>,
    /// Where requests are counted, if anywhere.
    metrics: RwLock<Option<Metrics>>,
}

impl std::fmt::Debug for VaultClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultClient").field("address", &self.inner.base).finish_non_exhaustive()
    }
}

/// A successful answer: the status and the body (`None` for 204).
#[derive(Debug)]
pub struct VaultResponse {
    pub status: u16,
    pub body: Option<Value>,
}

impl VaultClient {
    pub fn new(options: VaultOptions) -> Result<Self, VaultError> {
        install_crypto_provider();
        let base = options.address.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(VaultError::Config(format!("vault address `{base}` must start with http:// or https://")));
        }
        let base_url = reqwest::Url::parse(&base)
            .ok()
            .filter(|u| !u.cannot_be_a_base() && u.query().is_none() && u.fragment().is_none())
            .ok_or_else(|| VaultError::Config(format!("vault address `{base}` is not a base URL")))?;
        let mut builder = reqwest::Client::builder().timeout(options.timeout);
        if let Some(path) = &options.ca_cert {
            let pem = std::fs::read(path)
                .map_err(|e| VaultError::Config(format!("cannot read CA certificate {}: {e}", path.display())))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| VaultError::Config(format!("{} is not a PEM certificate: {e}", path.display())))?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder.build().map_err(|e| VaultError::Config(format!("cannot build HTTP client: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                base,
                base_url,
                token: RwLock::new(options.token),
                namespace: options.namespace,
                retry: options.retry,
                http,
                kv_versions: Default::default(),
                metrics: RwLock::new(None),
            }),
        })
    }

    /// Count every HTTP exchange in `metrics` from now on. Clones of this
    /// client share the setting (they share one connection pool too).
    pub fn with_metrics(self, metrics: Metrics) -> Self {
        *self.inner.metrics.write().unwrap_or_else(|p| p.into_inner()) = Some(metrics);
        self
    }

    /// Record one exchange: its status, or `None` when no response came.
    fn count(&self, status: Option<u16>) {
        if let Some(m) = self.inner.metrics.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
            m.vault_request(status);
        }
    }

    /// Use `token` from now on (after a fresh login).
    pub fn set_token(&self, token: SecretString) {
        *self.inner.token.write().unwrap_or_else(|p| p.into_inner()) = token;
    }

    /// The current token (for redaction; never log it).
    pub fn token(&self) -> SecretString {
        self.inner.token.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn address(&self) -> &str {
        &self.inner.base
    }

    /// Call `METHOD /v1/<path>` with an optional JSON body. `LIST` is sent
    /// as Vault's LIST verb. A non-2xx answer is an error. Transient
    /// failures are retried per the client's [`RequestRetry`].
    ///
    /// `path` is a [`VaultPath`] (or a [`Target`] with a query), or text the
    /// host writes itself, parsed here by the same rules; a path that is not
    /// canonical is refused ([`VaultError::Path`]) before anything is sent.
    pub async fn request(
        &self,
        method: &str,
        path: impl IntoTarget,
        body: Option<String>,
    ) -> Result<VaultResponse, VaultError> {
        self.request_with(method, path, body, true, self.inner.retry).await
    }

    /// [`request`](Self::request) without the token (logins) and with an
    /// explicit retry policy.
    pub async fn request_with(
        &self,
        method: &str,
        path: impl IntoTarget,
        body: Option<String>,
        authenticated: bool,
        retry: RequestRetry,
    ) -> Result<VaultResponse, VaultError> {
        let target = path.into_target()?;
        let path = target.path.as_str();
        let mut attempt = 1;
        loop {
            // Read per try: a login may have replaced the token meanwhile.
            let token = authenticated.then(|| self.token());
            match self.send(method, &target, body.clone(), token.as_ref()).await {
                Err(Failure { error, retry_after }) if retry.should_retry(attempt, &error) => {
                    let delay = retry_delay(&retry, attempt, retry_after, &mut rand::rng());
                    tracing::debug!(method, path, attempt, %error, delay = %humantime::format_duration(delay), "retrying vault request");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                other => return other.map_err(|f| f.error),
            }
        }
    }

    async fn send(
        &self,
        method: &str,
        target: &Target,
        body: Option<String>,
        token: Option<&SecretString>,
    ) -> Result<VaultResponse, Failure> {
        let path = target.path.as_str();
        let method_name = method.to_ascii_uppercase();
        let http_method = reqwest::Method::from_bytes(method_name.as_bytes())
            .map_err(|_| VaultError::Config(format!("`{method}` is not an HTTP method")))?;
        let url = api_url(&self.inner.base_url, target);
        let mut req = self.inner.http.request(http_method, url).header("X-Vault-Request", "true");
        if let Some(token) = token {
            req = req.header("X-Vault-Token", token.expose_secret());
        }
        if let Some(ns) = &self.inner.namespace {
            req = req.header("X-Vault-Namespace", ns);
        }
        if let Some(body) = body {
            req = req.header("Content-Type", "application/json").body(body);
        }
        let resp = req.send().await.map_err(|e| {
            self.count(None);
            self.unavailable(&e)
        })?;
        let status = resp.status().as_u16();
        self.count(Some(status));
        let retry_after = match status {
            429 | 503 => {
                resp.headers().get(reqwest::header::RETRY_AFTER).and_then(|v| parse_retry_after(v.to_str().ok()?))
            }
            _ => None,
        };
        let bytes = resp.bytes().await.map_err(|e| self.unavailable(&e))?;
        let parsed: Result<Option<Value>, _> =
            if bytes.is_empty() { Ok(None) } else { serde_json::from_slice(&bytes).map(Some) };
        if (200..300).contains(&status) {
            let body = parsed.map_err(|e| VaultError::Protocol {
                path: path.to_owned(),
                message: format!("answer is not JSON ({e})"),
            })?;
            return Ok(VaultResponse { status, body });
        }
        // An error status decides what happens next, whatever the body: a
        // proxy or load balancer in front of Vault answers 502/503 with an
        // HTML page, and that must be retried like Vault's own 503. The body
        // itself is never quoted (it could echo anything).
        let body = parsed.ok().flatten();
        Err(Failure { error: VaultError::from_status(&method_name, path, status, body.as_ref()), retry_after })
    }

    /// Vault could not be reached, or its answer not read.
    fn unavailable(&self, e: &reqwest::Error) -> Failure {
        Failure::from(VaultError::Unavailable { address: self.inner.base.clone(), message: describe_reqwest(e) })
    }

    /// [`request`](Self::request) with `token` instead of the client's own,
    /// to check a candidate token before switching to it. Not retried.
    pub async fn request_as(
        &self,
        token: &SecretString,
        method: &str,
        path: impl IntoTarget,
        body: Option<String>,
    ) -> Result<VaultResponse, VaultError> {
        let target = path.into_target()?;
        self.send(method, &target, body, Some(token)).await.map_err(|f| f.error)
    }

    /// `GET sys/health`: is Vault up, initialized and unsealed?
    pub async fn health(&self) -> Result<Value, VaultError> {
        let resp = self.request("GET", "sys/health", None).await?;
        Ok(resp.body.unwrap_or(Value::Null))
    }
}

/// Where a request goes: a canonical path and, for the host's own calls, a
/// query string (`version=2`, `standbyok=true`). Plugins never set a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub path: VaultPath,
    /// Sent as is after `?`; only ever text the host writes itself.
    pub query: Option<String>,
}

/// What [`VaultClient::request`] takes as a path.
pub trait IntoTarget {
    /// The target, or why the path is refused.
    fn into_target(self) -> Result<Target, PathError>;
}

impl IntoTarget for Target {
    fn into_target(self) -> Result<Target, PathError> {
        Ok(self)
    }
}

impl IntoTarget for &VaultPath {
    fn into_target(self) -> Result<Target, PathError> {
        Ok(Target { path: self.clone(), query: None })
    }
}

/// Host-written text: `sys/health?standbyok=true`. The part before the
/// first `?` is parsed like any path; the rest is the query.
impl IntoTarget for &str {
    fn into_target(self) -> Result<Target, PathError> {
        let (path, query) = match self.split_once('?') {
            Some((path, query)) => (path, Some(query.to_owned())),
            None => (self, None),
        };
        Ok(Target { path: VaultPath::parse(path)?, query })
    }
}

impl IntoTarget for &String {
    fn into_target(self) -> Result<Target, PathError> {
        self.as_str().into_target()
    }
}

/// The URL of `target` under `base`: `base`'s own path (if Vault sits
/// under a prefix), then `v1`, then the canonical segments, each pushed as
/// one segment (the url crate encodes what a segment must not hold). No
/// text is concatenated, so no segment can become two or vanish.
pub fn api_url(base: &reqwest::Url, target: &Target) -> reqwest::Url {
    let mut url = base.clone();
    url.path_segments_mut()
        .expect("VaultClient::new checked the base can hold a path")
        .pop_if_empty()
        .push("v1")
        .extend(target.path.segments());
    url.set_query(target.query.as_deref());
    url
}

/// The longest `Retry-After` honoured: a server asking for more still gets
/// retried after this long (the caller's own retry budget decides the rest).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// One failed exchange: the error, and how long the server asked us to wait
/// before trying again (`Retry-After` on a 429 or 503), if it said.
struct Failure {
    error: VaultError,
    retry_after: Option<Duration>,
}

impl From<VaultError> for Failure {
    fn from(error: VaultError) -> Self {
        Self { error, retry_after: None }
    }
}

/// `Retry-After` in its delay-seconds form, the one Vault sends. The
/// HTTP-date form is ignored (the policy's own backoff applies then).
fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The wait before retry `attempt + 1`: the policy's jittered delay, but no
/// less than what the server asked for (capped at [`MAX_RETRY_AFTER`]).
fn retry_delay(
    policy: &RequestRetry,
    attempt: u32,
    retry_after: Option<Duration>,
    rng: &mut impl rand::Rng,
) -> Duration {
    let own = policy.delay(attempt, rng);
    match retry_after {
        Some(asked) => own.max(asked.min(MAX_RETRY_AFTER)),
        None => own,
    }
}

fn describe_reqwest(e: &reqwest::Error) -> String {
    // reqwest's Display includes the URL, which is fine (no secrets in paths);
    // the source chain says why (refused, timed out, TLS).
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

/// rustls needs one process-wide crypto provider (ring here). Every HTTP
/// client in the process depends on it; [`VaultClient::new`] installs it, and
/// code that builds another reqwest client first should call this.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
