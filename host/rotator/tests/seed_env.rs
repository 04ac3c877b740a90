//! `rotator run` without `--config`, as a drop-in for the Flask rotation
//! service: the service's documented job examples, verbatim, through its
//! environment (inline and as a file) rotate in a real dev server (a KV
//! secret, and the root of a real PostgreSQL behind its database engine); hostile
//! job documents stop it with every located error at once, exit 2, before
//! anything is written to Vault. With `--config`, the file and the
//! environment together: the file wins where both give a value, the
//! environment fills the rest (its jobs beside the file's, kept across a
//! reload), `rotator check` names each value's source, and the problems of
//! both print at once.

#[path = "support/dev.rs"]
#[allow(dead_code)] // `Dev::with_jobs`: these tests have no config file.
mod dev;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use dev::{Dev, ROOT_TOKEN, http, repo, rotator, vault_get};
use rotator_tests::postgres::{Postgres, SUPERUSER_PASSWORD};
use serde_json::json;

/// The service's two documented job examples, verbatim: the JSON objects
/// of its README's "Rotation jobs format", as one array.
fn documented_jobs() -> String {
    let readme = repo().join("../shared/seeds/000_flask_rotation_service.txt");
    let text = std::fs::read_to_string(&readme).unwrap_or_else(|e| panic!("{}: {e}", readme.display()));
    let section = text.split("Rotation jobs format").nth(1).and_then(|s| s.split("Run locally").next()).unwrap();
    // Each example runs from a line `  {` to a line `  }`.
    let objects: Vec<String> =
        section.split("\n  {").skip(1).map(|rest| format!("{{{}\n}}", rest.split("\n  }").next().unwrap())).collect();
    assert_eq!(objects.len(), 2, "{section}");
    format!("[{}]", objects.join(",\n"))
}

const API_TOKEN: &str = "seed-env-test-api-token";

/// `rotator run` with no `--config`, pointed at the dev Vault at `addr`,
/// with the service's variables `vars`.
fn run(addr: &str, vars: &[(&str, &str)]) -> Command {
    let mut c = rotator();
    c.args(["--log-format", "json", "run"])
        .env("VAULT_ADDR", addr)
        .env("VAULT_TOKEN", ROOT_TOKEN)
        .env("ROTATOR_API_TOKEN", API_TOKEN)
        .env("ROTATOR_API_ADDR", "127.0.0.1:0")
        .env_remove("ROTATION_JOBS_JSON")
        .env_remove("ROTATION_CONFIG_PATH")
        .envs(vars.iter().copied());
    c
}

/// Wait for the daemon's `daemon started` log line; its API address.
fn api_address(child: &mut Child) -> String {
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let line = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains("daemon started"))
        .unwrap_or_else(|| panic!("rotator run exited: {:?}", child.wait()));
    // Keep draining the log so the daemon never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let line: serde_json::Value = serde_json::from_str(&line).unwrap();
    line["fields"]["api"].as_str().unwrap_or_else(|| panic!("no api in {line}")).to_owned()
}

