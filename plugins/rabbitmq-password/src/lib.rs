//! `rabbitmq-password`: rotates a RabbitMQ user's password through the
//! management HTTP API, in handle mode: the plugin never holds a password.
//! The job's secret holds `username` (visible) and `password` (a handle).
//!
//! - `create` names the user and has the host generate the password by the
//!   job's policy (`password = { length, alphabet, rules }`).
//! - `set` reads the user to keep its tags, then `PUT /api/users/{name}`
//!   with the pending password filled in by the host.
//! - `test` calls `GET /api/whoami` as the user with the pending password:
//!   200 passes, 401 is permanent (wrong password, or no management tag).
//! - `rollback` (single-user) puts the current password back.
//!
//! Strategies, as `postgres-password`'s: `single-user` changes one user;
//! `alternating-users` names two users that take turns, and changes only
//! the one the current secret does not name, so the credential applications
//! hold stays valid through the next interval. A missing second user is
//! created with the other's tags and vhost permissions. Its `rollback` has
//! nothing to undo for the current user, who was never touched; the
//! inactive user is left with the abandoned password, a fresh random value
//! nobody holds once the host discards the pending secret.
//!
//! Calls are made as an administrator: the KV secret the `admin` setting
//! names (read through Vault, used as handles), or else the job's current
//! credential. In single-user mode without `admin` the user changes its own
//! password, so once `set` has run only the pending password logs in:
//! every step then tries the current login and falls back to the pending
//! one, which keeps `set` idempotent and lets `rollback` work.
//!
//! Every step is idempotent: `PUT` of the same password and tags is one
//! change, and a permission is only copied where the user has none.

mod api;
mod settings;

use api::{Api, Login};
use rotator_plugin_sdk::http::Text;
use rotator_plugin_sdk::{
    Action, Capability, Context, GeneratedField, Guest, HttpAccess, Level, NewSecret, Operation, PluginInfo,
    RotateError, Secret, SecretAccess, Step, VaultAccess, fields, log, vault,
};
use serde_json::{Map, Value};
use settings::Job;

const SCHEMA: &str = include_str!("settings.schema.json");

/// The `username` a secret shows, if any.
fn username(secret: &Secret) -> Result<Option<String>, RotateError> {
    Ok(fields(&secret.data)?.get("username").and_then(Value::as_str).map(str::to_owned))
}

/// A secret's `username` and `password` as a login, by handle.
fn login_of(secret: &Secret, what: &str) -> Result<Login, RotateError> {
    match (secret.handle("username"), secret.handle("password")) {
        (Some(user), Some(pw)) => Ok(Login { username: Text::secret(user), password: Text::secret(pw) }),
        _ => Err(RotateError::Permanent(format!("{what} lacks a `username` or `password` field"))),
    }
}

impl Job {
    /// The current secret's user, if the job has a secret yet.
    fn current_user(ctx: &Context) -> Result<Option<String>, RotateError> {
        ctx.current.as_ref().map(username).transpose().map(Option::flatten)
    }

    /// The pending secret's user and password handle, checked to be for
    /// the user this rotation changes.
    fn pending(&self, ctx: &Context, pending: &Secret) -> Result<(String, String), RotateError> {
        let current = Self::current_user(ctx)?;
        let target = self.target(current.as_deref());
        match (username(pending)?, pending.handle("password")) {
            (Some(user), Some(pw)) if user == target => Ok((user, pw.clone())),
            (Some(user), Some(_)) => Err(RotateError::Permanent(format!(
                "the new secret is for user `{user}`, but this rotation changes user `{target}`"
            ))),
            _ => Err(RotateError::Permanent("the new secret lacks a `username` or `password` field".into())),
        }
    }

    /// The management API, logged in as an administrator: the `admin`
    /// secret, or the current credential (falling back to the pending one
    /// when the user changes its own password and `set` already ran).
    fn admin(&self, ctx: &Context, pending: Option<&Secret>) -> Result<Api<'_>, RotateError> {
        if let Some(admin) = &self.admin {
            let secret = vault::kv_read(&admin.mount, &admin.path)?.ok_or_else(|| {
                RotateError::InvalidConfig(format!("the admin secret {}/{} does not exist", admin.mount, admin.path))
            })?;
            return Ok(Api { url: &self.url, login: login_of(&secret, "the admin secret")? });
        }
        let current = ctx.current.as_ref().ok_or_else(|| {
            RotateError::InvalidConfig("without `admin`, the job needs a current secret to log in with".into())
        })?;
        let api = Api { url: &self.url, login: login_of(current, "the current secret")? };
        match pending {
            Some(pending) if !self.is_alternating() && !api.whoami()? => {
                Ok(Api { url: &self.url, login: login_of(pending, "the new secret")? })
            }
            _ => Ok(api),
        }
    }

    /// The tags `target` must keep (its own, or for a new alternating user
    /// the other user's) and the vhost permissions to copy onto it: in
    /// alternating mode, each of the other user's permissions on a vhost
    /// `target` has none on. Copying only what is missing makes a `set`
    /// that stopped between creating the user and its permissions finish
    /// the job when it runs again, and never overrides what an operator set.
    fn prepare(&self, api: &Api, target: &str) -> Result<(String, Vec<api::Permission>), RotateError> {
        let found = api.user(target)?;
        let exists = found.is_some();
        let (tags, source) = match (found, self.other(target)) {
            (Some(user), other) => (user.tags, other),
            (None, Some(other)) => match api.user(other)? {
                Some(user) => (user.tags, Some(other)),
                None => {
                    return Err(RotateError::Permanent(format!("neither user `{target}` nor `{other}` exists")));
                }
            },
            (None, None) => return Err(RotateError::Permanent(format!("user `{target}` does not exist"))),
        };
        let Some(source) = source else { return Ok((tags, Vec::new())) };
        let have: Vec<String> =
            if exists { api.permissions(target)?.into_iter().map(|p| p.vhost).collect() } else { Vec::new() };
        let copy = api.permissions(source)?.into_iter().filter(|p| !have.contains(&p.vhost)).collect();
        Ok((tags, copy))
    }
}

