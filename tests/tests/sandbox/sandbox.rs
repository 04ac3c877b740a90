//! The sandbox holds: misbehaving plugins (built from plugins/fixtures) are
//! stopped with typed errors, and the runtime keeps serving other plugins.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use rotator_core::plugin::{
    CallOutcome, Failure, Grants, HostCall, LoadError, Operation, Plugin, RunConfig, RunLimits, Runtime,
    RuntimeOptions, StepContext, StepError, VaultBridge, VaultGrant,
};
use rotator_core::vault::{VaultClient, VaultOptions};
use rotator_test_artifacts::build_artifact;
use rotator_tests::{ROOT, dev_server, logs};
use secrecy::SecretString;
use serde_json::json;
use tokio::runtime::Handle;

fn runtime() -> Arc<Runtime> {
    Runtime::new(RuntimeOptions { max_concurrent_runs: 8, ..Default::default() }).expect("runtime")
}

fn ctx(settings: serde_json::Value) -> StepContext {
    StepContext { job_id: "job".into(), rotation_id: "r1".into(), settings, current: None, attempt: 1 }
}

fn config(limits: RunLimits) -> RunConfig {
    RunConfig { limits, grants: Arc::new(Grants::default()), vault: None, ..RunConfig::default() }
}

/// kv-random still works on the same runtime: the sandbox broke nothing.
fn assert_runtime_healthy(rt: &Arc<Runtime>) {
    let kv = rt.load_builtin("kv-random", None).unwrap();
    let mut run = kv.start("other", config(RunLimits::default())).unwrap();
    let c = ctx(json!({"field": "password"}));
    let secret = run.create(&c).unwrap();
    run.test(&c, &secret).unwrap();
}

#[test]
fn a_plugin_that_loops_forever_is_stopped_at_the_deadline() {
    let rt = runtime();
    let p = rt.load_file(&build_artifact("fixture_spin"), None).unwrap();
    let limits = RunLimits { step_timeout: Duration::from_millis(200), ..Default::default() };
    let mut run = p.start("spinner", config(limits)).unwrap();
    let err = run.create(&ctx(json!({}))).unwrap_err();
    assert_eq!(err.failure, Failure::Deadline(Duration::from_millis(200)), "{err}");
    assert_eq!(err.job, "spinner");
    assert_eq!(err.plugin, "fixture-spin@0.0.1");
    assert_runtime_healthy(&rt);
}

#[test]
fn a_run_still_meets_its_deadline_after_the_runtime_is_dropped() {
    // A daemon shutting down drops its runtime while a step may still run on
    // a blocking thread; that step must still be stopped at its deadline.
    let rt = runtime();
    let p = rt.load_file(&build_artifact("fixture_spin"), None).unwrap();
    let limits = RunLimits { step_timeout: Duration::from_millis(200), ..Default::default() };
    let mut run = p.start("spinner", config(limits)).unwrap();
    drop((rt, p));
    let err = run.create(&ctx(json!({}))).unwrap_err();
    assert_eq!(err.failure, Failure::Deadline(Duration::from_millis(200)), "{err}");
}

#[test]
fn a_plugin_that_allocates_without_bound_is_stopped_at_the_cap() {
    let rt = runtime();
    let p = rt.load_file(&build_artifact("fixture_hog"), None).unwrap();
    let limits = RunLimits { memory: 16 << 20, ..Default::default() };
    let mut run = p.start("hog", config(limits)).unwrap();
    let err = run.create(&ctx(json!({}))).unwrap_err();
    assert_eq!(err.failure, Failure::MemoryLimit(16 << 20), "{err}");
    assert!(err.to_string().contains("memory limit of 16 MiB"), "{err}");
    assert_runtime_healthy(&rt);
}

#[test]
fn a_cap_below_the_plugins_initial_memory_is_a_memory_limit_not_a_retry() {
    // kv-random starts with over 1 MiB (its stack and data); 512 KiB can
    // never fit, so retrying would be pointless.
    let rt = runtime();
    let p = rt.load_builtin("kv-random", None).unwrap();
    let limits = RunLimits { memory: 512 << 10, ..Default::default() };
    let err = p.start("tiny", config(limits)).err().expect("instantiation refused");
    assert_eq!(err.failure, Failure::MemoryLimit(512 << 10), "{err}");
    assert!(!err.failure.is_transient());
    assert_runtime_healthy(&rt);
}

