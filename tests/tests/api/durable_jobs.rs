//! Jobs added through the API outlive the daemon that added them: their
//! definitions are kept beside the job records and restored by the next
//! daemon on the same store; a removed one stays removed, and a configured
//! job of the same id wins over a kept one.

use rotator_tests::api::{Api, ApiSetup};
use rotator_tests::dev_server;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn api_jobs_survive_a_restart_and_removed_ones_stay_removed() {
    let server = dev_server().await;
    let first = Api::start_with(&server, ApiSetup::default()).await;
    let ours = json!({ "id": "kept-ours", "plugin": "kv-random", "secret": { "path": "durable/ours" },
                       "interval": "1h", "settings": { "field": "password", "length": 40 } });
    first.expect(200, "POST", "/scheduler/jobs", Some(ours)).await;
    let flask = json!({ "type": "kv_random", "path": "durable/flask", "field": "password", "interval_seconds": 3600, "id": "kept-flask" });
    first.expect(200, "POST", "/scheduler/jobs", Some(flask)).await;
    let gone = json!({ "type": "kv_random", "path": "durable/gone", "field": "password", "interval_seconds": 3600, "id": "gone" });
    first.expect(200, "POST", "/scheduler/jobs", Some(gone)).await;
    first.expect(200, "DELETE", "/scheduler/jobs/gone", None).await;
    first.stop().await;

    // A new daemon on the same store, with a configured job named like a
    // kept one: the config's definition is the one scheduled.
    let config = "[[jobs]]\nid = \"kept-flask\"\nplugin = \"kv-random\"\nsecret = { path = \"durable/config\" }\n\
                  interval = \"2h\"\nsettings = { field = \"password\" }\n";
    let second = Api::start_with(&server, ApiSetup { jobs: config.into(), ..ApiSetup::default() }).await;
    let mut found = Vec::new();
    for _ in 0..200 {
        found = second.job_ids().await;
        if found.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(found, ["kept-flask", "kept-ours"], "the removed job stays removed");
    let flask = second.expect(200, "GET", "/jobs/kept-flask", None).await;
    assert_eq!(flask["secret"], "secret/durable/config", "the config's job wins: {flask}");
    // The restored job is the one that was added: its settings run.
    second.expect(200, "POST", "/jobs/kept-ours/rotate", None).await;
    let vault = rotator_core::vault::VaultClient::new(rotator_core::vault::VaultOptions::new(
        server.url(),
        rotator_tests::ROOT.to_owned().into(),
    ))
    .unwrap();
    let value = vault.kv_read("secret", "durable/ours").await.unwrap().unwrap().data.fields();
    assert_eq!(value["password"].as_str().map(str::len), Some(40));
    second.stop().await;
}
