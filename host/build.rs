//! Builds the guest crates in `../plugins` to `wasm32-wasip2` components.
//!
//! A nested `cargo build --release` runs in the plugins workspace with its own
//! target dir (`plugins/target`), so guest and host builds never share flags
//! or locks. The built-in plugins are copied into `OUT_DIR` and embedded in
//! the `rotator` binary (see `src/builtin.rs`); the fixture plugins used by
//! tests are left where the build put them and their folder is exported as
//! `ROTATOR_PLUGIN_DIR`.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
/// Built-in plugins: crate names whose components are embedded.
const BUILTINS: &[&str] = &["kv_random", "database_root", "postgres_password"];

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let plugins = manifest.join("../plugins").canonicalize().expect("plugins/ next to host/");
    let wit = manifest.join("../wit").canonicalize().expect("wit/ next to host/");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let target_dir = plugins.join("target");

    watch(&plugins);
    watch(&wit);
    ensure_target();

    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&plugins)
        .args(["build", "--release", "--workspace", "--target", TARGET, "--target-dir"])
        .arg(&target_dir);
    // The outer build's flags and wrappers are for the host target (or for
    // clippy/coverage); none of them belongs in the guest build.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_LLVM_COV",
        "LLVM_PROFILE_FILE",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("running cargo for the plugins");
    assert!(status.success(), "building plugins/ for {TARGET} failed (see the errors above)");

    let built = target_dir.join(TARGET).join("release");
    for name in BUILTINS {
        let from = built.join(format!("{name}.wasm"));
        std::fs::copy(&from, out.join(format!("{name}.wasm")))
            .unwrap_or_else(|e| panic!("copying {}: {e}", from.display()));
    }
    println!("cargo:rustc-env=ROTATOR_PLUGIN_DIR={}", built.display());
}

/// Rebuild when any source of the guest crates or the WIT changes, and only
/// then: a file is watched, never a folder (cargo scans a watched folder
/// whole, and the folders below hold the guest build's own output, so every
/// build would trigger the next). Build output and the Python/JavaScript
/// examples, which cargo does not build, are not watched.
fn watch(dir: &Path) {
    const NOT_SOURCES: &[&str] = &["target", "examples", "node_modules", ".venv", "__pycache__"];
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.file_name().is_some_and(|n| NOT_SOURCES.iter().any(|skip| n == *skip)) {
            continue;
        }
        if path.is_dir() {
            watch(&path);
        } else {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}

/// `rust-toolchain.toml` names the target, but rustup only installs it with a
/// new toolchain; add it to an existing one too.
fn ensure_target() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc).args(["--print", "sysroot"]).output().ok();
    let has_target = sysroot
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()).join("lib/rustlib").join(TARGET).exists())
        .unwrap_or(false);
    if has_target {
        return;
    }
    let added = Command::new("rustup").args(["target", "add", TARGET]).status();
    if !added.is_ok_and(|s| s.success()) {
        panic!("the {TARGET} target is missing; install it with `rustup target add {TARGET}`");
    }
}
