//! `rotator plugin build`: turns a plugin project (as `plugin new` writes
//! them) into a component with its language's toolchain, then copies it to
//! `<project>/<name>.wasm` and prints its path, size and sha256. The
//! language is told by the project's manifest: `Cargo.toml` is Rust,
//! `pyproject.toml` or `app.py` Python, `package.json` JavaScript. A missing
//! tool is a typed error that says how to install it; nothing is installed
//! behind the user's back.

use std::fmt;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use sha2::{Digest as _, Sha256};

/// The target every Rust plugin is built for.
const TARGET: &str = "wasm32-wasip2";

/// `rotator plugin build`'s arguments.
#[derive(clap::Args)]
pub struct BuildArgs {
    /// The project folder.
    #[arg(default_value = ".")]
    dir: PathBuf,
}

/// A project's language and the name its component gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Project {
    /// `Cargo.toml`: cargo builds `<crate>.wasm` for wasm32-wasip2.
    Rust { name: String },
    /// `pyproject.toml` or `app.py`: componentize-py builds module `app`.
    Python { name: String },
    /// `package.json`: componentize-js builds `plugin.js`.
    Js { name: String },
}

impl Project {
    fn name(&self) -> &str {
        match self {
            Project::Rust { name } | Project::Python { name } | Project::Js { name } => name,
        }
    }
}

