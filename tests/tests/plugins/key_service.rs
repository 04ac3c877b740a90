//! A made-up REST key service on loopback, the target of the `python-http`
//! and `js-http` examples (their README.md documents the same shape). It
//! holds an account's API keys in memory, so a test can see exactly what a
//! rotation did to them:
//!
//! - `POST /keys`, bearer a live key, JSON `{"label": …}`: mint a key,
//!   `201 {"key_id", "api_key", "label"}`.
//! - `GET /keys`, bearer a live key: `200 {"keys": [{"key_id", "label"}]}`,
//!   the live keys without their values.
//! - `GET /whoami`, bearer a key: `200 {"key_id"}` if it is live, else 401.
//! - `DELETE /keys/{key_id}`, bearer a live key: `204`, or 404 if no such
//!   key is live.
//!
//! Every request is recorded with the bearer it carried, so a test can prove
//! the host filled in the real key for the plugin's handle.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::{Value, json};

/// One live key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub id: String,
    pub secret: String,
    pub label: String,
}

/// One request as the service saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub method: &'static str,
    pub path: String,
    /// The bearer token, if the request had one.
    pub bearer: Option<String>,
}

#[derive(Default)]
struct Keys {
    live: Vec<Key>,
    minted: u32,
    seen: Vec<Seen>,
    /// `GET /whoami` refuses keys this service minted (not the seeded
    /// one): a target that lost the new key, to drive a rollback.
    refuse_minted: bool,
    /// Minted keys get ids that would steer a request path (`../admin-N`).
    hostile_ids: bool,
}

/// A running service; it stops when the test's runtime ends.
#[derive(Clone)]
pub struct KeyService {
    keys: Arc<Mutex<Keys>>,
    pub addr: SocketAddr,
}

impl KeyService {
    /// Start on a free loopback port with one live key, `seed`, as `k-0`.
    pub async fn start(seed: &str) -> Self {
        let keys = Arc::new(Mutex::new(Keys::default()));
        keys.lock().unwrap().live.push(Key { id: "k-0".into(), secret: seed.into(), label: "seed".into() });
        let app = axum::Router::new()
            .route("/keys", post(mint).get(list))
            .route("/keys/{id}", delete(revoke))
            .route("/whoami", get(whoami))
            .with_state(keys.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { keys, addr }
    }

    /// `http://127.0.0.1:<port>`, the origin a job's settings and grant name.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The live keys, oldest first.
    pub fn live(&self) -> Vec<Key> {
        self.keys.lock().unwrap().live.clone()
    }

    /// Every request so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.keys.lock().unwrap().seen.clone()
    }

    /// Mint keys with ids such as `../admin-1`, as a hostile or broken
    /// service might: a plugin must not put them into a path.
    pub fn mint_hostile_ids(&self) {
        self.keys.lock().unwrap().hostile_ids = true;
    }

    /// Make `GET /whoami` refuse every key the service minted.
    pub fn refuse_minted_keys(&self) {
        self.keys.lock().unwrap().refuse_minted = true;
    }
}

type Shared = State<Arc<Mutex<Keys>>>;

/// Record the request; the live key its bearer names, if any.
fn authorise(keys: &mut Keys, method: &'static str, path: String, headers: &HeaderMap) -> Option<Key> {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    keys.seen.push(Seen { method, path, bearer: bearer.clone() });
    keys.live.iter().find(|k| Some(&k.secret) == bearer.as_ref()).cloned()
}

fn refused() -> Response {
    (StatusCode::UNAUTHORIZED, Json(json!({"error": "unknown or revoked key"}))).into_response()
}

async fn mint(State(keys): Shared, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let mut keys = keys.lock().unwrap();
    if authorise(&mut keys, "POST", "/keys".into(), &headers).is_none() {
        return refused();
    }
    let Some(label) = body.get("label").and_then(Value::as_str) else {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "label is required"}))).into_response();
    };
    keys.minted += 1;
    let secret: String = rand::rng().sample_iter(&Alphanumeric).take(40).map(char::from).collect();
    let id = if keys.hostile_ids { format!("../admin-{}", keys.minted) } else { format!("k-{}", keys.minted) };
    let key = Key { id, secret, label: label.to_owned() };
    let answer = json!({"key_id": key.id, "api_key": key.secret, "label": key.label});
    keys.live.push(key);
    (StatusCode::CREATED, Json(answer)).into_response()
}

async fn list(State(keys): Shared, headers: HeaderMap) -> Response {
    let mut keys = keys.lock().unwrap();
    if authorise(&mut keys, "GET", "/keys".into(), &headers).is_none() {
        return refused();
    }
    let listed: Vec<Value> = keys.live.iter().map(|k| json!({"key_id": k.id, "label": k.label})).collect();
    Json(json!({ "keys": listed })).into_response()
}

async fn whoami(State(keys): Shared, headers: HeaderMap) -> Response {
    let mut keys = keys.lock().unwrap();
    match authorise(&mut keys, "GET", "/whoami".into(), &headers) {
        Some(key) if !(keys.refuse_minted && key.id != "k-0") => Json(json!({"key_id": key.id})).into_response(),
        _ => refused(),
    }
}

async fn revoke(State(keys): Shared, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let mut keys = keys.lock().unwrap();
    if authorise(&mut keys, "DELETE", format!("/keys/{id}"), &headers).is_none() {
        return refused();
    }
    let before = keys.live.len();
    keys.live.retain(|k| k.id != id);
    if keys.live.len() < before { StatusCode::NO_CONTENT } else { StatusCode::NOT_FOUND }.into_response()
}
