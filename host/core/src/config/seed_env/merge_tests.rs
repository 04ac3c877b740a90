//! A config file and the environment together: the file wins value by
//! value, the environment fills the rest, every value says its source, and
//! every problem of both comes back at once.

use std::path::Path;

use serde_json::Value;

use super::super::{JobProblem, SeedEnvErrors, with_file_vars};
use super::Merged;
use crate::config::{AuthConfig, parse};

const TWO_JOBS: &str = r#"[
  {"type": "kv_random", "path": "app/config", "field": "password", "interval_seconds": 3600},
  {"type": "kv_random", "path": "app/other", "field": "password", "interval_seconds": 60}
]"#;

fn no_schemas(_: &str, _: &Value) -> Vec<JobProblem> {
    Vec::new()
}

/// `text` as the file `r.toml`, merged with `vars`.
fn merged(text: &str, vars: &[(&str, &str)]) -> Result<Merged, SeedEnvErrors> {
    let config = parse("r.toml", text, Path::new("/etc/rotator")).unwrap();
    let var = |name: &str| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| Ok(v.to_string()));
    with_file_vars(config, var, &no_schemas)
}

/// The source of `what`.
fn from<'a>(m: &'a Merged, what: &str) -> &'a str {
    let found = m.sources.iter().find(|p| p.what == what);
    &found.unwrap_or_else(|| panic!("no source for {what}: {:?}", m.sources)).from
}

const K8S: [(&str, &str); 2] = [("VAULT_AUTH_METHOD", "kubernetes"), ("VAULT_K8S_ROLE", "rotator")];

#[test]
fn the_file_wins_where_both_give_a_value() {
    let file = "[vault]\naddress = \"https://vault.file:8200\"\ntoken = { env = \"FILE_TOKEN\" }\n\n[daemon]\napi_addr = \"127.0.0.1:9000\"\n";
    let vars = [K8S[0], K8S[1], ("VAULT_ADDR", "https://vault.env:8200"), ("ROTATOR_API_ADDR", "0.0.0.0:7000")];
    let m = merged(file, &vars).unwrap();
    let vault = m.config.vault.as_ref().unwrap();
    assert_eq!(vault.address.as_deref(), Some("https://vault.file:8200"));
    assert_eq!(vault.auth, None, "the file's token is how to log in");
    assert_eq!(m.config.daemon.api_addr.to_string(), "127.0.0.1:9000");
    assert_eq!(from(&m, "vault.address"), "r.toml:2");
    assert_eq!(from(&m, "vault login"), "r.toml:3");
    assert_eq!(from(&m, "daemon.api_addr"), "r.toml:6");
    assert_eq!(
        m.overridden,
        [
            "vault.address: env VAULT_ADDR is not used, r.toml:2 gives it (the file wins)",
            "vault login: env VAULT_AUTH_METHOD (kubernetes) is not used, r.toml:3 gives it (the file wins)",
            "daemon.api_addr: env ROTATOR_API_ADDR is not used, r.toml:6 gives it (the file wins)",
        ]
    );
}

#[test]
fn the_environment_fills_what_the_file_leaves_out() {
    let file = "[daemon]\nmax_concurrent_rotations = 2\n";
    let vars = [K8S[0], K8S[1], ("VAULT_ADDR", "https://vault.env:8200"), ("ROTATOR_API_ADDR", "0.0.0.0:7000")];
    let m = merged(file, &vars).unwrap();
    let auth = m.config.vault.as_ref().unwrap().auth.clone();
    assert!(matches!(auth, Some(AuthConfig::Kubernetes { role, .. }) if role == "rotator"));
    assert_eq!(
        (m.config.daemon.api_addr.to_string(), m.config.daemon.max_concurrent_rotations),
        ("0.0.0.0:7000".into(), 2)
    );
    assert_eq!(from(&m, "vault.address"), "env VAULT_ADDR");
    assert_eq!(from(&m, "vault login"), "env VAULT_AUTH_METHOD (kubernetes)");
    assert_eq!(from(&m, "daemon.api_addr"), "env ROTATOR_API_ADDR");
    assert_eq!(from(&m, "daemon.api_token"), "unset: rotator run refuses to start");
    assert_eq!(from(&m, "vault.namespace"), "unset");
    assert!(m.overridden.is_empty(), "{:?}", m.overridden);
    // Only the token variable: that is the login.
    let m = merged(file, &[("VAULT_TOKEN", "t"), ("ROTATOR_API_TOKEN", "x")]).unwrap();
    assert_eq!((from(&m, "vault login"), from(&m, "daemon.api_token")), ("env VAULT_TOKEN", "env ROTATOR_API_TOKEN"));
    assert_eq!(from(&m, "daemon.api_addr"), "default 127.0.0.1:8080");
}

