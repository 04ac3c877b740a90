//! The daemon keeps rotating healthy jobs while misbehaving plugins loop,
//! hog memory, panic, trespass and leak next to them, and shuts down cleanly.

use std::sync::Arc;
use std::time::Duration;

use rotator_daemon::start::StartOptions;
use rotator_tests::events::Recorder;
use rotator_tests::{dev_server, fixture, jobs};

#[tokio::test(flavor = "multi_thread")]
async fn healthy_jobs_keep_rotating_next_to_misbehaving_plugins() {
    let server = dev_server().await;
    let mut toml = String::from(
        r#"
[[jobs]]
id = "healthy"
plugin = "kv-random"
secret = { path = "healthy/app" }
interval = "1s"
settings = { field = "password" }
"#,
    );
    for (id, crate_name, extra) in [
        ("spinner", "fixture_spin", r#"limits = { step_timeout = "300ms" }"#),
        ("hog", "fixture_hog", r#"limits = { memory = "16MiB" }"#),
        ("panicky", "fixture_panicky", ""),
        ("trespasser", "fixture_trespass", ""),
        ("leaky", "fixture_leaky", ""),
    ] {
        toml.push_str(&format!(
            "\n[[jobs]]\nid = \"{id}\"\nplugin = \"{}\"\nsecret = {{ path = \"bad/{id}\" }}\ninterval = \"1s\"\n{extra}\n",
            fixture(crate_name)
        ));
    }
    toml.insert_str(0, "[daemon]\nmax_concurrent_rotations = 2\nshutdown_grace = \"10s\"\n");
    let (vault, _, _) = jobs(&server, &toml);
    let recorder = Arc::new(Recorder::default());
    let options = StartOptions { observers: vec![recorder.clone()], ..StartOptions::default() };
    let daemon = rotator_tests::daemon(&server, &toml, options).await;
    let api = format!("http://{}", daemon.api_listener.local_addr().unwrap());

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(daemon.run(async move {
        let _ = stop_rx.await;
    }));
    // Run until the healthy job has rotated twice after its first write and
    // every misbehaving job has failed at least once. (Polled, not timed: a
    // loaded machine only makes this take longer.)
    let bad =
        [("spinner", "create"), ("hog", "create"), ("panicky", "create"), ("trespasser", "create"), ("leaky", "test")];
    let mut settled = false;
    for _ in 0..1200 {
        let version = vault.kv_read("secret", "healthy/app").await.unwrap().and_then(|s| s.version).unwrap_or(0);
        if version >= 3 && bad.iter().all(|(id, step)| !recorder.of(id, step).is_empty()) {
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(settled, "within 2 minutes, healthy did not reach version 3 or a misbehaving job never ran");
    let health: serde_json::Value = reqwest::get(format!("{api}/healthz")).await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok");
    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(15), running).await.expect("shutdown finished").unwrap().unwrap();

    // Every misbehaving job failed before promotion: nothing written.
    for id in ["spinner", "hog", "panicky", "trespasser", "leaky"] {
        assert!(vault.kv_read("secret", &format!("bad/{id}")).await.unwrap().is_none(), "{id} wrote its secret");
    }
    // The trespasser's target was never touched.
    assert!(vault.kv_read("secret", "forbidden/target").await.unwrap().is_none());

    // Each failed for its own reason, recorded with the failure's kind, and
    // kept failing that way on every retry.
    for (id, step, kind) in [
        ("spinner", "create", "deadline"),
        ("hog", "create", "memory-limit"),
        ("panicky", "create", "trap"),
        ("trespasser", "create", "permanent"),
        ("leaky", "test", "permanent"),
    ] {
        let failed = recorder.of(id, step);
        assert!(!failed.is_empty(), "{id} never ran {step}");
        assert!(!recorder.of(id, "rotation").is_empty(), "{id}'s failed rotations were never reported as such");
        for e in failed.iter().chain(&recorder.of(id, "rotation")) {
            assert_eq!((e.outcome, e.kind), ("failed", Some(kind)), "{id}: {e:?}");
        }
    }
    // The trespasser's failure is its denied call, counted on its step.
    for e in recorder.of("trespasser", "create") {
        assert_eq!(e.denied_calls, 1, "{e:?}");
        let error = e.error.unwrap_or_default();
        assert!(
            error.contains("vault access denied: write on `secret/data/forbidden/target` is not granted"),
            "{error}"
        );
    }
    // The leak is redacted in the recorded error.
    for e in recorder.of("leaky", "test") {
        let error = e.error.unwrap_or_default();
        assert!(error.contains("login with [REDACTED] failed") && !error.contains("leak-"), "{error}");
    }
    assert!(recorder.of("healthy", "rotation").iter().all(|e| e.outcome == "rotated" && e.kind.is_none()));
}
