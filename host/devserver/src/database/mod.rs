//! The database secrets engine, for PostgreSQL, against a real server.
//!
//! Enabled like Vault's (`POST sys/mounts/<path> {"type": "database"}`, any
//! path), it speaks the paths of `shared/contracts/vault/database.json`:
//!
//! - `config/:name` (and `LIST config`, `reset/:name`): connections, with
//!   `verify_connection` ([`config`], [`connection`]);
//! - `rotate-root/:name`: a new root password only the server knows
//!   ([`root`]);
//! - `roles/:name` (and `LIST roles`) and `creds/:name`: dynamic users with
//!   a lease; the lease table revokes them (expiry, `sys/leases/revoke`,
//!   the token's revocation) and renews them (`VALID UNTIL`) through
//!   [`creds::CredsBackend`] ([`roles`], [`creds`]);
//! - `static-roles/:name`, `static-creds/:name`, `rotate-role/:name`:
//!   existing users whose password is rotated on a period ([`static_roles`],
//!   [`rotation`]).
//!
//! Only `postgresql-database-plugin` is implemented. Errors follow Vault:
//! bad input is a 400 from the engine ("unknown role: x"), while what Vault
//! returns as a plain Go error (a missing connection, a role the connection
//! does not allow, a failed SQL statement) is a 500 in go-multierror form.
//!
//! The state lock is never held across SQL: a handler decides under the
//! lock, answers [`Handled::Later`] with a future that talks to PostgreSQL,
//! and that future takes the lock again only to record the outcome. No
//! password is logged or echoed: logs name mounts and roles, and PostgreSQL
//! errors pass through [`sql::describe`] first.

mod config;
mod connection;
mod creds;
mod generate;
mod roles;
mod root;
mod rotation;
mod scram;
mod sql;
mod static_roles;

pub(crate) use rotation::run_rotations;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::Value;

use super::mounts::Engine;
use super::response::{Reply, multierror};
use super::util::weak_string;
use super::{Handled, Operation, Request, Shared, State};
use connection::Connection;

/// The one database plugin the dev server implements.
pub(crate) const POSTGRES_PLUGIN: &str = "postgresql-database-plugin";

/// One database mount's data.
#[derive(Default)]
pub(crate) struct Database {
    configs: BTreeMap<String, config::DbConfig>,
    /// Connection handles by config name; they outlive a deleted config so
    /// that leases issued through it keep pointing at the same handle.
    connections: BTreeMap<String, Arc<Connection>>,
    roles: BTreeMap<String, roles::Role>,
    static_roles: BTreeMap<String, static_roles::StaticRole>,
}

impl Database {
    /// The handle for connection `name`, made on first use.
    fn connection(&mut self, name: &str) -> Arc<Connection> {
        Arc::clone(self.connections.entry(name.to_owned()).or_insert_with(|| Connection::new(name)))
    }

    /// The config `name`, or Vault's 500 for a missing one.
    fn config_for(&self, name: &str) -> Result<&config::DbConfig, Reply> {
        self.configs.get(name).ok_or_else(|| internal(missing_config(name)))
    }
}

/// Answer `<mount>/<rest>` for a database mount.
pub(crate) fn handle(shared: &Arc<Shared>, state: &mut State, mount: &str, rest: &str, req: &Request) -> Handled {
    let (kind, name) = rest.split_once('/').unwrap_or((rest, ""));
    if req.op == Operation::List && name.is_empty() {
        let Some(db) = engine(state, mount) else {
            return Reply::unsupported_path().into();
        };
        let keys: Vec<String> = match kind {
            "config" => db.configs.keys().cloned().collect(),
            "roles" => db.roles.keys().cloned().collect(),
            "static-roles" => db.static_roles.keys().cloned().collect(),
            _ => return Reply::unsupported_path().into(),
        };
        return Reply::list(keys).into();
    }
    if !valid_name(name) {
        return Reply::unsupported_path().into();
    }
    let op = req.op;
    let only = |wanted: Operation| op == wanted;
    match kind {
        "config" => config::handle(shared, state, mount, name, req),
        "reset" if only(Operation::Write) => config::reset(state, mount, name).into(),
        "rotate-root" if only(Operation::Write) => root::rotate(state, mount, name),
        "roles" => with_engine(state, mount, |db| roles::handle(db, name, req)).into(),
        "creds" if only(Operation::Read) => creds::issue(shared, state, mount, name, req),
        "static-roles" => static_roles::handle(shared, state, mount, name, req),
        "static-creds" if only(Operation::Read) => static_roles::creds(state, mount, name, req).into(),
        "rotate-role" if only(Operation::Write) => rotation::rotate_role(shared, state, mount, name, req),
        "reset" | "rotate-root" | "creds" | "static-creds" | "rotate-role" => Reply::unsupported_operation().into(),
        _ => Reply::unsupported_path().into(),
    }
}

