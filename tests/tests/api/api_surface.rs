//! What the operator API exposes and how it holds up, over real HTTP on
//! loopback against the dev server: which routes answer without the token
//! (and that those say nothing about jobs), request bodies refused before
//! they are read, plugin files of jobs added at run time confined to the
//! plugin directories, and a panicking rotation that neither sticks its job
//! nor leaves `/readyz` saying ready.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rotator_core::rotation::{Observer, RotationEvent};
use rotator_core::vault::{VaultClient, VaultOptions};
use rotator_daemon::api::{Access, MAX_REQUEST_BODY, ROUTES};
use rotator_tests::api::{Api, ApiSetup, error_message};
use rotator_tests::raw_http::{RawConnection, chunk, head};
use rotator_tests::{ROOT, dev_server, logs};
use secrecy::SecretString;
use serde_json::{Value, json};

/// Every route and whether it is open without the token, written out by
/// hand: a route added to `ROUTES` without a row here fails the test, so
/// nobody makes a route public by accident.
const ACCESS: &[(&str, &str, bool)] = &[
    ("GET", "/", true),
    ("GET", "/assets/app.js", true),
    ("GET", "/assets/style.css", true),
    ("GET", "/assets/icon.png", true),
    ("GET", "/healthz", true),
    ("GET", "/livez", true),
    ("GET", "/readyz", true),
    ("GET", "/status", false),
    ("GET", "/token", false),
    ("GET", "/openapi.json", false),
    ("GET", "/kv/{*path}", false),
    ("POST", "/kv/{*path}", false),
    ("GET", "/dynamic/{role}", false),
    ("GET", "/leases", false),
    ("DELETE", "/leases/{*lease_id}", false),
    ("POST", "/rotate/database-root", false),
    ("POST", "/reload", false),
    ("GET", "/scheduler/jobs", false),
    ("POST", "/scheduler/jobs", false),
    ("DELETE", "/scheduler/jobs/{id}", false),
    ("GET", "/jobs/{id}", false),
    ("POST", "/jobs/{id}/rotate", false),
    ("POST", "/jobs/{id}/adopted", false),
    ("GET", "/events", false),
    ("GET", "/metrics", false),
];

/// A job whose secret already exists, so it is not due for a day.
const JOB: &str = r#"
[[jobs]]
id = "surface-job"
plugin = "kv-random"
secret = { mount = "secret", path = "surface/app" }
interval = "24h"
settings = { field = "password" }
"#;

async fn write_secret(server: &rotator_devserver::DevServer, path: &str) {
    let vault = VaultClient::new(VaultOptions::new(server.url(), SecretString::from(ROOT))).unwrap();
    let data = json!({ "password": "initial-value-1" });
    vault.request("POST", &format!("secret/data/{path}"), Some(json!({ "data": data }).to_string())).await.unwrap();
}

