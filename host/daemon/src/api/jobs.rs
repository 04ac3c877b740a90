//! The scheduler's jobs over HTTP: list, add and remove jobs at runtime,
//! show one job's state, and `rotate now`.
//!
//! A job added at runtime goes through exactly the checks a configured one
//! does: its JSON is turned into a `[[jobs]]` TOML table and parsed by
//! [`rotator_core::config::parse`], then its plugin is loaded and its settings are
//! checked against the plugin's schema. The Flask rotation service's job
//! format (`{"type": "kv_random", "path": …, "interval_seconds": …}`) is
//! accepted too ([`flask_job`], the mapping `rotator run` also reads the
//! service's environment with): the built-in that declares the `type` turns
//! the rest into its fields ([`rotator_core::builtin::legacy_job`]).
//! Runtime jobs are kept beside the job records (`StateStore::save_definition`)
//! and restored by the next daemon ([`restore`]); their state (last rotation,
//! PENDING) is in the records like any job's. Lists and views read the live
//! registry ([`crate::scheduler::registry`]).
//!
//! One difference from a configured job: the API caller is not the
//! operator who wrote the config, so a runtime job's plugin is a built-in
//! or a file inside `[daemon] plugin_dirs` ([`rotator_core::plugin::find_in_dirs`]),
//! replaced by its canonical path before the config parser ever sees it.
//! Any other name gets one and the same refusal, which tells the caller
//! nothing about which files exist.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::error::JsonBody;
use super::{Answer, ApiError, ApiState};
use crate::scheduler::SchedulerError;
use rotator_core::builtin::LegacyError;
use rotator_core::config::seed_env::{self, FlaskJobError};

impl From<SchedulerError> for ApiError {
    fn from(e: SchedulerError) -> Self {
        match e {
            SchedulerError::UnknownJob(_) => Self::not_found(e.to_string()),
            SchedulerError::Duplicate(_) | SchedulerError::Busy(_) | SchedulerError::Blocked { .. } => {
                Self::new(StatusCode::CONFLICT, e.to_string())
            }
            SchedulerError::ShuttingDown(_) => Self::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            SchedulerError::Panicked { .. } => Self::internal(e.to_string()),
            SchedulerError::Rotation(r) => r.into(),
        }
    }
}

/// `POST /reload`: read the config file again and apply its jobs
/// ([`crate::reload`]); a file with problems changes nothing and is
/// answered 400 with every problem, located.
pub(super) async fn reload(State(state): State<Arc<ApiState>>) -> Answer {
    let reloader =
        state.reloader.as_ref().ok_or_else(|| ApiError::not_found("this daemon was not started from a config file"))?;
    let report = reloader.reload().await.map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(Json(serde_json::to_value(report).map_err(|e| ApiError::internal(e.to_string()))?))
}

pub(super) async fn list(State(state): State<Arc<ApiState>>) -> Answer {
    Ok(Json(json!({ "jobs": state.jobs.views() })))
}

pub(super) async fn show(State(state): State<Arc<ApiState>>, Path(id): Path<String>) -> Answer {
    let view = state.jobs.view(&id).ok_or_else(|| ApiError::not_found(format!("no job `{id}`")))?;
    Ok(Json(serde_json::to_value(view).map_err(|e| ApiError::internal(e.to_string()))?))
}

pub(super) async fn rotate_now(State(state): State<Arc<ApiState>>, Path(id): Path<String>) -> Answer {
    let report = state.scheduler.rotate_now(&id, "api").await?;
    let steps = super::rotate::steps_json(&report);
    Ok(Json(json!({
        "job": report.job,
        "rotation_id": report.rotation_id,
        "plugin": report.plugin,
        "previous_version": report.previous_version,
        "version": report.new_version,
        "resumed_from": report.resumed_from.map(|s| s.as_str()),
        "steps": steps,
    })))
}

