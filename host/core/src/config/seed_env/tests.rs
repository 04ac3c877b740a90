//! The service's environment → a config: its documented examples, every
//! variable, located errors all at once, the size cap, and a property that
//! random JSON never panics the reader and every job it accepts can run.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config as Cases, RngSeed, TestRunner};
use serde_json::{Value, json};

use super::*;
use crate::config::units::INTERVAL;
use crate::config::{AuthConfig, PluginRef, SecretAt, SecretLocation};
use crate::schedule::spec::Cadence;

/// The service's two documented job examples, verbatim.
const EXAMPLES: &str = r#"[
  {
    "type": "kv_random",
    "mount": "secret",
    "path": "app/config",
    "field": "password",
    "length": 32,
    "interval_seconds": 3600
  },
  {
    "type": "database_root",
    "mount": "database",
    "connection": "my-postgres",
    "interval_seconds": 86400
  }
]"#;

fn env(vars: &[(&str, &str)]) -> Result<Config, SeedEnvErrors> {
    let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let var = |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| Ok(v.clone()));
    from_vars(var, Path::new("/srv"), &no_schemas)
}

/// Settings unchecked: the reader's own findings (the built-ins' schemas
/// are checked through the binary, `host/rotator/tests/seed_env.rs`).
fn no_schemas(_: &str, _: &Value) -> Vec<JobProblem> {
    Vec::new()
}

fn problems(vars: &[(&str, &str)]) -> Vec<String> {
    env(vars).expect_err("refused").problems
}

fn interval(job: &crate::config::JobConfig) -> Duration {
    match job.schedule.cadence {
        Cadence::Interval(d) => d,
        Cadence::Cron(_) => panic!("an interval job"),
    }
}

#[test]
fn the_services_documented_examples_become_two_jobs() {
    let config = env(&[("ROTATION_JOBS_JSON", EXAMPLES)]).unwrap();
    let [kv, db] = &config.jobs[..] else { panic!("two jobs: {:?}", config.jobs) };
    assert_eq!((kv.id.as_str(), &kv.plugin), ("kv-secret-app-config", &PluginRef::Builtin("kv-random".into())));
    let location = SecretLocation { mount: "secret".into(), path: "app/config".into() };
    assert_eq!(kv.secret, Some(SecretAt::Kv(location)));
    assert_eq!(kv.settings, json!({"field": "password", "length": 32}));
    assert_eq!(interval(kv), Duration::from_secs(3600));
    assert_eq!((db.id.as_str(), &db.plugin), ("db-root-my-postgres", &PluginRef::Builtin("database-root".into())));
    assert_eq!(interval(db), Duration::from_secs(86_400));
    let grants: Vec<&str> = db.grants.vault.iter().map(|g| g.path.as_str()).collect();
    assert_eq!(grants, ["database/rotate-root/my-postgres", "database/config/my-postgres"]);
    // Token auth from VAULT_ADDR / VAULT_TOKEN, as a config without [vault] has.
    assert_eq!(config.vault.as_ref().map(|v| v.auth.clone()), Some(None));
    assert_eq!(config.base_dir, PathBuf::from("/srv"));
}

#[test]
fn each_job_remembers_the_fields_it_was_given_for_the_api_to_echo() {
    let config = env(&[("ROTATION_JOBS_JSON", EXAMPLES), ("VAULT_MOUNT_DB", "dbs")]).unwrap();
    let given: Vec<Value> = serde_json::from_str(EXAMPLES).unwrap();
    assert_eq!(config.jobs.len(), given.len());
    for (job, given) in config.jobs.iter().zip(&given) {
        // As written: no default mount filled in, no id made up.
        assert_eq!(job.given.as_deref().map(|g| Value::Object(g.clone())).as_ref(), Some(given), "{}", job.id);
    }
}

