//! Replays of errors.json: each documented status (and, where the docs or
//! OpenBao's source give one, its body) provoked on the dev server the way
//! a client meets it. Statuses only a flaky or overloaded server sends are
//! provoked with the dev server's fault injection, which answers in
//! Vault's own bodies.

use rotator_devserver::FaultRules;
use rotator_tests::ROOT;
use rotator_tests::contract::Sample;
use serde_json::{Value, json};

use super::bench::{Answer, Bench};
use super::{Fut, fut};

/// The documented status, provoked by the request a client would make.
pub fn generic<'a>(b: &'a Bench<'a>, s: &'a Sample) -> Fut<'a> {
    fut(async move {
        match s.status() {
            200 => b.root("GET", "sys/mounts", None).await,
            204 => b.root("POST", "secret/config", Some(json!({"max_versions": 5}))).await,
            400 => b.root("POST", "secret/data/app", Some(json!({"options": {"cas": 0}}))).await,
            403 => b.send("GET", "secret/data/app", None, None, &[]).await,
            404 => b.root("GET", "no/such/mount", None).await,
            405 => b.root("DELETE", "secret/config", None).await,
            status => fault(b, status, "secret/data/app").await,
        }
    })
}

/// `LIST` of an empty folder.
pub fn empty_list<'a>(b: &'a Bench<'a>, _s: &'a Sample) -> Fut<'a> {
    fut(async move { b.root("LIST", "secret/metadata/nothing/", None).await })
}

/// The next request to `path` answered with `status` by fault injection.
async fn fault(b: &Bench<'_>, status: u16, path: &str) -> Answer {
    let rules = FaultRules {
        rate: 1.0,
        statuses: vec![status],
        path_prefix: Some(path.to_owned()),
        remaining: Some(1),
        ..Default::default()
    };
    b.server.set_faults(Some(rules));
    b.root("GET", path, None).await
}

/// The source-derived bodies: a sealed server (503), a rate limit (429,
/// `message_format` with the request path) and a denied request (403).
pub fn core_error<'a>(b: &'a Bench<'a>, s: &'a Sample) -> Fut<'a> {
    fut(async move {
        let path = "secret/data/app";
        if s.status() == 403 {
            return b.send("GET", path, Some("not-a-token"), None, &[]).await;
        }
        let answer = fault(b, s.status(), path).await;
        if let Some(format) = s.entry["message_format"].as_str() {
            let expected = format.replace("%q", &format!("{path:?}"));
            b.check(answer.body["errors"][0] == expected.as_str(), || format!("message: {}", answer.body));
        }
        answer
    })
}

/// KV v2 errors: CAS mismatch and CAS required on write, a never-written
/// key and a deleted version on read.
pub fn kv2<'a>(b: &'a Bench<'a>, s: &'a Sample) -> Fut<'a> {
    fut(async move {
        let message = s.response()["errors"][0].as_str().unwrap_or_default();
        let write = |cas: Option<u64>| {
            let mut body = json!({"data": {"a": "b"}});
            if let Some(cas) = cas {
                body["options"] = json!({"cas": cas});
            }
            b.root("POST", "secret/data/app", Some(body))
        };
        if message.contains("did not match") {
            write(None).await;
            return write(Some(0)).await;
        }
        if message.contains("required") {
            b.setup("POST", "secret/config", json!({"cas_required": true})).await;
            return write(None).await;
        }
        if s.response().is_null() {
            write(None).await;
            b.setup("DELETE", "secret/data/app", Value::Null).await;
            let answer = b.root("GET", "secret/data/app", None).await;
            let data = &answer.body["data"];
            let metadata = ["version", "created_time", "deletion_time", "destroyed", "custom_metadata"];
            b.check(data["data"].is_null() && metadata.iter().all(|k| data["metadata"].get(k).is_some()), || {
                format!("a deleted version reads as the envelope with data.data null: {}", answer.body)
            });
            return answer;
        }
        b.root("GET", "secret/data/never-written", None).await
    })
}

/// `auth/token/renew-self` with the root token, which never expires.
pub fn renew_root<'a>(b: &'a Bench<'a>, _s: &'a Sample) -> Fut<'a> {
    fut(async move { b.send("POST", "auth/token/renew-self", Some(ROOT), Some(&json!({})), &[]).await })
}
