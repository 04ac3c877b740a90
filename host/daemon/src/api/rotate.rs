//! One-off rotations, as the Flask rotation service offered them:
//! `POST /kv/{path}/rotate` and `POST /rotate/database-root`.
//!
//! Each endpoint runs one of the service's job types. Which built-in plugin
//! that is, and how the request's fields become its secret, settings and
//! grants, is the built-in's own declaration
//! ([`rotator_core::builtin::legacy_job`]); nothing here names a plugin or a
//! settings key. The request becomes a transient [`Job`] that runs the same
//! protocol as a scheduled one ([`Job::rotate`]): the plugin creates the
//! value, the host promotes it with check-and-set and rolls back on
//! failure. Nothing is generated here. The job's grants are the least the
//! built-in declares for the one target named.
//!
//! Built-ins are loaded on first use. API rotations count against the
//! daemon's `max_concurrent_rotations` like scheduled ones, are audited and
//! appear in the live feed ([`Scheduler::rotate_once`](crate::scheduler::Scheduler::rotate_once)).
//! Each answer repeats the fields that name the target (the built-in's
//! `echo`) and adds what the rotation did.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::{Map, Value, json};
use tokio::sync::OnceCell;

use super::error::JsonBody;
use super::{Answer, ApiError, ApiState};
use rotator_core::builtin::{self, LegacyGrant, LegacyJob};
use rotator_core::config::{JobConfig, PluginRef, SecretLocation};
use rotator_core::plugin::{Grants, Operation, Plugin, Runtime, VaultGrant};
use rotator_core::rotation::{Job, RotationReport};
use rotator_core::vault::VaultPath;

/// The service's job type `POST /kv/{path}/rotate` runs.
const KV_ROTATE: &str = "kv_random";
/// The service's job type `POST /rotate/database-root` runs.
const DATABASE_ROOT_ROTATE: &str = "database_root";

/// The built-in plugins, each loaded on first use.
pub struct BuiltinPlugins {
    runtime: Arc<Runtime>,
    loaded: HashMap<&'static str, OnceCell<Plugin>>,
}

impl BuiltinPlugins {
    pub fn new(runtime: Arc<Runtime>) -> Self {
        Self { runtime, loaded: builtin::BUILTINS.iter().map(|b| (b.name, OnceCell::new())).collect() }
    }

    /// The runtime jobs added through the API load their plugins into.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    async fn get(&self, name: &str) -> Result<Plugin, ApiError> {
        let (&name, cell) = self
            .loaded
            .get_key_value(name)
            .ok_or_else(|| ApiError::internal(format!("no built-in plugin `{name}`")))?;
        let runtime = self.runtime.clone();
        cell.get_or_try_init(|| async move {
            tokio::task::spawn_blocking(move || runtime.load_builtin(name, None))
                .await
                .map_err(|e| ApiError::internal(format!("loading {name}: {e}")))?
                .map_err(|e| ApiError::internal(e.to_string()))
        })
        .await
        .cloned()
    }
}

/// A rotation's steps with their timings, as answers show them.
pub(super) fn steps_json(report: &RotationReport) -> Vec<Value> {
    let step = |s: &rotator_core::rotation::StepTiming| json!({ "step": s.step, "milliseconds": s.duration.as_secs_f64() * 1e3 });
    report.steps.iter().map(step).collect()
}

/// A declared grant as the plugin runtime enforces it.
fn vault_grant(g: &LegacyGrant) -> Result<VaultGrant, ApiError> {
    let operations: Option<Vec<Operation>> = g.operations.iter().map(|o| Operation::parse(o)).collect();
    let operations =
        operations.ok_or_else(|| ApiError::internal(format!("a built-in grant on {} is malformed", g.path)))?;
    Ok(VaultGrant { path: g.path.clone(), operations })
}

