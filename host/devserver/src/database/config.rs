//! `<mount>/config/:name` and `<mount>/reset/:name`: database connections.
//!
//! A write follows Vault's `connectionWriteHandler`: on create every field
//! takes its default, on update only the fields sent change (plugin
//! specific fields are merged into `connection_details`); the plugin must
//! be `postgresql-database-plugin`; with `verify_connection` (the default)
//! the server connects before anything is saved, and a failure is a 400
//! "error creating database object: error verifying connection: ...". The
//! password is kept in the connection's [`Settings`], not in the details,
//! so a read (data as in database.json: `allowed_roles`,
//! `connection_details`, `password_policy`, `plugin_name`,
//! `plugin_version`, `root_credentials_rotate_statements`) cannot show it;
//! a literal password inside `connection_url` is shown as `xxxxx`, as
//! Vault's `url.Redacted` does, and draws Vault's warning on write.

use std::sync::Arc;

use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use super::connection::{self, Settings};
use super::{Database, POSTGRES_PLUGIN, engine, internal, missing_config, statement_list, string_field, with_engine};
use crate::response::Reply;
use crate::token::string_list;
use crate::util::weak_bool;
use crate::{Handled, Operation, Request, Shared, State};

/// Fields of the common config; everything else is connection details.
const COMMON_FIELDS: [&str; 8] = [
    "name",
    "plugin_name",
    "plugin_version",
    "allowed_roles",
    "verify_connection",
    "root_rotation_statements",
    "password_policy",
    "password",
];

/// Vault's warning for a password written into `connection_url`.
const URL_PASSWORD_WARNING: &str = "Password found in connection_url, use a templated url to enable root rotation and prevent read access to password information.";

/// A saved connection config (its password lives in the connection).
pub(crate) struct DbConfig {
    pub plugin_name: String,
    pub plugin_version: String,
    pub allowed_roles: Vec<String>,
    pub root_rotation_statements: Vec<String>,
    pub password_policy: String,
    /// Plugin fields as sent (`connection_url`, `username`, ...), never
    /// the password.
    pub details: Map<String, Value>,
}

impl DbConfig {
    /// Whether `role` may use this connection: `*`, or a match of one of
    /// `allowed_roles` (which may hold `*` globs, as Vault's
    /// `StrListContainsGlob`).
    pub fn allows(&self, role: &str) -> bool {
        self.allowed_roles.iter().any(|pattern| pattern == "*" || glob_match(pattern, role))
    }

    /// The data of a read.
    fn read_json(&self) -> Value {
        let mut details = self.details.clone();
        if let Some(Value::String(url)) = details.get("connection_url") {
            details.insert("connection_url".into(), json!(redact_url(url)));
        }
        json!({
            "allowed_roles": self.allowed_roles,
            "connection_details": details,
            "password_policy": self.password_policy,
            "plugin_name": self.plugin_name,
            "plugin_version": self.plugin_version,
            "root_credentials_rotate_statements": self.root_rotation_statements,
        })
    }
}

/// Answer `config/:name`.
pub(super) fn handle(shared: &Arc<Shared>, state: &mut State, mount: &str, name: &str, req: &Request) -> Handled {
    match req.op {
        Operation::Read => with_engine(state, mount, |db| {
            db.configs.get(name).map_or_else(Reply::not_found, |c| Reply::ok(c.read_json()))
        })
        .into(),
        Operation::Write => write(shared, state, mount, name, req),
        Operation::Delete => with_engine(state, mount, |db| {
            db.configs.remove(name);
            if let Some(connection) = db.connections.get(name) {
                connection.set(None);
            }
            tracing::info!(mount, connection = name, "vault dev server: database connection deleted");
            Reply::NoContent
        })
        .into(),
        _ => Reply::unsupported_operation().into(),
    }
}

/// `POST reset/:name`: connections are opened per operation here, so there
/// is nothing to reset; an unknown name is Vault's error.
pub(super) fn reset(state: &mut State, mount: &str, name: &str) -> Reply {
    with_engine(state, mount, |db| {
        if db.configs.contains_key(name) { Reply::NoContent } else { internal(missing_config(name)) }
    })
}

/// A checked write, not yet saved.
struct Planned {
    config: DbConfig,
    settings: Settings,
    verify: bool,
    warnings: Vec<String>,
}

/// `POST config/:name`: check, verify (outside the lock), then save.
fn write(shared: &Arc<Shared>, state: &mut State, mount: &str, name: &str, req: &Request) -> Handled {
    let Some(db) = engine(state, mount) else {
        return Reply::unsupported_path().into();
    };
    let Planned { config, settings, verify, warnings } = match plan(db, name, &req.data) {
        Ok(planned) => planned,
        Err(reply) => return reply.into(),
    };
    if !verify {
        save(db, mount, name, config, settings);
        return Reply::done(warnings).into();
    }
    let (shared, mount, name) = (Arc::clone(shared), mount.to_owned(), name.to_owned());
    Handled::Later(Box::pin(async move {
        let checked = match connection::connect(&settings).await {
            Ok(client) => client
                .batch_execute("SELECT 1")
                .await
                .map_err(|e| format!("ping failed: {}", super::sql::describe(&e, &[settings.secret()]))),
            Err(e) => Err(e),
        };
        if let Err(e) = checked {
            tracing::info!(mount = %mount, connection = %name, "vault dev server: database connection refused");
            return Reply::bad_request(format!("error creating database object: error verifying connection: {e}"));
        }
        let mut state = shared.lock();
        let Some(db) = engine(&mut state, &mount) else {
            return Reply::unsupported_path();
        };
        save(db, &mount, &name, config, settings);
        Reply::done(warnings)
    }))
}

