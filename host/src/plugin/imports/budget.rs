//! The per-step host-call budget: one gate every Vault and SQL call passes
//! before its capability module sees it.
//!
//! The linker hands host functions a [`Gate`] (not the [`HostState`]
//! itself), which counts each call against the job's `host_calls` cap and
//! forwards it. A call over the cap is refused with the capability's
//! `denied` error, is not recorded (so a plugin looping on calls cannot grow
//! the host's records or logs), is counted, and fails the step
//! ([`crate::plugin::Failure::HostCallLimit`]); the first refusal of a step
//! is logged once. Log lines have their own cap (`log`), so `log.write` is
//! forwarded without counting.

use wasmtime::component::HasData;

use super::{HostState, SqlValue};
use crate::plugin::bindings::rotator::plugin::log::{self, Level};
use crate::plugin::bindings::rotator::plugin::sql::{self, SqlError};
use crate::plugin::bindings::rotator::plugin::types::{self, Secret};
use crate::plugin::bindings::rotator::plugin::vault::{self, VaultError};

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

impl types::Host for Gate<'_> {}

impl log::Host for Gate<'_> {
    fn write(&mut self, level: Level, message: String) {
        log::Host::write(self.0, level, message)
    }
}

impl vault::Host for Gate<'_> {
    fn kv_read(&mut self, mount: String, path: String) -> Result<Option<Secret>, VaultError> {
        self.0.admit("vault.kv-read").map_err(VaultError::Denied)?;
        vault::Host::kv_read(self.0, mount, path)
    }

    fn kv_write(&mut self, mount: String, path: String, data: String, cas: Option<u64>) -> Result<u64, VaultError> {
        self.0.admit("vault.kv-write").map_err(VaultError::Denied)?;
        vault::Host::kv_write(self.0, mount, path, data, cas)
    }

    fn request(&mut self, method: String, path: String, body: Option<String>) -> Result<String, VaultError> {
        self.0.admit("vault.request").map_err(VaultError::Denied)?;
        vault::Host::request(self.0, method, path, body)
    }
}

impl sql::Host for Gate<'_> {
    fn execute(&mut self, connection: String, statement: String, params: Vec<SqlValue>) -> Result<u64, SqlError> {
        self.0.admit("sql.execute").map_err(SqlError::Denied)?;
        sql::Host::execute(self.0, connection, statement, params)
    }

    fn query(
        &mut self,
        connection: String,
        statement: String,
        params: Vec<SqlValue>,
    ) -> Result<Vec<Vec<SqlValue>>, SqlError> {
        self.0.admit("sql.query").map_err(SqlError::Denied)?;
        sql::Host::query(self.0, connection, statement, params)
    }

    fn try_login(&mut self, connection: String, username: String, password: String) -> Result<bool, SqlError> {
        self.0.admit("sql.try-login").map_err(SqlError::Denied)?;
        sql::Host::try_login(self.0, connection, username, password)
    }
}
