//! `{{name}}`: a rotator plugin that changes a user's password through an
//! HTTP API, here RabbitMQ's management API: `PUT /api/users/{name}` sets
//! the password, `GET /api/whoami` proves it.
//!
//! Calls are made as an administrator whose credential is a KV secret the
//! `admin` setting names (read through the host's `vault` import), never as
//! the user being changed: a retried `set` then logs in the same way every
//! time. The job's secret holds the user's credential as `username` and
//! `password` (other fields are kept).
//!
//! Every step is idempotent by design: `set` is a `PUT` of the whole
//! credential, so sending it twice is one change (no create-then-delete,
//! whose second attempt would answer differently), and `rollback` is the
//! same `PUT` with the current password. User names are percent-encoded as
//! one path segment, so a name like `a/b` or `..` cannot reach another
//! resource.

mod policy;

use std::time::Duration;

use rotator_plugin_sdk::http::{self, Text, path_segment, status_error};
use rotator_plugin_sdk::{
    Action, Capability, Context, Guest, HttpAccess, Level, NewSecret, Operation, PluginInfo, RotateError, Secret,
    SecretAccess, Step, VaultAccess, fields, log, settings, to_json, vault,
};
use serde::Deserialize;
use serde_json::{Value, json};

/// The JSON schema of the settings: the host checks a job's settings against
/// it before any step, and `rotator plugin inspect` shows it.
const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "{{name}} settings",
  "type": "object",
  "additionalProperties": false,
  "x-rotator-public-fields": ["username"],
  "required": ["url", "username", "admin"],
  "properties": {
    "url": {"type": "string", "pattern": "^https?://[^/?#]+$",
            "description": "The API's origin, e.g. http://rabbitmq:15672; the job needs an http grant for it."},
    "username": {"type": "string", "minLength": 1, "maxLength": 255, "description": "The user whose password is rotated."},
    "admin": {"type": "object", "additionalProperties": false, "required": ["mount", "path"],
              "properties": {"mount": {"type": "string", "minLength": 1}, "path": {"type": "string", "minLength": 1}},
              "description": "The KV secret with the administrator's `username` and `password`."},
    "length": {"type": "integer", "minimum": 16, "maximum": 256, "default": 32,
               "description": "Length of the new password, in letters and digits."}
  }
}"#;

/// Per call; the host caps it further by what is left of the step.
const TIMEOUT: Duration = Duration::from_secs(15);

/// Where the administrator's credential lives.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Admin {
    mount: String,
    path: String,
}

/// The job's settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    url: String,
    username: String,
    admin: Admin,
    #[serde(default = "default_length")]
    length: usize,
}

fn default_length() -> usize {
    32
}

/// A `username` and `password` pair. Deliberately not `Debug`.
struct Login {
    username: String,
    password: String,
}

impl Login {
    /// The `username` and `password` fields of a secret's JSON.
    fn of(secret: &str, what: &str) -> Result<Self, RotateError> {
        let map = fields(secret)?;
        match (map.get("username").and_then(Value::as_str), map.get("password").and_then(Value::as_str)) {
            (Some(u), Some(p)) => Ok(Self { username: u.to_owned(), password: p.to_owned() }),
            _ => Err(RotateError::Permanent(format!("{what} lacks a `username` or `password` field"))),
        }
    }
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
        if http::origin(&self.url).as_deref() != Some(self.url.trim_end_matches('/')) {
            return Err("settings.url must be an origin, like http://rabbitmq:15672".into());
        }
        if self.username.is_empty() || self.username.chars().any(char::is_control) {
            return Err("settings.username must be a non-empty name without control characters".into());
        }
        // The schema asks for 16 to 256; the generator takes any of these.
        if !policy::LENGTHS.contains(&self.length) {
            let (min, max) = (policy::LENGTHS.start(), policy::LENGTHS.end());
            return Err(format!("settings.length must be from {min} to {max}, not {}", self.length));
        }
        Ok(())
    }

    fn user_url(&self) -> String {
        format!("{}/api/users/{}", self.url.trim_end_matches('/'), path_segment(&self.username))
    }

    /// `request` sent as `login`.
    fn call(&self, request: http::Request, login: &Login) -> Result<http::Response, RotateError> {
        let request = request.basic_auth(Text::plain(&login.username), Text::plain(&login.password));
        Ok(request.timeout(TIMEOUT).header("Accept", "application/json").send()?)
    }

    /// The administrator's login, from the KV secret `admin` names.
    fn admin(&self) -> Result<Login, RotateError> {
        let (mount, path) = (&self.admin.mount, &self.admin.path);
        let secret = vault::kv_read(mount, path)?
            .ok_or_else(|| RotateError::InvalidConfig(format!("the admin secret {mount}/{path} does not exist")))?;
        Login::of(&secret.data, "the admin secret")
    }

    /// `PUT` the user with `password`, keeping its tags: the same call
    /// twice is one change.
    fn put_password(&self, password: &str) -> Result<(), RotateError> {
        let admin = self.admin()?;
        let found = self.call(http::get(self.user_url()), &admin)?;
        if found.status() == 404 {
            return Err(RotateError::Permanent(format!("user `{}` does not exist", self.username)));
        }
        let user: Value = found.error_for_status()?.json()?;
        // A list since RabbitMQ 3.9, a comma-separated string before.
        let tags = match &user["tags"] {
            Value::Array(items) => items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","),
            Value::String(s) => s.clone(),
            _ => String::new(),
        };
        let body = json!({ "password": password, "tags": tags });
        self.call(http::put(self.user_url()).json(body), &admin)?.error_for_status()?;
        Ok(())
    }

    /// The password in `secret`, checked to be for this job's user.
    fn password_in(&self, secret: &str) -> Result<String, RotateError> {
        let login = Login::of(secret, "the secret")?;
        if login.username != self.username {
            return Err(RotateError::Permanent(format!(
                "the secret is for user `{}`, but this job rotates user `{}`",
                login.username, self.username
            )));
        }
        Ok(login.password)
    }
}

