//! Secrets as opaque handles: the table of one plugin run.
//!
//! A handle stands for one field of a secret the host holds: the job's
//! current secret, the pending one, or a secret the plugin read from Vault.
//! The plugin gets handles instead of values (in handle mode) or beside them
//! (in value mode), and can put a handle into an HTTP request, where the
//! host fills in the value as the request leaves ([`super::imports`]'s
//! `http`). A handle is valid only in the run that made it: the table lives
//! in the run's host state and is never shared.
//!
//! Handles name their scope and field (`rotator-handle:current/password`)
//! so that log lines and errors that quote one are readable; plugins are
//! told not to parse them, and the host only ever looks them up whole.

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::secret::SecretJson;

/// Every handle starts with this.
pub const PREFIX: &str = "rotator-handle:";

/// How a job's plugin is shown secrets.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SecretAccess {
    /// Every field's value, plus a handle for each.
    #[default]
    Values,
    /// Only the `visible` fields' values; every field as a handle.
    Handles { visible: Vec<String> },
}

impl SecretAccess {
    /// Whether the plugin may read `field` in clear.
    pub fn shows(&self, field: &str) -> bool {
        match self {
            Self::Values => true,
            Self::Handles { visible } => visible.iter().any(|v| v == field),
        }
    }

    pub fn is_handles(&self) -> bool {
        matches!(self, Self::Handles { .. })
    }
}

/// A secret as a plugin is shown it: the fields it may read, and a handle
/// for every field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShownSecret {
    /// The readable fields, as JSON object text.
    pub data: String,
    /// `(field, handle)` for every field, in the secret's order.
    pub handles: Vec<(String, String)>,
}

struct Entry {
    handle: String,
    value: SecretString,
    /// The plugin is shown this value in clear (value mode, or a visible
    /// field): nothing to hide, so nothing to scrub.
    shown: bool,
}

/// The handles of one run.
#[derive(Default)]
pub struct Handles {
    entries: Vec<Entry>,
    /// How many Vault reads made a scope so far (`kv1`, `kv2`, …).
    reads: usize,
}

impl std::fmt::Debug for Handles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.entries.iter().map(|e| &e.handle)).finish()
    }
}

/// The handle of `field` in `scope`.
pub fn handle_for(scope: &str, field: &str) -> String {
    format!("{PREFIX}{scope}/{field}")
}

/// A field's value as the text a request carries: strings as they are,
/// anything else (numbers, booleans) as its JSON text.
fn field_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Handles {
    /// Make handles for every field of `secret` under `scope`, replacing
    /// that scope's earlier ones, and return what the plugin is shown.
    pub fn show(&mut self, scope: &str, secret: &SecretJson, access: &SecretAccess) -> ShownSecret {
        let prefix = handle_for(scope, "");
        self.entries.retain(|e| !e.handle.starts_with(&prefix));
        let mut shown = serde_json::Map::new();
        let mut handles = Vec::new();
        for (field, value) in secret.fields() {
            let handle = handle_for(scope, &field);
            let visible = access.shows(&field);
            let value_text = SecretString::from(field_text(&value));
            self.entries.push(Entry { handle: handle.clone(), value: value_text, shown: visible });
            if visible {
                shown.insert(field.clone(), value);
            }
            handles.push((field, handle));
        }
        ShownSecret { data: Value::Object(shown).to_string(), handles }
    }

    /// [`Self::show`] for a secret read from Vault during the run: each read
    /// gets a scope of its own.
    pub fn show_read(&mut self, secret: &SecretJson, access: &SecretAccess) -> ShownSecret {
        self.reads += 1;
        let scope = format!("kv{}", self.reads);
        self.show(&scope, secret, access)
    }

    /// Add one value the plugin is not shown (a field captured from a
    /// response) and return its handle.
    pub fn add(&mut self, scope: &str, field: &str, value: SecretString) -> String {
        let handle = handle_for(scope, field);
        self.entries.retain(|e| e.handle != handle);
        self.entries.push(Entry { handle: handle.clone(), value, shown: false });
        handle
    }

    /// The value behind `handle`, if it is one of this run's.
    pub fn value(&self, handle: &str) -> Option<&str> {
        self.entries.iter().find(|e| e.handle == handle).map(|e| e.value.expose_secret())
    }

    /// Every `(handle, value)` the plugin is not shown, for scrubbing
    /// values out of what comes back. A value it is shown (value mode, a
    /// visible field) is left alone: hiding it hides nothing, and a short
    /// one (an id) would mangle unrelated text.
    pub fn hidden(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().filter(|e| !e.shown).map(|e| (e.handle.as_str(), e.value.expose_secret()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(json: &str) -> SecretJson {
        SecretJson::parse(json.to_owned()).unwrap()
    }

    #[test]
    fn handle_mode_shows_only_visible_fields_and_a_handle_for_each() {
        let mut table = Handles::default();
        let access = SecretAccess::Handles { visible: vec!["username".into()] };
        let shown = table.show("current", &secret(r#"{"username":"app","password":"hunter2-x","port":5672}"#), &access);
        assert_eq!(shown.data, r#"{"username":"app"}"#);
        assert_eq!(shown.handles.len(), 3);
        assert!(!shown.data.contains("hunter2-x"));
        let password = &shown.handles.iter().find(|(f, _)| f == "password").unwrap().1;
        assert_eq!(table.value(password), Some("hunter2-x"));
        let port = &shown.handles.iter().find(|(f, _)| f == "port").unwrap().1;
        assert_eq!(table.value(port), Some("5672"), "non-strings are their JSON text");
        assert_eq!(table.value("rotator-handle:current/nope"), None);
        assert!(!format!("{table:?}").contains("hunter2-x"), "Debug shows handles, never values");
    }

    #[test]
    fn showing_a_scope_again_replaces_its_handles() {
        let mut table = Handles::default();
        table.show("pending", &secret(r#"{"a":"one-value"}"#), &SecretAccess::Values);
        let shown = table.show("pending", &secret(r#"{"b":"two-value"}"#), &SecretAccess::Values);
        assert_eq!(shown.data, r#"{"b":"two-value"}"#);
        assert_eq!(table.value(&handle_for("pending", "a")), None);
        assert_eq!(table.value(&handle_for("pending", "b")), Some("two-value"));
        let read = table.show_read(&secret(r#"{"a":"admin-pw"}"#), &SecretAccess::Handles { visible: vec![] });
        assert_eq!(read.data, "{}");
        assert_eq!(read.handles[0].1, "rotator-handle:kv1/a");
        assert_eq!(table.hidden().count(), 1, "value mode shows `b`; only the read's `a` is hidden");
    }
}
