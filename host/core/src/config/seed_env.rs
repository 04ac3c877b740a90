//! `rotator run` without `--config`: the Flask rotation service's
//! environment as a [`Config`], so a deployment of the service switches by
//! changing its image. With `--config`, the same environment fills what the
//! file leaves out ([`with_file`]; [`merge`] has the rule and keeps each
//! value's source for `rotator check`).
//!
//! Read: `VAULT_ADDR` and `VAULT_TOKEN` (the `[vault]` defaults already),
//! `VAULT_AUTH_METHOD` (`token` or `kubernetes`, with `VAULT_K8S_ROLE` and
//! `KUBERNETES_JWT_PATH`), `VAULT_MOUNT_KV` and `VAULT_MOUNT_DB` (the mount
//! of a `kv_random` or `database_root` job that names none), and the jobs:
//! `ROTATION_CONFIG_PATH` (a file holding a JSON array of the service's job
//! objects) then `ROTATION_JOBS_JSON` (the same, inline). `ROTATOR_API_TOKEN`
//! guards the API as always; `ROTATOR_API_ADDR` is where it listens.
//!
//! Each job goes through the mapping the API uses for the same objects
//! ([`flask_job`]), then through the config parser as a `[[jobs]]` table, so
//! the environment can express nothing a config file could not. Every
//! problem is collected and located by source, job index and key
//! (`ROTATION_JOBS_JSON[2].interval_seconds: …`) before anything contacts
//! Vault, the built-ins' settings schemas included ([`from_env`]). Each
//! job source is capped at [`MAX_JOBS_BYTES`].

mod flask;
pub mod merge;
mod schemas;

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value, json};

pub use flask::{FlaskJobError, flask_job};
pub use merge::{Merged, Provenance};

use super::{Config, SourceFile};

/// The most a job source (the file or the variable) may hold: 1 MiB.
pub const MAX_JOBS_BYTES: usize = 1 << 20;

/// For each of the service's job types, the variable naming its default mount.
const DEFAULT_MOUNTS: [(&str, &str); 2] = [("kv_random", "VAULT_MOUNT_KV"), ("database_root", "VAULT_MOUNT_DB")];

/// Every problem found in the environment, one located line each.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .problems.join("\n"))]
pub struct SeedEnvErrors {
    pub problems: Vec<String>,
}

/// The process environment as a config; relative paths resolve against `base_dir`.
/// Each job's settings are checked against its built-in's schema too.
pub fn from_env(base_dir: &Path) -> Result<Config, SeedEnvErrors> {
    let schemas = schemas::BuiltinSchemas::default();
    let var = |name: &str| std::env::var_os(name).map(|v| v.into_string().map_err(|_| ()));
    from_vars(var, base_dir, &|plugin, settings| schemas.check(plugin, settings))
}

/// A job's settings checked for its plugin (by name): the problems.
pub type SettingsCheck<'a> = &'a dyn Fn(&str, &Value) -> Vec<JobProblem>;

/// The environment `var` describes as a config (see the module's list),
/// each job's settings checked by `settings`. `var` answers a variable as
/// absent, its text, or `Err` when it is not UTF-8.
pub fn from_vars(
    var: impl Fn(&str) -> Option<Result<String, ()>>,
    base_dir: &Path,
    settings: SettingsCheck,
) -> Result<Config, SeedEnvErrors> {
    let none = Arc::new(SourceFile { name: "environment".into(), text: String::new() });
    with_file_vars(Config::empty(none, base_dir), var, settings).map(|merged| merged.config)
}

/// A config file's `config` and the process environment together: the file
/// wins where both give a value, the environment fills what it leaves out
/// ([`merge`] says what, and what `rotator check` prints of it).
pub fn with_file(config: Config) -> Result<Merged, SeedEnvErrors> {
    let schemas = schemas::BuiltinSchemas::default();
    let var = |name: &str| std::env::var_os(name).map(|v| v.into_string().map_err(|_| ()));
    with_file_vars(config, var, &|plugin, settings| schemas.check(plugin, settings))
}

