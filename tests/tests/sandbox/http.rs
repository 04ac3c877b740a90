//! The `http` import end to end: the `http-probe` fixture (a real 0.2.0
//! component) sends the requests its settings list through the host to a
//! loopback server the test runs ([`super::http_server`]), which records
//! what actually arrived. Proves that handles are filled in only as the
//! request leaves, that the plugin never gets a value back (scrubbed
//! echoes, captures as handles), that malformed requests are refused
//! unsent, and that every hostile answer is a typed error the run survives.

use std::sync::Arc;
use std::time::Duration;

use rotator_core::plugin::{
    CallOutcome, CurrentSecret, Failure, Grants, HostCall, HttpBridge, HttpGrant, Plugin, RunConfig, RunLimits,
    Runtime, RuntimeOptions, SecretAccess, StepContext, StepError,
};
use rotator_core::secret::SecretJson;
use rotator_test_artifacts::build_artifact;
use rotator_tests::logs;
use serde_json::{Value, json};

use super::http_server::{ISSUED, Server};

const PLUGIN: &str = "fixture-http-probe@0.0.1";
const USER: &str = "app-user";
const PASSWORD: &str = "hunter2-Correct \"Horse\"&Battery";
const TOKEN: &str = "tok-8f3a91c2d4e5";
const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

/// A loopback server, the probe plugin, and the runtime both live on.
struct Bench {
    rt: tokio::runtime::Runtime,
    server: Server,
    plugin: Plugin,
}

impl Bench {
    fn start() -> Self {
        logs::capture();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let server = rt.block_on(Server::start());
        let runtime = Runtime::new(RuntimeOptions { max_concurrent_runs: 4, ..Default::default() }).unwrap();
        let plugin = runtime.load_file(&build_artifact("fixture_http_probe"), None).unwrap();
        Self { rt, server, plugin }
    }

    /// A run config granting the whole server, secrets as handles.
    fn config(&self, limits: RunLimits) -> RunConfig {
        let grant = HttpGrant { origin: self.server.origin.clone(), paths: vec![], methods: vec![] };
        self.config_with(Grants { http: vec![grant], ..Grants::default() }, limits)
    }

    fn config_with(&self, grants: Grants, limits: RunLimits) -> RunConfig {
        let _entered = self.rt.enter();
        RunConfig {
            limits,
            grants: Arc::new(grants),
            http: Some(HttpBridge::current()),
            access: SecretAccess::Handles { visible: vec![] },
            ..RunConfig::default()
        }
    }

    /// `create` with `settings`, as job `job`: the new secret and the calls.
    fn create(&self, job: &str, config: RunConfig, settings: Value) -> (Result<Value, StepError>, Vec<HostCall>) {
        let mut run = self.plugin.start(job, config).unwrap();
        let result = run.create(&ctx(job, settings)).map(|s| serde_json::from_str(s.expose()).unwrap());
        (result, run.host_calls().to_vec())
    }

    /// The results of `requests`, sent in `create` with full grants.
    fn results(&self, job: &str, requests: Value) -> Vec<Value> {
        let (secret, _) = self.create(job, self.config(RunLimits::default()), json!({ "requests": requests }));
        results(&secret.unwrap())
    }
}

fn ctx(job: &str, settings: Value) -> StepContext {
    let data = json!({"user": USER, "password": PASSWORD, "token": TOKEN, "aws": AWS_SECRET}).to_string();
    StepContext {
        job_id: job.into(),
        rotation_id: "r1".into(),
        settings,
        current: Some(CurrentSecret { data: SecretJson::parse(data).unwrap(), version: Some(3) }),
        attempt: 1,
    }
}

fn results(secret: &Value) -> Vec<Value> {
    secret["results"].as_array().cloned().unwrap()
}

/// No value of the current secret, in any form, in `text`.
fn assert_no_value(what: &str, text: &str) {
    let encoded: String = PASSWORD.replace(' ', "+").replace('"', "%22").replace('&', "%26");
    let escaped = PASSWORD.replace('"', "\\\"");
    for value in [PASSWORD, TOKEN, AWS_SECRET, &encoded, &escaped, ISSUED] {
        assert!(!text.contains(value), "{what} holds a secret value: {text}");
    }
}

fn error_of(result: &Value) -> &str {
    result["error"].as_str().unwrap_or_else(|| panic!("expected an error, got {result}"))
}

