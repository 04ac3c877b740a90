//! The per-step host-call budget: one gate every Vault and SQL call passes
//! before its capability module sees it.
//!
//! The linker hands host functions a [`Gate`] (not the [`HostState`]
//! itself); the WIT adapter asks it for the state, and it counts each call
//! against the job's `host_calls` cap first. A call over the cap is refused with the capability's
//! `denied` error, is not recorded (so a plugin looping on calls cannot grow
//! the host's records or logs), is counted, and fails the step
//! ([`crate::plugin::Failure::HostCallLimit`]); the first refusal of a step
//! is logged once. Log lines have their own cap (`log`), so `log.write` is
//! forwarded without counting.

use wasmtime::component::HasData;

use super::http::HttpError;
use super::{HostState, LogLevel, SqlError, VaultError};

/// The calls of the current step against the cap.
#[derive(Debug, Default, Clone, Copy)]
pub struct CallBudget {
    pub limit: usize,
    pub used: usize,
    /// Calls refused because the cap was reached.
    pub refused: usize,
}

impl CallBudget {
    pub fn new(limit: usize) -> Self {
        Self { limit, ..Self::default() }
    }

    /// A new step starts with the whole budget.
    pub fn reset(&mut self) {
        *self = Self::new(self.limit);
    }
}

impl HostState {
    /// Count one call; the refusal message if the step's budget is spent.
    fn admit(&mut self, function: &str) -> Result<(), String> {
        let b = &mut self.budget;
        if b.used < b.limit {
            b.used += 1;
            return Ok(());
        }
        b.refused += 1;
        if b.refused == 1 {
            tracing::warn!(
                job = %self.job_id,
                plugin = %self.plugin,
                limit = b.limit,
                "plugin reached its host-call limit for this step; further calls are refused"
            );
        }
        Err(format!("{function} refused: job `{}` allows at most {} host calls per step", self.job_id, b.limit))
    }
}

/// What the linker gives host functions: the run's state behind the budget.
pub struct Gate<'a>(pub &'a mut HostState);

/// Marks [`Gate`] as the linker's view of a store (see `Runtime::new`).
pub struct Gated;

impl HasData for Gated {
    type Data<'a> = Gate<'a>;
}

impl Gate<'_> {
    /// The run's state for a Vault call, if the step's budget admits it.
    pub fn vault(&mut self, function: &str) -> Result<&mut HostState, VaultError> {
        self.0.admit(function).map_err(VaultError::Denied)?;
        Ok(self.0)
    }

    /// The run's state for an SQL call, if the step's budget admits it.
    pub fn sql(&mut self, function: &str) -> Result<&mut HostState, SqlError> {
        self.0.admit(function).map_err(SqlError::Denied)?;
        Ok(self.0)
    }

    /// The run's state for an HTTP call, if the step's budget admits it.
    pub fn http(&mut self, function: &str) -> Result<&mut HostState, HttpError> {
        self.0.admit(function).map_err(HttpError::Denied)?;
        Ok(self.0)
    }

    /// The run's state, for what a call does besides the capability
    /// itself (minting handles for what it returns). Not counted.
    pub fn state(&mut self) -> &mut HostState {
        self.0
    }

    /// Keep a log line (log lines have their own cap, not this budget).
    pub fn log(&mut self, level: LogLevel, message: String) {
        self.0.logs.push(level, message);
    }
}
