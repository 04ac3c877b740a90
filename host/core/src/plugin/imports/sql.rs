//! The `sql` import: statements and login probes against the SQL connections
//! the operator declared, checked against the job's grants before anything
//! is sent.
//!
//! Every call names a connection. The grant (connection and operation:
//! execute, query or login) is checked first, so a denied plugin learns
//! nothing about which connections exist and the database is never
//! contacted; the denial is recorded and logged. A read-only run (a dry
//! run's `plan`) is refused every statement, `query` included: the host
//! cannot tell a `SELECT` that writes (through a function or a data-changing
//! `WITH`) from one that does not; a login probe changes nothing and is
//! allowed.
//!
//! An allowed call connects lazily: the admin credentials are resolved from
//! their reference (a KV secret read with the daemon's own Vault identity,
//! or environment variables) when the run first uses the connection, and the
//! session is kept for the rest of the run (dropped with the store).
//! `try-login` always opens its own short session with the credentials it is
//! given.
//!
//! Like the `vault` import, calls run on the plugin's blocking thread and
//! block on the daemon's runtime for the length of one call, bounded by the
//! job's step timeout. Statements the server can prepare get bound
//! parameters; utility statements get them substituted as quoted literals
//! ([`statement`]). Records and errors carry the connection name and the
//! statement's first keyword, never parameter values, and database error
//! messages are scrubbed of them.

mod statement;
mod values;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls};

pub use self::statement::{SubstituteError, substitute as substitute_parameters};
use super::{CallOutcome, HostCall, HostState, NOT_GRANTED, READ_ONLY, VaultBridge};
use crate::plugin::connections::{SqlConnection, SqlConnections, SqlCredentials};
use crate::plugin::grants::SqlOperation;
use crate::secret::Redactor;
use crate::vault::VaultClient;

/// One SQL parameter or result value.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Null,
    Boolean(bool),
    /// int2, int4, int8, oid.
    Int(i64),
    /// float4, float8.
    Float(f64),
    /// Text, or any value of a utility statement's result.
    Text(String),
}

/// Why a plugin's SQL call failed, as the plugin is told. Messages never
/// hold parameter values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlError {
    /// Refused by the host (grants, a read-only run, the host-call budget);
    /// the database was not contacted.
    Denied(String),
    /// No connection of this name is declared for the job.
    UnknownConnection(String),
    /// The database rejected the statement, or it or its parameters are
    /// malformed.
    Failed(String),
    /// The database could not be reached, the admin credentials could not
    /// be resolved, or the call timed out.
    Unavailable(String),
}

/// The SQL side of one plugin run: the job's connections and the sessions
/// opened so far.
pub struct SqlSessions {
    connections: Arc<SqlConnections>,
    timeout: Duration,
    clients: HashMap<String, Client>,
}

impl SqlSessions {
    pub fn new(connections: Arc<SqlConnections>, timeout: Duration) -> Self {
        Self { connections, timeout, clients: HashMap::new() }
    }
}

/// What one call is, for grants, audit and errors.
struct Call<'a> {
    function: &'static str,
    op: SqlOperation,
    connection: &'a str,
    /// The statement's first keyword (empty for logins).
    keyword: String,
}

impl HostState {
    /// Check the grant and find the connection; record a refusal.
    fn sql_authorize(&mut self, call: &Call<'_>) -> Result<(SqlConnection, VaultBridge), SqlError> {
        let what = format!("{} on sql connection `{}`", call.op.as_str(), call.connection);
        let refusal = if self.grants.read_only && call.op.changes_state() {
            Some((READ_ONLY, super::read_only_refusal(&what, &self.job_id)))
        } else if !self.grants.allows_sql(call.op, call.connection) {
            Some((NOT_GRANTED, format!("{what} is not granted to job `{}`", self.job_id)))
        } else {
            None
        };
        if let Some((reason, message)) = refusal {
            self.sql_record(call, CallOutcome::Denied);
            tracing::warn!(
                job = %self.job_id,
                plugin = %self.plugin,
                operation = call.op.as_str(),
                connection = call.connection,
                "plugin call denied: {reason}"
            );
            return Err(SqlError::Denied(message));
        }
        let Some(conn) = self.sql.connections.get(call.connection).cloned() else {
            self.sql_record(call, CallOutcome::Failed(None));
            return Err(SqlError::UnknownConnection(format!(
                "no sql connection `{}` is declared for job `{}`",
                call.connection, self.job_id
            )));
        };
        let Some(bridge) = self.vault.clone() else {
            self.sql_record(call, CallOutcome::Failed(None));
            return Err(SqlError::Unavailable("no runtime for database calls in this run".into()));
        };
        Ok((conn, bridge))
    }

