//! The daemon keeps rotating healthy jobs while misbehaving plugins loop,
//! hog memory, panic, trespass and leak next to them, and shuts down cleanly.

use std::time::Duration;

use rotator::api::{ApiOptions, ApiToken};
use rotator::daemon::{Daemon, Identity, LeaseOptions};
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
    let (vault, jobs, runtime) = jobs(&server, &toml);
    let api_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", api_listener.local_addr().unwrap());
    let daemon = Daemon {
        jobs,
        vault: vault.clone(),
        identity: Identity::static_token(),
        leases: LeaseOptions::default(),
        api_listener,
        max_concurrent_rotations: 2,
        shutdown_grace: Duration::from_secs(10),
        state: rotator_tests::store(&vault),
        observers: Vec::new(),
        metrics: Default::default(),
        api: ApiOptions::new(ApiToken::generate().0, runtime),
    };

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(daemon.run(async move {
        let _ = stop_rx.await;
    }));
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let health: serde_json::Value = reqwest::get(format!("{api}/healthz")).await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok");
    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(15), running).await.expect("shutdown finished").unwrap().unwrap();

    // Created at start, then rotated about every second despite the others.
    let healthy = vault.kv_read("secret", "healthy/app").await.unwrap().expect("healthy secret exists");
    let version = healthy.version.unwrap();
    assert!(version >= 3, "only {version} versions in 3.5 s");
    // Every misbehaving job failed before promotion: nothing written.
    for id in ["spinner", "hog", "panicky", "trespasser", "leaky"] {
        assert!(vault.kv_read("secret", &format!("bad/{id}")).await.unwrap().is_none(), "{id} wrote its secret");
    }
    // The trespasser's target was never touched.
    assert!(vault.kv_read("secret", "forbidden/target").await.unwrap().is_none());
}
