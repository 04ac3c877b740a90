//! The job's settings, parsed and checked. Kept apart from the WIT glue so
//! the overhead benchmark can compile the very same code natively.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::policy::{self, Policy};

/// The job's `settings` table. (Spelled out rather than flattening
/// [`Policy`] in: serde's `flatten` buffers the whole table and ignores
/// `deny_unknown_fields`.)
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    field: String,
    #[serde(default = "policy::default_length")]
    length: usize,
    #[serde(default)]
    alphabet: Option<String>,
    #[serde(default)]
    rules: Vec<policy::Rule>,
    #[serde(default)]
    preserve_fields: Map<String, Value>,
}

/// The settings, checked, with the policy split out.
pub struct Job {
    pub field: String,
    pub policy: Policy,
    pub preserve_fields: Map<String, Value>,
}

impl Settings {
    /// Check the policy can be met and the rotated field is not also fixed.
    pub fn check(self) -> Result<Job, String> {
        let policy = Policy::new(self.length, self.alphabet.as_deref(), &self.rules)?;
        if self.preserve_fields.contains_key(&self.field) {
            return Err(format!("preserve_fields must not contain the rotated field `{}`", self.field));
        }
        Ok(Job { field: self.field, policy, preserve_fields: self.preserve_fields })
    }
}
