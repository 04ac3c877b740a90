//! Clients of the Flask rotation service read back what they sent: a job
//! added in that service's format, with its own `id`, is listed by
//! `GET /scheduler/jobs` (and shown by `/jobs/{id}`) with its fields as
//! given beside ours, also after a restart restored it; a job in our
//! format shows only ours.

use rotator_tests::api::{Api, ApiSetup};
use rotator_tests::dev_server;
use serde_json::{Value, json};

/// The listed job `id`.
async fn listed(api: &Api, id: &str) -> Value {
    let list = api.expect(200, "GET", "/scheduler/jobs", None).await;
    let jobs = list["jobs"].as_array().expect("a list of jobs").clone();
    jobs.into_iter().find(|j| j["id"] == id).unwrap_or_else(|| panic!("no job {id} in {list}"))
}

/// Every field of `given` is in `shown`, with the value given.
fn echoes(shown: &Value, given: &Value) {
    for (key, value) in given.as_object().unwrap() {
        assert_eq!(&shown[key], value, "`{key}` not echoed: {shown}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_given_in_the_flask_format_are_listed_in_that_format() {
    let server = dev_server().await;
    let first = Api::start_with(&server, ApiSetup::default()).await;
    let flask = json!({ "id": "echo-me", "type": "kv_random", "mount": "secret", "path": "echo/app", "field": "password",
                        "length": 24, "interval_seconds": 7200 });
    let added = first.expect(200, "POST", "/scheduler/jobs", Some(flask.clone())).await;
    echoes(&added, &flask);
    let ours = json!({ "id": "ours", "plugin": "kv-random", "secret": { "path": "echo/ours" }, "interval": "1h",
                       "settings": { "field": "password" } });
    first.expect(200, "POST", "/scheduler/jobs", Some(ours)).await;

    let shown = listed(&first, "echo-me").await;
    echoes(&shown, &flask);
    // Ours are there too, and win no argument: they say the same.
    assert_eq!(
        (shown["plugin"].as_str(), shown["secret"].as_str()),
        (Some("kv-random@0.1.0"), Some("secret/echo/app"))
    );
    echoes(&first.expect(200, "GET", "/jobs/echo-me", None).await, &flask);
    let plain = listed(&first, "ours").await;
    assert!(plain.get("type").is_none() && plain.get("path").is_none(), "{plain}");
    assert_eq!(plain["secret"], "secret/echo/ours");
    first.stop().await;

    // Kept as given: the next daemon echoes it too.
    let second = Api::start_with(&server, ApiSetup::default()).await;
    for _ in 0..200 {
        if second.job_ids().await.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    echoes(&listed(&second, "echo-me").await, &flask);
    second.stop().await;
}
