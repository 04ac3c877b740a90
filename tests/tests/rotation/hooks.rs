//! Hooks after promotion, against a real webhook receiver on loopback and
//! real processes: a signed notice with no value, exec hooks in the order
//! written with the job in their environment, a failing receiver retried
//! then recorded without stopping the rotation, a hook past its timeout
//! killed, and a bad hook refused at config time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use rotator_core::rotation::RotateOptions;
use rotator_tests::events::Recorder;
use rotator_tests::{dev_server, jobs, store};

const KEY: &str = "hook-signing-key-0123456789";

/// What the receiver got, and the statuses it answers with (then 200).
#[derive(Default)]
struct Receiver {
    got: Mutex<Vec<(HeaderMap, Bytes)>>,
    answers: Mutex<Vec<u16>>,
}

async fn receiver(answers: Vec<u16>) -> (String, Arc<Receiver>) {
    let r = Arc::new(Receiver { answers: Mutex::new(answers), ..Receiver::default() });
    let state = r.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let r = state.clone();
            async move {
                r.got.lock().unwrap().push((headers, body));
                let mut answers = r.answers.lock().unwrap();
                let status = if answers.is_empty() { 200 } else { answers.remove(0) };
                StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, r)
}

#[tokio::test(flavor = "multi_thread")]
async fn hooks_are_told_in_order_signed_and_without_the_value() {
    let server = dev_server().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hook.key"), KEY).unwrap();
    let out = dir.path().join("order.txt");
    let (url, got) = receiver(vec![503]).await;
    let line = |n: u32| format!("echo {n} $ROTATOR_JOB $ROTATOR_ROTATION_ID $ROTATOR_VERSION >> {}", out.display());
    let toml = format!(
        r#"
[[jobs]]
id = "hooked"
plugin = "kv-random"
secret = {{ path = "hooks/app" }}
interval = "1h"
settings = {{ field = "password", length = 32 }}
hooks = [
  {{ exec = ["/bin/sh", "-c", "{one}"] }},
  {{ webhook = "{url}", key = {{ file = "{key}" }} }},
  {{ exec = ["/bin/sh", "-c", "{two}"] }},
]
"#,
        one = line(1),
        two = line(2),
        key = dir.path().join("hook.key").display(),
    );
    let (vault, jobs, _rt) = jobs(&server, &toml);
    let store = store(&vault);
    let recorder = Recorder::default();
    let options = RotateOptions { observer: &recorder, ..RotateOptions::new("test") };
    let report = jobs[0].rotate_with(&store, options).await.unwrap_or_else(|e| panic!("{e}"));
    let version = report.new_version.clone().unwrap().to_string();

    // In the order written, after promotion and before finish.
    let steps: Vec<(String, String)> =
        recorder.all().iter().map(|e| (e.step.to_owned(), e.outcome.to_owned())).collect();
    let at = |s: &str| steps.iter().position(|(step, _)| step == s).unwrap();
    let hooks: Vec<_> = steps.iter().filter(|(s, _)| s == "hook").map(|(_, o)| o.as_str()).collect();
    assert_eq!(hooks, ["ok", "ok", "ok"]);
    assert!(
        at("promote") < at("hook") && steps.iter().rposition(|(s, _)| s == "hook").unwrap() < at("finish"),
        "{steps:?}"
    );
    let written = std::fs::read_to_string(&out).unwrap();
    let expected = format!("1 hooked {id} {version}\n2 hooked {id} {version}\n", id = report.rotation_id);
    assert_eq!(written, expected);

    // The webhook: retried after a 503, signed, and no value in it.
    let got = got.got.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "one 503, then delivered");
    let (headers, body) = &got[1];
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(KEY.as_bytes()).unwrap();
    mac.update(body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(headers["x-rotator-signature"].to_str().unwrap(), expected);
    let notice: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(notice["job"], "hooked");
    assert_eq!(notice["rotation_id"], report.rotation_id.as_str());
    assert_eq!(notice["version"], version.as_str());
    let password = vault.kv_read("secret", "hooks/app").await.unwrap().unwrap().data.fields()["password"].clone();
    let text = String::from_utf8_lossy(body);
    assert!(!text.contains(password.as_str().unwrap()) && !text.contains(KEY), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_or_slow_hook_is_recorded_and_the_rotation_goes_on() {
    let server = dev_server().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hook.key"), KEY).unwrap();
    let (url, got) = receiver(vec![500, 502, 503]).await;
    let toml = format!(
        r#"
[[jobs]]
id = "unlucky"
plugin = "kv-random"
secret = {{ path = "hooks/unlucky" }}
interval = "1h"
settings = {{ field = "password" }}
hooks = [
  {{ webhook = "{url}", key = {{ file = "{key}" }} }},
  {{ exec = ["/bin/sleep", "30"], timeout = "300ms" }},
  {{ exec = ["/bin/false"] }},
]
"#,
        key = dir.path().join("hook.key").display(),
    );
    let (vault, jobs, _rt) = jobs(&server, &toml);
    let store = store(&vault);
    let recorder = Recorder::default();
    let started = std::time::Instant::now();
    let options = RotateOptions { observer: &recorder, ..RotateOptions::new("test") };
    let report = jobs[0].rotate_with(&store, options).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(report.new_version.is_some(), "the rotation went on");
    // The sleeping hook was killed at its timeout, not waited for.
    assert!(started.elapsed() < Duration::from_secs(25));
    let events = recorder.all();
    let hooks: Vec<_> = events.iter().filter(|e| e.step == "hook").collect();
    let kinds: Vec<_> = hooks.iter().map(|e| (e.outcome, e.kind)).collect();
    assert_eq!(
        kinds,
        [("failed", Some("hook-failed")), ("failed", Some("hook-timeout")), ("failed", Some("hook-failed"))]
    );
    let first = hooks[0].error.as_deref().unwrap();
    assert!(first.contains("hook 1 (webhook http://") && first.contains("503 after 3 tries"), "{first}");
    assert!(!first.contains(KEY));
    assert_eq!(got.got.lock().unwrap().len(), 3);
    assert!(hooks[2].error.as_deref().unwrap().contains("exited with"), "{:?}", hooks[2].error);
    let state = store.load("unlucky").await.unwrap().state;
    assert_eq!((state.rotations, state.in_progress.is_none()), (1, true));
}

#[test]
fn hooks_that_cannot_be_run_as_written_are_refused_at_config_time() {
    let toml = r#"
[[jobs]]
id = "bad-hooks"
plugin = "kv-random"
secret = { path = "hooks/bad" }
interval = "1h"
settings = { field = "password" }
hooks = [
  { webhook = "https://user:hunter2@deploy.example/x", key = { env = "K" } },
  { webhook = "https://deploy.example/x" },
  { exec = ["systemctl", "reload", "app"] },
  { exec = ["/bin/true"], timeout = "2h" },
  { exec = ["/bin/true"], webhook = "https://deploy.example/x" },
]
"#;
    let err = rotator_core::config::parse("hooks.toml", toml, std::path::Path::new(".")).unwrap_err().to_string();
    for want in
        ["must not carry credentials", "needs `key", "absolute path", "hooks.timeout must be between", "give either"]
    {
        assert!(err.contains(want), "{want}: {err}");
    }
    assert!(!err.contains("hunter2"), "{err}");
    assert_eq!(err.lines().count(), 5, "{err}");
}