/// [`with_file`] with the environment `var` describes and `settings` checks.
pub fn with_file_vars(
    config: Config,
    var: impl Fn(&str) -> Option<Result<String, ()>>,
    settings: SettingsCheck,
) -> Result<Merged, SeedEnvErrors> {
    let (mut env, mut problems) = read(var, settings);
    if !problems.is_empty() {
        // The jobs' problems are reported; the rest is still merged, so a
        // bad ROTATOR_API_ADDR shows in the same run.
        env.jobs.clear();
    }
    match merge::merge(config, env) {
        Ok(merged) if problems.is_empty() => Ok(merged),
        Ok(_) => Err(SeedEnvErrors { problems }),
        Err(more) => {
            problems.extend(more);
            Err(SeedEnvErrors { problems })
        }
    }
}

/// What the environment says, before it meets a config file: `[vault]` and
/// `[daemon]` keys as TOML-shaped maps, the jobs, and which of the
/// variables the daemon reads itself are set.
struct EnvDoc {
    vault: Map<String, Value>,
    daemon: Map<String, Value>,
    jobs: Vec<Located>,
    /// Of [`DEFAULTS_READ_LATER`], those set (not empty).
    set: Vec<&'static str>,
}

/// Variables the daemon reads itself when the config leaves a value out
/// (`setup::vault_client`, the API token): only reported.
const DEFAULTS_READ_LATER: [&str; 5] =
    ["VAULT_ADDR", "VAULT_TOKEN", "VAULT_NAMESPACE", "VAULT_CACERT", "ROTATOR_API_TOKEN"];

/// The environment `var` describes, and every problem in it.
fn read(var: impl Fn(&str) -> Option<Result<String, ()>>, settings: SettingsCheck) -> (EnvDoc, Vec<String>) {
    let mut problems = Vec::new();
    // Unset and empty are alike, as they were for the service.
    let mut get = |name: &str| match var(name) {
        Some(Ok(v)) if !v.trim().is_empty() => Some(v.trim().to_owned()),
        Some(Err(())) => {
            problems.push(format!("{name}: not UTF-8"));
            None
        }
        _ => None,
    };
    let set = DEFAULTS_READ_LATER.into_iter().filter(|name| get(name).is_some()).collect();
    let mounts: HashMap<&str, (String, &str)> =
        DEFAULT_MOUNTS.iter().filter_map(|(kind, name)| get(name).map(|m| (*kind, (m, *name)))).collect();
    let auth = get("VAULT_AUTH_METHOD");
    let role = get("VAULT_K8S_ROLE");
    let jwt_path = get("KUBERNETES_JWT_PATH");
    let api_addr = get("ROTATOR_API_ADDR");
    let file = get("ROTATION_CONFIG_PATH");
    let inline = get("ROTATION_JOBS_JSON");

    let mut vault = Map::new();
    match auth.as_deref() {
        None | Some("token") => {}
        Some("kubernetes") => {
            let mut k8s = Map::from_iter([("method".to_owned(), Value::from("kubernetes"))]);
            if let Some(path) = jwt_path {
                k8s.insert("jwt_path".into(), path.into());
            }
            match role {
                Some(role) => {
                    k8s.insert("role".into(), role.into());
                    vault.insert("auth".into(), Value::Object(k8s));
                }
                None => problems.push("VAULT_K8S_ROLE: required when VAULT_AUTH_METHOD is kubernetes".into()),
            }
        }
        Some(other) => problems.push(format!(
            "VAULT_AUTH_METHOD: `{}` is not supported here: token or kubernetes (use --config for others)",
            crate::vault::path::shown(other)
        )),
    }
    let mut daemon = Map::new();
    if let Some(addr) = api_addr {
        daemon.insert("api_addr".into(), addr.into());
    }

    let mut jobs = Vec::new();
    if let Some(path) = file {
        // Relative to where the daemon runs, as it was for the service.
        match read_capped(Path::new(&path)) {
            Ok(text) => jobs.extend(jobs_from_json(&path, &text, &mounts, settings, &mut problems)),
            Err(why) => problems.push(format!("ROTATION_CONFIG_PATH {path}: {why}")),
        }
    }
    if let Some(text) = inline {
        jobs.extend(jobs_from_json("ROTATION_JOBS_JSON", &text, &mounts, settings, &mut problems));
    }
    duplicates(&jobs, &mut problems);
    (EnvDoc { vault, daemon, jobs, set }, problems)
}

/// A mapped job, where it was written (`ROTATION_JOBS_JSON[2]`) and how.
struct Located {
    at: String,
    fields: Map<String, Value>,
    given: Map<String, Value>,
    /// The variable whose default mount it took, if it named none.
    mount_from: Option<&'static str>,
}

