//! Rust SDK for rotator plugins.
//!
//! A plugin implements [`Guest`] (the WIT `rotator` interface) and registers
//! itself with [`export!`]. The SDK re-exports the generated WIT bindings so a
//! plugin crate needs no `wit-bindgen` setup of its own, and adds the few
//! helpers every plugin wants: parsing settings and secrets from JSON,
//! calling SQL connections ([`sql`]), sending HTTP through the host
//! ([`http`]) and turning errors into the right [`RotateError`] case.
//!
//! ```ignore
//! struct MyRotator;
//! impl rotator_plugin_sdk::Guest for MyRotator { /* … */ }
//! rotator_plugin_sdk::export!(MyRotator);
//! ```

wit_bindgen::generate!({
    world: "plugin",
    path: "../../wit/rotator-plugin@0.2.0",
    pub_export_macro: true,
    export_macro_name: "export",
    default_bindings_module: "rotator_plugin_sdk",
});

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
pub fn settings<T: DeserializeOwned>(ctx: &Context) -> Result<T, RotateError> {
    serde_json::from_str(&ctx.settings).map_err(|e| RotateError::InvalidConfig(format!("settings: {e}")))
}

/// The fields of a secret as a JSON object.
pub fn fields(data: &str) -> Result<Map<String, Value>, RotateError> {
    match serde_json::from_str(data) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(RotateError::Permanent("secret data is not a JSON object".into())),
        Err(e) => Err(RotateError::Permanent(format!("secret data is not JSON: {e}"))),
    }
}

/// Serialize secret fields back to the JSON the host expects.
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
    /// The handle of `field`, if the secret has that field.
    pub fn handle(&self, field: &str) -> Option<&Handle> {
        self.handles.iter().find(|h| h.field == field).map(|h| &h.handle)
    }
}

/// Log a message through the host (which tags it with job and plugin).
pub fn log(level: Level, message: &str) {
    log_api::write(level, message);
}

impl From<VaultError> for RotateError {
    /// Vault being down or rate limiting is worth a retry; a denial or a
    /// rejected request is not.
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
