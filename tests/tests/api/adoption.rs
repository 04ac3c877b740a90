//! The adoption gate (issue 16) through a whole daemon: `finish` waits
//! until the job's consumers use the new version, acknowledged through the
//! API or reported by a probe URL; on timeout the job's policy decides;
//! a daemon that stops while waiting leaves the wait for the next one, with
//! the same rotation and the same deadline. Every step is read back from
//! the live event feed (`Recorder`) and from Vault.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rotator_core::vault::{VaultClient, VaultOptions};
use rotator_tests::api::{Api, ApiSetup};
use rotator_tests::events::Recorder;
use rotator_tests::{ROOT, dev_server};
use secrecy::SecretString;
use serde_json::{Value, json};

fn job(id: &str, adoption: &str) -> String {
    format!(
        "[[jobs]]\nid = \"{id}\"\nplugin = \"kv-random\"\nsecret = {{ path = \"adopt/{id}\" }}\n\
         interval = \"24h\"\nsettings = {{ field = \"password\" }}\nadoption = {adoption}\n"
    )
}

async fn start(server: &rotator_devserver::DevServer, jobs: &str, recorder: &Arc<Recorder>) -> Api {
    let setup = ApiSetup { jobs: jobs.to_owned(), observers: vec![recorder.clone()], ..ApiSetup::default() };
    Api::start_with(server, setup).await
}

/// A root client of the dev server.
fn vault(server: &rotator_devserver::DevServer) -> VaultClient {
    VaultClient::new(VaultOptions::new(server.url(), SecretString::from(ROOT))).unwrap()
}

