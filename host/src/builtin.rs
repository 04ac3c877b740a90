//! The plugins that ship inside the `rotator` binary.
//!
//! `build.rs` compiles them from `plugins/` and this module embeds the
//! components, so `rotator` works alone after `cargo install`. A job names a
//! built-in by its plugin name (`plugin = "kv-random"`).

/// A plugin embedded in the binary.
pub struct Builtin {
    pub name: &'static str,
    pub wasm: &'static [u8],
}

/// Every built-in plugin.
pub const BUILTINS: &[Builtin] = &[
    Builtin { name: "kv-random", wasm: include_bytes!(concat!(env!("OUT_DIR"), "/kv_random.wasm")) },
    Builtin { name: "database-root", wasm: include_bytes!(concat!(env!("OUT_DIR"), "/database_root.wasm")) },
    Builtin { name: "postgres-password", wasm: include_bytes!(concat!(env!("OUT_DIR"), "/postgres_password.wasm")) },
];

/// The built-in plugin called `name`.
pub fn find(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

/// Where the build put every guest component, fixtures included. For tests
/// and benchmarks in this repository; an installed binary must not rely on it.
#[doc(hidden)]
pub const BUILD_PLUGIN_DIR: &str = env!("ROTATOR_PLUGIN_DIR");

/// Path of a component built from `plugins/` (e.g. `fixture_spin`).
#[doc(hidden)]
pub fn build_artifact(crate_name: &str) -> std::path::PathBuf {
    std::path::Path::new(BUILD_PLUGIN_DIR).join(format!("{crate_name}.wasm"))
}