struct Plugin;

impl Guest for Plugin {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "{{name}}".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Changes a user's password through an HTTP API (RabbitMQ's management API)".into(),
            settings_schema: SCHEMA.into(),
            capabilities: vec![
                // `*`: the origin the job's `settings.url` names.
                Capability::Http(HttpAccess {
                    origin: "*".into(),
                    paths: vec!["/api/users/".into(), "/api/whoami".into()],
                    methods: vec!["GET".into(), "PUT".into()],
                }),
                // The admin secret (a KV v2 read).
                Capability::Vault(VaultAccess { path: "+/data/*".into(), operations: vec![Operation::Read] }),
            ],
            access: SecretAccess::Values,
            visible_fields: Vec::new(),
        }
    }

    fn plan(ctx: Context) -> Result<Vec<Action>, RotateError> {
        let s = Settings::load(&ctx)?;
        let (url, admin) = (s.user_url(), format!("{}/{}", s.admin.mount, s.admin.path));
        Ok(vec![
            Action { step: Step::Create, summary: format!("generate a {}-character password", s.length) },
            Action { step: Step::Set, summary: format!("as the administrator in {admin}: GET {url}, PUT it with the new password") },
            Action { step: Step::Test, summary: format!("GET {}/api/whoami as `{}` with it", s.url, s.username) },
            Action { step: Step::Rollback, summary: format!("PUT {url} with the current password") },
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
        s.put_password(&s.password_in(&pending.data)?)?;
        log(Level::Info, &format!("changed the password of user `{}`", s.username));
        Ok(())
    }

    fn test(ctx: Context, pending: Secret) -> Result<(), RotateError> {
        let s = Settings::load(&ctx)?;
        let password = s.password_in(&pending.data)?;
        // A password `create` could not have made is refused before it is tried.
        policy::check(&password, s.length).map_err(|e| RotateError::Permanent(format!("the new password: {e}")))?;
        let login = Login { username: s.username.clone(), password };
        let whoami = format!("{}/api/whoami", s.url.trim_end_matches('/'));
        match s.call(http::get(whoami), &login)?.status() {
            200..=299 => Ok(()),
            401 => Err(RotateError::Permanent(format!("the API refused the new password of `{}`", s.username))),
            status => Err(status_error(status, "GET /api/whoami")),
        }
    }

    fn finish(_ctx: Context, _pending: Secret) -> Result<(), RotateError> {
        Ok(())
    }

    fn rollback(ctx: Context, _pending: Secret) -> Result<(), RotateError> {
        let s = Settings::load(&ctx)?;
        match &ctx.current {
            Some(current) => {
                s.put_password(&s.password_in(&current.data)?)?;
                log(Level::Info, &format!("put the previous password of user `{}` back", s.username));
            }
            // The first rotation has no password to go back to.
            None => log(Level::Warn, &format!("no previous password of user `{}` to put back", s.username)),
        }
        Ok(())
    }
}

rotator_plugin_sdk::export!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(settings: Value) -> Result<Settings, String> {
        let s: Settings = serde_json::from_value(settings).map_err(|e| e.to_string())?;
        s.check().map(|()| s)
    }

    fn with(url: &str, username: &str) -> Value {
        json!({"url": url, "username": username, "admin": {"mount": "secret", "path": "api/admin"}})
    }

    #[test]
    fn settings_take_an_origin_a_user_and_an_admin_secret() {
        let s = parse(with("http://rabbit:15672", "app")).unwrap();
        assert_eq!(s.user_url(), "http://rabbit:15672/api/users/app");
        assert!(parse(with("http://rabbit:15672/x", "app")).unwrap_err().contains("must be an origin"));
        let no_admin = json!({"url": "http://rabbit:15672", "username": "app"});
        assert!(parse(no_admin).unwrap_err().contains("missing field"));
    }

    #[test]
    fn a_user_name_is_one_path_segment() {
        let s = parse(with("http://rabbit:15672", "../a/b")).unwrap();
        let segment = &s.user_url()["http://rabbit:15672/api/users/".len()..];
        assert!(!segment.contains('/'), "{segment}");
    }

    #[test]
    fn the_schema_is_json() {
        let schema: Value = serde_json::from_str(SCHEMA).unwrap();
        assert_eq!(schema["required"][2], "admin");
    }
}
