//! `<mount>/static-roles/:name` and `<mount>/static-creds/:name`: existing
//! database users whose password the server owns and rotates.
//!
//! Writes follow Vault's `pathStaticRoleCreateUpdate`: `db_name` and (on
//! create) `username` are required, and exactly one cadence: a
//! `rotation_period` (at least 5 s), or Vault's `rotation_schedule` (five
//! cron fields, UTC) with an optional `rotation_window` (at least an hour)
//! within which a missed slot may still be caught up. The username cannot
//! change, and a name used by a dynamic role is refused.
//! Creating a static role rotates the user's password at once, outside the
//! state lock (the user must exist; failures are Vault's plain errors, 500,
//! and nothing is saved); updates only change the settings, and the next
//! rotation moves with the cadence. Reads answer the data of database.json
//! (`rotation_period` in seconds, or `rotation_schedule` and
//! `rotation_window`, plus `last_vault_rotation` and Vault 1.16's
//! `skip_import_rotation`); `static-creds` answers `username`, `password`,
//! `last_vault_rotation`, the cadence and `ttl` (seconds to the next
//! rotation). Rotations themselves live in [`super::rotation`].

use std::sync::Arc;

use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::rotation::{self, Job};
use super::{
    Database, check_credential_type, credential_config, engine, internal, not_allowed, seconds, statement_list,
    string_field, with_engine,
};
use crate::response::Reply;
use crate::util::rfc3339;
use crate::{Handled, Operation, Request, Shared, State};
use rotator_cron::Cron;

/// Vault's queue tick: the shortest rotation period it accepts.
const MIN_ROTATION_PERIOD: u64 = 5;

/// Vault's shortest `rotation_window`.
const MIN_ROTATION_WINDOW: u64 = 3600;

/// When a static role rotates.
#[derive(Clone)]
pub(crate) enum Cadence {
    /// Every this many seconds after the last rotation.
    Period(u64),
    /// At the cron expression's times; a slot missed by more than `window`
    /// seconds (0: no limit) waits for the next one.
    Schedule { cron: Cron, window: u64 },
}

impl Cadence {
    /// The cadence fields of a read or a static-creds answer.
    fn fields(&self, data: &mut Value) {
        match self {
            Cadence::Period(period) => data["rotation_period"] = json!(period),
            Cadence::Schedule { cron, window } => {
                data["rotation_schedule"] = json!(cron.to_string());
                data["rotation_window"] = json!(window);
            }
        }
    }
}

/// A static role: one existing user and its current password.
pub(crate) struct StaticRole {
    pub db_name: String,
    pub username: String,
    pub cadence: Cadence,
    pub rotation_statements: Vec<String>,
    pub credential_config: Option<Map<String, Value>>,
    pub password: Zeroizing<String>,
    pub last_vault_rotation: OffsetDateTime,
    /// A rotation is running (the background task or rotate-role).
    pub rotating: bool,
    /// After a failed rotation, not before this.
    pub retry_at: Option<OffsetDateTime>,
}

impl StaticRole {
    /// When the password is next rotated, as of `now`.
    pub fn next_rotation(&self, now: OffsetDateTime) -> OffsetDateTime {
        let never = || now + time::Duration::days(3660);
        match &self.cadence {
            Cadence::Period(period) => self.last_vault_rotation + time::Duration::seconds(*period as i64),
            Cadence::Schedule { cron, window } => {
                let slot = cron.next_after(self.last_vault_rotation).unwrap_or_else(never);
                let missed = *window > 0 && now > slot + time::Duration::seconds(*window as i64);
                if missed { cron.next_after(now).unwrap_or_else(never) } else { slot }
            }
        }
    }

    /// Whether the background task should rotate it now.
    pub fn due(&self, now: OffsetDateTime) -> bool {
        !self.rotating && self.next_rotation(now).max(self.retry_at.unwrap_or(self.last_vault_rotation)) <= now
    }

    /// Vault's `CredentialTTL`: seconds to the next rotation, rounded, never
    /// negative.
    fn ttl(&self, now: OffsetDateTime) -> i64 {
        let left = self.next_rotation(now) - now;
        (left.as_seconds_f64().round() as i64).max(0)
    }

