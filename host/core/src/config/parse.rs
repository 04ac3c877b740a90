//! TOML text → [`Config`], collecting every problem with its location.
//!
//! The document is parsed once into toml's spanned tree (recovering from
//! syntax errors so they are all reported). Each section and each job is then
//! deserialized on its own, so one bad job does not hide the problems of the
//! next, and values that need more than serde's checks (ids, durations, sizes,
//! grant patterns, plugin names) are validated with their spans.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::grants::{RawGrant, grants};
use super::schedule::{self, OneOrMany, RawJitter, RawNotWithin, RawRetry, RawSchedule};
use super::sql::{Declared, sql_section};
use super::units::parse_bytes;
use super::{
    Collector, Config, ConfigErrors, DaemonConfig, JobConfig, JobSpans, PluginRef, SecretLocation, SourceFile,
    VaultConfig,
};
use crate::builtin;
use crate::plugin::grants::validate_path;
use crate::store::{AwsSecretId, SecretAt};
// The step deadlines a job may set are the runtime's range, which `rotator
// plugin test --step-timeout` is held to as well.
use crate::plugin::limits::STEP_TIMEOUT_RANGE;
use crate::plugin::{Access, MAX_MEMORY, RunLimits};

/// A job as written, before validation. Spanned fields get precise errors.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJob {
    id: Spanned<String>,
    plugin: Spanned<String>,
    #[serde(default)]
    sha256: Option<Spanned<String>>,
    #[serde(default)]
    secret: Option<Spanned<RawSecret>>,
    #[serde(default)]
    interval: Option<Spanned<String>>,
    #[serde(default)]
    cron: Option<Spanned<String>>,
    #[serde(default)]
    window: Option<Spanned<String>>,
    #[serde(default)]
    jitter: Option<Spanned<RawJitter>>,
    #[serde(default)]
    not_within: Option<Spanned<OneOrMany<RawNotWithin>>>,
    #[serde(default)]
    retry: Option<Spanned<RawRetry>>,
    #[serde(default)]
    settings: Option<Spanned<toml::Table>>,
    #[serde(default)]
    limits: Option<RawLimits>,
    #[serde(default)]
    grants: Vec<Spanned<RawGrant>>,
    #[serde(default)]
    hooks: Option<Spanned<Vec<Spanned<super::hooks::RawHook>>>>,
    #[serde(default)]
    adoption: Option<Spanned<super::adoption::RawAdoption>>,
    /// `values` or `handles`; the plugin's own preference when absent.
    #[serde(default)]
    secret_access: Option<Spanned<String>>,
    /// In handle mode, the fields the plugin may read in clear.
    #[serde(default)]
    visible_fields: Option<Vec<String>>,
    /// Fields of the secret that are identifiers (replaces the plugin's).
    #[serde(default)]
    public_fields: Option<Spanned<Vec<String>>>,
    #[serde(default = "enabled_by_default")]
    enabled: bool,
}

/// What a config without Vault is told when it names Vault.
pub(super) const NO_VAULT: &str =
    "this config runs without Vault ([daemon] state is in AWS and there is no [vault] section)";

/// `secret = { mount, path }` (Vault KV) or `{ aws = { id, region } }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecret {
    #[serde(default)]
    mount: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    aws: Option<AwsSecretId>,
}

/// The store a job's `secret` names, or its problems at `span`.
fn secret_at(c: &mut Collector, raw: Spanned<RawSecret>, has_vault: bool) -> Option<SecretAt> {
    let span = raw.span();
    let problems = |c: &mut Collector, list: Vec<String>| {
        let ok = list.is_empty();
        for p in list {
            c.error(span.clone(), format!("secret: {p}"));
        }
        ok
    };
    match raw.into_inner() {
        RawSecret { path: Some(_), aws: None, .. } if !has_vault => {
            c.error(
                span,
                format!("secret: {NO_VAULT}: keep it in AWS (`secret = {{ aws = {{ id }} }}`) or add [vault]"),
            );
            None
        }
        RawSecret { mount, path: Some(path), aws: None } => {
            let loc = SecretLocation { mount: mount.unwrap_or_else(|| "secret".into()), path };
            let list = [("mount", &loc.mount), ("path", &loc.path)]
                .into_iter()
                .filter_map(|(what, p)| validate_path(p).err().map(|why| format!("{what}: {why}")))
                .collect();
            problems(c, list).then_some(SecretAt::Kv(loc))
        }
        RawSecret { mount: None, path: None, aws: Some(id) } => problems(c, id.problems()).then_some(SecretAt::Aws(id)),
        _ => {
            c.error(
                span,
                "secret: give either `path` (and optionally `mount`) for Vault KV, or `aws = { id, region }`",
            );
            None
        }
    }
}

