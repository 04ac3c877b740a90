use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};
use serde_json::{Map, Value, json};

use super::super::{BUILTINS, legacy_job};
use super::*;

fn fields(v: Value) -> Map<String, Value> {
    let Value::Object(m) = v else { panic!("an object") };
    m
}

fn refused(job_type: &str, v: Value) -> LegacyError {
    legacy_job(job_type, fields(v)).expect_err("refused")
}

#[test]
fn a_kv_random_request_becomes_its_secret_settings_and_names() {
    let request = json!({"mount": "secret", "path": "/app/config/", "field": "password", "length": 32,
                         "preserve_fields": {"user": "svc"}});
    let job = legacy_job("kv_random", fields(request)).unwrap();
    assert_eq!(job.plugin, "kv-random");
    assert_eq!((job.job_id.as_str(), job.target.as_str()), ("kv-secret-app-config", "kv/secret/app/config"));
    assert_eq!(job.secret, Some(SecretLocation { mount: "secret".into(), path: "app/config".into() }));
    assert_eq!(
        Value::Object(job.settings),
        json!({"field": "password", "length": 32, "preserve_fields": {"user": "svc"}})
    );
    assert!(job.grants.is_empty(), "the host writes the secret; the plugin needs no grant");
    assert_eq!(Value::Object(job.echo), json!({"mount": "secret", "path": "app/config", "field": "password"}));

    // The mount defaults to `secret`, as the service's did.
    let job =
        legacy_job("kv_random", fields(json!({"path": "a", "field": "f", "alphabet": "ab", "rules": []}))).unwrap();
    assert_eq!(job.secret.unwrap().mount, "secret");
    assert_eq!(Value::Object(job.settings), json!({"field": "f", "alphabet": "ab", "rules": []}));
}

#[test]
fn a_database_root_request_grants_exactly_its_connection() {
    let job = legacy_job("database_root", fields(json!({"connection": "pg"}))).unwrap();
    assert_eq!(job.plugin, "database-root");
    assert_eq!((job.job_id.as_str(), job.target.as_str()), ("db-root-pg", "database-root/database/pg"));
    assert_eq!(job.secret, None);
    assert_eq!(Value::Object(job.settings), json!({"mount": "database", "connection": "pg"}));
    let grants = serde_json::to_value(&job.grants).unwrap();
    let expected = json!([
        {"path": "database/rotate-root/pg", "operations": ["write"]},
        {"path": "database/config/pg", "operations": ["read"]},
    ]);
    assert_eq!(grants, expected);
    let job = legacy_job("database_root", fields(json!({"mount": "/team/db/", "connection": "Main_1"}))).unwrap();
    assert_eq!(job.grants[0].path, "team/db/rotate-root/Main_1");
    assert_eq!(job.job_id, "db-root-main-1");
}

#[test]
fn unknown_types_and_fields_are_refused_by_name() {
    let e = refused("kv-random", json!({"path": "a", "field": "f"}));
    assert_eq!(e.to_string(), "unknown job type `kv-random` (known: kv_random, database_root)");
    let e = refused("", json!({}));
    assert!(matches!(e, LegacyError::UnknownType { .. }), "{e}");
    let long = "x".repeat(10_000);
    let e = refused(&long, json!({}));
    assert!(e.to_string().len() < 400, "a hostile type is quoted in part only: {} bytes", e.to_string().len());

    let e = refused("kv_random", json!({"path": "a", "field": "f", "colour": "a-secret-value"}));
    assert_eq!(e.to_string(), "unknown field `colour` for a kv_random job");
    // A database_root request has no KV fields, and the other way round.
    let e = refused("database_root", json!({"connection": "pg", "field": "password"}));
    assert_eq!(e, LegacyError::UnknownField { field: "field".into(), job_type: "database_root" });
    let e = refused("kv_random", json!({"path": "a", "field": "f", "connection": "pg"}));
    assert_eq!(e.to_string(), "unknown field `connection` for a kv_random job");
}

#[test]
fn missing_and_mistyped_fields_are_refused_without_their_values() {
    assert_eq!(refused("kv_random", json!({"field": "f"})), LegacyError::Missing("path"));
    assert_eq!(refused("kv_random", json!({"path": "a"})), LegacyError::Missing("field"));
    assert_eq!(refused("database_root", json!({})), LegacyError::Missing("connection"));
    let e = refused("kv_random", json!({"path": "a", "field": 7}));
    assert_eq!(e.to_string(), "`field` must be a string");
    let e = refused("kv_random", json!({"path": "a", "field": "f", "preserve_fields": "a-secret-value"}));
    assert_eq!(e.to_string(), "`preserve_fields` must be a JSON object");
    let e = refused("kv_random", json!({"path": "a", "field": "f", "mount": ["a-secret-value"]}));
    assert_eq!(e.to_string(), "`mount` must be a string");
    // `null` is absent: defaults apply, required fields are still required.
    let job = legacy_job("kv_random", fields(json!({"path": "a", "field": "f", "mount": null, "length": null})));
    let job = job.unwrap();
    assert_eq!((job.secret.unwrap().mount, Value::Object(job.settings)), ("secret".into(), json!({"field": "f"})));
    assert_eq!(refused("database_root", json!({"connection": null})), LegacyError::Missing("connection"));
}

