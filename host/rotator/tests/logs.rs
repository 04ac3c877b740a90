//! What the `rotator` binary logs when its output is not a terminal: no
//! colour codes, and no `Option` in its Debug shape (`version=Some(2)`),
//! over real rotations by `rotator dev` and `rotator rotate`.

#[path = "support/dev.rs"]
mod dev;

use std::time::{Duration, Instant};

use dev::{Dev, rotator, vault_get};

/// The secret's current version on the dev Vault at `addr`.
async fn current_version(addr: &str, path: &str) -> u64 {
    vault_get(addr, &format!("secret/metadata/{path}")).await["data"]["current_version"].as_u64().unwrap_or(0)
}

/// `logs` has neither an ANSI escape nor an `Option`'s Debug shape.
fn assert_plain(logs: &str) {
    assert!(!logs.contains("\x1b["), "a colour code in piped output:\n{logs}");
    for shape in ["Some(", "=None"] {
        assert!(!logs.contains(shape), "`{shape}` in the logs:\n{logs}");
    }
}

/// The value of field `name` on the first line of `logs` containing `message`.
fn field<'a>(logs: &'a str, message: &str, name: &str) -> &'a str {
    let line = logs.lines().find(|l| l.contains(message)).unwrap_or_else(|| panic!("no `{message}` line:\n{logs}"));
    let start = line.find(&format!(" {name}=")).unwrap_or_else(|| panic!("no {name} in {line}")) + name.len() + 2;
    line[start..].split_whitespace().next().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn piped_logs_of_real_rotations_have_no_colour_codes_and_no_debug_shapes() {
    let jobs = r#"
[[jobs]]
id = "plain"
plugin = "kv-random"
secret = { path = "logs/app" }
interval = "1s"
settings = { field = "password" }
"#;
    // Debug level: every field rotator logs while rotating is in the output.
    let mut dev = Dev::with_jobs(jobs, &["--log-level", "debug"]);
    let addr = dev.wait_for("Address:");
    let deadline = Instant::now() + Duration::from_secs(60);
    while current_version(&addr, "logs/app").await < 2 {
        assert!(Instant::now() < deadline, "no second rotation within a minute");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (stdout, stderr) = dev.stop();
    assert_plain(&format!("{stdout}\n{stderr}"));
    // The rotations were logged, with the fields that used to read
    // `Some(…)`: the version each rotation wrote.
    for (message, name) in [(" rotation done", "new_version"), (" rotated", "version")] {
        let value = field(&stderr, message, name);
        assert!(value.chars().any(|c| c.is_ascii_digit()), "{name}={value}");
    }

    // And `rotator rotate` against a server-only dev server.
    let mut server = Dev::start(&["--server-only"]);
    let addr = server.wait_for("Address:");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rotator.toml");
    std::fs::write(&config, jobs.replace("interval = \"1s\"", "interval = \"1h\"")).unwrap();
    let out = rotator()
        .args(["--log-level", "debug", "rotate", "plain", "--config"])
        .arg(&config)
        .env("VAULT_ADDR", &addr)
        .env("VAULT_TOKEN", dev::ROOT_TOKEN)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_plain(&format!("{}\n{stderr}", String::from_utf8_lossy(&out.stdout)));
    assert!(field(&stderr, " rotation done", "new_version").contains('1'), "{stderr}");
    server.stop();
}