    fn sql_record(&mut self, call: &Call<'_>, outcome: CallOutcome) {
        let detail = (!call.keyword.is_empty()).then(|| call.keyword.clone());
        self.calls.push(HostCall {
            function: call.function,
            path: call.connection.to_owned(),
            operation: call.op.as_str(),
            detail,
            outcome,
        });
    }

    /// Authorize, run a statement on the run's admin session for the
    /// connection (opening it if needed), record the outcome.
    fn sql_statement<R>(
        &mut self,
        function: &'static str,
        op: SqlOperation,
        connection: &str,
        statement: &str,
        params: &[SqlValue],
        run: impl AsyncFnOnce(&Client, Prepared<'_>) -> Result<R, SqlError>,
    ) -> Result<R, SqlError> {
        let call = Call { function, op, connection, keyword: statement::first_keyword(statement) };
        let (conn, bridge) = self.sql_authorize(&call)?;
        let prepared = match Prepared::new(&call.keyword, statement, params) {
            Ok(p) => p,
            Err(e) => {
                self.sql_record(&call, CallOutcome::Failed(None));
                return Err(e);
            }
        };
        let timeout = self.sql.timeout;
        let mut client = self.sql.clients.remove(connection);
        let result = super::perform(&bridge.handle, async {
            tokio::time::timeout(timeout, async {
                if client.as_ref().is_none_or(Client::is_closed) {
                    client = Some(connect_admin(&conn, &bridge.client).await?);
                }
                let client = client.as_ref().expect("connected above");
                run(client, prepared).await
            })
            .await
            .unwrap_or_else(|_| Err(SqlError::Unavailable(format!("sql connection `{connection}` timed out"))))
        });
        if let Some(client) = client {
            self.sql.clients.insert(connection.to_owned(), client);
        }
        let outcome = if result.is_ok() { CallOutcome::Ok } else { CallOutcome::Failed(None) };
        self.sql_record(&call, outcome);
        result.map_err(|e| scrub(e, params))
    }
}

/// A statement ready to send: with bound parameters if the server can
/// prepare it, else with its parameters substituted as literals.
enum Prepared<'a> {
    Bound { statement: &'a str, params: Vec<values::Param<'a>> },
    Substituted(String),
}

impl<'a> Prepared<'a> {
    fn new(keyword: &str, statement: &'a str, params: &'a [SqlValue]) -> Result<Self, SqlError> {
        if statement::is_preparable(keyword) {
            return Ok(Self::Bound { statement, params: params.iter().map(values::Param).collect() });
        }
        statement::substitute(statement, params).map(Self::Substituted).map_err(|e| SqlError::Failed(e.to_string()))
    }
}

fn bound<'p>(params: &'p [values::Param<'_>]) -> Vec<&'p (dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

/// Open a session as the connection's admin, resolving the credentials now.
async fn connect_admin(conn: &SqlConnection, vault: &VaultClient) -> Result<Client, SqlError> {
    let (username, password) = admin_credentials(conn, vault).await?;
    let mut config = conn.pg_config();
    config.user(username).password(password.expose_secret());
    connect(&config).await.map_err(|e| match e.as_db_error() {
        Some(db) => SqlError::Unavailable(format!(
            "sql connection `{}`: the admin login failed: {} (SQLSTATE {})",
            conn.name,
            db.message(),
            db.code().code()
        )),
        None => SqlError::Unavailable(format!("sql connection `{}`: {e}", conn.name)),
    })
}

async fn connect(config: &tokio_postgres::Config) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "sql session ended with an error");
        }
    });
    Ok(client)
}

/// The admin username and password, read from their reference.
async fn admin_credentials(conn: &SqlConnection, vault: &VaultClient) -> Result<(String, SecretString), SqlError> {
    let unavailable =
        |why: String| SqlError::Unavailable(format!("sql connection `{}`: admin credentials: {why}", conn.name));
    match &conn.credentials {
        SqlCredentials::Env { username, password } => {
            let var = |name: &str| std::env::var(name).map_err(|_| unavailable(format!("{name} is not set")));
            Ok((var(username)?, SecretString::from(var(password)?)))
        }
        SqlCredentials::Vault(loc) => {
            let secret = vault
                .kv_read(&loc.mount, &loc.path)
                .await
                .map_err(|e| unavailable(format!("reading {loc}: {e}")))?
                .ok_or_else(|| unavailable(format!("{loc} does not exist")))?;
            let fields = secret.data.fields();
            let field = |name: &str| {
                fields
                    .get(name)
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
                    .ok_or_else(|| unavailable(format!("{loc} has no text field `{name}`")))
            };
            Ok((field("username")?, SecretString::from(field("password")?)))
        }
    }
}