#[test]
fn handles_are_filled_in_as_the_request_leaves_and_scrubbed_from_what_comes_back() {
    let b = Bench::start();
    let url = b.server.url("/echo");
    let results = b.results(
        "http-fill",
        json!([
            {"method": "POST", "url": url, "headers": [["x-api-key", {"handle": "token"}]],
             "query": [["pw", {"handle": "password"}], ["plain", "yes"]],
             "body": {"json": {"document": "{\"name\":\"n\",\"auth\":{\"pw\":null}}", "secrets": [["/auth/pw", {"handle": "password"}]]}}},
            {"method": "PUT", "url": url, "body": {"form": [["password", {"handle": "password"}], ["user", "plain"]]}},
            {"method": "GET", "url": url, "auth": {"basic": [{"handle": "user"}, {"handle": "password"}]}},
            {"method": "GET", "url": url, "auth": {"bearer": {"handle": "token"}}},
        ]),
    );
    let seen = b.server.seen();
    assert_eq!(seen.len(), 4, "{seen:?}");
    // What arrived carries the values.
    assert_eq!(seen[0].header("x-api-key"), Some(TOKEN));
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(seen[0].target.split_once('?').unwrap().1.as_bytes()).into_owned().collect();
    assert_eq!(query, [("pw".to_owned(), PASSWORD.to_owned()), ("plain".to_owned(), "yes".to_owned())]);
    let body: Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(body, json!({"name": "n", "auth": {"pw": PASSWORD}}));
    assert_eq!(seen[0].header("content-type"), Some("application/json"));
    assert_eq!(seen[1].method, "PUT");
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&seen[1].body).into_owned().collect();
    assert_eq!(form, [("password".to_owned(), PASSWORD.to_owned()), ("user".to_owned(), "plain".to_owned())]);
    let basic = reqwest::Client::new().get(&url).basic_auth(USER, Some(PASSWORD)).build().unwrap();
    assert_eq!(seen[2].header("authorization"), basic.headers()["authorization"].to_str().ok());
    assert_eq!(seen[3].header("authorization"), Some(format!("Bearer {TOKEN}").as_str()));
    // What the plugin got back names handles, never values.
    for r in &results {
        assert_eq!(r["status"], 200, "{r}");
        assert_no_value("a scrubbed echo", &r.to_string());
    }
    let echoed = |r: &Value, name: &str| -> String {
        let h = r["headers"].as_array().unwrap().iter().find(|h| h[0] == name).unwrap();
        h[1].as_str().unwrap().to_owned()
    };
    assert!(echoed(&results[0], "x-echo-headers").contains("rotator-handle:current/token"), "{}", results[0]);
    assert!(echoed(&results[0], "x-echo-target").contains("pw=rotator-handle"), "{}", results[0]);
    assert!(
        results[0]["body"].as_str().unwrap().contains("\"pw\":\"rotator-handle:current/password\""),
        "{}",
        results[0]
    );
    assert!(results[1]["body"].as_str().unwrap().starts_with("password=rotator-handle"), "{}", results[1]);
    assert_eq!(echoed(&results[2], "x-echo-authorization"), "Basic rotator-handle:derived");
    assert_eq!(echoed(&results[3], "x-echo-authorization"), "Bearer rotator-handle:current/token");
    assert_no_value("the captured logs", &logs::text());
}

#[test]
fn a_capture_in_create_becomes_a_field_of_the_new_secret_and_the_plugin_gets_a_handle() {
    let b = Bench::start();
    let requests = json!([
        {"method": "POST", "url": b.server.url("/key"), "captures": [["api_key", "json", "/key/secret"], ["key_id", "json", "/key/id"]]},
        {"method": "GET", "url": b.server.url("/xml"), "captures": [["aws_secret", "xml", "R/K/Secret"]]},
        {"method": "GET", "url": b.server.url("/echo"), "headers": [["x-new-key", {"captured": "api_key"}]]},
    ]);
    let (secret, calls) = b.create("http-capture", b.config(RunLimits::default()), json!({ "requests": requests }));
    let secret = secret.unwrap();
    assert_eq!(secret["api_key"], ISSUED);
    assert_eq!(secret["key_id"], "AKID-NEW");
    assert_eq!(secret["aws_secret"], ISSUED);
    let results = results(&secret);
    assert_eq!(
        results[0]["captured"],
        json!([["api_key", "rotator-handle:pending/api_key"], ["key_id", "rotator-handle:pending/key_id"]])
    );
    assert_eq!(results[1]["captured"], json!([["aws_secret", "rotator-handle:pending/aws_secret"]]));
    // The capture's own response is scrubbed of what it captured.
    assert_no_value("what the plugin got", &Value::Array(results.clone()).to_string());
    assert!(results[0]["body"].as_str().unwrap().contains("rotator-handle:pending/"), "{}", results[0]);
    // A captured handle is usable at once; the server gets the value.
    assert_eq!(b.server.seen()[2].header("x-new-key"), Some(ISSUED));
    assert_no_value("the host calls", &format!("{calls:?}"));
    assert_no_value("the captured logs", &logs::text());
}

