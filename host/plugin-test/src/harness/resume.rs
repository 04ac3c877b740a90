//! Check: a rotation interrupted at any crash point resumes to a clean end.
//!
//! For every point of [`rotator_core::crash::all_points`], a job of its
//! own starts a rotation that stops there as if the process had died
//! ([`RotateOptions::interrupt_at`]), then runs again, which must finish
//! (or finish rolling back) the rotation that was staged, not start afresh.
//! Afterwards the end-state rule must hold:
//!
//! - no PENDING is left in the job's state record;
//! - the secret got exactly one new version per completed rotation, and it
//!   holds the value that was staged before the interruption;
//! - the history counts each rotation once, agrees with the record's
//!   rotation count, and its last rotation names the secret's version.
//!
//! Points on the rollback path are reached by making `test` fail
//! ([`super::faults`]); if `test` makes no host call that can be failed,
//! they are listed as not reachable.

use super::env::{Env, SecretState, fingerprint};
use super::faults::{TestFault, Watch, test_fault};
use super::report::{CheckResult, names};
use super::walk::Walk;
use rotator_core::crash::{Action, At, Point, all_points};
use rotator_core::rotation::{RotateOptions, RotationError};
use rotator_core::state::{Outcome, Stage};
use rotator_devserver::FaultRules;

/// What the interrupted run left staged.
struct Staged {
    id: String,
    stage: Stage,
    fingerprint: [u8; 32],
}

async fn secret_state(env: &Env) -> Result<SecretState, String> {
    env.secret_state().await.map_err(|e| format!("reading the secret failed: {e}"))
}

/// Interrupt a rotation of `job` at `point`, resume it, check the end
/// state. `Ok(false)`: the rotation completed without passing the point
/// (on the rollback path: `test` did not fail under the fault).
async fn one_point(env: &Env, job_id: &str, point: Point, fault: Option<&FaultRules>) -> Result<bool, String> {
    let job = env.job(job_id);
    let before = secret_state(env).await?;
    let watch = Watch::new(&env.server, fault.cloned());
    let options = RotateOptions { interrupt_at: Some(point), observer: &watch, ..RotateOptions::new("harness") };
    let first = job.rotate_with(&env.store, options).await;
    drop(watch);
    let load = |e: rotator_core::state::StateError| format!("reading the state record failed: {e}");
    let staged = env.store.load(job_id).await.map_err(load)?.state.in_progress.map(|p| Staged {
        id: p.id,
        stage: p.stage,
        fingerprint: p.pending.as_ref().map(fingerprint).unwrap_or_default(),
    });
    match first {
        Err(RotationError::Interrupted { .. }) => {}
        Ok(report) if fault.is_some() => {
            env.note_host_calls(&report.host_calls);
            return Ok(false);
        }
        Ok(_) => return Err("the rotation completed without passing this point".into()),
        Err(e) => return Err(format!("the rotation failed before reaching this point: {e}")),
    }

    match job.rotate_with(&env.store, RotateOptions::new("harness")).await {
        Ok(report) => {
            env.note_host_calls(&report.host_calls);
            if let Some(s) = &staged
                && report.rotation_id != s.id
            {
                return Err(format!("resuming started rotation {} instead of finishing {}", report.rotation_id, s.id));
            }
        }
        Err(RotationError::RolledBack { rollback: Some(Ok(())), .. })
            if staged.as_ref().is_some_and(|s| s.stage == Stage::RollingBack) => {}
        Err(e) => return Err(format!("resuming failed: {e}")),
    }
    end_state(env, job_id, before, staged.as_ref()).await?;
    Ok(true)
}

