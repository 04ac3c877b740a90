//! Replays of kv1.json and kv2.json: each sets up the secret the sample
//! shows (versions, custom metadata, folders) on the dev server's mounts,
//! then sends the sample's request; where rotator's client reads the
//! endpoint, the real client reads the replayed state too.

use rotator_core::secret::SecretJson;
use rotator_tests::contract::Sample;
use serde_json::{Value, json};

use super::bench::{Bench, path, request};
use super::{Fut, fut};

/// kv1.json documents a v1 mount at `secret/`: put one there.
async fn kv1_at_secret(b: &Bench<'_>) {
    b.setup("DELETE", "sys/mounts/secret", Value::Null).await;
    b.setup("POST", "sys/mounts/secret", json!({"type": "kv", "options": {"version": "1"}})).await;
}

pub fn kv1_read<'a>(b: &'a Bench<'a>, s: &'a Sample) -> Fut<'a> {
    fut(async move {
        kv1_at_secret(b).await;
        b.setup("POST", "secret/app", json!({"foo": "bar", "ttl": "1h"})).await;
        let answer = b.root("GET", &path(s, &[(":path", "app")]), None).await;
        let read = b.client(rotator_tests::ROOT).kv_read("secret", "app").await.unwrap().expect("written");
        b.check(read.version.is_none() && read.data.fields()["foo"] == "bar", || "client kv_read on v1".into());
        answer
    })
}

/// `foo` and `foo/bar`: a LIST of the root shows `["foo", "foo/"]`, as
/// both LIST samples do.
async fn folder_and_key(b: &Bench<'_>, data_prefix: &str) {
    for key in ["foo", "foo/bar"] {
        let body = if data_prefix.is_empty() { json!({"a": "b"}) } else { json!({"data": {"a": "b"}}) };
        b.setup("POST", &format!("secret/{data_prefix}{key}"), body).await;
    }
}

async fn client_lists_foo(b: &Bench<'_>) {
    let keys = b.client(rotator_tests::ROOT).kv_list("secret", "").await.unwrap();
    b.check(keys == ["foo", "foo/"], || format!("client kv_list: {keys:?}"));
}

pub fn kv1_list<'a>(b: &'a Bench<'a>, s: &'a Sample) -> Fut<'a> {
    fut(async move {
        kv1_at_secret(b).await;
        folder_and_key(b, "").await;
        let answer = b.root("LIST", &path(s, &[(":path", "")]), None).await;
        client_lists_foo(b).await;
        answer
    })
}

pub fn kv1_write<'a>(b: &'a Bench<'a>, s: &'a Sample) -> Fut<'a> {
    fut(async move {
        kv1_at_secret(b).await;
        let answer = b.root("POST", &path(s, &[(":path", "app")]), Some(request(s, json!({})))).await;
        let secret = SecretJson::parse(r#"{"foo":"bar"}"#.into()).unwrap();
        let written = b.client(rotator_tests::ROOT).kv_write("secret", "other", &secret, None).await;
        b.check(matches!(written, Ok(0)), || format!("client kv_write on v1: {written:?}"));
        answer
    })
}

pub fn kv1_delete<'a>(b: &'a Bench<'a>, s: &'a Sample) -> Fut<'a> {
    fut(async move {
        kv1_at_secret(b).await;
        b.setup("POST", "secret/app", json!({"foo": "bar"})).await;
        b.root("DELETE", &path(s, &[(":path", "app")]), None).await
    })
}

/// The sample's KV v2 path on the dev server's `secret/` mount, key `app`.
fn v2(s: &Sample) -> String {
    path(s, &[(":secret-mount-path", "secret"), (":path", "app")])
}

/// Custom metadata like the data samples show, set before any version.
async fn custom_metadata(b: &Bench<'_>) {
    let meta = json!({"custom_metadata": {"owner": "jdoe", "mission_critical": "false"}});
    b.setup("POST", "secret/metadata/app", meta).await;
}

async fn versions(b: &Bench<'_>, n: u64) {
    for v in 1..=n {
        b.setup("POST", "secret/data/app", json!({"data": {"foo": "bar", "v": v}})).await;
    }
}

pub fn kv2_config_write<'a>(b: &'a Bench<'a>, s: &'a Sample) -> Fut<'a> {
    fut(async move { b.root("POST", &v2(s), Some(request(s, json!({})))).await })
}

pub fn kv2_config_read<'a>(b: &'a Bench<'a>, s: &'a Sample) -> Fut<'a> {
    fut(async move {
        b.setup("POST", "secret/config", json!({"delete_version_after": "3h25m19s"})).await;
        let answer = b.root("GET", &v2(s), None).await;
        b.check(answer.body["data"] == s.response()["data"], || format!("config values: {}", answer.body));
        answer
    })
}

