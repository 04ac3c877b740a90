//! The real `rotator` binary for the host's process tests (`cli.rs`,
//! `dashboard.rs`): a clean command, and `rotator dev` running with its
//! output collected on threads.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The dev server's root token in these tests.
pub const ROOT_TOKEN: &str = "cli-test-root";

/// `rotator`, run from the repository root, with no Vault, API token or
/// log settings inherited from the caller's environment.
pub fn rotator() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rotator"));
    c.current_dir(repo())
        .env_remove("RUST_LOG")
        .env_remove("VAULT_ADDR")
        .env_remove("VAULT_TOKEN")
        .env_remove("ROTATOR_API_TOKEN");
    c
}

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A running `rotator dev`, its output collected on threads.
pub struct Dev {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
    stdout_seen: Vec<String>,
    /// The folder of a jobs file written by [`Dev::with_jobs`].
    _config: Option<tempfile::TempDir>,
}

impl Dev {
    /// `rotator dev` on ports the system picks, with `extra` arguments.
    pub fn start(extra: &[&str]) -> Self {
        let mut child = rotator()
            .args(["dev", "--vault-addr", "127.0.0.1:0", "--api-addr", "127.0.0.1:0", "--root-token", ROOT_TOKEN])
            .args(extra)
            .stdin(Stdio::null())
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
        Self { child, lines, stderr: Some(stderr), stdout_seen: Vec::new(), _config: None }
    }

    /// Start with `jobs` (TOML) as the config file.
    pub fn with_jobs(jobs: &str, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("jobs.toml");
        std::fs::write(&config, jobs).unwrap();
        let mut dev = Self::start(&[&["--config", config.to_str().unwrap()], extra].concat());
        dev._config = Some(dir);
        dev
    }

    /// Wait for a stdout line starting with `prefix`; return the rest.
    pub fn wait_for(&mut self, prefix: &str) -> String {
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
    pub fn stop(self) -> (String, String) {
        self.stop_with("TERM")
    }

    /// Signal `name` (`TERM`, `INT`), then (stdout, stderr); asserts exit 0.
    pub fn stop_with(mut self, name: &str) -> (String, String) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args([&format!("-{name}"), &pid]).status().unwrap().success());
        let status = self.child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "rotator dev exited with {status} after SIG{name}");
        let mut stdout = self.stdout_seen.join("\n");
        stdout.extend(self.lines.try_iter().map(|l| format!("\n{l}")));
        (stdout, self.stderr.take().unwrap().join().unwrap())
    }
}

impl Drop for Dev {
    /// A test that failed half-way leaves no daemon behind.
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// An HTTP client with rotator's TLS provider installed.
pub fn http() -> reqwest::Client {
    rotator_core::vault::install_crypto_provider();
    reqwest::Client::new()
}

/// `GET /v1/<path>` on the dev Vault at `addr`, as root.
pub async fn vault_get(addr: &str, path: &str) -> serde_json::Value {
    http()
        .get(format!("{addr}/v1/{path}"))
        .header("X-Vault-Token", ROOT_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}
