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
