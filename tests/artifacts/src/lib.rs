//! Where the guest components built from `plugins/` are, for tests and
//! benchmarks in this repository only.
//!
//! The production build (`rotator-core`'s build script) builds just the
//! built-in plugins; this crate's build script builds every guest crate,
//! the hostile fixtures included, so `cargo install` never compiles them.

use std::path::{Path, PathBuf};

/// The folder holding every component the guest build produced.
pub const PLUGIN_DIR: &str = env!("ROTATOR_PLUGIN_DIR");

/// Path of the component built from the guest crate `crate_name` (its Rust
/// name, e.g. `fixture_spin` or `kv_random`).
pub fn build_artifact(crate_name: &str) -> PathBuf {
    Path::new(PLUGIN_DIR).join(format!("{crate_name}.wasm"))
}
