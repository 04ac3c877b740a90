//! Which fields of a job's secret are identifiers, not secrets.
//!
//! The [`Redactor`](super::Redactor) replaces every value of a secret in what
//! a plugin says. For a password that is right; for the role name next to it
//! it hides the one fact an operator needs (`role "[REDACTED]" does not
//! exist`). A field is *public* only when something says so: the plugin, in
//! its settings schema's `x-rotator-public-fields` keyword (WIT 0.2 has no
//! field for it), or the job's `public_fields`, which replaces the plugin's
//! list. The default is that every field is secret.
//!
//! What public does *not* do, so that a plugin (or a careless config) cannot
//! use it to show a secret:
//! - only a top-level field whose value is a string is shown; anything nested
//!   under a public name is still redacted;
//! - a value is shown only because no secret field holds it: the redactor
//!   works on values, so a public field equal to (or containing) a secret
//!   value still shows `[REDACTED]` there;
//! - values the host generated or captured for the new secret are redacted
//!   whatever their field is called (the run registers them itself);
//! - a name that reads as a secret (`password`, `secret`, `token`, `private`,
//!   `credential`, …) cannot be declared public at all: the plugin fails to
//!   load, the job's config is refused.
//!
//! The list is bounded ([`MAX_PUBLIC_FIELDS`] names of at most
//! [`MAX_NAME`] bytes): the plugin chooses it.

use std::fmt;
use std::sync::Arc;

/// The most public fields a plugin or a job may declare.
pub const MAX_PUBLIC_FIELDS: usize = 32;
/// The longest field name that may be declared public.
pub const MAX_NAME: usize = 128;
/// The settings-schema keyword a plugin declares its public fields with.
pub const SCHEMA_KEYWORD: &str = "x-rotator-public-fields";

/// Parts of a field name that mark it as a secret (compared in lower case,
/// `-` and `_` dropped, so `Pass-Word` and `api_Token` count). A guard
/// against the obvious mistake, not the boundary: public stays opt-in.
const SECRET_WORDS: &[&str] = &["pass", "pwd", "secret", "token", "private", "credential", "apikey"];

/// The public fields of a job's secret: exact top-level names. Empty (the
/// default): every field is secret.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PublicFields(Arc<[String]>);

/// Why a list of public fields is refused. Names are quoted: they are
/// field names, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublicFieldsError {
    #[error("at most {MAX_PUBLIC_FIELDS} public fields; {0} were declared")]
    TooMany(usize),
    #[error("a public field name must be 1 to {MAX_NAME} bytes without control characters")]
    BadName,
    #[error("field `{0}` reads as a secret and cannot be public")]
    LooksSecret(String),
    #[error("{SCHEMA_KEYWORD} must be a list of field names")]
    NotAList,
}

impl fmt::Debug for PublicFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter()).finish()
    }
}

/// Serialized as the list of names (in `plugin describe`'s JSON, say).
impl serde::Serialize for PublicFields {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl PublicFields {
    /// Check and keep `names` (duplicates dropped, order kept).
    pub fn new<S: AsRef<str>>(names: &[S]) -> Result<Self, PublicFieldsError> {
        if names.len() > MAX_PUBLIC_FIELDS {
            return Err(PublicFieldsError::TooMany(names.len()));
        }
        let mut kept: Vec<String> = Vec::with_capacity(names.len());
        for name in names.iter().map(AsRef::as_ref) {
            if name.is_empty() || name.len() > MAX_NAME || name.chars().any(char::is_control) {
                return Err(PublicFieldsError::BadName);
            }
            if looks_secret(name) {
                return Err(PublicFieldsError::LooksSecret(name.to_owned()));
            }
            if !kept.iter().any(|k| k == name) {
                kept.push(name.to_owned());
            }
        }
        Ok(Self(kept.into()))
    }

    /// What a plugin's settings schema declares: its
    /// [`SCHEMA_KEYWORD`] list, or none.
    pub fn from_schema(schema: &serde_json::Value) -> Result<Self, PublicFieldsError> {
        match schema.get(SCHEMA_KEYWORD) {
            None => Ok(Self::default()),
            Some(serde_json::Value::Array(items)) => {
                let names: Option<Vec<&str>> = items.iter().map(serde_json::Value::as_str).collect();
                Self::new(&names.ok_or(PublicFieldsError::NotAList)?)
            }
            Some(_) => Err(PublicFieldsError::NotAList),
        }
    }

