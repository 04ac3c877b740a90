//! The plugin test harness against real plugins: the built-ins conform
//! (`database-root` against a real PostgreSQL behind the dev server's
//! database engine), and each fixture that breaks one rule is caught by the
//! check for that rule, with a message naming what it did, and by no other.

use rotator_core::secret::SecretJson;
use rotator_plugin_test::harness::{CheckResult, Harness, Report, Status, names, parse_grant, parse_plugin};
use rotator_tests::fixture;
use rotator_tests::postgres::{Postgres, SUPERUSER_PASSWORD};
use secrecy::SecretString;
use serde_json::json;

async fn test_plugin(plugin: &str, grants: Option<Vec<&str>>) -> Report {
    let grants = grants.map(|g| g.into_iter().map(|s| parse_grant(s).unwrap()).collect());
    Harness::new(parse_plugin(plugin), json!({}), grants).run().await.unwrap_or_else(|e| panic!("{e}"))
}

fn status(report: &Report, name: &str) -> Status {
    report.check(name).unwrap_or_else(|| panic!("no check {name}")).status
}

/// The one failed check of `report`, which must be `name`.
fn only_failure<'a>(report: &'a Report, name: &str) -> &'a CheckResult {
    let failed: Vec<&str> = report.checks.iter().filter(|c| c.status == Status::Fail).map(|c| c.name).collect();
    assert_eq!(failed, vec![name], "{report}");
    assert!(!report.is_ok());
    report.check(name).unwrap()
}

#[tokio::test]
async fn kv_random_conforms_and_the_report_holds_no_secret() {
    let report = Harness::new(parse_plugin("kv-random"), json!({"field": "password", "length": 20}), None)
        .initial_secret(SecretJson::new(json!({"user": "app", "password": "initial-pw-3f9a"}).to_string()))
        .run()
        .await
        .unwrap();
    assert!(report.is_ok(), "{report}");
    let steps: Vec<(&str, &str, bool)> = report.steps.iter().map(|s| (s.step.as_str(), s.by, s.ok)).collect();
    assert_eq!(
        steps,
        vec![
            ("read-secret", "host", true),
            ("plan", "plugin", true),
            ("create", "plugin", true),
            ("set", "plugin", true),
            ("test", "plugin", true),
            ("promote", "host", true),
            ("finish", "plugin", true),
        ]
    );
    assert!(report.steps.iter().all(|s| s.host_calls.is_empty()), "kv-random makes no host calls");
    for name in [names::IDEMPOTENT, names::CRASH_RESUME, names::PLAN, names::CAPABILITIES] {
        assert_eq!(status(&report, name), Status::Pass, "{name}: {report}");
    }
    let rollback = report.check(names::ROLLBACK).unwrap();
    assert_eq!(rollback.status, Status::Skip);
    assert_eq!(rollback.reason, "`test` makes no host call, so it cannot be made to fail");
    let crash = report.check(names::CRASH_RESUME).unwrap();
    assert!(crash.reason.starts_with("14 crash point(s)"), "{}", crash.reason);
    let text = format!("{report}\n{}", serde_json::to_string(&report).unwrap());
    assert!(!text.contains("initial-pw-3f9a"), "a secret value reached the report");
}

#[tokio::test(flavor = "multi_thread")]
async fn database_root_conforms_against_a_real_postgres() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let admin = pg.connect("postgres", SUPERUSER_PASSWORD).await.unwrap();
    admin.batch_execute("CREATE ROLE harnessroot WITH LOGIN SUPERUSER PASSWORD 'first-root-pw'").await.unwrap();

    let settings = json!({"connection": "harness", "verify_role": "harness"});
    let report = Harness::new(parse_plugin("database-root"), settings, None)
        .postgres_url(SecretString::from(pg.url("harnessroot", "first-root-pw")))
        .run()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(report.is_ok(), "{report}");
    for c in &report.checks {
        assert_eq!(c.status, Status::Pass, "{report}");
    }
    let set = report.steps.iter().find(|s| s.step == "set").unwrap();
    let calls: Vec<String> = set.host_calls.iter().map(|c| c.to_string()).collect();
    assert_eq!(calls, vec!["vault.request write database/rotate-root/harness → ok"]);
    let crash = report.check(names::CRASH_RESUME).unwrap();
    assert_eq!(crash.reason, "18 crash point(s): each interrupted rotation resumed to a clean end");
    let rollback = report.check(names::ROLLBACK).unwrap();
    assert!(rollback.reason.starts_with("test's call `vault.request read database/config/harness → ok` answered 400"));
    assert_eq!(
        rollback.details,
        vec!["not observable with a root read, so restoration not checked: database/rotate-root/harness"]
    );
    assert_eq!(
        report.environment.postgres.as_deref(),
        Some(format!("127.0.0.1:{}/postgres (user harnessroot)", pg.port).as_str())
    );
    assert!(!pg.logs_in("harnessroot", "first-root-pw").await, "the root password was never rotated");
    assert!(!serde_json::to_string(&report).unwrap().contains("first-root-pw"));
}

#[tokio::test]
async fn a_nonidempotent_set_is_caught() {
    let report = test_plugin(&fixture("fixture_nonidempotent"), None).await;
    let check = only_failure(&report, names::IDEMPOTENT);
    assert_eq!(check.reason, "set: the second call left a different value at secret/data/fixture/counter");
}

#[tokio::test]
async fn a_plan_that_writes_is_caught() {
    let report = test_plugin(&fixture("fixture_plan_writes"), None).await;
    let check = only_failure(&report, names::PLAN);
    assert_eq!(
        check.details,
        vec![
            "plan made a write call: vault.kv-write write secret/data/fixture/plan-marker → ok",
            "the dev server received non-read requests during plan: 1 POST",
        ]
    );
}

#[tokio::test]
async fn an_undeclared_call_is_caught_whether_or_not_it_was_granted() {
    let report = test_plugin(&fixture("fixture_undeclared"), None).await;
    let check = only_failure(&report, names::CAPABILITIES);
    assert_eq!(
        check.reason,
        "vault.kv-read read secret/data/fixture/undeclared → denied: no declared vault capability covers it"
    );
    // Granting the path lets the call through; it is still not declared.
    let report = test_plugin(&fixture("fixture_undeclared"), Some(vec!["secret/data/fixture/*:read"])).await;
    let check = only_failure(&report, names::CAPABILITIES);
    assert_eq!(
        check.reason,
        "vault.kv-read read secret/data/fixture/undeclared → ok: no declared vault capability covers it"
    );
}

#[tokio::test]
async fn a_rollback_that_does_not_restore_is_caught() {
    let report = test_plugin(&fixture("fixture_no_rollback"), None).await;
    let check = only_failure(&report, names::ROLLBACK);
    assert_eq!(
        check.reason,
        "rollback did not restore secret/data/fixture/target: it differs from before the rotation"
    );
    // Its test can be failed, so every rollback crash point was exercised too.
    let crash = report.check(names::CRASH_RESUME).unwrap();
    assert_eq!(crash.reason, "18 crash point(s): each interrupted rotation resumed to a clean end");
}

#[tokio::test]
async fn settings_against_the_schema_stop_the_harness() {
    let err = Harness::new(parse_plugin("kv-random"), json!({"length": 4}), None).run().await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("settings do not match the plugin's schema:"), "{msg}");
    assert!(msg.contains("\"field\" is a required property"), "{msg}");
}
