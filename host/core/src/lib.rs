//! rotator-core: the domain of rotator, a daemon that rotates secrets in
//! Vault with sandboxed WebAssembly rotators. No HTTP server lives here: the
//! daemon, its API and the dev server are crates of their own.
//!
//! The host owns Vault identity, staging and audit; each job's rotation
//! logic is a WebAssembly component implementing the versioned WIT in
//! `wit/` (one frozen folder per release). Modules, leaves first (no module
//! uses one listed after it; `tests/src/architecture.rs` checks it):
//!
//! - [`secret`]: secret values that never print, and references to them.
//! - [`metrics`]: Prometheus counters, gauges and histograms.
//! - [`crash`]: crash points for the fault-injection suite.
//! - [`supervise`]: panics in long-lived tasks caught, logged and counted.
//! - [`pace`]: a rate limit that spaces events evenly.
//! - [`vault`]: the Vault client every Vault call goes through, with token
//!   and lease renewal.
//! - [`aws`]: AWS credentials (the standard chain), SigV4 and the host's
//!   own calls to Secrets Manager and STS.
//! - [`store`]: where a job's secret lives (Vault KV, AWS Secrets Manager)
//!   behind the operations the rotation protocol needs.
//! - [`builtin`]: the plugins embedded in the binary, by name, with the
//!   Flask rotation service's job format each one accepts.
//! - [`state`]: each job's state record in Vault (the staged protocol's
//!   memory across crashes).
//! - [`schedule`]: when jobs run: cron, intervals, windows, jitter, retries.
//! - [`plugin`]: the wasmtime runtime, capability grants and host imports.
//! - [`config`]: the TOML configuration, checked strictly with every error
//!   located by file, line and column.
//! - [`rotation`]: the protocol of one rotation (create, set, test, promote,
//!   finish; rollback on failure).
//! - [`audit`]: the hash-chained (HMAC-keyed, Vault-anchored) JSON-lines
//!   record of every rotation step.

pub mod audit;
pub mod aws;
pub mod builtin;
pub mod config;
pub mod crash;
pub mod metrics;
pub mod pace;
pub mod plugin;
pub mod rotation;
pub mod schedule;
pub mod secret;
pub mod state;
pub mod store;
pub mod supervise;
pub mod vault;