/// Wait until `GET /jobs/{id}` satisfies `done`; its view.
async fn until(api: &Api, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let view = api.expect(200, "GET", &format!("/jobs/{id}"), None).await;
        if done(&view) {
            return view;
        }
        assert!(Instant::now() < deadline, "{id}: not {what} in 30 s: {view}\n{}", rotator_tests::logs::text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The job's first rotation (due at once: its secret is new) stops at the
/// gate; `rotate now` then answers 202 while it waits. Its rotation id.
async fn rotate_into_the_gate(api: &Api, id: &str) -> String {
    let view = until(api, id, "waiting", |v| v["in_progress"]["stage"] == "promoted" && v["running"] == false).await;
    assert!(view["history"].as_array().unwrap().is_empty(), "not ended yet: {view}");
    let (status, body) = api.call("POST", &format!("/jobs/{id}/rotate"), None).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "awaiting-adoption", "{body}");
    assert!(body["message"].as_str().unwrap().contains("finish waits until") && body["until"].is_string(), "{body}");
    view["in_progress"]["id"].as_str().unwrap().to_owned()
}

/// The steps the recorder saw for rotation `rotation`, in order.
fn steps(recorder: &Recorder, rotation: &str) -> Vec<(String, String)> {
    recorder
        .all()
        .into_iter()
        .filter(|e| e.rotation_id == rotation)
        .map(|e| (e.step.to_owned(), e.outcome.to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn finish_waits_for_the_consumers_acknowledgement() {
    let server = dev_server().await;
    let recorder = Arc::new(Recorder::default());
    let api = start(&server, &job("acked", "{ ack = true, timeout = \"5m\" }"), &recorder).await;
    let rotation = rotate_into_the_gate(&api, "acked").await;
    let vault = vault(&server);
    let current = vault.kv_read("secret", "adopt/acked").await.unwrap().unwrap();
    let version = current.version.unwrap().to_string();
    assert!(!steps(&recorder, &rotation).iter().any(|(s, _)| s == "finish"), "finish ran before adoption");

    // A wrong version, an unknown job, a malformed body: nothing moves.
    let stale = (version.parse::<u64>().unwrap() + 5).to_string();
    api.expect(200, "POST", "/jobs/acked/adopted", Some(json!({ "version": stale }))).await;
    api.expect(404, "POST", "/jobs/nope/adopted", Some(json!({ "version": version }))).await;
    api.expect(400, "POST", "/jobs/acked/adopted", Some(json!({ "version": "x\u{7}" }))).await;
    api.expect(400, "POST", "/jobs/acked/adopted", Some(json!({ "version": "v".repeat(129) }))).await;
    api.expect(400, "POST", "/jobs/acked/adopted", Some(json!({}))).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let view = api.expect(200, "GET", "/jobs/acked", None).await;
    assert_eq!(view["in_progress"]["stage"], "promoted", "an old version is no adoption: {view}");

    let acked = api
        .expect(200, "POST", "/jobs/acked/adopted", Some(json!({ "version": version.parse::<u64>().unwrap() })))
        .await;
    assert_eq!(acked, json!({ "job": "acked", "version": version }));
    let view = until(&api, "acked", "finished", |v| v["in_progress"].is_null()).await;
    assert_eq!(view["history"][0]["id"], rotation.as_str());
    assert_eq!(view["history"][0]["outcome"], "rotated");
    assert_eq!(view["needs_attention"], false);
    let seen = steps(&recorder, &rotation);
    let adopted = seen.iter().position(|s| *s == ("adoption".into(), "adopted".into())).expect("an adoption event");
    let finish = seen.iter().position(|(s, _)| s == "finish").expect("finish ran");
    assert!(adopted < finish, "{seen:?}");
    // A job without an ack gate refuses acknowledgements.
    api.stop().await;
    let api = start(&server, &job("probed", "{ probe = \"http://127.0.0.1:9/v\" }"), &recorder).await;
    api.expect(400, "POST", "/jobs/probed/adopted", Some(json!({ "version": "2" }))).await;
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn finish_waits_until_the_probe_reports_the_new_version() {
    let server = dev_server().await;
    let reported = Arc::new(Mutex::new(String::from("0")));
    let answer = reported.clone();
    let app = axum::Router::new().route(
        "/version",
        axum::routing::get(move || {
            let v = answer.lock().unwrap().clone();
            async move { axum::Json(json!({ "version": v })) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/version", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let recorder = Arc::new(Recorder::default());
    let api = start(&server, &job("probed", &format!("{{ probe = \"{url}\", timeout = \"5m\" }}")), &recorder).await;
    let rotation = rotate_into_the_gate(&api, "probed").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let view = api.expect(200, "GET", "/jobs/probed", None).await;
    assert_eq!(view["in_progress"]["stage"], "promoted", "the probe still reports the old version: {view}");
    let vault = vault(&server);
    let version = vault.kv_read("secret", "adopt/probed").await.unwrap().unwrap().version.unwrap();
    *reported.lock().unwrap() = version.to_string();
    let view = until(&api, "probed", "finished", |v| v["in_progress"].is_null()).await;
    assert_eq!(view["history"][0]["id"], rotation.as_str());
    assert!(steps(&recorder, &rotation).iter().any(|(s, _)| s == "finish"));
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn on_timeout_keep_skips_finish_and_flags_the_job_and_finish_finishes() {
    let server = dev_server().await;
    let recorder = Arc::new(Recorder::default());
    let jobs = format!(
        "{}{}",
        job("kept", "{ ack = true, timeout = \"1s\" }"),
        job("finished", "{ ack = true, timeout = \"1s\", on_timeout = \"finish\" }")
    );
    let api = start(&server, &jobs, &recorder).await;
    let kept = rotate_into_the_gate(&api, "kept").await;
    let finished = rotate_into_the_gate(&api, "finished").await;

    let view = until(&api, "kept", "ended", |v| v["in_progress"].is_null()).await;
    assert_eq!(view["needs_attention"], true, "{view}");
    let error = view["last_error"].as_str().unwrap();
    assert!(error.contains("did not adopt") && error.contains("old credential stays valid"), "{error}");
    assert_eq!(view["history"][0]["outcome"], "rotated", "the new value is current: {view}");
    let seen = steps(&recorder, &kept);
    assert!(seen.contains(&("adoption".into(), "timed-out".into())), "{seen:?}");
    assert!(!seen.iter().any(|(s, _)| s == "finish"), "finish ran on a kept job: {seen:?}");

    let view = until(&api, "finished", "ended", |v| v["in_progress"].is_null()).await;
    assert_eq!(view["needs_attention"], false, "{view}");
    let seen = steps(&recorder, &finished);
    assert!(
        seen.contains(&("adoption".into(), "timed-out".into())) && seen.iter().any(|(s, _)| s == "finish"),
        "{seen:?}"
    );
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_stopped_while_waiting_leaves_the_wait_to_the_next_with_its_deadline() {
    let server = dev_server().await;
    let recorder = Arc::new(Recorder::default());
    let jobs = job("resumed", "{ ack = true, timeout = \"5m\" }");
    let api = start(&server, &jobs, &recorder).await;
    let rotation = rotate_into_the_gate(&api, "resumed").await;
    let store = rotator_tests::store(&vault(&server));
    let since = store.load("resumed").await.unwrap().state.in_progress.unwrap().adoption_since.expect("recorded");
    api.stop().await;

    let api = start(&server, &jobs, &recorder).await;
    let view = until(&api, "resumed", "waiting again", |v| v["in_progress"]["stage"] == "promoted").await;
    assert_eq!(view["in_progress"]["id"], rotation.as_str(), "the same rotation");
    let again = store.load("resumed").await.unwrap().state.in_progress.unwrap();
    assert_eq!(again.adoption_since, Some(since), "the same deadline");
    let version = again.new_version.unwrap().to_string();
    api.expect(200, "POST", "/jobs/resumed/adopted", Some(json!({ "version": version }))).await;
    let view = until(&api, "resumed", "finished", |v| v["in_progress"].is_null()).await;
    assert_eq!(view["history"][0]["id"], rotation.as_str());
    assert_eq!(view["rotations"], 1, "one rotation, not two");
    api.stop().await;
}

/// A hostile probe: an answer past 4 KiB (the right version, padded) and a
/// redirect to a URL that reports the right version both count as "not
/// adopted", so the gate times out and keeps the old credential.
#[tokio::test(flavor = "multi_thread")]
async fn a_probe_that_answers_too_much_or_redirects_adopts_nothing() {
    let server = dev_server().await;
    let app = axum::Router::new()
        .route("/right", axum::routing::get(|| async { axum::Json(json!({ "version": "1" })) }))
        .route("/big", axum::routing::get(|| async { format!("{{\"version\": \"1\"{}}}", " ".repeat(8192)) }))
        .route("/moved", axum::routing::get(|| async { axum::response::Redirect::temporary("/right") }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let recorder = Arc::new(Recorder::default());
    let gate = |path: &str| format!("{{ probe = \"{base}{path}\", timeout = \"2s\" }}");
    let jobs = format!("{}{}", job("big", &gate("/big")), job("moved", &gate("/moved")));
    let api = start(&server, &jobs, &recorder).await;
    for id in ["big", "moved"] {
        let view = until(&api, id, "ended", |v| v["in_progress"].is_null() && v["rotations"] == 1).await;
        assert_eq!(view["needs_attention"], true, "{id}: the probe's answer was taken: {view}");
        assert_eq!(view["history"][0]["version"], 1, "{id}: version 1 is the one the probe names");
        let error = view["last_error"].as_str().unwrap();
        assert!(error.contains("did not adopt version 1"), "{id}: {error}");
    }
    api.stop().await;
}