#[test]
fn no_jobs_at_all_is_a_config_and_empty_variables_are_unset() {
    assert!(env(&[]).unwrap().jobs.is_empty());
    let blank = env(&[("ROTATION_JOBS_JSON", "  "), ("ROTATION_CONFIG_PATH", ""), ("VAULT_AUTH_METHOD", "")]);
    assert!(blank.unwrap().jobs.is_empty());
    assert!(env(&[("ROTATION_JOBS_JSON", "[]")]).unwrap().jobs.is_empty());
}

#[test]
fn default_mounts_fill_jobs_that_name_none() {
    let jobs = r#"[{"type": "kv_random", "path": "a", "field": "f", "interval_seconds": 60},
                   {"type": "kv_random", "mount": "own", "path": "b", "field": "f", "interval_seconds": 60},
                   {"type": "database_root", "connection": "pg", "interval_seconds": 60}]"#;
    let config = env(&[("ROTATION_JOBS_JSON", jobs), ("VAULT_MOUNT_KV", "kv2"), ("VAULT_MOUNT_DB", "db")]).unwrap();
    let mounts: Vec<Option<&str>> =
        config.jobs.iter().map(|j| j.secret.as_ref().and_then(|s| s.kv()).map(|l| l.mount.as_str())).collect();
    assert_eq!(mounts, [Some("kv2"), Some("own"), None]);
    assert_eq!(config.jobs[2].grants.vault[0].path, "db/rotate-root/pg");
    // Without the variables: the service's own defaults.
    let config = env(&[("ROTATION_JOBS_JSON", jobs)]).unwrap();
    assert_eq!(config.jobs[0].secret.as_ref().and_then(|s| s.kv()).unwrap().mount, "secret");
    assert_eq!(config.jobs[2].grants.vault[0].path, "database/rotate-root/pg");
}

#[test]
fn kubernetes_auth_reads_the_role_and_jwt_path_and_other_methods_are_refused() {
    let config = env(&[
        ("VAULT_AUTH_METHOD", "kubernetes"),
        ("VAULT_K8S_ROLE", "rotator"),
        ("KUBERNETES_JWT_PATH", "/var/run/jwt"),
    ]);
    let auth = config.unwrap().vault.and_then(|v| v.auth);
    let expected =
        AuthConfig::Kubernetes { mount: "kubernetes".into(), role: "rotator".into(), jwt_path: "/var/run/jwt".into() };
    assert_eq!(auth, Some(expected));
    let config = env(&[("VAULT_AUTH_METHOD", "kubernetes"), ("VAULT_K8S_ROLE", "rotator")]).unwrap();
    let Some(AuthConfig::Kubernetes { jwt_path, .. }) = config.vault.and_then(|v| v.auth) else { panic!("kubernetes") };
    assert_eq!(jwt_path, PathBuf::from(crate::vault::KUBERNETES_JWT_PATH));
    assert_eq!(
        problems(&[("VAULT_AUTH_METHOD", "kubernetes")]),
        ["VAULT_K8S_ROLE: required when VAULT_AUTH_METHOD is kubernetes"]
    );
    let ldap = problems(&[("VAULT_AUTH_METHOD", "ldap")]);
    assert_eq!(
        ldap,
        ["VAULT_AUTH_METHOD: `ldap` is not supported here: token or kubernetes (use --config for others)"]
    );
    let addr = env(&[("ROTATOR_API_ADDR", "0.0.0.0:8080")]).unwrap();
    assert_eq!(addr.daemon.api_addr.to_string(), "0.0.0.0:8080");
    assert_eq!(problems(&[("ROTATOR_API_ADDR", "nowhere")]).len(), 1);
}