#[test]
fn requests_cannot_smuggle_wildcards_or_paths() {
    let db = |extra: Value| {
        let mut request = json!({"connection": "pg"});
        request.as_object_mut().unwrap().extend(fields(extra));
        refused("database_root", request).to_string()
    };
    for (extra, why) in [
        (json!({"connection": "*"}), "not a plain name"),
        (json!({"connection": "+"}), "not a plain name"),
        (json!({"mount": "*"}), "not a plain name"),
        (json!({"mount": "db/+/x"}), "not a plain name"),
        (json!({"connection": "../../sys"}), "not a plain name"),
        (json!({"connection": "a/b"}), "not a plain name"),
        (json!({"connection": ".."}), "not a plain name"),
    ] {
        assert!(db(extra.clone()).contains(why), "{extra}: {}", db(extra.clone()));
    }
    let kv = |path: &str| refused("kv_random", json!({"path": path, "field": "f"})).to_string();
    assert!(kv("a/../../sys/policy/x").contains("`.` or `..` segment"));
    assert!(kv("a?b").contains("query") || kv("a?b").contains("`?`"), "{}", kv("a?b"));
    assert!(kv("").starts_with("path: "), "{}", kv(""));
    let e = refused("kv_random", json!({"path": "a", "field": "f", "mount": "secret/../sys"}));
    assert!(e.to_string().starts_with("mount: "), "{e}");
}

#[test]
fn every_built_in_with_a_type_maps_a_minimal_request() {
    let minimal = |job_type: &str| match job_type {
        "kv_random" => json!({"path": "p", "field": "f"}),
        _ => json!({"connection": "c"}),
    };
    for b in BUILTINS {
        if let Some(form) = &b.legacy {
            assert_eq!(legacy_job(form.job_type, fields(minimal(form.job_type))).unwrap().plugin, b.name);
        }
    }
}

/// Field values drawn from a small pool of hostile and ordinary text, so
/// the mapping sees wildcards, traversals, escapes and long names often.
fn value() -> impl Strategy<Value = Value> {
    let text = prop_oneof![
        Just("*".to_owned()),
        Just("+".to_owned()),
        Just("..".to_owned()),
        Just("a/../b".to_owned()),
        Just("%2e%2e".to_owned()),
        Just("x\u{1b}[31m".to_owned()),
        "[a-z]{1,8}(/[a-z]{1,8}){0,2}",
        "[ -~]{0,24}",
        "[a-z]{300}",
    ];
    prop_oneof![
        8 => text.prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => Just(json!({"k": "SECRET-VALUE"})),
        1 => Just(json!(["SECRET-VALUE"])),
    ]
}

fn request() -> impl Strategy<Value = (String, Map<String, Value>)> {
    let keys = prop_oneof![
        Just("mount"),
        Just("path"),
        Just("field"),
        Just("connection"),
        Just("length"),
        Just("preserve_fields"),
        Just("colour"),
    ];
    let types = prop_oneof![Just("kv_random"), Just("database_root"), Just("nope")];
    (types, proptest::collection::btree_map(keys, value(), 0..6))
        .prop_map(|(t, m)| (t.to_owned(), m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
}

/// Whatever a request holds, a mapped job names canonical paths, grants no
/// wildcard and has a valid id; a refusal never repeats a value that may
/// be secret and stays short.
fn mapping_holds(job_type: &str, request: Map<String, Value>) {
    match legacy_job(job_type, request) {
        Ok(job) => {
            for g in &job.grants {
                assert!(!g.path.contains(['*', '+']) && !g.path.split('/').any(|s| s == ".." || s == "."), "{g:?}");
            }
            if let Some(s) = &job.secret {
                assert_eq!(VaultPath::parse(&s.mount).unwrap().as_str(), s.mount);
                assert_eq!(VaultPath::parse(&s.path).unwrap().as_str(), s.path);
            }
            let id = &job.job_id;
            assert!(id.len() <= 64 && !id.starts_with('-') && !id.ends_with('-'), "{id}");
            assert!(id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'), "{id}");
        }
        Err(e) => {
            let text = e.to_string();
            assert!(!text.contains("SECRET-VALUE"), "{text}");
            assert!(text.len() < 400, "{text}");
        }
    }
}

fn run_mapping_property(rng_seed: RngSeed) {
    let config = Config { cases: 5_000, rng_seed, failure_persistence: None, ..Config::default() };
    TestRunner::new(config)
        .run(&request(), |(job_type, request)| {
            mapping_holds(&job_type, request);
            Ok(())
        })
        .unwrap();
}

#[test]
fn mapped_requests_are_canonical_and_refusals_quote_no_values_fixed_seed() {
    run_mapping_property(RngSeed::Fixed(0x1E6AC7));
}

#[test]
fn mapped_requests_are_canonical_and_refusals_quote_no_values_random_seed() {
    run_mapping_property(RngSeed::Random);
}