/// Why no component was built.
#[derive(Debug)]
pub enum BuildError {
    /// The folder holds no project of a known language.
    NoProject(PathBuf),
    /// The manifest cannot be read or has no usable name.
    BadManifest { path: PathBuf, why: String },
    /// A tool the build needs is not installed.
    MissingTool { tool: String, install: String },
    /// The toolchain ran and failed (its own output says why).
    Failed { tool: String, status: std::process::ExitStatus },
    /// The toolchain succeeded but named no component.
    NoComponent(String),
    /// Reading or copying files failed.
    Io { path: PathBuf, source: std::io::Error },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::NoProject(dir) => write!(
                f,
                "{} holds no plugin project (no Cargo.toml, pyproject.toml, app.py or package.json); \
                 `rotator plugin new` writes one",
                dir.display()
            ),
            BuildError::BadManifest { path, why } => write!(f, "{}: {why}", path.display()),
            BuildError::MissingTool { tool, install } => write!(f, "{tool} is missing; install it with: {install}"),
            BuildError::Failed { tool, status } => write!(f, "{tool} failed ({status}); its output above says why"),
            BuildError::NoComponent(tool) => write!(f, "{tool} succeeded but produced no component"),
            BuildError::Io { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl std::error::Error for BuildError {}

/// What the manifests in `dir` say the project is.
pub fn detect(dir: &Path) -> Result<Project, BuildError> {
    let manifest = |file: &str| dir.join(file);
    if manifest("Cargo.toml").is_file() {
        let name = toml_name(&manifest("Cargo.toml"), "package")?;
        return Ok(Project::Rust { name: name.replace('-', "_") });
    }
    if manifest("pyproject.toml").is_file() {
        return Ok(Project::Python { name: toml_name(&manifest("pyproject.toml"), "project")? });
    }
    if manifest("app.py").is_file() {
        return Ok(Project::Python { name: folder_name(dir)? });
    }
    if manifest("package.json").is_file() {
        let path = manifest("package.json");
        let json: serde_json::Value = serde_json::from_str(&read(&path)?)
            .map_err(|e| BuildError::BadManifest { path: path.clone(), why: e.to_string() })?;
        let name = json["name"].as_str().ok_or_else(|| no_name(&path))?;
        return Ok(Project::Js { name: checked(name, &path)? });
    }
    Err(BuildError::NoProject(dir.to_owned()))
}

fn read(path: &Path) -> Result<String, BuildError> {
    std::fs::read_to_string(path).map_err(|source| BuildError::Io { path: path.to_owned(), source })
}

fn no_name(path: &Path) -> BuildError {
    BuildError::BadManifest { path: path.to_owned(), why: "it names no project".into() }
}

/// `name` if it may name a file in the project folder (a plugin name as
/// `plugin new` accepts, `_` allowed for a crate name).
fn checked(name: &str, path: &Path) -> Result<String, BuildError> {
    crate::scaffold::check_name(&name.replace('_', "-"))
        .map(|()| name.to_owned())
        .map_err(|e| BuildError::BadManifest { path: path.to_owned(), why: e.to_string() })
}

/// `[table] name = "…"` of a TOML manifest.
fn toml_name(path: &Path, table: &str) -> Result<String, BuildError> {
    let doc: toml::Table = toml::from_str(&read(path)?)
        .map_err(|e| BuildError::BadManifest { path: path.to_owned(), why: e.to_string() })?;
    let name = doc.get(table).and_then(|t| t.get("name")).and_then(|n| n.as_str()).ok_or_else(|| no_name(path))?;
    checked(name, path)
}

fn folder_name(dir: &Path) -> Result<String, BuildError> {
    let full = dir.canonicalize().map_err(|source| BuildError::Io { path: dir.to_owned(), source })?;
    let name = full.file_name().and_then(|n| n.to_str()).ok_or_else(|| no_name(dir))?;
    checked(name, dir)
}

/// Whether `tool` can be started (on `PATH` or as a path).
fn have(tool: &Path) -> bool {
    Command::new(tool).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

/// `local` if the project installed the tool there, else `tool` from `PATH`.
fn locate(dir: &Path, local: &str, tool: &str, install: &str) -> Result<PathBuf, BuildError> {
    let local = dir.join(local);
    if local.is_file() {
        return Ok(local);
    }
    if have(Path::new(tool)) {
        return Ok(PathBuf::from(tool));
    }
    Err(BuildError::MissingTool { tool: tool.into(), install: install.into() })
}

/// Run `cmd` with the user's terminal as its output.
fn run_tool(tool: &str, cmd: &mut Command) -> Result<(), BuildError> {
    let status = cmd.status().map_err(|e| BuildError::MissingTool { tool: tool.into(), install: e.to_string() })?;
    if status.success() { Ok(()) } else { Err(BuildError::Failed { tool: tool.into(), status }) }
}

/// Build the project in `dir`; the component's path in the project.
pub fn build(dir: &Path, project: &Project) -> Result<PathBuf, BuildError> {
    let out = dir.join(format!("{}.wasm", project.name().replace('_', "-")));
    match project {
        Project::Rust { name } => {
            let built = cargo_build(dir, name)?;
            std::fs::copy(&built, &out).map_err(|source| BuildError::Io { path: built, source })?;
        }
        Project::Python { .. } => {
            let venv = ".venv/bin/componentize-py";
            let install = format!(
                "python3 -m venv .venv && .venv/bin/pip install componentize-py=={}",
                crate::scaffold::COMPONENTIZE_PY
            );
            let tool = locate(dir, venv, "componentize-py", &install)?;
            let mut cmd = Command::new(tool);
            cmd.current_dir(dir).args(["--quiet", "-d", "wit", "-w", "plugin", "componentize", "--python-path", "."]);
            run_tool("componentize-py", cmd.arg("app").arg("-o").arg(&out))?;
        }
        Project::Js { .. } => {
            if !have(Path::new("node")) {
                let install = "Node.js 20 or later from https://nodejs.org or your package manager";
                return Err(BuildError::MissingTool { tool: "node".into(), install: install.into() });
            }
            let tool =
                locate(dir, "node_modules/.bin/componentize-js", "componentize-js", "npm install (in the project)")?;
            let mut cmd = Command::new(tool);
            // http and fetch-event would import wasi:http, which rotator does
            // not provide: a plugin reaches the network through the host only.
            cmd.current_dir(dir).args(["plugin.js", "--wit", "wit", "--world-name", "plugin"]);
            run_tool("componentize-js", cmd.args(["--disable", "http", "fetch-event", "-o"]).arg(&out))?;
        }
    }
    Ok(out)
}

/// `cargo build --release --target wasm32-wasip2`; the `.wasm` cargo names.
/// Asking cargo for its artifacts keeps any `CARGO_TARGET_DIR` working.
fn cargo_build(dir: &Path, name: &str) -> Result<PathBuf, BuildError> {
    let rustup = "https://rustup.rs, then `rustup target add wasm32-wasip2`";
    if !have(Path::new("cargo")) {
        return Err(BuildError::MissingTool { tool: "cargo".into(), install: rustup.into() });
    }
    let sysroot = Command::new("rustc").current_dir(dir).args(["--print", "sysroot"]).output();
    let sysroot =
        sysroot.ok().filter(|o| o.status.success()).map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    let has_target = sysroot.is_some_and(|s| Path::new(&s).join("lib/rustlib").join(TARGET).is_dir());
    if !has_target {
        // In the project folder rustup reads rust-toolchain.toml, which names
        // the toolchain and the target: one command installs whichever is missing.
        let install = "`rustup toolchain install` in the project folder, or `rustup target add wasm32-wasip2`";
        return Err(BuildError::MissingTool { tool: "the wasm32-wasip2 target".into(), install: install.into() });
    }
    let mut child = Command::new("cargo")
        .current_dir(dir)
        .args(["build", "--release", "--target", TARGET, "--message-format=json-render-diagnostics"])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| BuildError::MissingTool { tool: "cargo".into(), install: format!("{rustup} ({e})") })?;
    let mut wasm = None;
    let stdout = child.stdout.take().expect("stdout is piped");
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
        let is_ours = message["reason"] == "compiler-artifact" && message["target"]["name"] == name;
        if let Some(files) = message["filenames"].as_array().filter(|_| is_ours) {
            wasm = files.iter().filter_map(|f| f.as_str()).find(|f| f.ends_with(".wasm")).map(PathBuf::from).or(wasm);
        }
    }
    let status = child.wait().map_err(|source| BuildError::Io { path: dir.to_owned(), source })?;
    if !status.success() {
        return Err(BuildError::Failed { tool: "cargo".into(), status });
    }
    wasm.ok_or_else(|| BuildError::NoComponent("cargo".into()))
}

/// `rotator plugin build`: build, then print where, how big and which sha256.
pub fn run(args: BuildArgs) -> anyhow::Result<ExitCode> {
    let project = detect(&args.dir)?;
    let lang = match &project {
        Project::Rust { .. } => "Rust",
        Project::Python { .. } => "Python",
        Project::Js { .. } => "JavaScript",
    };
    eprintln!("building {} ({lang}) in {}", project.name(), args.dir.display());
    let out = build(&args.dir, &project)?;
    let bytes = std::fs::read(&out).map_err(|source| BuildError::Io { path: out.clone(), source })?;
    println!("component: {}", out.display());
    println!("size:      {} bytes ({:.1} MiB)", bytes.len(), bytes.len() as f64 / f64::from(1 << 20));
    println!("sha256:    {}", hex::encode(Sha256::digest(&bytes)));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project_with(file: &str, text: &str) -> (tempfile::TempDir, Result<Project, BuildError>) {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join(file), text).unwrap();
        let detected = detect(tmp.path());
        (tmp, detected)
    }