#[test]
fn every_problem_is_located_by_source_index_and_key_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jobs.json");
    std::fs::write(
        &file,
        r#"[{"type": "kv_random", "path": "a", "field": "f", "interval_seconds": 60, "colour": "red"}]"#,
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let inline = r#"[{"type": "ldap", "interval_seconds": 60},
                     {"type": "kv_random", "path": "b", "field": "f", "interval_seconds": -5},
                     {"type": "kv_random", "path": "c", "field": "f", "interval_seconds": 999999999999},
                     "not a job",
                     {"type": "kv_random", "path": "d", "field": "f", "interval_seconds": 1.5, "id": 7},
                     {"type": "kv_random", "path": "e", "field": "f", "length": "long", "interval_seconds": 60},
                     {"type": "kv_random", "path": "e", "field": "f", "interval_seconds": 60},
                     {"type": "kv_random", "path": "e", "field": "f", "interval_seconds": 60, "id": "Bad Id"}]"#;
    let got = problems(&[("ROTATION_CONFIG_PATH", file), ("ROTATION_JOBS_JSON", inline)]);
    let max = INTERVAL.max.as_secs();
    let expected = [
        format!("{file}[0].colour: unknown field `colour` for a kv_random job"),
        "ROTATION_JOBS_JSON[0].type: unknown job type `ldap` (known: kv_random, database_root)".into(),
        "ROTATION_JOBS_JSON[1].interval_seconds: `interval_seconds` must be a positive whole number".into(),
        format!("ROTATION_JOBS_JSON[2].interval_seconds: `interval_seconds` must be at most {max}"),
        "ROTATION_JOBS_JSON[3]: a job is a JSON object".into(),
        "ROTATION_JOBS_JSON[4].interval_seconds: `interval_seconds` must be a positive whole number".into(),
        "ROTATION_JOBS_JSON[4].id: `id` must be a string".into(),
    ];
    assert_eq!(got[..expected.len()], expected, "{got:#?}");
    // A bad id is the config parser's finding, located at the job; jobs 5
    // and 6 pass the reader (the plugin's schema checks `length` when the
    // daemon loads it) but share an id.
    assert_eq!(
        got[expected.len()..],
        [
            "ROTATION_JOBS_JSON[7]: job id `Bad Id` must be 1-64 of a-z, 0-9, `-` and `_`, starting with a letter or digit",
            "ROTATION_JOBS_JSON[6].id: duplicate job id `kv-secret-e` (also ROTATION_JOBS_JSON[5])",
        ],
        "{got:#?}"
    );
    let twice = r#"[{"type": "kv_random", "path": "e", "field": "f", "interval_seconds": 60},
                    {"type": "kv_random", "path": "e", "field": "g", "interval_seconds": 60}]"#;
    let dup = problems(&[("ROTATION_JOBS_JSON", twice)]);
    assert_eq!(dup, ["ROTATION_JOBS_JSON[1].id: duplicate job id `kv-secret-e` (also ROTATION_JOBS_JSON[0])"]);
}

#[test]
fn file_jobs_come_before_inline_ones_and_the_sources_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jobs.json");
    std::fs::write(&file, r#"[{"type": "kv_random", "path": "from/file", "field": "f", "interval_seconds": 60}]"#)
        .unwrap();
    let inline = r#"[{"type": "kv_random", "path": "inline", "field": "f", "interval_seconds": 60}]"#;
    let config = env(&[("ROTATION_JOBS_JSON", inline), ("ROTATION_CONFIG_PATH", file.to_str().unwrap())]).unwrap();
    let ids: Vec<&str> = config.jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, ["kv-secret-from-file", "kv-secret-inline"]);

    // Just over the cap: refused whole, as the file and as the variable.
    let big = format!("[{}\"\"]", " ".repeat(MAX_JOBS_BYTES - 3));
    assert_eq!(big.len(), MAX_JOBS_BYTES + 1);
    std::fs::write(&file, &big).unwrap();
    let path = file.to_str().unwrap();
    let got = problems(&[("ROTATION_JOBS_JSON", &big), ("ROTATION_CONFIG_PATH", path)]);
    assert_eq!(
        got,
        [
            format!("ROTATION_CONFIG_PATH {path}: larger than {MAX_JOBS_BYTES} bytes"),
            format!("ROTATION_JOBS_JSON: larger than {MAX_JOBS_BYTES} bytes")
        ]
    );
    // At the cap: read (and found to hold a non-job).
    let at_cap = format!("\"{}\"", "a".repeat(MAX_JOBS_BYTES - 2));
    assert_eq!(problems(&[("ROTATION_JOBS_JSON", &at_cap)]), ["ROTATION_JOBS_JSON: must be a JSON array of jobs"]);
    let missing = problems(&[("ROTATION_CONFIG_PATH", "/nonexistent/jobs.json")]);
    assert!(missing[0].starts_with("ROTATION_CONFIG_PATH /nonexistent/jobs.json: "), "{missing:?}");
    let not_json = problems(&[("ROTATION_JOBS_JSON", "[{\"type\": \"kv_random\", \"path\": \"s3cr3t")]);
    assert!(
        not_json[0].starts_with("ROTATION_JOBS_JSON: not JSON: ") && !not_json[0].contains("s3cr3t"),
        "{not_json:?}"
    );
}

