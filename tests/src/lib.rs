//! Shared helpers for the integration tests: an in-process dev server, raw
//! HTTP calls to it as a Vault client makes them, and jobs built from TOML
//! exactly as the daemon builds them.

pub mod api;
pub mod architecture;
pub mod bench;
pub mod contract;
pub mod events;
pub mod jwt;
pub mod logs;
pub mod moto;
pub mod postgres;
pub mod rabbitmq;
pub mod raw_http;
mod readme;
pub mod watchdog;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rotator_core::config;
use rotator_core::plugin::Runtime;
use rotator_core::rotation::Job;
use rotator_core::vault::VaultClient;
use rotator_daemon::daemon::Daemon;
use rotator_daemon::setup::{self, VaultOverride};
use rotator_daemon::start::StartOptions;
use rotator_devserver::{DevServer, DevServerOptions};
use secrecy::SecretString;
use serde_json::Value;

pub const ROOT: &str = "test-root-token";

/// A dev server on a free loopback port.
pub async fn dev_server() -> DevServer {
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    DevServer::start(DevServerOptions { addr, root_token: ROOT.into(), ..Default::default() })
        .await
        .expect("dev server")
}

/// An HTTP client for raw calls to a dev server; `timeout` bounds each
/// request. Installs the process-wide rustls provider reqwest is built
/// without.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    rotator_core::vault::install_crypto_provider();
    reqwest::Client::builder().timeout(timeout).build().unwrap()
}

/// `METHOD /v1/<path>` on `server`, with `token` as `X-Vault-Token` (none
/// for `None`) and `body` as JSON: the status and the JSON answer (`Null`
/// when the body is empty).
pub async fn call(
    http: &reqwest::Client,
    server: &DevServer,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = http.request(method, format!("{}/v1/{path}", server.url()));
    if let Some(token) = token {
        req = req.header("X-Vault-Token", token);
    }
    if let Some(body) = body {
        req = req.body(body.to_string());
    }
    let resp = req.send().await.expect("request reaches the dev server");
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap();
    (status, if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("JSON body") })
}

/// A dev server and an HTTP client for raw calls to it.
pub struct Dev {
    pub server: DevServer,
    pub http: reqwest::Client,
}

impl Dev {
    /// A fresh dev server; requests time out after 10 s.
    pub async fn start() -> Self {
        Self { server: dev_server().await, http: http_client(Duration::from_secs(10)) }
    }

    /// [`call`] on this server.
    pub async fn call(&self, token: Option<&str>, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        call(&self.http, &self.server, token, method, path, body).await
    }

    /// [`call`] with the root token.
    pub async fn root(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call(Some(ROOT), method, path, body).await
    }
}

/// Parse `toml`, connect to `server`, load every job.
pub fn jobs(server: &DevServer, toml: &str) -> (VaultClient, Vec<Job>, Arc<Runtime>) {
    jobs_in(server, "test.toml", toml, Path::new("."))
}

/// [`jobs`] for a config file `name` whose relative paths start at `base_dir`.
pub fn jobs_in(server: &DevServer, name: &str, toml: &str, base_dir: &Path) -> (VaultClient, Vec<Job>, Arc<Runtime>) {
    let cfg = config::parse(name, toml, base_dir).unwrap_or_else(|e| panic!("{e}"));
    let over = VaultOverride { address: Some(server.url()), token: Some(SecretString::from(ROOT)) };
    let vault = setup::vault_client(&cfg, over).unwrap().expect("an address is given");
    let runtime = setup::runtime(&cfg).unwrap();
    let jobs = setup::load_jobs(&cfg, &runtime).unwrap_or_else(|e| panic!("{e}"));
    (vault, jobs, runtime)
}

/// A daemon for the config `toml`, built as `rotator run` builds one
/// ([`Daemon::from_config`]) against `server` with the root token. Unless
/// `options` says otherwise, its API gets a fresh token and a free loopback
/// port: read it from `daemon.api_listener`.
pub async fn daemon(server: &DevServer, toml: &str, mut options: StartOptions) -> Daemon {
    let cfg = config::parse("test.toml", toml, Path::new(".")).unwrap_or_else(|e| panic!("{e}"));
    if options.vault.address.is_none() {
        options.vault = VaultOverride { address: Some(server.url()), token: Some(SecretString::from(ROOT)) };
    }
    if options.api_listener.is_none() {
        options.api_listener = Some(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
    if options.api_token.is_none() {
        options.api_token = Some(rotator_daemon::api::ApiToken::generate().0);
    }
    Daemon::from_config(&cfg, options).await.unwrap_or_else(|e| panic!("{e}"))
}

/// The default state store (`secret/rotator/state/<job>`) on `vault`.
pub fn store(vault: &VaultClient) -> rotator_core::state::StateStore {
    rotator_core::state::StateStore::new(vault.clone(), "secret", "rotator/state")
}

/// A TOML string literal for a path (fixtures live in the build's folder).
pub fn fixture(name: &str) -> String {
    rotator_test_artifacts::build_artifact(name).display().to_string()
}