pub(super) async fn remove(State(state): State<Arc<ApiState>>, Path(id): Path<String>) -> Answer {
    if !state.scheduler.remove(&id) {
        return Err(ApiError::not_found(format!("no job `{id}`")));
    }
    // A kept definition goes too (a config file's job has none: a restart
    // brings it back, as the file says).
    if let Err(e) = state.scheduler.store().delete_definition(&id).await {
        tracing::warn!(job = %id, error = %e, "removed, but its kept definition could not be deleted");
    }
    Ok(Json(json!({ "removed": id })))
}

pub(super) async fn add(State(state): State<Arc<ApiState>>, JsonBody(body): JsonBody<Value>) -> Answer {
    let Value::Object(fields) = body else { return Err(ApiError::bad_request("a job is a JSON object")) };
    let table = if fields.contains_key("type") { flask_job(fields)? } else { fields };
    let id = add_table(&state, table.clone()).await?;
    // Kept beside the job records, so the job survives a restart and every
    // daemon on the same store sees it ([`restore`]).
    if let Err(e) = state.scheduler.store().save_definition(&id, &Value::Object(table)).await {
        tracing::warn!(job = %id, error = %e, "added, but its definition could not be kept: it ends with this daemon");
    }
    tracing::info!(job = %id, "job added through the API");
    let view = state.jobs.view(&id).ok_or_else(|| ApiError::internal("the job vanished"))?;
    Ok(Json(serde_json::to_value(view).map_err(|e| ApiError::internal(e.to_string()))?))
}

/// Add the jobs kept by earlier daemons (added through the API), after the
/// config's: a config job of the same id wins. One that no longer passes
/// the checks (its plugin file gone, `plugin_dirs` changed) is logged and
/// left kept, not deleted.
pub async fn restore(state: &ApiState) {
    let kept = match state.scheduler.store().definitions().await {
        Ok(kept) => kept,
        Err(e) => return tracing::error!(error = %e, "cannot read the kept API jobs; they are not scheduled"),
    };
    for (id, definition) in kept {
        if state.jobs.contains(&id) {
            tracing::info!(job = %id, "a kept API job has the id of a configured one: the config's is used");
            continue;
        }
        let Value::Object(table) = definition else { continue };
        match add_table(state, table).await {
            Ok(_) => tracing::info!(job = %id, "kept API job restored"),
            Err(e) => {
                tracing::error!(job = %id, error = %e.message, "a kept API job no longer passes the checks; not scheduled")
            }
        }
    }
}

/// Check a job's fields exactly as a configured job's and schedule it: its id.
async fn add_table(state: &ApiState, mut table: Map<String, Value>) -> Result<String, ApiError> {
    confine_plugin(&mut table, &state.options.plugin_dirs)?;
    let doc = json!({ "jobs": [table] });
    let text = toml::to_string(&doc).map_err(|e| ApiError::bad_request(format!("not a job: {e}")))?;
    let config = rotator_core::config::parse("job", &text, std::path::Path::new("."))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let runtime = state.options.plugins.runtime().clone();
    let mut jobs = tokio::task::spawn_blocking(move || crate::setup::load_jobs(&config, &runtime))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let job = jobs.pop().ok_or_else(|| ApiError::bad_request("no job in the body"))?;
    // A job's secret lives on a real KV mount, as Vault's mount table says:
    // `sys` or `auth/token` is refused here (400), not at the first rotation.
    if let Some(secret) = job.config.secret.as_ref().and_then(|s| s.kv()) {
        state.vault()?.kv_version(&secret.mount).await?;
    }
    let id = job.config.id.clone();
    state.scheduler.add(job).await?;
    Ok(id)
}

