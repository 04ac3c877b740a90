//! KV secrets: `GET /kv/{path}` reads (any version on KV v2), `POST
//! /kv/{path}` writes (optionally with check-and-set), and `POST
//! /kv/{path}/rotate` rotates one field through the built-in that serves
//! the Flask service's `kv_random` jobs ([`super::rotate`]).
//!
//! A KV path may hold slashes, so both POSTs share one catch-all route; a
//! path ending in `/rotate` is a rotation, as in the service this API grew
//! from. Mounts default to `secret` and are chosen with `?mount=`.
//!
//! This is not a Vault proxy: paths and mounts are canonical
//! [`VaultPath`](rotator_core::vault::VaultPath)s ([`params::kv_path`]), and the
//! Vault client serves only mounts whose type is `kv`, so `?mount=sys`,
//! `auth/token` or `cubbyhole` is a 400 before anything is written.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{JsonBody, PathParam, QueryParams, from_body};
use super::{Answer, ApiError, ApiState, params, rotate};
use rotator_core::secret::SecretJson;

fn default_mount() -> String {
    "secret".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReadQuery {
    #[serde(default = "default_mount")]
    mount: String,
    /// A KV v2 version; the newest without it.
    version: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WriteQuery {
    mount: Option<String>,
}

/// `POST /kv/{path}`: the secret's new fields. `data` is a `Value` so a
/// wrong type is reported without quoting it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteBody {
    data: Value,
    /// Write only if the current version is this (0: only if absent).
    cas: Option<u64>,
}

pub(super) async fn read(
    State(state): State<Arc<ApiState>>,
    PathParam(path): PathParam,
    QueryParams(q): QueryParams<ReadQuery>,
) -> Answer {
    let path = params::kv_path("path", &path)?;
    let mount = params::kv_path("mount", &q.mount)?;
    let secret = state.vault()?.kv_read_version(&mount, &path, q.version).await?.ok_or_else(|| {
        let version = q.version.map(|v| format!(" version {v}")).unwrap_or_default();
        ApiError::not_found(format!("no secret at {mount}/{path}{version}"))
    })?;
    Ok(Json(json!({
        "mount": mount.as_str(),
        "path": path.as_str(),
        "version": secret.version,
        "data": state.show(&secret.data),
        "redacted": !state.options.reveal_secrets,
    })))
}

pub(super) async fn write_or_rotate(
    State(state): State<Arc<ApiState>>,
    PathParam(path): PathParam,
    QueryParams(q): QueryParams<WriteQuery>,
    JsonBody(body): JsonBody<Value>,
) -> Answer {
    if let Some(secret) = path.strip_suffix("/rotate") {
        let secret = params::kv_path("path", secret)?;
        return rotate::kv_field(&state, &secret, q.mount, body).await;
    }
    let path = params::kv_path("path", &path)?;
    let mount = q.mount.unwrap_or_else(default_mount);
    let mount = params::kv_path("mount", &mount)?;
    let body: WriteBody = from_body(body)?;
    let Value::Object(fields) = body.data else {
        return Err(ApiError::bad_request("`data` must be a JSON object of the secret's fields"));
    };
    let data = SecretJson::from_map(&fields);
    let version = state.vault()?.kv_write(&mount, &path, &data, body.cas).await?;
    Ok(Json(json!({
        "mount": mount.as_str(),
        "path": path.as_str(),
        // KV v1 keeps no versions.
        "version": (version > 0).then_some(version),
    })))
}
