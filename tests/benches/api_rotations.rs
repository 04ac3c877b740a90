//! Rotations per second end to end, through the operator API and through
//! the scheduler, beside a Python peer in the same run (issue 15).
//!
//! - API: `POST /kv/bench/p<n>/rotate` (kv-random, the seed service's
//!   route) over 200 secrets, 1, 8 and 32 keep-alive clients, each on
//!   secrets of its own, the median of three runs of `--rotations` each.
//! - Peer: `benches/hvac_peer.py` (hvac: read, new password, check-and-set
//!   write) on the same secrets with the same clients, against the same dev
//!   server, in the same run.
//! - Scheduler: `--jobs` kv-random jobs that are all due at start, rotated
//!   by the daemon's own loop; the time until the last has rotated.
//! - Vault requests per rotation from the daemon's own metric
//!   (`rotator_vault_requests_total`), and the resident memory each
//!   scheduled job adds (the process's `VmRSS`, daemon and dev server).
//!
//! The process logs as the `rotator` binary does by default (`info`), to a
//! sink: the test harness's capture (`debug`, into a buffer that grows for
//! the whole run) would time its own reallocations, not the daemon. Each
//! client's HTTP client (trust roots loaded) is built before the clock starts.
//!
//! `scripts/bench-rotations.sh` builds it in release, makes a throwaway
//! virtual environment with hvac (`PEER_PYTHON`) and runs it.

use std::time::{Duration, Instant};

use rotator_core::secret::SecretJson;
use rotator_tests::api::{Api, ApiSetup};
use rotator_tests::{ROOT, dev_server, http_client};
use serde_json::json;

/// The allocator the `rotator` binary runs with (see its `main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PATHS: usize = 200;
const RUNS: usize = 3;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|n| n.parse().ok()).unwrap_or(default)
}

/// The sum of the series of `metric` in the daemon's `/metrics`, with
/// `filter` in their labels.
async fn metric(api: &Api, metric: &str, filter: &str) -> f64 {
    let text = api.http.get(format!("{}/metrics", api.base)).bearer_auth(&api.token).send().await.unwrap();
    let text = text.text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with(metric) && l.contains(filter))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

/// `rotations` API rotations from `clients` clients: rotations per second.
async fn api_run(api: &Api, clients: usize, rotations: usize) -> f64 {
    let per_client = rotations / clients;
    let https: Vec<_> = (0..clients).map(|_| http_client(Duration::from_secs(60))).collect();
    let started = Instant::now();
    let tasks: Vec<_> = https
        .into_iter()
        .enumerate()
        .map(|(i, http)| {
            let (base, token) = (api.base.clone(), api.token.clone());
            tokio::spawn(async move {
                let mine: Vec<usize> = (0..PATHS).filter(|p| p % clients == i).collect();
                for n in 0..per_client {
                    let url = format!("{base}/kv/bench/p{}/rotate", mine[n % mine.len()]);
                    let body = json!({ "field": "password", "length": 32 });
                    let resp = http.post(url).bearer_auth(&token).json(&body).send().await.unwrap();
                    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    (per_client * clients) as f64 / started.elapsed().as_secs_f64()
}

/// The peer's rotations per second, as it prints them.
fn peer_run(url: &str, clients: usize, rotations: usize) -> f64 {
    let python = std::env::var("PEER_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../benches/hvac_peer.py");
    let out = std::process::Command::new(&python)
        .args([script, url, ROOT, &clients.to_string(), &rotations.to_string(), &PATHS.to_string()])
        .output()
        .unwrap_or_else(|e| panic!("{python}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the peer failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    let line = text.lines().last().unwrap_or_default();
    line.strip_prefix("rotations_per_second ").and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{text}"))
}

/// This process's resident memory (`VmRSS`), in bytes.
fn rss_bytes() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib =
        status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()?.parse().ok());
    kib.unwrap_or(0i64) * 1024
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let rotations = arg("--rotations", 2000);
    let scheduled = arg("--jobs", 2000);
    // Installed first, so the harness's own capture (`Api::start_with`) finds
    // a subscriber in place and stays out.
    let mut filter = tracing_subscriber::EnvFilter::new("info");
    for directive in rotator_core::secret::QUIET_LOG_TARGETS {
        filter = filter.add_directive(directive.parse().expect("a valid directive"));
    }
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_writer(std::io::sink).init();
    let server = dev_server().await;
    let api = Api::start_with(&server, ApiSetup::default()).await;
    let vault = rotator_core::vault::VaultClient::new(rotator_core::vault::VaultOptions::new(
        server.url(),
        ROOT.to_owned().into(),
    ))
    .unwrap();
    for p in 0..PATHS {
        let seed = SecretJson::new(json!({ "username": "app", "password": "initial" }).to_string());
        vault.kv_write("secret", &format!("bench/p{p}"), &seed, None).await.unwrap();
    }
    api_run(&api, 8, 400).await; // warm-up: the plugin compiled, connections open

    println!(
        "| clients | rotator rotations/s (median of {RUNS}) | Python peer (hvac) | ratio | Vault requests per rotation |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: |");
    for clients in [1, 8, 32] {
        let before = metric(&api, "rotator_vault_requests_total", "").await;
        let mut ours = Vec::new();
        for _ in 0..RUNS {
            ours.push(api_run(&api, clients, rotations).await);
        }
        let requests = metric(&api, "rotator_vault_requests_total", "").await - before;
        let url = server.url();
        let peer = tokio::task::spawn_blocking(move || {
            median((0..RUNS).map(|_| peer_run(&url, clients, rotations)).collect())
        });
        let (ours, peer) = (median(ours), peer.await.unwrap());
        let per_rotation = requests / (RUNS * (rotations / clients) * clients) as f64;
        println!("| {clients} | {ours:.0} | {peer:.0} | {:.1}× | {per_rotation:.1} |", ours / peer);
    }
    api.stop().await;

    // Through the scheduler: every job due at once, rotated by the daemon's loop.
    let mut jobs = String::new();
    for n in 0..scheduled {
        jobs.push_str(&format!(
            "[[jobs]]\nid = \"s{n}\"\nplugin = \"kv-random\"\nsecret = {{ path = \"sched/s{n}\" }}\ninterval = \"1h\"\n\
             settings = {{ field = \"password\" }}\n"
        ));
    }
    let rss_before = rss_bytes();
    let started = Instant::now();
    let api = Api::start_with(&server, ApiSetup { jobs, ..ApiSetup::default() }).await;
    let filter = "outcome=\"rotated\"";
    while metric(&api, "rotator_rotations_total", filter).await < scheduled as f64 {
        assert!(started.elapsed() < Duration::from_secs(600), "the scheduled jobs did not all rotate in 10 minutes");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = started.elapsed();
    let per_job = (rss_bytes() - rss_before) as f64 / scheduled as f64;
    let requests = metric(&api, "rotator_vault_requests_total", "").await;
    println!();
    println!(
        "scheduler: {scheduled} kv-random jobs due at start rotated in {:.2} s ({:.0}/s, startup included), {:.1} Vault requests per rotation (loading included), {:.1} KiB of resident memory per job (daemon and dev server together)",
        took.as_secs_f64(),
        scheduled as f64 / took.as_secs_f64(),
        requests / scheduled as f64,
        per_job / 1024.0
    );
    api.stop().await;
}
