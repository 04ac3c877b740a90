//! The operator API is no Vault proxy: `/kv` and job secrets take only real
//! KV mounts (type `kv` in Vault's mount table) and canonical paths. An API
//! caller once wrote a policy, created a mount and minted a root token with
//! the daemon's identity through `?mount=sys` or `?mount=auth/token`.
//!
//! Requests go over a raw TCP connection to a whole daemon on loopback, so
//! dot segments and escapes reach the API exactly as written (an HTTP
//! client library would resolve them first). Afterwards the dev server's
//! request log must show that nothing was written.

use std::time::Duration;

use rotator_daemon::api::ApiToken;
use rotator_daemon::start::StartOptions;
use rotator_tests::{ROOT, dev_server, jobs};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `METHOD target` with the API token, sent byte for byte: the status and
/// the JSON answer.
async fn raw(addr: std::net::SocketAddr, token: &str, method: &str, target: &str, body: Option<Value>) -> (u16, Value) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&answer);
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let json = text.split_once("\r\n\r\n").and_then(|(_, b)| serde_json::from_str(b).ok()).unwrap_or(Value::Null);
    (status, json)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_refuses_mounts_that_are_not_kv_and_paths_that_are_not_canonical() {
    let server = dev_server().await;
    let (token, value) = ApiToken::generate();
    let options = StartOptions { api_token: Some(token), ..StartOptions::default() };
    let daemon = rotator_tests::daemon(&server, "", options).await;
    let addr = daemon.api_listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(daemon.run(async move {
        let _ = stopped.await;
    }));
    let token = value.expose_secret().to_owned();
    let call = |method: &'static str, target: &'static str, body: Option<Value>| {
        let token = token.clone();
        async move { raw(addr, &token, method, target, body).await }
    };
    // The route works for a real KV mount (a control for what follows).
    assert_eq!(call("POST", "/kv/app/ok?mount=secret", Some(json!({"data": {"k": "v"}}))).await.0, 200);
    server.start_request_log();

    let policy = json!({"data": {"policy": "path \"*\" { capabilities = [\"sudo\", \"create\", \"update\"] }"}});
    let job = |mount: &str, path: &str| {
        json!({"id": "evil", "plugin": "kv-random", "secret": {"mount": mount, "path": path}, "interval": "1h",
               "settings": {"field": "password"}})
    };
    let seed = |extra: Value| {
        let mut seed = json!({"type": "kv_random", "path": "create", "field": "password", "interval_seconds": 60});
        seed.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        seed
    };
    let refused: Vec<(&str, &str, Option<Value>, &str)> = vec![
        ("GET", "/kv/policy/root?mount=sys", None, "is not a KV mount"),
        ("POST", "/kv/policy/pwned?mount=sys", Some(policy.clone()), "is not a KV mount"),
        ("POST", "/kv/policies/acl/pwned?mount=sys", Some(policy), "is not a KV mount"),
        ("POST", "/kv/evil?mount=sys/mounts", Some(json!({"data": {"type": "kv"}})), "is not a KV mount"),
        ("POST", "/kv/create?mount=auth/token", Some(json!({"data": {"policies": ["root"]}})), "is not a KV mount"),
        ("GET", "/kv/lookup-self?mount=auth/token", None, "is not a KV mount"),
        ("POST", "/kv/x?mount=cubbyhole", Some(json!({"data": {"k": "v"}})), "is not a KV mount"),
        ("GET", "/kv/x?mount=cubbyhole", None, "is not a KV mount"),
        ("POST", "/kv/app?mount=secret/data", Some(json!({"data": {"k": "v"}})), "lies inside the mount"),
        ("POST", "/kv/policy/x/rotate?mount=sys", Some(json!({"field": "policy"})), "is not a KV mount"),
        ("GET", "/kv/app/../../sys/policy/root", None, "`.` or `..` segment"),
        ("GET", "/kv/app/./x", None, "`.` or `..` segment"),
        ("GET", "/kv/%2e%2e/%2e%2e/sys/mounts", None, "escape"),
        ("GET", "/kv/app%2F..%2F..%2Fsys%2Fmounts", None, "escape"),
        ("POST", "/kv/a%5c..%5csys", Some(json!({"data": {"k": "v"}})), "escape"),
        ("GET", "/kv/app?mount=secret/data/..", None, "`.` or `..` segment"),
        ("GET", "/kv/app?mount=..%2Fsys", None, "`.` or `..` segment"),
        ("GET", "/kv/app?mount=secret%3Fx", None, "query"),
        ("GET", "/kv/a//b", None, "empty segment"),
        ("GET", "/dynamic/x?mount=..%2Fsys", None, "not a plain name"),
        ("POST", "/scheduler/jobs", Some(job("sys", "policy/evil")), "is not a KV mount"),
        ("POST", "/scheduler/jobs", Some(job("auth/token", "create")), "is not a KV mount"),
        ("POST", "/scheduler/jobs", Some(job("cubbyhole", "x")), "is not a KV mount"),
        ("POST", "/scheduler/jobs", Some(job("secret", "a/../../sys/policy/x")), "`.` or `..` segment"),
        ("POST", "/scheduler/jobs", Some(seed(json!({"mount": "auth/token"}))), "is not a KV mount"),
        ("POST", "/scheduler/jobs", Some(seed(json!({"mount": "sys", "path": "policy/x"}))), "is not a KV mount"),
        (
            "POST",
            "/scheduler/jobs",
            Some(json!({"type": "database_root", "connection": "*", "interval_seconds": 60})),
            "not a plain name",
        ),
    ];
    for (method, target, body, why) in refused {
        let (status, answer) = call(method, target, body).await;
        let message = answer["error"].as_str().unwrap_or_default();
        assert_eq!(status, 400, "{method} {target}: {answer}");
        assert!(message.contains(why), "{method} {target}: {message:?} should say {why:?}");
    }

    // Nothing reached Vault but reads (the mount lookups among them).
    let seen = server.take_request_log();
    // LIST is a read too (the kept API jobs are listed at startup).
    let writes: Vec<_> = seen.iter().filter(|r| r.method != "GET" && r.method != "LIST").collect();
    assert!(writes.is_empty(), "written through the API: {writes:?}");
    assert!(seen.iter().all(|r| !r.path.starts_with("sys/policy")), "{seen:?}");
    let http = rotator_tests::http_client(Duration::from_secs(10));
    let (_, policies) = rotator_tests::call(&http, &server, Some(ROOT), "LIST", "sys/policy", None).await;
    assert_eq!(policies["data"]["keys"], json!(["default", "root"]));
    let (_, jobs) = call("GET", "/scheduler/jobs", None).await;
    assert_eq!(jobs["jobs"], json!([]), "no job was added");

    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_configured_job_whose_secret_is_on_no_kv_mount_fails_before_writing_anything() {
    let server = dev_server().await;
    for mount in ["sys", "auth/token", "cubbyhole"] {
        let toml = format!(
            "[[jobs]]\nid = \"deputy\"\nplugin = \"kv-random\"\nsecret = {{ mount = \"{mount}\", path = \"policy/pwned\" }}\n\
             interval = \"1h\"\nsettings = {{ field = \"policy\" }}\n"
        );
        let (vault, jobs, _rt) = jobs(&server, &toml);
        server.start_request_log();
        let err = jobs[0].rotate(&rotator_tests::store(&vault), "test").await.expect_err(mount);
        assert!(err.to_string().contains("is not a KV mount"), "{mount}: {err}");
        let seen = server.take_request_log();
        // LIST is a read too (the kept API jobs are listed at startup).
        let writes: Vec<_> = seen.iter().filter(|r| r.method != "GET" && r.method != "LIST").collect();
        assert!(writes.is_empty(), "{mount}: written: {writes:?}");
    }
}