/// The end-state rule, for job `job_id` whose secret was at `before`.
async fn end_state(env: &Env, job_id: &str, before: SecretState, staged: Option<&Staged>) -> Result<(), String> {
    let state = env.store.load(job_id).await.map_err(|e| format!("reading the state record failed: {e}"))?.state;
    if state.in_progress.is_some() {
        return Err("PENDING is still staged after resuming".into());
    }
    let rotated: Vec<_> = state.history.iter().filter(|h| h.outcome == Outcome::Rotated).collect();
    if state.rotations != rotated.len() as u64 {
        return Err(format!(
            "the record counts {} rotation(s) but its history lists {} rotated",
            state.rotations,
            rotated.len()
        ));
    }
    let mut ids: Vec<&str> = state.history.iter().map(|h| h.id.as_str()).collect();
    ids.sort_unstable();
    if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("history lists rotation {} twice", w[0]));
    }
    if let Some(s) = staged
        && !ids.contains(&s.id.as_str())
    {
        return Err(format!("the staged rotation {} is missing from history", s.id));
    }
    let after = secret_state(env).await?;
    let written = after.version.unwrap_or(0).saturating_sub(before.version.unwrap_or(0));
    if written != rotated.len() as u64 {
        return Err(format!("the secret was written {written} time(s) for {} completed rotation(s)", rotated.len()));
    }
    if let Some(newest) = rotated.first()
        && newest.version.as_ref().and_then(|v| v.number()) != after.version
    {
        return Err(format!(
            "history's last rotation names version {:?}, the secret is at {:?}",
            newest.version.as_ref().map(ToString::to_string),
            after.version
        ));
    }
    let finished_staged = staged.filter(|s| rotated.iter().any(|h| h.id == s.id));
    if let Some(s) = finished_staged
        && rotated.first().is_some_and(|h| h.id == s.id)
        && after.fingerprint != Some(s.fingerprint)
    {
        return Err("the secret holds a value other than the one staged before the interruption".into());
    }
    if rotated.is_empty() && after != before {
        return Err("the secret changed although no rotation completed".into());
    }
    Ok(())
}

pub(super) async fn check(env: &Env, walk: &Walk) -> CheckResult {
    let fault: Result<TestFault, String> = test_fault(walk);
    let (mut violations, mut reached, mut unreachable) = (Vec::new(), 0, Vec::new());
    // Points a completed rotation never passed although `test`'s call failed.
    let mut not_failed = Vec::new();
    let points = all_points();
    for (i, point) in points.iter().enumerate() {
        let on_rollback_path = matches!(point.at, At::Action(Action::Rollback | Action::RecordRollback));
        let rules = match (&fault, on_rollback_path) {
            (_, false) => None,
            (Ok(f), true) => Some(&f.rules),
            (Err(_), true) => {
                unreachable.push(point.to_string());
                continue;
            }
        };
        let job = format!("harness-crash-{i}");
        match one_point(env, &job, *point, rules).await {
            Ok(true) => reached += 1,
            Ok(false) => not_failed.push(point.to_string()),
            // Each point has a job of its own; without its id, the same
            // failure reads the same at every point and is shown once.
            Err(why) => violations.push((point.to_string(), why.replace(&format!("`{job}`"), "`harness-crash-<n>`"))),
        }
    }
    let mut ok = format!("{reached} crash point(s): each interrupted rotation resumed to a clean end");
    let mut notes = Vec::new();
    if let Err(why) = &fault
        && !unreachable.is_empty()
    {
        ok.push_str(&format!("; {} rollback point(s) not reachable", unreachable.len()));
        notes.push(format!("not reachable ({why}, so it cannot be made to fail): {}", unreachable.join(", ")));
    }
    if !not_failed.is_empty() {
        ok.push_str(&format!("; {} rollback point(s) not reached", not_failed.len()));
        notes.push(format!("not reached (`test` succeeded although its call failed): {}", not_failed.join(", ")));
    }
    if violations.is_empty() {
        return CheckResult::pass(names::CRASH_RESUME, ok).with_details(notes);
    }
    let runs = points.len() - unreachable.len();
    let reason = format!("{} of {runs} crash-resume runs failed", violations.len());
    CheckResult::failed_runs(names::CRASH_RESUME, reason, violations, runs, "crash points").with_details(notes)
}