#[test]
fn a_variable_that_is_not_utf8_is_named() {
    let got = from_vars(|name| (name == "ROTATION_JOBS_JSON").then_some(Err(())), Path::new("."), &no_schemas);
    assert_eq!(got.unwrap_err().problems, ["ROTATION_JOBS_JSON: not UTF-8"]);
}

/// Job-shaped JSON: the service's keys with values of any type, some
/// unknown keys, and sometimes not an object at all.
fn job_values() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (0u64..400_000_000).prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[a-z/._*+-]{0,12}".prop_map(Value::from),
        prop_oneof![Just("kv_random"), Just("database_root"), Just("app/config"), Just("secret")].prop_map(Value::from),
    ];
    let value = leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
            prop::collection::btree_map("[a-z]{1,4}", inner, 0..3).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    let keys = prop_oneof![
        Just("type"),
        Just("mount"),
        Just("path"),
        Just("field"),
        Just("length"),
        Just("connection"),
        Just("interval_seconds"),
        Just("id"),
        Just("alphabet"),
        Just("colour"),
    ];
    let object = prop::collection::btree_map(keys, value.clone(), 0..8)
        .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()));
    prop_oneof![4 => object, 1 => value]
}

fn run_reader_property(rng_seed: RngSeed, cases: u32) {
    let (accepted, refused) = (Cell::new(0u32), Cell::new(0u32));
    let config = Cases { cases, rng_seed, failure_persistence: None, ..Cases::default() };
    TestRunner::new(config)
        .run(&prop::collection::vec(job_values(), 0..4), |jobs| {
            let text = Value::from(jobs.clone()).to_string();
            match env(&[("ROTATION_JOBS_JSON", &text)]) {
                Ok(config) => {
                    accepted.set(accepted.get() + 1);
                    prop_assert_eq!(config.jobs.len(), jobs.len());
                    for job in &config.jobs {
                        let d = interval(job);
                        prop_assert!(INTERVAL.min <= d && d <= INTERVAL.max, "{:?}", d);
                    }
                }
                Err(e) => {
                    refused.set(refused.get() + 1);
                    for p in &e.problems {
                        prop_assert!(p.starts_with("ROTATION_JOBS_JSON"), "unlocated: {}", p);
                    }
                }
            }
            Ok(())
        })
        .unwrap();
    // Both sides exercised, or the property proves nothing.
    assert!(accepted.get() >= cases / 100 && refused.get() >= cases / 4, "accepted {accepted:?}, refused {refused:?}");
}

#[test]
fn property_random_job_json_never_panics_and_accepted_intervals_are_in_range() {
    run_reader_property(RngSeed::Fixed(0x5eed_e17f), 3_000);
}

#[test]
fn property_random_job_json_random_seed() {
    run_reader_property(RngSeed::Random, 1_000);
}
