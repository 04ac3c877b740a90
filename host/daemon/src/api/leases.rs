//! Dynamic credentials and their leases: `GET /dynamic/{role}` fetches
//! `<mount>/creds/<role>` through the daemon's [`LeaseManager`], which keeps
//! every credential it handed out renewed until it is revoked or reaches
//! its max TTL (or, with `[vault] reuse_dynamic_credentials`, answers with
//! the path's live credential while it is valid); `GET /leases` shows what
//! is tracked and how long each lease survives a Vault outage;
//! `DELETE /leases/{lease_id}` revokes a tracked lease and stops renewing it.
//!
//! Only leases the daemon tracks can be revoked here: the API is not a
//! general-purpose revocation endpoint for the daemon's Vault token. A full
//! lease table (`[vault] max_tracked_leases`) is a 503 and mints nothing.
//!
//! [`LeaseManager`]: rotator_core::vault::leases::LeaseManager

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use rotator_core::vault::leases::LeaseError;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{PathParam, QueryParams};
use super::{Answer, ApiError, ApiState, params};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DynamicQuery {
    #[serde(default = "default_mount")]
    mount: String,
}

fn default_mount() -> String {
    "database".into()
}

pub(super) async fn dynamic(
    State(state): State<Arc<ApiState>>,
    PathParam(role): PathParam,
    QueryParams(q): QueryParams<DynamicQuery>,
) -> Answer {
    let role = params::name("role", &role, false)?;
    let mount = params::name("mount", &q.mount, true)?;
    state.vault()?;
    let secret = match state.leases.fetch(&format!("{mount}/creds/{role}")).await {
        Ok(secret) => secret,
        Err(LeaseError::Vault(e)) => return Err(e.into()),
        Err(full @ LeaseError::Full { .. }) => {
            return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, full.to_string()));
        }
    };
    tracing::info!(path = %secret.path, lease = %secret.lease_id, "dynamic credentials issued through the API");
    Ok(Json(json!({
        "path": secret.path,
        "lease_id": secret.lease_id,
        "lease_duration": secret.lease_duration.as_secs(),
        "renewable": secret.renewable,
        "data": state.show(&secret.data),
        "redacted": !state.options.reveal_secrets,
    })))
}

/// Every tracked lease as the API shows it, as of `now`.
pub(super) fn tracked(state: &ApiState, now: tokio::time::Instant) -> Vec<Value> {
    state
        .leases
        .list()
        .into_iter()
        .map(|l| {
            json!({
                "path": l.path,
                "lease_id": l.lease_id,
                "renewable": l.renewable,
                "ttl_seconds": l.budget(now).as_secs(),
                // Renewable leases are renewed; a path's live credential in
                // reuse mode is fetched anew; the others expire.
                "next_action": l.next_action.name(),
                "next_action_in_seconds": l.next_action_at.saturating_duration_since(now).as_secs(),
                // How long Vault may be unreachable before the lease expires.
                "budget_seconds": l.budget(now).as_secs(),
                "consecutive_failures": l.consecutive_failures,
            })
        })
        .collect()
}

pub(super) async fn list(State(state): State<Arc<ApiState>>) -> Answer {
    Ok(Json(json!({ "leases": tracked(&state, tokio::time::Instant::now()) })))
}

pub(super) async fn revoke(State(state): State<Arc<ApiState>>, PathParam(lease_id): PathParam) -> Answer {
    let lease_id = lease_id.trim_start_matches('/');
    if !state.leases.tracks(lease_id) {
        return Err(ApiError::not_found(format!("no tracked lease `{lease_id}`")));
    }
    state.leases.revoke(lease_id).await?;
    tracing::info!(lease = %lease_id, "lease revoked through the API");
    Ok(Json(json!({ "revoked": lease_id })))
}
