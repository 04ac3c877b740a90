//! The daemon's HTTP API. For now: liveness (`GET /healthz`) and a summary
//! of jobs (`GET /status`); the operator API builds on this router.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::vault::VaultClient;
use crate::vault::leases::LeaseManager;
use crate::vault::lifetime::TokenStatus;

/// What the API can see of the daemon.
pub struct ApiState {
    pub jobs: Vec<JobSummary>,
    pub started: std::time::Instant,
    pub token: Arc<std::sync::RwLock<TokenStatus>>,
    pub leases: LeaseManager<VaultClient>,
}

/// A job as the API shows it. No secret values.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobSummary {
    pub id: String,
    pub plugin: String,
    pub plugin_sha256: String,
    pub secret: Option<String>,
    pub interval_seconds: u64,
}

pub fn router(state: Arc<ApiState>) -> Router {
    Router::new().route("/healthz", get(healthz)).route("/status", get(status)).with_state(state)
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn status(State(state): State<Arc<ApiState>>) -> Json<Value> {
    let now = tokio::time::Instant::now();
    let token = state.token.read().unwrap_or_else(|p| p.into_inner()).clone();
    let leases: Vec<Value> = state
        .leases
        .list()
        .into_iter()
        .map(|l| {
            json!({
                "path": l.path,
                "lease_id": l.lease_id,
                "renewable": l.renewable,
                "budget_seconds": l.budget(now).as_secs(),
                "next_action_in_seconds": l.next_action_at.saturating_duration_since(now).as_secs(),
                "consecutive_failures": l.consecutive_failures,
            })
        })
        .collect();
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
        },
        "leases": leases,
    }))
}
