//! Replays of sys.json (health, seal status, mounts, tuning, response
//! wrapping) and headers.json (each documented header, sent or looked for).

use rotator_tests::ROOT;
use rotator_tests::contract::Sample;
use serde_json::{Value, json};

use super::bench::{Bench, path, request};
use super::{Fut, fut};

/// An unauthenticated call of the sample as documented; the second OpenBao
/// health sample was taken with `?standbycode=200` (its note says so).
pub fn unauthenticated<'a>(b: &'a Bench<'a>, s: &'a Sample) -> Fut<'a> {
    fut(async move {
        let method = s.entry["method"].as_str().unwrap();
        let mut api = path(s, &[]);
        if s.entry["notes"].as_str().is_some_and(|n| n.contains("?standbycode=200")) {
            api.push_str("?standbycode=200");
        }
        let answer = b.send(method, &api, None, None, &[]).await;
        if method == "HEAD" {
            b.check(answer.body.is_null(), || "HEAD has no body".into());
        }
        answer
    })
}

/// `GET sys/mounts`.
pub fn mounts<'a>(b: &'a Bench<'a>, s: &'a Sample) -> Fut<'a> {
    fut(async move { b.root("GET", &path(s, &[]), None).await })
}

/// `sys/mounts/:path`: the sample's call; a read is of the sample's own
/// mount (cubbyhole), a delete is of a mount enabled first.
pub fn mount_call<'a>(b: &'a Bench<'a>, s: &'a Sample) -> Fut<'a> {
    fut(async move {
        let method = s.entry["method"].as_str().unwrap();
        let mount = match method {
            "GET" => s.response()["type"].as_str().unwrap().to_owned(),
            _ => "my-kv".to_owned(),
        };
        if method == "DELETE" {
            b.setup("POST", "sys/mounts/my-kv", json!({"type": "kv"})).await;
        }
        let body = (!s.request().is_null()).then(|| request(s, json!({})));
        b.root(method, &path(s, &[(":path", &mount)]), body).await
    })
}

/// `sys/mounts/secret/tune`: a read after tuning to the sample's values
/// (effective TTLs in seconds), or the sample's tune, read back.
pub fn tune<'a>(b: &'a Bench<'a>, s: &'a Sample) -> Fut<'a> {
    fut(async move {
        let api = path(s, &[(":path", "secret")]);
        let (answer, expected) = if s.entry["method"] == "GET" {
            let documented = s.response();
            let ttls = json!({"default_lease_ttl": documented["default_lease_ttl"],
                              "max_lease_ttl": documented["max_lease_ttl"]});
            b.setup("POST", &api, ttls.clone()).await;
            (b.root("GET", &api, None).await, ttls)
        } else {
            let answer = b.root("POST", &api, Some(request(s, json!({})))).await;
            (answer, s.request().clone())
        };
        let read = b.root("GET", &api, None).await.body;
        for key in ["default_lease_ttl", "max_lease_ttl"] {
            b.check(read["data"][key] == expected[key], || format!("tuned {key}: {read}"));
        }
        answer
    })
}

/// `sys/wrapping/wrap` with the sample's `X-Vault-Wrap-TTL: 60`, or an
/// unwrap (token in the body, as the sample sends it) of what was wrapped.
pub fn wrapping<'a>(b: &'a Bench<'a>, s: &'a Sample) -> Fut<'a> {
    fut(async move {
        let api = path(s, &[]);
        if api == "sys/wrapping/wrap" {
            let body = request(s, json!({}));
            let answer = b.send("POST", &api, Some(ROOT), Some(&body), &[("X-Vault-Wrap-TTL", "60")]).await;
            b.check(answer.body["wrap_info"]["ttl"] == 60, || format!("wrap ttl: {}", answer.body));
            return answer;
        }
        let data = s.response()["data"].clone();
        let wrapped = b.send("POST", "sys/wrapping/wrap", Some(ROOT), Some(&data), &[("X-Vault-Wrap-TTL", "5m")]).await;
        let token = wrapped.body["wrap_info"]["token"].as_str().unwrap_or_default().to_owned();
        let answer = b.root("POST", &api, Some(request(s, json!({"token": token})))).await;
        b.check(answer.body["data"] == data, || format!("unwrapped data: {}", answer.body));
        let again = b.root("POST", &api, Some(json!({"token": token}))).await;
        b.check(again.status == 400, || format!("a wrapping token is single-use: {}", again.status));
        answer
    })
}

