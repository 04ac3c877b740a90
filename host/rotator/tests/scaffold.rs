//! `rotator plugin new` → `plugin build` → `plugin test`, per language, with
//! the real binary and the real toolchains: every command of
//! docs/tutorial.md but the toolchain installs. The Python and JavaScript
//! tools are the ones `scripts/build-polyglot.sh` installs for the examples
//! (`plugins/examples/.venv`, `plugins/examples/js-kv/node_modules`), put
//! on `PATH`, so CI installs them once; the Rust scaffold builds in
//! `plugins/target`, beside the built-in plugins, so the registry crates it
//! shares with them are compiled once. The hostile-input half checks names
//! and folders are refused with nothing written, and a missing tool is a
//! typed error naming how to install it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use sha2::{Digest as _, Sha256};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// The Python and JavaScript tools, installed once per test binary.
fn polyglot_tools() -> (PathBuf, PathBuf) {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let script = repo().join("scripts/build-polyglot.sh");
    let built = BUILT.get_or_init(|| {
        let out = Command::new("bash").arg(&script).output().map_err(|e| e.to_string())?;
        if out.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out.stderr).into_owned()) }
    });
    if let Err(e) = built {
        panic!("{} failed:\n{e}", script.display());
    }
    let examples = repo().join("plugins/examples");
    (examples.join(".venv/bin"), examples.join("js-kv/node_modules/.bin"))
}

/// `program args…` in `dir`, printed with its output.
fn run(dir: &Path, program: &str, args: &[&str]) -> Output {
    let out = Command::new(program)
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("$ {program} {}\n{stdout}{stderr}", args.join(" "));
    out
}

fn ok(dir: &Path, program: &str, args: &[&str]) -> String {
    let out = run(dir, program, args);
    assert!(out.status.success(), "{program} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const ROTATOR: &str = env!("CARGO_BIN_EXE_rotator");

/// Every file under `dir`, but build output.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() && !["target", "node_modules", "__pycache__"].contains(&name.as_str()) {
            out.extend(files(&path));
        } else if path.is_file() && !name.ends_with(".wasm") {
            out.push(path);
        }
    }
    out
}

/// The commands of the ` ```sh ` blocks under `## {section}` in
/// docs/tutorial.md, in order (the ` ```bash ` blocks install toolchains).
fn tutorial(section: &str) -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("docs/tutorial.md")).unwrap();
    let (mut here, mut in_sh, mut steps) = (false, false, Vec::new());
    for line in text.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            here = heading == section;
        } else if line.starts_with("```") {
            in_sh = here && !in_sh && line == "```sh";
        } else if in_sh && !line.trim().is_empty() {
            steps.push(line.trim().to_owned());
        }
    }
    assert!(steps.len() >= 4, "docs/tutorial.md has no ```sh steps under `## {section}`");
    steps
}

/// Follow the tutorial's section for one language in a fresh folder, with
/// `rotator` and `tools` on `PATH`; then check what each step promised.
fn newcomer(section: &str, tools: Option<&Path>) {
    let outputs = follow(section, tools, &[]);
    let output = |prefix: &str| &outputs.iter().find(|(step, _)| step.starts_with(prefix)).unwrap().1;
    let report = output("rotator plugin test");
    assert!(report.contains("conforms: 4 passed, 0 failed"), "{report}");
    let inspected = output("rotator plugin inspect");
    assert!(inspected.contains("name:         my-rotator") && inspected.contains("capabilities: none"), "{inspected}");
}

