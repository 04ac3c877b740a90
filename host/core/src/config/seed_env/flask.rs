//! One job of the Flask rotation service (`{"type": "kv_random", "path": …,
//! "interval_seconds": …}`) as our job fields, shared by `POST
//! /scheduler/jobs` and `rotator run` without `--config`.
//!
//! `type` names the built-in whose declared form reads the other fields
//! ([`crate::builtin::legacy_job`]); `id` (else the service's id for the
//! target) and `interval_seconds` are the service's own job fields. Every
//! problem of the envelope and the built-in's first are reported together,
//! each naming its key, never a value.

use serde_json::{Map, Value, json};

use crate::builtin::{self, LegacyError};
use crate::config::units::INTERVAL;

/// Why one service job was refused. Messages name keys, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlaskJobError {
    #[error("`type` must be a string")]
    TypeNotString,
    #[error("`interval_seconds` is required")]
    IntervalMissing,
    #[error("`interval_seconds` must be a positive whole number")]
    IntervalNotPositive,
    /// Beyond the config's `interval` range ([`INTERVAL`]).
    #[error("`interval_seconds` must be at most {0}")]
    IntervalTooLong(u64),
    #[error("`id` must be a string")]
    IdNotString,
    /// The built-in refused the job's other fields.
    #[error(transparent)]
    Job(#[from] LegacyError),
}

impl FlaskJobError {
    /// The job key the problem is at (`interval_seconds`), to locate it.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::TypeNotString => Some("type"),
            Self::IntervalMissing | Self::IntervalNotPositive | Self::IntervalTooLong(_) => Some("interval_seconds"),
            Self::IdNotString => Some("id"),
            Self::Job(e) => match e {
                LegacyError::UnknownType { .. } => Some("type"),
                LegacyError::Missing(k) => Some(k),
                LegacyError::WrongType { field, .. } | LegacyError::Path { field, .. } => Some(field),
                LegacyError::UnknownField { field, .. } => Some(field),
                LegacyError::NotPlainName { what, .. } => Some(what),
            },
        }
    }
}

/// The service's job `f` → our job fields (`id`, `plugin`, `interval`,
/// `settings`, `secret`, `grants`), or every problem found.
pub fn flask_job(mut f: Map<String, Value>) -> Result<Map<String, Value>, Vec<FlaskJobError>> {
    let mut errors = Vec::new();
    let kind = match f.remove("type") {
        Some(Value::String(kind)) => Some(kind),
        _ => {
            errors.push(FlaskJobError::TypeNotString);
            None
        }
    };
    let interval = match f.remove("interval_seconds") {
        Some(Value::Number(n)) => match n.as_u64() {
            Some(0) | None => Err(FlaskJobError::IntervalNotPositive),
            Some(s) if s > INTERVAL.max.as_secs() => Err(FlaskJobError::IntervalTooLong(INTERVAL.max.as_secs())),
            Some(s) => Ok(format!("{s}s")),
        },
        Some(_) => Err(FlaskJobError::IntervalNotPositive),
        None => Err(FlaskJobError::IntervalMissing),
    };
    let interval = interval.map_err(|e| errors.push(e)).ok();
    let given_id = match f.remove("id") {
        Some(Value::String(id)) => Some(id),
        None | Some(Value::Null) => None,
        Some(_) => {
            errors.push(FlaskJobError::IdNotString);
            None
        }
    };
    let mapped = kind.map(|kind| builtin::legacy_job(&kind, f).map_err(|e| errors.push(e.into())).ok());
    let (Some(Some(mapped)), Some(interval), true) = (mapped, interval, errors.is_empty()) else {
        return Err(errors);
    };
    let mut job = Map::new();
    job.insert("id".into(), given_id.unwrap_or(mapped.job_id).into());
    job.insert("plugin".into(), mapped.plugin.into());
    job.insert("interval".into(), interval.into());
    job.insert("settings".into(), Value::Object(mapped.settings));
    if let Some(secret) = mapped.secret {
        job.insert("secret".into(), json!({ "mount": secret.mount, "path": secret.path }));
    }
    if !mapped.grants.is_empty() {
        job.insert("grants".into(), json!(mapped.grants));
    }
    Ok(job)
}