/// How many sessions of `role` the server has open (`pg_stat_activity`),
/// asked as the connection's admin: the adoption gate's PostgreSQL kind.
pub(crate) async fn sessions_of(conn: &SqlConnection, vault: &VaultClient, role: &str) -> Result<i64, String> {
    let said = |e: SqlError| match e {
        SqlError::Denied(m) | SqlError::UnknownConnection(m) | SqlError::Failed(m) | SqlError::Unavailable(m) => m,
    };
    let client = connect_admin(conn, vault).await.map_err(said)?;
    let row = client
        .query_one("SELECT count(*) FROM pg_stat_activity WHERE usename = $1", &[&role])
        .await
        .map_err(|e| said(db_failure(&conn.name, e)))?;
    Ok(row.get::<_, i64>(0))
}

/// A database error as WIT: SQLSTATE and message for a statement the
/// server rejected, `unavailable` for a lost connection.
fn db_failure(connection: &str, e: tokio_postgres::Error) -> SqlError {
    match e.as_db_error() {
        Some(db) => SqlError::Failed(format!("{} (SQLSTATE {})", db.message(), db.code().code())),
        None if e.is_closed() => SqlError::Unavailable(format!("sql connection `{connection}` was closed: {e}")),
        None => SqlError::Failed(e.to_string()),
    }
}

/// Remove every text parameter from an error message (the server may quote
/// a value it could not parse).
fn scrub(e: SqlError, params: &[SqlValue]) -> SqlError {
    let mut redactor = Redactor::new();
    for p in params {
        if let SqlValue::Text(s) = p {
            redactor.add_str(s);
        }
    }
    match e {
        SqlError::Denied(m) => SqlError::Denied(redactor.redact(&m)),
        SqlError::UnknownConnection(m) => SqlError::UnknownConnection(redactor.redact(&m)),
        SqlError::Failed(m) => SqlError::Failed(redactor.redact(&m)),
        SqlError::Unavailable(m) => SqlError::Unavailable(redactor.redact(&m)),
    }
}

/// The `sql` interface's functions, as the WIT adapter calls them.
impl HostState {
    /// Run a statement that returns no rows; the rows affected.
    pub fn sql_execute(
        &mut self,
        connection: String,
        statement: String,
        params: Vec<SqlValue>,
    ) -> Result<u64, SqlError> {
        let name = connection.clone();
        self.sql_statement("sql.execute", SqlOperation::Execute, &connection, &statement, &params, async |client, p| {
            match p {
                Prepared::Bound { statement, params } => client.execute(statement, &bound(&params)).await,
                Prepared::Substituted(text) => client.simple_query(&text).await.map(|m| values::simple_count(&m)),
            }
            .map_err(|e| db_failure(&name, e))
        })
    }

    /// Run a statement and return its rows.
    pub fn sql_query(
        &mut self,
        connection: String,
        statement: String,
        params: Vec<SqlValue>,
    ) -> Result<Vec<Vec<SqlValue>>, SqlError> {
        let name = connection.clone();
        self.sql_statement(
            "sql.query",
            SqlOperation::Query,
            &connection,
            &statement,
            &params,
            async |client, p| match p {
                Prepared::Bound { statement, params } => {
                    let rows = client.query(statement, &bound(&params)).await.map_err(|e| db_failure(&name, e))?;
                    rows.iter().map(values::decode_row).collect::<Result<_, _>>().map_err(SqlError::Failed)
                }
                Prepared::Substituted(text) => {
                    client.simple_query(&text).await.map(|m| values::simple_rows(&m)).map_err(|e| db_failure(&name, e))
                }
            },
        )
    }

    /// Try to log in as `username` with `password`: whether it was accepted.
    pub fn sql_try_login(&mut self, connection: String, username: String, password: String) -> Result<bool, SqlError> {
        let password = SecretString::from(password);
        let call = Call {
            function: "sql.try-login",
            op: SqlOperation::Login,
            connection: &connection,
            keyword: String::new(),
        };
        let (conn, bridge) = self.sql_authorize(&call)?;
        let mut config = conn.pg_config();
        config.user(&username).password(password.expose_secret());
        let timeout = self.sql.timeout;
        let result = super::perform(&bridge.handle, async {
            match tokio::time::timeout(timeout, connect(&config)).await {
                Err(_) => Err(SqlError::Unavailable(format!("sql connection `{connection}` timed out"))),
                Ok(Ok(_client)) => Ok(true),
                Ok(Err(e)) => match e.code() {
                    Some(code) if *code == SqlState::INVALID_PASSWORD => Ok(false),
                    Some(code) if *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION => Ok(false),
                    Some(_) => Err(db_failure(&connection, e)),
                    None => Err(SqlError::Unavailable(format!("sql connection `{connection}`: {e}"))),
                },
            }
        });
        let outcome = if result.is_ok() { CallOutcome::Ok } else { CallOutcome::Failed(None) };
        self.sql_record(&call, outcome);
        result.map_err(|e| scrub(e, &[SqlValue::Text(password.expose_secret().to_owned())]))
    }
}
