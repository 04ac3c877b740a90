//! `aws-iam-access-key`: rotates an AWS IAM user's access key pair through
//! the IAM and STS query APIs, in handle mode: the plugin never holds a
//! secret access key. The job's secret holds `access_key_id` (visible) and
//! `secret_access_key` (a handle). Every call is signed by the host with
//! the user's own key (self-service rotation; the minimal policy is in
//! docs/http.md).
//!
//! - `create` (signed with the current key): `ListAccessKeys`. IAM allows
//!   two keys per user. A second key is deleted only if it is `Inactive`
//!   (the one the previous rotation's `finish` deactivated: this is the
//!   "later delete") or was never used (no `LastUsedDate`: an orphan of a
//!   `create` that crashed before its key was staged). A second key that is
//!   active and used is not this job's: a permanent error naming it, and
//!   nothing is deleted. The current key is never deleted. Then
//!   `CreateAccessKey`; the host captures the new secret key from the XML
//!   answer straight into the new secret.
//! - `set`: nothing to apply, a new key is live once created.
//! - `test`: `sts:GetCallerIdentity` signed with the new key must name the
//!   configured user. A refused new key is retried briefly in the step
//!   (IAM is eventually consistent in AWS) and then `transient`.
//! - `finish` (signed with the new key): the old key becomes `Inactive`.
//! - `rollback` (signed with the current key): the new key is deleted.
//!
//! Every step is idempotent: `create` run twice before staging finds the
//! first run's unused key and deletes it; `finish` twice sets the same
//! status; `rollback` of a key already gone (`NoSuchEntity`) is done.

mod iam;
mod settings;
mod xml;

use std::time::Duration;

use iam::{Aws, ID_FIELD, Key, Refusal};
use rotator_plugin_sdk::{
    Action, Capability, Context, Guest, HttpAccess, Level, NewSecret, PluginInfo, RotateError, Secret, SecretAccess,
    Step, log,
};
use serde_json::json;
use settings::Job;

const SCHEMA: &str = include_str!("settings.schema.json");
/// Waits between tries of a refused new key in `test` (the step's deadline
/// bounds them further).
const TEST_BACKOFF: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(2)];

/// The key in the job's current secret: it signs `create` and `rollback`.
fn current_key(ctx: &Context) -> Result<Key, RotateError> {
    let current = ctx.current.as_ref().ok_or_else(|| {
        RotateError::InvalidConfig(format!(
            "the job needs a current secret with `{ID_FIELD}` and `secret_access_key`: the user's key signs the calls"
        ))
    })?;
    Key::of(current, "the current secret")
}

/// What `create` does with the user's other key: delete it (and why), or
/// stop because it is not this job's.
fn judge_other(aws: &Aws, user: &str, id: &str, status: &str) -> Result<&'static str, RotateError> {
    if status == "Inactive" {
        return Ok("inactive (deactivated by the previous rotation)");
    }
    let used = aws.was_used(id)?.map_err(|r| r.into_error("GetAccessKeyLastUsed", user, "the current key"))?;
    if !used {
        return Ok("active but never used (left by a create that did not finish)");
    }
    Err(RotateError::Permanent(format!(
        "user `{user}` already has a second access key `{id}` that is active and has been used: it is not managed by \
         this job and IAM allows two keys per user; deactivate or delete it (nothing was deleted)"
    )))
}

/// A deletion or status change that found the key gone is done.
fn gone_is_done(answer: Result<(), Refusal>) -> Result<bool, Refusal> {
    match answer {
        Ok(()) => Ok(true),
        Err(r) if r.code == "NoSuchEntity" => Ok(false),
        Err(r) => Err(r),
    }
}

struct AwsIamAccessKey;

impl Guest for AwsIamAccessKey {
    fn describe() -> PluginInfo {
        let post_root = |origin: &str| {
            Capability::Http(HttpAccess {
                origin: origin.into(),
                paths: vec!["/".into()],
                methods: vec!["POST".into()],
            })
        };
        PluginInfo {
            name: "aws-iam-access-key".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Rotates an AWS IAM user's access key pair, signed with the user's own key".into(),
            settings_schema: SCHEMA.into(),
            // The default endpoints; a job with others grants those instead.
            capabilities: vec![post_root(settings::DEFAULT_IAM), post_root(settings::DEFAULT_STS)],
            access: SecretAccess::Handles,
            visible_fields: vec![ID_FIELD.into()],
        }
    }

    fn plan(ctx: Context) -> Result<Vec<Action>, RotateError> {
        let job = Job::load(&ctx)?;
        current_key(&ctx)?;
        let (user, iam, sts) = (&job.user, &job.iam, &job.sts);
        Ok(vec![
            Action {
                step: Step::Create,
                summary: format!(
                    "{iam}: ListAccessKeys of `{user}` (signed with the current key); delete its other key if it is \
                     Inactive or was never used (refuse if it is active and used); CreateAccessKey, the host captures \
                     the new secret key"
                ),
            },
            Action { step: Step::Set, summary: "nothing to apply: the new key is live once created".into() },
            Action {
                step: Step::Test,
                summary: format!("{sts}: GetCallerIdentity signed with the new key must name user `{user}`"),
            },
            Action {
                step: Step::Finish,
                summary: format!("{iam}: UpdateAccessKey the old key to Inactive (the next rotation deletes it)"),
            },
            Action {
                step: Step::Rollback,
                summary: format!("{iam}: DeleteAccessKey the new key (signed with the current key)"),
            },
        ])
    }

