//! The daemon's HTTP API. For now: liveness (`GET /healthz`) and a summary
//! of jobs (`GET /status`); the operator API builds on this router.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

/// What the API can see of the daemon.
pub struct ApiState {
    pub jobs: Vec<JobSummary>,
    pub started: std::time::Instant,
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
    Json(json!({
        "status": "ok",
        "uptime_seconds": state.started.elapsed().as_secs(),
        "jobs": state.jobs,
    }))
}
