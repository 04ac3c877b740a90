//! `kv-random`: rotates one field of a KV secret to a random value.
//!
//! The KV secret is itself the target, so this plugin needs no capability:
//! `create` builds the new field set (current fields kept, `preserve_fields`
//! merged, the rotated field replaced), the host writes it as a new KV
//! version, and `test` checks the value obeys the policy. The policy mirrors
//! Vault password policies: an alphabet plus rules that demand a minimum
//! number of characters from given charsets.

mod policy;
mod settings;

use std::cell::RefCell;
use std::rc::Rc;

use rotator_plugin_sdk::{
    Action, Context, Guest, NewSecret, PluginInfo, RotateError, Secret, SecretAccess, Step, fields, settings, to_json,
};
use serde_json::{Map, Value};
use settings::{Job, Settings};

const SCHEMA: &str = include_str!("settings.schema.json");

thread_local! {
    /// The settings as an earlier step parsed them. An instance lives for one
    /// rotation, and its steps carry the same settings, so `test` reuses what
    /// `create` parsed instead of parsing and validating them again. Keyed by
    /// the raw JSON, so different settings are never mistaken for these.
    static LOADED: RefCell<Option<(String, Rc<Job>)>> = const { RefCell::new(None) };
}

impl Job {
    fn load(ctx: &Context) -> Result<Rc<Self>, RotateError> {
        LOADED.with_borrow_mut(|loaded| {
            if let Some((raw, job)) = loaded
                && *raw == ctx.settings
            {
                return Ok(job.clone());
            }
            let raw: Settings = settings(ctx)?;
            let job = Rc::new(raw.check().map_err(RotateError::InvalidConfig)?);
            *loaded = Some((ctx.settings.clone(), job.clone()));
            Ok(job)
        })
    }
}

struct KvRandom;

impl Guest for KvRandom {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "kv-random".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Sets one field of a KV secret to a random value that obeys a password policy".into(),
            settings_schema: SCHEMA.into(),
            capabilities: Vec::new(),
            access: SecretAccess::Values,
            visible_fields: Vec::new(),
        }
    }

    fn plan(ctx: Context) -> Result<Vec<Action>, RotateError> {
        let s = Job::load(&ctx)?;
        let kept = match &ctx.current {
            Some(cur) => fields(&cur.data)?.keys().filter(|k| **k != s.field).count(),
            None => 0,
        };
        Ok(vec![
            Action {
                step: Step::Create,
                summary: format!(
                    "generate a {}-character value for field `{}` ({}); keep {} other field(s), set {} from preserve_fields",
                    s.policy.length,
                    s.field,
                    s.policy.describe(),
                    kept,
                    s.preserve_fields.len()
                ),
            },
            Action { step: Step::Test, summary: format!("check field `{}` obeys the policy", s.field) },
        ])
    }

    fn create(ctx: Context) -> Result<NewSecret, RotateError> {
        let s = Job::load(&ctx)?;
        let mut data = match &ctx.current {
            Some(cur) => fields(&cur.data)?,
            None => Map::new(),
        };
        for (k, v) in &s.preserve_fields {
            data.insert(k.clone(), v.clone());
        }
        let value = s.policy.generate().map_err(RotateError::Transient)?;
        data.insert(s.field.clone(), Value::String(value));
        Ok(to_json(data).into())
    }

    fn set(_ctx: Context, _pending: Secret) -> Result<(), RotateError> {
        // The KV secret is the target; the host writes the new version.
        Ok(())
    }

    fn test(ctx: Context, pending: Secret) -> Result<(), RotateError> {
        let s = Job::load(&ctx)?;
        let data = fields(&pending.data)?;
        match data.get(&s.field) {
            Some(Value::String(v)) => s.policy.check(v).map_err(RotateError::Permanent),
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

rotator_plugin_sdk::export!(KvRandom);
