//! The plugins that ship inside the `rotator` binary, by name, and what
//! each one means to the requests of the Flask rotation service rotator
//! replaces.
//!
//! `build.rs` compiles them from `plugins/` and this module embeds the
//! components, so `rotator` works alone after `cargo install`. A job names a
//! built-in by its plugin name (`plugin = "kv-random"`).
//!
//! The operator API still speaks the service's formats (a job
//! `{"type": "kv_random", "path": …}`, `POST /kv/<path>/rotate`). Which
//! built-in a `type` means, and how the request's fields become that
//! plugin's secret, settings and grants, is declared here beside the plugin
//! ([`Builtin::legacy`], [`legacy_job`]), so the API and the scheduler stay
//! generic: they look a built-in up by name or by type and never name a
//! plugin or its settings keys.

pub mod legacy;

pub use legacy::{Legacy, LegacyError, LegacyGrant, LegacyJob};

/// A plugin embedded in the binary.
pub struct Builtin {
    pub name: &'static str,
    pub wasm: &'static [u8],
    /// How the Flask rotation service's requests map onto this plugin, if
    /// the service had such jobs.
    pub legacy: Option<Legacy>,
}

/// Every built-in plugin.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "kv-random",
        wasm: include_bytes!(concat!(env!("OUT_DIR"), "/kv_random.wasm")),
        legacy: Some(legacy::KV_RANDOM),
    },
    Builtin {
        name: "database-root",
        wasm: include_bytes!(concat!(env!("OUT_DIR"), "/database_root.wasm")),
        legacy: Some(legacy::DATABASE_ROOT),
    },
    Builtin {
        name: "postgres-password",
        wasm: include_bytes!(concat!(env!("OUT_DIR"), "/postgres_password.wasm")),
        legacy: None,
    },
    Builtin {
        name: "rabbitmq-password",
        wasm: include_bytes!(concat!(env!("OUT_DIR"), "/rabbitmq_password.wasm")),
        legacy: None,
    },
    Builtin {
        name: "aws-iam-access-key",
        wasm: include_bytes!(concat!(env!("OUT_DIR"), "/aws_iam_access_key.wasm")),
        legacy: None,
    },
];

/// The built-in plugin called `name`.
pub fn find(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

/// The built-in whose Flask-service job type is `job_type` (`kv_random`).
pub fn by_legacy_type(job_type: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.legacy.as_ref().is_some_and(|l| l.job_type == job_type))
}

/// Map a Flask-service request of type `job_type` onto its built-in:
/// every field of `fields` must be one the type knows.
pub fn legacy_job(
    job_type: &str,
    fields: serde_json::Map<String, serde_json::Value>,
) -> Result<LegacyJob, LegacyError> {
    let builtin = by_legacy_type(job_type).ok_or_else(|| LegacyError::UnknownType {
        given: crate::vault::path::shown(job_type),
        known: BUILTINS.iter().filter_map(|b| b.legacy.as_ref()).map(|l| l.job_type).collect::<Vec<_>>().join(", "),
    })?;
    let form = builtin.legacy.as_ref().expect("found by its legacy type");
    form.map(builtin.name, fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_legacy_types_are_unique() {
        for (i, a) in BUILTINS.iter().enumerate() {
            for b in &BUILTINS[i + 1..] {
                assert_ne!(a.name, b.name);
                if let (Some(x), Some(y)) = (&a.legacy, &b.legacy) {
                    assert_ne!(x.job_type, y.job_type);
                }
            }
        }
        assert_eq!(by_legacy_type("kv_random").map(|b| b.name), Some("kv-random"));
        assert_eq!(by_legacy_type("database_root").map(|b| b.name), Some("database-root"));
        assert!(by_legacy_type("kv-random").is_none(), "a plugin name is not a legacy type");
        assert!(by_legacy_type("").is_none());
    }
}