#[test]
fn malformed_requests_and_captures_outside_create_are_refused_unsent() {
    let b = Bench::start();
    let url = b.server.url("/echo");
    let many: Vec<Value> = (0..65).map(|i| json!([format!("x-h{i}"), "v"])).collect();
    let results = b.results(
        "http-malformed",
        json!([
            {"method": "GET", "url": url, "headers": [["Host", "evil.example"]]},
            {"method": "GET", "url": url, "headers": [["transfer-encoding", "chunked"]]},
            {"method": "GET", "url": url, "headers": [["proxy-authorization", "x"]]},
            {"method": "GET", "url": url, "headers": [["bad name", "x"]]},
            {"method": "GET", "url": url, "headers": [["x-h", "line\r\nbreak"]]},
            {"method": "GET", "url": url, "headers": [["x-h", {"raw": "rotator-handle:current/nope"}]]},
            {"method": "GET", "url": url, "headers": [["x-h", {"raw": "rotator-handle:other-run/password"}]]},
            {"method": "POST", "url": url, "body": {"json": {"document": "{}", "secrets": [["/missing", {"handle": "password"}]]}}},
            {"method": "GET", "url": url, "headers": many},
            {"method": "POST", "url": url, "body": {"bytes": "x".repeat((1 << 20) + 1)}},
            {"method": "GET", "url": url, "auth": {"bearer": "t"}, "headers": [["authorization", "Basic x"]]},
        ]),
    );
    assert_eq!(results.len(), 11);
    for r in &results {
        assert_eq!(error_of(r), "invalid-request", "{r}");
    }
    assert!(results[0]["message"].as_str().unwrap().contains("`Host`"), "{}", results[0]);
    // A capture outside `create` is refused too.
    let settings = json!({"set_requests": [{"method": "GET", "url": b.server.url("/key"), "captures": [["k", "json", "/key/secret"]]}]});
    let mut run = b.plugin.start("http-malformed", b.config(RunLimits::default())).unwrap();
    let pending = SecretJson::parse(json!({"k": "pending-value-1"}).to_string()).unwrap();
    let err = run.set(&ctx("http-malformed", settings), &pending).unwrap_err();
    match &err.failure {
        Failure::Permanent(m) => assert!(m.contains("invalid-request") && m.contains("only in `create`"), "{m}"),
        other => panic!("expected the probe's report, got {other:?}"),
    }
    assert!(b.server.seen().is_empty(), "nothing was sent: {:?}", b.server.seen());
}

#[test]
fn redirects_and_error_statuses_come_back_as_responses() {
    let b = Bench::start();
    let (secret, calls) = b.create(
        "http-status",
        b.config(RunLimits::default()),
        json!({"requests": [
            {"method": "GET", "url": b.server.url("/redirect")},
            {"method": "GET", "url": b.server.url("/status/404?secretish=q")},
            {"method": "DELETE", "url": b.server.url("/status/500")},
        ]}),
    );
    let results = results(&secret.unwrap());
    assert_eq!(results[0]["status"], 302);
    assert_eq!(b.server.seen().len(), 3, "the redirect was not followed");
    assert_eq!(results[1]["status"], 404);
    assert_eq!(results[2]["status"], 500);
    let origin = &b.server.origin;
    assert_eq!(calls.len(), 3);
    assert_eq!((calls[0].function, calls[0].operation), ("http.send", "get"));
    assert_eq!(calls[0].path, format!("{origin}/redirect"));
    assert_eq!(calls[0].outcome, CallOutcome::Ok);
    assert_eq!(calls[1].path, format!("{origin}/status/404"), "never the query");
    assert_eq!(calls[1].outcome, CallOutcome::Failed(Some(404)));
    assert_eq!((calls[2].operation, &calls[2].outcome), ("delete", &CallOutcome::Failed(Some(500))));
    for c in &calls {
        let detail = c.detail.as_deref().unwrap();
        assert!(detail.ends_with(" ms") && detail.contains(" in "), "{detail}");
    }
    assert_eq!(logs::lines_with(&["plugin http call failed: 404 in", "job=http-status", "method=\"get\""]).len(), 1);
}

