//! Rust SDK for rotator plugins, for `rotator:plugin@0.2.0` (the SDK's
//! version is the WIT package's).
//!
//! A plugin implements [`Guest`] (the WIT `rotator` interface: `describe`,
//! `plan`, `create`, `set`, `test`, `finish`, `rollback`) and registers
//! itself with [`export!`]. The SDK re-exports the generated WIT bindings so a
//! plugin crate needs no `wit-bindgen` setup of its own, and adds the few
//! helpers every plugin wants:
//!
//! - [`settings`] parses the job's settings into your type, [`fields`] and
//!   [`to_json`] read and write a secret's fields, [`Secret::handle`] finds a
//!   field's handle;
//! - [`log`] writes through the host's log;
//! - [`sql`] runs statements on a connection the operator granted, [`http`]
//!   sends requests through the host (secrets travel as handles);
//! - `?` turns a [`VaultError`], [`sql::SqlError`] or [`http::HttpError`]
//!   into the [`RotateError`] case that says whether a retry can help.
//!
//! A whole plugin (a crate with `crate-type = ["cdylib"]`, built with
//! `cargo build --release --target wasm32-wasip2`; `rotator plugin new NAME
//! --lang rust` writes one):
//!
//! ```
//! use rotator_plugin_sdk::{
//!     Action, Context, Guest, Level, NewSecret, PluginInfo, RotateError, Secret, SecretAccess, Step, fields, log,
//!     settings, to_json,
//! };
//!
//! #[derive(serde::Deserialize)]
//! struct Settings {
//!     field: String,
//! }
//!
//! struct Stamp;
//!
//! impl Guest for Stamp {
//!     fn describe() -> PluginInfo {
//!         PluginInfo {
//!             name: "stamp".into(),
//!             version: "0.1.0".into(),
//!             description: "Sets a field to the rotation's id".into(),
//!             settings_schema: r#"{"type": "object", "required": ["field"]}"#.into(),
//!             capabilities: Vec::new(),
//!             access: SecretAccess::Values,
//!             visible_fields: Vec::new(),
//!         }
//!     }
//!     fn plan(ctx: Context) -> Result<Vec<Action>, RotateError> {
//!         let s: Settings = settings(&ctx)?;
//!         Ok(vec![Action { step: Step::Create, summary: format!("set `{}`", s.field) }])
//!     }
//!     fn create(ctx: Context) -> Result<NewSecret, RotateError> {
//!         let s: Settings = settings(&ctx)?;
//!         let mut data = match &ctx.current {
//!             Some(current) => fields(&current.data)?,
//!             None => Default::default(),
//!         };
//!         data.insert(s.field, ctx.rotation_id.clone().into());
//!         log(Level::Info, "stamped");
//!         Ok(to_json(data).into())
//!     }
//!     fn set(_: Context, _: Secret) -> Result<(), RotateError> { Ok(()) }
//!     fn test(_: Context, _: Secret) -> Result<(), RotateError> { Ok(()) }
//!     fn finish(_: Context, _: Secret) -> Result<(), RotateError> { Ok(()) }
//!     fn rollback(_: Context, _: Secret) -> Result<(), RotateError> { Ok(()) }
//! }
//!
//! rotator_plugin_sdk::export!(Stamp);
//! # fn main() {}
//! ```
//!
//! What a plugin logs or returns as an error is redacted by the host against
//! every value of the job's secrets. Fields that are identifiers (a user
//! name, a key id) can be shown instead: list them in the settings schema as
//! `"x-rotator-public-fields": ["username"]` (top-level names; a name that
//! reads as a secret, such as `password`, is refused, and a field the host
//! generates or captures must not be listed). The operator's `public_fields`
//! replaces the list.
//!
//! The host's interfaces are only there inside the component: natively (in
//! `cargo test`) the pure helpers work, and a call into the host panics.

#![warn(missing_docs)]

/// The bindings `wit-bindgen` generates from the WIT: one module per
/// imported interface under [`rotator::plugin`] and the `rotator` interface
/// a plugin exports under [`exports`], documented by the WIT's own
/// comments. Most plugins need only the re-exports at the crate root.
#[allow(missing_docs)] // Generated; wit-bindgen adds helper items the WIT cannot document.
pub mod bindings {
    wit_bindgen::generate!({
        world: "plugin",
        path: "../../wit/rotator-plugin@0.2.0",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "rotator_plugin_sdk::bindings",
    });
}

pub use bindings::{export, exports, rotator};
pub use exports::rotator::plugin::rotator::Guest;
pub use rotator::plugin::http as http_api;
pub use rotator::plugin::log::{self as log_api, Level};
pub use rotator::plugin::types::{
    Action, Capability, CharsetRule, Context, FieldHandle, GeneratedField, Handle, HttpAccess, Json, NewSecret,
    Operation, PluginInfo, RotateError, Secret, SecretAccess, Step, ValuePolicy, VaultAccess,
};
pub use rotator::plugin::vault::{self, VaultError, VaultStatus};

