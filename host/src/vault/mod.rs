//! The Vault client: one HTTP client, one token, typed errors.
//!
//! Everything rotator does in Vault goes through [`VaultClient::request`], so
//! the dev server and a production Vault see exactly the same calls. KV
//! helpers on top of it live in [`kv`]. Vault's `{"errors": [...]}` answers
//! become [`VaultError::Status`] with the status code and messages.

mod error;
pub mod kv;

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

pub use error::VaultError;
pub use kv::KvSecret;

/// How to reach Vault.
#[derive(Clone)]
pub struct VaultOptions {
    /// e.g. `https://vault.example:8200` or `http://127.0.0.1:8200`.
    pub address: String,
    pub token: SecretString,
    pub namespace: Option<String>,
    /// Per-request timeout.
    pub timeout: Duration,
}

/// A cheap-to-clone handle on one Vault identity.
#[derive(Clone)]
pub struct VaultClient {
    inner: Arc<Inner>,
}

struct Inner {
    base: String,
    token: SecretString,
    namespace: Option<String>,
    http: reqwest::Client,
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
        let http = reqwest::Client::builder()
            .timeout(options.timeout)
            .build()
            .map_err(|e| VaultError::Config(format!("cannot build HTTP client: {e}")))?;
        Ok(Self { inner: Arc::new(Inner { base, token: options.token, namespace: options.namespace, http }) })
    }

    pub fn address(&self) -> &str {
        &self.inner.base
    }

    /// Call `METHOD /v1/<path>` with an optional JSON body. `LIST` is sent
    /// as Vault's LIST verb. A non-2xx answer is an error.
    pub async fn request(&self, method: &str, path: &str, body: Option<String>) -> Result<VaultResponse, VaultError> {
        let path = path.trim_start_matches('/');
        let method_name = method.to_ascii_uppercase();
        let http_method = reqwest::Method::from_bytes(method_name.as_bytes())
            .map_err(|_| VaultError::Config(format!("`{method}` is not an HTTP method")))?;
        let url = format!("{}/v1/{}", self.inner.base, path);
        let mut req = self
            .inner
            .http
            .request(http_method, &url)
            .header("X-Vault-Token", self.inner.token.expose_secret())
            .header("X-Vault-Request", "true");
        if let Some(ns) = &self.inner.namespace {
            req = req.header("X-Vault-Namespace", ns);
        }
        if let Some(body) = body {
            req = req.header("Content-Type", "application/json").body(body);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| VaultError::Unavailable { address: self.inner.base.clone(), message: describe_reqwest(&e) })?;
        let status = resp.status().as_u16();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| VaultError::Unavailable { address: self.inner.base.clone(), message: describe_reqwest(&e) })?;
        let body: Option<Value> = if bytes.is_empty() {
            None
        } else {
            Some(serde_json::from_slice(&bytes).map_err(|e| VaultError::Protocol {
                path: path.to_owned(),
                message: format!("answer is not JSON ({e})"),
            })?)
        };
        if (200..300).contains(&status) {
            Ok(VaultResponse { status, body })
        } else {
            Err(VaultError::from_status(&method_name, path, status, body.as_ref()))
        }
    }

    /// `GET sys/health`: is Vault up, initialized and unsealed?
    pub async fn health(&self) -> Result<Value, VaultError> {
        let resp = self.request("GET", "sys/health", None).await?;
        Ok(resp.body.unwrap_or(Value::Null))
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
