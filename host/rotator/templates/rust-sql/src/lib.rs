//! `{{name}}`: a rotator plugin that changes a PostgreSQL role's password
//! through the host's `sql` import.
//!
//! The plugin never sees the database's admin credentials: it names an SQL
//! connection the operator declared (`[sql.connections.<name>]`), and the
//! host connects. The job's secret holds the role's credential as
//! `username` and `password` (other fields are kept). `create` draws a new
//! password, `set` runs `ALTER ROLE … PASSWORD $1`, `test` logs in with it,
//! and `rollback` puts the current password back.
//!
//! Every step is idempotent, so a rotation that crashes anywhere resumes
//! cleanly: setting the same password twice is one change, and a login
//! probe changes nothing. The password only ever travels as a statement
//! parameter, never in the statement's text.

mod policy;

use rotator_plugin_sdk::sql::{self, Connection, quote_ident};
use rotator_plugin_sdk::{
    Action, Capability, Context, Guest, Level, NewSecret, PluginInfo, RotateError, Secret, SecretAccess, Step, fields,
    log, settings, to_json,
};
use serde::Deserialize;
use serde_json::Value;

/// The JSON schema of the settings: the host checks a job's settings against
/// it before any step, and `rotator plugin inspect` shows it. The
/// `username` field of the secret is shown in clear in logs and reports.
const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "{{name}} settings",
  "type": "object",
  "additionalProperties": false,
  "x-rotator-public-fields": ["username"],
  "required": ["connection", "username"],
  "properties": {
    "connection": {"type": "string", "minLength": 1,
                   "description": "The SQL connection whose admin changes the password; the job needs an `sql` grant for it."},
    "username": {"type": "string", "minLength": 1, "maxLength": 63, "description": "The role whose password is rotated."},
    "length": {"type": "integer", "minimum": 16, "maximum": 256, "default": 32,
               "description": "Length of the new password, in letters and digits."}
  }
}"#;

/// The job's settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    connection: String,
    username: String,
    #[serde(default = "default_length")]
    length: usize,
}

fn default_length() -> usize {
    32
}

impl Settings {
    /// Parse and check the settings (the host validated them against
    /// [`SCHEMA`]; checking again turns a gap between the two into a typed
    /// error).
    fn load(ctx: &Context) -> Result<Self, RotateError> {
        let s: Settings = settings(ctx)?;
        s.check().map_err(RotateError::InvalidConfig)?;
        Ok(s)
    }

    fn check(&self) -> Result<(), String> {
        if self.connection.is_empty() || self.username.is_empty() {
            return Err("settings.connection and settings.username must not be empty".into());
        }
        // The schema asks for 16 to 256; the generator takes any of these.
        if !policy::LENGTHS.contains(&self.length) {
            let (min, max) = (policy::LENGTHS.start(), policy::LENGTHS.end());
            return Err(format!("settings.length must be from {min} to {max}, not {}", self.length));
        }
        Ok(())
    }

    fn db(&self) -> Connection {
        sql::connection(&self.connection)
    }

    /// `ALTER ROLE "<username>" PASSWORD $1`.
    fn set_password(&self, password: &str) -> Result<(), RotateError> {
        let role = quote_ident(&self.username)?;
        self.db().execute(&format!("ALTER ROLE {role} PASSWORD $1"), &[password.into()])?;
        Ok(())
    }

    /// The password in `secret`, checked to be for this job's role.
    fn password_in(&self, secret: &str) -> Result<String, RotateError> {
        let map = fields(secret)?;
        match (map.get("username").and_then(Value::as_str), map.get("password").and_then(Value::as_str)) {
            (Some(user), Some(password)) if user == self.username => Ok(password.to_owned()),
            (Some(user), Some(_)) => Err(RotateError::Permanent(format!(
                "the secret is for role `{user}`, but this job rotates role `{}`",
                self.username
            ))),
            _ => Err(RotateError::Permanent("the secret lacks a `username` or `password` field".into())),
        }
    }
}

struct Plugin;