    fn create(ctx: Context) -> Result<NewSecret, RotateError> {
        let job = Job::load(&ctx)?;
        let current = current_key(&ctx)?;
        let user = job.user.as_str();
        let aws = Aws { job: &job, key: &current };
        let refused = |action: &'static str| move |r: Refusal| r.into_error(action, user, "the current key");
        let keys = aws.list_keys()?.map_err(refused("ListAccessKeys"))?;
        if !keys.iter().any(|(id, _)| *id == current.id) {
            return Err(RotateError::Permanent(format!(
                "the key in the job's secret is not one of user `{user}`'s access keys (is `user_name` right?)"
            )));
        }
        // Judge every other key before deleting any.
        let mut delete = Vec::new();
        for (id, status) in keys.iter().filter(|(id, _)| *id != current.id) {
            delete.push((id, judge_other(&aws, user, id, status)?));
        }
        for (id, why) in delete {
            if gone_is_done(aws.delete_key(id)?).map_err(refused("DeleteAccessKey"))? {
                log(Level::Info, &format!("deleted access key `{id}` of user `{user}`: {why}"));
            }
        }
        let id = aws
            .create_key()?
            .map_err(refused("CreateAccessKey"))?
            .ok_or_else(|| RotateError::Permanent("CreateAccessKey answered without an AccessKeyId".into()))?;
        log(Level::Info, &format!("created access key `{id}` for user `{user}`"));
        Ok(NewSecret { data: json!({ ID_FIELD: id }).to_string(), generate: Vec::new() })
    }

    fn set(ctx: Context, pending: Secret) -> Result<(), RotateError> {
        Job::load(&ctx)?;
        Key::of(&pending, "the new secret")?;
        log(Level::Info, "nothing to apply: the new access key is live once created");
        Ok(())
    }

    fn test(ctx: Context, pending: Secret) -> Result<(), RotateError> {
        let job = Job::load(&ctx)?;
        let new = Key::of(&pending, "the new secret")?;
        let user = job.user.as_str();
        let aws = Aws { job: &job, key: &new };
        let mut waits = TEST_BACKOFF.iter();
        loop {
            match aws.caller_arn()? {
                Ok(Some(arn)) if job.is_user_arn(&arn) => return Ok(()),
                Ok(Some(arn)) => {
                    return Err(RotateError::Permanent(format!(
                        "the new key authenticates as `{arn}`, not as IAM user `{user}`"
                    )));
                }
                Ok(None) => return Err(RotateError::Permanent("GetCallerIdentity answered without an Arn".into())),
                // In AWS a new key may be refused for a few seconds.
                Err(r) if r.is_bad_key() => match waits.next() {
                    Some(wait) => std::thread::sleep(*wait),
                    None => {
                        return Err(RotateError::Transient(format!(
                            "AWS does not accept the new key of user `{user}` yet ({}); IAM is eventually consistent",
                            r.code
                        )));
                    }
                },
                Err(r) => return Err(r.into_error("GetCallerIdentity", user, "the new key")),
            }
        }
    }

    fn finish(ctx: Context, pending: Secret) -> Result<(), RotateError> {
        let job = Job::load(&ctx)?;
        let (old, new) = (current_key(&ctx)?, Key::of(&pending, "the new secret")?);
        let user = job.user.as_str();
        if old.id == new.id {
            return Ok(());
        }
        let aws = Aws { job: &job, key: &new };
        let changed = gone_is_done(aws.set_status(&old.id, "Inactive")?)
            .map_err(|r| r.into_error("UpdateAccessKey", user, "the new key"))?;
        let what = if changed { "deactivated; the next rotation deletes it" } else { "already deleted" };
        log(Level::Info, &format!("the previous access key of user `{user}`: {what}"));
        Ok(())
    }

    fn rollback(ctx: Context, pending: Secret) -> Result<(), RotateError> {
        let job = Job::load(&ctx)?;
        let (current, new) = (current_key(&ctx)?, Key::of(&pending, "the new secret")?);
        let user = job.user.as_str();
        if new.id == current.id {
            // Never delete the key in use, whatever the pending secret says.
            log(Level::Warn, &format!("the new secret names the current key of user `{user}`: nothing deleted"));
            return Ok(());
        }
        let aws = Aws { job: &job, key: &current };
        let deleted = gone_is_done(aws.delete_key(&new.id)?)
            .map_err(|r| r.into_error("DeleteAccessKey", user, "the current key"))?;
        let what = if deleted { "deleted" } else { "already gone" };
        log(Level::Info, &format!("the abandoned new access key of user `{user}`: {what}"));
        Ok(())
    }
}

rotator_plugin_sdk::export!(AwsIamAccessKey);
