//! The protocol, run once and recorded: the host reads the secret, the
//! plugin plans, creates, sets and tests, the host promotes the new value
//! (check-and-set, as the daemon does) and the plugin finishes. A failing
//! `set` or `test` (or promotion) is followed by `rollback`, as in the
//! daemon, and ends the walk.
//!
//! The walk drives one plugin session (one instance, like one rotation)
//! rather than [`rotator_core::rotation`], so every step's host calls are known
//! exactly; the staged protocol itself is exercised by the crash-resume and
//! rollback checks. The dev server's request counts around `plan` are kept
//! for the plan check.

use std::collections::BTreeMap;
use std::time::Instant;

use super::env::Env;
use super::report::StepRecord;
use super::session::Session;
use rotator_core::plugin::{Step, StepContext};
use rotator_core::secret::SecretJson;

/// The job id the walk runs as.
const JOB: &str = "harness-protocol";

/// What the walk saw.
pub(super) struct Walk {
    pub steps: Vec<StepRecord>,
    /// Requests the dev server answered while `plan` ran, by HTTP method.
    pub plan_requests: BTreeMap<String, u64>,
}

impl Walk {
    /// The record of `step`, if the walk got that far.
    pub fn step(&self, step: Step) -> Option<&StepRecord> {
        self.steps.iter().find(|s| s.step == step.as_str())
    }
}

/// A host action's record (no plugin calls).
fn host_step(step: &str, started: Instant, error: Option<String>) -> StepRecord {
    StepRecord {
        step: step.to_owned(),
        by: "host",
        duration_ms: started.elapsed().as_secs_f64() * 1e3,
        ok: error.is_none(),
        failure: error.as_ref().map(|_| "host"),
        error,
        host_calls: Vec::new(),
    }
}

/// `after - before`, by key.
fn growth(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after.iter().map(|(k, n)| (k.clone(), n - before.get(k).copied().unwrap_or(0))).filter(|(_, n)| *n > 0).collect()
}

pub(super) async fn run(env: &Env) -> Walk {
    let mut walk = Walk { steps: Vec::new(), plan_requests: BTreeMap::new() };
    let started = Instant::now();
    let current = match env.read_current().await {
        Ok(c) => c,
        Err(e) => {
            walk.steps.push(host_step("read-secret", started, Some(e.to_string())));
            return walk;
        }
    };
    walk.steps.push(host_step("read-secret", started, None));
    let mut session = match Session::start(env, JOB).await {
        Ok(s) => s,
        Err(e) => {
            walk.steps.push(host_step("instantiate", Instant::now(), Some(e.failure.to_string())));
            return walk;
        }
    };

    // The daemon's dry run passes this rotation id.
    let plan_ctx = env.context(JOB, "dry-run", current.clone());
    let before = env.server.stats().by_method;
    let (record, _) = session.plan(env, &plan_ctx).await;
    walk.plan_requests = growth(&before, &env.server.stats().by_method);
    walk.steps.push(record);

    let base = current.as_ref().and_then(|c| c.version);
    let ctx = env.context(JOB, &uuid::Uuid::new_v4().to_string(), current);
    let (record, created) = session.create(env, &ctx).await;
    walk.steps.push(record);
    let Ok(pending) = created else { return walk };
    rotate(env, &mut session, &ctx, &pending, base, &mut walk.steps).await;
    walk
}

/// set → test → promote → finish, or rollback after a failure.
async fn rotate(
    env: &Env,
    session: &mut Session,
    ctx: &StepContext,
    pending: &SecretJson,
    base: Option<u64>,
    steps: &mut Vec<StepRecord>,
) {
    for step in [Step::Set, Step::Test] {
        let (record, result) = session.pending_step(env, step, ctx, pending).await;
        steps.push(record);
        if result.is_err() {
            steps.push(session.pending_step(env, Step::Rollback, ctx, pending).await.0);
            return;
        }
    }
    let started = Instant::now();
    if let Err(e) = env.promote(pending, base).await {
        steps.push(host_step("promote", started, Some(e.to_string())));
        steps.push(session.pending_step(env, Step::Rollback, ctx, pending).await.0);
        return;
    }
    steps.push(host_step("promote", started, None));
    steps.push(session.pending_step(env, Step::Finish, ctx, pending).await.0);
}
