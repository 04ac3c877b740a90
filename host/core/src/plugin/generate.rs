//! New secrets that the host completes: fields the host generates from a
//! policy the plugin names (WIT 0.2's `new-secret`), so that in handle mode
//! the plugin never holds the value it rotates to.
//!
//! The policy is Vault's password-policy shape (as kv-random's): a length,
//! an alphabet, and rules asking for a minimum count from given charsets.
//! Values come from the thread-local CSPRNG (`rand::rng()`, ChaCha seeded
//! from the OS), indices drawn without modulo bias; the rules' characters
//! are placed first and the whole value shuffled. Every size is bounded
//! because the plugin chooses the policy.

use rand::Rng;
use rand::seq::SliceRandom;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use zeroize::Zeroize;

use super::Failure;
use crate::secret::SecretJson;

/// The longest value the host generates.
pub const MAX_LENGTH: u32 = 4096;
/// The most characters an alphabet or a charset may list.
pub const MAX_CHARSET: usize = 1024;
/// The most rules a policy may have.
pub const MAX_RULES: usize = 16;
/// The most fields one `create` may ask the host to generate.
pub const MAX_GENERATED: usize = 32;

const DEFAULT_ALPHABET: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// What a generated value must look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValuePolicy {
    pub length: u32,
    /// Empty: letters and digits.
    pub alphabet: String,
    /// `(charset, min_chars)`.
    pub rules: Vec<(String, u32)>,
}

/// A field the host fills.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedField {
    pub field: String,
    pub policy: ValuePolicy,
}

/// What `create` returns: the plugin's own fields (JSON object text) and
/// the fields the host generates.
#[derive(Clone, PartialEq, Eq)]
pub struct NewSecret {
    pub data: String,
    pub generate: Vec<GeneratedField>,
}

impl std::fmt::Debug for NewSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `data` may hold values the plugin chose (value mode).
        f.debug_struct("NewSecret").field("data", &"<redacted>").field("generate", &self.generate).finish()
    }
}

impl NewSecret {
    /// A secret the plugin wrote whole (WIT 0.1's `create`).
    pub fn whole(data: String) -> Self {
        Self { data, generate: Vec::new() }
    }

    /// The whole secret: the plugin's fields, then the generated ones, then
    /// those captured from responses during `create`. A field named twice,
    /// a policy that cannot be met or a result over `limit` bytes fails.
    pub fn complete(self, captured: Vec<(String, SecretString)>, limit: usize) -> Result<SecretJson, Failure> {
        let secret = SecretJson::parse(self.data).map_err(|e| Failure::BadOutput(e.to_string()))?;
        if self.generate.is_empty() && captured.is_empty() {
            return Ok(secret);
        }
        if self.generate.len() > MAX_GENERATED {
            let n = self.generate.len();
            return Err(Failure::BadOutput(format!("asked for {n} generated fields; at most {MAX_GENERATED}")));
        }
        let mut fields = secret.fields();
        let twice = |field: &str| Failure::BadOutput(format!("field `{field}` of the new secret is named twice"));
        for g in self.generate {
            if fields.contains_key(&g.field) {
                return Err(twice(&g.field));
            }
            let value = g.policy.generate().map_err(|why| Failure::BadOutput(format!("field `{}`: {why}", g.field)))?;
            fields.insert(g.field, Value::String(value.expose_secret().to_owned()));
        }
        for (field, value) in captured {
            if fields.contains_key(&field) {
                return Err(twice(&field));
            }
            fields.insert(field, Value::String(value.expose_secret().to_owned()));
        }
        let secret = SecretJson::from_map(&fields);
        match secret.expose().len() {
            size if size > limit => Err(Failure::SecretTooLarge { size, limit }),
            _ => Ok(secret),
        }
    }
}

/// Distinct characters of `text`, in order.
fn chars_of(text: &str, what: &str) -> Result<Vec<char>, String> {
    let mut out: Vec<char> = Vec::new();
    for c in text.chars() {
        if c.is_control() {
            return Err(format!("{what} holds a control character"));
        }
        if !out.contains(&c) {
            out.push(c);
        }
    }
    if out.len() > MAX_CHARSET {
        return Err(format!("{what} lists {} characters; at most {MAX_CHARSET} are allowed", out.len()));
    }
    Ok(out)
}

