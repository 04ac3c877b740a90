//! Check: `plan` has no side effects. `rotator rotate --dry-run` promises to
//! change nothing, so the plugin's `plan` may only read: none of its host
//! calls may be a write or delete (even a denied one: it tried), and the dev
//! server must have received only reads while it ran.

use super::report::{CheckResult, names};
use super::walk::Walk;
use rotator_core::plugin::Step;

/// HTTP methods that only read.
const READ_METHODS: &[&str] = &["GET", "LIST", "HEAD"];

pub(super) fn check(walk: &Walk) -> CheckResult {
    let Some(plan) = walk.step(Step::Plan) else {
        return CheckResult::skip(names::PLAN, "the plugin could not be started, so `plan` never ran");
    };
    let mut violations = Vec::new();
    if let Some(e) = &plan.error {
        violations.push(format!("plan failed: {e}"));
    }
    for c in plan.host_calls.iter().filter(|c| matches!(c.operation.as_str(), "write" | "delete")) {
        violations.push(format!("plan made a {} call: {c}", c.operation));
    }
    let writes: Vec<String> = walk
        .plan_requests
        .iter()
        .filter(|(m, _)| !READ_METHODS.contains(&m.as_str()))
        .map(|(m, n)| format!("{n} {m}"))
        .collect();
    if !writes.is_empty() {
        violations.push(format!("the dev server received non-read requests during plan: {}", writes.join(", ")));
    }
    let requests: u64 = walk.plan_requests.values().sum();
    let ok = format!(
        "plan made {} host call(s), none a write or delete; the dev server saw {requests} request(s) during plan, all reads",
        plan.host_calls.len()
    );
    CheckResult::from_violations(names::PLAN, violations, ok)
}
