//! The Flask rotation service's requests, mapped onto the built-in plugins.
//!
//! The service had two kinds of rotation, each a `type` of job and a
//! one-off endpoint: `kv_random` (a random value in one field of a KV
//! secret) and `database_root` (Vault's `rotate-root` of one database
//! connection). A request is a flat JSON object. Each built-in that serves
//! one of those types declares a [`Legacy`] form: its type and a reader that
//! takes the fields it knows out of the request and says what a job for it
//! holds ([`LegacyJob`]): the KV secret, the plugin's settings, the least
//! grants the plugin needs, and the names the service used for the target.
//! A field no form takes is refused, so a typo never silently drops a
//! setting.
//!
//! Everything a request names lands in a Vault path or a grant, so it is
//! checked here, once: KV mounts and paths are canonical [`VaultPath`]s,
//! and the names that become grant paths are plain ([`plain_name`]), since
//! `*` and `+` are wildcards there. Errors quote field names and bounded
//! excerpts ([`shown`]), never a value that may be secret.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::vault::kv::SecretLocation;
use crate::vault::path::{PathError, VaultPath, shown};

/// How one built-in reads the Flask service's requests.
pub struct Legacy {
    /// The service's job `type` for this plugin (`kv_random`).
    pub job_type: &'static str,
    /// Takes the fields it knows out of a request.
    read: fn(&mut Fields) -> Result<Target, LegacyError>,
}

/// A request mapped onto a built-in: what a job for it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct LegacyJob {
    /// The built-in plugin's name.
    pub plugin: &'static str,
    /// The service's id for a job on this target (`kv-secret-app-config`),
    /// a valid job id.
    pub job_id: String,
    /// The target as a path (`kv/secret/app/config`): one-off rotations of
    /// one target share one state record named after it, so an interrupted
    /// one is resumed by the next, never confused with another target's.
    pub target: String,
    /// The KV secret the job rotates, if the plugin rotates one.
    pub secret: Option<SecretLocation>,
    /// The plugin's settings (its schema checks them when the job is built).
    pub settings: Map<String, Value>,
    /// The least the plugin needs in Vault.
    pub grants: Vec<LegacyGrant>,
    /// The request fields that name the target, which the service's answers
    /// repeat (`mount`, `path`, `field`).
    pub echo: Map<String, Value>,
}

/// One Vault grant, in the config's words (`{"path": …, "operations": […]}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LegacyGrant {
    pub path: String,
    pub operations: Vec<&'static str>,
}

/// Why a request was refused. Messages name fields, never their values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LegacyError {
    #[error("unknown job type `{given}` (known: {known})")]
    UnknownType { given: String, known: String },
    #[error("`{0}` is required")]
    Missing(&'static str),
    #[error("`{field}` must be {expected}")]
    WrongType { field: &'static str, expected: &'static str },
    #[error("unknown field `{field}` for a {job_type} job")]
    UnknownField { field: String, job_type: &'static str },
    #[error("{field}: {source}")]
    Path { field: &'static str, source: PathError },
    #[error("{what} `{raw}` is not a plain name: use letters, digits, `-`, `_`{}", if *nested { ", `.` and `/`" } else { " and `.`" })]
    NotPlainName { what: String, raw: String, nested: bool },
}

/// `kv-random`: a random value in one field of a KV secret.
pub(super) const KV_RANDOM: Legacy = Legacy { job_type: "kv_random", read: kv_random };

/// `database-root`: Vault rotates one connection's root credential.
pub(super) const DATABASE_ROOT: Legacy = Legacy { job_type: "database_root", read: database_root };

impl Legacy {
    /// Map `fields` onto `plugin` (the built-in declaring this form).
    pub(super) fn map(&self, plugin: &'static str, fields: Map<String, Value>) -> Result<LegacyJob, LegacyError> {
        let mut fields = Fields { map: fields };
        let target = (self.read)(&mut fields)?;
        if let Some(field) = fields.map.keys().next() {
            return Err(LegacyError::UnknownField { field: shown(field), job_type: self.job_type });
        }
        let Target { job_id, target, secret, settings, grants, echo } = target;
        Ok(LegacyJob { plugin, job_id: job_id_from(&job_id), target, secret, settings, grants, echo })
    }
}

/// What a reader found; [`Legacy::map`] completes it into a [`LegacyJob`].
struct Target {
    job_id: String,
    target: String,
    secret: Option<SecretLocation>,
    settings: Map<String, Value>,
    grants: Vec<LegacyGrant>,
    echo: Map<String, Value>,
}

/// A request's fields not yet taken.
struct Fields {
    map: Map<String, Value>,
}

impl Fields {
    /// The field `key`, taken; `null` counts as absent, as it did for the
    /// service's clients (a Python `None`).
    fn take(&mut self, key: &str) -> Option<Value> {
        self.map.remove(key).filter(|v| !v.is_null())
    }

    /// A string field; `default` if absent, required without one.
    fn text(&mut self, key: &'static str, default: Option<&str>) -> Result<String, LegacyError> {
        match (self.take(key), default) {
            (Some(Value::String(s)), _) => Ok(s),
            (Some(_), _) => Err(LegacyError::WrongType { field: key, expected: "a string" }),
            (None, Some(d)) => Ok(d.to_owned()),
            (None, None) => Err(LegacyError::Missing(key)),
        }
    }

    /// A KV mount or path, canonical.
    fn vault_path(&mut self, key: &'static str, default: Option<&str>) -> Result<VaultPath, LegacyError> {
        let raw = self.text(key, default)?;
        VaultPath::parse(&raw).map_err(|source| LegacyError::Path { field: key, source })
    }

    /// A name that becomes part of a grant path.
    fn name(&mut self, key: &'static str, default: Option<&str>, nested: bool) -> Result<String, LegacyError> {
        let raw = self.text(key, default)?;
        Ok(plain_name(key, &raw, nested)?.to_owned())
    }
}

/// A plain name: letters, digits, `-`, `_` and `.` (not `.` or `..`), with
/// `/` between segments where `nested` allows it (mounts). Names like these
/// end up in grant paths, where `+` and `*` are wildcards: a connection
/// `*` would grant every connection's root.
pub fn plain_name<'a>(what: &str, raw: &'a str, nested: bool) -> Result<&'a str, LegacyError> {
    let trimmed = if nested { raw.trim_matches('/') } else { raw };
    let plain = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    let ok = if nested { trimmed.split('/').all(plain) } else { plain(trimmed) };
    if !ok {
        return Err(LegacyError::NotPlainName { what: what.to_owned(), raw: shown(raw), nested });
    }
    Ok(trimmed)
}

