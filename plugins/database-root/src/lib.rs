//! `database-root`: has Vault rotate the root credential of a database
//! connection (`POST <mount>/rotate-root/<connection>`), then checks that
//! Vault can still manage the database.
//!
//! The new root password is generated and kept by Vault; it never passes
//! through rotator, so `create` produces an empty secret. `set` is safe to
//! repeat after a crash: a second rotate-root simply rotates again and Vault
//! still knows the result. There is nothing to roll back to, since the
//! previous password is gone once Vault has changed it.

use rotator_plugin_sdk::{
    Action, Capability, Context, Guest, Level, NewSecret, Operation, PluginInfo, RotateError, Secret, SecretAccess,
    Step, VaultAccess, log, settings, vault,
};
use serde::Deserialize;
use serde_json::Value;

const SCHEMA: &str = include_str!("settings.schema.json");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default = "default_mount")]
    mount: String,
    connection: String,
    /// A role whose credentials `test` requests (and revokes) to prove the
    /// new root password works. Without it, `test` only reads the config.
    #[serde(default)]
    verify_role: Option<String>,
}

fn default_mount() -> String {
    "database".into()
}

fn access(path: &str, operations: Vec<Operation>) -> Capability {
    Capability::Vault(VaultAccess { path: path.into(), operations })
}

struct DatabaseRoot;

impl Guest for DatabaseRoot {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "database-root".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Has Vault rotate a database connection's root credential, then checks the connection".into(),
            settings_schema: SCHEMA.into(),
            capabilities: vec![
                access("+/rotate-root/*", vec![Operation::Write]),
                access("+/config/*", vec![Operation::Read]),
                access("+/creds/*", vec![Operation::Read]),
                access("sys/leases/revoke", vec![Operation::Write]),
            ],
            access: SecretAccess::Values,
            visible_fields: Vec::new(),
        }
    }

    fn plan(ctx: Context) -> Result<Vec<Action>, RotateError> {
        let s: Settings = settings(&ctx)?;
        let mut actions =
            vec![Action { step: Step::Set, summary: format!("POST {}/rotate-root/{}", s.mount, s.connection) }];
        actions.push(Action {
            step: Step::Test,
            summary: match &s.verify_role {
                Some(role) => format!(
                    "GET {m}/config/{c}, then GET {m}/creds/{role} and revoke that lease",
                    m = s.mount,
                    c = s.connection
                ),
                None => format!("GET {}/config/{}", s.mount, s.connection),
            },
        });
        Ok(actions)
    }

    fn create(ctx: Context) -> Result<NewSecret, RotateError> {
        let _: Settings = settings(&ctx)?;
        Ok(String::from("{}").into())
    }

    fn set(ctx: Context, _pending: Secret) -> Result<(), RotateError> {
        let s: Settings = settings(&ctx)?;
        vault::request("POST", &format!("{}/rotate-root/{}", s.mount, s.connection), None)?;
        log(Level::Info, &format!("vault rotated the root credential of {}", s.connection));
        Ok(())
    }

    fn test(ctx: Context, _pending: Secret) -> Result<(), RotateError> {
        let s: Settings = settings(&ctx)?;
        vault::request("GET", &format!("{}/config/{}", s.mount, s.connection), None)?;
        if let Some(role) = &s.verify_role {
            let body = vault::request("GET", &format!("{}/creds/{role}", s.mount), None)?;
            let lease_id = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v.get("lease_id").and_then(Value::as_str).map(str::to_owned))
                .filter(|id| !id.is_empty())
                .ok_or_else(|| RotateError::Permanent("creds answer has no lease_id".into()))?;
            let revoke = serde_json::json!({ "lease_id": lease_id }).to_string();
            vault::request("PUT", "sys/leases/revoke", Some(&revoke))?;
        }
        Ok(())
    }

    fn finish(_ctx: Context, _pending: Secret) -> Result<(), RotateError> {
        Ok(())
    }

    fn rollback(ctx: Context, _pending: Secret) -> Result<(), RotateError> {
        let s: Settings = settings(&ctx)?;
        log(Level::Warn, &format!("root of {} cannot be rolled back: only Vault knows the new password", s.connection));
        Ok(())
    }
}

rotator_plugin_sdk::export!(DatabaseRoot);