/// `text` (named `source`) as the service's JSON array of jobs, each mapped
/// to our fields and checked by the config parser; problems go to `problems`.
fn jobs_from_json(
    source: &str,
    text: &str,
    mounts: &HashMap<&str, (String, &'static str)>,
    settings: SettingsCheck,
    problems: &mut Vec<String>,
) -> Vec<Located> {
    if text.len() > MAX_JOBS_BYTES {
        problems.push(format!("{source}: larger than {MAX_JOBS_BYTES} bytes"));
        return Vec::new();
    }
    let list = match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(list)) => list,
        Ok(_) => {
            problems.push(format!("{source}: must be a JSON array of jobs"));
            return Vec::new();
        }
        // serde_json's message has a line and column and never the text.
        Err(e) => {
            problems.push(format!("{source}: not JSON: {e}"));
            return Vec::new();
        }
    };
    let mut jobs = Vec::new();
    for (i, job) in list.into_iter().enumerate() {
        let at = format!("{source}[{i}]");
        let given = job.as_object().cloned().unwrap_or_default();
        let mut mount_from = None;
        let checked = map_job(job, mounts, &mut mount_from).and_then(|fields| {
            let one = json!({ "jobs": [fields] });
            let parsed = parse_table("job", &one, Path::new("."));
            parsed.map_err(|list| list.into_iter().map(|p| (None::<String>, p)).collect::<Vec<_>>())?;
            let plugin = fields.get("plugin").and_then(Value::as_str).unwrap_or_default();
            let found = settings(plugin, fields.get("settings").unwrap_or(&Value::Null));
            if found.is_empty() { Ok(fields) } else { Err(found) }
        });
        match checked {
            Ok(fields) => jobs.push(Located { at, fields, given, mount_from }),
            Err(list) => problems.extend(list.into_iter().map(|(key, p)| match key {
                Some(key) => format!("{at}.{key}: {p}"),
                None => format!("{at}: {p}"),
            })),
        }
    }
    jobs
}

/// A problem in one job: the key it is at (if one) and the message.
pub type JobProblem = (Option<String>, String);

/// One job object: the default mount of its type filled in (the variable
/// it came from noted in `mount_from`), then mapped. Problems carry the key
/// they are at.
fn map_job(
    job: Value,
    mounts: &HashMap<&str, (String, &'static str)>,
    mount_from: &mut Option<&'static str>,
) -> Result<Map<String, Value>, Vec<JobProblem>> {
    let Value::Object(mut fields) = job else {
        return Err(vec![(None, "a job is a JSON object".into())]);
    };
    let kind = fields.get("type").and_then(Value::as_str).unwrap_or_default();
    if let Some((mount, var)) = mounts.get(kind)
        && fields.get("mount").is_none_or(Value::is_null)
    {
        fields.insert("mount".into(), mount.clone().into());
        *mount_from = Some(var);
    }
    flask_job(fields).map_err(|list| list.into_iter().map(|e| (e.key().map(str::to_owned), e.to_string())).collect())
}

/// Two jobs with one id: both are named.
fn duplicates(jobs: &[Located], problems: &mut Vec<String>) {
    let mut first: HashMap<&str, &str> = HashMap::new();
    for job in jobs {
        let id = job.fields.get("id").and_then(Value::as_str).unwrap_or_default();
        if let Some(earlier) = first.insert(id, &job.at) {
            problems.push(format!("{}.id: duplicate job id `{id}` (also {earlier})", job.at));
        }
    }
}

/// `doc` (a config as JSON) through the config parser: every problem's message.
fn parse_table(name: &str, doc: &Value, base_dir: &Path) -> Result<Config, Vec<String>> {
    let text = toml::to_string(doc).map_err(|e| vec![format!("not expressible as a config: {e}")])?;
    super::parse(name, &text, base_dir).map_err(|e| e.errors.into_iter().map(|d| d.message).collect())
}

/// A file's text, refused beyond [`MAX_JOBS_BYTES`] without reading more.
fn read_capped(path: &Path) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(MAX_JOBS_BYTES as u64 + 1).read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    if bytes.len() > MAX_JOBS_BYTES {
        return Err(format!("larger than {MAX_JOBS_BYTES} bytes"));
    }
    String::from_utf8(bytes).map_err(|_| "not UTF-8".into())
}

#[cfg(test)]
mod tests;