impl Guest for Plugin {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "{{name}}".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Changes a PostgreSQL role's password through an SQL connection".into(),
            settings_schema: SCHEMA.into(),
            // `*`: the connection the job's `settings.connection` names.
            capabilities: vec![Capability::Sql("*".into())],
            access: SecretAccess::Values,
            visible_fields: Vec::new(),
        }
    }

    fn plan(ctx: Context) -> Result<Vec<Action>, RotateError> {
        let s = Settings::load(&ctx)?;
        let role = quote_ident(&s.username)?;
        Ok(vec![
            Action { step: Step::Create, summary: format!("generate a {}-character password for {role}", s.length) },
            Action { step: Step::Set, summary: format!("on `{}`: ALTER ROLE {role} PASSWORD $1", s.connection) },
            Action { step: Step::Test, summary: format!("log in to `{}` as {role} with the new password", s.connection) },
            Action { step: Step::Rollback, summary: format!("put the current password of {role} back") },
        ])
    }

    fn create(ctx: Context) -> Result<NewSecret, RotateError> {
        let s = Settings::load(&ctx)?;
        let mut data = match &ctx.current {
            Some(current) => fields(&current.data)?,
            None => serde_json::Map::new(),
        };
        let password =
            policy::random_value(s.length).map_err(|e| RotateError::Transient(format!("no randomness: {e}")))?;
        data.insert("username".into(), Value::String(s.username.clone()));
        data.insert("password".into(), Value::String(password));
        Ok(to_json(data).into())
    }

    fn set(ctx: Context, pending: Secret) -> Result<(), RotateError> {
        let s = Settings::load(&ctx)?;
        s.set_password(&s.password_in(&pending.data)?)?;
        log(Level::Info, &format!("changed the password of role `{}` on `{}`", s.username, s.connection));
        Ok(())
    }

    fn test(ctx: Context, pending: Secret) -> Result<(), RotateError> {
        let s = Settings::load(&ctx)?;
        let password = s.password_in(&pending.data)?;
        // A password `create` could not have made is refused before it is tried.
        policy::check(&password, s.length).map_err(|e| RotateError::Permanent(format!("the new password: {e}")))?;
        if s.db().try_login(&s.username, &password)? {
            Ok(())
        } else {
            Err(RotateError::Permanent(format!("`{}` refused the new password of role `{}`", s.connection, s.username)))
        }
    }

    fn finish(_ctx: Context, _pending: Secret) -> Result<(), RotateError> {
        Ok(())
    }

    fn rollback(ctx: Context, _pending: Secret) -> Result<(), RotateError> {
        let s = Settings::load(&ctx)?;
        match &ctx.current {
            Some(current) => {
                s.set_password(&s.password_in(&current.data)?)?;
                log(Level::Info, &format!("put the previous password of role `{}` back", s.username));
            }
            // The first rotation has no password to go back to.
            None => log(Level::Warn, &format!("no previous password of role `{}` to put back", s.username)),
        }
        Ok(())
    }
}

rotator_plugin_sdk::export!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Settings, String> {
        let s: Settings = serde_json::from_str(json).map_err(|e| e.to_string())?;
        s.check().map(|()| s)
    }

    #[test]
    fn settings_take_a_connection_a_role_and_an_optional_length() {
        assert_eq!(parse(r#"{"connection": "app", "username": "app_user"}"#).unwrap().length, 32);
        assert!(parse(r#"{"connection": "app", "username": ""}"#).unwrap_err().contains("must not be empty"));
        assert!(parse(r#"{"connection": "app", "username": "u", "length": 7}"#).unwrap_err().contains("8 to 1024"));
        assert!(parse(r#"{"connection": "app"}"#).unwrap_err().contains("missing field"));
    }

    #[test]
    fn a_secret_for_another_role_is_refused() {
        let s = parse(r#"{"connection": "app", "username": "app_user"}"#).unwrap();
        assert_eq!(s.password_in(r#"{"username": "app_user", "password": "pw"}"#).ok().as_deref(), Some("pw"));
        assert!(s.password_in(r#"{"username": "other", "password": "pw"}"#).is_err());
        assert!(s.password_in(r#"{"username": "app_user"}"#).is_err());
    }

    #[test]
    fn the_schema_is_json() {
        let schema: Value = serde_json::from_str(SCHEMA).unwrap();
        assert_eq!(schema["required"][1], "username");
    }
}