struct RabbitmqPassword;

impl Guest for RabbitmqPassword {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "rabbitmq-password".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description:
                "Rotates a RabbitMQ user's password through the management API, for one user or two taking turns".into(),
            settings_schema: SCHEMA.into(),
            capabilities: vec![
                // `*`: the origin the job's `url` names (describe sees no settings).
                Capability::Http(HttpAccess {
                    origin: "*".into(),
                    paths: vec!["/api/users/".into(), "/api/permissions/".into(), "/api/whoami".into()],
                    methods: vec!["GET".into(), "PUT".into()],
                }),
                // The admin secret the settings name, if any (a KV v2 read).
                Capability::Vault(VaultAccess { path: "+/data/*".into(), operations: vec![Operation::Read] }),
            ],
            access: SecretAccess::Handles,
            visible_fields: vec!["username".into()],
        }
    }

    fn plan(ctx: Context) -> Result<Vec<Action>, RotateError> {
        let job = Job::load(&ctx)?;
        let current = Job::current_user(&ctx)?;
        let user = job.target(current.as_deref());
        let as_whom = match &job.admin {
            Some(a) => format!("as the administrator in {}/{}", a.mount, a.path),
            None => "as the current user".to_owned(),
        };
        let path = rotator_plugin_sdk::http::path_segment(user);
        let mut set = format!(
            "{as_whom}: GET {url}/api/users/{path} (keep its tags), PUT it with the new password",
            url = job.url
        );
        if job.is_alternating() {
            set.push_str("; if missing, create it with the other user's tags and vhost permissions");
        }
        let rollback = match (job.is_alternating(), &ctx.current) {
            (true, _) => {
                format!("nothing to undo: the current user was not touched; `{user}` keeps the abandoned password")
            }
            (false, Some(_)) => format!("PUT {}/api/users/{path} with the current password", job.url),
            (false, None) => format!("nothing to restore: there is no current password for `{user}`"),
        };
        Ok(vec![
            Action {
                step: Step::Create,
                summary: format!("the host generates a {}-character password for user `{user}`", job.policy.length),
            },
            Action { step: Step::Set, summary: set },
            Action {
                step: Step::Test,
                summary: format!("GET {}/api/whoami as `{user}` with the new password", job.url),
            },
            Action { step: Step::Rollback, summary: rollback },
        ])
    }

    fn create(ctx: Context) -> Result<NewSecret, RotateError> {
        let job = Job::load(&ctx)?;
        let current = Job::current_user(&ctx)?;
        let mut data = Map::new();
        data.insert("username".into(), Value::String(job.target(current.as_deref()).to_owned()));
        Ok(NewSecret {
            data: Value::Object(data).to_string(),
            generate: vec![GeneratedField { field: "password".into(), policy: job.policy.clone() }],
        })
    }

    fn set(ctx: Context, pending: Secret) -> Result<(), RotateError> {
        let job = Job::load(&ctx)?;
        let (user, password) = job.pending(&ctx, &pending)?;
        let api = job.admin(&ctx, Some(&pending))?;
        let (tags, copy) = job.prepare(&api, &user)?;
        api.put_user(&user, &password, &tags)?;
        for permission in &copy {
            api.put_permission(&user, permission)?;
        }
        log(
            Level::Info,
            &format!("changed the password of RabbitMQ user `{user}` (copied {} permission(s))", copy.len()),
        );
        Ok(())
    }

    fn test(ctx: Context, pending: Secret) -> Result<(), RotateError> {
        let job = Job::load(&ctx)?;
        let (user, password) = job.pending(&ctx, &pending)?;
        let api = Api {
            url: &job.url,
            login: Login { username: Text::from(user.as_str()), password: Text::secret(&password) },
        };
        if api.whoami()? {
            Ok(())
        } else {
            Err(RotateError::Permanent(format!(
                "RabbitMQ refused the new password of user `{user}` (does it have a management tag?)"
            )))
        }
    }

    fn finish(_ctx: Context, _pending: Secret) -> Result<(), RotateError> {
        Ok(())
    }

    fn rollback(ctx: Context, pending: Secret) -> Result<(), RotateError> {
        let job = Job::load(&ctx)?;
        let current = Job::current_user(&ctx)?;
        let user = job.target(current.as_deref()).to_owned();
        if job.is_alternating() {
            log(Level::Info, &format!("nothing to undo: the current user was not touched, `{user}` is inactive"));
            return Ok(());
        }
        let Some(previous) = ctx.current.as_ref().and_then(|c| c.handle("password")) else {
            log(Level::Warn, &format!("no current password to restore for RabbitMQ user `{user}`"));
            return Ok(());
        };
        let api = job.admin(&ctx, Some(&pending))?;
        // A user that is gone is not created again by a rollback.
        let Some(found) = api.user(&user)? else {
            log(Level::Warn, &format!("RabbitMQ user `{user}` no longer exists; nothing to restore"));
            return Ok(());
        };
        api.put_user(&user, previous, &found.tags)?;
        log(Level::Info, &format!("restored the previous password of RabbitMQ user `{user}`"));
        Ok(())
    }
}

rotator_plugin_sdk::export!(RabbitmqPassword);
