//! What the host gives a plugin: one module per capability.
//!
//! [`HostState`] is the per-run state every host function sees: who is
//! calling (job, plugin), what the job is granted, and a record of every call
//! (for audit and the plugin harness). Each capability module implements its
//! interface's functions on it in domain types (the WIT adapter,
//! [`crate::plugin::wit`], converts) and checks the grants inside every function, before
//! anything is sent; a read-only run (the dry run's `plan`) also refuses
//! every call that could change state.

mod budget;
pub mod http;
mod log;
mod sql;
mod vault;

use std::sync::Arc;
use std::time::Instant;

use secrecy::SecretString;

pub use self::budget::{CallBudget, Gate, Gated};
use self::http::HttpBridge;
pub use self::log::{LogBuffer, LogLevel};
pub(crate) use self::sql::sessions_of;
pub use self::sql::{SqlError, SqlSessions, SqlValue, SubstituteError, substitute_parameters};
pub use self::vault::{VaultBridge, VaultError};
use super::Step;
use super::grants::Grants;
use super::handles::{Handles, SecretAccess};
use super::run::RunConfig;

/// One host call a plugin made, as recorded for audit. Never holds values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCall {
    /// `vault.kv-read`, `vault.request`, `sql.execute`, `http.send`, …
    pub function: &'static str,
    /// The Vault API path (no `/v1/`), the SQL connection's name, or an
    /// HTTP request's `<origin><path>` (never its query).
    pub path: String,
    /// `read`, `write`, `delete` or `list` for Vault; `execute`, `query` or
    /// `login` for SQL; the HTTP method in lower case.
    pub operation: &'static str,
    /// More about the call, never a value: an SQL statement's first keyword;
    /// for HTTP, `<status> in <ms> ms` or the error's kind.
    pub detail: Option<String>,
    pub outcome: CallOutcome,
}

/// How a host call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallOutcome {
    Ok,
    /// Refused by the job's grants; Vault or the database was not contacted.
    Denied,
    /// Vault, the database or the network failed; the HTTP status if Vault
    /// answered, or if a plugin's HTTP request got a 4xx or 5xx.
    Failed(Option<u16>),
}

/// The host side of one plugin run.
pub struct HostState {
    pub job_id: String,
    /// `name@version` of the plugin, for log lines.
    pub plugin: String,
    pub grants: Arc<Grants>,
    pub vault: Option<VaultBridge>,
    /// The job's SQL connections and this run's open sessions.
    pub sql: SqlSessions,
    /// Log lines of the current step, held until the step ends so they can be
    /// redacted with everything the step produced.
    pub logs: LogBuffer,
    pub calls: Vec<HostCall>,
    /// Vault, SQL and HTTP calls of the current step against the job's cap.
    pub budget: CallBudget,
    pub http: Option<HttpBridge>,
    /// How the plugin is shown secrets, and the run's handles.
    pub access: SecretAccess,
    pub handles: Handles,
    /// The step being run: captures are allowed only in `create`.
    pub step: Step,
    /// When the current step must end; host calls wait no longer.
    pub deadline: Instant,
    /// Values captured from HTTP responses during `create`, by field.
    pub captured: Vec<(String, SecretString)>,
}

impl HostState {
    pub fn new(job_id: String, plugin: String, config: &RunConfig) -> Self {
        Self {
            job_id,
            plugin,
            grants: config.grants.clone(),
            vault: config.vault.clone(),
            sql: SqlSessions::new(config.sql.clone(), config.limits.step_timeout),
            logs: LogBuffer::new(&config.limits.output),
            calls: Vec::new(),
            budget: CallBudget::new(config.limits.output.host_calls),
            http: config.http.clone(),
            access: config.access.clone(),
            handles: Handles::default(),
            step: Step::Describe,
            deadline: Instant::now() + config.limits.step_timeout,
            captured: Vec::new(),
        }
    }
}

/// Why a call outside the job's grants is refused (in the log line).
const NOT_GRANTED: &str = "not in the job's grants";

/// Why a read-only run refuses a call that changes state (in the log line).
const READ_ONLY: &str = "a dry run's plan is read-only";

/// What a plugin is told when a read-only run ([`Grants::read_only`])
/// refuses `what` (`write on `…``, `execute on sql connection `…``).
fn read_only_refusal(what: &str, job: &str) -> String {
    format!("{what} refused: job `{job}` is in a dry run, and `plan` may not change anything")
}

/// Run a host call's I/O on the async runtime, between its crash points
/// (`before:host-call:<n>` / `after:host-call:<n>`, see
/// [`crate::crash`]). Every capability's calls go through here.
pub(crate) fn perform<F: std::future::Future>(handle: &tokio::runtime::Handle, io: F) -> F::Output {
    let n = crate::crash::before_host_call();
    let out = handle.block_on(io);
    crate::crash::after_host_call(n);
    out
}
