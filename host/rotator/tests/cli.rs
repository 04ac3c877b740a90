//! The `rotator` binary as a user runs it: exit codes, output, clean
//! shutdown on SIGTERM and SIGINT, and no secret value in anything it prints.

#[path = "support/dev.rs"]
mod dev;

use std::path::{Path, PathBuf};
use std::time::Duration;

use dev::{Dev, ROOT_TOKEN, http, repo, rotator, vault_get};

#[test]
fn check_accepts_the_dev_config() {
    let out = rotator().args(["check", "--config", "config/dev.toml"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("config/dev.toml: OK, 1 job(s)"), "{stdout}");
    assert!(stdout.contains("demo-kv → kv-random@0.1.0"), "{stdout}");
}

#[test]
fn check_reports_every_error_with_its_location_and_fails() {
    let out = rotator().args(["check", "--config", "tests/config/invalid/many-mistakes.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains(": error: ")).collect();
    assert_eq!(errors.len(), 10, "{stderr}");
    assert!(errors.iter().all(|l| l.starts_with("tests/config/invalid/many-mistakes.toml:")), "{stderr}");
    assert!(
        stderr.contains("many-mistakes.toml:25:6: error: duplicate job id `db` (first defined on line 12)"),
        "{stderr}"
    );
}

#[test]
fn check_reports_parse_and_schema_errors_in_one_run() {
    let sample = "tests/config/invalid/two-phases.toml";
    let out = rotator().args(["check", "--config", sample]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The sample's expected errors, named by the path the binary was given.
    let expected = std::fs::read_to_string(repo().join(sample).with_extension("expected")).unwrap();
    assert_eq!(stderr.trim_end(), expected.trim_end().replace("two-phases.toml:", &format!("{sample}:")));
}

/// `rotator plugin inspect` of `what`: its stdout.
fn inspect(what: &std::ffi::OsStr) -> String {
    let out = rotator().args(["plugin", "inspect"]).arg(what).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of the `label:` line in `stdout`.
fn field(stdout: &str, label: &str) -> String {
    let found = stdout.lines().find_map(|l| l.strip_prefix(&format!("{label}:")));
    found.unwrap_or_else(|| panic!("no {label}: line in\n{stdout}")).trim().to_owned()
}

#[test]
fn plugin_inspect_shows_identity_exports_imports_and_schema() {
    let stdout = inspect("kv-random".as_ref());
    for want in [
        "name:         kv-random",
        "version:      0.1.0",
        "origin:       builtin:kv-random",
        "capabilities: none",
        "\"field\"",
    ] {
        assert!(stdout.contains(want), "missing {want:?} in\n{stdout}");
    }
    assert_eq!(field(&stdout, "sha256").len(), 64);
    assert_eq!(field(&stdout, "public"), "none (every field redacted in its output)");
    assert_eq!(field(&inspect("postgres-password".as_ref()), "public"), "username", "declared in its schema");
    // Read from the component: its one export with every function in it,
    // and only the interfaces it really imports.
    let exports = field(&stdout, "exports");
    assert_eq!(exports, "rotator:plugin/rotator@0.2.0 (describe, plan, create, set, test, finish, rollback)");
    let imports = field(&stdout, "imports");
    assert!(imports.contains("rotator:plugin/types@0.2.0"), "{imports}");
    assert!(!imports.contains("rotator:plugin/sql@0.2.0"), "kv-random makes no SQL calls: {imports}");
    let sql_runner = inspect(rotator_test_artifacts::build_artifact("fixture_sql_runner").as_os_str());
    // The WIT version each component targets: the SDK's for kv-random, the
    // frozen 0.1.0 folder's for a plugin built against it.
    assert_eq!(field(&stdout, "wit"), "rotator:plugin@0.2.0");
    let legacy = inspect(rotator_test_artifacts::build_artifact("fixture_legacy").as_os_str());
    assert_eq!(field(&legacy, "wit"), "rotator:plugin@0.1.0", "{legacy}");
    assert!(field(&sql_runner, "imports").contains("rotator:plugin/sql@0.2.0"), "{sql_runner}");

    let wrong = rotator_test_artifacts::build_artifact("fixture_wrong_world");
    let out = rotator().args(["plugin", "inspect"]).arg(&wrong).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let want =
        "not a rotator plugin: it does not export `rotator:plugin/rotator@0.2.0` or `rotator:plugin/rotator@0.1.0`";
    assert!(stderr.contains(want), "{stderr}");
}

#[test]
fn run_refuses_to_start_without_a_long_enough_api_token() {
    let out = rotator().args(["run", "--config", "config/dev.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the operator API needs a token: set [daemon] api_token"), "{stderr}");

    let out =
        rotator().args(["run", "--config", "config/dev.toml"]).env("ROTATOR_API_TOKEN", "short").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("from ROTATOR_API_TOKEN is shorter than 16 characters"), "{stderr}");
}

#[test]
fn a_job_in_aws_without_aws_credentials_is_refused_naming_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rotator.toml");
    std::fs::write(
        &config,
        "[vault]\naddress = \"http://127.0.0.1:9\"\ntoken = { env = \"CLI_TEST_TOKEN\" }\n\n\
         [[jobs]]\nid = \"orders\"\nplugin = \"kv-random\"\n\
         secret = { aws = { id = \"prod/orders\", region = \"eu-west-1\" } }\n\
         interval = \"1h\"\nsettings = { field = \"password\" }\n",
    )
    .unwrap();
    let mut c = rotator();
    for (name, _) in std::env::vars().filter(|(k, _)| k.starts_with("AWS_")) {
        c.env_remove(name);
    }
    // No shared files either: HOME is an empty folder.
    let out = c.args(["rotate", "orders", "--config"]).arg(&config).env("HOME", dir.path()).env("CLI_TEST_TOKEN", "t");
    let out = out.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("AWS (for job `orders`): no AWS credentials: set AWS_ACCESS_KEY_ID"), "{stderr}");
}

#[test]
fn plugin_test_passes_kv_random_with_toml_settings() {
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("settings.toml");
    std::fs::write(&settings, "field = \"password\"\nlength = 16\n").unwrap();
    let out = rotator().args(["plugin", "test", "kv-random", "--settings"]).arg(&settings).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    for want in [
        "plugin kv-random@0.1.0 (builtin:kv-random",
        "grants: none",
        "PASS idempotent-steps:",
        "PASS crash-resume: 14 crash point(s)",
        "SKIP failing-test-rolls-back: `test` makes no host call, so it cannot be made to fail",
        "PASS plan-is-read-only:",
        "PASS declared-capabilities: the plugin made no host calls",
        "conforms: 4 passed, 0 failed, 1 skipped",
    ] {
        assert!(stdout.contains(want), "missing {want:?} in\n{stdout}");
    }
    let steps: Vec<&str> = stdout.lines().filter_map(|l| l.strip_prefix("  ")?.split_whitespace().next()).collect();
    assert!(steps.starts_with(&["read-secret", "plan", "create", "set", "test", "promote", "finish"]), "{stdout}");
    assert!(stdout.lines().any(|l| l.trim_start().starts_with("set") && l.contains(" ms  ok")), "{stdout}");
    // Logs nothing by default; only the compile line, when not cached.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .lines()
            .all(|l| l.starts_with("compiling builtin:kv-random (") || l.starts_with("compiled builtin:kv-random in ")),
        "{stderr}"
    );
}

#[test]
fn plugin_test_fails_a_violation_with_its_host_calls_and_exit_1() {
    let fixture = rotator_test_artifacts::build_artifact("fixture_plan_writes");
    let out = rotator().args(["plugin", "test"]).arg(&fixture).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL plan-is-read-only: 2 violations"), "{stdout}");
    assert!(stdout.contains("- plan made a write call: vault.kv-write write secret/data/fixture/plan-marker → ok"));
    assert!(stdout.contains("DOES NOT CONFORM: 3 passed, 1 failed, 1 skipped"), "{stdout}");

    // A grant on the command line replaces the declared ones; JSON on request.
    let fixture = rotator_test_artifacts::build_artifact("fixture_undeclared");
    let out = rotator()
        .args(["plugin", "test", "--json", "--grant", "secret/data/fixture/*:read"])
        .arg(&fixture)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["environment"]["grants"][0]["path"], "secret/data/fixture/*");
    let failed: Vec<&serde_json::Value> =
        report["checks"].as_array().unwrap().iter().filter(|c| c["status"] == "fail").collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["name"], "declared-capabilities");
}

