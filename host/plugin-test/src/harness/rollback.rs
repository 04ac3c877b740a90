//! Check: a failing `test` rolls the rotation back. The harness makes `test`
//! fail by having the dev server refuse its first host call
//! ([`super::faults`]), runs a real rotation, and requires:
//!
//! - the rotation fails in `test` and its `rollback` ran and succeeded;
//! - PENDING is cleared and the history records the rotation as failed;
//! - the job's secret is unchanged (same version, same value);
//! - every path `set` wrote (in the recorded walk) reads as it did before
//!   the rotation: rollback restored the target. Paths a root read cannot
//!   see (e.g. `database/rotate-root/…`) are listed as not observable.
//!
//! Skipped, with the reason, when `test` makes no host call that reached
//! Vault: nothing outside the plugin can then make it fail.

use super::env::{Env, Observed, written_paths};
use super::faults::{FAULT_STATUS, Watch, test_fault};
use super::report::{CheckResult, names};
use super::walk::Walk;
use rotator_core::plugin::Step;
use rotator_core::rotation::{RotateOptions, RotationError};
use rotator_core::state::Outcome;

const JOB: &str = "harness-rollback";

pub(super) async fn check(env: &Env, walk: &Walk) -> CheckResult {
    let fault = match test_fault(walk) {
        Ok(f) => f,
        Err(why) => return CheckResult::skip(names::ROLLBACK, format!("{why}, so it cannot be made to fail")),
    };
    let targets = walk.step(Step::Set).map(|s| written_paths(&s.host_calls)).unwrap_or_default();
    let before_target = env.observe_all(&targets).await;
    let before = env.secret_state().await;

    let watch = Watch::new(&env.server, Some(fault.rules.clone()));
    let result =
        env.job(JOB).rotate_with(&env.store, RotateOptions { observer: &watch, ..RotateOptions::new("harness") }).await;
    let rollback_ran = watch.saw("rollback", "ok");
    drop(watch);

    let mut violations = Vec::new();
    match &result {
        Ok(report) => {
            env.note_host_calls(&report.host_calls);
            violations.push(format!(
                "the rotation succeeded although test's call `{}` was answered {FAULT_STATUS}: test must fail when it cannot prove the new value works",
                fault.call
            ));
        }
        Err(RotationError::Step { source, rollback }) if source.step == Step::Test => match rollback {
            Some(Ok(())) if rollback_ran => {}
            Some(Ok(())) => violations.push("no successful rollback step was reported".into()),
            Some(Err(e)) => violations.push(format!("rollback failed: {}", e.failure)),
            None => violations.push("rollback was not attempted".into()),
        },
        Err(e) => violations.push(format!("the rotation failed elsewhere than in test: {e}")),
    }
    match env.store.load(JOB).await {
        Ok(v) => {
            if v.state.in_progress.is_some() {
                violations.push("PENDING is still staged after the rollback".into());
            }
            if v.state.history.first().map(|h| h.outcome) != Some(Outcome::Failed) {
                violations.push("the history does not record the rotation as failed".into());
            }
        }
        Err(e) => violations.push(format!("reading the state record failed: {e}")),
    }
    match (before, env.secret_state().await) {
        (Ok(b), Ok(a)) if a == b => {}
        (Ok(_), Ok(_)) => {
            violations.push(format!("the job's secret {} changed although the rotation failed", env.secret))
        }
        (Err(e), _) | (_, Err(e)) => violations.push(format!("reading the secret failed: {e}")),
    }
    let mut hidden = Vec::new();
    let after_target = env.observe_all(&targets).await;
    for path in &targets {
        match (before_target.get(path), after_target.get(path)) {
            (Some(Observed::Unreadable(_)), Some(Observed::Unreadable(_))) => hidden.push(path.clone()),
            (b, a) if b == a => {}
            _ => violations.push(format!("rollback did not restore {path}: it differs from before the rotation")),
        }
    }
    let restored = targets.len() - hidden.len();
    let ok = format!(
        "test's call `{}` answered {FAULT_STATUS}: test failed, rollback ran, PENDING cleared, secret unchanged, \
         {restored} target path(s) restored",
        fault.call
    );
    let notes = if hidden.is_empty() {
        Vec::new()
    } else {
        vec![format!("not observable with a root read, so restoration not checked: {}", hidden.join(", "))]
    };
    CheckResult::from_violations(names::ROLLBACK, violations, ok).with_details(notes)
}
