//! The scheduler's jobs over HTTP: list, add and remove jobs at runtime,
//! show one job's state, and `rotate now`.
//!
//! A job added at runtime goes through exactly the checks a configured one
//! does: its JSON is turned into a `[[jobs]]` TOML table and parsed by
//! [`rotator_core::config::parse`], then its plugin is loaded and its settings are
//! checked against the plugin's schema. Seed 000's job format
//! (`{"type": "kv_random", "path": …, "interval_seconds": …}`) is accepted
//! and translated to the same fields. Runtime jobs live until the daemon
//! stops; their state (last rotation, PENDING) is in Vault like any job's.
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
use super::{Answer, ApiError, ApiState, params};
use crate::scheduler::SchedulerError;

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

pub(super) async fn list(State(state): State<Arc<ApiState>>) -> Answer {
    Ok(Json(json!({ "jobs": state.scheduler.views() })))
}

pub(super) async fn show(State(state): State<Arc<ApiState>>, Path(id): Path<String>) -> Answer {
    let view = state.scheduler.view(&id).ok_or_else(|| ApiError::not_found(format!("no job `{id}`")))?;
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
    Ok(Json(json!({ "removed": id })))
}

pub(super) async fn add(State(state): State<Arc<ApiState>>, JsonBody(body): JsonBody<Value>) -> Answer {
    let Value::Object(fields) = body else { return Err(ApiError::bad_request("a job is a JSON object")) };
    let mut table = if fields.contains_key("type") { from_seed(fields)? } else { fields };
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
    if let Some(secret) = &job.config.secret {
        state.vault.kv_version(&secret.mount).await?;
    }
    let id = job.config.id.clone();
    state.scheduler.add(job).await?;
    tracing::info!(job = %id, "job added through the API");
    let view = state.scheduler.view(&id).ok_or_else(|| ApiError::internal("the job vanished"))?;
    Ok(Json(serde_json::to_value(view).map_err(|e| ApiError::internal(e.to_string()))?))
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

/// Seed 000's job format → our job fields.
fn from_seed(mut f: Map<String, Value>) -> Result<Map<String, Value>, ApiError> {
    let kind = f.remove("type").and_then(|t| t.as_str().map(str::to_owned)).unwrap_or_default();
    let interval = match f.remove("interval_seconds") {
        Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n > 0) => format!("{n}s"),
        Some(_) => return Err(ApiError::bad_request("`interval_seconds` must be a positive whole number")),
        None => return Err(ApiError::bad_request("`interval_seconds` is required")),
    };
    let mut take = |key: &str| f.remove(key);
    let text = |v: Option<Value>, key: &str| -> Result<String, ApiError> {
        v.and_then(|v| v.as_str().map(str::to_owned))
            .ok_or_else(|| ApiError::bad_request(format!("`{key}` is required")))
    };
    let given_id = take("id");
    let (id, job) = match kind.as_str() {
        "kv_random" => {
            let mount = take("mount").and_then(|m| m.as_str().map(str::to_owned)).unwrap_or_else(|| "secret".into());
            let mount = params::kv_path("mount", &mount)?.to_string();
            let path = params::kv_path("path", &text(take("path"), "path")?)?.to_string();
            let mut settings = Map::new();
            for key in ["field", "length", "alphabet", "rules", "preserve_fields"] {
                if let Some(v) = take(key) {
                    settings.insert(key.into(), v);
                }
            }
            let id = format!("kv-{mount}-{path}");
            let job = json!({
                "plugin": "kv-random",
                "secret": { "mount": mount, "path": path },
                "interval": interval,
                "settings": settings,
            });
            (id, job)
        }
        "database_root" => {
            let mount = take("mount").and_then(|m| m.as_str().map(str::to_owned)).unwrap_or_else(|| "database".into());
            let connection = text(take("connection"), "connection")?;
            // Both become grant paths, where `*` and `+` are wildcards: a
            // connection `*` would grant every connection's root.
            let mount = params::name("mount", &mount, true)?.to_owned();
            let connection = params::name("connection", &connection, false)?.to_owned();
            let job = json!({
                "plugin": "database-root",
                "interval": interval,
                "settings": { "mount": mount, "connection": connection },
                "grants": super::rotate::database_root_grants(&mount, &connection),
            });
            (format!("db-root-{connection}"), job)
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown job type `{other}` (kv_random or database_root; or send our job fields without `type`)"
            )));
        }
    };
    if let Some(key) = f.keys().next() {
        return Err(ApiError::bad_request(format!("unknown field `{key}` for a {kind} job")));
    }
    let Value::Object(mut job) = job else { unreachable!("built as an object") };
    let id = match given_id {
        Some(Value::String(id)) => id,
        _ => job_id(&id),
    };
    job.insert("id".into(), id.into());
    Ok(job)
}

/// A valid job id from free text: lowercase, `-` for anything else.
fn job_id(text: &str) -> String {
    let mut id: String =
        text.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    id.truncate(64);
    id.trim_matches('-').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_jobs_become_our_fields() {
        let seed = json!({"type": "kv_random", "mount": "secret", "path": "app/config", "field": "password",
                          "length": 32, "interval_seconds": 3600});
        let Value::Object(f) = seed else { unreachable!() };
        let job = from_seed(f).unwrap();
        assert_eq!(job["id"], "kv-secret-app-config");
        assert_eq!(job["plugin"], "kv-random");
        assert_eq!(job["interval"], "3600s");
        assert_eq!(job["settings"], json!({"field": "password", "length": 32}));

        let Value::Object(f) = json!({"type": "database_root", "connection": "pg", "interval_seconds": 86400}) else {
            unreachable!()
        };
        let job = from_seed(f).unwrap();
        assert_eq!(job["id"], "db-root-pg");
        assert_eq!(job["grants"][0]["path"], "database/rotate-root/pg");

        let Value::Object(f) = json!({"type": "kv_random", "path": "a", "interval_seconds": 5, "colour": 1}) else {
            unreachable!()
        };
        assert!(from_seed(f).is_err());
    }

    #[test]
    fn seed_jobs_cannot_smuggle_wildcards_or_paths() {
        let refused = |seed: Value| {
            let Value::Object(f) = seed else { unreachable!() };
            from_seed(f).err().map(|e| e.message).expect("refused")
        };
        let db = |extra: Value| {
            let mut seed = json!({"type": "database_root", "connection": "pg", "interval_seconds": 60});
            seed.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            seed
        };
        assert!(refused(db(json!({"connection": "*"}))).contains("not a plain name"));
        assert!(refused(db(json!({"connection": "+"}))).contains("not a plain name"));
        assert!(refused(db(json!({"mount": "*"}))).contains("not a plain name"));
        assert!(refused(db(json!({"connection": "../../sys"}))).contains("not a plain name"));
        let kv = |path: &str| json!({"type": "kv_random", "path": path, "interval_seconds": 60});
        assert!(refused(kv("a/../../sys/policy/x")).contains("`.` or `..` segment"));
        assert!(refused(kv("a?b")).contains("query"));
    }
}
