//! The `rotator` binary as a user runs it: exit codes, output, clean
//! shutdown on SIGTERM, and no secret value in anything it prints.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn rotator() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rotator"));
    c.current_dir(repo())
        .env_remove("RUST_LOG")
        .env_remove("VAULT_ADDR")
        .env_remove("VAULT_TOKEN")
        .env_remove("ROTATOR_API_TOKEN");
    c
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

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
fn plugin_inspect_shows_identity_world_and_schema() {
    let out = rotator().args(["plugin", "inspect", "kv-random"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for want in [
        "name:         kv-random",
        "version:      0.1.0",
        "origin:       builtin:kv-random",
        "rotator:plugin/rotator@0.1.0",
        "capabilities: none",
        "\"field\"",
    ] {
        assert!(stdout.contains(want), "missing {want:?} in\n{stdout}");
    }
    let sha = stdout.lines().find_map(|l| l.strip_prefix("sha256:")).unwrap().trim();
    assert_eq!(sha.len(), 64);

    let wrong = rotator::builtin::build_artifact("fixture_wrong_world");
    let out = rotator().args(["plugin", "inspect"]).arg(&wrong).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a rotator plugin: it does not export `rotator:plugin/rotator@0.1.0`"), "{stderr}");
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

/// A running `rotator dev`, its output collected on threads.
struct Dev {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: std::thread::JoinHandle<String>,
    stdout_seen: Vec<String>,
}

impl Dev {
    fn start(extra: &[&str]) -> Self {
        let mut child = rotator()
            .args(["dev", "--vault-addr", "127.0.0.1:0", "--api-addr", "127.0.0.1:0", "--root-token", "cli-test-root"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Self { child, lines, stderr, stdout_seen: Vec::new() }
    }

    /// Wait for a stdout line starting with `prefix`; return the rest.
    fn wait_for(&mut self, prefix: &str) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("no `{prefix}` line; saw {:?}", self.stdout_seen));
            self.stdout_seen.push(line.clone());
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.trim().to_owned();
            }
        }
    }

    /// SIGTERM, then (stdout, stderr); asserts a clean exit.
    fn stop(mut self) -> (String, String) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "rotator dev exited with {status} after SIGTERM");
        let mut stdout = self.stdout_seen.join("\n");
        stdout.extend(self.lines.try_iter().map(|l| format!("\n{l}")));
        (stdout, self.stderr.join().unwrap())
    }
}

fn http() -> reqwest::Client {
    rotator::vault::install_crypto_provider();
    reqwest::Client::new()
}

async fn vault_get(addr: &str, path: &str) -> serde_json::Value {
    http()
        .get(format!("{addr}/v1/{path}"))
        .header("X-Vault-Token", "cli-test-root")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_rotates_and_no_secret_value_reaches_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("jobs.toml");
    std::fs::write(
        &config,
        format!(
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
            rotator::builtin::build_artifact("fixture_leaky").display()
        ),
    )
    .unwrap();
    let mut dev = Dev::start(&["--config", config.to_str().unwrap(), "--log-level", "debug"]);
    let addr = dev.wait_for("Address:");
    let api = dev.wait_for("rotator API:");
    let api_token = dev.wait_for("API token:");
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let health: serde_json::Value = http().get(&api).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok");
    // The generated API token on the banner opens the API.
    let token_url = api.replace("/healthz", "/token");
    let token = http().get(&token_url).bearer_auth(&api_token).send().await.unwrap();
    assert_eq!(token.status().as_u16(), 200);
    assert_eq!(http().get(&token_url).send().await.unwrap().status().as_u16(), 401);

    // Every value the secret ever had, read back from the dev server.
    let meta = vault_get(&addr, "secret/metadata/leakcheck/app").await;
    let current = meta["data"]["current_version"].as_u64().unwrap();
    assert!(current >= 3, "only {current} versions");
    let mut values = vec!["static-api-key-value".to_owned()];
    for v in 1..=current {
        let s = vault_get(&addr, &format!("secret/data/leakcheck/app?version={v}")).await;
        values.push(s["data"]["data"]["password"].as_str().unwrap().to_owned());
    }
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
    assert!(!stderr.contains("cli-test-root"), "the token reached the logs");
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
            .env("VAULT_TOKEN", "cli-test-root")
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
