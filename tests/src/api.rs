//! A whole daemon (API, scheduler, renewals) on loopback for API tests, and
//! the calls a test makes to it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rotator_core::rotation::Observer;
use rotator_daemon::api::ApiToken;
use rotator_daemon::setup::VaultOverride;
use rotator_daemon::start::StartOptions;
use rotator_devserver::DevServer;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::{ROOT, http_client, logs};

/// One answer: status, `WWW-Authenticate` and the JSON body.
pub struct Answer {
    pub status: u16,
    pub challenge: Option<String>,
    pub body: Value,
}

/// A running daemon's API.
pub struct Api {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The API token.
    pub token: String,
    pub http: reqwest::Client,
    stop: tokio::sync::oneshot::Sender<()>,
    running: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// How to start a daemon for an API test; [`Default`]: no jobs, the root
/// Vault token, secrets redacted, built-in plugins only.
pub struct ApiSetup {
    pub vault_token: String,
    pub reveal_secrets: bool,
    /// The daemon's jobs, as `[[jobs]]` TOML.
    pub jobs: String,
    pub plugin_dirs: Vec<PathBuf>,
    pub observers: Vec<Arc<dyn Observer>>,
    /// Where `POST /reload` reads the config again; the test writes
    /// [`Api::config_text`] there first.
    pub config_path: Option<PathBuf>,
}

impl Default for ApiSetup {
    fn default() -> Self {
        Self {
            vault_token: ROOT.to_owned(),
            reveal_secrets: false,
            jobs: String::new(),
            plugin_dirs: Vec::new(),
            observers: Vec::new(),
            config_path: None,
        }
    }
}

impl Api {
    /// A daemon as `setup` says, against `server`.
    pub async fn start_with(server: &DevServer, setup: ApiSetup) -> Self {
        logs::capture();
        let toml = Self::config_text(&setup.plugin_dirs, &setup.jobs);
        let (token, value) = ApiToken::generate();
        let options = StartOptions {
            vault: VaultOverride { address: Some(server.url()), token: Some(SecretString::from(setup.vault_token)) },
            api_token: Some(token),
            reveal_secrets: Some(setup.reveal_secrets),
            observers: setup.observers,
            config_path: setup.config_path,
            ..StartOptions::default()
        };
        let daemon = crate::daemon(server, &toml, options).await;
        let base = format!("http://{}", daemon.api_listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(daemon.run(async move {
            let _ = stopped.await;
        }));
        let token = value.expose_secret().to_owned();
        Self { base, token, http: http_client(Duration::from_secs(60)), stop, running }
    }

    /// The ids of the scheduler's jobs (`GET /scheduler/jobs`), sorted.
    pub async fn job_ids(&self) -> Vec<String> {
        let list = self.expect(200, "GET", "/scheduler/jobs", None).await;
        let jobs = list["jobs"].as_array().expect("a list of jobs");
        let mut ids: Vec<String> = jobs.iter().filter_map(|j| j["id"].as_str().map(str::to_owned)).collect();
        ids.sort();
        ids
    }

    /// The config a daemon of [`ApiSetup`] runs: `[daemon] plugin_dirs` and the jobs.
    pub fn config_text(plugin_dirs: &[PathBuf], jobs: &str) -> String {
        let dirs: Vec<String> = plugin_dirs.iter().map(|d| format!("{:?}", d.display().to_string())).collect();
        format!("[daemon]\nplugin_dirs = [{}]\n\n{jobs}", dirs.join(", "))
    }

    /// A daemon without jobs whose Vault client uses `vault_token`.
    pub async fn start_as(server: &DevServer, vault_token: &str, reveal_secrets: bool) -> Self {
        let setup = ApiSetup { vault_token: vault_token.to_owned(), reveal_secrets, ..ApiSetup::default() };
        Self::start_with(server, setup).await
    }

    pub async fn start(server: &DevServer, reveal_secrets: bool) -> Self {
        Self::start_as(server, ROOT, reveal_secrets).await
    }

    pub async fn send(&self, token: Option<&str>, method: &str, path: &str, body: Option<&str>) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.header("Authorization", format!("Bearer {token}"));
        }
        if let Some(body) = body {
            req = req.header("Content-Type", "application/json").body(body.to_owned());
        }
        let resp = req.send().await.expect("the API answers");
        let status = resp.status().as_u16();
        let challenge = resp.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned());
        let json = resp.headers().get("content-type").is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
        let bytes = resp.bytes().await.unwrap();
        let body = match (bytes.is_empty(), json) {
            (true, _) => Value::Null,
            (false, true) => serde_json::from_slice(&bytes).expect("JSON answer"),
            // The dashboard's page and assets.
            (false, false) => Value::String(String::from_utf8_lossy(&bytes).into_owned()),
        };
        Answer { status, challenge, body }
    }

    /// `METHOD path` with the API token; the status and JSON answer.
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let body = body.map(|b| b.to_string());
        let a = self.send(Some(&self.token), method, path, body.as_deref()).await;
        (a.status, a.body)
    }

    /// Like [`call`](Self::call), but the answer must have `status`.
    pub async fn expect(&self, status: u16, method: &str, path: &str, body: Option<Value>) -> Value {
        let (got, answer) = self.call(method, path, body).await;
        assert_eq!(got, status, "{method} {path}: {answer}");
        answer
    }

    pub async fn stop(self) {
        self.stop.send(()).unwrap();
        self.running.await.unwrap().unwrap();
    }
}

/// An error answer: `{"error": "<message>"}` and nothing else.
pub fn error_message(body: &Value) -> &str {
    assert_eq!(body.as_object().map(|o| o.len()), Some(1), "{body}");
    body["error"].as_str().unwrap_or_else(|| panic!("no error message in {body}"))
}
