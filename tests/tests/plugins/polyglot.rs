//! Plugins written in Python and JavaScript: the examples under
//! `plugins/examples/` (`python-kv` built by componentize-py, `js-kv` by
//! componentize-js) are built by `scripts/build-polyglot.sh`, which installs
//! the tools it needs, then loaded from their files like any plugin. Each
//! must pass the conformance harness, rotate a secret on the dev server
//! (field replaced, other fields kept, version bumped, one log line through
//! the `log` import), and turn its language's errors into typed
//! `rotate-error`s.
//!
//! Timings and sizes are printed (`--nocapture`), never asserted: they feed
//! `docs/plugins-python-js.md`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use rotator_core::plugin::{Failure, Plugin, RunConfig, Runtime, RuntimeOptions, StepContext};
use rotator_core::secret::SecretJson;
use rotator_plugin_test::{PluginTest, Status, names};
use rotator_tests::{dev_server, jobs_in, store};
use serde_json::{Value, json};
use tracing_subscriber::layer::SubscriberExt;

/// One example plugin: its folder under `plugins/examples/`, which is also
/// its job's id in `plugins/examples/polyglot.toml`.
pub(super) struct Example {
    pub(super) name: &'static str,
    warm: OnceLock<()>,
}

static PYTHON: Example = Example::new("python-kv");
static JS: Example = Example::new("js-kv");

/// `settings.length` of both jobs in `polyglot.toml`.
const LENGTH: usize = 24;

pub(super) fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/examples")
}

/// Run the build script once per test binary; panic with its output if it fails.
fn build() {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let result = BUILT.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/build-polyglot.sh");
        let out = std::process::Command::new("bash")
            .arg(&script)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} failed ({}):\n{}{}",
                script.display(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Load `wasm` through the default compilation cache and print its size and
/// how long the load took: a first compile when the cache had no entry yet.
fn warm_cache(name: &str, wasm: &Path) {
    let entries = || -> usize {
        let dir = rotator_core::plugin::default_cache_dir();
        dir.and_then(|d| std::fs::read_dir(d).ok()).map_or(0, Iterator::count)
    };
    let before = entries();
    let runtime = Runtime::new(RuntimeOptions { max_concurrent_runs: 2, ..RuntimeOptions::default() }).unwrap();
    let started = Instant::now();
    runtime.load_file(wasm, None).unwrap_or_else(|e| panic!("{e}"));
    let took = started.elapsed().as_secs_f64();
    let how = if entries() > before { "compiled (first load)" } else { "loaded from the compilation cache" };
    let size = std::fs::metadata(wasm).unwrap().len() as f64 / (1 << 20) as f64;
    eprintln!("{name}: {size:.1} MiB, {how} in {took:.1} s");
}

impl Example {
    /// The example in `plugins/examples/<name>`.
    pub(super) const fn new(name: &'static str) -> Self {
        Self { name, warm: OnceLock::new() }
    }

    /// The built component, built and compiled into rotator's compilation
    /// cache once per test binary, so the tests after the first load it from
    /// the cache instead of each compiling it again.
    pub(super) fn wasm(&self) -> PathBuf {
        build();
        let wasm = examples_dir().join("out").join(format!("{}.wasm", self.name));
        self.warm.get_or_init(|| warm_cache(self.name, &wasm));
        wasm
    }

    fn settings() -> Value {
        json!({"field": "password", "length": LENGTH})
    }
}

fn alphanumeric(value: &str) -> bool {
    value.chars().count() == LENGTH && value.chars().all(|c| c.is_ascii_alphanumeric())
}

/// Every line plugins logged in this binary (target `plugin`), as the job's
/// id and the message. The subscriber is global because plugin steps log
/// from the blocking pool.
pub(super) fn plugin_logs() -> Arc<Mutex<Vec<Line>>> {
    static LINES: OnceLock<Arc<Mutex<Vec<Line>>>> = OnceLock::new();
    LINES
        .get_or_init(|| {
            let lines = Arc::new(Mutex::new(Vec::new()));
            let layer = PluginLines(lines.clone());
            tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
                .expect("no other subscriber in this binary");
            lines
        })
        .clone()
}

#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Line {
    pub(super) job: String,
    pub(super) message: String,
}

struct PluginLines(Arc<Mutex<Vec<Line>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for PluginLines {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() == "plugin" {
            let mut line = Line::default();
            event.record(&mut line);
            self.0.lock().unwrap().push(line);
        }
    }
}

impl tracing::field::Visit for Line {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "job" {
            self.job = value.to_owned();
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "job" => self.job = format!("{value:?}"),
            _ => {}
        }
    }
}

async fn conforms(example: &Example) {
    let conformance = PluginTest::new(example.wasm().display().to_string())
        .settings(Example::settings())
        .initial_secret(json!({"username": "app", "password": "initial-pw-5d1c"}))
        .run()
        .await;
    conformance.assert_conforms();
    let report = &conformance.report;
    assert_eq!(report.plugin.label, format!("{}@0.1.0", example.name));
    assert!(report.plugin.capabilities.is_empty(), "{report}");
    for name in [names::IDEMPOTENT, names::CRASH_RESUME, names::PLAN, names::CAPABILITIES] {
        assert_eq!(conformance.check(name).unwrap().status, Status::Pass, "{name}: {report}");
    }
    // Like kv-random, it calls no host function that could be made to fail.
    let rollback = conformance.check(names::ROLLBACK).unwrap();
    assert_eq!(rollback.status, Status::Skip, "{report}");
    assert!(report.steps.iter().all(|s| s.host_calls.is_empty()), "{report}");
    assert!(!format!("{report}").contains("initial-pw-5d1c"), "a secret value reached the report");
}

