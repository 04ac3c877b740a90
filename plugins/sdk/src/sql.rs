//! SQL through the host: statements and login probes on a connection the
//! operator declared and granted to the job.
//!
//! Pass every value, above all a password, as a parameter (`$1`, `$2`, …),
//! never inside the statement text: the host binds parameters, or for
//! utility statements like `ALTER ROLE` (which PostgreSQL cannot prepare)
//! substitutes them as safely quoted literals, and keeps them out of its
//! logs and errors. Identifiers cannot be parameters; quote them with
//! [`quote_ident`].
//!
//! ```no_run
//! use rotator_plugin_sdk::{RotateError, sql};
//!
//! fn set_password(password: &str) -> Result<(), RotateError> {
//!     let db = sql::connection("app");
//!     let role = sql::quote_ident("app_user")?;
//!     db.execute(&format!("ALTER ROLE {role} PASSWORD $1"), &[password.into()])?;
//!     if !db.try_login("app_user", password)? {
//!         return Err(RotateError::Permanent("the new password does not log in".into()));
//!     }
//!     Ok(())
//! }
//! ```

use crate::RotateError;
use crate::rotator::plugin::sql as host;
pub use crate::rotator::plugin::sql::{SqlError, SqlValue};

/// A declared SQL connection, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    name: String,
}

/// The connection called `name` (as in `[sql.connections.<name>]`).
pub fn connection(name: &str) -> Connection {
    Connection { name: name.to_owned() }
}

impl Connection {
    /// The connection's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Run a statement that returns no rows; the rows affected.
    pub fn execute(&self, statement: &str, params: &[SqlValue]) -> Result<u64, SqlError> {
        host::execute(&self.name, statement, params)
    }

    /// Run a statement and return its rows.
    pub fn query(&self, statement: &str, params: &[SqlValue]) -> Result<Vec<Vec<SqlValue>>, SqlError> {
        host::query(&self.name, statement, params)
    }

    /// The first column of the first row, if there is a row.
    pub fn query_value(&self, statement: &str, params: &[SqlValue]) -> Result<Option<SqlValue>, SqlError> {
        Ok(self.query(statement, params)?.into_iter().next().and_then(|row| row.into_iter().next()))
    }

    /// Does the server accept `username` with `password`? `Ok(false)` means
    /// rejected as bad credentials (wrong password, no such role, NOLOGIN).
    pub fn try_login(&self, username: &str, password: &str) -> Result<bool, SqlError> {
        host::try_login(&self.name, username, password)
    }
}

/// Quote an identifier (a role, table or schema name) for PostgreSQL:
/// `app"x` becomes `"app""x"`. A NUL character cannot be quoted.
///
/// ```
/// # use rotator_plugin_sdk::sql::quote_ident;
/// assert_eq!(quote_ident("app_user").unwrap(), r#""app_user""#);
/// assert_eq!(quote_ident(r#"we"ird"#).unwrap(), r#""we""ird""#);
/// assert!(quote_ident("").is_err());
/// ```
pub fn quote_ident(name: &str) -> Result<String, RotateError> {
    if name.is_empty() || name.contains('\0') {
        return Err(RotateError::InvalidConfig(format!("`{}` is not a valid SQL identifier", name.escape_debug())));
    }
    Ok(format!("\"{}\"", name.replace('"', "\"\"")))
}

impl From<&str> for SqlValue {
    fn from(s: &str) -> Self {
        SqlValue::Text(s.to_owned())
    }
}

impl From<String> for SqlValue {
    fn from(s: String) -> Self {
        SqlValue::Text(s)
    }
}

impl From<i64> for SqlValue {
    fn from(n: i64) -> Self {
        SqlValue::Int(n)
    }
}

impl From<bool> for SqlValue {
    fn from(b: bool) -> Self {
        SqlValue::Boolean(b)
    }
}

impl From<f64> for SqlValue {
    fn from(f: f64) -> Self {
        SqlValue::Float(f)
    }
}

impl<T: Into<SqlValue>> From<Option<T>> for SqlValue {
    fn from(v: Option<T>) -> Self {
        v.map_or(SqlValue::Null, Into::into)
    }
}

impl From<SqlError> for RotateError {
    /// An unreachable database is worth a retry; a denial, an undeclared
    /// connection or a rejected statement is not.
    fn from(e: SqlError) -> Self {
        match e {
            SqlError::Denied(m) => RotateError::Permanent(format!("sql access denied: {m}")),
            SqlError::UnknownConnection(m) => RotateError::InvalidConfig(format!("sql: {m}")),
            SqlError::Failed(m) => RotateError::Permanent(format!("sql statement failed: {m}")),
            SqlError::Unavailable(m) => RotateError::Transient(format!("database unavailable: {m}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_with_doubled_quotes() {
        assert_eq!(quote_ident("app_user").unwrap(), "\"app_user\"");
        assert_eq!(quote_ident("we\"ird").unwrap(), "\"we\"\"ird\"");
        assert!(quote_ident("").is_err());
        assert!(quote_ident("a\0b").is_err());
    }
}
