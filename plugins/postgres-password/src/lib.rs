//! `postgres-password`: rotates the password of a PostgreSQL role through an
//! SQL connection the operator declared (`[sql.connections.<name>]`), whose
//! admin credentials only the host knows. The job's secret holds the role's
//! credential as `username` and `password` fields (other fields are kept).
//!
//! Two strategies:
//!
//! - `single-user`: `create` draws a new random password for `username`,
//!   `set` runs `ALTER ROLE "<role>" PASSWORD $1`, `test` logs in with it,
//!   and `rollback` puts the current password back.
//! - `alternating-users`: two roles take turns. The new secret names the role
//!   the current secret does not (the first role when there is no current
//!   secret), and only that inactive role's password changes. The active
//!   role is never touched, so the credential applications hold now stays
//!   valid through the next interval: each credential lives two intervals.
//!   `rollback` clears the inactive role's password (`PASSWORD NULL`). Its
//!   previous password is not restored: that credential was two intervals
//!   old and reached the end of its life at this rotation either way (a
//!   successful rotation would have replaced it too), so clearing it loses
//!   nothing and makes sure the abandoned new password cannot log in.
//!
//! Every step is idempotent: the target role follows from the current
//! secret, `ALTER ROLE … PASSWORD` to the same value twice is one change, and
//! re-running `rollback` sets the same password (or NULL) again. The password
//! only ever travels as a statement parameter, never in the statement text.

use rotator_plugin_sdk::sql::{self, Connection, quote_ident};
use rotator_plugin_sdk::{
    Action, Capability, Context, Guest, Level, NewSecret, PluginInfo, RotateError, Secret, SecretAccess, Step, fields,
    log, settings, to_json,
};
use serde::Deserialize;
use serde_json::{Map, Value};

const SCHEMA: &str = include_str!("settings.schema.json");

/// Passwords are drawn from letters and digits: safe in every client's
/// connection string without quoting.
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    connection: String,
    strategy: Strategy,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    usernames: Option<Vec<String>>,
    #[serde(default = "default_length")]
    length: usize,
}