#[tokio::test]
async fn python_kv_conforms() {
    conforms(&PYTHON).await;
}

#[tokio::test]
async fn js_kv_conforms() {
    conforms(&JS).await;
}

/// Load with no compilation cache (the first load a daemon does), then
/// rotate the job of `plugins/examples/polyglot.toml` three times through
/// the daemon's protocol.
async fn rotates(example: &Example) {
    example.wasm();
    let logs = plugin_logs();
    let server = dev_server().await;
    let config = examples_dir().join("polyglot.toml");
    let toml = std::fs::read_to_string(&config).unwrap();
    let (vault, jobs, _runtime) = jobs_in(&server, "polyglot.toml", &toml, &examples_dir());
    let job = jobs.iter().find(|j| j.config.id == example.name).expect("a job per example");
    let loc = job.config.secret.as_ref().and_then(|s| s.kv()).cloned().unwrap();
    let initial =
        SecretJson::new(json!({"username": "app", "password": "initial-password", "host": "db1"}).to_string());
    assert_eq!(vault.kv_write(&loc.mount, &loc.path, &initial, Some(0)).await.unwrap(), 1);

    let mut previous = "initial-password".to_owned();
    let started = Instant::now();
    for round in 1..=3u64 {
        let report = job.rotate(&store(&vault), "test").await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((report.previous_version, report.new_version), (Some(round.into()), Some((round + 1).into())));
        let now = vault.kv_read(&loc.mount, &loc.path).await.unwrap().unwrap();
        assert_eq!(now.version, Some(round + 1));
        let fields = now.data.fields();
        assert_eq!((&fields["username"], &fields["host"]), (&json!("app"), &json!("db1")));
        let password = fields["password"].as_str().unwrap().to_owned();
        assert!(alphanumeric(&password), "{} characters, or not letters and digits", password.len());
        assert_ne!(password, previous, "the value did not change");
        previous = password;
    }
    let per_rotation = started.elapsed() / 3;

    let expected = Line {
        job: example.name.to_owned(),
        message: format!("generated a {LENGTH}-character value for field `password`"),
    };
    let logged = logs.lock().unwrap().iter().filter(|l| **l == expected).count();
    assert_eq!(logged, 3, "the plugin's log line, once per rotation");
    eprintln!(
        "{}: {:.1} ms per rotation (memory cap {} MiB)",
        example.name,
        per_rotation.as_secs_f64() * 1000.0,
        job.config.limits.memory >> 20,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn python_kv_rotates_a_secret_on_the_dev_server() {
    rotates(&PYTHON).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn js_kv_rotates_a_secret_on_the_dev_server() {
    rotates(&JS).await;
}

/// Step `create` (or `test` with `pending`) run directly, so settings the
/// job's schema would refuse reach the plugin's own checks.
fn step(plugin: &Plugin, settings: Value, pending: Option<&str>) -> Result<(), Failure> {
    let mut run = plugin.start("errors", RunConfig::default()).map_err(|e| e.failure)?;
    let ctx = StepContext { job_id: "errors".into(), rotation_id: "r1".into(), settings, current: None, attempt: 1 };
    let result = match pending {
        Some(data) => run.test(&ctx, &SecretJson::new(data.to_owned())),
        None => run.create(&ctx).map(drop),
    };
    result.map_err(|e| e.failure)
}

/// A Python `raise Err(RotateError_…)` and a JavaScript `throw { tag, val }`
/// come back as the typed WIT error, not as a trap.
async fn errors_are_typed(example: &Example) {
    let runtime = Runtime::new(RuntimeOptions { max_concurrent_runs: 2, ..RuntimeOptions::default() }).unwrap();
    let plugin = runtime.load_file(&example.wasm(), None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plugin.info().name, example.name);
    assert_eq!(plugin.info().access, rotator_core::plugin::Access::Values, "the KV secret is its own target");
    let plugin = &plugin;
    tokio::task::block_in_place(|| {
        assert_eq!(
            step(plugin, json!({"length": LENGTH}), None),
            Err(Failure::InvalidConfig("settings.field must be a non-empty string".into()))
        );
        assert_eq!(
            step(plugin, json!({"field": "password", "length": 4}), None),
            Err(Failure::InvalidConfig("settings.length must be an integer from 8 to 1024".into()))
        );
        assert_eq!(
            step(plugin, Example::settings(), Some(r#"{"password": "short"}"#)),
            Err(Failure::Permanent(format!("field `password` has 5 characters, wanted {LENGTH}")))
        );
        assert_eq!(
            step(plugin, Example::settings(), Some(r#"{"user": "app"}"#)),
            Err(Failure::Permanent("field `password` is missing".into()))
        );
        let good = json!({"password": "a".repeat(LENGTH)}).to_string();
        assert_eq!(step(plugin, Example::settings(), Some(&good)), Ok(()));
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn python_kv_errors_are_typed() {
    errors_are_typed(&PYTHON).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn js_kv_errors_are_typed() {
    errors_are_typed(&JS).await;
}