    /// Whether the top-level field `name` is public.
    pub fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|n| n == name)
    }

    /// The names, in the order declared.
    pub fn names(&self) -> &[String] {
        &self.0
    }

    /// Whether every field is secret.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Whether `name` reads as the name of a secret.
fn looks_secret(name: &str) -> bool {
    let folded: String =
        name.chars().filter(|c| !matches!(c, '-' | '_' | '.' | ' ')).flat_map(char::to_lowercase).collect();
    SECRET_WORDS.iter().any(|w| folded.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn identifiers_are_accepted_and_secret_looking_names_refused() {
        let ok = PublicFields::new(&["username", "access_key_id", "host", "username"]).unwrap();
        assert_eq!(ok.names(), ["username", "access_key_id", "host"]);
        for name in ["password", "Pass-Word", "secret_access_key", "api_token", "privateKey", "db_passwd", "API-Key"] {
            assert_eq!(PublicFields::new(&[name]), Err(PublicFieldsError::LooksSecret(name.into())), "{name}");
        }
        assert_eq!(PublicFields::new(&[""]), Err(PublicFieldsError::BadName));
        assert_eq!(PublicFields::new(&["a\nb"]), Err(PublicFieldsError::BadName));
        assert_eq!(PublicFields::new(&["x".repeat(MAX_NAME + 1)]), Err(PublicFieldsError::BadName));
        let many: Vec<String> = (0..=MAX_PUBLIC_FIELDS).map(|i| format!("f{i}")).collect();
        assert_eq!(PublicFields::new(&many), Err(PublicFieldsError::TooMany(MAX_PUBLIC_FIELDS + 1)));
    }

    #[test]
    fn the_schema_keyword_is_read_and_checked() {
        let schema = json!({"type": "object", SCHEMA_KEYWORD: ["username"]});
        assert_eq!(PublicFields::from_schema(&schema).unwrap().names(), ["username"]);
        assert!(PublicFields::from_schema(&json!({"type": "object"})).unwrap().is_empty());
        for bad in [json!("username"), json!([1]), json!({"username": true})] {
            let schema = json!({ SCHEMA_KEYWORD: bad });
            assert_eq!(PublicFields::from_schema(&schema), Err(PublicFieldsError::NotAList));
        }
        let schema = json!({ SCHEMA_KEYWORD: ["username", "password"] });
        assert_eq!(PublicFields::from_schema(&schema), Err(PublicFieldsError::LooksSecret("password".into())));
    }

    fn redactor(public: &[&str], secrets: &[serde_json::Value]) -> super::super::Redactor {
        let mut r = super::super::Redactor::with_public(PublicFields::new(public).unwrap());
        for s in secrets {
            r.add_secret(&super::super::SecretJson::new(s.to_string()));
        }
        r
    }

    #[test]
    fn a_public_username_shows_and_the_password_does_not() {
        let mut r = redactor(&["username"], &[json!({"username": "app_user", "password": "s3cr3t-value"})]);
        assert_eq!(r.redact(r#"role "app_user" refused s3cr3t-value"#), r#"role "app_user" refused [REDACTED]"#);
        // The default: every field is secret.
        let mut all = redactor(&[], &[json!({"username": "app_user", "password": "s3cr3t-value"})]);
        assert_eq!(all.redact(r#"role "app_user""#), r#"role "[REDACTED]""#);
    }

    #[test]
    fn a_public_name_shows_only_a_top_level_string_of_that_name() {
        let secret = json!({
            "username": {"inner": "nested-under-public"},
            "note": ["listed-under-public"],
            "deep": {"username": "same-name-but-nested"},
            "Username": "other-case-name",
            "host": "not-declared",
        });
        let mut r = redactor(&["username", "note"], &[secret]);
        let text = "nested-under-public listed-under-public same-name-but-nested other-case-name not-declared";
        assert_eq!(r.redact(text), ["[REDACTED]"; 5].join(" "));
    }

    #[test]
    fn a_public_value_that_is_also_a_secret_value_stays_redacted() {
        // In one secret, and across secrets (the new username is the
        // current password), and as a part of a longer public value.
        let current = json!({"username": "old-user", "password": "shared-value"});
        let new = json!({"username": "shared-value", "password": "fresh-password"});
        let wrapping = json!({"username": "prefix-fresh-password-suffix", "password": "other-pw"});
        let mut r = redactor(&["username"], &[current, new, wrapping]);
        assert_eq!(r.redact("shared-value old-user"), "[REDACTED] old-user");
        assert_eq!(r.redact("prefix-fresh-password-suffix"), "prefix-[REDACTED]-suffix");
    }

    /// Random secrets (field names drawn from a small set, some declared
    /// public), random public declarations and text made of their values:
    /// no value of a field that is not public (or of any nested value)
    /// shows whole, and a public value that contains no secret value shows.
    /// Secrets as `(name index, value, nested?)` fields, the indices of
    /// the names declared public, and which values the text quotes.
    type PublicCase = (Vec<Vec<(usize, String, bool)>>, Vec<usize>, Vec<prop::sample::Index>);

    fn public_redaction_case() -> impl proptest::strategy::Strategy<Value = PublicCase> {
        use proptest::prelude::*;
        let value = proptest::collection::vec(prop_oneof!["a", "b", "€", "x"], 4..10).prop_map(|w| w.concat());
        // (field name index, value, nested under the name?)
        let field = (0..NAMES.len(), value, any::<bool>());
        let secret = proptest::collection::vec(field, 1..5);
        (
            proptest::collection::vec(secret, 1..4),
            proptest::collection::vec(0..NAMES.len(), 0..NAMES.len()),
            proptest::collection::vec(any::<prop::sample::Index>(), 0..10),
        )
    }

    use proptest::prelude::prop;

    const NAMES: &[&str] = &["username", "host", "note", "password", "key"];

    fn public_redaction_holds(secrets: &[Vec<(usize, String, bool)>], public: &[usize], picks: &[prop::sample::Index]) {
        let declared: Vec<&str> = public.iter().map(|&i| NAMES[i]).filter(|n| *n != "password").collect();
        let mut r = super::super::Redactor::with_public(PublicFields::new(&declared).unwrap());
        let mut shown = Vec::new();
        let mut hidden = Vec::new();
        for fields in secrets {
            let mut map = serde_json::Map::new();
            for (name, value, nested) in fields {
                let v = if *nested { json!({ "inner": value }) } else { json!(value) };
                map.insert(NAMES[*name].to_owned(), v);
            }
            // What the map really holds (a later field of a name wins).
            for (name, v) in &map {
                match v.as_str() {
                    Some(s) if declared.contains(&name.as_str()) => shown.push(s.to_owned()),
                    Some(s) => hidden.push(s.to_owned()),
                    None => hidden.push(v["inner"].as_str().unwrap().to_owned()),
                }
            }
            r.add_secret(&super::super::SecretJson::from_map(&map));
        }
        let all: Vec<&String> = shown.iter().chain(&hidden).collect();
        let text: String = picks.iter().map(|i| format!(" {} ", i.get(&all))).collect();
        let out = r.redact(&text);
        for h in &hidden {
            assert!(!out.contains(h.as_str()), "{h:?} shows in {out:?}");
        }
        for s in shown.iter().filter(|s| !hidden.iter().any(|h| s.contains(h.as_str()))) {
            if text.contains(&format!(" {s} ")) {
                assert!(out.contains(&format!(" {s} ")), "public {s:?} is hidden in {out:?}");
            }
        }
    }

    fn run_public_property(rng_seed: proptest::test_runner::RngSeed) {
        use proptest::test_runner::{Config, TestRunner};
        let config = Config { cases: 5_000, rng_seed, failure_persistence: None, ..Config::default() };
        TestRunner::new(config)
            .run(&public_redaction_case(), |(secrets, public, picks)| {
                public_redaction_holds(&secrets, &public, &picks);
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn public_fields_never_show_another_fields_value_fixed_seed() {
        run_public_property(proptest::test_runner::RngSeed::Fixed(0x9AB11C));
    }

    #[test]
    fn public_fields_never_show_another_fields_value_random_seed() {
        run_public_property(proptest::test_runner::RngSeed::Random);
    }
}