pub mod http;
pub mod sql;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Parse the job's settings into the plugin's own settings type.
/// A mismatch is the operator's to fix, so it is `invalid-config`.
///
/// ```
/// # use rotator_plugin_sdk::{Context, RotateError, SecretAccess, settings};
/// # fn context(settings: &str) -> Context {
/// #     Context { job_id: "app".into(), rotation_id: "r-1".into(), settings: settings.into(), current: None,
/// #               attempt: 1, access: SecretAccess::Values }
/// # }
/// #[derive(serde::Deserialize)]
/// struct Settings {
///     field: String,
/// }
///
/// let s: Settings = settings(&context(r#"{"field": "password"}"#))?;
/// assert_eq!(s.field, "password");
/// let wrong = settings::<Settings>(&context(r#"{"length": 3}"#));
/// assert!(matches!(wrong, Err(RotateError::InvalidConfig(m)) if m.contains("missing field `field`")));
/// # Ok::<(), RotateError>(())
/// ```
pub fn settings<T: DeserializeOwned>(ctx: &Context) -> Result<T, RotateError> {
    serde_json::from_str(&ctx.settings).map_err(|e| RotateError::InvalidConfig(format!("settings: {e}")))
}

/// The fields of a secret as a JSON object. Anything else will not change
/// on a retry, so it is `permanent`.
///
/// ```
/// # use rotator_plugin_sdk::{RotateError, fields};
/// let data = fields(r#"{"username": "app", "password": "hunter2"}"#)?;
/// assert_eq!(data["username"], "app");
/// assert!(matches!(fields("[1, 2]"), Err(RotateError::Permanent(_))));
/// # Ok::<(), RotateError>(())
/// ```
pub fn fields(data: &str) -> Result<Map<String, Value>, RotateError> {
    match serde_json::from_str(data) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(RotateError::Permanent("secret data is not a JSON object".into())),
        Err(e) => Err(RotateError::Permanent(format!("secret data is not JSON: {e}"))),
    }
}

/// Serialize secret fields back to the JSON the host expects.
///
/// ```
/// # use rotator_plugin_sdk::{NewSecret, RotateError, fields, to_json};
/// let mut data = fields(r#"{"username": "app"}"#)?;
/// data.insert("password".into(), "s3cret".into());
/// let new: NewSecret = to_json(data).into();
/// assert_eq!(new.data, r#"{"password":"s3cret","username":"app"}"#);
/// # Ok::<(), RotateError>(())
/// ```
pub fn to_json(map: Map<String, Value>) -> Json {
    Value::Object(map).to_string()
}

/// A new secret the plugin wrote whole (every field's value in `data`).
impl From<Json> for NewSecret {
    fn from(data: Json) -> Self {
        NewSecret { data, generate: Vec::new() }
    }
}

impl Secret {
    /// The handle of `field`, if the secret has that field. In handle mode
    /// a plugin never sees a secret value: it passes the handle to the host
    /// ([`http::Text::secret`], say), which fills the value in.
    ///
    /// ```
    /// # use rotator_plugin_sdk::{FieldHandle, Secret};
    /// let secret = Secret {
    ///     data: "{}".into(),
    ///     handles: vec![FieldHandle { field: "token".into(), handle: "rotator-handle:current/token".into() }],
    ///     version: Some(3),
    /// };
    /// assert_eq!(secret.handle("token").map(String::as_str), Some("rotator-handle:current/token"));
    /// assert_eq!(secret.handle("password"), None);
    /// ```
    pub fn handle(&self, field: &str) -> Option<&Handle> {
        self.handles.iter().find(|h| h.field == field).map(|h| &h.handle)
    }
}

/// Log a message through the host, which tags it with job, plugin and
/// rotation and redacts known secret values from it.
///
/// ```no_run
/// use rotator_plugin_sdk::{Level, log};
/// log(Level::Info, "created the new user");
/// ```
pub fn log(level: Level, message: &str) {
    log_api::write(level, message);
}

impl From<VaultError> for RotateError {
    /// Vault being down or rate limiting is worth a retry; a denial or a
    /// rejected request is not.
    ///
    /// ```
    /// # use rotator_plugin_sdk::{RotateError, VaultError, VaultStatus};
    /// let busy = VaultError::Status(VaultStatus { code: 503, errors: vec!["sealed".into()] });
    /// assert!(matches!(RotateError::from(busy), RotateError::Transient(_)));
    /// let denied = VaultError::Denied("secret/data/other".into());
    /// assert!(matches!(RotateError::from(denied), RotateError::Permanent(_)));
    /// ```
    fn from(e: VaultError) -> Self {
        match e {
            VaultError::Denied(m) => RotateError::Permanent(format!("vault access denied: {m}")),
            VaultError::Unavailable(m) => RotateError::Transient(format!("vault unavailable: {m}")),
            VaultError::CasMismatch(m) => RotateError::Transient(format!("concurrent write: {m}")),
            VaultError::Status(s) if s.code == 429 || s.code >= 500 => {
                RotateError::Transient(format!("vault answered {}: {}", s.code, s.errors.join("; ")))
            }
            VaultError::Status(s) => {
                RotateError::Permanent(format!("vault answered {}: {}", s.code, s.errors.join("; ")))
            }
        }
    }
}
