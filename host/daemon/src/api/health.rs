//! Probes and the daemon's own state: `/healthz` and `/livez` (the process
//! answers), `/readyz` (Vault is reachable and unsealed, the daemon's token
//! is valid, and no daemon task has panicked), `/status` (readiness with its
//! reasons, jobs, token and lease budgets) and `/token`.
//!
//! The three probes are public, so they answer a status word and nothing
//! else: no job ids, paths, lease ids or Vault error text. `/status` holds
//! all that and needs the API token like every other route.
//!
//! Readiness asks Vault without retries: a probe must answer within its
//! own timeout, and the orchestrator retries anyway. The public probe
//! answers from a result at most [`PROBE_FRESH`] old, found by one check at
//! a time, so whoever can reach the port cannot make the daemon call Vault
//! faster than that. A panicked task (see
//! [`rotator_core::supervise`]) keeps the daemon unready until it restarts, while
//! `/healthz` and `/livez` still answer: the process is alive, only no
//! longer trustworthy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Answer, ApiState, leases};
use rotator_core::vault::{RequestRetry, VaultError};

/// `/healthz` and `/livez`: the process is alive and serving HTTP. Nothing
/// else is checked, so an orchestrator never restarts a daemon for a Vault
/// outage that a restart would not fix.
pub(super) async fn alive() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Why Vault is not usable, in words, from a failed `sys/health`.
fn health_problem(e: &VaultError) -> String {
    match e.status() {
        Some(503) => "vault is sealed".into(),
        Some(501) => "vault is not initialized".into(),
        _ => e.to_string(),
    }
}

/// What the readiness checks found. Vault is asked without retries; a
/// panicked task makes the daemon unready whatever Vault says.
struct Readiness {
    /// `None`: the daemon runs without Vault.
    vault: Option<Result<(), String>>,
    token: Result<(), String>,
    task_panics: u64,
}

impl Readiness {
    async fn check(state: &ApiState) -> Self {
        let task_panics = state.metrics.task_panics();
        let Some(client) = &state.vault else {
            return Self { vault: None, token: Ok(()), task_panics };
        };
        let once = RequestRetry::NONE;
        // Standbys forward requests to the active node, so they count as ready.
        let health = "sys/health?standbyok=true&perfstandbyok=true";
        let vault =
            client.request_with("GET", health, None, false, once).await.map(drop).map_err(|e| health_problem(&e));
        let token = match &vault {
            Ok(()) => {
                let lookup = client.request_with("GET", "auth/token/lookup-self", None, true, once).await;
                lookup.map(drop).map_err(|e| match e.status() {
                    Some(403) => "the daemon's vault token is invalid or expired".to_owned(),
                    _ => e.to_string(),
                })
            }
            Err(_) => Err("not checked: vault is not usable".to_owned()),
        };
        Self { vault: Some(vault), token, task_panics }
    }

    /// Why the daemon is not ready; `None` when it is.
    fn problem(&self) -> Option<String> {
        if self.task_panics > 0 {
            return Some(format!("{} daemon task(s) panicked (see the log)", self.task_panics));
        }
        self.vault.clone().unwrap_or(Ok(())).and(self.token.clone()).err()
    }

    /// The whole story, for `/status` (behind the token).
    fn detail(&self) -> Value {
        let word = |r: &Result<(), String>| r.clone().err().unwrap_or_else(|| "ok".to_owned());
        let (vault, token) = match &self.vault {
            Some(vault) => (word(vault), word(&self.token)),
            None => ("not used".to_owned(), "not used".to_owned()),
        };
        let mut detail = json!({
            "status": if self.problem().is_none() { "ready" } else { "not ready" },
            "checks": { "vault": vault, "token": token, "task_panics": self.task_panics },
        });
        if let Some(problem) = self.problem() {
            detail["error"] = problem.into();
        }
        detail
    }
}

/// How long a `/readyz` answer is reused.
pub const PROBE_FRESH: Duration = Duration::from_secs(1);

/// `/readyz`'s last answer (ready or not) and when it was found. The lock is
/// held across the check: probes arriving meanwhile wait for its answer.
pub type ProbeCache = tokio::sync::Mutex<Option<(Instant, bool)>>;

async fn ready_cached(state: &ApiState) -> bool {
    let mut last = state.ready_probe.lock().await;
    if let Some((at, ready)) = *last
        && at.elapsed() < PROBE_FRESH
    {
        return ready;
    }
    let ready = Readiness::check(state).await.problem().is_none();
    *last = Some((Instant::now(), ready));
    ready
}

/// Public, so it says one word: why is at `/status`, behind the token.
/// After a panic Vault is not asked at all: the answer cannot change.
pub(super) async fn readyz(State(state): State<Arc<ApiState>>) -> Response {
    if state.metrics.task_panics() == 0 && ready_cached(&state).await {
        (StatusCode::OK, Json(json!({ "status": "ready" }))).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "not ready" }))).into_response()
    }
}

pub(super) async fn status(State(state): State<Arc<ApiState>>) -> Json<Value> {
    let readiness = Readiness::check(&state).await;
    let now = tokio::time::Instant::now();
    let token = state.token.read().unwrap_or_else(|p| p.into_inner()).clone();
    Json(json!({
        "status": "ok",
        "readiness": readiness.detail(),
        "uptime_seconds": state.started.elapsed().as_secs(),
        "jobs": state.jobs.views(),
        "token": {
            "expires": token.expires_at.is_some(),
            "budget_seconds": token.budget(now).map(|d| d.as_secs()),
            "renewable": token.renewable,
            "renewals": token.renewals,
            "logins": token.logins,
            "consecutive_failures": token.consecutive_failures,
            "renew_denied": token.renew_denied,
            "reloads": token.reloads,
            "stranded": token.stranded,
        },
        "leases": leases::tracked(&state, now),
        "replica": state.replicas.as_ref().map(|r| r.status(&state.scheduler)),
    }))
}

/// The daemon's Vault token: what Vault says of it now (`lookup-self`) and
/// what the renewal watcher has done with it.
pub(super) async fn token(State(state): State<Arc<ApiState>>) -> Answer {
    let lease = state.vault()?.lookup_self().await?;
    let now = tokio::time::Instant::now();
    let watch = state.token.read().unwrap_or_else(|p| p.into_inner()).clone();
    Ok(Json(json!({
        "ttl_seconds": lease.ttl.as_secs(),
        "expires": !lease.ttl.is_zero(),
        "renewable": lease.renewable,
        "policies": lease.policies,
        "renewals": watch.renewals,
        "logins": watch.logins,
        "renew_denied": watch.renew_denied,
        "reloads": watch.reloads,
        "stranded": watch.stranded,
        "consecutive_failures": watch.consecutive_failures,
        "budget_seconds": watch.budget(now).map(|d| d.as_secs()),
        "next_action_in_seconds": watch.next_action_at.map(|at| at.saturating_duration_since(now).as_secs()),
    })))
}