/// The ` ```sh ` steps of `section`, run in a fresh folder with `env` set
/// (the `$VARS` the steps name) and `rotator` and `tools` on `PATH`; checks
/// the project is standalone and `plugin build` told the truth about the
/// component the first step named. Returns each step with its output.
fn follow(section: &str, tools: Option<&Path>, env: &[(&str, &str)]) -> Vec<(String, String)> {
    let tmp = tempfile::tempdir().unwrap();
    let bin = Path::new(ROTATOR).parent().unwrap().to_owned();
    let path: Vec<PathBuf> = [Some(bin), tools.map(Path::to_owned)].into_iter().flatten().collect();
    let path =
        std::env::join_paths(path.iter().cloned().chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())));
    let path = path.unwrap();
    let mut cwd = tmp.path().to_owned();
    let mut outputs = Vec::new();
    for step in tutorial(section) {
        if let Some(dir) = step.strip_prefix("cd ") {
            cwd = cwd.join(dir);
            continue;
        }
        let out = Command::new("sh")
            .current_dir(&cwd)
            .args(["-c", &step])
            .env("PATH", &path)
            // Shared with the built-in plugins; no registry access needed.
            .env("CARGO_TARGET_DIR", repo().join("plugins/target"))
            .env("CARGO_NET_OFFLINE", "true")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        println!("$ {step}\n{stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "`{step}` failed: {}", String::from_utf8_lossy(&out.stderr));
        outputs.push((step, stdout));
    }
    let output = |prefix: &str| &outputs.iter().find(|(step, _)| step.starts_with(prefix)).unwrap().1;

    // Standalone: no file names this checkout or leans on its workspace.
    let repo = repo().to_string_lossy().into_owned();
    let written = files(&cwd);
    assert!(written.iter().any(|f| f.ends_with("README.md")) && written.iter().any(|f| f.ends_with("wit/world.wit")));
    for file in &written {
        let text = std::fs::read_to_string(file).unwrap();
        for leak in [repo.as_str(), "workspace = true", "../../", "/work/"] {
            assert!(!text.contains(leak), "{} contains `{leak}`", file.display());
        }
        assert!(!text.contains("{{"), "{} has an unfilled placeholder", file.display());
    }

    let name = outputs[0].0.strip_prefix("rotator plugin new ").unwrap().split(' ').next().unwrap().to_owned();
    let bytes = std::fs::read(cwd.join(format!("{name}.wasm"))).unwrap();
    let built = output("rotator plugin build");
    assert!(built.contains(&format!("component: ./{name}.wasm")), "{built}");
    assert!(built.contains(&format!("size:      {} bytes", bytes.len())), "{built}");
    assert!(built.contains(&format!("sha256:    {}", hex::encode(Sha256::digest(&bytes)))), "{built}");
    let report = output("rotator plugin test");
    assert!(report.contains(&format!("plugin {name}@0.1.0")), "{report}");
    outputs
}

#[test]
fn the_tutorial_in_rust_builds_a_conforming_plugin() {
    newcomer("Rust", None);
}

/// A role `app_user` with a first password on a fresh PostgreSQL, the
/// tutorial's `section` run against it (with `tools` on `PATH`), then: the
/// report conforms and holds no password, the first password no longer logs
/// in, and the role's stored password changed. Returns `plugin inspect`'s
/// output.
fn sql_template_against_postgres(section: &str, tools: Option<&Path>) -> String {
    use rotator_tests::postgres::{Postgres, SUPERUSER_PASSWORD};
    let pg = Postgres::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let first = "first-password-of-app-user";
    let admin = rt.block_on(pg.connect("postgres", SUPERUSER_PASSWORD)).unwrap();
    let stored = "SELECT rolpassword FROM pg_authid WHERE rolname = 'app_user'";
    let before: String = rt.block_on(async {
        admin.batch_execute(&format!("CREATE ROLE app_user LOGIN PASSWORD '{first}'")).await.unwrap();
        admin.query_one(stored, &[]).await.unwrap().get(0)
    });
    assert!(rt.block_on(pg.logs_in("app_user", first)));

    let port = pg.port.to_string();
    let env = [
        ("PGHOST", "127.0.0.1"),
        ("PGPORT", port.as_str()),
        ("PGUSER", "postgres"),
        ("PGPASSWORD", SUPERUSER_PASSWORD),
        ("APP_PASSWORD", first),
    ];
    let outputs = follow(section, tools, &env);
    let output = |prefix: &str| outputs.iter().find(|(step, _)| step.starts_with(prefix)).unwrap().1.clone();
    let report = output("rotator plugin test");
    assert!(report.contains("conforms: 4 passed, 0 failed, 1 skipped"), "{report}");
    assert!(report.contains("declared capabilities: sql app\ngrants: sql app"), "{report}");
    let connection =
        format!("sql connection app → postgres://127.0.0.1:{port}/postgres (admin from $PGUSER/$PGPASSWORD)");
    assert!(report.contains(&connection), "{report}");
    assert!(!report.contains(first) && !report.contains(SUPERUSER_PASSWORD), "{report}");

    assert!(!rt.block_on(pg.logs_in("app_user", first)), "the first password still logs in");
    let after: String = rt.block_on(async { admin.query_one(stored, &[]).await.unwrap().get(0) });
    assert_ne!(before, after, "the role's stored password did not change");
    output("rotator plugin inspect")
}

