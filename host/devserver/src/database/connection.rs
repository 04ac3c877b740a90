//! How the engine reaches PostgreSQL: a connection's settings and the
//! shared handle every operation goes through.
//!
//! A config's `connection_url` is a template (`postgresql://{{username}}:
//! {{password}}@127.0.0.1:5432/postgres`); [`Settings`] holds it with the
//! root username and password and renders it, URL-escaping the credentials
//! as Vault does (unless `disable_escaping`). The password lives only here,
//! never in the config's `connection_details`, so no read can return it.
//!
//! Each named config has one [`Connection`] per mount, shared (`Arc`) by the
//! config, every lease issued through it and every static role using it:
//! rotate-root and config updates change its settings in place, so a lease
//! issued before a root rotation is still revoked with the current root
//! password, and a lease whose mount was removed can still be revoked. A
//! deleted config leaves the handle empty (revocations then fail, as in
//! Vault, until a config of that name is written again).
//!
//! Every operation opens a fresh client (loopback, no TLS) under the
//! handle's read gate; rotate-root takes the write gate, so no operation
//! connects with a password that is being replaced.

use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use tokio_postgres::{Client, NoTls};
use zeroize::Zeroizing;

use super::{scram, sql};
use crate::util::weak_bool;

/// How long connecting may take before the operation fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How `{{password}}` reaches PostgreSQL in statements
/// (`password_authentication`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PasswordAuth {
    /// The plain password (PostgreSQL hashes it with `password_encryption`).
    Password,
    /// A SCRAM-SHA-256 verifier computed here.
    ScramSha256,
}

/// Everything needed to connect as the root user. No `Debug`: it holds the
/// password.
#[derive(Clone)]
pub(crate) struct Settings {
    url: String,
    username: String,
    password: Zeroizing<String>,
    auth: PasswordAuth,
    disable_escaping: bool,
}

impl Settings {
    /// Read `connection_details` (without the password) and the password;
    /// errors are Vault's plugin initialisation messages.
    pub fn from_details(details: &Map<String, Value>, password: Zeroizing<String>) -> Result<Self, String> {
        let text = |key: &str| -> Result<String, String> {
            match details.get(key) {
                None | Some(Value::Null) => Ok(String::new()),
                Some(Value::String(s)) => Ok(s.clone()),
                Some(other) => Err(format!("{key} must be a string, got {other}")),
            }
        };
        let url = text("connection_url")?;
        if url.trim().is_empty() {
            return Err("connection_url cannot be empty".into());
        }
        let auth = match text("password_authentication")?.as_str() {
            "" | "password" => PasswordAuth::Password,
            "scram-sha-256" => PasswordAuth::ScramSha256,
            other => return Err(format!("'{other}' is not a valid password authentication type")),
        };
        let disable_escaping = match details.get("disable_escaping") {
            None | Some(Value::Null) => false,
            Some(v) => weak_bool(v).ok_or("disable_escaping must be a boolean")?,
        };
        let settings = Self { url, username: text("username")?, password, auth, disable_escaping };
        settings.config()?;
        Ok(settings)
    }

    /// Whether a root password is configured.
    pub fn has_password(&self) -> bool {
        !self.password.is_empty()
    }

    /// The same settings with another root password.
    pub fn with_password(&self, password: Zeroizing<String>) -> Self {
        Self { password, ..self.clone() }
    }

    /// The current root password, to keep it across a config update.
    pub fn password(&self) -> Zeroizing<String> {
        self.password.clone()
    }

    /// What `{{password}}` becomes in statements for a new `password`.
    pub fn password_for_sql(&self, password: &str) -> Zeroizing<String> {
        match self.auth {
            PasswordAuth::Password => Zeroizing::new(password.to_owned()),
            PasswordAuth::ScramSha256 => Zeroizing::new(scram::verifier(password)),
        }
    }

    /// The root password, for redacting errors about this connection.
    pub fn secret(&self) -> &str {
        &self.password
    }

    /// The rendered URL as a client config; the username and password
    /// fields fill in what the URL leaves out.
    fn config(&self) -> Result<tokio_postgres::Config, String> {
        let url_form = self.url.starts_with("postgres://") || self.url.starts_with("postgresql://");
        let escape = |s: &str| if url_form && !self.disable_escaping { percent_encode(s) } else { s.to_owned() };
        let user = escape(&self.username);
        let password = Zeroizing::new(escape(&self.password));
        let rendered = Zeroizing::new(sql::render(&self.url, &[("username", &user), ("password", &password)]));
        let mut config = tokio_postgres::Config::from_str(&rendered)
            .map_err(|e| format!("invalid connection_url: {}", sql::describe(&e, &[self.secret()])))?;
        if config.get_user().is_none() && !self.username.is_empty() {
            config.user(&self.username);
        }
        if config.get_password().is_none() && !self.password.is_empty() {
            config.password(self.password.as_bytes());
        }
        config.connect_timeout(CONNECT_TIMEOUT);
        config.application_name("rotator-dev-vault");
        Ok(config)
    }
}