    /// The data of a read.
    fn read_json(&self) -> Value {
        let mut data = json!({
            "credential_type": "password",
            "db_name": self.db_name,
            "last_vault_rotation": rfc3339(self.last_vault_rotation),
            "rotation_statements": self.rotation_statements,
            "skip_import_rotation": false,
            "username": self.username,
        });
        self.cadence.fields(&mut data);
        if let Some(config) = self.credential_config.as_ref().filter(|c| !c.is_empty()) {
            data["credential_config"] = Value::Object(config.clone());
        }
        data
    }
}

/// Answer `static-roles/:name`.
pub(super) fn handle(shared: &Arc<Shared>, state: &mut State, mount: &str, name: &str, req: &Request) -> Handled {
    match req.op {
        Operation::Read => with_engine(state, mount, |db| {
            db.static_roles.get(name).map_or_else(Reply::not_found, |role| Reply::ok(role.read_json()))
        })
        .into(),
        Operation::Write => write(shared, state, mount, name, req),
        Operation::Delete => with_engine(state, mount, |db| {
            db.static_roles.remove(name);
            Reply::NoContent
        })
        .into(),
        _ => Reply::unsupported_operation().into(),
    }
}

/// `GET static-creds/:name`.
pub(super) fn creds(state: &mut State, mount: &str, name: &str, req: &Request) -> Reply {
    with_engine(state, mount, |db| {
        let Some(role) = db.static_roles.get(name) else {
            return Reply::bad_request(format!("unknown role: {name}"));
        };
        match db.config_for(&role.db_name) {
            Err(reply) => return reply,
            Ok(config) if !config.allows(name) => return not_allowed(name),
            Ok(_) => {}
        }
        let mut data = json!({
            "last_vault_rotation": rfc3339(role.last_vault_rotation),
            "password": role.password.as_str(),
            "ttl": role.ttl(req.now),
            "username": role.username,
        });
        role.cadence.fields(&mut data);
        Reply::ok(data)
    })
}

/// The settings of a static role write, checked.
struct Fields {
    db_name: String,
    username: String,
    cadence: Cadence,
    rotation_statements: Vec<String>,
    credential_config: Option<Map<String, Value>>,
}

/// `POST static-roles/:name`: update in place, or create with a first
/// rotation run outside the lock.
fn write(shared: &Arc<Shared>, state: &mut State, mount: &str, name: &str, req: &Request) -> Handled {
    let Some(db) = engine(state, mount) else {
        return Reply::unsupported_path().into();
    };
    let fields = match check(db, name, &req.data) {
        Ok(fields) => fields,
        Err(reply) => return reply.into(),
    };
    if let Some(role) = db.static_roles.get_mut(name) {
        role.db_name = fields.db_name;
        role.cadence = fields.cadence;
        role.rotation_statements = fields.rotation_statements;
        role.credential_config = fields.credential_config;
        return Reply::NoContent.into();
    }
    match db.config_for(&fields.db_name) {
        Err(reply) => return reply.into(),
        Ok(config) if !config.allows(name) => return not_allowed(name).into(),
        Ok(_) => {}
    }
    let job = Job {
        mount: mount.to_owned(),
        role: name.to_owned(),
        username: fields.username.clone(),
        statements: fields.rotation_statements.clone(),
        connection: db.connection(&fields.db_name),
    };
    let shared = Arc::clone(shared);
    Handled::Later(Box::pin(async move {
        let password = match rotation::execute(&job).await {
            Ok(password) => password,
            Err(e) => {
                tracing::warn!(mount = %job.mount, role = %job.role, error = %e, "vault dev server: static role not created");
                return internal(format!("error setting credentials: {e}"));
            }
        };
        let mut state = shared.lock();
        let Some(db) = engine(&mut state, &job.mount) else {
            return Reply::unsupported_path();
        };
        let role = StaticRole {
            db_name: fields.db_name,
            username: fields.username,
            cadence: fields.cadence,
            rotation_statements: fields.rotation_statements,
            credential_config: fields.credential_config,
            password,
            last_vault_rotation: OffsetDateTime::now_utc(),
            rotating: false,
            retry_at: None,
        };
        db.static_roles.insert(job.role.clone(), role);
        tracing::info!(mount = %job.mount, role = %job.role, "vault dev server: static role created");
        Reply::NoContent
    }))
}