#[test]
fn environment_jobs_join_the_files_and_a_clashing_id_is_the_files() {
    let file = "[[jobs]]\nid = \"kv-kv2-app-config\"\nplugin = \"kv-random\"\nsecret = { path = \"mine\" }\ninterval = \"1h\"\nsettings = { field = \"token\" }\n";
    let m = merged(file, &[("ROTATION_JOBS_JSON", TWO_JOBS), ("VAULT_MOUNT_KV", "kv2")]).unwrap();
    let ids: Vec<&str> = m.config.jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, ["kv-kv2-app-config", "kv-kv2-app-other"]);
    let (mine, theirs) = (&m.config.jobs[0], &m.config.jobs[1]);
    assert_eq!(mine.secret.as_ref().and_then(|s| s.kv()).unwrap().path, "mine", "the file's definition");
    assert!(mine.given.is_none() && theirs.given.is_some(), "only the environment's job echoes the Flask format");
    assert_eq!(theirs.secret.as_ref().and_then(|s| s.kv()).unwrap().mount, "kv2");
    assert_eq!(from(&m, "job kv-kv2-app-config"), "r.toml:1");
    assert_eq!(from(&m, "job kv-kv2-app-other"), "env ROTATION_JOBS_JSON[1] (mount from env VAULT_MOUNT_KV)");
    assert_eq!(
        m.overridden,
        ["job kv-kv2-app-config: env ROTATION_JOBS_JSON[0] is not used, r.toml:1 defines it (the file wins)"]
    );
}

#[test]
fn a_config_without_vault_takes_no_job_from_the_environment() {
    let file = "[daemon]\nstate = { aws = { region = \"eu-west-1\" } }\n";
    let err = merged(file, &[("ROTATION_JOBS_JSON", TWO_JOBS)]).unwrap_err();
    assert_eq!(
        err.problems,
        ["ROTATION_JOBS_JSON[0]: jobs from the environment need Vault, but r.toml runs without Vault (no [vault] \
          section, state in AWS)"]
    );
    let m = merged(file, &[("VAULT_ADDR", "https://ignored:8200")]).unwrap();
    assert_eq!(from(&m, "vault"), "none: r.toml keeps state in AWS and has no [vault]");
}

#[test]
fn every_problem_of_the_environment_comes_back_at_once() {
    let vars = [
        ("ROTATOR_API_ADDR", "nowhere"),
        ("VAULT_AUTH_METHOD", "kubernetes"),
        ("ROTATION_JOBS_JSON", r#"[{"type": "kv_random", "path": "a", "interval_seconds": 60}]"#),
    ];
    let err = merged("", &vars).unwrap_err();
    assert_eq!(err.problems.len(), 3, "{:?}", err.problems);
    assert_eq!(err.problems[0], "VAULT_K8S_ROLE: required when VAULT_AUTH_METHOD is kubernetes");
    assert!(err.problems[1].starts_with("ROTATION_JOBS_JSON[0].field: "), "{:?}", err.problems);
    assert!(
        err.problems[2].starts_with("ROTATOR_API_ADDR: `nowhere` is not an address and port"),
        "{:?}",
        err.problems
    );
}
