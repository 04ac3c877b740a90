//! rotator: a daemon that rotates secrets in Vault with sandboxed
//! WebAssembly rotators.
//!
//! The host (this crate) owns Vault identity, scheduling, staging and audit;
//! each job's rotation logic is a WebAssembly component implementing the
//! versioned WIT in `wit/` (one frozen folder per release). Modules, in the
//! order data flows through them:
//!
//! - [`config`]: the TOML configuration, checked strictly with every error
//!   located by file, line and column.
//! - [`vault`]: the Vault client every Vault call goes through.
//! - [`plugin`]: the wasmtime runtime, capability grants and host imports.
//! - [`rotation`]: the protocol of one rotation (create, set, test, promote,
//!   finish; rollback on failure).
//! - [`daemon`]: scheduling jobs, the HTTP API, clean shutdown.
//! - [`audit`]: the hash-chained (HMAC-keyed, Vault-anchored) JSON-lines record of every rotation step.
//! - [`metrics`]: Prometheus counters, gauges and histograms.
//! - [`supervise`]: panics in daemon tasks caught, logged and counted.
//! - [`devserver`]: an in-memory Vault-compatible server for development.
//! - [`harness`]: the plugin test harness behind `rotator plugin test`.

pub mod audit;
pub mod builtin;
pub mod config;
pub mod crash;
pub mod metrics;
pub mod plugin;
pub mod rotation;
pub mod schedule;
pub mod secret;
pub mod state;
pub mod supervise;
pub mod vault;