/// The sql template against a real PostgreSQL: the tutorial's commands, with
/// the admin's credentials in the environment and the role's first password
/// as the initial secret.
#[test]
fn the_tutorial_sql_template_rotates_a_real_postgres_password() {
    let inspected = sql_template_against_postgres("A database password (Rust, template sql)", None);
    assert!(inspected.contains("name:         my-db-rotator") && inspected.contains("sql *"), "{inspected}");
}

/// The same in Python, built by componentize-py.
#[test]
fn the_tutorial_sql_template_in_python_rotates_a_real_postgres_password() {
    let (venv, _) = polyglot_tools();
    let inspected = sql_template_against_postgres("A database password (Python, template sql)", Some(&venv));
    assert!(inspected.contains("name:         my-py-db-rotator") && inspected.contains("sql *"), "{inspected}");
}

/// The same in JavaScript, built by componentize-js.
#[test]
fn the_tutorial_sql_template_in_javascript_rotates_a_real_postgres_password() {
    let (_, node_bin) = polyglot_tools();
    let inspected = sql_template_against_postgres("A database password (JavaScript, template sql)", Some(&node_bin));
    assert!(inspected.contains("name:         my-js-db-rotator") && inspected.contains("sql *"), "{inspected}");
}

/// A user `app_user` with a first password on the shared RabbitMQ (one
/// language at a time: the tutorial names that user), the tutorial's
/// `section` run against its management API, then: the report conforms and holds no
/// password, the first password no longer logs in, and the user kept its
/// tags (the `PUT` carried them). Returns `plugin inspect`'s output.
fn http_template_against_rabbitmq(section: &str, tools: Option<&Path>) -> String {
    use rotator_tests::rabbitmq;
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let rabbit = rabbitmq::shared();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let first = "first-password-of-app-user";
    rt.block_on(rabbit.create_user("app_user", first, &["monitoring"]));
    assert!(rt.block_on(rabbit.authenticates("app_user", first)));

    let url = rabbit.base_url();
    let env = [
        ("API_URL", url.as_str()),
        ("API_ADMIN", rabbit.admin_user()),
        ("API_ADMIN_PASSWORD", rabbit.admin_password()),
        ("APP_PASSWORD", first),
    ];
    let outputs = follow(section, tools, &env);
    let output = |prefix: &str| outputs.iter().find(|(step, _)| step.starts_with(prefix)).unwrap().1.clone();
    let report = output("rotator plugin test");
    assert!(report.contains("conforms: 4 passed, 0 failed, 1 skipped"), "{report}");
    assert!(report.contains("PASS idempotent-steps"), "{report}");
    let http = format!("http {url} /api/users/,/api/whoami [GET,PUT]");
    assert!(report.contains(&format!("grants: +/data/* [read]; {http}\n")), "{report}");
    assert!(!report.contains(first) && !report.contains(rabbit.admin_password()), "{report}");

    assert!(!rt.block_on(rabbit.authenticates("app_user", first)), "the first password still logs in");
    let (status, user) = rt.block_on(rabbit.api("GET", "/api/users/app_user", None));
    assert_eq!(status, 200);
    let tags = user["tags"].to_string();
    assert!(tags.contains("monitoring") && tags.contains("management"), "{tags}");
    output("rotator plugin inspect")
}

