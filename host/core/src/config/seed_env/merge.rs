//! A config file and the Flask service's environment together (`rotator run
//! --config F` in a deployment that still sets the service's variables).
//!
//! The rule is one sentence: **the file wins where both give a value, and
//! the environment fills what the file leaves out.** Value by value:
//!
//! - `[vault]` `address`, `namespace`, `ca_cert`: the file's key, else
//!   `VAULT_ADDR`, `VAULT_NAMESPACE`, `VAULT_CACERT` (read by the daemon when
//!   it connects, as before; reported here).
//! - How to log in to Vault: the file's `token` or `auth`, else
//!   `VAULT_AUTH_METHOD=kubernetes` (with `VAULT_K8S_ROLE`,
//!   `KUBERNETES_JWT_PATH`), else `VAULT_TOKEN`. One value: a file that gives
//!   a token is not given the environment's Kubernetes login.
//! - `[daemon] api_addr`: the file's, else `ROTATOR_API_ADDR`, else the
//!   default; `api_token`: the file's, else `ROTATOR_API_TOKEN`.
//! - Jobs: the file's jobs, and beside them the jobs of
//!   `ROTATION_CONFIG_PATH` and `ROTATION_JOBS_JSON`. A job id both define is
//!   the file's: the environment's job is not used, and that is reported
//!   (`rotator check`, and a warning from `rotator run`), not an error,
//!   since the file winning is the rule. `VAULT_MOUNT_KV` and
//!   `VAULT_MOUNT_DB` fill the mounts of the environment's jobs only; a file
//!   job says its own mount.
//!
//! Every value's source is kept as a [`Provenance`] (`rotator.toml:3`,
//! `env VAULT_ADDR`, `default`) for `rotator check` to print. A config file
//! that runs without Vault (state in AWS, no `[vault]`) takes no job from the
//! environment: each would need Vault, and saying so is an error.

use std::net::SocketAddr;
use std::ops::Range;

use serde_json::{Value, json};
use toml::de::{DeTable, DeValue};

use super::{EnvDoc, Located, parse_table};
use crate::config::{AuthConfig, Config, JobConfig, SourceFile};

/// Where one value of a merged config came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    /// What the value is: `vault.address`, `job kv-secret-app`.
    pub what: String,
    /// Where it came from: `rotator.toml:3`, `env VAULT_ADDR`,
    /// `env ROTATION_JOBS_JSON[0]`, `default`, `unset`.
    pub from: String,
}

/// A config file's config with the environment merged in.
#[derive(Debug, Clone)]
pub struct Merged {
    pub config: Config,
    /// Every value's source, `[vault]` first, then `[daemon]`, then the jobs.
    pub sources: Vec<Provenance>,
    /// Values the environment gave that the file's replaced, one line each.
    pub overridden: Vec<String>,
}

/// `config` (from a file, or empty) with `env` merged in by the module's
/// rule; every problem (located by variable) when that cannot be done.
pub(super) fn merge(mut config: Config, env: EnvDoc) -> Result<Merged, Vec<String>> {
    let source = config.source.clone();
    let file = FileKeys::parse(&source);
    let mut m = Merger { sources: Vec::new(), overridden: Vec::new(), problems: Vec::new() };
    let set = |var: &str| env.set.contains(&var).then(|| format!("env {var}"));

    match config.vault.as_mut() {
        Some(vault) => {
            m.pick("vault.address", file.at(&["vault", "address"]), set("VAULT_ADDR"), "unset");
            m.pick("vault.namespace", file.at(&["vault", "namespace"]), set("VAULT_NAMESPACE"), "unset");
            m.pick("vault.ca_cert", file.at(&["vault", "ca_cert"]), set("VAULT_CACERT"), "system roots");
            let in_file = file.at(&["vault", "auth"]).or_else(|| file.at(&["vault", "token"]));
            let env_auth = env.vault.get("auth").map(|auth| (auth, "env VAULT_AUTH_METHOD (kubernetes)".to_owned()));
            let env_login = env_auth.as_ref().map(|(_, from)| from.clone()).or_else(|| set("VAULT_TOKEN"));
            if m.pick("vault login", in_file, env_login, "unset") == Won::Env
                && let Some((auth, _)) = env_auth
            {
                match serde_json::from_value::<AuthConfig>(auth.clone()) {
                    Ok(auth) => vault.auth = Some(auth),
                    Err(e) => m.problems.push(format!("VAULT_AUTH_METHOD: {e}")),
                }
            }
        }
        None => {
            let why = format!("none: {} keeps state in AWS and has no [vault]", source.name);
            m.sources.push(Provenance { what: "vault".into(), from: why });
            if let Some(first) = env.jobs.first() {
                m.problems.push(format!(
                    "{}: jobs from the environment need Vault, but {} runs without Vault (no [vault] section, \
                     state in AWS)",
                    first.at, source.name
                ));
            }
        }
    }

    let api_addr = env.daemon.get("api_addr").and_then(Value::as_str).map(|_| "env ROTATOR_API_ADDR".to_owned());
    let default_addr = format!("default {}", config.daemon.api_addr);
    if m.pick("daemon.api_addr", file.at(&["daemon", "api_addr"]), api_addr, &default_addr) == Won::Env {
        let text = env.daemon["api_addr"].as_str().unwrap_or_default();
        match text.parse::<SocketAddr>() {
            Ok(addr) => config.daemon.api_addr = addr,
            Err(e) => m.problems.push(format!("ROTATOR_API_ADDR: `{text}` is not an address and port: {e}")),
        }
    }
    let refuses = "unset: rotator run refuses to start";
    m.pick("daemon.api_token", file.at(&["daemon", "api_token"]), set("ROTATOR_API_TOKEN"), refuses);

    for job in &config.jobs {
        let from = file.line_of(&job.spans.job);
        m.sources.push(Provenance { what: format!("job {}", job.id), from });
    }
    let added = m.env_jobs(&config, env.jobs, &file);
    config.jobs.extend(added);
    match m.problems.is_empty() {
        true => Ok(Merged { config, sources: m.sources, overridden: m.overridden }),
        false => Err(m.problems),
    }
}