#[test]
fn hostile_answers_are_typed_errors_and_the_run_goes_on() {
    let b = Bench::start();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let refused = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut grants = Grants::default();
    for origin in [b.server.origin.clone(), refused.clone()] {
        grants.http.push(HttpGrant { origin, paths: vec![], methods: vec![] });
    }
    // The step has 5 s; the second stalled body has no timeout of its own,
    // so what is left of the step bounds it, less the reserve the plugin
    // keeps to handle the error: the step still ends with an answer.
    let limits = RunLimits { step_timeout: Duration::from_secs(5), ..RunLimits::default() };
    let (secret, calls) = b.create(
        "http-hostile",
        b.config_with(grants, limits),
        json!({"requests": [
            {"method": "GET", "url": b.server.url("/big")},
            {"method": "GET", "url": b.server.url("/stall"), "timeout_ms": 300},
            {"method": "GET", "url": b.server.url("/bad-header")},
            {"method": "GET", "url": format!("{refused}/x")},
            {"method": "GET", "url": b.server.url("/stall")},
            {"method": "GET", "url": b.server.url("/echo")},
        ]}),
    );
    let results = results(&secret.expect("the step survives every answer"));
    let kinds: Vec<&str> = results[..5].iter().map(error_of).collect();
    assert_eq!(kinds, ["too-large", "timeout", "bad-response", "connect", "timeout"]);
    assert!(results[2]["message"].as_str().unwrap().contains("x-bad"), "{}", results[2]);
    assert_eq!(results[5]["status"], 200, "the run still works: {}", results[5]);
    let details: Vec<&str> = calls.iter().map(|c| c.detail.as_deref().unwrap()).collect();
    assert_eq!(&details[..5], ["too-large", "timeout", "bad-response", "connect", "timeout"]);
    assert!(logs::lines_with(&["plugin http call failed: connect", "job=http-hostile"]).len() == 1);
}

#[test]
fn requests_outside_the_grants_are_denied_recorded_and_logged() {
    let b = Bench::start();
    let grant = HttpGrant { origin: b.server.origin.clone(), paths: vec!["/echo".into()], methods: vec!["GET".into()] };
    let grants = Grants { http: vec![grant], ..Grants::default() };
    let (secret, calls) = b.create(
        "http-denied",
        b.config_with(grants, RunLimits::default()),
        json!({"requests": [
            {"method": "GET", "url": b.server.url("/key?token=abc")},
            {"method": "POST", "url": b.server.url("/echo")},
            {"method": "GET", "url": b.server.url("/echo")},
        ]}),
    );
    let first = results(&secret.unwrap());
    assert_eq!(error_of(&first[0]), "denied");
    assert_eq!(error_of(&first[1]), "denied");
    assert_eq!(first[2]["status"], 200);
    assert_eq!(b.server.seen().len(), 1, "only the granted request left");
    assert_eq!(calls[0].outcome, CallOutcome::Denied);
    let origin = &b.server.origin;
    let reason = "not in the job's grants";
    assert_eq!(logs::denials("http-denied", PLUGIN, reason, "get", &format!("{origin}/key")), 1);
    assert_eq!(logs::denials("http-denied", PLUGIN, reason, "post", &format!("{origin}/echo")), 1);
    // With no bridge at all (no http grant), every request is denied.
    let config = RunConfig { http: None, ..b.config(RunLimits::default()) };
    let (secret, calls) =
        b.create("http-none", config, json!({"requests": [{"method": "GET", "url": b.server.url("/echo")}]}));
    assert_eq!(error_of(&results(&secret.unwrap())[0]), "denied");
    assert_eq!(calls[0].outcome, CallOutcome::Denied);
    assert_eq!(logs::denials("http-none", PLUGIN, reason, "get", &format!("{origin}/echo")), 1);
}

#[test]
fn aws_sigv4_is_signed_by_the_host_with_a_handle_for_the_secret_key() {
    let b = Bench::start();
    let results = b.results(
        "http-sigv4",
        json!([{"method": "POST", "url": b.server.url("/echo?Action=ListUsers"), "body": {"bytes": "Version=2010-05-08"},
                "auth": {"sigv4": {"key_id": "AKIDEXAMPLE", "secret": {"handle": "aws"}, "token": {"handle": "token"},
                                   "region": "us-east-1", "service": "iam"}}}]),
    );
    let seen = &b.server.seen()[0];
    let auth = seen.header("authorization").unwrap();
    assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"), "{auth}");
    assert!(
        auth.contains("/us-east-1/iam/aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=")
    );
    assert_eq!(seen.header("x-amz-security-token"), Some(TOKEN));
    assert!(seen.header("x-amz-date").is_some());
    assert_no_value("what the plugin got", &results[0].to_string());
}