fn enabled_by_default() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    #[serde(default)]
    memory: Option<Spanned<String>>,
    #[serde(default)]
    step_timeout: Option<Spanned<String>>,
    // Caps on plugin output (see `output_limits`): sizes and counts.
    #[serde(default)]
    pub(super) error_message: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) log_line: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) log_lines: Option<Spanned<u64>>,
    #[serde(default)]
    pub(super) plan_summary: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) secret: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) host_calls: Option<Spanned<u64>>,
}

const MIN_MEMORY: usize = 1 << 20;

/// A config read as far as it could be: every section and job that parsed
/// (a job with a problem is left out), and every problem found so far.
///
/// `rotator check` adds the plugin and settings-schema problems of the jobs
/// that did parse to the same [`Collector`], so one run reports everything.
#[derive(Debug)]
pub struct Parsed {
    pub config: Config,
    pub problems: Collector,
}

impl Parsed {
    /// The config, or every problem in file order.
    pub fn finish(self) -> Result<Config, ConfigErrors> {
        self.problems.finish()?;
        Ok(self.config)
    }
}

/// Read and parse a config file.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    load_partial(path).finish()
}

/// Parse config text. `name` labels errors; `base_dir` resolves relative paths.
pub fn parse(name: &str, text: &str, base_dir: &Path) -> Result<Config, ConfigErrors> {
    parse_partial(name, text, base_dir).finish()
}

/// Read and parse a config file, keeping what parsed next to the problems.
/// An unreadable file is one problem at 1:1 and a config with no jobs.
pub fn load_partial(path: &Path) -> Parsed {
    let name = path.display().to_string();
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    match std::fs::read_to_string(path) {
        Ok(text) => parse_partial(&name, &text, &base),
        Err(e) => {
            let source = Arc::new(SourceFile { name, text: String::new() });
            let mut problems = Collector::new(source.clone());
            problems.error(0..0, format!("cannot read: {e}"));
            Parsed { config: Config::empty(source, &base), problems }
        }
    }
}

/// Parse config text, keeping what parsed next to the problems.
pub fn parse_partial(name: &str, text: &str, base_dir: &Path) -> Parsed {
    let source = Arc::new(SourceFile { name: name.to_owned(), text: text.to_owned() });
    let mut c = Collector::new(source.clone());
    let (root, syntax) = DeTable::parse_recoverable(&source.text);
    for e in &syntax {
        c.toml_error(e, 0..0);
    }
    if !syntax.is_empty() {
        // Everything after a syntax error is noise; report just those.
        return Parsed { config: Config::empty(source, base_dir), problems: c };
    }

    let mut vault = None;
    let mut daemon = DaemonConfig::default();
    let mut sql = Declared::default();
    let mut jobs = Vec::new();
    // `[vault]` and `[daemon]` first: whether the config has Vault at all
    // decides what connections and jobs may name. Then the connections:
    // jobs' grants are checked against them. Wherever each stands in the file.
    let mut sections: Vec<_> = root.into_inner().into_iter().collect();
    sections.sort_by_key(|(key, _)| match key.get_ref().as_ref() {
        "vault" | "daemon" => 0,
        "sql" => 1,
        _ => 2,
    });
    // Read from the tree, so a `[daemon]` section with a mistake elsewhere
    // still counts as keeping its records in AWS.
    let records_in_aws = sections.iter().any(|(key, value)| key.get_ref() == "daemon" && names_aws_state(value));
    for (key, value) in sections {
        let span = value.span();
        let has_vault = vault.is_some() || !records_in_aws;
        match key.get_ref().as_ref() {
            "vault" => vault = Some(section(&mut c, value).unwrap_or_default()),
            "daemon" => {
                daemon = section(&mut c, value).unwrap_or_default();
                check_daemon(&mut c, &daemon, span);
            }
            "sql" => sql = sql_section(&mut c, value, has_vault),
            "jobs" => match value.into_inner() {
                DeValue::Array(items) => {
                    check_unique_ids(&mut c, &items);
                    for item in items {
                        if let Some(job) = job(&mut c, item, base_dir, &sql, has_vault) {
                            jobs.push(job);
                        }
                    }
                }
                _ => c.error(span, "`jobs` must be an array of tables ([[jobs]])"),
            },
            other => c.error(key.span(), format!("unknown section `{other}` (expected vault, daemon, sql or jobs)")),
        }
    }
    let vault = vault.or_else(|| (!records_in_aws).then(VaultConfig::default));
    schedule::check_pairs(&mut c, &jobs);
    let config = Config { source, base_dir: base_dir.to_path_buf(), vault, daemon, sql: sql.connections, jobs };
    Parsed { config, problems: c }
}