/// Store a checked config and point its connection at the new settings.
fn save(db: &mut Database, mount: &str, name: &str, config: DbConfig, settings: Settings) {
    db.connection(name).set(Some(settings));
    db.configs.insert(name.to_owned(), config);
    tracing::info!(mount, connection = name, "vault dev server: database connection configured");
}

/// Vault's create-or-update rules for the fields of `body`.
fn plan(db: &mut Database, name: &str, body: &Map<String, Value>) -> Result<Planned, Reply> {
    let existing = db.configs.get(name);
    let text = |key: &str| body.get(key).filter(|v| !v.is_null()).map(|v| string_field(v, key)).transpose();

    let plugin_name = text("plugin_name")?.or_else(|| existing.map(|c| c.plugin_name.clone())).unwrap_or_default();
    if plugin_name.is_empty() {
        return Err(Reply::bad_request("empty plugin name"));
    }
    if plugin_name != POSTGRES_PLUGIN {
        return Err(Reply::bad_request(format!(
            "error creating database object: plugin {plugin_name:?} not found: the dev server implements only {POSTGRES_PLUGIN}"
        )));
    }
    let plugin_version = match text("plugin_version")? {
        None => existing.map(|c| c.plugin_version.clone()).unwrap_or_default(),
        Some(v) if v.is_empty() || v.ends_with("+builtin") => String::new(),
        Some(v) => {
            return Err(Reply::bad_request(format!(
                "error creating database object: {POSTGRES_PLUGIN} version {v:?} not found: only the builtin version exists"
            )));
        }
    };
    let verify = match body.get("verify_connection") {
        None | Some(Value::Null) => true,
        Some(v) => weak_bool(v).ok_or_else(|| Reply::bad_request("verify_connection must be a boolean"))?,
    };
    let allowed_roles = match body.get("allowed_roles") {
        Some(v) => string_list(Some(v)).map_err(Reply::bad_request)?,
        None => existing.map(|c| c.allowed_roles.clone()).unwrap_or_default(),
    };
    let root_rotation_statements = match body.get("root_rotation_statements") {
        Some(v) => statement_list(Some(v), "root_rotation_statements")?,
        None => existing.map(|c| c.root_rotation_statements.clone()).unwrap_or_default(),
    };
    let password_policy =
        text("password_policy")?.or_else(|| existing.map(|c| c.password_policy.clone())).unwrap_or_default();

    let mut details = existing.map(|c| c.details.clone()).unwrap_or_default();
    for (key, value) in body.iter().filter(|(k, _)| !COMMON_FIELDS.contains(&k.as_str())) {
        details.insert(key.clone(), value.clone());
    }
    let password = match text("password")? {
        Some(p) => Zeroizing::new(p),
        None => db.connections.get(name).and_then(|c| c.current().ok()).map(|s| s.password()).unwrap_or_default(),
    };
    let settings = Settings::from_details(&details, password)
        .map_err(|e| Reply::bad_request(format!("error creating database object: {e}")))?;

    let mut warnings = Vec::new();
    if let Some(Value::String(url)) = details.get("connection_url")
        && url_password(url).is_some_and(|(start, end)| !url[start..end].contains('{'))
    {
        warnings.push(URL_PASSWORD_WARNING.to_owned());
    }
    if !password_policy.is_empty() {
        warnings.push(format!(
            "the dev server has no password policies: password_policy {password_policy:?} is kept, but passwords follow Vault's default policy"
        ));
    }
    if details.get("username_template").is_some_and(|v| !v.is_null()) {
        warnings
            .push("the dev server ignores username_template: usernames follow the plugin's default template".into());
    }
    let config =
        DbConfig { plugin_name, plugin_version, allowed_roles, root_rotation_statements, password_policy, details };
    Ok(Planned { config, settings, verify, warnings })
}

/// The byte range of the password in a `scheme://user:password@host/...`
/// URL, if it has one.
fn url_password(url: &str) -> Option<(usize, usize)> {
    let start = url.find("://")? + 3;
    let authority_end = url[start..].find(['/', '?', '#']).map_or(url.len(), |i| start + i);
    let at = url[start..authority_end].rfind('@')? + start;
    let colon = url[start..at].find(':')? + start;
    Some((colon + 1, at))
}

/// Go's `url.Redacted`: a literal password becomes `xxxxx`; a template
/// (which Go cannot parse as a URL) is left alone.
fn redact_url(url: &str) -> String {
    match url_password(url) {
        Some((start, end)) if !url[start..end].contains('{') => format!("{}xxxxx{}", &url[..start], &url[end..]),
        _ => url.to_owned(),
    }
}

/// Vault's `glob.Glob`: `*` matches any run of characters.
fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || !text[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devserver_db_allowed_roles_globs() {
        assert!(glob_match("read*", "readonly"));
        assert!(glob_match("*only", "readonly"));
        assert!(glob_match("r*d*y", "readonly"));
        assert!(!glob_match("write*", "readonly"));
        assert!(!glob_match("readonly", "readonly2"));
        assert!(!glob_match("ab*ba", "aba"));
    }

    #[test]
    fn devserver_db_literal_url_passwords_are_redacted() {
        assert_eq!(redact_url("postgresql://u:secret@127.0.0.1:5432/db"), "postgresql://u:xxxxx@127.0.0.1:5432/db");
        let templated = "postgresql://{{username}}:{{password}}@127.0.0.1:5432/db";
        assert_eq!(redact_url(templated), templated);
        assert_eq!(redact_url("postgresql://127.0.0.1/db?user=a@b"), "postgresql://127.0.0.1/db?user=a@b");
        assert_eq!(redact_url("host=127.0.0.1 user=u"), "host=127.0.0.1 user=u");
    }
}
