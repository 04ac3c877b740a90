//! `{{name}}`: a rotator plugin that sets one field of a KV secret to a
//! random value.
//!
//! The KV secret is itself the target, so the plugin needs no capability:
//! `create` keeps the current fields and replaces the rotated one, the host
//! writes the result as a new KV version, and `test` checks the value before
//! the host promotes it. Start your own rotator from here: `set` applies the
//! new secret to a target system, `test` proves it works there, `rollback`
//! undoes `set`.

mod policy;

use rotator_plugin_sdk::{
    Action, Context, Guest, Level, NewSecret, PluginInfo, RotateError, Secret, SecretAccess, Step, fields, log,
    settings, to_json,
};
use serde::Deserialize;
use serde_json::Value;

/// The JSON schema of the settings: the host checks a job's settings against
/// it before any step, and `rotator plugin inspect` shows it.
const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "{{name}} settings",
  "type": "object",
  "additionalProperties": false,
  "required": ["field"],
  "properties": {
    "field": {"type": "string", "minLength": 1, "description": "The field of the secret to rotate."},
    "length": {"type": "integer", "minimum": 8, "maximum": 1024, "default": 32,
               "description": "Length of the new value, in letters and digits."}
  }
}"#;

/// The job's settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    field: String,
    #[serde(default = "default_length")]
    length: usize,
}

fn default_length() -> usize {
    32
}

impl Settings {
    /// Parse and check the settings. The host validated them against
    /// [`SCHEMA`]; checking again keeps a gap between the schema and this code
    /// a typed error instead of a trap.
    fn load(ctx: &Context) -> Result<Self, RotateError> {
        let s: Settings = settings(ctx)?;
        s.check().map_err(RotateError::InvalidConfig)?;
        Ok(s)
    }

    fn check(&self) -> Result<(), String> {
        if self.field.is_empty() {
            return Err("settings.field must not be empty".into());
        }
        if !policy::LENGTHS.contains(&self.length) {
            let (min, max) = (policy::LENGTHS.start(), policy::LENGTHS.end());
            return Err(format!("settings.length must be from {min} to {max}, not {}", self.length));
        }
        Ok(())
    }
}

struct Plugin;

impl Guest for Plugin {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "{{name}}".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Sets one field of a KV secret to a random value".into(),
            settings_schema: SCHEMA.into(),
            capabilities: Vec::new(),
            // The KV secret is the target: the plugin reads and writes its
            // values itself, so it asks for value mode.
            access: SecretAccess::Values,
            visible_fields: Vec::new(),
        }
    }

    fn plan(ctx: Context) -> Result<Vec<Action>, RotateError> {
        let s = Settings::load(&ctx)?;
        Ok(vec![
            Action {
                step: Step::Create,
                summary: format!("generate a {}-character value for field `{}`", s.length, s.field),
            },
            Action {
                step: Step::Test,
                summary: format!("check field `{}` has {} letters and digits", s.field, s.length),
            },
        ])
    }

    fn create(ctx: Context) -> Result<NewSecret, RotateError> {
        let s = Settings::load(&ctx)?;
        let mut data = match &ctx.current {
            Some(current) => fields(&current.data)?,
            None => serde_json::Map::new(),
        };
        let value =
            policy::random_value(s.length).map_err(|e| RotateError::Transient(format!("no randomness: {e}")))?;
        data.insert(s.field.clone(), Value::String(value));
        log(Level::Info, &format!("generated a {}-character value for field `{}`", s.length, s.field));
        Ok(to_json(data).into())
    }

    fn set(_ctx: Context, _pending: Secret) -> Result<(), RotateError> {
        // The KV secret is the target; the host writes the new version.
        Ok(())
    }

    fn test(ctx: Context, pending: Secret) -> Result<(), RotateError> {
        let s = Settings::load(&ctx)?;
        match fields(&pending.data)?.get(&s.field) {
            Some(Value::String(value)) => {
                policy::check(value, s.length).map_err(|e| RotateError::Permanent(format!("field `{}`: {e}", s.field)))
            }
            _ => Err(RotateError::Permanent(format!("field `{}` is missing", s.field))),
        }
    }

    fn finish(_ctx: Context, _pending: Secret) -> Result<(), RotateError> {
        Ok(())
    }

    fn rollback(_ctx: Context, _pending: Secret) -> Result<(), RotateError> {
        // Nothing was applied outside the KV secret, which the host owns.
        Ok(())
    }
}

rotator_plugin_sdk::export!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<(), String> {
        let s: Settings = serde_json::from_str(json).map_err(|e| e.to_string())?;
        s.check()
    }

    #[test]
    fn settings_take_a_field_and_an_optional_length() {
        assert_eq!(parse(r#"{"field": "password"}"#), Ok(()));
        assert_eq!(parse(r#"{"field": "password", "length": 24}"#), Ok(()));
        assert!(parse(r#"{"field": ""}"#).unwrap_err().contains("must not be empty"));
        assert!(parse(r#"{"field": "password", "length": 7}"#).unwrap_err().contains("from 8 to 1024"));
        assert!(parse(r#"{"field": "password", "colour": "red"}"#).unwrap_err().contains("unknown field"));
    }

    #[test]
    fn the_schema_is_json() {
        let schema: Value = serde_json::from_str(SCHEMA).unwrap();
        assert_eq!(schema["required"][0], "field");
    }
}