/// Deserialize a whole section (or a job). serde stops at the first bad
/// value, so the key it failed on is dropped and the rest read again, until
/// the section reads cleanly: every bad key is reported in one run. `None`
/// if any key was bad.
pub(super) fn section<T: DeserializeOwned>(c: &mut Collector, mut value: Spanned<DeValue<'_>>) -> Option<T> {
    let span = value.span();
    let mut failed = false;
    loop {
        match T::deserialize(ValueDeserializer::from(value.clone())) {
            Ok(t) => return (!failed).then_some(t),
            Err(e) => {
                c.toml_error(&e, span.clone());
                failed = true;
                // Each round removes a key, so this ends.
                if !e.span().is_some_and(|at| drop_key_at(value.get_mut(), &at)) {
                    return None;
                }
            }
        }
    }
}

/// Remove the innermost key whose name or value covers `at`.
fn drop_key_at(value: &mut DeValue<'_>, at: &Range<usize>) -> bool {
    let DeValue::Table(table) = value else { return false };
    let covers = |span: Range<usize>| span.start <= at.start && at.end <= span.end;
    let Some(key) = table.iter().find(|(k, v)| covers(k.span()) || covers(v.span())).map(|(k, _)| k.clone()) else {
        return false;
    };
    if let Some(inner) = table.get_mut(&key)
        && drop_key_at(inner.get_mut(), at)
    {
        return true;
    }
    table.remove(&key).is_some()
}

/// `[daemon]` has `state = { aws = … }`.
fn names_aws_state(daemon: &Spanned<DeValue<'_>>) -> bool {
    let DeValue::Table(daemon) = daemon.get_ref() else { return false };
    let Some(state) = daemon.get("state") else { return false };
    matches!(state.get_ref(), DeValue::Table(t) if t.get("aws").is_some())
}

/// Checks across `[daemon]` keys, located at the section.
fn check_daemon(c: &mut Collector, d: &DaemonConfig, span: Range<usize>) {
    if d.audit_key.is_some() && d.audit_log.is_none() {
        c.error(span.clone(), "daemon.audit_key is set but daemon.audit_log is not: there is no audit log to key");
    }
    if d.replicas.is_some() && !d.state.in_vault() {
        c.error(span, "daemon.replicas coordinate through Vault KV: keep the state records in Vault (`state = { mount, prefix }`)");
    }
}

/// Duplicate ids are found on the raw tables, so a job that is invalid for
/// other reasons still counts.
fn check_unique_ids(c: &mut Collector, items: &[Spanned<DeValue<'_>>]) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for item in items {
        let DeValue::Table(t) = item.get_ref() else { continue };
        let Some(id) = t.get("id") else { continue };
        let Some(name) = id.get_ref().as_str() else { continue };
        if let Some(first) = seen.insert(name.to_owned(), id.span().start) {
            let (line, _) = c.position(first);
            c.error(id.span(), format!("duplicate job id `{name}` (first defined on line {line})"));
        }
    }
}