/// Poll until `secret/<path>` has a version; its data.
async fn first_version(addr: &str, path: &str, child: &mut Child) -> serde_json::Value {
    for _ in 0..600 {
        let secret = vault_get(addr, &format!("secret/data/{path}")).await;
        if secret["data"]["metadata"]["version"].as_u64().is_some_and(|v| v >= 1) {
            return secret["data"]["data"].clone();
        }
        assert!(child.try_wait().unwrap().is_none(), "rotator run exited");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("secret/{path} was never written");
}

/// The ids `GET /scheduler/jobs` lists, sorted, once it lists `count`.
async fn job_ids(api: &str, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..600 {
        let request = http().get(format!("http://{api}/scheduler/jobs")).bearer_auth(API_TOKEN);
        let jobs: serde_json::Value = request.send().await.unwrap().json().await.unwrap();
        ids = jobs["jobs"].as_array().unwrap().iter().filter_map(|j| j["id"].as_str().map(str::to_owned)).collect();
        if ids.len() >= count {
            ids.sort_unstable();
            return ids;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("only {ids:?} listed");
}

/// SIGTERM; asserts a clean exit.
fn stop(mut child: Child) {
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

/// `POST /v1/<path>` on the dev Vault at `addr`, as root; the status.
async fn vault_post(addr: &str, path: &str, body: serde_json::Value) -> u16 {
    let request = http().post(format!("{addr}/v1/{path}")).header("X-Vault-Token", ROOT_TOKEN).json(&body);
    request.send().await.unwrap().status().as_u16()
}

/// Poll `GET /jobs/<id>` until the job has rotated once; fail on an error.
async fn rotated_once(api: &str, id: &str) {
    for _ in 0..600 {
        let request = http().get(format!("http://{api}/jobs/{id}")).bearer_auth(API_TOKEN);
        let view: serde_json::Value = request.send().await.unwrap().json().await.unwrap();
        assert!(view["last_error"].is_null(), "{view}");
        if view["rotations"].as_u64().is_some_and(|n| n >= 1) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("job {id} never rotated");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_services_documented_jobs_run_from_its_environment_inline_and_as_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jobs.json");
    let examples = documented_jobs();
    assert!(examples.contains(r#""type": "kv_random""#) && examples.contains(r#""connection": "my-postgres""#));
    std::fs::write(&file, &examples).unwrap();
    let file = file.to_str().unwrap();
    // The database_root example's `my-postgres`: a real PostgreSQL cluster.
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let superuser = pg.connect("postgres", SUPERUSER_PASSWORD).await.unwrap();
    for (i, source) in
        [("ROTATION_JOBS_JSON", examples.as_str()), ("ROTATION_CONFIG_PATH", file)].into_iter().enumerate()
    {
        // A fresh Vault each time, so each source's jobs are what write and
        // rotate; a root role of its own, since only that Vault learns its
        // new password.
        let mut dev = Dev::start(&["--server-only"]);
        let addr = dev.wait_for("Address:");
        let (admin, first) = (format!("vaultadmin{i}"), "vaultadmin-first-password");
        superuser.batch_execute(&format!("CREATE ROLE {admin} WITH LOGIN SUPERUSER PASSWORD '{first}'")).await.unwrap();
        assert_eq!(vault_post(&addr, "sys/mounts/database", json!({"type": "database"})).await, 204);
        let connection = pg.vault_config(&admin, first, json!("*"));
        assert_eq!(vault_post(&addr, "database/config/my-postgres", connection).await, 204);

        let mut child =
            run(&addr, &[source]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let api = api_address(&mut child);

        // Both jobs are scheduled under the ids the service's API gives them
        // (each is listed once its task has started).
        assert_eq!(job_ids(&api, 2).await, ["db-root-my-postgres", "kv-secret-app-config"], "{}", source.0);

        // Never rotated, both are due at once. kv_random: a 32-character password.
        let data = first_version(&addr, "app/config", &mut child).await;
        let password = data["password"].as_str().unwrap_or_else(|| panic!("{data}"));
        assert_eq!(password.chars().count(), 32, "{}", source.0);
        // database_root: Vault rotated the root, so its old password is refused.
        rotated_once(&api, "db-root-my-postgres").await;
        assert!(pg.connect(&admin, first).await.is_err(), "{}: the old root password still logs in", source.0);
        assert!(child.try_wait().unwrap().is_none(), "the daemon keeps running");
        // What the hostile test's "nothing written" listing sees when something was.
        let listed = vault_get(&addr, "secret/metadata/?list=true").await;
        assert!(listed["data"]["keys"].as_array().is_some_and(|k| k.contains(&"app/".into())), "{listed}");
        stop(child);
        dev.stop();
    }
}

/// The service's variables a run is given.
type Vars<'a> = &'a [(&'a str, &'a str)];

/// A document of about `bytes` bytes: one valid job padded with spaces.
fn padded(bytes: usize) -> String {
    let job = r#"[{"type": "kv_random", "path": "hostile/big", "field": "f", "interval_seconds": 60}]"#;
    format!("{job}{}", " ".repeat(bytes - job.len()))
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_job_documents_fail_with_every_located_error_and_exit_2_before_vault() {
    let mut dev = Dev::start(&["--server-only"]);
    let addr = dev.wait_for("Address:");
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.json");
    std::fs::write(&big, padded(2 << 20)).unwrap();
    let big = big.to_str().unwrap();
    let not_array = dir.path().join("object.json");
    std::fs::write(&not_array, r#"{"type": "kv_random", "path": "hostile/obj", "field": "f", "interval_seconds": 60}"#)
        .unwrap();
    let not_array = not_array.to_str().unwrap();
    // One valid job beside the bad ones: if anything ran, it would be written.
    let inline = r#"[{"type": "kv_random", "path": "hostile/ok", "field": "password", "interval_seconds": 1},
                     {"type": "ldap", "path": "hostile/ldap", "interval_seconds": 60},
                     {"type": "kv_random", "path": "hostile/key", "field": "f", "interval_seconds": 60, "colour": "red"},
                     {"type": "kv_random", "path": "hostile/neg", "field": "f", "interval_seconds": -60},
                     {"type": "database_root", "connection": "*", "interval_seconds": "daily"},
                     {"type": "kv_random", "path": "hostile/len", "field": "f", "length": "long", "interval_seconds": 60},
                     {"type": "kv_random", "path": "hostile/short", "field": "f", "length": 3, "interval_seconds": 60}]"#;
    let cases: [(Vars, Vec<String>); 2] = [
        (
            &[("ROTATION_CONFIG_PATH", big), ("ROTATION_JOBS_JSON", inline)],
            vec![
                format!("ROTATION_CONFIG_PATH {big}: larger than 1048576 bytes"),
                "ROTATION_JOBS_JSON[1].type: unknown job type `ldap` (known: kv_random, database_root)".into(),
                "ROTATION_JOBS_JSON[2].colour: unknown field `colour` for a kv_random job".into(),
                "ROTATION_JOBS_JSON[3].interval_seconds: `interval_seconds` must be a positive whole number".into(),
                "ROTATION_JOBS_JSON[4].interval_seconds: `interval_seconds` must be a positive whole number".into(),
                "ROTATION_JOBS_JSON[4].connection: connection `*` is not a plain name: use letters, digits, `-`, `_` and `.`"
                    .into(),
                // The built-in's settings schema, checked before Vault too.
                r#"ROTATION_JOBS_JSON[5].length: "long" is not of type "integer""#.into(),
                "ROTATION_JOBS_JSON[6].length: 3 is less than the minimum of 8".into(),
            ],
        ),
        (
            &[("ROTATION_CONFIG_PATH", not_array), ("ROTATION_JOBS_JSON", "[1, 2")],
            vec![
                format!("{not_array}: must be a JSON array of jobs"),
                "ROTATION_JOBS_JSON: not JSON: EOF while parsing a list at line 1 column 5".into(),
            ],
        ),
    ];
    for (vars, expected) in cases {
        let out = run(&addr, vars).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines, expected, "{stderr}");
    }
    // Nothing reached Vault: no secret, no state record.
    let listed = vault_get(&addr, "secret/metadata/?list=true").await;
    assert!(listed["data"]["keys"].is_null(), "{listed}");
    dev.stop();
}

/// A config file that gives the Vault address and a job, and leaves the
/// token, the API's address and token to the environment.
const FILE_AND_ENV: &str = r#"# the file's part
[vault]
address = "ADDR"

[[jobs]]
id = "kv-secret-app-config"
plugin = "kv-random"
secret = { path = "from-file/config" }
interval = "1h"
settings = { field = "token", length = 20 }
"#;

/// The documented kv_random example (`kv-secret-app-config`, which the
/// file also defines) and a second job only the environment has.
const ENV_JOBS: &str = r#"[
  {"type": "kv_random", "mount": "secret", "path": "app/config", "field": "password", "length": 32, "interval_seconds": 3600},
  {"type": "kv_random", "path": "app/extra", "field": "password", "interval_seconds": 3600}
]"#;

/// `FILE_AND_ENV` written with the Vault address `addr`: its path.
fn file_and_env(dir: &tempfile::TempDir, addr: &str) -> std::path::PathBuf {
    let path = dir.path().join("rotator.toml");
    std::fs::write(&path, FILE_AND_ENV.replace("ADDR", addr)).unwrap();
    path
}

#[test]
fn check_names_the_source_of_every_value_and_what_the_file_overrode() {
    let dir = tempfile::tempdir().unwrap();
    let path = file_and_env(&dir, "http://127.0.0.1:8200");
    let file = path.to_str().unwrap();
    let out = rotator()
        .args(["check", "--config", file])
        .env("VAULT_ADDR", "http://vault.from-env:8200")
        .env("VAULT_TOKEN", "some-token")
        .env("ROTATOR_API_ADDR", "127.0.0.1:9999")
        .env("ROTATOR_API_TOKEN", API_TOKEN)
        .env("VAULT_MOUNT_KV", "secret")
        .env("ROTATION_JOBS_JSON", ENV_JOBS)
        .env_remove("ROTATION_CONFIG_PATH")
        .env_remove("VAULT_AUTH_METHOD")
        .env_remove("VAULT_NAMESPACE")
        .env_remove("VAULT_CACERT")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<String> = stdout.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    let from = |what: &str| {
        let prefix = format!("{what} ");
        let line = lines.iter().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no {what} in\n{stdout}"));
        line[prefix.len()..].to_owned()
    };
    assert!(lines[0].ends_with("rotator.toml: OK, 2 job(s)"), "{stdout}");
    assert_eq!(from("vault.address"), format!("{file}:3"));
    assert_eq!(from("vault login"), "env VAULT_TOKEN");
    assert_eq!(from("daemon.api_addr"), "env ROTATOR_API_ADDR");
    assert_eq!(from("daemon.api_token"), "env ROTATOR_API_TOKEN");
    assert_eq!(from("job kv-secret-app-config"), format!("{file}:5"));
    assert_eq!(from("job kv-secret-app-extra"), "env ROTATION_JOBS_JSON[1] (mount from env VAULT_MOUNT_KV)");
    assert!(
        lines.contains(&format!("vault.address: env VAULT_ADDR is not used, {file}:3 gives it (the file wins)")),
        "{stdout}"
    );
    let clash =
        format!("job kv-secret-app-config: env ROTATION_JOBS_JSON[0] is not used, {file}:5 defines it (the file wins)");
    assert!(lines.contains(&clash), "{stdout}");
    assert!(!stdout.contains("some-token") && !stdout.contains(API_TOKEN), "a value was printed");
}

#[test]
fn problems_of_the_file_and_the_environment_print_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, FILE_AND_ENV.replace("ADDR", "http://127.0.0.1:1").replace("\"1h\"", "\"soon\"")).unwrap();
    let file = path.to_str().unwrap();
    let inline = r#"[{"type": "kv_random", "path": "a", "interval_seconds": 60}]"#;
    let vars = [("ROTATION_JOBS_JSON", inline), ("ROTATOR_API_ADDR", "nowhere")];
    for (command, code) in [("check", 1), ("run", 2)] {
        let out = rotator()
            .args([command, "--config", file])
            .env("ROTATOR_API_TOKEN", API_TOKEN)
            .env_remove("ROTATION_CONFIG_PATH")
            .envs(vars)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{command}: {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 3, "{command}: {stderr}");
        assert!(lines[0].starts_with(&format!("{file}:9:")) && lines[0].contains("soon"), "{command}: {stderr}");
        assert_eq!(lines[1], "ROTATION_JOBS_JSON[0].field: `field` is required", "{command}");
        assert!(lines[2].starts_with("ROTATOR_API_ADDR: `nowhere` is not an address and port"), "{command}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_and_the_environment_run_together_and_a_reload_keeps_both() {
    let mut dev = Dev::start(&["--server-only"]);
    let addr = dev.wait_for("Address:");
    let dir = tempfile::tempdir().unwrap();
    let path = file_and_env(&dir, &addr);
    // The environment's address is wrong: the file's must win.
    let vars = [("ROTATION_JOBS_JSON", ENV_JOBS), ("VAULT_ADDR", "http://127.0.0.1:1")];
    let mut child = run(&addr, &[])
        .args(["--config", path.to_str().unwrap()])
        .envs(vars)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let api = api_address(&mut child);
    assert_eq!(job_ids(&api, 2).await, ["kv-secret-app-config", "kv-secret-app-extra"]);
    // The file's job (its path and field), and the environment's.
    let mine = first_version(&addr, "from-file/config", &mut child).await;
    assert_eq!(mine["token"].as_str().map(str::len), Some(20), "{mine}");
    let theirs = first_version(&addr, "app/extra", &mut child).await;
    assert_eq!(theirs["password"].as_str().map(str::len), Some(32), "{theirs}");
    let listed = vault_get(&addr, "secret/metadata/app/?list=true").await;
    assert_eq!(listed["data"]["keys"], json!(["extra"]), "the clashing environment job never ran: {listed}");

    let request = http().post(format!("http://{api}/reload")).bearer_auth(API_TOKEN);
    let report: serde_json::Value = request.send().await.unwrap().json().await.unwrap();
    assert_eq!(report["removed"], json!([]), "{report}");
    assert_eq!(report["unchanged"], json!(2), "{report}");
    assert_eq!(job_ids(&api, 2).await, ["kv-secret-app-config", "kv-secret-app-extra"]);
    stop(child);
    dev.stop();
}