/// `GET /jobs/<id>` until the scheduler has the job (it is added once the
/// API is up).
pub(crate) async fn scheduled(api: &Api, id: &str) -> Value {
    for _ in 0..200 {
        let (status, job) = api.call("GET", &format!("/jobs/{id}"), None).await;
        if status == 200 {
            return job;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("job {id} never scheduled");
}

#[tokio::test(flavor = "multi_thread")]
async fn only_liveness_and_the_dashboard_files_answer_without_the_token() {
    let routes: BTreeSet<(String, &str, bool)> =
        ROUTES.iter().map(|r| (r.method.to_string(), r.pattern, r.access == Access::Public)).collect();
    let table: BTreeSet<(String, &str, bool)> = ACCESS.iter().map(|&(m, p, open)| (m.to_owned(), p, open)).collect();
    assert_eq!(routes, table, "ROUTES and this table disagree: add a row for every new route");

    let server = dev_server().await;
    write_secret(&server, "surface/app").await;
    let api = Api::start_with(&server, ApiSetup { jobs: JOB.into(), ..ApiSetup::default() }).await;
    scheduled(&api, "surface-job").await;
    for &(method, pattern, open) in ACCESS {
        let path = pattern.replace("{*", "{").replace("{path}", "surface/app").replace('{', "x-").replace('}', "");
        let a = api.send(None, method, &path, None).await;
        if !open {
            assert_eq!(a.status, 401, "{method} {path}: {}", a.body);
            assert_eq!(a.challenge.as_deref(), Some("Bearer"));
            assert!(error_message(&a.body).contains("Authorization: Bearer"), "{}", a.body);
            continue;
        }
        assert_eq!(a.status, 200, "{method} {path}: {}", a.body);
        let text = a.body.to_string();
        for private in ["surface-job", "surface/app", "initial-value-1"] {
            assert!(!text.contains(private), "{method} {path} shows {private:?}: {text}");
        }
        if path.ends_with('z') {
            let word = if path == "/readyz" { "ready" } else { "ok" };
            assert_eq!(a.body, json!({ "status": word }), "{path}");
        }
    }
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_declared_oversized_body_is_refused_before_it_is_read() {
    let server = dev_server().await;
    let api = Api::start(&server, false).await;
    let addr = api.base.trim_start_matches("http://").to_owned();
    let bearer = format!("Authorization: Bearer {}", api.token);

    // Ten gigabytes declared, nothing sent: the answer comes anyway.
    for path in ["/scheduler/jobs", "/kv/app/x", "/rotate/database-root"] {
        let mut conn = RawConnection::open(&addr).await;
        conn.send(&head("POST", path, &[&bearer, "Content-Type: application/json", "Content-Length: 10737418240"]))
            .await
            .unwrap();
        let refused = conn.response().await;
        assert_eq!(refused.status, 413, "{path}");
        let limit = format!("the request body is larger than the API's limit of {MAX_REQUEST_BODY} bytes");
        assert_eq!(refused.json(), json!({ "error": limit }));
        assert_eq!(refused.header("connection"), Some("close"));
    }
    // Without the token, the token is refused first, just as fast.
    let mut conn = RawConnection::open(&addr).await;
    conn.send(&head("POST", "/scheduler/jobs", &["Content-Length: 10737418240"])).await.unwrap();
    assert_eq!(conn.response().await.status, 401);

    // No length declared: the body is read up to the cap and no further.
    let mut conn = RawConnection::open(&addr).await;
    let mut request = head("POST", "/kv/app/x", &[&bearer, "Transfer-Encoding: chunked"]);
    let piece = vec![b' '; 64 * 1024];
    for _ in 0..(MAX_REQUEST_BODY / piece.len() + 2) {
        request.extend_from_slice(&chunk(&piece));
    }
    // The server may answer and hang up before all of it is sent.
    let _ = conn.send(&request).await;
    let refused = conn.response().await;
    assert_eq!(refused.status, 413);

    // A body within the cap still works.
    let body = json!({ "data": { "k": "v".repeat(MAX_REQUEST_BODY / 2) } });
    api.expect(200, "POST", "/kv/app/big", Some(body)).await;
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_added_at_run_time_load_plugin_files_only_from_the_plugin_dirs() {
    let root = tempfile::tempdir().unwrap();
    let plugins = root.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(rotator_test_artifacts::build_artifact("kv_random"), plugins.join("mine.wasm")).unwrap();
    std::fs::copy(rotator_test_artifacts::build_artifact("kv_random"), root.path().join("outside.wasm")).unwrap();
    std::os::unix::fs::symlink("../outside.wasm", plugins.join("escape.wasm")).unwrap();
    std::fs::write(plugins.join("junk.wasm"), b"not wasm").unwrap();

    // `[daemon] plugin_dirs` is relative to the config's folder.
    let config =
        rotator_core::config::parse("rotator.toml", "[daemon]\nplugin_dirs = [\"plugins\"]\n", root.path()).unwrap();
    assert_eq!(config.plugin_dirs(), vec![plugins.clone()]);

    let server = dev_server().await;
    let setup = ApiSetup { plugin_dirs: config.plugin_dirs(), ..ApiSetup::default() };
    let api = Api::start_with(&server, setup).await;
    let job = |id: &str, plugin: &str| {
        json!({ "id": id, "plugin": plugin, "secret": { "mount": "secret", "path": format!("file/{id}") },
                "interval": "24h", "settings": { "field": "password" } })
    };

    // Inside the directory: loaded and scheduled.
    let added = api.expect(200, "POST", "/scheduler/jobs", Some(job("inside", "mine.wasm"))).await;
    assert!(added["plugin"].as_str().unwrap().starts_with("kv-random@"), "{added}");

    // Everything else gets the same answer, whether the file exists or not.
    let outside = root.path().join("outside.wasm").display().to_string();
    let missing = root.path().join("missing.wasm").display().to_string();
    let refused = [
        outside.as_str(),
        missing.as_str(),
        "../outside.wasm",
        "../missing.wasm",
        "escape.wasm",
        "nothing-here.wasm",
        "/etc/passwd",
        "/etc/no-such-file",
        "/proc/self/pagemap",
        "/dev/zero",
        "./",
        "no-such-builtin",
    ];
    for (i, plugin) in refused.into_iter().enumerate() {
        let body = api.expect(400, "POST", "/scheduler/jobs", Some(job(&format!("out-{i}"), plugin))).await;
        let want = format!(
            "plugin `{plugin}` is neither a built-in nor a readable file in the daemon's plugin directories \
             ([daemon] plugin_dirs)"
        );
        assert_eq!(error_message(&body), want);
    }
    // A file inside that is no plugin is reported as such: it is the
    // operator's own directory, so nothing is revealed.
    let body = api.expect(400, "POST", "/scheduler/jobs", Some(job("junk", "junk.wasm"))).await;
    assert!(error_message(&body).contains("not a WebAssembly file"), "{body}");
    api.stop().await;

    // With no plugin directories configured, not even that file loads.
    let api = Api::start(&server, false).await;
    let body = api
        .expect(400, "POST", "/scheduler/jobs", Some(job("inside", &plugins.join("mine.wasm").display().to_string())))
        .await;
    assert!(error_message(&body).contains("neither a built-in nor a readable file"), "{body}");
    api.expect(200, "POST", "/scheduler/jobs", Some(job("builtin", "kv-random"))).await;
    api.stop().await;
}

/// An observer that panics on the first rotation event after it is armed:
/// a real panic inside a running rotation, as a bug in rotator would cause.
#[derive(Default)]
struct PanicOnce {
    armed: AtomicBool,
}

impl Observer for PanicOnce {
    fn event(&self, _: &RotationEvent) {
        if self.armed.swap(false, Ordering::SeqCst) {
            panic!("injected bug in a rotation");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_rotation_releases_its_job_and_makes_the_daemon_unready() {
    let server = dev_server().await;
    write_secret(&server, "surface/app").await;
    let bug = Arc::new(PanicOnce::default());
    let setup = ApiSetup { jobs: JOB.into(), observers: vec![bug.clone()], ..ApiSetup::default() };
    let api = Api::start_with(&server, setup).await;
    scheduled(&api, "surface-job").await;
    assert_eq!(api.send(None, "GET", "/readyz", None).await.status, 200);

    // The rotation panics: the caller gets a 500, the job is not left
    // "rotating", and the failure is on its record.
    bug.armed.store(true, Ordering::SeqCst);
    let body = api.expect(500, "POST", "/jobs/surface-job/rotate", None).await;
    assert!(error_message(&body).contains("the rotation task panicked"), "{body}");
    let job = api.expect(200, "GET", "/jobs/surface-job", None).await;
    assert_eq!(job["running"], false, "{job}");
    assert!(job["last_error"].as_str().unwrap().contains("panicked"), "{job}");
    let logged = logs::lines_with(&["a daemon task panicked", "job=\"surface-job\"", "injected bug in a rotation"]);
    assert_eq!(logged.len(), 1, "{}", logs::text());

    // Not ready from now on; alive all the same.
    let ready = api.send(None, "GET", "/readyz", None).await;
    assert_eq!((ready.status, ready.body), (503, json!({ "status": "not ready" })));
    for path in ["/healthz", "/livez"] {
        let alive = api.send(None, "GET", path, None).await;
        assert_eq!((alive.status, alive.body), (200, json!({ "status": "ok" })), "{path}");
    }
    let status = api.expect(200, "GET", "/status", None).await;
    assert_eq!(status["readiness"]["checks"]["task_panics"], 1);
    assert!(status["readiness"]["error"].as_str().unwrap().contains("panicked"), "{status}");

    // The job rotates again on request.
    let rotated = api.expect(200, "POST", "/jobs/surface-job/rotate", None).await;
    assert_eq!(rotated["job"], "surface-job");

    // A panic in a request handler itself (a one-off rotation runs in the
    // handler): 500 in the API's shape, counted under `api`.
    bug.armed.store(true, Ordering::SeqCst);
    let body = api.expect(500, "POST", "/kv/surface/other/rotate", Some(json!({ "field": "password" }))).await;
    assert!(error_message(&body).contains("the api task panicked"), "{body}");
    let metrics = api.http.get(format!("{}/metrics", api.base)).bearer_auth(&api.token).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(metrics.contains("rotator_task_panics_total{task=\"rotation\"} 1\n"), "{metrics}");
    assert!(metrics.contains("rotator_task_panics_total{task=\"api\"} 1\n"), "{metrics}");
    api.stop().await;
}