/// A valid job id from free text: lowercase, `-` for anything else.
fn job_id_from(text: &str) -> String {
    let mut id: String =
        text.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    id.truncate(64);
    id.trim_matches('-').to_owned()
}

fn kv_random(f: &mut Fields) -> Result<Target, LegacyError> {
    let mount = f.vault_path("mount", Some("secret"))?;
    let path = f.vault_path("path", None)?;
    let field = f.text("field", None)?;
    let mut settings = Map::new();
    settings.insert("field".into(), field.clone().into());
    // Checked by the plugin's schema; values may be secret (`preserve_fields`)
    // and are never quoted here.
    for key in ["length", "alphabet", "rules"] {
        if let Some(v) = f.take(key) {
            settings.insert(key.into(), v);
        }
    }
    match f.take("preserve_fields") {
        Some(v @ Value::Object(_)) => {
            settings.insert("preserve_fields".into(), v);
        }
        Some(_) => return Err(LegacyError::WrongType { field: "preserve_fields", expected: "a JSON object" }),
        None => {}
    }
    let echo = Map::from_iter([
        ("mount".to_owned(), Value::from(mount.as_str())),
        ("path".to_owned(), Value::from(path.as_str())),
        ("field".to_owned(), Value::from(field)),
    ]);
    Ok(Target {
        job_id: format!("kv-{mount}-{path}"),
        target: format!("kv/{mount}/{path}"),
        secret: Some(SecretLocation { mount: mount.to_string(), path: path.to_string() }),
        settings,
        // The host writes the secret; the plugin only creates the value.
        grants: Vec::new(),
        echo,
    })
}

fn database_root(f: &mut Fields) -> Result<Target, LegacyError> {
    let mount = f.name("mount", Some("database"), true)?;
    let connection = f.name("connection", None, false)?;
    let grant = |path: String, operation| LegacyGrant { path, operations: vec![operation] };
    let echo = Map::from_iter([
        ("mount".to_owned(), Value::from(mount.as_str())),
        ("connection".to_owned(), Value::from(connection.as_str())),
    ]);
    Ok(Target {
        job_id: format!("db-root-{connection}"),
        target: format!("database-root/{mount}/{connection}"),
        secret: None,
        // Exactly this connection: rotate its root, read its config.
        grants: vec![
            grant(format!("{mount}/rotate-root/{connection}"), "write"),
            grant(format!("{mount}/config/{connection}"), "read"),
        ],
        settings: echo.clone(),
        echo,
    })
}

#[cfg(test)]
#[path = "legacy_tests.rs"]
mod tests;