    #[test]
    fn the_manifest_tells_the_language() {
        let name = |n: &str| n.to_owned();
        assert_eq!(
            project_with("Cargo.toml", "[package]\nname = \"my-plugin\"\n").1.unwrap(),
            Project::Rust { name: name("my_plugin") }
        );
        assert_eq!(
            project_with("pyproject.toml", "[project]\nname = \"py\"\n").1.unwrap(),
            Project::Python { name: name("py") }
        );
        assert_eq!(project_with("package.json", r#"{"name": "js"}"#).1.unwrap(), Project::Js { name: name("js") });
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("folder-name");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("app.py"), "").unwrap();
        assert_eq!(detect(&dir).unwrap(), Project::Python { name: name("folder-name") });
        assert!(matches!(detect(tmp.path()), Err(BuildError::NoProject(_))));
    }

    /// The name becomes `<project>/<name>.wasm`: one that could point
    /// elsewhere is refused before anything runs.
    #[test]
    fn a_manifest_name_that_is_not_a_plain_name_is_refused() {
        for (file, text) in [
            ("Cargo.toml", "[package]\nname = \"../../escape\"\n"),
            ("Cargo.toml", "[package]\nversion = \"1\"\n"),
            ("Cargo.toml", "not toml ["),
            ("pyproject.toml", "[project]\nname = \"/etc/passwd\"\n"),
            ("package.json", r#"{"name": "@scope/pkg"}"#),
            ("package.json", r#"{"name": 7}"#),
            ("package.json", "{"),
        ] {
            let (_tmp, detected) = project_with(file, text);
            assert!(matches!(detected, Err(BuildError::BadManifest { .. })), "{file}: {text}: {detected:?}");
        }
    }
}