/// The http template against a real RabbitMQ's management API: the
/// tutorial's commands, with the administrator's credential seeded from a
/// file.
#[test]
fn the_tutorial_http_template_rotates_a_real_rabbitmq_password() {
    let inspected = http_template_against_rabbitmq("An HTTP API password (Rust, template http)", None);
    assert!(inspected.contains("name:         my-api-rotator") && inspected.contains("http"), "{inspected}");
}

/// The same in Python, built by componentize-py.
#[test]
fn the_tutorial_http_template_in_python_rotates_a_real_rabbitmq_password() {
    let (venv, _) = polyglot_tools();
    let inspected = http_template_against_rabbitmq("An HTTP API password (Python, template http)", Some(&venv));
    assert!(inspected.contains("name:         my-py-api-rotator") && inspected.contains("http"), "{inspected}");
}

/// The same in JavaScript, built by componentize-js.
#[test]
fn the_tutorial_http_template_in_javascript_rotates_a_real_rabbitmq_password() {
    let (_, node_bin) = polyglot_tools();
    let inspected = http_template_against_rabbitmq("An HTTP API password (JavaScript, template http)", Some(&node_bin));
    assert!(inspected.contains("name:         my-js-api-rotator") && inspected.contains("http"), "{inspected}");
}

/// `plugin test --sql` refuses credentials in the URL and unset admin
/// variables before it runs anything, quoting neither password.
#[test]
fn plugin_test_refuses_a_password_on_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let args = |sql: &str, vars: &str| {
        let out = Command::new(ROTATOR)
            .current_dir(tmp.path())
            .args(["plugin", "test", "kv-random", "--sql", sql, "--sql-admin-env", vars])
            .env_remove("ROTATOR_TEST_UNSET_PASSWORD")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let e = args("app=postgres://admin:hunter2hunter2@127.0.0.1/db", "PATH:HOME");
    assert!(e.contains("must not hold credentials") && !e.contains("hunter2hunter2"), "{e}");
    let e = args("app=postgres://127.0.0.1/db", "PATH:ROTATOR_TEST_UNSET_PASSWORD");
    assert!(e.contains("ROTATOR_TEST_UNSET_PASSWORD is not set"), "{e}");
    let out = Command::new(ROTATOR)
        .args(["plugin", "test", "kv-random", "--initial-secret", "{\"password\": hunter2hunter2}"])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("--initial-secret") && !e.contains("hunter2hunter2"), "{e}");
}

#[test]
fn the_tutorial_in_python_builds_a_conforming_plugin() {
    let (venv, _) = polyglot_tools();
    newcomer("Python", Some(&venv));
}

#[test]
fn the_tutorial_in_javascript_builds_a_conforming_plugin() {
    let (_, node_bin) = polyglot_tools();
    newcomer("JavaScript", Some(&node_bin));
}

/// The install lines the test cannot run (they need the network) name the
/// versions the examples pin, which are the ones installed here.
#[test]
fn the_tutorial_installs_the_pinned_tools() {
    let text = std::fs::read_to_string(repo().join("docs/tutorial.md")).unwrap();
    let pin = std::fs::read_to_string(repo().join("plugins/examples/python-kv/requirements.txt")).unwrap();
    assert!(text.contains(&format!(".venv/bin/pip install {}", pin.trim())), "{pin}");
}

/// A fresh project of `lang` in a temp folder, with `tests/helpers/<files>` copied in.
fn project_with_helper_tests(lang: &str, files: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("p");
    ok(tmp.path(), ROTATOR, &["plugin", "new", "helper-check", "--lang", lang, "--dir", project.to_str().unwrap()]);
    for file in files {
        let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/helpers").join(file);
        std::fs::copy(&from, project.join(file)).unwrap();
    }
    (tmp, project)
}

