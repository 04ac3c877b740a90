//! Rotating static roles' passwords: on their period (a background task)
//! and on demand (`POST <mount>/rotate-role/:name`).
//!
//! A rotation is three steps, like every database operation here: under the
//! state lock the role is marked as rotating and a [`Job`] taken; the new
//! password is set in PostgreSQL as the root user with the role's
//! `rotation_statements` (default `ALTER ROLE ... WITH PASSWORD`), without
//! the lock; then, under the lock again, the role gets the new password and
//! `last_vault_rotation`, or (on failure) a retry 10 s later, as Vault's
//! rotation queue does. The background task looks for due roles every
//! second (Vault's queue ticks every 5 s) and runs each rotation as its own
//! task, so one slow database does not hold up the others.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::connection::{Connection, change_password};
use super::{Database, engine, generate, internal};
use crate::mounts::{Engine, Table};
use crate::response::Reply;
use crate::{Handled, Request, Shared, State};

/// How often the background task looks for due rotations.
const TICK: Duration = Duration::from_secs(1);
/// Vault's delay before a failed rotation is tried again.
const RETRY_AFTER: time::Duration = time::Duration::seconds(10);

/// One rotation, decided under the lock.
pub(super) struct Job {
    pub mount: String,
    pub role: String,
    pub username: String,
    pub statements: Vec<String>,
    pub connection: Arc<Connection>,
}

/// Set a new password for the job's user; answers the password.
pub(super) async fn execute(job: &Job) -> Result<Zeroizing<String>, String> {
    let password = generate::password();
    let mut session = job.connection.open().await?;
    change_password(&mut session.client, &session.settings, &job.username, &password, &job.statements).await?;
    Ok(password)
}

/// Mark static role `name` as rotating and take its job; a role whose
/// connection is missing or does not allow it gets a retry instead.
fn begin(db: &mut Database, mount: &str, name: &str, now: OffsetDateTime) -> Result<Job, String> {
    let role = db.static_roles.get(name).ok_or("no static role found for role name")?;
    let problem = match db.configs.get(&role.db_name) {
        None => Some(super::missing_config(&role.db_name)),
        Some(config) if !config.allows(name) => Some(format!("{name:?} is not an allowed role")),
        Some(_) => None,
    };
    let db_name = role.db_name.clone();
    let connection = db.connection(&db_name);
    let Some(role) = db.static_roles.get_mut(name) else {
        return Err("no static role found for role name".into());
    };
    if let Some(problem) = problem {
        role.retry_at = Some(now + RETRY_AFTER);
        return Err(problem);
    }
    role.rotating = true;
    let (username, statements) = (role.username.clone(), role.rotation_statements.clone());
    Ok(Job { mount: mount.to_owned(), role: name.to_owned(), username, statements, connection })
}

/// Record how a rotation ended (if the role is still the same user's).
fn finish(shared: &Shared, job: &Job, result: &Result<Zeroizing<String>, String>) {
    let mut state = shared.lock();
    let Some(db) = engine(&mut state, &job.mount) else {
        return;
    };
    let Some(role) = db.static_roles.get_mut(&job.role).filter(|r| r.username == job.username) else {
        return;
    };
    let now = OffsetDateTime::now_utc();
    role.rotating = false;
    match result {
        Ok(password) => {
            role.password = password.clone();
            role.last_vault_rotation = now;
            role.retry_at = None;
            tracing::info!(mount = %job.mount, role = %job.role, "vault dev server: static role rotated");
        }
        Err(error) => {
            role.retry_at = Some(now + RETRY_AFTER);
            tracing::warn!(mount = %job.mount, role = %job.role, %error, "vault dev server: static role rotation failed");
        }
    }
}

/// `POST rotate-role/:name`: rotate now; the answer waits for it.
pub(super) fn rotate_role(shared: &Arc<Shared>, state: &mut State, mount: &str, name: &str, req: &Request) -> Handled {
    let Some(db) = engine(state, mount) else {
        return Reply::unsupported_path().into();
    };
    let failed = |e: &str| {
        internal(format!(
            "unable to finish rotating credentials; retries will continue in the background but it is also safe to retry manually: {e}"
        ))
    };
    match db.static_roles.get(name) {
        None => return Reply::bad_request("no static role found for role name").into(),
        Some(role) if role.rotating => return failed("a rotation of this role is already running").into(),
        Some(_) => {}
    }
    let job = match begin(db, mount, name, req.now) {
        Ok(job) => job,
        Err(e) => return failed(&e).into(),
    };
    let shared = Arc::clone(shared);
    Handled::Later(Box::pin(async move {
        let result = execute(&job).await;
        finish(&shared, &job, &result);
        match result {
            Ok(_) => Reply::NoContent,
            Err(e) => failed(&e),
        }
    }))
}

/// The background task: rotate every static role whose period is up.
/// Runs until aborted with the server.
pub(crate) async fn run_rotations(shared: Arc<Shared>) {
    loop {
        tokio::time::sleep(TICK).await;
        let jobs = due_jobs(&mut shared.lock(), OffsetDateTime::now_utc());
        for job in jobs {
            let shared = Arc::clone(&shared);
            tokio::spawn(async move {
                let result = execute(&job).await;
                finish(&shared, &job, &result);
            });
        }
    }
}

/// Take a job for every due static role of every database mount.
fn due_jobs(state: &mut State, now: OffsetDateTime) -> Vec<Job> {
    let mounts: Vec<String> = state
        .mounts
        .list(Table::Secrets)
        .filter(|entry| matches!(entry.engine, Engine::Database(_)))
        .map(|entry| entry.path.clone())
        .collect();
    let mut jobs = Vec::new();
    for mount in mounts {
        let Some(db) = engine(state, &mount) else {
            continue;
        };
        let due: Vec<String> = db.static_roles.iter().filter(|(_, r)| r.due(now)).map(|(n, _)| n.clone()).collect();
        for name in due {
            match begin(db, &mount, &name, now) {
                Ok(job) => jobs.push(job),
                Err(error) => {
                    tracing::warn!(mount = %mount, role = %name, %error, "vault dev server: static role rotation skipped");
                }
            }
        }
    }
    jobs
}
