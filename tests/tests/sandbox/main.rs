//! Integration tests of the plugin sandbox: grants, canonical Vault paths,
//! caps on what a plugin returns, and SQL imports. One binary per subject
//! because each test binary links wasmtime, cranelift and the dev server
//! (issue 10). Captures logs (`rotator_tests::logs`), so it must not hold a
//! test that installs its own global subscriber.

mod http;
mod http_server;
mod paths;
mod plugin_output;
mod public_fields;
mod sandbox;
mod session;
mod sql_import;
