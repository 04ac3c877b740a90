//! One-off rotations through the built-in plugins: `POST /kv/{path}/rotate`
//! (`kv-random`) and `POST /rotate/database-root` (`database-root`).
//!
//! Each request becomes a transient [`Job`] that runs the same protocol as a
//! scheduled one ([`Job::rotate`]): the plugin creates the value, the host
//! promotes it with check-and-set and rolls back on failure. Nothing is
//! generated here. The job's grants are the least the plugin needs: none
//! for `kv-random` (the host writes the secret), and for `database-root`
//! exactly the rotate-root and config paths of the one connection named.
//!
//! Built-ins are loaded on first use. API rotations count against the
//! daemon's `max_concurrent_rotations` like scheduled ones, are audited and
//! appear in the live feed ([`Scheduler::rotate_once`](crate::scheduler::Scheduler::rotate_once)).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::sync::OnceCell;

use super::error::{JsonBody, from_body};
use super::{Answer, ApiError, ApiState, params};
use rotator_core::config::{JobConfig, PluginRef, SecretLocation};
use rotator_core::plugin::{Grants, Operation, Plugin, Runtime, VaultGrant};
use rotator_core::rotation::{Job, RotationReport};
use rotator_core::vault::VaultPath;

const KV_RANDOM: &str = "kv-random";
const DATABASE_ROOT: &str = "database-root";

/// The built-in plugins, loaded on first use.
pub struct BuiltinPlugins {
    runtime: Arc<Runtime>,
    kv_random: OnceCell<Plugin>,
    database_root: OnceCell<Plugin>,
}

impl BuiltinPlugins {
    pub fn new(runtime: Arc<Runtime>) -> Self {
        Self { runtime, kv_random: OnceCell::new(), database_root: OnceCell::new() }
    }

    /// The runtime jobs added through the API load their plugins into.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    async fn get(&self, name: &'static str) -> Result<Plugin, ApiError> {
        let cell = if name == KV_RANDOM { &self.kv_random } else { &self.database_root };
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
    let config = JobConfig::unscheduled(id, plugin_ref, secret, settings, Arc::new(grants));
    Ok(Job { config, plugin })
}

/// The body of `POST /kv/{path}/rotate`: `kv-random`'s settings and the
/// mount. Fields that may hold secret values are `Value`s (never quoted in
/// errors) and checked by the plugin's schema.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KvRotateBody {
    field: String,
    length: Option<u32>,
    alphabet: Option<String>,
    rules: Option<Value>,
    preserve_fields: Option<Value>,
    mount: Option<String>,
}

pub(super) async fn kv_field(state: &ApiState, path: &VaultPath, query_mount: Option<String>, body: Value) -> Answer {
    let body: KvRotateBody = from_body(body)?;
    let mount = body.mount.or(query_mount).unwrap_or_else(|| "secret".into());
    let mount = params::kv_path("mount", &mount)?;
    // Refused (400) before a state record is staged for it.
    state.vault.kv_version(&mount).await?;
    if body.preserve_fields.as_ref().is_some_and(|p| !p.is_object()) {
        return Err(ApiError::bad_request("`preserve_fields` must be a JSON object"));
    }
    let mut settings = Map::new();
    settings.insert("field".into(), body.field.clone().into());
    let optional = [
        ("length", body.length.map(Value::from)),
        ("alphabet", body.alphabet.map(Value::from)),
        ("rules", body.rules),
        ("preserve_fields", body.preserve_fields),
    ];
    settings.extend(optional.into_iter().filter_map(|(k, v)| v.map(|v| (k.to_owned(), v))));

    let plugins = &state.options.plugins;
    let location = SecretLocation { mount: mount.to_string(), path: path.to_string() };
    // One state record per target, so an interrupted API rotation of this
    // secret is resumed by the next one, never confused with another's.
    let id = format!("api/kv/{mount}/{path}");
    let job = transient_job(id, plugins.get(KV_RANDOM).await?, Some(location), settings, Grants::default())?;
    let report = state.scheduler.rotate_once(&job, "api").await?;
    let written = match report.new_version {
        Some(v) => state.vault.kv_read_version(&mount, path, Some(v)).await?,
        None => None,
    };
    Ok(Json(json!({
        "mount": mount.as_str(),
        "path": path.as_str(),
        "field": body.field,
        "rotation_id": report.rotation_id,
        "plugin": report.plugin,
        "previous_version": report.previous_version,
        "version": report.new_version,
        "data": written.map(|s| state.show(&s.data)),
        "redacted": !state.options.reveal_secrets,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DatabaseRootBody {
    #[serde(default = "default_database_mount")]
    mount: String,
    connection: String,
}

fn default_database_mount() -> String {
    "database".into()
}

/// The least `database-root` needs for one connection: rotate its root and
/// read its config. Used by one-off rotations and seed-format jobs alike.
pub(super) fn database_root_grants(mount: &str, connection: &str) -> Vec<VaultGrant> {
    let grant = |path: String, op| VaultGrant { path, operations: vec![op] };
    vec![
        grant(format!("{mount}/rotate-root/{connection}"), Operation::Write),
        grant(format!("{mount}/config/{connection}"), Operation::Read),
    ]
}

pub(super) async fn database_root(
    State(state): State<Arc<ApiState>>,
    JsonBody(body): JsonBody<DatabaseRootBody>,
) -> Answer {
    let mount = params::name("mount", &body.mount, true)?;
    let connection = params::name("connection", &body.connection, false)?;
    let grants = Grants { vault: database_root_grants(mount, connection), ..Grants::default() };
    let settings = Map::from_iter([("mount".into(), mount.into()), ("connection".into(), connection.into())]);
    let plugins = &state.options.plugins;
    let id = format!("api/database-root/{mount}/{connection}");
    let job = transient_job(id, plugins.get(DATABASE_ROOT).await?, None, settings, grants)?;
    let report = state.scheduler.rotate_once(&job, "api").await?;
    tracing::info!(mount, connection, rotation = %report.rotation_id, "database root rotated through the API");
    let calls: Vec<Value> =
        report.host_calls.iter().map(|c| json!({ "operation": c.operation, "path": c.path })).collect();
    let steps = steps_json(&report);
    Ok(Json(json!({
        "mount": mount,
        "connection": connection,
        "rotation_id": report.rotation_id,
        "plugin": report.plugin,
        "steps": steps,
        "vault_calls": calls,
    })))
}