fn default_length() -> usize {
    32
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum Strategy {
    SingleUser,
    AlternatingUsers,
}

/// Which roles the job rotates.
enum Roles {
    Single(String),
    Alternating([String; 2]),
}

/// The job's settings, checked.
struct Job {
    db: Connection,
    roles: Roles,
    length: usize,
}

/// A credential as the secret holds it. Deliberately not `Debug`.
struct Credential {
    username: Option<String>,
    password: Option<String>,
}

impl Credential {
    fn parse(data: &str) -> Result<Self, RotateError> {
        let map = fields(data)?;
        let text = |k: &str| map.get(k).and_then(Value::as_str).map(str::to_owned);
        Ok(Self { username: text("username"), password: text("password") })
    }

    /// The job's current credential, if the job has a secret yet.
    fn current(ctx: &Context) -> Result<Option<Self>, RotateError> {
        ctx.current.as_ref().map(|c| Self::parse(&c.data)).transpose()
    }
}

impl Job {
    fn load(ctx: &Context) -> Result<Self, RotateError> {
        let s: Settings = settings(ctx)?;
        let roles = match (s.strategy, s.username, s.usernames) {
            (Strategy::SingleUser, Some(user), None) => Roles::Single(user),
            (Strategy::AlternatingUsers, None, Some(users)) => match <[String; 2]>::try_from(users) {
                Ok([a, b]) if a != b => Roles::Alternating([a, b]),
                _ => return Err(RotateError::InvalidConfig("usernames must be two different roles".into())),
            },
            (Strategy::SingleUser, ..) => {
                return Err(RotateError::InvalidConfig("single-user needs `username` (and no `usernames`)".into()));
            }
            (Strategy::AlternatingUsers, ..) => {
                return Err(RotateError::InvalidConfig(
                    "alternating-users needs `usernames` (and no `username`)".into(),
                ));
            }
        };
        Ok(Self { db: sql::connection(&s.connection), roles, length: s.length })
    }

    /// The role this rotation changes: the single role, or the one the
    /// current secret does not name.
    fn target(&self, current: Option<&Credential>) -> &str {
        match &self.roles {
            Roles::Single(user) => user,
            Roles::Alternating([first, second]) => match current.and_then(|c| c.username.as_deref()) {
                Some(active) if active == first => second,
                _ => first,
            },
        }
    }

    /// `ALTER ROLE … PASSWORD $1`, or `PASSWORD NULL` to clear it.
    fn set_password(&self, role: &str, password: Option<&str>) -> Result<(), RotateError> {
        let role = quote_ident(role)?;
        self.db.execute(&format!("ALTER ROLE {role} PASSWORD $1"), &[password.into()])?;
        Ok(())
    }

    /// The pending credential, checked to be for the role this rotation
    /// changes.
    fn pending(&self, ctx: &Context, pending: &Secret) -> Result<(String, String), RotateError> {
        let current = Credential::current(ctx)?;
        let target = self.target(current.as_ref());
        let cred = Credential::parse(&pending.data)?;
        match (cred.username, cred.password) {
            (Some(user), Some(password)) if user == target => Ok((user, password)),
            (Some(user), Some(_)) => Err(RotateError::Permanent(format!(
                "the new secret is for role `{user}`, but this rotation changes role `{target}`"
            ))),
            _ => Err(RotateError::Permanent("the new secret lacks a `username` or `password` field".into())),
        }
    }
}

/// A random password of `length` letters and digits (WASI random).
fn generate(length: usize) -> Result<String, RotateError> {
    let mut out = String::with_capacity(length);
    let mut buf = [0u8; 64];
    // Rejection sampling: bytes at or above the largest multiple of the
    // alphabet size are drawn again, so every character is equally likely.
    let limit = (256 / ALPHABET.len() * ALPHABET.len()) as u8;
    while out.len() < length {
        getrandom::fill(&mut buf).map_err(|e| RotateError::Transient(format!("no randomness: {e}")))?;
        for &b in buf.iter().filter(|&&b| b < limit) {
            if out.len() == length {
                break;
            }
            out.push(ALPHABET[b as usize % ALPHABET.len()] as char);
        }
    }
    Ok(out)
}

struct PostgresPassword;

impl Guest for PostgresPassword {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "postgres-password".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Rotates a PostgreSQL role's password, for one role or two roles taking turns".into(),
            settings_schema: SCHEMA.into(),
            capabilities: vec![Capability::Sql("*".into())],
            access: SecretAccess::Values,
            visible_fields: Vec::new(),
        }
    }

    fn plan(ctx: Context) -> Result<Vec<Action>, RotateError> {
        let job = Job::load(&ctx)?;
        let current = Credential::current(&ctx)?;
        let role = job.target(current.as_ref());
        let conn = job.db.name();
        let mut actions = vec![
            Action {
                step: Step::Create,
                summary: format!("generate a {}-character password for role `{role}`", job.length),
            },
            Action { step: Step::Set, summary: format!("on `{conn}`: ALTER ROLE {} PASSWORD $1", quote_ident(role)?) },
            Action { step: Step::Test, summary: format!("log in to `{conn}` as `{role}` with the new password") },
        ];
        actions.push(Action {
            step: Step::Rollback,
            summary: match (&job.roles, current.as_ref().and_then(|c| c.password.as_ref())) {
                (Roles::Single(_), Some(_)) => format!("restore the current password of `{role}`"),
                (Roles::Single(_), None) => format!("nothing to restore: there is no current password for `{role}`"),
                (Roles::Alternating(_), _) => format!("clear the password of `{role}` (PASSWORD NULL)"),
            },
        });
        Ok(actions)
    }

    fn create(ctx: Context) -> Result<NewSecret, RotateError> {
        let job = Job::load(&ctx)?;
        let current = Credential::current(&ctx)?;
        let mut data = match &ctx.current {
            Some(cur) => fields(&cur.data)?,
            None => Map::new(),
        };
        data.insert("username".into(), Value::String(job.target(current.as_ref()).to_owned()));
        data.insert("password".into(), Value::String(generate(job.length)?));
        Ok(to_json(data).into())
    }

    fn set(ctx: Context, pending: Secret) -> Result<(), RotateError> {
        let job = Job::load(&ctx)?;
        let (role, password) = job.pending(&ctx, &pending)?;
        job.set_password(&role, Some(&password))?;
        log(Level::Info, &format!("changed the password of role `{role}` on `{}`", job.db.name()));
        Ok(())
    }

    fn test(ctx: Context, pending: Secret) -> Result<(), RotateError> {
        let job = Job::load(&ctx)?;
        let (role, password) = job.pending(&ctx, &pending)?;
        if job.db.try_login(&role, &password)? {
            Ok(())
        } else {
            Err(RotateError::Permanent(format!(
                "`{}` refused the new password of role `{role}` (can the role log in?)",
                job.db.name()
            )))
        }
    }

    fn finish(_ctx: Context, _pending: Secret) -> Result<(), RotateError> {
        Ok(())
    }

    fn rollback(ctx: Context, _pending: Secret) -> Result<(), RotateError> {
        let job = Job::load(&ctx)?;
        let current = Credential::current(&ctx)?;
        let role = job.target(current.as_ref()).to_owned();
        match (&job.roles, current.and_then(|c| c.password)) {
            (Roles::Single(_), Some(previous)) => {
                job.set_password(&role, Some(&previous))?;
                log(Level::Info, &format!("restored the previous password of role `{role}`"));
            }
            (Roles::Single(_), None) => {
                log(Level::Warn, &format!("no current password to restore for role `{role}`"));
            }
            (Roles::Alternating(_), _) => {
                job.set_password(&role, None)?;
                log(Level::Info, &format!("cleared the password of inactive role `{role}`"));
            }
        }
        Ok(())
    }
}

rotator_plugin_sdk::export!(PostgresPassword);
