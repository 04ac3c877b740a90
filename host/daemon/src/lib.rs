//! rotator's long-running daemon: the composition root that turns a
//! [`Config`](rotator_core::config::Config) into running parts.
//!
//! - [`setup`]: from a config to an authenticated Vault client, loaded
//!   plugins and jobs.
//! - [`scheduler`]: when each job runs: its state in Vault, retries,
//!   `not_within`, the concurrency limit, `rotate now`.
//! - [`reload`]: the config file read again on `SIGHUP` or `POST /reload`.
//! - [`api`]: the operator HTTP API and its dashboard.
//! - [`daemon`]: the daemon's tasks together (scheduler, API, token and
//!   lease renewal) and clean shutdown.
//!
//! The domain (config, plugins, the rotation protocol, the Vault client)
//! lives in `rotator-core`; nothing here speaks to a plugin or to Vault
//! except through it.

pub mod api;
pub mod daemon;
pub mod reload;
pub mod replicas;
pub mod scheduler;
pub mod setup;
pub mod start;