/// Vault's create-or-update rules for a static role.
fn check(db: &Database, name: &str, body: &Map<String, Value>) -> Result<Fields, Reply> {
    if db.roles.contains_key(name) {
        return Err(Reply::bad_request("Role and Static Role names must be unique"));
    }
    let existing = db.static_roles.get(name);
    let text = |key: &str| body.get(key).filter(|v| !v.is_null()).map(|v| string_field(v, key)).transpose();
    let db_name = text("db_name")?.or_else(|| existing.map(|r| r.db_name.clone())).unwrap_or_default();
    if db_name.is_empty() {
        return Err(Reply::bad_request("database name is a required field"));
    }
    let username = match (text("username")?.filter(|u| !u.is_empty()), existing) {
        (None, None) => return Err(Reply::bad_request("username is a required field to create a static account")),
        (Some(given), Some(role)) if given != role.username => {
            return Err(Reply::bad_request("cannot update static account username"));
        }
        (Some(given), _) => given,
        (None, Some(role)) => role.username.clone(),
    };
    let cadence = cadence(body, existing.map(|r| &r.cadence))?;
    let rotation_statements = match body.get("rotation_statements") {
        Some(v) => statement_list(Some(v), "rotation_statements")?,
        None => existing.map(|r| r.rotation_statements.clone()).unwrap_or_default(),
    };
    check_credential_type(body.get("credential_type"))?;
    let credential_config = match credential_config(body.get("credential_config"))? {
        Some(config) => Some(config),
        None => existing.and_then(|r| r.credential_config.clone()),
    };
    Ok(Fields { db_name, username, cadence, rotation_statements, credential_config })
}

/// Vault's rules for the cadence fields: one of `rotation_period` and
/// `rotation_schedule`, a window only with a schedule; an update that
/// names neither keeps the role's cadence.
fn cadence(body: &Map<String, Value>, existing: Option<&Cadence>) -> Result<Cadence, Reply> {
    let given = |key: &str| body.get(key).filter(|v| !v.is_null() && v.as_str() != Some(""));
    let window = given("rotation_window").map(|v| seconds(v, "rotation_window")).transpose()?;
    if window.is_some_and(|w| w < MIN_ROTATION_WINDOW) {
        return Err(Reply::bad_request(format!(
            "rotation_window is invalid: must be at least {MIN_ROTATION_WINDOW} seconds"
        )));
    }
    match (given("rotation_period"), given("rotation_schedule")) {
        (Some(_), Some(_)) => Err(Reply::bad_request(
            "mutually exclusive fields rotation_period and rotation_schedule were both specified; only one of them \
             can be provided",
        )),
        (Some(_), None) if window.is_some() => {
            Err(Reply::bad_request("rotation_window is invalid with use of rotation_period"))
        }
        (Some(v), None) => {
            let period = seconds(v, "rotation_period")?;
            if period < MIN_ROTATION_PERIOD {
                return Err(Reply::bad_request(format!(
                    "rotation_period must be {MIN_ROTATION_PERIOD} seconds or more"
                )));
            }
            Ok(Cadence::Period(period))
        }
        (None, Some(v)) => {
            let text = string_field(v, "rotation_schedule")?;
            let cron: Cron =
                text.parse().map_err(|e| Reply::bad_request(format!("could not parse rotation_schedule: {e}")))?;
            Ok(Cadence::Schedule { cron, window: window.unwrap_or(0) })
        }
        (None, None) => match (existing, window) {
            (Some(Cadence::Schedule { cron, .. }), Some(window)) => {
                Ok(Cadence::Schedule { cron: cron.clone(), window })
            }
            (Some(_), Some(_)) => Err(Reply::bad_request("rotation_window is invalid with use of rotation_period")),
            (Some(cadence), None) => Ok(cadence.clone()),
            (None, _) => Err(Reply::bad_request(
                "one of rotation_schedule or rotation_period must be provided to create a static account",
            )),
        },
    }
}
