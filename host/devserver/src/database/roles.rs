//! `<mount>/roles/:name`: dynamic roles, the recipes for `creds/:name`.
//!
//! A role names its connection (`db_name`), the SQL templates that create,
//! revoke, renew and roll back a user, and the lease TTLs (`default_ttl`,
//! `max_ttl`; 0 means the mount's). Writes follow Vault's
//! `pathRoleCreateUpdate`: a create takes defaults for what is missing, an
//! update changes only what is sent, `db_name` is required, statements are
//! a list or one string, and a name already used by a static role is
//! refused. A read answers the data of database.json with TTLs in seconds
//! and empty statement lists as `[]`. `rollback_statements` are kept and
//! shown, but, as in Vault's PostgreSQL plugin, never run: creation runs in
//! one transaction, which PostgreSQL rolls back itself.

use serde_json::{Map, Value, json};

use super::{Database, check_credential_type, credential_config, seconds, statement_list, string_field};
use crate::response::Reply;
use crate::{Operation, Request};

/// A dynamic role.
#[derive(Clone, Default)]
pub(crate) struct Role {
    pub db_name: String,
    pub creation_statements: Vec<String>,
    pub revocation_statements: Vec<String>,
    pub rollback_statements: Vec<String>,
    pub renew_statements: Vec<String>,
    /// Seconds; 0: the mount's default lease TTL.
    pub default_ttl: u64,
    /// Seconds; 0: the mount's max lease TTL.
    pub max_ttl: u64,
    pub credential_config: Option<Map<String, Value>>,
}

impl Role {
    /// The data of a read (database.json).
    fn read_json(&self) -> Value {
        let mut data = json!({
            "creation_statements": self.creation_statements,
            "credential_type": "password",
            "db_name": self.db_name,
            "default_ttl": self.default_ttl,
            "max_ttl": self.max_ttl,
            "renew_statements": self.renew_statements,
            "revocation_statements": self.revocation_statements,
            "rollback_statements": self.rollback_statements,
        });
        if let Some(config) = self.credential_config.as_ref().filter(|c| !c.is_empty()) {
            data["credential_config"] = Value::Object(config.clone());
        }
        data
    }
}

/// Answer `roles/:name`.
pub(super) fn handle(db: &mut Database, name: &str, req: &Request) -> Reply {
    match req.op {
        Operation::Read => db.roles.get(name).map_or_else(Reply::not_found, |role| Reply::ok(role.read_json())),
        Operation::Write => match write(db, name, &req.data) {
            Ok(()) => Reply::NoContent,
            Err(reply) => reply,
        },
        Operation::Delete => {
            db.roles.remove(name);
            Reply::NoContent
        }
        _ => Reply::unsupported_operation(),
    }
}

/// Create or update role `name` from `body`.
fn write(db: &mut Database, name: &str, body: &Map<String, Value>) -> Result<(), Reply> {
    if db.static_roles.contains_key(name) {
        return Err(Reply::bad_request("Role and Static Role names must be unique"));
    }
    let mut role = db.roles.get(name).cloned().unwrap_or_default();
    if let Some(v) = body.get("db_name") {
        role.db_name = string_field(v, "db_name")?;
    }
    if role.db_name.is_empty() {
        return Err(Reply::bad_request("database name is required"));
    }
    check_credential_type(body.get("credential_type"))?;
    if let Some(config) = credential_config(body.get("credential_config"))? {
        role.credential_config = Some(config);
    }
    let lists: [(&str, &mut Vec<String>); 4] = [
        ("creation_statements", &mut role.creation_statements),
        ("revocation_statements", &mut role.revocation_statements),
        ("rollback_statements", &mut role.rollback_statements),
        ("renew_statements", &mut role.renew_statements),
    ];
    for (field, target) in lists {
        if let Some(v) = body.get(field) {
            *target = statement_list(Some(v), field)?;
        }
    }
    if let Some(v) = body.get("default_ttl") {
        role.default_ttl = seconds(v, "default_ttl")?;
    }
    if let Some(v) = body.get("max_ttl") {
        role.max_ttl = seconds(v, "max_ttl")?;
    }
    db.roles.insert(name.to_owned(), role);
    Ok(())
}