/// headers.json: send or look for each documented header.
pub fn header<'a>(b: &'a Bench<'a>, s: &'a Sample) -> Fut<'a> {
    fut(async move {
        let name = s.entry["name"].as_str().unwrap();
        let example = s.entry["example"].as_str().unwrap_or_default();
        let direction = s.entry["direction"].as_str().unwrap();
        let lookup = "auth/token/lookup-self";
        let answer = match (name, direction) {
            ("X-Vault-Token", _) => {
                let with = b.send("GET", lookup, Some(ROOT), None, &[]).await;
                let without = b.send("GET", lookup, None, None, &[]).await;
                b.check(without.status == 403, || format!("no token: {}", without.status));
                with
            }
            ("Authorization", _) => {
                let bearer = example.replace("<token>", ROOT);
                b.send("GET", lookup, None, None, &[("Authorization", &bearer)]).await
            }
            ("X-Vault-Namespace", _) => namespace(b, example).await,
            ("X-Vault-Request" | "X-Vault-MFA", _) => mfa_and_request(b, name, example).await,
            ("X-Vault-Wrap-TTL", _) => {
                let answer = b.send("GET", lookup, Some(ROOT), None, &[(name, example)]).await;
                let info = &answer.body["wrap_info"];
                let keys = ["token", "accessor", "ttl", "creation_time", "creation_path"];
                b.check(keys.iter().all(|k| info.get(k).is_some()), || format!("wrap_info: {}", answer.body));
                b.check(answer.body["data"].is_null() && info["ttl"] == 60, || format!("wrapped: {}", answer.body));
                answer
            }
            ("Content-Type", "request") => {
                b.setup("POST", "secret/data/app", json!({"data": {"a": "b"}})).await;
                let patch = json!({"data": {"a": "c"}});
                let plain =
                    b.send("PATCH", "secret/data/app", Some(ROOT), None, &[("Content-Type", "application/json")]);
                b.check(plain.await.status == 415, || "PATCH without merge-patch is a 415".into());
                b.send("PATCH", "secret/data/app", Some(ROOT), Some(&patch), &[]).await
            }
            ("Content-Type" | "Cache-Control", "response") => {
                let header = name.to_ascii_lowercase();
                for (method, api) in [("GET", "sys/health"), ("GET", "secret/data/none"), ("GET", "sys/mounts")] {
                    let answer = b.send(method, api, Some(ROOT), None, &[]).await;
                    let got = answer.headers.get(&header).and_then(|v| v.to_str().ok()).map(str::to_owned);
                    b.check(got.as_deref() == Some(example), || format!("{header} of {api}: {got:?}"));
                }
                b.send("GET", "sys/health", None, None, &[]).await
            }
            other => panic!("no replay for header {other:?}"),
        };
        b.check(answer.status == 200, || format!("{name}: {} {}", answer.status, answer.body));
        answer
    })
}

/// The dev server has only the root namespace: a request in another is
/// resolved under it, finds no mount there and is refused; `root/` is the
/// root namespace itself.
async fn namespace(b: &Bench<'_>, example: &str) -> super::bench::Answer {
    b.setup("POST", "secret/data/app", json!({"data": {"a": "b"}})).await;
    let elsewhere = b.send("GET", "secret/data/app", Some(ROOT), None, &[("X-Vault-Namespace", example)]).await;
    b.check(
        elsewhere.status == 404 && elsewhere.body["errors"][0].as_str().is_some_and(|e| e.contains(example)),
        || format!("secret/ in namespace {example}: {} {}", elsewhere.status, elsewhere.body),
    );
    b.send("GET", "secret/data/app", Some(ROOT), None, &[("X-Vault-Namespace", "root/")]).await
}

/// Clients send `X-Vault-Request: true` always, and `X-Vault-MFA` with a
/// login; without MFA configured both change nothing.
async fn mfa_and_request(b: &Bench<'_>, name: &str, example: &str) -> super::bench::Answer {
    b.setup("POST", "sys/auth/approle", json!({"type": "approle"})).await;
    b.setup("POST", "auth/approle/role/app", json!({})).await;
    let role_id = b.setup("GET", "auth/approle/role/app/role-id", Value::Null).await["data"]["role_id"].clone();
    let secret_id = b.setup("POST", "auth/approle/role/app/secret-id", json!({})).await["data"]["secret_id"].clone();
    let login = json!({"role_id": role_id, "secret_id": secret_id});
    b.send("POST", "auth/approle/login", None, Some(&login), &[(name, example)]).await
}
