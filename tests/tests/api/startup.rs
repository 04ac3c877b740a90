//! The configured jobs are known as soon as the API answers: a request for
//! one right after start finds it, even while reading the job records waits
//! for a slow Vault (they are queued after the API is up).

use std::time::Duration;

use rotator_devserver::FaultRules;
use rotator_tests::api::{Api, ApiSetup};
use rotator_tests::dev_server;

#[tokio::test(flavor = "multi_thread")]
async fn configured_jobs_are_found_while_their_records_are_still_being_read() {
    let server = dev_server().await;
    // Every read of a job record waits 2 s before Vault answers it.
    server.set_faults(Some(FaultRules {
        rate: 1.0,
        delay: Some(Duration::from_secs(2)),
        path_prefix: Some("secret/data/rotator/state/".into()),
        methods: vec!["GET".into()],
        ..FaultRules::default()
    }));
    let ids = ["slow-1", "slow-2", "slow-3"];
    let jobs: String = ids
        .iter()
        .map(|id| {
            format!(
                "[[jobs]]\nid = \"{id}\"\nplugin = \"kv-random\"\nsecret = {{ path = \"startup/{id}\" }}\n\
                 interval = \"1h\"\nsettings = {{ field = \"password\" }}\n\n"
            )
        })
        .collect();
    let api = Api::start_with(&server, ApiSetup { jobs, ..ApiSetup::default() }).await;

    assert_eq!(api.job_ids().await, ids, "every configured job is listed at once");
    let answered: u64 = ids.iter().map(|id| server.stats().requests(&format!("secret/data/rotator/state/{id}"))).sum();
    assert!(answered < 3, "the records were read already ({answered}): the test did not slow them down");
    // And each is found, not 404, while its record may still be on its way.
    for id in ids {
        let job = api.expect(200, "GET", &format!("/jobs/{id}"), None).await;
        assert_eq!(job["id"], id, "{job}");
    }
    server.set_faults(None);
    api.stop().await;
}
