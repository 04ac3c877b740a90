//! Compiles guest crates of the `plugins/` workspace to `wasm32-wasip2`
//! components, for build scripts.
//!
//! Two build scripts use it: `rotator-core`'s, which embeds the built-in
//! plugins (and builds nothing else, so `cargo install` compiles only what
//! ships), and `rotator-test-artifacts`', which builds the hostile and
//! test-only fixtures for this repository's tests and benchmarks.
//!
//! A nested `cargo build --release` runs in the plugins workspace with its own
//! target dir (`plugins/target`), so guest and host builds never share flags;
//! two build scripts building at once take turns on cargo's lock.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The guest target.
pub const TARGET: &str = "wasm32-wasip2";

/// The `plugins/` and `wit/` folders of this repository, found from a build
/// script's manifest dir by walking up.
pub struct Repo {
    pub plugins: PathBuf,
    pub wit: PathBuf,
}

impl Repo {
    pub fn find() -> Repo {
        let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("run from a build script"));
        let root = manifest
            .ancestors()
            .find(|dir| dir.join("plugins/Cargo.toml").is_file() && dir.join("wit").is_dir())
            .expect("plugins/ and wit/ in a folder above the crate");
        Repo { plugins: root.join("plugins"), wit: root.join("wit") }
    }

    /// Where the guest build puts its components.
    pub fn output(&self) -> PathBuf {
        self.plugins.join("target").join(TARGET).join("release")
    }

    /// Builds `packages` of the plugins workspace (all of it when empty) and
    /// returns the folder holding the `.wasm` files.
    pub fn build(&self, packages: &[&str]) -> PathBuf {
        ensure_target();
        let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(&self.plugins).args(["build", "--release", "--target", TARGET, "--target-dir"]);
        cmd.arg(self.plugins.join("target"));
        if packages.is_empty() {
            cmd.arg("--workspace");
        }
        for p in packages {
            cmd.args(["-p", p]);
        }
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
        self.output()
    }
}

/// Rebuild when any source file below `dir` changes, and only then: a file is
/// watched, never a folder (cargo scans a watched folder whole, and the folders
/// below hold the guest build's own output, so every build would trigger the
/// next). Build output and the Python/JavaScript examples, which cargo does
/// not build, are not watched.
pub fn watch(dir: &Path) {
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
