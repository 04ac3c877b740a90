//! Where a sample is replayed: a fresh in-process dev server per sample
//! (so no sample sees another's state), raw HTTP calls to it, and what the
//! replays share across samples: one PostgreSQL cluster and one set of JWT
//! signing keys, both made on first use.

use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::HeaderMap;
use rotator_core::vault::{VaultClient, VaultOptions};
use rotator_devserver::DevServer;
use rotator_tests::contract::Sample;
use rotator_tests::postgres::Postgres;
use rotator_tests::{ROOT, jwt};
use serde_json::{Map, Value};
use tokio::sync::OnceCell;

/// What every replay may share: made once, on first use.
#[derive(Default)]
pub struct Shared {
    pg: OnceCell<Postgres>,
    keys: OnceCell<jwt::Keys>,
}

impl Shared {
    /// The test PostgreSQL cluster.
    pub async fn pg(&self) -> &Postgres {
        self.pg
            .get_or_init(|| async { tokio::task::spawn_blocking(Postgres::start).await.expect("PostgreSQL starts") })
            .await
    }

    /// JWT signing keys (the openssl CLI makes them).
    pub async fn keys(&self) -> &jwt::Keys {
        self.keys
            .get_or_init(|| async {
                jwt::keys().expect("the openssl CLI signs test JWTs; ./scripts/test.sh installs it")
            })
            .await
    }
}

/// One answer of the dev server; `body` is `Null` when it is empty.
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

/// A fresh dev server for one sample, and the sample's own problems.
pub struct Bench<'a> {
    pub shared: &'a Shared,
    pub server: DevServer,
    http: reqwest::Client,
    /// Distinguishes the database users different samples create on the
    /// shared cluster.
    pub n: usize,
    problems: Mutex<Vec<String>>,
}

impl<'a> Bench<'a> {
    pub async fn new(shared: &'a Shared, n: usize) -> Self {
        let server = rotator_tests::dev_server().await;
        Bench {
            shared,
            server,
            http: rotator_tests::http_client(Duration::from_secs(30)),
            n,
            problems: Mutex::default(),
        }
    }

    /// Record a difference from the documented behaviour.
    pub fn check(&self, ok: bool, problem: impl FnOnce() -> String) {
        if !ok {
            self.problems.lock().unwrap().push(problem());
        }
    }

    pub fn take_problems(&self) -> Vec<String> {
        std::mem::take(&mut self.problems.lock().unwrap())
    }

    /// `METHOD /v1/<path>` with `token`, a JSON `body` (PATCH as a merge
    /// patch) and extra `headers`.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let verb = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(verb, format!("{}/v1/{path}", self.server.url()));
        if let Some(token) = token {
            req = req.header("X-Vault-Token", token);
        }
        if let Some(body) = body {
            let kind = if method == "PATCH" { "application/merge-patch+json" } else { "application/json" };
            req = req.header("Content-Type", kind).body(body.to_string());
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{method} {path}: body is not JSON: {e}"))
        };
        Answer { status, headers, body }
    }

    /// A call with the root token.
    pub async fn root(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        self.send(method, path, Some(ROOT), body.as_ref(), &[]).await
    }

    /// A root call the replay depends on: it must succeed.
    pub async fn setup(&self, method: &str, path: &str, body: Value) -> Value {
        let body = (!body.is_null()).then_some(body);
        let answer = self.root(method, path, body).await;
        assert!((200..300).contains(&answer.status), "setup {method} {path}: {} {}", answer.status, answer.body);
        answer.body
    }

    /// rotator's own client, with `token`.
    pub fn client(&self, token: &str) -> VaultClient {
        let mut options = VaultOptions::new(self.server.url(), token.to_owned().into());
        options.timeout = Duration::from_secs(30);
        VaultClient::new(options).unwrap()
    }
}

/// The sample's path after `/v1/`, with each `(placeholder, value)` filled in.
pub fn path(sample: &Sample, fill: &[(&str, &str)]) -> String {
    let documented = sample.entry["path"].as_str().expect("sample path");
    let mut out = documented.strip_prefix("/v1/").unwrap_or(documented).to_owned();
    for (placeholder, value) in fill {
        out = out.replace(placeholder, value);
    }
    assert!(!out.contains(':'), "unfilled placeholder in {out}");
    out
}

/// The sample's request body with the top-level keys of `overrides` replaced
/// (ids and names that only exist on the replaying server).
pub fn request(sample: &Sample, overrides: Value) -> Value {
    let mut body = sample.request().as_object().cloned().unwrap_or_else(Map::new);
    if let Value::Object(over) = overrides {
        body.extend(over);
    }
    Value::Object(body)
}
