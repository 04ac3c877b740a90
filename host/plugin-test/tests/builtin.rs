//! The crate as a plugin author uses it, on rotator's own `kv-random`.

use rotator_plugin_test::{PluginTest, Status, json, names};

#[tokio::test]
async fn kv_random_conforms() {
    let result = PluginTest::new("kv-random")
        .settings(json!({ "field": "password", "length": 24 }))
        .initial_secret(json!({ "username": "app", "password": "initial" }))
        .run()
        .await;
    result.assert_conforms();
    // kv-random's test makes no host call, so nothing can fail it from outside.
    let rollback = result.check(names::ROLLBACK).unwrap();
    assert_eq!(rollback.status, Status::Skip, "{rollback:?}");
    assert_eq!(result.check(names::CRASH_RESUME).unwrap().status, Status::Pass);
}

#[tokio::test]
async fn an_unknown_operation_is_reported_not_ignored() {
    let err = PluginTest::new("kv-random").grant("secret/data/x", ["read", "frob"]).try_run().await.err().unwrap();
    assert!(err.to_string().contains("unknown operation `frob`"), "{err}");
}

#[tokio::test]
async fn a_bad_sql_connection_or_seed_is_reported_before_anything_runs() {
    let err = PluginTest::new("kv-random")
        .settings(json!({ "field": "password" }))
        .sql("app=postgres://admin:hunter2hunter2@127.0.0.1/db", "PATH:HOME")
        .try_run()
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("must not hold credentials") && !err.contains("hunter2hunter2"), "{err}");
    let err = PluginTest::new("kv-random")
        .settings(json!({ "field": "password" }))
        .seed_secret("secret", "api/admin", json!(["not", "an", "object"]))
        .try_run()
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("must be a JSON object"), "{err}");
}
