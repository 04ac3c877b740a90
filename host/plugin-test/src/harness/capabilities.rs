//! Check: the plugin only does what it declares. Every host call any run
//! made (allowed or denied) must be covered by a capability from the
//! plugin's `describe`, matched the way the job's grants are
//! ([`rotator_core::plugin::grants`]: Vault policy paths, `+` one segment, a
//! trailing `*` any rest, and the operation). An operator who grants exactly
//! what a plugin declares must never see it denied.
//!
//! Calls are grouped by capability family, the part of the host function's
//! name before the dot (`vault.kv-read` → `vault`). A family without a
//! matching rule here (a newer capability such as `sql`, whose calls would
//! name a connection as their target) is reported as not covered, so a
//! capability the harness cannot judge never passes silently.

use std::collections::BTreeSet;

use super::env::Env;
use super::parse_operation;
use super::report::{CallRecord, CheckResult, names};
use rotator_core::plugin::{Grants, SqlOperation};

/// Why `call` is not covered by `declared`, if it is not.
fn uncovered(declared: &Grants, call: &CallRecord) -> Option<String> {
    let family = call.function.split('.').next().unwrap_or_default();
    match family {
        "vault" => match parse_operation(&call.operation) {
            Ok(op) if declared.allows(op, &call.target) => None,
            Ok(_) => Some("no declared vault capability covers it".into()),
            Err(e) => Some(e.to_string()),
        },
        "sql" => match SqlOperation::parse(&call.operation) {
            Some(op) if declared.allows_sql(op, &call.target) => None,
            Some(_) => Some("no declared sql capability covers this connection".into()),
            None => Some(format!("unknown sql operation `{}`", call.operation)),
        },
        other => Some(format!("the harness has no coverage rule for `{other}` capabilities")),
    }
}

pub(super) fn check(env: &Env) -> CheckResult {
    let declared = env.declared();
    // One verdict per distinct call; the outcome is shown from its first use.
    let mut seen = BTreeSet::new();
    let mut violations = Vec::new();
    let calls = env.calls();
    for call in &calls {
        if !seen.insert((call.function.clone(), call.target.clone(), call.operation.clone())) {
            continue;
        }
        if let Some(why) = uncovered(&declared, call) {
            violations.push(format!("{call}: {why}"));
        }
    }
    let ok = match seen.len() {
        0 => "the plugin made no host calls".to_owned(),
        n => format!("all {n} distinct host call(s) are covered by the capabilities `describe` declares"),
    };
    CheckResult::from_violations(names::CAPABILITIES, violations, ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rotator_core::plugin::{Operation, SqlGrant, VaultGrant};

    fn call(function: &str, target: &str, operation: &str) -> CallRecord {
        CallRecord {
            function: function.into(),
            target: target.into(),
            operation: operation.into(),
            outcome: "ok".into(),
        }
    }

    #[test]
    fn coverage_follows_grant_matching() {
        let declared = Grants {
            vault: vec![VaultGrant { path: "+/rotate-root/*".into(), operations: vec![Operation::Write] }],
            sql: vec![SqlGrant { connection: "orders".into(), operations: vec![SqlOperation::Query] }],
            http: Vec::new(),
            read_only: false,
        };
        assert_eq!(uncovered(&declared, &call("vault.request", "db/rotate-root/pg", "write")), None);
        let read = uncovered(&declared, &call("vault.request", "db/rotate-root/pg", "read")).unwrap();
        assert!(read.contains("no declared vault capability"), "{read}");
        assert!(uncovered(&declared, &call("vault.kv-read", "secret/data/x", "read")).is_some());
        assert_eq!(uncovered(&declared, &call("sql.query", "orders", "query")), None);
        let other = uncovered(&declared, &call("sql.query", "billing", "query")).unwrap();
        assert!(other.contains("no declared sql capability"), "{other}");
        let execute = uncovered(&declared, &call("sql.execute", "orders", "execute")).unwrap();
        assert!(execute.contains("no declared sql capability"), "{execute}");
    }
}
