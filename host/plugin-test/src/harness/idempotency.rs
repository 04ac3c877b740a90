//! Check: `set`, `test` and `finish` are idempotent. The host repeats a step
//! whenever a crash or a retry leaves its outcome unknown, with the same
//! context (rotation id) and the same pending value, so a step run twice
//! must succeed twice and leave what it once left.
//!
//! Each step runs twice, each time in a fresh instance (as a resumed run
//! would be), after `create` made the pending value and the steps before it
//! ran; between `test` and `finish` the host promotes the value, as in the
//! protocol. The two calls must make the same host calls with the same
//! outcomes, and every path the first one wrote must read the same after the
//! second ([`Env::observe`]: compared by fingerprint).

use super::env::{Env, written_paths};
use super::report::{CallRecord, CheckResult, names};
use super::session::Session;
use rotator_core::plugin::{Step, StepContext};
use rotator_core::secret::SecretJson;

const JOB: &str = "harness-idempotency";

fn list(calls: &[CallRecord]) -> String {
    if calls.is_empty() {
        return "no calls".into();
    }
    calls.iter().map(|c| c.to_string()).collect::<Vec<_>>().join("; ")
}

/// How a step run twice behaved.
enum Twice {
    /// Same calls and state; this many written paths compared.
    Same(usize),
    Differs(Vec<String>),
    /// A call failed: later steps have nothing sound to build on.
    Failed(String),
}

/// Run `step` twice and compare.
async fn twice(env: &Env, step: Step, ctx: &StepContext, pending: &SecretJson) -> Twice {
    let mut first = match Session::start(env, JOB).await {
        Ok(s) => s,
        Err(e) => return Twice::Failed(format!("{step}: the plugin could not be started: {}", e.failure)),
    };
    let (a, result) = first.pending_step(env, step, ctx, pending).await;
    if let Err(e) = result {
        return Twice::Failed(format!("{step}: the first call failed: {}", e.failure));
    }
    let paths = written_paths(&a.host_calls);
    let after_first = env.observe_all(&paths).await;

    let mut second = match Session::start(env, JOB).await {
        Ok(s) => s,
        Err(e) => return Twice::Failed(format!("{step}: the plugin could not be started again: {}", e.failure)),
    };
    let (b, result) = second.pending_step(env, step, ctx, pending).await;
    if let Err(e) = result {
        return Twice::Failed(format!("{step}: the second call with the same rotation id failed: {}", e.failure));
    }
    let mut violations = Vec::new();
    if a.host_calls != b.host_calls {
        violations.push(format!(
            "{step}: the second call made different host calls: first [{}], then [{}]",
            list(&a.host_calls),
            list(&b.host_calls)
        ));
    }
    let after_second = env.observe_all(&paths).await;
    for path in &paths {
        if after_first.get(path) != after_second.get(path) {
            violations.push(format!("{step}: the second call left a different value at {path}"));
        }
    }
    if violations.is_empty() { Twice::Same(paths.len()) } else { Twice::Differs(violations) }
}

pub(super) async fn check(env: &Env) -> CheckResult {
    let fail = |reason: String| CheckResult::from_violations(names::IDEMPOTENT, vec![reason], "");
    let current = match env.read_current().await {
        Ok(c) => c,
        Err(e) => return fail(format!("reading the job's secret failed: {e}")),
    };
    let base = current.as_ref().and_then(|c| c.version);
    let ctx = env.context(JOB, &uuid::Uuid::new_v4().to_string(), current);
    let mut session = match Session::start(env, JOB).await {
        Ok(s) => s,
        Err(e) => return fail(format!("the plugin could not be started: {}", e.failure)),
    };
    let pending = match session.create(env, &ctx).await.1 {
        Ok(p) => p,
        Err(e) => return fail(format!("create failed, so no step could be repeated: {}", e.failure)),
    };

    let mut violations = Vec::new();
    let mut compared = 0;
    for step in [Step::Set, Step::Test, Step::Finish] {
        if step == Step::Finish
            && let Err(e) = env.promote(&pending, base).await
        {
            violations.push(format!("promoting the new value before `finish` failed: {e}"));
            break;
        }
        match twice(env, step, &ctx, &pending).await {
            Twice::Same(paths) => compared += paths,
            Twice::Differs(found) => violations.extend(found),
            Twice::Failed(why) => {
                violations.push(why);
                break;
            }
        }
    }
    let ok = format!(
        "set, test and finish each ran twice (fresh instance, same rotation id and pending value): \
         same host calls and outcomes, same values at the {compared} path(s) they wrote"
    );
    CheckResult::from_violations(names::IDEMPOTENT, violations, ok)
}