/// Which side gave a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Won {
    File,
    Env,
    Neither,
}

struct Merger {
    sources: Vec<Provenance>,
    overridden: Vec<String>,
    problems: Vec<String>,
}

impl Merger {
    /// Record where `what` comes from: the file's `file`, else the
    /// environment's `env`, else `fallback`.
    fn pick(&mut self, what: &str, file: Option<String>, env: Option<String>, fallback: &str) -> Won {
        let (from, won) = match (file, env) {
            (Some(file), Some(env)) => {
                self.overridden.push(format!("{what}: {env} is not used, {file} gives it (the file wins)"));
                (file, Won::File)
            }
            (Some(file), None) => (file, Won::File),
            (None, Some(env)) => (env, Won::Env),
            (None, None) => (fallback.to_owned(), Won::Neither),
        };
        self.sources.push(Provenance { what: what.to_owned(), from });
        won
    }

    /// The environment's jobs whose ids the file does not define, parsed
    /// as config jobs (each remembering the fields it was given).
    fn env_jobs(&mut self, config: &Config, jobs: Vec<Located>, file: &FileKeys) -> Vec<JobConfig> {
        let mut kept = Vec::new();
        for job in jobs {
            let id = job.fields.get("id").and_then(Value::as_str).unwrap_or_default();
            match config.jobs.iter().find(|j| j.id == id) {
                Some(theirs) => self.overridden.push(format!(
                    "job {id}: {} is not used, {} defines it (the file wins)",
                    env_label(&job.at),
                    file.line_of(&theirs.spans.job)
                )),
                None => kept.push(job),
            }
        }
        if kept.is_empty() {
            return Vec::new();
        }
        let doc = json!({ "jobs": kept.iter().map(|j| Value::Object(j.fields.clone())).collect::<Vec<_>>() });
        let parsed = match parse_table("environment", &doc, &config.base_dir) {
            Ok(parsed) => parsed,
            Err(problems) => {
                self.problems.extend(problems.into_iter().map(|p| format!("environment: {p}")));
                return Vec::new();
            }
        };
        // The parser keeps the tables' order: job i was given as kept[i].
        let mut out = Vec::new();
        for (mut job, located) in parsed.jobs.into_iter().zip(kept) {
            let mut from = env_label(&located.at);
            if let Some(var) = located.mount_from {
                from.push_str(&format!(" (mount from env {var})"));
            }
            self.sources.push(Provenance { what: format!("job {}", job.id), from });
            job.given = Some(std::sync::Arc::new(located.given));
            // Its spans were in the generated text, not the file's.
            job.spans = Default::default();
            out.push(job);
        }
        out
    }
}

/// `ROTATION_JOBS_JSON[2]` or `<path>[2]` (a job of ROTATION_CONFIG_PATH) as
/// a source.
fn env_label(at: &str) -> String {
    match at.starts_with("ROTATION_JOBS_JSON") {
        true => format!("env {at}"),
        false => format!("env ROTATION_CONFIG_PATH {at}"),
    }
}

/// The keys a config file wrote, to tell a value it gave from a default.
struct FileKeys<'a> {
    source: &'a SourceFile,
    root: Option<DeTable<'a>>,
}

impl<'a> FileKeys<'a> {
    fn parse(source: &'a SourceFile) -> Self {
        // The file parsed already (or the merge would not run); a text that
        // does not is treated as giving nothing.
        Self { source, root: DeTable::parse(&source.text).ok().map(toml::Spanned::into_inner) }
    }

    /// `file:line` of the key at `path` (`["vault", "address"]`), if written.
    fn at(&self, path: &[&str]) -> Option<String> {
        let (last, tables) = path.split_last()?;
        let mut table = self.root.as_ref()?;
        for key in tables {
            match table.get(*key).map(toml::Spanned::get_ref) {
                Some(DeValue::Table(t)) => table = t,
                _ => return None,
            }
        }
        let span = table.get(*last)?.span();
        Some(self.line_of(&span))
    }

    /// `file:line` of a byte range of the file.
    fn line_of(&self, span: &Range<usize>) -> String {
        format!("{}:{}", self.source.name, self.source.position(span.start).0)
    }
}

#[cfg(test)]
#[path = "merge_tests.rs"]
mod tests;