/// `rotator_plugin.py` against the bindings componentize-py generates from
/// the project's own WIT: settings, fields, handles, the error mapping.
#[test]
fn the_python_helper_module_works_natively() {
    let (venv, _) = polyglot_tools();
    let (tmp, project) = project_with_helper_tests("python", &["test_rotator_plugin.py"]);
    let bindings = tmp.path().join("bindings");
    let componentize = venv.join("componentize-py");
    let args = ["-d", "wit", "-w", "plugin", "bindings", bindings.to_str().unwrap()];
    ok(&project, componentize.to_str().unwrap(), &args);
    let out = Command::new("python3")
        .current_dir(&project)
        .args(["-m", "unittest", "-v", "test_rotator_plugin"])
        .env("PYTHONPATH", &bindings)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{report}");
    assert!(report.contains("Ran 5 tests") && report.contains("OK"), "{report}");
}

/// `rotator-plugin.js` with its `rotator:plugin/…` imports pointed at a
/// recording stub (they exist only inside a component).
#[test]
fn the_javascript_helper_module_works_natively() {
    let (_tmp, project) = project_with_helper_tests("js", &["rotator-plugin.test.js", "host-stub.js"]);
    let helper = project.join("rotator-plugin.js");
    let text = std::fs::read_to_string(&helper).unwrap();
    let mut stubbed = String::new();
    for line in text.lines() {
        match line.split_once(" from \"rotator:plugin/") {
            Some((import, _)) => stubbed.push_str(&format!("{import} from \"./host-stub.js\";\n")),
            None => stubbed.push_str(&format!("{line}\n")),
        }
    }
    assert_eq!(stubbed.matches("./host-stub.js").count(), 4, "{stubbed}");
    std::fs::write(&helper, stubbed).unwrap();
    let out = run(&project, "node", &["--test", "rotator-plugin.test.js"]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert!(report.contains("# pass 6") && report.contains("# fail 0"), "{report}");
}

#[test]
fn hostile_names_are_refused_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let long = "a".repeat(65);
    for name in [
        "../escape",
        "a/b",
        "a\\b",
        "..",
        ".hidden",
        "Upper",
        "9lives",
        "-flag",
        "trailing-",
        "self",
        "sp ace",
        "ünï",
        "",
        &long,
    ] {
        let out = run(tmp.path(), ROTATOR, &["plugin", "new", "--lang", "rust", "--", name]);
        assert!(!out.status.success(), "`{name}` was accepted");
        assert!(String::from_utf8_lossy(&out.stderr).contains("cannot name a plugin"), "{name}");
    }
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0, "something was written");
}

#[test]
fn a_non_empty_folder_is_never_written_into() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("notes.txt"), "mine").unwrap();
    let dir = tmp.path().to_str().unwrap();
    let out = run(tmp.path(), ROTATOR, &["plugin", "new", "mine", "--lang", "python", "--dir", dir]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists and is not an empty folder"));
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
    assert_eq!(std::fs::read_to_string(tmp.path().join("notes.txt")).unwrap(), "mine");
    // A file in the way is refused the same way.
    let file = tmp.path().join("notes.txt");
    let out = run(tmp.path(), ROTATOR, &["plugin", "new", "mine", "--lang", "js", "--dir", file.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists and is not an empty folder"));
}

#[test]
fn build_names_what_is_missing_and_how_to_get_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(tmp.path(), ROTATOR, &["plugin", "build"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds no plugin project"));

    // Each language with its toolchain off PATH: the error names the tool
    // and the command that installs it, and no component is left behind.
    for (lang, says) in [
        ("python", "componentize-py is missing; install it with: python3 -m venv .venv"),
        ("js", "node is missing; install it with: Node.js 20 or later"),
        ("rust", "cargo is missing; install it with: https://rustup.rs"),
    ] {
        let name = format!("lonely-{lang}");
        ok(tmp.path(), ROTATOR, &["plugin", "new", &name, "--lang", lang]);
        let out = Command::new(ROTATOR)
            .current_dir(tmp.path().join(&name))
            .args(["plugin", "build"])
            .env("PATH", "/nonexistent")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{lang}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{lang}: {stderr}");
        assert!(!tmp.path().join(&name).join(format!("{name}.wasm")).exists(), "{lang}");
    }
}
