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
use crate::scheduler::registry::JobView;
use rotator_core::builtin::LegacyError;
use rotator_core::config::seed_env::{self, FlaskJobError};
use rotator_core::rotation::RotationError;

impl From<SchedulerError> for ApiError {
    fn from(e: SchedulerError) -> Self {
        match e {
            SchedulerError::UnknownJob(_) => Self::not_found(e.to_string()),
            SchedulerError::Duplicate(_)
            | SchedulerError::Busy(_)
            | SchedulerError::Blocked { .. }
            | SchedulerError::NotOwner { .. } => Self::new(StatusCode::CONFLICT, e.to_string()),
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
    let jobs = state.jobs.views().into_iter().map(echoed).collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!({ "jobs": jobs })))
}

pub(super) async fn show(State(state): State<Arc<ApiState>>, Path(id): Path<String>) -> Answer {
    let view = state.jobs.view(&id).ok_or_else(|| ApiError::not_found(format!("no job `{id}`")))?;
    Ok(Json(echoed(view)?))
}

/// A job as the API shows it: our view, and for a job given in the Flask
/// service's format its fields as given (`type`, `path`, `field`, …), so
/// that service's clients read back what they sent. Ours win a name both
/// use (`id`, `interval_seconds`), which mean the same in either.
fn echoed(view: JobView) -> Result<Value, ApiError> {
    let given = view.given.clone();
    let mut shown = serde_json::to_value(view).map_err(|e| ApiError::internal(e.to_string()))?;
    if let (Some(given), Value::Object(ours)) = (given, &mut shown) {
        for (key, value) in given.iter() {
            ours.entry(key.clone()).or_insert_with(|| value.clone());
        }
    }
    Ok(shown)
}

pub(super) async fn rotate_now(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let report = match state.scheduler.rotate_now(&id, "api").await {
        // The new value is current; `finish` waits for the job's consumers.
        Err(SchedulerError::Rotation(RotationError::AwaitingAdoption { job, version, until })) => {
            let message = format!("version {version} is current; finish waits until {until} for its consumers");
            let until = until.format(&time::format_description::well_known::Rfc3339).ok();
            let body = json!({ "job": job, "status": "awaiting-adoption", "version": version, "until": until, "message": message });
            return Ok((StatusCode::ACCEPTED, Json(body)));
        }
        other => other?,
    };
    let steps = super::rotate::steps_json(&report);
    Ok((
        StatusCode::OK,
        Json(json!({
            "job": report.job,
            "rotation_id": report.rotation_id,
            "plugin": report.plugin,
            "previous_version": report.previous_version,
            "version": report.new_version,
            "resumed_from": report.resumed_from.map(|s| s.as_str()),
            "steps": steps,
        })),
    ))
}

/// `POST /jobs/{id}/adopted`: the job's consumers say they use a version
/// (its `adoption = { ack = true }` gate). Kept beside the job records, so
/// any replica may be told and a restart loses nothing; the job is looked
/// at at once.
pub(super) async fn adopted(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Answer {
    use rotator_core::config::adoption::Gate;
    let job = state.jobs.job(&id).ok_or_else(|| ApiError::not_found(format!("no job `{id}`")))?;
    if !matches!(job.config.adoption.as_ref().map(|a| &a.gate), Some(Gate::Ack)) {
        return Err(ApiError::bad_request(format!("job `{id}` has no `adoption = {{ ack = true }}` gate")));
    }
    let version = match body.get("version") {
        Some(Value::String(v)) if !v.is_empty() && v.len() <= 128 && !v.chars().any(char::is_control) => v.clone(),
        Some(Value::Number(n)) if n.is_u64() => n.to_string(),
        _ => {
            return Err(ApiError::bad_request(
                "give `version`: the version in use, a string of at most 128 characters or a number",
            ));
        }
    };
    state
        .scheduler
        .store()
        .save_adoption(&id, &version)
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, e.to_string()))?;
    tracing::info!(job = %id, version = %version, "consumers adopted a version");
    state.scheduler.poke(&id);
    Ok(Json(json!({ "job": id, "version": version })))
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
    state.kept(&id, false);
    Ok(Json(json!({ "removed": id })))
}

pub(super) async fn add(State(state): State<Arc<ApiState>>, JsonBody(body): JsonBody<Value>) -> Answer {
    let Value::Object(fields) = body else { return Err(ApiError::bad_request("a job is a JSON object")) };
    let (table, given) = as_table(fields)?;
    // Kept as given, beside the job records, so the job survives a restart
    // and every daemon on the same store sees it ([`restore`]).
    let kept = Value::Object(given.clone().unwrap_or_else(|| table.clone()));
    let id = add_table(&state, table, given).await?;
    if let Err(e) = state.scheduler.store().save_definition(&id, &kept).await {
        tracing::warn!(job = %id, error = %e, "added, but its definition could not be kept: it ends with this daemon");
    }
    state.kept(&id, true);
    tracing::info!(job = %id, "job added through the API");
    let view = state.jobs.view(&id).ok_or_else(|| ApiError::internal("the job vanished"))?;
    Ok(Json(echoed(view)?))
}

/// A job's fields as a JSON object.
type Fields = Map<String, Value>;

/// A job's fields as ours, and as given if that was the Flask service's
/// format (it has a `type`).
fn as_table(fields: Fields) -> Result<(Fields, Option<Fields>), ApiError> {
    if fields.contains_key("type") { Ok((flask_job(fields.clone())?, Some(fields))) } else { Ok((fields, None)) }
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
        if state.kept_jobs.lock().unwrap_or_else(|p| p.into_inner()).contains(&id) {
            continue;
        }
        if state.jobs.contains(&id) {
            tracing::info!(job = %id, "a kept API job has the id of a configured one: the config's is used");
            continue;
        }
        let Value::Object(fields) = definition else { continue };
        // Kept as given: the Flask service's format is mapped again.
        let added = match as_table(fields) {
            Ok((table, given)) => add_table(state, table, given).await,
            Err(e) => Err(e),
        };
        match added {
            Ok(_) => {
                tracing::info!(job = %id, "kept API job restored");
                state.kept(&id, true);
            }
            Err(e) => {
                tracing::error!(job = %id, error = %e.message, "a kept API job no longer passes the checks; not scheduled")
            }
        }
    }
}

/// With replicas: follow the kept API jobs as other replicas add and
/// remove them (each change moves the record's generation): add the new
/// ones, drop the ones whose definition is gone.
pub async fn follow_kept_jobs(
    state: Arc<ApiState>,
    mut generation: tokio::sync::watch::Receiver<u64>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            changed = generation.changed() => if changed.is_err() { return },
            _ = stop.wait_for(|s| *s) => return,
        }
        let kept = match state.scheduler.store().definitions().await {
            Ok(kept) => kept.into_iter().map(|(id, _)| id).collect::<std::collections::BTreeSet<_>>(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the kept API jobs; trying at the next change");
                continue;
            }
        };
        let known = state.kept_jobs.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for gone in known.difference(&kept) {
            if state.scheduler.remove(gone) {
                tracing::info!(job = %gone, "kept API job removed on another replica");
            }
            state.kept(gone, false);
        }
        restore(&state).await;
    }
}

/// Check a job's fields exactly as a configured job's and schedule it
/// (remembering the fields as `given`, to echo): its id.
async fn add_table(
    state: &ApiState,
    mut table: Map<String, Value>,
    given: Option<Map<String, Value>>,
) -> Result<String, ApiError> {
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
    let mut job = jobs.pop().ok_or_else(|| ApiError::bad_request("no job in the body"))?;
    job.config.given = given.map(Arc::new);
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
