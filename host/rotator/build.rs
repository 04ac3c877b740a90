//! Embeds what `rotator plugin new` writes into the binary, so a scaffold
//! needs nothing from this checkout at run time: the WIT folder the Rust SDK
//! is generated from (the version this rotator speaks), the SDK's sources,
//! and `templates/`. Writes `$OUT_DIR/embedded.rs`: a list of
//! `(path, include_str!(…))` pairs plus the WIT version and the toolchain
//! pin, all read from the files they come from so they cannot drift.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

/// How the SDK names its WIT folder; the scaffold rewrites it to `../wit`.
const SDK_WIT_PREFIX: &str = "path: \"../../wit/rotator-plugin@";

/// Folders never embedded: build output and installed tools.
const SKIP: &[&str] = &["target", "node_modules", ".venv", "__pycache__", "out"];

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let repo = manifest.join("../..");
    let sdk = repo.join("plugins/sdk");
    let lib = read(&sdk.join("src/lib.rs"));
    let start = lib.find(SDK_WIT_PREFIX).expect("plugins/sdk/src/lib.rs names its WIT folder") + SDK_WIT_PREFIX.len();
    let version = &lib[start..start + lib[start..].find('"').expect("the WIT path is a string")];
    let wit = repo.join(format!("wit/rotator-plugin@{version}"));
    let toolchain = read(&repo.join("rust-toolchain.toml"));
    let channel = toolchain
        .lines()
        .find_map(|l| l.trim().strip_prefix("channel = \""))
        .and_then(|rest| rest.strip_suffix('"'))
        .expect("rust-toolchain.toml has a channel");

    // The Python and JavaScript tools, pinned where the examples pin them.
    let requirements = repo.join("plugins/examples/python-kv/requirements.txt");
    let package = repo.join("plugins/examples/js-kv/package.json");
    let requirements_txt = read(&requirements);
    let componentize_py = pin(&requirements_txt, "componentize-py==", "\n");
    let package_json = read(&package);
    let componentize_js = pin(&package_json, "\"@bytecodealliance/componentize-js\": \"", "\"");
    let jco = pin(&package_json, "\"@bytecodealliance/jco\": \"", "\"");

    let mut files = Vec::new();
    collect(&wit, "wit", &mut files);
    collect(&sdk.join("src"), "sdk/src", &mut files);
    collect(&manifest.join("templates"), "templates", &mut files);
    // A Rust project formats like this repository, so `cargo fmt` leaves the
    // vendored SDK as it is.
    let rustfmt = repo.join("rustfmt.toml");
    files.push(("templates/rust/rustfmt.toml".into(), rustfmt.canonicalize().expect("rustfmt.toml exists")));
    files.sort();

    let mut out = String::new();
    writeln!(out, "/// The WIT package version the SDK and every scaffold speak.").unwrap();
    writeln!(out, "pub const WIT_VERSION: &str = {version:?};").unwrap();
    writeln!(out, "/// How the SDK's `generate!` names its WIT folder in this checkout.").unwrap();
    writeln!(out, "pub const SDK_WIT_PATH: &str = {:?};", format!("../../wit/rotator-plugin@{version}")).unwrap();
    writeln!(out, "/// The Rust toolchain rotator is built and tested with.").unwrap();
    writeln!(out, "pub const TOOLCHAIN: &str = {channel:?};").unwrap();
    writeln!(out, "/// componentize-py's version, as plugins/examples pins it.").unwrap();
    writeln!(out, "pub const COMPONENTIZE_PY: &str = {componentize_py:?};").unwrap();
    writeln!(out, "/// componentize-js's version, as plugins/examples pins it.").unwrap();
    writeln!(out, "pub const COMPONENTIZE_JS: &str = {componentize_js:?};").unwrap();
    writeln!(out, "/// jco's version, as plugins/examples pins it.").unwrap();
    writeln!(out, "pub const JCO: &str = {jco:?};").unwrap();
    writeln!(out, "/// Every embedded file: its path (`wit/…`, `sdk/src/…`, `templates/…`) and text.").unwrap();
    writeln!(out, "pub static FILES: &[(&str, &str)] = &[").unwrap();
    for (name, path) in &files {
        writeln!(out, "    ({name:?}, include_str!({:?})),", path.display().to_string()).unwrap();
    }
    writeln!(out, "];").unwrap();
    let dest = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("embedded.rs");
    fs::write(dest, out).expect("write embedded.rs");
    for dir in [&wit, &sdk.join("src"), &manifest.join("templates")] {
        println!("cargo:rerun-if-changed={}", dir.display());
    }
    for file in [repo.join("rust-toolchain.toml"), rustfmt, requirements, package] {
        println!("cargo:rerun-if-changed={}", file.display());
    }
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The text between `before` and the next `end` in `text`.
fn pin<'a>(text: &'a str, before: &str, end: &str) -> &'a str {
    let start = text.find(before).unwrap_or_else(|| panic!("no `{before}` pin")) + before.len();
    let rest = &text[start..];
    rest[..rest.find(end).unwrap_or(rest.len())].trim()
}

/// Every file under `dir`, named `prefix/<relative path>` with `/` separators.
fn collect(dir: &Path, prefix: &str, files: &mut Vec<(String, PathBuf)>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().expect("entries have names").to_string_lossy().into_owned();
        if SKIP.contains(&name.as_str()) {
            continue;
        }
        let rel = format!("{prefix}/{name}");
        if path.is_dir() {
            collect(&path, &rel, files);
        } else {
            files.push((rel, path.canonicalize().expect("canonical path")));
        }
    }
}
