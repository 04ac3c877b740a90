//! Fault injection and request counting on the dev server, as tests of
//! Vault clients use them: fault rules answer exactly the requests they pick
//! with Vault's own sealed / rate-limit / error bodies (errors.json), can be
//! changed at runtime, spares sys/health, and every answer is counted by
//! path and status.

use std::time::{Duration, Instant};

use rotator_devserver::{DevServer, DevServerOptions, FaultRules};
use rotator_tests::{ROOT, call, http_client};
use serde_json::{Value, json};

const ERRORS: &str = include_str!("../../../../shared/contracts/vault/errors.json");

async fn start(faults: Option<FaultRules>) -> (DevServer, reqwest::Client) {
    let http = http_client(Duration::from_secs(10));
    let options = DevServerOptions { addr: "127.0.0.1:0".parse().unwrap(), root_token: ROOT.into(), faults };
    let server = DevServer::start(options).await.expect("dev server starts");
    (server, http)
}

async fn get(server: &DevServer, http: &reqwest::Client, path: &str) -> (u16, Value) {
    call(http, server, Some(ROOT), "GET", path, None).await
}

fn documented(status: u16) -> Value {
    let entries: Vec<Value> = serde_json::from_str(ERRORS).unwrap();
    entries
        .into_iter()
        .find(|e| e["response_status"] == status && e["path"] == "*" && !e["response"].is_null())
        .map(|e| e["response"].clone())
        .unwrap_or_else(|| panic!("no documented body for {status}"))
}

#[tokio::test]
async fn a_plan_with_remaining_three_faults_exactly_three_answers() {
    let rules = FaultRules { rate: 1.0, statuses: vec![503], remaining: Some(3), ..Default::default() };
    let (server, http) = start(Some(rules)).await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let (status, body) = get(&server, &http, "secret/data/app").await;
        if status == 503 {
            assert_eq!(body, documented(503), "Vault's sealed body");
        }
        statuses.push(status);
    }
    assert_eq!(statuses, [503, 503, 503, 404, 404, 404]);
    let (status, _) = get(&server, &http, "sys/health").await;
    assert_eq!(status, 200);
    let stats = server.stats();
    assert_eq!((stats.total, stats.faults_injected), (7, 3));
    assert_eq!(stats.requests("secret/data/app"), 6);
    assert_eq!(stats.requests("/v1/sys/health"), 1);
    assert_eq!((stats.by_status[&503], stats.by_status[&404], stats.by_status[&200]), (3, 3, 1));
}

#[tokio::test]
async fn plans_filter_by_path_and_method_and_change_at_runtime() {
    let (server, http) = start(None).await;
    assert_eq!(get(&server, &http, "sys/mounts").await.0, 200);

    server.set_faults(Some(FaultRules {
        rate: 1.0,
        statuses: vec![429],
        path_prefix: Some("/v1/auth/token/".into()),
        methods: vec!["GET".into()],
        ..Default::default()
    }));
    let (status, body) = get(&server, &http, "auth/token/lookup-self").await;
    assert_eq!(status, 429);
    assert_eq!(body, json!({"errors": ["request path \"auth/token/lookup-self\": rate limit quota exceeded"]}));
    assert_eq!(get(&server, &http, "sys/mounts").await.0, 200, "other paths are untouched");
    let renew = http
        .post(format!("{}/v1/auth/token/renew-self", server.url()))
        .header("X-Vault-Token", ROOT)
        .send()
        .await
        .unwrap();
    assert_eq!(renew.status(), 400, "other methods are untouched (root is not renewable)");

    let delay = Duration::from_millis(150);
    server.set_faults(Some(FaultRules { rate: 1.0, delay: Some(delay), ..Default::default() }));
    let started = Instant::now();
    assert_eq!(get(&server, &http, "sys/mounts").await.0, 200, "a delay alone still answers normally");
    assert!(started.elapsed() >= delay);
    let started = Instant::now();
    assert_eq!(get(&server, &http, "sys/health").await.0, 200);
    assert!(started.elapsed() < delay, "sys/health is spared");

    server.set_faults(Some(FaultRules {
        rate: 1.0,
        statuses: vec![500],
        path_prefix: Some("sys/health".into()),
        ..Default::default()
    }));
    let (status, body) = get(&server, &http, "sys/health").await;
    assert_eq!(
        (status, body),
        (500, json!({"errors": ["1 error occurred:\n\t* internal error\n\n"]})),
        "unless targeted"
    );

    server.set_faults(Some(FaultRules { rate: 0.5, statuses: vec![502], ..Default::default() }));
    let mut faulted = 0;
    for _ in 0..200 {
        if get(&server, &http, "sys/mounts").await.0 == 502 {
            faulted += 1;
        }
    }
    assert!((50..=150).contains(&faulted), "about half: {faulted}");
    server.set_faults(None);
    assert_eq!(get(&server, &http, "sys/mounts").await.0, 200);
    assert_eq!(server.stats().requests("sys/mounts"), 204);
}
