//! Secret values and how they are kept out of logs.
//!
//! A secret's data is a JSON object held in [`SecretJson`], which zeroizes its
//! buffer on drop and prints as `[REDACTED]` under `Debug` and `Display`. Text
//! that may have picked up a secret (a plugin's log line or error message) goes
//! through a [`Redactor`] built from the secrets known at that point.

use std::fmt;

use serde_json::{Map, Value};
use zeroize::Zeroizing;

/// What replaces a secret value in any text rotator emits.
pub const REDACTED: &str = "[REDACTED]";

/// Log filter directives every subscriber adds, whatever level is asked
/// for: dependencies whose debug output quotes secret values. tokio-postgres
/// logs each SQL statement, and the dev server's statements set passwords.
pub const QUIET_LOG_TARGETS: &[&str] = &["tokio_postgres=info"];

/// Secret data: a JSON object in text form. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretJson(Zeroizing<String>);

impl SecretJson {
    /// Wrap JSON text that is known to hold an object.
    pub fn new(json: String) -> Self {
        Self(Zeroizing::new(json))
    }

    /// Serialize an object into a secret.
    pub fn from_map(map: &Map<String, Value>) -> Self {
        Self::new(Value::Object(map.clone()).to_string())
    }

    /// Check the text is a JSON object and wrap it. (Values are skipped,
    /// not built: this runs on every rotation's output.)
    pub fn parse(json: String) -> Result<Self, String> {
        use serde::de::IgnoredAny;
        match serde_json::from_str::<std::collections::HashMap<String, IgnoredAny>>(&json) {
            Ok(_) => Ok(Self::new(json)),
            Err(_) if serde_json::from_str::<IgnoredAny>(&json).is_ok() => {
                Err("secret data must be a JSON object".into())
            }
            // serde_json's message names a position, never the content.
            Err(e) => Err(format!("secret data is not JSON: {e}")),
        }
    }

    /// The JSON text. Callers must not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The fields as a JSON map (a copy; callers must not log it).
    pub fn fields(&self) -> Map<String, Value> {
        match serde_json::from_str(&self.0) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        }
    }

    /// Field names only: safe to show.
    pub fn field_names(&self) -> Vec<String> {
        self.fields().keys().cloned().collect()
    }
}

impl fmt::Debug for SecretJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for SecretJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Scrubs known secret values out of free text.
///
/// Every string leaf of every registered secret (and the token, where known)
/// is a needle. Short values (under 4 characters) are skipped: they would
/// redact ordinary words and carry little secrecy anyway. Secrets are parsed
/// into needles only when there is text to redact, so a rotation whose
/// plugin logs nothing and fails nowhere pays almost nothing for this.
#[derive(Default, Clone)]
pub struct Redactor {
    needles: Vec<Zeroizing<String>>,
    /// Secrets registered but not yet turned into needles.
    unparsed: Vec<SecretJson>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redactor({} values, {} pending)", self.needles.len(), self.unparsed.len())
    }
}

const MIN_NEEDLE: usize = 4;

impl Redactor {
    pub fn new() -> Self {
        Self::default()
    }

    /// Register every string value inside a secret.
    pub fn add_secret(&mut self, secret: &SecretJson) {
        if !self.unparsed.contains(secret) {
            self.unparsed.push(secret.clone());
        }
    }

    /// Register one raw value (e.g. a token).
    pub fn add_str(&mut self, s: &str) {
        if s.len() >= MIN_NEEDLE && !self.needles.iter().any(|n| n.as_str() == s) {
            self.needles.push(Zeroizing::new(s.to_owned()));
            // Longest first, so a value containing another is replaced whole.
            self.needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        }
    }

    fn add_value(&mut self, value: &Value) {
        match value {
            Value::String(s) => self.add_str(s),
            Value::Array(items) => items.iter().for_each(|v| self.add_value(v)),
            Value::Object(map) => map.values().for_each(|v| self.add_value(v)),
            _ => {}
        }
    }

    /// `text` with every registered value replaced by [`REDACTED`].
    pub fn redact(&mut self, text: &str) -> String {
        for secret in std::mem::take(&mut self.unparsed) {
            if let Ok(value) = serde_json::from_str::<Value>(secret.expose()) {
                self.add_value(&value);
            }
        }
        let mut out = text.to_owned();
        for needle in &self.needles {
            if out.contains(needle.as_str()) {
                out = out.replace(needle.as_str(), REDACTED);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let s = SecretJson::new(r#"{"password":"hunter22"}"#.into());
        assert_eq!(format!("{s:?}"), REDACTED);
        assert_eq!(format!("{s}"), REDACTED);
        assert!(!format!("{:?}", Some(&s)).contains("hunter22"));
    }

    #[test]
    fn redactor_replaces_nested_values_and_skips_short_ones() {
        let mut r = Redactor::new();
        r.add_secret(&SecretJson::new(r#"{"password":"s3cr3t-value","nested":{"k":["another-one"]},"n":"ab"}"#.into()));
        let out = r.redact("pw=s3cr3t-value other=another-one short=ab");
        assert_eq!(out, "pw=[REDACTED] other=[REDACTED] short=ab");
    }

    #[test]
    fn redactor_prefers_the_longest_match() {
        let mut r = Redactor::new();
        r.add_str("abcd");
        r.add_str("abcdefgh");
        assert_eq!(r.redact("xabcdefghx"), "x[REDACTED]x");
    }

    #[test]
    fn parse_rejects_non_objects_without_echoing_them() {
        let err = SecretJson::parse("\"topsecret\"".into()).unwrap_err();
        assert!(!err.contains("topsecret"));
        assert!(SecretJson::parse("not json topsecret".into()).unwrap_err().find("topsecret").is_none());
    }
}
