//! Per-rotation plugin overhead: kv-random as a wasm component versus the
//! same logic compiled natively.
//!
//! One wasm iteration = fresh store + instantiate + create + set + test +
//! finish + drop, exactly what a rotation does around its Vault I/O (which is
//! excluded). The native iteration runs the same policy code (the plugin's
//! own `policy.rs`, compiled for the host) with the same JSON handling.
//! Each iteration is timed on its own so median and p99 are real.
//!
//! Run: `cargo bench -p rotator-core --bench plugin_overhead`
//! (`-- --iterations N` to change the sample count). With `-- --plugin
//! FILE`, the wasm part measures that component instead, with settings
//! `{"field": "password", "length": 32}` (the Python and JavaScript examples
//! of `plugins/examples/` take them); the native twin is kv-random's alone.

use std::time::{Duration, Instant};

use rotator_core::plugin::{CurrentSecret, RunConfig, Runtime, RuntimeOptions, StepContext};
use rotator_core::secret::SecretJson;
use serde_json::{Map, Value, json};

// The plugin's own settings and policy code, compiled natively.
#[path = "../../../plugins/kv-random/src/policy.rs"]
#[allow(dead_code)]
mod policy;
#[path = "../../../plugins/kv-random/src/settings.rs"]
mod settings;

fn settings() -> Value {
    json!({
        "field": "password",
        "length": 32,
        "preserve_fields": { "username": "app" },
        "rules": [
            { "charset": "abcdefghijklmnopqrstuvwxyz", "min_chars": 1 },
            { "charset": "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "min_chars": 1 },
            { "charset": "0123456789", "min_chars": 1 }
        ]
    })
}

const CURRENT: &str = r#"{"username":"app","password":"old-password-value-0123456789","host":"db.internal"}"#;

/// The native twin of kv-random's create + test. Like the plugin, which keeps
/// what `create` parsed for `test`, it parses the settings once.
fn native_rotation(settings_json: &str, current: &str) -> String {
    let job = serde_json::from_str::<settings::Settings>(settings_json).unwrap().check().unwrap();
    let mut data: Map<String, Value> = serde_json::from_str(current).unwrap();
    for (k, v) in &job.preserve_fields {
        data.insert(k.clone(), v.clone());
    }
    data.insert(job.field.clone(), Value::String(job.policy.generate().unwrap()));
    let pending = Value::Object(data).to_string();
    // test
    let parsed: Map<String, Value> = serde_json::from_str(&pending).unwrap();
    job.policy.check(parsed[&job.field].as_str().unwrap()).unwrap();
    pending
}

struct Stats {
    median: Duration,
    p90: Duration,
    p99: Duration,
    max: Duration,
    mean: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    let total: Duration = samples.iter().sum();
    Stats {
        median: at(0.5),
        p90: at(0.9),
        p99: at(0.99),
        max: *samples.last().unwrap(),
        mean: total / samples.len() as u32,
    }
}

fn measure(iterations: usize, mut f: impl FnMut()) -> Stats {
    for _ in 0..iterations / 10 {
        f();
    }
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let t = Instant::now();
        f();
        samples.push(t.elapsed());
    }
    stats(samples)
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn report(name: &str, s: &Stats) {
    println!(
        "{name:<28} median {:>8.2} µs   p90 {:>8.2} µs   p99 {:>8.2} µs   max {:>9.2} µs   mean {:>8.2} µs",
        us(s.median),
        us(s.p90),
        us(s.p99),
        us(s.max),
        us(s.mean)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1));
    let iterations = flag("--iterations").and_then(|n| n.parse().ok()).unwrap_or(20_000);
    let file = flag("--plugin");
    // `cargo bench` passes `--bench`; nothing else is expected.
    let runtime = Runtime::new(RuntimeOptions { max_concurrent_runs: 16, ..Default::default() }).unwrap();
    let plugin = match file {
        Some(path) => runtime.load_file(std::path::Path::new(path), None).unwrap_or_else(|e| panic!("{e}")),
        None => runtime.load_builtin("kv-random", None).unwrap(),
    };
    let job_settings = if file.is_some() { json!({"field": "password", "length": 32}) } else { settings() };
    let config = RunConfig::default();
    let ctx = StepContext {
        job_id: "bench".into(),
        rotation_id: "bench-rotation".into(),
        settings: job_settings,
        current: Some(CurrentSecret { data: SecretJson::new(CURRENT.into()), version: Some(7) }),
        attempt: 1,
    };
    println!(
        "{} per-rotation overhead, {iterations} iterations, pooling allocator: {}",
        plugin.label(),
        runtime.is_pooling()
    );

    let wasm = measure(iterations, || {
        let mut run = plugin.start("bench", config.clone()).unwrap();
        let pending = run.create(&ctx).unwrap();
        run.set(&ctx, &pending).unwrap();
        run.test(&ctx, &pending).unwrap();
        run.finish(&ctx, &pending).unwrap();
    });
    report("wasm (instantiate+4 steps)", &wasm);

    let instantiate_only = measure(iterations, || {
        drop(plugin.start("bench", config.clone()).unwrap());
    });
    report("wasm instantiate+drop only", &instantiate_only);

    // Where the time goes: steps on one warm instance (create is left out: on
    // a reused instance every new value piles up in the run's redactor).
    let mut warm = plugin.start("bench", config.clone()).unwrap();
    let pending = warm.create(&ctx).unwrap();
    report("  warm set", &measure(iterations, || warm.set(&ctx, &pending).unwrap()));
    report("  warm test", &measure(iterations, || warm.test(&ctx, &pending).unwrap()));
    drop(warm);
    if file.is_some() {
        return;
    }

    let settings_json = settings().to_string();
    let native = measure(iterations, || {
        std::hint::black_box(native_rotation(&settings_json, CURRENT));
    });
    report("native (same logic)", &native);

    println!(
        "ratio wasm/native: median {:.1}x, p99 {:.1}x",
        us(wasm.median) / us(native.median),
        us(wasm.p99) / us(native.p99)
    );
    let target = wasm.median <= Duration::from_micros(25) && wasm.p99 <= Duration::from_micros(100);
    println!("target (median ≤ 25 µs, p99 ≤ 100 µs): {}", if target { "met" } else { "NOT met" });
}