/// The database engine mounted at `mount`.
fn engine<'a>(state: &'a mut State, mount: &str) -> Option<&'a mut Database> {
    match state.mounts.get_mut(mount).map(|entry| &mut entry.engine) {
        Some(Engine::Database(db)) => Some(db),
        _ => None,
    }
}

/// Run `f` on the engine at `mount` (a 404 if it went away).
fn with_engine(state: &mut State, mount: &str, f: impl FnOnce(&mut Database) -> Reply) -> Reply {
    engine(state, mount).map_or_else(Reply::unsupported_path, f)
}

/// Vault's answer to a plain Go error from a backend: 500, go-multierror text.
pub(crate) fn internal(message: impl AsRef<str>) -> Reply {
    Reply::Errors(StatusCode::INTERNAL_SERVER_ERROR, vec![multierror(message.as_ref())])
}

/// Vault's error for a role naming a connection that does not exist.
pub(crate) fn missing_config(name: &str) -> String {
    format!("failed to find entry for connection with name: {name:?}")
}

/// Vault's error for a role its connection's `allowed_roles` leaves out.
fn not_allowed(role: &str) -> Reply {
    internal(format!("{role:?} is not an allowed role"))
}

/// Vault's `GenericNameRegex`: word characters, with `-` and `.` inside.
fn valid_name(name: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let (Some(first), Some(last)) = (name.chars().next(), name.chars().last()) else {
        return false;
    };
    word(first) && word(last) && name.chars().all(|c| word(c) || c == '-' || c == '.')
}

/// A `TypeStringSlice` field (statements): a list, or one string as one
/// item; items trimmed, empty ones dropped.
fn statement_list(value: Option<&Value>, field: &str) -> Result<Vec<String>, Reply> {
    let items = match value {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| weak_string(v).ok_or_else(|| Reply::bad_request(format!("{field} must be a list of strings"))))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(Reply::bad_request(format!("{field} must be a list of strings"))),
    };
    Ok(items.into_iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
}

/// A `TypeDurationSecond` field in whole seconds.
fn seconds(value: &Value, field: &str) -> Result<u64, Reply> {
    super::util::parse_duration(value).map(|d| d.as_secs()).map_err(|e| Reply::bad_request(format!("{field}: {e}")))
}

/// A string field; other JSON types are a 400.
fn string_field(value: &Value, field: &str) -> Result<String, Reply> {
    weak_string(value)
        .filter(|_| !value.is_object() && !value.is_array())
        .ok_or_else(|| Reply::bad_request(format!("{field} must be a string")))
}

/// Vault's `credential_type` check: only `password` is supported here.
fn check_credential_type(value: Option<&Value>) -> Result<(), Reply> {
    match value.map(|v| string_field(v, "credential_type")).transpose()?.as_deref() {
        None | Some("password") => Ok(()),
        Some(kind @ ("rsa_private_key" | "client_certificate")) => {
            Err(Reply::bad_request(format!("unsupported credential_type: {kind:?}")))
        }
        Some(other) => Err(Reply::bad_request(format!("invalid credential_type {other:?}"))),
    }
}

/// `credential_config`: a map of strings, kept and shown back.
fn credential_config(value: Option<&Value>) -> Result<Option<serde_json::Map<String, Value>>, Reply> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) if map.values().all(|v| weak_string(v).is_some() && !v.is_object()) => {
            Ok(Some(map.iter().map(|(k, v)| (k.clone(), Value::String(weak_string(v).unwrap_or_default()))).collect()))
        }
        Some(_) => Err(Reply::bad_request("credential_config validation failed: expected a map of strings")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn devserver_db_names_follow_generic_name_regex() {
        for ok in ["a", "readonly", "my-role.v2", "x_1"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a/b", "a b", ".a"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn devserver_db_statement_lists_take_one_string_as_one_item() {
        let one = statement_list(Some(&json!("CREATE ROLE x; GRANT y TO x;")), "s").ok().unwrap();
        assert_eq!(one, ["CREATE ROLE x; GRANT y TO x;"]);
        let many = statement_list(Some(&json!([" a ", "", "b"])), "s").ok().unwrap();
        assert_eq!(many, ["a", "b"]);
        assert!(statement_list(Some(&json!({"a": 1})), "s").is_err());
    }
}
