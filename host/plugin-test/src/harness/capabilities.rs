//! Check: the plugin only does what it declares. Every host call any run
//! made (allowed or denied) must be covered by a capability from the
//! plugin's `describe`, matched the way the job's grants are
//! ([`rotator_core::plugin::grants`]: Vault policy paths, `+` one segment, a
//! trailing `*` any rest, and the operation). An operator who grants exactly
//! what a plugin declares must never see it denied.
//!
//! Calls are grouped by capability family, the part of the host function's
//! name before the dot (`vault.kv-read` → `vault`). An `sql` call names its
//! connection; an `http.send` call is recorded as its method and
//! `origin` + `path` (the canonical target the host checked), and is judged
//! by the very check the host runs ([`Grants::check_http`]), against the
//! declared origins, path prefixes and methods. A family without a matching
//! rule here is reported as not covered, so a capability the harness cannot
//! judge never passes silently.

use std::collections::BTreeSet;

use super::env::Env;
use super::parse_operation;
use super::report::{CallRecord, CheckResult, names};
use rotator_core::plugin::grants::RefusalKind;
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
        "http" => match declared.check_http(&call.operation, &call.target) {
            Ok(_) => None,
            Err(refusal) if refusal.kind == RefusalKind::Invalid => Some(refusal.message),
            Err(_) => Some("no declared http capability covers this origin, path and method".into()),
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
    use rotator_core::plugin::{HttpGrant, Operation, SqlGrant, VaultGrant};

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

    #[test]
    fn http_calls_are_covered_by_declared_origins_paths_and_methods() {
        let declared = Grants {
            http: vec![HttpGrant {
                origin: "https://rabbit.internal:15672".into(),
                paths: vec!["/api/users/".into()],
                methods: vec!["GET".into(), "PUT".into()],
            }],
            ..Grants::default()
        };
        let send = |target: &str, method: &str| uncovered(&declared, &call("http.send", target, method));
        assert_eq!(send("https://rabbit.internal:15672/api/users/app", "PUT"), None);
        let uncovered_ones = [
            send("https://rabbit.internal:15672/api/users/app", "DELETE"),
            send("https://rabbit.internal:15672/api/vhosts/x", "GET"),
            send("https://rabbit.internal:443/api/users/app", "GET"),
            send("http://rabbit.internal:15672/api/users/app", "GET"),
        ];
        for why in uncovered_ones {
            assert_eq!(why.as_deref(), Some("no declared http capability covers this origin, path and method"));
        }
        let invalid = send("https://rabbit.internal:15672/api/users/../x", "GET").unwrap();
        assert!(invalid.contains("`.` or `..` segment"), "{invalid}");
        // A plugin that declares nothing has nothing covered.
        let none = uncovered(&Grants::default(), &call("http.send", "https://rabbit.internal:15672/", "GET"));
        assert!(none.is_some());
    }
}