fn job(
    c: &mut Collector,
    value: Spanned<DeValue<'_>>,
    base_dir: &Path,
    connections: &Declared,
    has_vault: bool,
) -> Option<JobConfig> {
    let span = value.span();
    let settings_items = match value.get_ref() {
        DeValue::Table(t) => t.get("settings").map(|s| spans_of(s, String::new())).unwrap_or_default(),
        _ => HashMap::new(),
    };
    let raw: RawJob = section(c, value)?;
    let before = c.count();

    let id = raw.id.get_ref().clone();
    if !valid_id(&id) {
        c.error(
            raw.id.span(),
            format!("job id `{id}` must be 1-64 of a-z, 0-9, `-` and `_`, starting with a letter or digit"),
        );
    }
    let plugin = plugin_ref(c, &raw.plugin, base_dir);
    if let Some(pin) = &raw.sha256
        && !(pin.get_ref().len() == 64 && pin.get_ref().chars().all(|ch| ch.is_ascii_hexdigit()))
    {
        c.error(pin.span(), "sha256 must be 64 hexadecimal characters");
    }
    let secret = raw.secret.and_then(|s| secret_at(c, s, has_vault));
    let not_within_span = raw.not_within.as_ref().map(Spanned::span).unwrap_or_else(|| span.clone());
    let raw_schedule = RawSchedule {
        interval: raw.interval,
        cron: raw.cron,
        window: raw.window,
        jitter: raw.jitter,
        not_within: raw.not_within,
        retry: raw.retry,
    };
    let schedule = schedule::schedule(c, raw_schedule, span.clone());
    let limits = limits(c, raw.limits.as_ref());
    let (grants, sql) = grants(c, raw.grants, connections, has_vault);
    let hooks = match raw.hooks {
        Some(h) => {
            let span = h.span();
            super::hooks::hooks(c, h.into_inner(), span, base_dir)
        }
        None => Vec::new(),
    };
    let adoption = raw.adoption.and_then(|a| {
        let span = a.span();
        super::adoption::adoption(c, a.into_inner(), span, &sql)
    });
    let (settings, settings_span) = match raw.settings {
        Some(s) => {
            let span = s.span();
            (serde_json::to_value(s.into_inner()).unwrap_or_default(), span)
        }
        None => (serde_json::json!({}), span.clone()),
    };
    let public_fields = raw.public_fields.and_then(|p| match crate::secret::PublicFields::new(p.get_ref()) {
        Ok(fields) => Some(fields),
        Err(e) => {
            c.error(p.span(), format!("public_fields: {e}"));
            None
        }
    });
    if c.count() > before {
        return None;
    }
    let secret_access = match raw.secret_access {
        None => None,
        Some(a) => match a.get_ref().as_str() {
            "values" => Some(Access::Values),
            "handles" => Some(Access::Handles),
            other => {
                c.error(a.span(), format!("unknown secret_access `{other}` (expected `values` or `handles`)"));
                None
            }
        },
    };
    Some(JobConfig {
        id,
        plugin: plugin?,
        sha256: raw.sha256.map(|s| s.into_inner().to_ascii_lowercase()),
        secret,
        schedule: schedule?.spread_for(raw.id.get_ref()),
        settings,
        limits,
        grants: Arc::new(grants),
        sql: Arc::new(sql),
        secret_access,
        visible_fields: raw.visible_fields,
        public_fields,
        hooks,
        adoption,
        enabled: raw.enabled,
        spans: JobSpans {
            job: span,
            plugin: raw.plugin.span(),
            settings: settings_span,
            settings_items,
            not_within: not_within_span,
        },
        given: None,
    })
}

pub(super) fn valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    id.len() <= 64
        && chars.next().is_some_and(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit())
        && chars.all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-' || ch == '_')
}

/// A name is a built-in; anything with a `/` or ending in `.wasm` is a file.
fn plugin_ref(c: &mut Collector, plugin: &Spanned<String>, base_dir: &Path) -> Option<PluginRef> {
    let name = plugin.get_ref();
    if name.contains('/') || name.ends_with(".wasm") {
        let path = base_dir.join(name);
        if !path.is_file() {
            c.error(
                plugin.span(),
                format!("plugin file `{name}` does not exist (paths are relative to the config file)"),
            );
            return None;
        }
        return Some(PluginRef::File(path));
    }
    if builtin::find(name).is_none() {
        let known: Vec<&str> = builtin::BUILTINS.iter().map(|b| b.name).collect();
        c.error(
            plugin.span(),
            format!(
                "unknown built-in plugin `{name}` (built-ins: {}; a file path must end in .wasm)",
                known.join(", ")
            ),
        );
        return None;
    }
    Some(PluginRef::Builtin(name.clone()))
}

fn limits(c: &mut Collector, raw: Option<&RawLimits>) -> RunLimits {
    let mut limits = RunLimits::default();
    let Some(raw) = raw else { return limits };
    limits.output = super::output_limits::parse(c, raw);
    if let Some(m) = &raw.memory {
        match parse_bytes(m.get_ref()) {
            Ok(n) if (MIN_MEMORY..=MAX_MEMORY).contains(&n) => limits.memory = n,
            Ok(_) => c.error(m.span(), "limits.memory must be between 1MiB and 1GiB"),
            Err(why) => c.error(m.span(), why.to_string()),
        }
    }
    if let Some(t) = &raw.step_timeout {
        match humantime::parse_duration(t.get_ref()) {
            Ok(d) if d >= STEP_TIMEOUT_RANGE.0 && d <= STEP_TIMEOUT_RANGE.1 => limits.step_timeout = d,
            Ok(_) => c.error(t.span(), "limits.step_timeout must be between 100ms and 10m"),
            Err(e) => c.error(t.span(), format!("invalid duration `{}`: {e}", t.get_ref())),
        }
    }
    limits
}

/// JSON pointer → span for every value under `value`.
fn spans_of(value: &Spanned<DeValue<'_>>, pointer: String) -> HashMap<String, Range<usize>> {
    let mut out = HashMap::new();
    out.insert(pointer.clone(), value.span());
    match value.get_ref() {
        DeValue::Table(t) => {
            for (k, v) in t.iter() {
                let key = k.get_ref().replace('~', "~0").replace('/', "~1");
                out.extend(spans_of(v, format!("{pointer}/{key}")));
            }
        }
        DeValue::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                out.extend(spans_of(v, format!("{pointer}/{i}")));
            }
        }
        _ => {}
    }
    out
}
