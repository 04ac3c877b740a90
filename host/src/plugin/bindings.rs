//! Host bindings generated from `wit/` (`rotator:plugin@0.1.0`, world
//! `plugin`). The WIT is the contract; this module only instantiates it.
//! Imports are synchronous: a plugin run lives on a blocking thread and host
//! functions that need Vault block on the daemon's runtime.

wasmtime::component::bindgen!({
    world: "plugin",
    path: "../wit",
});

pub use self::rotator::plugin::types;
pub use exports::rotator::plugin::rotator::Guest;