pub fn kv2_read<'a>(b: &'a Bench<'a>, s: &'a Sample) -> Fut<'a> {
    fut(async move {
        custom_metadata(b).await;
        versions(b, 3).await;
        let answer = b.root("GET", &format!("{}?version=2", v2(s)), None).await;
        let read = b.client(rotator_tests::ROOT).kv_read_version("secret", "app", Some(2)).await.unwrap();
        b.check(read.is_some_and(|r| r.version == Some(2)), || "client kv_read_version(2)".into());
        answer
    })
}

pub fn kv2_write<'a>(b: &'a Bench<'a>, s: &'a Sample) -> Fut<'a> {
    fut(async move {
        custom_metadata(b).await;
        let answer = b.root("POST", &v2(s), Some(request(s, json!({})))).await;
        let secret = SecretJson::parse(r#"{"foo":"bar"}"#.into()).unwrap();
        let written = b.client(rotator_tests::ROOT).kv_write("secret", "other", &secret, Some(0)).await;
        b.check(matches!(written, Ok(1)), || format!("client kv_write cas=0: {written:?}"));
        answer
    })
}

pub fn kv2_patch<'a>(b: &'a Bench<'a>, s: &'a Sample) -> Fut<'a> {
    fut(async move {
        custom_metadata(b).await;
        versions(b, 1).await;
        b.root("PATCH", &v2(s), Some(request(s, json!({})))).await
    })
}

pub fn kv2_subkeys<'a>(b: &'a Bench<'a>, s: &'a Sample) -> Fut<'a> {
    fut(async move {
        let data = json!({"data": {"foo": "abc", "bar": {"baz": "def"}, "quux": "ghi"}});
        b.setup("POST", "secret/data/app", data).await;
        let answer = b.root("GET", &v2(s), None).await;
        let documented = &s.response()["subkeys"];
        b.check(answer.body["data"]["subkeys"] == *documented, || format!("subkeys: {}", answer.body));
        answer
    })
}

/// Two versions, then the sample's own call (delete, undelete, destroy).
pub fn kv2_versions_call<'a>(b: &'a Bench<'a>, s: &'a Sample) -> Fut<'a> {
    fut(async move {
        versions(b, 2).await;
        if s.entry["path"].as_str().is_some_and(|p| p.contains("/undelete/")) {
            b.setup("POST", "secret/delete/app", json!({"versions": [1, 2]})).await;
        }
        let method = s.entry["method"].as_str().unwrap();
        let body = (!s.request().is_null()).then(|| request(s, json!({})));
        b.root(method, &v2(s), body).await
    })
}

pub fn kv2_list<'a>(b: &'a Bench<'a>, s: &'a Sample) -> Fut<'a> {
    fut(async move {
        folder_and_key(b, "data/").await;
        let answer = b.root("LIST", &path(s, &[(":secret-mount-path", "secret"), (":path", "")]), None).await;
        client_lists_foo(b).await;
        answer
    })
}

pub fn kv2_metadata_read<'a>(b: &'a Bench<'a>, s: &'a Sample) -> Fut<'a> {
    fut(async move {
        let settings = json!({"delete_version_after": "3h25m19s",
                              "custom_metadata": {"foo": "abc", "bar": "123", "baz": "5c07d823"}});
        b.setup("POST", "secret/metadata/app", settings).await;
        versions(b, 3).await;
        let answer = b.root("GET", &v2(s), None).await;
        let meta = b.client(rotator_tests::ROOT).kv_metadata("secret", "app").await.unwrap().expect("metadata");
        b.check(meta["updated_time"].is_string() && meta["current_version"] == 3, || {
            format!("client kv_metadata: {meta}")
        });
        answer
    })
}

/// The sample's call (metadata write, patch or delete; data delete) on a
/// key with one version.
pub fn kv2_on_existing<'a>(b: &'a Bench<'a>, s: &'a Sample) -> Fut<'a> {
    fut(async move {
        versions(b, 1).await;
        let method = s.entry["method"].as_str().unwrap();
        let body = (!s.request().is_null()).then(|| request(s, json!({})));
        let answer = b.root(method, &v2(s), body).await;
        if method == "POST" {
            let client = b.client(rotator_tests::ROOT);
            let written = client.kv_write_metadata("secret", "other", &Default::default(), Some(3)).await;
            b.check(written.is_ok(), || format!("client kv_write_metadata: {written:?}"));
        }
        answer
    })
}