/// A job that exists for one API request. Its settings are checked against
/// the plugin's schema first, as the config loader checks a configured job's.
fn transient_job(
    id: String,
    plugin: Plugin,
    secret: Option<SecretLocation>,
    settings: Map<String, Value>,
    grants: Grants,
) -> Result<Job, ApiError> {
    let settings = Value::Object(settings);
    let problems: Vec<String> = plugin
        .validate_settings(&settings)
        .into_iter()
        .map(|p| if p.pointer.is_empty() { p.message } else { format!("{}: {}", &p.pointer[1..], p.message) })
        .collect();
    if !problems.is_empty() {
        return Err(ApiError::bad_request(format!("{}: {}", plugin.label(), problems.join("; "))));
    }
    let plugin_ref = PluginRef::Builtin(plugin.info().name.clone());
    let config = JobConfig::unscheduled(id, plugin_ref, secret.map(Into::into), settings, Arc::new(grants));
    Ok(Job { config, plugin })
}

/// Map a request of the service's `job_type` onto its built-in and rotate
/// it once, as `api`.
async fn one_off(
    state: &ApiState,
    job_type: &str,
    fields: Map<String, Value>,
) -> Result<(LegacyJob, RotationReport), ApiError> {
    let mapped = builtin::legacy_job(job_type, fields)?;
    // A secret lives on a real KV mount, as Vault's mount table says:
    // refused (400) before a state record is staged for it.
    if let Some(secret) = &mapped.secret {
        state.vault()?.kv_version(&secret.mount).await?;
    }
    let plugin = state.options.plugins.get(mapped.plugin).await?;
    let vault = mapped.grants.iter().map(vault_grant).collect::<Result<_, _>>()?;
    let grants = Grants { vault, ..Grants::default() };
    // One state record per target, so an interrupted API rotation of it is
    // resumed by the next one, never confused with another target's.
    let id = format!("api/{}", mapped.target);
    let job = transient_job(id, plugin, mapped.secret.clone(), mapped.settings.clone(), grants)?;
    let report = state.scheduler.rotate_once(&job, "api").await?;
    tracing::info!(job = %job.config.id, rotation = %report.rotation_id, "rotated through the API");
    Ok((mapped, report))
}

fn object(body: Value) -> Result<Map<String, Value>, ApiError> {
    match body {
        Value::Object(fields) => Ok(fields),
        _ => Err(ApiError::bad_request("the body must be a JSON object")),
    }
}

/// `POST /kv/{path}/rotate`: the secret's path is the URL's; its mount the
/// body's `mount`, else the `?mount=` query's. Answers what Vault now holds
/// (redacted unless secrets are revealed).
pub(super) async fn kv_field(state: &ApiState, path: &VaultPath, query_mount: Option<String>, body: Value) -> Answer {
    let mut fields = object(body)?;
    if fields.contains_key("path") {
        return Err(ApiError::bad_request("unknown field `path`: the secret's path is the URL's"));
    }
    fields.insert("path".into(), path.as_str().into());
    if let Some(mount) = query_mount
        && fields.get("mount").is_none_or(Value::is_null)
    {
        fields.insert("mount".into(), mount.into());
    }
    let (mapped, report) = one_off(state, KV_ROTATE, fields).await?;
    let mut answer = mapped.echo;
    answer.extend([
        ("rotation_id".to_owned(), json!(report.rotation_id)),
        ("plugin".to_owned(), json!(report.plugin)),
        ("previous_version".to_owned(), json!(report.previous_version)),
        ("version".to_owned(), json!(report.new_version)),
        // The value the rotation made current: no second read of the store.
        ("data".to_owned(), json!(report.value.as_ref().map(|v| state.show(v)))),
        ("redacted".to_owned(), json!(!state.options.reveal_secrets)),
    ]);
    Ok(Json(Value::Object(answer)))
}

/// `POST /rotate/database-root`: answers the steps and every Vault call
/// the plugin made.
pub(super) async fn database_root(State(state): State<Arc<ApiState>>, JsonBody(body): JsonBody<Value>) -> Answer {
    let (mapped, report) = one_off(&state, DATABASE_ROOT_ROTATE, object(body)?).await?;
    let calls: Vec<Value> =
        report.host_calls.iter().map(|c| json!({ "operation": c.operation, "path": c.path })).collect();
    let mut answer = mapped.echo;
    answer.extend([
        ("rotation_id".to_owned(), json!(report.rotation_id)),
        ("plugin".to_owned(), json!(report.plugin)),
        ("steps".to_owned(), json!(steps_json(&report))),
        ("vault_calls".to_owned(), json!(calls)),
    ]);
    Ok(Json(Value::Object(answer)))
}