#[test]
fn a_panicking_plugin_becomes_a_typed_trap_with_its_message() {
    let rt = runtime();
    let p = rt.load_file(&build_artifact("fixture_panicky"), None).unwrap();
    let mut run = p.start("panicky", config(RunLimits::default())).unwrap();
    let err = run.create(&ctx(json!({}))).unwrap_err();
    match &err.failure {
        Failure::Trap(m) => assert!(m.contains("fixture panicked on purpose"), "{m}"),
        other => panic!("expected a trap, got {other:?}"),
    }
    // The trapped instance is replaced: rollback still runs.
    let pending = rotator_core::secret::SecretJson::new("{}".into());
    run.rollback(&ctx(json!({})), &pending).unwrap();
    assert_runtime_healthy(&rt);
}

#[test]
fn a_plugin_writing_outside_its_grant_is_denied_without_contacting_vault() {
    logs::capture();
    let rt = runtime();
    let p = rt.load_file(&build_artifact("fixture_trespass"), None).unwrap();
    // No vault connection at all: a denial must come before any attempt.
    let mut run = p.start("trespasser", config(RunLimits::default())).unwrap();
    let err = run.create(&ctx(json!({}))).unwrap_err();
    match &err.failure {
        Failure::Permanent(m) => assert!(m.contains("not granted to job `trespasser`"), "{m}"),
        other => panic!("expected a denial, got {other:?}"),
    }
    let calls = run.host_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].path, "secret/data/forbidden/target");
    assert_eq!(calls[0].outcome, rotator_core::plugin::CallOutcome::Denied);
    // The denial is logged, naming job, plugin, operation and path.
    let reason = "not in the job's grants";
    assert_eq!(logs::denials("trespasser", &p.label(), reason, "write", "secret/data/forbidden/target"), 1);
    assert_runtime_healthy(&rt);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kv_call_outside_the_grants_is_denied_before_vault_is_asked_anything() {
    let server = dev_server().await;
    let client = VaultClient::new(VaultOptions::new(server.url(), SecretString::from(ROOT))).unwrap();
    let rt = runtime();
    let p = rt.load_file(&build_artifact("fixture_trespass"), None).unwrap();
    // A job granted something else entirely, with a live Vault connection.
    let other = VaultGrant { path: "secret/data/elsewhere".into(), operations: vec![Operation::Write] };
    let bridge = VaultBridge { client: client.clone(), handle: Handle::current() };
    let denied = RunConfig {
        grants: Arc::new(Grants { vault: vec![other], ..Grants::default() }),
        ..config(RunLimits::default())
    };
    let (err, calls) =
        create_on_blocking(&p, "trespasser-online", RunConfig { vault: Some(bridge.clone()), ..denied }).await;
    let err = err.expect_err("the write is denied");
    assert!(err.to_string().contains("write on `secret/data/forbidden/target` is not granted"), "{err}");
    assert_eq!(calls.len(), 1);
    assert_eq!((calls[0].path.as_str(), &calls[0].outcome), ("secret/data/forbidden/target", &CallOutcome::Denied));
    assert_eq!(server.stats().total, 0, "Vault was contacted for a denied call: {:?}", server.stats().by_path);

    // The same call granted goes through the same bridge: the stats see it.
    let target = VaultGrant { path: "secret/data/forbidden/target".into(), operations: vec![Operation::Write] };
    let granted = Grants { vault: vec![target], ..Grants::default() };
    let allowed = RunConfig { grants: Arc::new(granted), vault: Some(bridge), ..config(RunLimits::default()) };
    let (created, _) = create_on_blocking(&p, "trespasser-granted", allowed).await;
    created.unwrap();
    assert_eq!(server.stats().requests("sys/internal/ui/mounts/secret"), 1, "the KV version is asked once allowed");
    assert_eq!(server.stats().requests("secret/data/forbidden/target"), 1);
}

