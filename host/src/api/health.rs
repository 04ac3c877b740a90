//! Probes and the daemon's own state: `/healthz` and `/livez` (the process
//! answers), `/readyz` (Vault is reachable and unsealed, and the daemon's
//! token is valid), `/status` (jobs, token and lease budgets) and `/token`.
//!
//! `/readyz` asks Vault without retries: a probe must answer within its
//! own timeout, and the orchestrator retries anyway.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Answer, ApiState, leases};
use crate::vault::{RetryPolicy, VaultError};

pub(super) async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub(super) async fn livez() -> Json<Value> {
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

pub(super) async fn readyz(State(state): State<Arc<ApiState>>) -> Response {
    let once = RetryPolicy::NONE;
    // Standbys forward requests to the active node, so they count as ready.
    let health = "sys/health?standbyok=true&perfstandbyok=true";
    let vault = state.vault.request_with("GET", health, None, false, once).await.map_err(|e| health_problem(&e));
    let token = match &vault {
        Ok(_) => state.vault.request_with("GET", "auth/token/lookup-self", None, true, once).await.map_err(|e| match e
            .status()
        {
            Some(403) => "the daemon's vault token is invalid or expired".to_owned(),
            _ => e.to_string(),
        }),
        Err(_) => Err("not checked: vault is not usable".to_owned()),
    };
    let word = |r: &Result<_, String>| match r {
        Ok(_) => "ok".to_owned(),
        Err(e) => e.clone(),
    };
    let checks = json!({ "vault": word(&vault), "token": word(&token) });
    match vault.and(token) {
        Ok(_) => (StatusCode::OK, Json(json!({ "status": "ready", "checks": checks }))).into_response(),
        Err(e) => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "not ready", "error": e, "checks": checks })))
                .into_response()
        }
    }
}

pub(super) async fn status(State(state): State<Arc<ApiState>>) -> Json<Value> {
    let now = tokio::time::Instant::now();
    let token = state.token.read().unwrap_or_else(|p| p.into_inner()).clone();
    Json(json!({
        "status": "ok",
        "uptime_seconds": state.started.elapsed().as_secs(),
        "jobs": state.jobs,
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
    }))
}

/// The daemon's Vault token: what Vault says of it now (`lookup-self`) and
/// what the renewal watcher has done with it.
pub(super) async fn token(State(state): State<Arc<ApiState>>) -> Answer {
    let lease = state.vault.lookup_self().await?;
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
