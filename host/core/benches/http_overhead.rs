//! Overhead of one plugin HTTP call through the host versus the same request
//! made natively with reqwest, on loopback.
//!
//! The server is an axum app on 127.0.0.1 answering `GET /ping` with a small
//! JSON body. Three series, interleaved per iteration so that drift in the
//! machine's load hits all alike, each sample timed on its own:
//! - `plugin step, 1 GET`: a fresh run of the `http-probe` fixture whose
//!   `create` sends the GET through the `http` import (grant check, request
//!   built, shared client, capped read, scrub, audit record) and returns;
//! - `plugin step, no request`: the same run and step with an empty request
//!   list, the floor a step costs anyway;
//! - `native reqwest GET`: the same client, the same request, from the same
//!   thread, as `block_on` on the same runtime.
//!
//! The call's own overhead is the first minus the second, against the
//! third. Run: `cargo bench -p rotator-core --bench http_overhead`
//! (`-- --iterations N`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rotator_core::plugin::{Grants, HttpBridge, HttpGrant, RunConfig, Runtime, RuntimeOptions, StepContext};
use serde_json::{Value, json};

struct Stats {
    median: Duration,
    p99: Duration,
    mean: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    let total: Duration = samples.iter().sum();
    Stats { median: at(0.5), p99: at(0.99), mean: total / samples.len() as u32 }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn row(name: &str, s: &Stats) {
    println!("| {name:<26} | {:>9.1} | {:>9.1} | {:>9.1} |", us(s.median), us(s.p99), us(s.mean));
}

fn time(f: impl FnOnce()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1));
    let iterations: usize = flag("--iterations").and_then(|n| n.parse().ok()).unwrap_or(2_000);

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().route("/ping", axum::routing::get(|| async { axum::Json(json!({"ok": true})) }));
    rt.spawn(async move { axum::serve(listener, app).await });
    let url = format!("{origin}/ping");

    let runtime = Runtime::new(RuntimeOptions { max_concurrent_runs: 4, ..Default::default() }).unwrap();
    let path = rotator_test_artifacts::build_artifact("fixture_http_probe");
    let plugin = runtime.load_file(&path, None).unwrap_or_else(|e| panic!("{e}"));
    let bridge = {
        let _entered = rt.enter();
        HttpBridge::current()
    };
    let grant = HttpGrant { origin: origin.clone(), paths: vec![], methods: vec![] };
    let config = RunConfig {
        grants: Arc::new(Grants { http: vec![grant], ..Grants::default() }),
        http: Some(bridge.clone()),
        ..RunConfig::default()
    };
    let ctx = |requests: Value| StepContext {
        job_id: "bench".into(),
        rotation_id: "bench-rotation".into(),
        settings: json!({ "requests": requests }),
        current: None,
        attempt: 1,
    };
    let one = ctx(json!([{ "method": "GET", "url": url }]));
    let none = ctx(json!([]));
    let step = |c: &StepContext| {
        let mut run = plugin.start("bench", config.clone()).unwrap();
        let secret = run.create(c).unwrap();
        std::hint::black_box(secret);
    };
    let native = || {
        let body = rt.block_on(async { bridge.client.get(&url).send().await.unwrap().bytes().await.unwrap() });
        assert_eq!(&body[..], br#"{"ok":true}"#);
    };

    let (mut via_plugin, mut floor, mut direct) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..iterations + iterations / 10 {
        let (a, b, c) = (time(|| step(&one)), time(|| step(&none)), time(native));
        // The first tenth warms caches, connections and the allocator pool.
        if i >= iterations / 10 {
            via_plugin.push(a);
            floor.push(b);
            direct.push(c);
        }
    }
    let overhead: Vec<Duration> = via_plugin.iter().zip(&floor).map(|(a, b)| a.saturating_sub(*b)).collect();
    let (via_plugin, floor, direct, overhead) = (stats(via_plugin), stats(floor), stats(direct), stats(overhead));

    println!("{} over loopback, {iterations} iterations each (µs)", plugin.label());
    println!("| {:<26} | {:>9} | {:>9} | {:>9} |", "series", "median", "p99", "mean");
    println!("|{:-<28}|{:->11}|{:->11}|{:->11}|", "", "", "", "");
    row("plugin step, 1 GET", &via_plugin);
    row("plugin step, no request", &floor);
    row("the GET through the host", &overhead);
    row("native reqwest GET", &direct);
    println!(
        "ratio (GET through the host / native): median {:.2}x, p99 {:.2}x",
        us(overhead.median) / us(direct.median),
        us(overhead.p99) / us(direct.p99)
    );
}