#[test]
fn a_plugin_gets_no_files_sockets_environment_or_arguments() {
    // Stands where a service would be: nothing may connect to it.
    let service = TcpListener::bind("127.0.0.1:0").unwrap();
    service.set_nonblocking(true).unwrap();
    let rt = runtime();
    let p = rt.load_file(&build_artifact("fixture_escape"), None).unwrap();
    // The attempts below reach the host's WASI: the component imports it.
    for interface in ["wasi:filesystem/preopens", "wasi:cli/environment", "wasi:sockets/tcp", "wasi:cli/stdout"] {
        assert!(p.imports().iter().any(|i| i.starts_with(interface)), "{interface} not in {:?}", p.imports());
    }
    let mut run = p.start("escaper", config(RunLimits::default())).unwrap();
    let port = service.local_addr().unwrap().port();
    let err = run.create(&ctx(json!({ "port": port }))).unwrap_err();
    let Failure::Permanent(report) = &err.failure else { panic!("expected the fixture's report, got {err}") };
    let report: serde_json::Value = serde_json::from_str(report).unwrap();

    for attempt in ["read_file", "list_dir", "write_file", "resolve", "connect"] {
        assert!(report[attempt]["error"].is_string(), "{attempt} got through: {report}");
    }
    // Refused by the host's socket policy, not merely unanswered.
    assert!(report["connect"]["error"].as_str().is_some_and(|e| e.contains("Permission denied")), "{report}");
    assert_eq!(report["env"], json!([]), "{report}");
    assert_eq!(report["args"], json!([]), "{report}");
    assert_eq!(service.accept().unwrap_err().kind(), std::io::ErrorKind::WouldBlock, "the plugin connected");
    // Writes to stdio are swallowed (stdout is discarded, stderr kept only to
    // explain a panic); `rotator plugin test` shows none reaches the host's
    // output (host/rotator/tests/cli.rs).
    assert!(run.host_calls().is_empty());
    assert_runtime_healthy(&rt);
}

/// `create` of a fresh run of `plugin` on a blocking thread (its Vault calls
/// block on this runtime): the outcome and the host calls it made.
async fn create_on_blocking(plugin: &Plugin, job: &str, cfg: RunConfig) -> (Result<(), StepError>, Vec<HostCall>) {
    let (plugin, job) = (plugin.clone(), job.to_owned());
    tokio::task::spawn_blocking(move || {
        let mut run = plugin.start(&job, cfg).unwrap();
        let created = run.create(&ctx(json!({}))).map(drop);
        (created, run.host_calls().to_vec())
    })
    .await
    .unwrap()
}

#[test]
fn a_non_component_file_gives_a_clear_error() {
    let rt = runtime();
    let err = rt.load("junk.wasm", b"this is not wasm", None).unwrap_err();
    assert!(matches!(err, LoadError::NotWasm { .. }));
    assert_eq!(err.to_string(), "junk.wasm: not a WebAssembly file");
    // A core module (the smallest valid one) is told apart from a component.
    let core = b"\0asm\x01\0\0\0";
    let err = rt.load("core.wasm", core, None).unwrap_err();
    assert!(err.to_string().contains("a core WebAssembly module, not a component"), "{err}");
}

#[test]
fn a_wrong_world_component_is_refused_naming_what_is_missing() {
    let rt = runtime();
    let err = rt.load_file(&build_artifact("fixture_wrong_world"), None).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, LoadError::WrongWorld { .. }), "{msg}");
    assert!(msg.contains("does not export `rotator:plugin/rotator@0.2.0` or `rotator:plugin/rotator@0.1.0`"), "{msg}");
    assert!(msg.contains("other:thing/greeter@1.0.0"), "{msg}");
}

#[test]
fn a_sha256_pin_refuses_a_different_file() {
    let rt = runtime();
    let path = build_artifact("kv_random");
    let err = rt.load_file(&path, Some(&"0".repeat(64))).unwrap_err();
    assert!(matches!(err, LoadError::Sha256Mismatch { .. }), "{err}");
    let actual = match err {
        LoadError::Sha256Mismatch { actual, .. } => actual,
        _ => unreachable!(),
    };
    let ok = rt.load_file(&path, Some(&actual.to_uppercase())).unwrap();
    assert_eq!(ok.sha256(), actual);
}