/// A runtime job's `plugin`: a built-in name stays; anything else must be a
/// file inside one of `dirs` and becomes its canonical path. A missing or
/// non-string `plugin` is left for the config parser to report.
fn confine_plugin(table: &mut Map<String, Value>, dirs: &[PathBuf]) -> Result<(), ApiError> {
    let Some(Value::String(name)) = table.get("plugin") else { return Ok(()) };
    if rotator_core::builtin::find(name).is_some() {
        return Ok(());
    }
    let path = rotator_core::plugin::find_in_dirs(dirs, name).map_err(|e| ApiError::bad_request(e.to_string()))?;
    // Lossless: found paths are UTF-8.
    table.insert("plugin".into(), Value::String(path.to_string_lossy().into_owned()));
    Ok(())
}

/// The Flask rotation service's job format → our job fields, by the
/// mapping `rotator run` reads the service's environment with
/// ([`seed_env::flask_job`]); every problem in one answer.
fn flask_job(f: Map<String, Value>) -> Result<Map<String, Value>, ApiError> {
    seed_env::flask_job(f).map_err(|errors| {
        let explain = |e: &FlaskJobError| match e {
            FlaskJobError::Job(LegacyError::UnknownType { .. }) => {
                format!("{e}; or send our job fields without `type`")
            }
            e => e.to_string(),
        };
        ApiError::bad_request(errors.iter().map(explain).collect::<Vec<_>>().join("; "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flask(job: Value) -> Result<Map<String, Value>, ApiError> {
        let Value::Object(f) = job else { unreachable!("an object") };
        flask_job(f)
    }

    #[test]
    fn flask_jobs_become_our_fields() {
        let job = flask(json!({"type": "kv_random", "mount": "secret", "path": "app/config", "field": "password",
                               "length": 32, "interval_seconds": 3600}))
        .unwrap();
        assert_eq!(job["id"], "kv-secret-app-config");
        assert_eq!(job["plugin"], "kv-random");
        assert_eq!(job["interval"], "3600s");
        assert_eq!(job["secret"], json!({"mount": "secret", "path": "app/config"}));
        assert_eq!(job["settings"], json!({"field": "password", "length": 32}));
        assert!(!job.contains_key("grants"));

        let job = flask(json!({"type": "database_root", "connection": "pg", "interval_seconds": 86400})).unwrap();
        assert_eq!(job["id"], "db-root-pg");
        assert_eq!(job["grants"][0], json!({"path": "database/rotate-root/pg", "operations": ["write"]}));
        let named = flask(json!({"type": "database_root", "connection": "pg", "interval_seconds": 60, "id": "mine"}));
        assert_eq!(named.unwrap()["id"], "mine");
    }

    #[test]
    fn flask_jobs_with_bad_envelopes_or_fields_are_refused_by_name() {
        let refused = |job: Value| flask(job).err().map(|e| (e.status, e.message)).expect("refused");
        let message = |job: Value| refused(job).1;
        assert_eq!(refused(json!({"type": "kv_random", "path": "a", "field": "f"})).0, StatusCode::BAD_REQUEST);
        assert_eq!(message(json!({"type": "kv_random", "path": "a", "field": "f"})), "`interval_seconds` is required");
        let zero = json!({"type": "kv_random", "path": "a", "field": "f", "interval_seconds": 0});
        assert_eq!(message(zero), "`interval_seconds` must be a positive whole number");
        assert_eq!(message(json!({"type": 7, "interval_seconds": 5})), "`type` must be a string");
        let unknown = message(json!({"type": "ldap", "interval_seconds": 5}));
        assert!(unknown.starts_with("unknown job type `ldap` (known: kv_random, database_root)"), "{unknown}");
        assert!(unknown.ends_with("or send our job fields without `type`"), "{unknown}");
        let extra = json!({"type": "kv_random", "path": "a", "field": "f", "interval_seconds": 5, "colour": 1});
        assert_eq!(message(extra), "unknown field `colour` for a kv_random job");
        let id = json!({"type": "kv_random", "path": "a", "field": "f", "interval_seconds": 5, "id": 3});
        assert_eq!(message(id), "`id` must be a string");
        let wildcard = json!({"type": "database_root", "connection": "*", "interval_seconds": 60});
        assert!(message(wildcard).contains("not a plain name"));
    }
}
