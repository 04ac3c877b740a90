//! `POST /reload`: the config file read again and its jobs applied without
//! a restart (new added, changed used from the next run, gone removed, API
//! jobs left alone), or, for a file with problems, nothing changed and every
//! problem reported, located.

use rotator_tests::api::{Api, ApiSetup};
use rotator_tests::dev_server;
use serde_json::{Value, json};

fn job(id: &str, extra: &str) -> String {
    format!(
        "[[jobs]]\nid = \"{id}\"\nplugin = \"kv-random\"\nsecret = {{ path = \"reload/{id}\" }}\ninterval = \"1h\"\n\
         settings = {{ field = \"password\"{extra} }}\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_applies_the_files_jobs_or_changes_nothing() {
    let server = dev_server().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rotator.toml");
    let first = job("kept", "") + &job("changed", "") + &job("dropped", "");
    std::fs::write(&path, Api::config_text(&[], &first)).unwrap();
    let setup = ApiSetup { jobs: first, config_path: Some(path.clone()), ..ApiSetup::default() };
    let api = Api::start_with(&server, setup).await;
    // A job added through the API is not the file's.
    let added = json!({ "type": "kv_random", "path": "reload/api", "field": "password", "interval_seconds": 3600, "id": "from-api" });
    api.expect(200, "POST", "/scheduler/jobs", Some(added)).await;
    assert_eq!(api.job_ids().await, ["changed", "dropped", "from-api", "kept"]);

    // Same file: nothing to do.
    let same = api.expect(200, "POST", "/reload", None).await;
    assert_eq!(same, json!({ "added": [], "changed": [], "removed": [], "unchanged": 3, "restart_needed": [] }));

    // `kept` moves in the file (no change), `changed` gets new settings,
    // `dropped` goes, `new` comes; the daemon section changes too.
    let second = job("new", "") + &job("changed", ", length = 48") + &job("kept", "");
    let text = format!("[daemon]\nplugin_dirs = []\nmax_concurrent_rotations = 2\n\n{second}");
    std::fs::write(&path, text).unwrap();
    let report = api.expect(200, "POST", "/reload", None).await;
    assert_eq!(
        report,
        json!({ "added": ["new"], "changed": ["changed"], "removed": ["dropped"], "unchanged": 1, "restart_needed": ["daemon"] })
    );
    assert_eq!(api.job_ids().await, ["changed", "from-api", "kept", "new"]);
    // The changed definition is the one that runs now.
    let rotated = api.expect(200, "POST", "/jobs/changed/rotate", None).await;
    assert!(rotated["rotation_id"].is_string(), "{rotated}");
    let secret = api.expect(200, "GET", "/kv/reload/changed", None).await;
    let shown = secret["data"]["password"].clone();
    assert_eq!(shown, Value::String("<redacted>".into()));
    let vault = rotator_core::vault::VaultClient::new(rotator_core::vault::VaultOptions::new(
        server.url(),
        rotator_tests::ROOT.to_owned().into(),
    ))
    .unwrap();
    let value = vault.kv_read("secret", "reload/changed").await.unwrap().unwrap().data.fields();
    assert_eq!(value["password"].as_str().map(str::len), Some(48), "the new settings' length");

    // A file with problems: every one reported, located; nothing changes.
    let broken = job("new", "")
        + "[[jobs]]\nid = \"bad\"\nplugin = \"kv-random\"\ninterval = \"1 fortnight\"\nsettings = { field = \"password\" }\n"
        + &job("worse", ", length = 2")
        + "surprise = 1\n";
    std::fs::write(&path, Api::config_text(&[], &broken)).unwrap();
    let (status, answer) = api.call("POST", "/reload", None).await;
    assert_eq!(status, 400, "{answer}");
    let error = answer["error"].as_str().unwrap();
    for problem in ["surprise", "fortnight"] {
        assert!(error.contains("rotator.toml:") && error.contains(problem), "{problem}: {error}");
    }
    assert_eq!(api.job_ids().await, ["changed", "from-api", "kept", "new"], "the running config stays");
    api.stop().await;
}
