//! What the host gives a plugin: one module per capability.
//!
//! [`HostState`] is the per-run state every host function sees: who is
//! calling (job, plugin), what the job is granted, and a record of every call
//! (for audit and the plugin harness). Each capability module implements its
//! WIT interface on it and checks the grants inside every function.

mod log;
mod vault;

use std::sync::Arc;

pub use self::log::LogLine;
pub use self::vault::VaultBridge;
use super::bindings::types;
use super::grants::Grants;

/// One host call a plugin made, as recorded for audit. Never holds values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCall {
    /// `vault.kv-read`, `vault.request`, …
    pub function: &'static str,
    /// The Vault API path (no `/v1/`).
    pub path: String,
    /// `read`, `write`, `delete` or `list`.
    pub operation: &'static str,
    pub outcome: CallOutcome,
}

/// How a host call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallOutcome {
    Ok,
    /// Refused by the job's grants; Vault was not contacted.
    Denied,
    /// Vault or the network failed; the status if Vault answered.
    Failed(Option<u16>),
}

/// The host side of one plugin run.
pub struct HostState {
    pub job_id: String,
    /// `name@version` of the plugin, for log lines.
    pub plugin: String,
    pub grants: Arc<Grants>,
    pub vault: Option<VaultBridge>,
    /// Log lines of the current step, held until the step ends so they can be
    /// redacted with everything the step produced.
    pub logs: Vec<LogLine>,
    pub calls: Vec<HostCall>,
}

impl HostState {
    pub fn new(job_id: String, plugin: String, grants: Arc<Grants>, vault: Option<VaultBridge>) -> Self {
        Self { job_id, plugin, grants, vault, logs: Vec::new(), calls: Vec::new() }
    }
}

impl types::Host for HostState {}