#[test]
fn a_plugin_writing_to_stdout_and_stderr_reaches_none_of_rotators_output() {
    // `create` of this fixture writes a marker to stdout and stderr, then
    // fails with a report of its escape attempts (which never holds it).
    let fixture = rotator_test_artifacts::build_artifact("fixture_escape");
    let out = rotator().args(["--log-level", "debug", "plugin", "test"]).arg(&fixture).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(r#""read_file":{"error":"#), "create ran and reported:\n{stdout}{stderr}");
    for text in [&stdout, &stderr] {
        assert!(!text.contains("fixture-escape-was-here"), "the plugin's stdio got out:\n{text}");
    }
}

#[test]
fn plugin_test_prints_a_50_mb_failure_once_and_stays_small() {
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("settings.json");
    std::fs::write(&settings, r#"{"mode": "error"}"#).unwrap();
    let fixture = rotator_test_artifacts::build_artifact("fixture_flood");
    let test = |json: bool| {
        let mut cmd = rotator();
        cmd.args(["plugin", "test", "--step-timeout", "10s", "--settings"]).arg(&settings).arg(&fixture);
        if json {
            cmd.arg("--json");
        }
        cmd.output().unwrap()
    };
    let out = test(false);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{}", &stdout[..stdout.len().min(2000)]);
    assert!(out.stdout.len() < 64 << 10, "{} bytes of output", out.stdout.len());
    // The message (cut to 4 KiB) is printed once; repeats refer to it.
    assert_eq!(stdout.matches("…[truncated ").count(), 1, "{stdout}");
    assert!(stdout.contains("create       plugin"), "{stdout}");
    assert!(stdout.contains("<the failure shown above>"), "{stdout}");
    assert!(stdout.contains("FAIL crash-resume: 14 of 14 crash-resume runs failed"), "{stdout}");
    // Resuming fails at the points before `create`; reaching fails after.
    // Each shown once, with how many of the points it was seen at.
    assert!(stdout.contains(" (seen in 2 of 14 crash points: before:create, after:create)\n"), "{stdout}");
    assert!(stdout.contains(" (seen in 12 of 14 crash points: before:stage, after:stage, before:set, "), "{stdout}");
    assert_eq!(stdout.matches("seen in ").count(), 2, "{stdout}");
    let json = test(true);
    assert!(json.stdout.len() < 64 << 10, "{} bytes of JSON", json.stdout.len());
    serde_json::from_slice::<serde_json::Value>(&json.stdout).expect("a JSON report");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_running_a_flooding_plugin_keeps_its_log_and_answers_small() {
    // `create` fails with a 50 MB message; the job caps messages at 2 KiB.
    let jobs = format!(
        r#"
[[jobs]]
id = "flood"
plugin = "{}"
secret = {{ path = "flood/app" }}
interval = "1h"
enabled = false
settings = {{ mode = "error" }}
limits = {{ error_message = "2KiB" }}
"#,
        rotator_test_artifacts::build_artifact("fixture_flood").display()
    );
    let mut dev = Dev::with_jobs(&jobs, &["--log-level", "debug"]);
    let api = dev.wait_for("rotator API:").replace("/healthz", "");
    let token = dev.wait_for("API token:");
    // The API is up before the configured jobs are registered (each reads
    // its record first): wait for the job, as a client would.
    for _ in 0..600 {
        let resp = http().get(format!("{api}/jobs/flood")).bearer_auth(&token).send().await.unwrap();
        if resp.status() == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut answers = Vec::new();
    for (method, path) in [("POST", "/jobs/flood/rotate"), ("GET", "/jobs/flood"), ("GET", "/status")] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let resp = http().request(method, format!("{api}{path}")).bearer_auth(&token).send().await.unwrap();
        answers.push((path, resp.status().as_u16(), resp.text().await.unwrap()));
    }
    let (_, status, rotated) = &answers[0];
    assert_eq!(*status, 502, "{rotated}");
    assert!(rotated.contains("create: permanent failure: xxx") && rotated.contains("…[truncated "), "{rotated}");
    for (path, _, body) in &answers {
        assert!(body.len() < 4 << 10, "{path} answered {} bytes", body.len());
    }
    let (stdout, stderr) = dev.stop();
    assert!(stderr.contains("…[truncated "), "the failure was logged:\n{stderr}");
    let shown = |s: &str| s.chars().take(3000).collect::<String>();
    assert!(
        stdout.len() + stderr.len() < 64 << 10,
        "{} bytes of output; stdout begins:\n{}\nstderr begins:\n{}",
        stdout.len() + stderr.len(),
        shown(&stdout),
        shown(&stderr)
    );
}

#[test]
fn plugin_test_step_timeout_stops_a_runaway_step_and_is_held_to_the_config_range() {
    let fixture = rotator_test_artifacts::build_artifact("fixture_spin");
    let out = rotator().args(["plugin", "test", "--step-timeout", "150ms"]).arg(&fixture).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAILED: step ran past its deadline of 150ms and was stopped"), "{stdout}");
    // The report types it: the step, and that its deadline stopped it.
    let out = rotator().args(["plugin", "test", "--json", "--step-timeout", "150ms"]).arg(&fixture).output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let create = report["steps"].as_array().unwrap().iter().find(|s| s["step"] == "create").unwrap();
    assert_eq!((&create["ok"], &create["failure"]), (&serde_json::json!(false), &serde_json::json!("deadline")));
    assert!(create["error"].as_str().unwrap().contains("deadline of 150ms"), "{create}");
    for bad in ["50ms", "11m", "soon"] {
        let out = rotator().args(["plugin", "test", "--step-timeout", bad]).arg(&fixture).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--step-timeout"), "{stderr}");
    }
}

#[test]
fn plugin_test_exits_2_when_the_plugin_cannot_be_tested() {
    let out = rotator().args(["plugin", "test", "no-such-plugin"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot test no-such-plugin: unknown built-in plugin `no-such-plugin`"), "{stderr}");
    let out = rotator().args(["plugin", "test", "kv-random", "--grant", "secret/x"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot test kv-random: --grant: `secret/x` is not PATH:OPS"), "{stderr}");
    for (settings, why) in [
        (
            "no-such-file.json",
            "--settings: no file `no-such-file.json`, and not inline JSON ({…}) or TOML (key = value)",
        ),
        ("{\"field\": ", "--settings: read the inline text (it starts with `{`) as JSON: line 1, column 10: "),
        ("field = ", "--settings: read the inline text (it has `=` and names no file) as TOML: line 1, column 9: "),
        ("[1, 2]", "--settings: no file `[1, 2]`, and not inline JSON"),
    ] {
        let out = rotator().args(["plugin", "test", "kv-random", "--settings", settings]).output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(why), "{settings}: {stderr}");
    }
}

#[test]
fn plugin_test_takes_inline_json_and_toml_settings() {
    for settings in [r#"{"field": "password", "length": 16}"#, "field = \"password\"\nlength = 16"] {
        let out = rotator().args(["plugin", "test", "kv-random", "--settings", settings]).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{settings}: {stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("conforms: 4 passed, 0 failed, 1 skipped"), "{stdout}");
    }
    // Settings the schema refuses are still refused when inline.
    let out = rotator().args(["plugin", "test", "kv-random", "--settings", r#"{"length": 16}"#]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stdout));
}

/// A `kv-random` job `id` rotating field `password` of `secret/<path>`;
/// `schedule` holds its schedule lines.
fn kv_job(id: &str, path: &str, schedule: &str) -> String {
    format!(
        "[[jobs]]\nid = \"{id}\"\nplugin = \"kv-random\"\nsecret = {{ path = \"{path}\" }}\n{schedule}\n\
         settings = {{ field = \"password\" }}\n"
    )
}

/// Every value `field` of KV v2 secret `secret/<path>` ever had, oldest
/// first, read back from the dev server.
async fn secret_values(addr: &str, path: &str, field: &str) -> Vec<String> {
    let meta = vault_get(addr, &format!("secret/metadata/{path}")).await;
    let current = meta["data"]["current_version"].as_u64().unwrap_or(0);
    let mut values = Vec::new();
    for v in 1..=current {
        let s = vault_get(addr, &format!("secret/data/{path}?version={v}")).await;
        values.push(s["data"]["data"][field].as_str().unwrap().to_owned());
    }
    values
}

/// Poll until KV v2 secret `secret/<path>` has at least `versions` versions.
async fn wait_for_versions(addr: &str, path: &str, versions: u64) {
    for _ in 0..600 {
        let meta = vault_get(addr, &format!("secret/metadata/{path}")).await;
        if meta["data"]["current_version"].as_u64().unwrap_or(0) >= versions {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("secret/{path} never reached {versions} versions");
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_rotates_and_no_secret_value_reaches_the_logs() {
    let jobs = format!(
        r#"
[[jobs]]
id = "kv"
plugin = "kv-random"
secret = {{ path = "leakcheck/app" }}
interval = "1s"
settings = {{ field = "password", preserve_fields = {{ api_key = "static-api-key-value" }} }}

[[jobs]]
id = "leaky"
plugin = "{}"
secret = {{ path = "leakcheck/leaky" }}
interval = "1s"
"#,
        rotator_test_artifacts::build_artifact("fixture_leaky").display()
    );
    let mut dev = Dev::with_jobs(&jobs, &["--log-level", "debug"]);
    let addr = dev.wait_for("Address:");
    let api = dev.wait_for("rotator API:");
    let api_token = dev.wait_for("API token:");
    assert_eq!(dev.wait_for("Use it:"), format!("export API_TOKEN={api_token}"), "a ready export line");
    // The banner points at a secret of the loaded config, not a fixed demo path.
    let watch = dev.wait_for("Watch a secret:");
    assert!(watch.ends_with("/v1/secret/metadata/leakcheck/app"), "{watch}");
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let health: serde_json::Value = http().get(&api).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok");
    // The generated API token on the banner opens the API.
    let token_url = api.replace("/healthz", "/token");
    let token = http().get(&token_url).bearer_auth(&api_token).send().await.unwrap();
    assert_eq!(token.status().as_u16(), 200);
    assert_eq!(http().get(&token_url).send().await.unwrap().status().as_u16(), 401);

    let mut values = secret_values(&addr, "leakcheck/app", "password").await;
    assert!(values.len() >= 3, "only {} versions", values.len());
    values.push("static-api-key-value".to_owned());
    let (stdout, stderr) = dev.stop();
    let logs = format!("{stdout}\n{stderr}");

    for value in &values {
        assert!(!logs.contains(value.as_str()), "secret value {value:?} appears in the output");
    }
    // The leaky plugin logged and errored with `leak-<rotation id>`: both redacted.
    assert!(logs.contains("testing password [REDACTED]"), "{logs}");
    assert!(logs.contains("login with [REDACTED] failed"), "{logs}");
    assert!(!logs.contains("leak-"), "a leaky value reached the output");
    // The banner prints the dev root token on purpose (as `vault server -dev`
    // does); the logs never do.
    assert!(!stderr.contains(ROOT_TOKEN), "the token reached the logs");
    assert!(!stderr.contains(&api_token), "the API token reached the logs");
}

#[tokio::test(flavor = "multi_thread")]
async fn rotate_and_dry_run_against_a_server_only_dev_server() {
    let mut dev = Dev::start(&["--server-only"]);
    let addr = dev.wait_for("Address:");
    let run = |args: &[&str]| {
        let out = rotator()
            .args(["rotate", "demo-kv", "--config", "config/dev.toml"])
            .args(args)
            .env("VAULT_ADDR", &addr)
            .env("VAULT_TOKEN", ROOT_TOKEN)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let plan = run(&["--dry-run"]);
    assert!(plan.contains("dry run: nothing will change"), "{plan}");
    assert!(plan.contains("read secret/demo/app (does not exist yet)"), "{plan}");
    assert_eq!(vault_get(&addr, "secret/data/demo/app").await["errors"], serde_json::json!([]));

    assert!(run(&[]).contains("version 1 (new secret)"));
    assert!(run(&[]).contains("version 1 → 2"));
    let unknown = rotator().args(["rotate", "nope", "--config", "config/dev.toml"]).output().unwrap();
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no job `nope`"));
    dev.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_are_one_json_object_per_line_without_secret_values() {
    let jobs = kv_job("json-kv", "jsonlogs/app", "interval = \"1s\"");
    let mut dev = Dev::with_jobs(&jobs, &["--log-format", "json", "--log-level", "debug"]);
    let addr = dev.wait_for("Address:");
    // Created, then rotated at least once.
    wait_for_versions(&addr, "jsonlogs/app", 2).await;
    let values = secret_values(&addr, "jsonlogs/app", "password").await;
    let (stdout, stderr) = dev.stop();

    // stdout is the banner; every log line (stderr) is a JSON object.
    let mut messages = Vec::new();
    for line in stderr.lines() {
        let entry: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
        assert!(entry["timestamp"].is_string() && entry["level"].is_string(), "{line}");
        messages.push(entry["fields"]["message"].as_str().unwrap_or_default().to_owned());
    }
    assert!(messages.iter().any(|m| m == "rotation done"), "no rotation logged: {stderr}");
    assert!(!stdout.lines().any(|l| l.starts_with('{')), "log lines on stdout: {stdout}");
    assert!(values.len() >= 2);
    for value in &values {
        assert!(
            !format!("{stdout}\n{stderr}").contains(value.as_str()),
            "secret value {value:?} appears in the output"
        );
    }
}

#[test]
fn sigint_stops_an_idle_daemon_with_exit_0() {
    let mut dev = Dev::with_jobs(&kv_job("idle", "idle/app", "interval = \"1h\"\nenabled = false"), &[]);
    assert_eq!(dev.wait_for("Jobs:"), "idle");
    let (_, stderr) = dev.stop_with("INT");
    assert!(stderr.contains("shutting down"), "{stderr}");
}

/// A log of five records written by the library, checked by the binary.
fn audit_log_of_five(dir: &Path) -> (PathBuf, Vec<String>) {
    use rotator_core::audit::{AuditEvent, AuditLog, Outcome, PluginIdentity, Step};
    let path = dir.join("audit.jsonl");
    let log = AuditLog::open(&path).unwrap();
    let plugin = PluginIdentity { name: "kv-random".into(), version: "0.1.0".into(), sha256: "0".repeat(64) };
    for step in [Step::Create, Step::Set, Step::Test, Step::Promote, Step::Rotation] {
        log.append(AuditEvent::new("cli", "demo-kv", plugin.clone(), "r-1", step, Outcome::Ok)).unwrap();
    }
    let lines = std::fs::read_to_string(&path).unwrap().lines().map(str::to_owned).collect();
    (path, lines)
}

/// `rotator audit verify FILE`: (exit code, stdout).
fn audit_verify(path: &Path, lines: &[String]) -> (Option<i32>, String) {
    std::fs::write(path, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    let out = rotator().args(["audit", "verify"]).arg(path).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn audit_verify_names_an_edited_record() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut lines) = audit_log_of_five(dir.path());
    let (code, stdout) = audit_verify(&path, &lines);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.starts_with("ok: 5 records, chain intact\n"), "{stdout}");

    lines[2] = lines[2].replace(r#""outcome":"ok""#, r#""outcome":"failed""#);
    let (code, stdout) = audit_verify(&path, &lines);
    assert_eq!(code, Some(1));
    assert_eq!(
        stdout.trim_end(),
        "tampered: line 3 (seq 3): record was changed after it was written: its sha256 does not match `prev` in line 4"
    );
}

#[test]
fn audit_verify_catches_a_deleted_middle_line_and_reports_unreadable_files() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut lines) = audit_log_of_five(dir.path());
    lines.remove(2);
    let (code, stdout) = audit_verify(&path, &lines);
    assert_eq!(code, Some(1));
    assert_eq!(
        stdout.trim_end(),
        "tampered: line 3 (seq 4): seq 4 where 3 was expected: records were removed, inserted or reordered"
    );

    let out = rotator().args(["audit", "verify"]).arg(dir.path().join("missing.jsonl")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read audit log"));
}
