//! Load on the dev server: 100 concurrent clients for 10 s on loopback,
//! each doing check-and-set read-modify-write increments of its own KV v2
//! counter and of one shared counter (retrying on CAS conflicts). No answer
//! may be an error other than a CAS 400, and the final counters must equal
//! the successful increments: no lost writes, no phantom ones. Every loop
//! is bounded both in time and in count.

use std::time::Duration;

use rotator_devserver::{DevServer, DevServerOptions};
use serde_json::{Value, json};
use tokio::time::Instant;

const ROOT: &str = "load-test-root";
const CLIENTS: usize = 100;
const RUN_FOR: Duration = Duration::from_secs(10);
/// Upper bound on each client's iterations, whatever the speed.
const MAX_ROUNDS: usize = 20_000;
/// Upper bound on CAS retries for one shared increment.
const MAX_RETRIES: usize = 1_000;
const CAS_MISMATCH: &str = "check-and-set parameter did not match the current version";

#[derive(Default)]
struct Tally {
    own: u64,
    shared: u64,
    cas_conflicts: u64,
    errors: Vec<String>,
}

async fn read(http: &reqwest::Client, url: &str) -> Result<(u64, u64), String> {
    let resp = http.get(url).header("X-Vault-Token", ROOT).send().await.map_err(|e| e.to_string())?;
    match resp.status().as_u16() {
        404 => Ok((0, 0)),
        200 => {
            let body: Value = resp.json().await.map_err(|e| e.to_string())?;
            let version = body["data"]["metadata"]["version"].as_u64().ok_or("no version")?;
            let count = body["data"]["data"]["count"].as_u64().ok_or("no count")?;
            Ok((version, count))
        }
        other => Err(format!("GET {url}: {other} {}", resp.text().await.unwrap_or_default())),
    }
}

/// Ok(true): written; Ok(false): CAS conflict; Err: anything else.
async fn write(http: &reqwest::Client, url: &str, cas: u64, count: u64) -> Result<bool, String> {
    let body = json!({"options": {"cas": cas}, "data": {"count": count}});
    let resp = http.post(url).header("X-Vault-Token", ROOT).json(&body).send().await.map_err(|e| e.to_string())?;
    match resp.status().as_u16() {
        200 => Ok(true),
        400 => {
            let body: Value = resp.json().await.map_err(|e| e.to_string())?;
            if body == json!({"errors": [CAS_MISMATCH]}) { Ok(false) } else { Err(format!("POST {url}: 400 {body}")) }
        }
        other => Err(format!("POST {url}: {other} {}", resp.text().await.unwrap_or_default())),
    }
}

async fn client(http: reqwest::Client, base: String, id: usize, deadline: Instant) -> Tally {
    let own_url = format!("{base}/v1/secret/data/load/client-{id}");
    let shared_url = format!("{base}/v1/secret/data/load/shared");
    let mut tally = Tally::default();
    for _ in 0..MAX_ROUNDS {
        if Instant::now() >= deadline || tally.errors.len() > 5 {
            break;
        }
        match read(&http, &own_url).await {
            Ok((version, count)) => match write(&http, &own_url, version, count + 1).await {
                Ok(true) => tally.own += 1,
                Ok(false) => tally.errors.push(format!("CAS conflict on client {id}'s own counter")),
                Err(e) => tally.errors.push(e),
            },
            Err(e) => tally.errors.push(e),
        }
        for _ in 0..MAX_RETRIES {
            let outcome = match read(&http, &shared_url).await {
                Ok((version, count)) => write(&http, &shared_url, version, count + 1).await,
                Err(e) => Err(e),
            };
            match outcome {
                Ok(true) => {
                    tally.shared += 1;
                    break;
                }
                Ok(false) => tally.cas_conflicts += 1,
                Err(e) => {
                    tally.errors.push(e);
                    break;
                }
            }
            if Instant::now() >= deadline {
                break;
            }
        }
    }
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn hundred_clients_increment_with_cas_and_lose_no_write() {
    rotator_core::vault::install_crypto_provider();
    let options =
        DevServerOptions { addr: "127.0.0.1:0".parse().unwrap(), root_token: ROOT.into(), ..Default::default() };
    let server = DevServer::start(options).await.expect("dev server starts");
    let http =
        reqwest::Client::builder().timeout(Duration::from_secs(20)).pool_max_idle_per_host(CLIENTS).build().unwrap();
    let deadline = Instant::now() + RUN_FOR;
    let tasks: Vec<_> = (0..CLIENTS).map(|id| tokio::spawn(client(http.clone(), server.url(), id, deadline))).collect();
    let mut tallies = Vec::new();
    for task in tasks {
        tallies.push(task.await.expect("client task"));
    }

    let errors: Vec<&String> = tallies.iter().flat_map(|t| &t.errors).collect();
    assert!(errors.is_empty(), "{} errors, first: {:?}", errors.len(), errors.first());
    for (id, tally) in tallies.iter().enumerate() {
        let (version, count) = read(&http, &format!("{}/v1/secret/data/load/client-{id}", server.url())).await.unwrap();
        assert_eq!(count, tally.own, "client {id}: every acknowledged increment, and only those");
        assert!(version >= count, "client {id}");
    }
    let shared_total: u64 = tallies.iter().map(|t| t.shared).sum();
    let (_, shared) = read(&http, &format!("{}/v1/secret/data/load/shared", server.url())).await.unwrap();
    assert_eq!(shared, shared_total, "no lost or phantom writes on the contended counter");
    let own_total: u64 = tallies.iter().map(|t| t.own).sum();
    let conflicts: u64 = tallies.iter().map(|t| t.cas_conflicts).sum();
    assert!(own_total >= CLIENTS as u64 && shared_total > 0, "the clients made progress: {own_total} / {shared_total}");
    let stats = server.stats();
    assert_eq!(
        stats.by_status.keys().copied().filter(|s| ![200, 400, 404].contains(s)).count(),
        0,
        "{:?}",
        stats.by_status
    );
    eprintln!(
        "load: {} requests in {:?}, {own_total} own increments, {shared_total} shared increments, {conflicts} CAS conflicts",
        stats.total, RUN_FOR
    );
    server.shutdown().await;
}
