//! The RabbitMQ management HTTP API calls the plugin makes, each through
//! the host with credentials as handles. User names and vhosts are
//! percent-encoded as single path segments, so a name like `a/b` or `..`
//! cannot address another resource.

use std::time::Duration;

use rotator_plugin_sdk::http::{self, Text, path_segment, status_error};
use rotator_plugin_sdk::{Handle, RotateError};
use serde::Deserialize;
use serde_json::{Value, json};

/// Per call; the host caps it further by what is left of the step.
const TIMEOUT: Duration = Duration::from_secs(15);

/// Basic-auth credentials as the host fills them in.
#[derive(Clone)]
pub struct Login {
    pub username: Text,
    pub password: Text,
}

/// The management API at one origin, called as one login.
pub struct Api<'a> {
    pub url: &'a str,
    pub login: Login,
}

/// A user as `GET /api/users/{name}` shows it (the password hash it also
/// returns is ignored).
pub struct User {
    /// Comma-separated, as every RabbitMQ version accepts them back.
    pub tags: String,
}

/// One vhost permission of a user.
#[derive(Deserialize)]
pub struct Permission {
    pub vhost: String,
    pub configure: String,
    pub write: String,
    pub read: String,
}

/// `/api/users/{name}` and friends.
fn user_path(name: &str) -> String {
    format!("/api/users/{}", path_segment(name))
}

impl Api<'_> {
    fn call(&self, request: http::Request) -> Result<http::Response, RotateError> {
        let login = self.login.clone();
        Ok(request
            .basic_auth(login.username, login.password)
            .timeout(TIMEOUT)
            .header("Accept", "application/json")
            .send()?)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// The user, or `None` if it does not exist.
    pub fn user(&self, name: &str) -> Result<Option<User>, RotateError> {
        let resp = self.call(http::get(self.url(&user_path(name))))?;
        if resp.status() == 404 {
            return Ok(None);
        }
        let body: Value = resp.error_for_status()?.json()?;
        // Tags are a list since RabbitMQ 3.9 and a comma-separated string before.
        let tags = match &body["tags"] {
            Value::Array(items) => items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","),
            Value::String(s) => s.clone(),
            _ => String::new(),
        };
        Ok(Some(User { tags }))
    }

    /// Set `name`'s password to the secret behind `password` (creating the
    /// user if it does not exist), keeping `tags`. The same call twice is
    /// one change, which makes `set` and `rollback` idempotent.
    pub fn put_user(&self, name: &str, password: &Handle, tags: &str) -> Result<(), RotateError> {
        let body = json!({ "tags": tags });
        self.call(http::put(self.url(&user_path(name))).json_with_secrets(body, [("/password", password)]))?
            .error_for_status()?;
        Ok(())
    }

    /// The vhost permissions of `name`.
    pub fn permissions(&self, name: &str) -> Result<Vec<Permission>, RotateError> {
        let path = format!("{}/permissions", user_path(name));
        self.call(http::get(self.url(&path)))?.error_for_status()?.json()
    }

    /// Give `name` the permission `p` in `p.vhost`.
    pub fn put_permission(&self, name: &str, p: &Permission) -> Result<(), RotateError> {
        let path = format!("/api/permissions/{}/{}", path_segment(&p.vhost), path_segment(name));
        let body = json!({ "configure": p.configure, "write": p.write, "read": p.read });
        self.call(http::put(self.url(&path)).json(body))?.error_for_status()?;
        Ok(())
    }

    /// Does the management API accept this login? `Ok(false)` on 401 (a
    /// wrong password, or a user without a management tag).
    pub fn whoami(&self) -> Result<bool, RotateError> {
        let resp = self.call(http::get(self.url("/api/whoami")))?;
        match resp.status() {
            401 => Ok(false),
            200..=299 => Ok(true),
            status => Err(status_error(status, "")),
        }
    }
}
