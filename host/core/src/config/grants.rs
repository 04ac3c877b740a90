//! `[[jobs.grants]]`: what a job's plugin may use, as the operator writes it.
//!
//! A grant names either Vault paths (`path` plus `operations`: read, write,
//! delete, list) or one declared SQL connection (`sql` plus optional
//! `operations`: execute, query, login; all three by default). Everything is
//! checked here with its location: pattern syntax, operation names, and that
//! an SQL grant names a connection declared under `[sql.connections]`.
//!
//! ```toml
//! [[jobs.grants]]
//! path = "database/rotate-root/orders"
//! operations = ["write"]
//!
//! [[jobs.grants]]
//! sql = "app"
//! operations = ["execute", "login"]
//! ```

use serde::Deserialize;
use toml::Spanned;

use super::Collector;
use super::sql::{Declared, SqlConnections};
use crate::plugin::{Grants, Operation, SqlGrant, SqlOperation, VaultGrant};

/// One grant as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGrant {
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    sql: Option<Spanned<String>>,
    #[serde(default)]
    operations: Option<Vec<Spanned<String>>>,
}

/// Check a job's grants. Returns them with the declared connections they
/// name (the only ones the job's runs will know about).
pub(super) fn grants(c: &mut Collector, raw: Vec<Spanned<RawGrant>>, declared: &Declared) -> (Grants, SqlConnections) {
    let mut grants = Grants::default();
    let mut granted = SqlConnections::new();
    for item in raw {
        let span = item.span();
        let g = item.into_inner();
        match (g.path, g.sql) {
            (Some(_), Some(_)) => c.error(span, "a grant names either a Vault `path` or an `sql` connection, not both"),
            (None, None) => c.error(span, "a grant needs `path` (Vault) or `sql` (a connection name)"),
            (Some(path), None) => {
                let operations = operations(
                    c,
                    g.operations.unwrap_or_default(),
                    "a Vault",
                    Operation::parse,
                    "read, write, delete, list",
                );
                let grant = VaultGrant { path, operations };
                match grant.validate() {
                    Ok(()) => grants.vault.push(grant),
                    Err(why) => c.error(span, why.to_string()),
                }
            }
            (None, Some(name)) => {
                let operations = match g.operations {
                    None => SqlOperation::ALL.to_vec(),
                    Some(ops) => operations(c, ops, "an sql", SqlOperation::parse, "execute, query, login"),
                };
                if operations.is_empty() {
                    c.error(span, format!("grant for sql connection `{}` lists no operations", name.get_ref()));
                }
                match declared.connections.get(name.get_ref()) {
                    Some(conn) => {
                        granted.insert(conn.name.clone(), conn.clone());
                        grants.sql.push(SqlGrant { connection: name.into_inner(), operations });
                    }
                    // Its own errors were reported; the job is invalid anyway.
                    None if declared.broken.contains(name.get_ref()) => {
                        c.error(name.span(), format!("sql connection `{}` has errors (see above)", name.get_ref()))
                    }
                    None => c.error(
                        name.span(),
                        format!(
                            "sql connection `{0}` is not declared (add a [sql.connections.{0}] section)",
                            name.get_ref()
                        ),
                    ),
                }
            }
        }
    }
    (grants, granted)
}

/// Parse operation names, reporting each unknown one where it is written.
fn operations<T: PartialEq>(
    c: &mut Collector,
    names: Vec<Spanned<String>>,
    kind: &str,
    parse: fn(&str) -> Option<T>,
    known: &str,
) -> Vec<T> {
    let mut out = Vec::new();
    for name in names {
        match parse(name.get_ref()) {
            Some(op) if !out.contains(&op) => out.push(op),
            Some(_) => {}
            None => c.error(
                name.span(),
                format!("unknown operation `{}` for {kind} grant (expected {known})", name.get_ref()),
            ),
        }
    }
    out
}
