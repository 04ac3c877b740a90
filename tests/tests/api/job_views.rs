//! `/status`, `/scheduler/jobs` and `/jobs/{id}` read the live job registry:
//! whole daemons over real HTTP on loopback against the in-process dev
//! server. A job added through the API shows in `/status` at once and goes
//! when removed; a cron job shows its expression, not an interval of 0.

use rotator_tests::api::{Api, ApiSetup};
use rotator_tests::dev_server;
use serde_json::{Value, json};

use crate::api_surface::scheduled;

/// A configured `kv-random` job `id` on `secret/views/<id>`, with `schedule`.
fn kv_job(id: &str, schedule: &str) -> String {
    format!(
        "[[jobs]]\nid = \"{id}\"\nplugin = \"kv-random\"\nsecret = {{ mount = \"secret\", path = \"views/{id}\" }}\n\
         settings = {{ field = \"password\" }}\n{schedule}\n"
    )
}

/// The ids `/status` lists, in order.
async fn status_ids(api: &Api) -> Vec<String> {
    let status = api.expect(200, "GET", "/status", None).await;
    status["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap().to_owned()).collect()
}

/// The job `id` as `/status` lists it.
async fn in_status(api: &Api, id: &str) -> Value {
    let status = api.expect(200, "GET", "/status", None).await;
    status["jobs"].as_array().unwrap().iter().find(|j| j["id"] == id).cloned().unwrap_or_else(|| panic!("{status}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_added_and_removed_through_the_api_show_in_status() {
    let server = dev_server().await;
    let api = Api::start_with(
        &server,
        ApiSetup { jobs: kv_job("configured-job", "interval = \"24h\""), ..ApiSetup::default() },
    )
    .await;
    scheduled(&api, "configured-job").await;
    assert_eq!(status_ids(&api).await, ["configured-job"]);
    let job = in_status(&api, "configured-job").await;
    assert_eq!((job["interval_seconds"].clone(), job["cron"].clone()), (json!(86_400), Value::Null));
    assert_eq!(job["secret"], "secret/views/configured-job");
    assert!(job["plugin"].as_str().unwrap().starts_with("kv-random@"), "{job}");
    assert_eq!(job["plugin_sha256"].as_str().map(str::len), Some(64), "{job}");

    // Added in the Flask service's format: in `/status` as soon as the
    // POST answers, with the same view `/jobs/{id}` gives.
    let flask = json!({"type": "kv_random", "path": "views/added", "field": "token", "interval_seconds": 3600});
    let added = api.expect(200, "POST", "/scheduler/jobs", Some(flask)).await;
    assert_eq!(added["id"], "kv-secret-views-added");
    assert_eq!(status_ids(&api).await, ["configured-job", "kv-secret-views-added"]);
    let shown = in_status(&api, "kv-secret-views-added").await;
    let one = api.expect(200, "GET", "/jobs/kv-secret-views-added", None).await;
    for key in ["id", "plugin", "plugin_sha256", "secret", "schedule", "interval_seconds", "cron", "enabled"] {
        assert_eq!(shown[key], one[key], "{key}: /status {shown} /jobs {one}");
    }
    assert_eq!((shown["interval_seconds"].clone(), shown["schedule"].clone()), (json!(3600), json!("every 1h")));
    let listed = api.expect(200, "GET", "/scheduler/jobs", None).await;
    let listed: Vec<&str> = listed["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap()).collect();
    assert_eq!(listed, ["configured-job", "kv-secret-views-added"]);

    // Removed: gone from `/status` and the list alike; so is a configured job.
    api.expect(200, "DELETE", "/scheduler/jobs/kv-secret-views-added", None).await;
    assert_eq!(status_ids(&api).await, ["configured-job"]);
    api.expect(200, "DELETE", "/scheduler/jobs/configured-job", None).await;
    assert_eq!(status_ids(&api).await, Vec::<String>::new());
    assert_eq!(api.expect(200, "GET", "/scheduler/jobs", None).await["jobs"], json!([]));
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cron_jobs_show_their_cron_expression_and_no_interval() {
    let server = dev_server().await;
    let api = Api::start_with(
        &server,
        ApiSetup { jobs: kv_job("weekly", "cron = \"0 3 * * sun\"\nwindow = \"1h\""), ..ApiSetup::default() },
    )
    .await;
    let job = scheduled(&api, "weekly").await;
    let fields = job.as_object().unwrap();
    assert_eq!(fields["cron"], "0 3 * * sun");
    // Present and null, so a client reading `interval_seconds` learns the
    // job has no interval rather than an interval of 0.
    assert_eq!(fields.get("interval_seconds"), Some(&Value::Null), "{job}");
    assert_eq!(fields["schedule"], "cron 0 3 * * sun (UTC), window 1h");
    let shown = in_status(&api, "weekly").await;
    assert_eq!((shown["cron"].clone(), shown["interval_seconds"].clone()), (json!("0 3 * * sun"), Value::Null));

    // A cron job added through the API in our own fields.
    let ours = json!({"id": "every-five", "plugin": "kv-random", "cron": "*/5 * * * *",
                      "secret": {"mount": "secret", "path": "views/five"}, "settings": {"field": "password"}});
    let added = api.expect(200, "POST", "/scheduler/jobs", Some(ours)).await;
    assert_eq!((added["cron"].clone(), added["interval_seconds"].clone()), (json!("*/5 * * * *"), Value::Null));
    let shown = in_status(&api, "every-five").await;
    assert_eq!(
        (shown["cron"].clone(), shown["schedule"].clone()),
        (json!("*/5 * * * *"), json!("cron */5 * * * * (UTC)"))
    );
    let listed = api.expect(200, "GET", "/scheduler/jobs", None).await;
    let crons: Vec<&Value> = listed["jobs"].as_array().unwrap().iter().map(|j| &j["cron"]).collect();
    assert_eq!(crons, [&json!("*/5 * * * *"), &json!("0 3 * * sun")]);
    api.stop().await;
}