impl ValuePolicy {
    /// Generate one value, or say why the policy cannot be met.
    pub fn generate(&self) -> Result<SecretString, String> {
        if self.length == 0 || self.length > MAX_LENGTH {
            return Err(format!("length {} is outside 1 to {MAX_LENGTH}", self.length));
        }
        if self.rules.len() > MAX_RULES {
            return Err(format!("{} rules; at most {MAX_RULES} are allowed", self.rules.len()));
        }
        let alphabet = if self.alphabet.is_empty() { DEFAULT_ALPHABET } else { &self.alphabet };
        let mut all = chars_of(alphabet, "the alphabet")?;
        let mut rules = Vec::with_capacity(self.rules.len());
        let mut required: u64 = 0;
        for (charset, min) in &self.rules {
            let set = chars_of(charset, "a rule's charset")?;
            if set.is_empty() && *min > 0 {
                return Err("a rule asks for characters from an empty charset".into());
            }
            required += u64::from(*min);
            for c in &set {
                if !all.contains(c) {
                    all.push(*c);
                }
            }
            rules.push((set, *min));
        }
        if required > u64::from(self.length) {
            return Err(format!("the rules ask for {required} characters but the length is {}", self.length));
        }
        let mut rng = rand::rng();
        let mut value: Vec<char> = Vec::with_capacity(self.length as usize);
        for (set, min) in &rules {
            value.extend((0..*min).map(|_| set[rng.random_range(0..set.len())]));
        }
        while value.len() < self.length as usize {
            value.push(all[rng.random_range(0..all.len())]);
        }
        value.shuffle(&mut rng);
        let mut text: String = value.iter().collect();
        value.zeroize();
        let secret = SecretString::from(text.clone());
        text.zeroize();
        Ok(secret)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use secrecy::ExposeSecret;

    use super::*;

    fn policy(length: u32, alphabet: &str, rules: &[(&str, u32)]) -> ValuePolicy {
        ValuePolicy {
            length,
            alphabet: alphabet.into(),
            rules: rules.iter().map(|(c, m)| ((*c).to_owned(), *m)).collect(),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn generated_values_obey_their_policy(
            length in 1u32..200,
            alphabet in "[a-z]{0,20}",
            digits in 0u32..5,
            symbols in 0u32..5,
        ) {
            let p = policy(length, &alphabet, &[("0123456789", digits), ("!#%", symbols)]);
            match p.generate() {
                Ok(v) => {
                    let v = v.expose_secret();
                    prop_assert_eq!(v.chars().count(), length as usize);
                    prop_assert!(v.chars().filter(char::is_ascii_digit).count() >= digits as usize);
                    prop_assert!(v.chars().filter(|c| "!#%".contains(*c)).count() >= symbols as usize);
                    let allowed = if alphabet.is_empty() { DEFAULT_ALPHABET.to_owned() } else { alphabet.clone() };
                    prop_assert!(v.chars().all(|c| allowed.contains(c) || "0123456789!#%".contains(c)));
                }
                Err(why) => prop_assert!(digits + symbols > length, "{why}"),
            }
        }
    }

    #[test]
    fn impossible_or_oversized_policies_are_refused() {
        assert!(policy(0, "", &[]).generate().is_err());
        assert!(policy(MAX_LENGTH + 1, "", &[]).generate().is_err());
        assert!(policy(4, "", &[("ab", 5)]).generate().is_err());
        assert!(policy(4, "", &[("", 1)]).generate().is_err());
        assert!(policy(4, "a\u{7}", &[]).generate().is_err());
        let many: String = (0..=MAX_CHARSET as u32).filter_map(|n| char::from_u32(0x4e00 + n)).collect();
        assert!(policy(4, &many, &[]).generate().is_err());
        let rules: Vec<(&str, u32)> = (0..=MAX_RULES).map(|_| ("a", 0)).collect();
        assert!(policy(4, "", &rules).generate().is_err());
    }

    #[test]
    fn a_new_secret_is_completed_by_the_host() {
        let new = NewSecret {
            data: r#"{"username":"app"}"#.into(),
            generate: vec![GeneratedField { field: "password".into(), policy: policy(24, "", &[]) }],
        };
        let captured = vec![("key".to_owned(), SecretString::from("captured-value"))];
        let secret = new.clone().complete(captured.clone(), 4096).unwrap();
        let fields = secret.fields();
        assert_eq!(fields["username"], "app");
        assert_eq!(fields["password"].as_str().unwrap().len(), 24);
        assert_eq!(fields["key"], "captured-value");
        assert!(matches!(new.clone().complete(captured.clone(), 40), Err(Failure::SecretTooLarge { .. })));
        let twice = vec![("username".to_owned(), SecretString::from("x"))];
        assert!(matches!(new.clone().complete(twice, 4096), Err(Failure::BadOutput(_))));
        let bad = NewSecret { data: "[1]".into(), generate: Vec::new() };
        assert!(matches!(bad.complete(Vec::new(), 4096), Err(Failure::BadOutput(_))));
        assert!(!format!("{new:?}").contains("app"), "Debug hides the plugin's fields");
    }

    #[test]
    fn two_values_differ() {
        let p = policy(32, "", &[]);
        assert_ne!(p.generate().unwrap().expose_secret(), p.generate().unwrap().expose_secret());
    }
}