/// Go's `url.PathEscape` for credentials: everything but unreserved
/// characters percent-encoded.
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Connect with `settings`; the error text is safe to answer.
pub(crate) async fn connect(settings: &Settings) -> Result<Client, String> {
    let config = settings.config()?;
    let (client, connection) = config.connect(NoTls).await.map_err(|e| sql::describe(&e, &[settings.secret()]))?;
    tokio::spawn(async move {
        if connection.await.is_err() {
            tracing::debug!("vault dev server: a database connection ended with an error");
        }
    });
    Ok(client)
}

/// One named connection of a mount, shared by everything that uses it.
pub(crate) struct Connection {
    name: String,
    settings: Mutex<Option<Settings>>,
    gate: RwLock<()>,
}

/// A client opened through a [`Connection`], holding its gate.
pub(crate) struct Session<'a> {
    _gate: RwLockReadGuard<'a, ()>,
    pub client: Client,
    pub settings: Settings,
}

impl Connection {
    /// An empty handle for connection `name` (no settings until a config
    /// is saved).
    pub fn new(name: &str) -> Arc<Self> {
        Arc::new(Self { name: name.to_owned(), settings: Mutex::new(None), gate: RwLock::new(()) })
    }

    /// The settings, taken over from a panicked holder like the state is.
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Settings>> {
        self.settings.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Replace the settings (`None`: the config was deleted).
    pub fn set(&self, settings: Option<Settings>) {
        *self.lock() = settings;
    }

    /// The settings in force, or Vault's error for a missing config.
    pub fn current(&self) -> Result<Settings, String> {
        self.lock().clone().ok_or_else(|| super::missing_config(&self.name))
    }

    /// Change only the root password (after rotate-root).
    fn set_password(&self, password: Zeroizing<String>) {
        let mut settings = self.lock();
        if let Some(current) = settings.as_mut() {
            current.password = password;
        }
    }

    /// Open a client as the root user for an ordinary operation.
    pub async fn open(&self) -> Result<Session<'_>, String> {
        let gate = self.gate.read().await;
        let settings = self.current()?;
        let client = connect(&settings).await.map_err(|e| format!("unable to get connection: {e}"))?;
        Ok(Session { _gate: gate, client, settings })
    }

    /// Change the root password: with every other operation held off, run
    /// `statements` (or the default `ALTER ROLE`) as the root user, keep the
    /// new password, and prove it by connecting with it.
    pub async fn rotate_root(&self, statements: &[String], new_password: Zeroizing<String>) -> Result<(), String> {
        let _gate: RwLockWriteGuard<'_, ()> = self.gate.write().await;
        let settings = self.current()?;
        if settings.username.is_empty() {
            return Err("unable to rotate root credentials: no username in configuration".into());
        }
        if !settings.has_password() {
            return Err("unable to rotate root credentials: no password in configuration".into());
        }
        let mut client =
            connect(&settings).await.map_err(|e| format!("failed to update user: unable to get connection: {e}"))?;
        change_password(&mut client, &settings, &settings.username, &new_password, statements)
            .await
            .map_err(|e| format!("failed to update user: {e}"))?;
        drop(client);
        self.set_password(new_password.clone());
        let rotated = settings.with_password(new_password);
        connect(&rotated).await.map_err(|e| format!("failed to connect with the new root credentials: {e}"))?;
        Ok(())
    }
}

/// Vault's default password change statement.
const DEFAULT_CHANGE_PASSWORD: &str = r#"ALTER ROLE "{{username}}" WITH PASSWORD '{{password}}';"#;

/// Set `username`'s password to `password` with `statements` (default:
/// `ALTER ROLE ... WITH PASSWORD`), in one transaction, connected as the
/// root user of `settings`. The role must exist.
pub(crate) async fn change_password(
    client: &mut Client,
    settings: &Settings,
    username: &str,
    password: &str,
    statements: &[String],
) -> Result<(), String> {
    if !sql::role_exists(client, username).await? {
        return Err("user does not appear to exist".into());
    }
    let default = [DEFAULT_CHANGE_PASSWORD.to_owned()];
    let statements = if statements.is_empty() { &default[..] } else { statements };
    let in_sql = settings.password_for_sql(password);
    let vars = [("name", username), ("username", username), ("password", in_sql.as_str())];
    sql::run_in_transaction(client, statements, &vars, &[password, &in_sql, settings.secret()]).await
}
