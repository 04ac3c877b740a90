//! Replays of approle.json, jwt.json, kubernetes.json and token.json: the
//! auth method is enabled and configured, a role made, and the sample's
//! request sent with the ids and credentials the replaying server issued
//! (JWTs are signed at test time by [`rotator_tests::jwt`]).

use rotator_tests::ROOT;
use rotator_tests::contract::Sample;
use rotator_tests::jwt::{now, sign};
use serde_json::{Value, json};

use super::bench::{Bench, path, request};
use super::{Fut, fut};

/// An AppRole role `:role_name` = `app` whose tokens live 1200 s (the
/// login sample's lease), and one of its secret ids.
async fn approle(b: &Bench<'_>) -> (String, String) {
    b.setup("POST", "sys/auth/approle", json!({"type": "approle"})).await;
    b.setup("POST", "auth/approle/role/app", json!({"token_ttl": 1200, "token_policies": ["default"]})).await;
    let role_id = b.setup("GET", "auth/approle/role/app/role-id", Value::Null).await["data"]["role_id"].clone();
    let secret_id = b.setup("POST", "auth/approle/role/app/secret-id", json!({})).await["data"]["secret_id"].clone();
    (role_id.as_str().unwrap().to_owned(), secret_id.as_str().unwrap().to_owned())
}

pub fn approle_login<'a>(b: &'a Bench<'a>, s: &'a Sample) -> Fut<'a> {
    fut(async move {
        let (role_id, secret_id) = approle(b).await;
        let body = request(s, json!({"role_id": role_id, "secret_id": secret_id}));
        b.send("POST", &path(s, &[]), None, Some(&body), &[]).await
    })
}

pub fn approle_role_call<'a>(b: &'a Bench<'a>, s: &'a Sample) -> Fut<'a> {
    fut(async move {
        approle(b).await;
        let method = s.entry["method"].as_str().unwrap();
        let body = (!s.request().is_null()).then(|| request(s, json!({})));
        b.root(method, &path(s, &[(":role_name", "app")]), body).await
    })
}

/// The role name the JWT and Kubernetes login samples send.
fn role_of(s: &Sample) -> String {
    s.request()["role"].as_str().expect("the sample names a role").to_owned()
}

pub fn jwt_login<'a>(b: &'a Bench<'a>, s: &'a Sample) -> Fut<'a> {
    fut(async move {
        let keys = b.shared.keys().await;
        b.setup("POST", "sys/auth/jwt", json!({"type": "jwt"})).await;
        b.setup("POST", "auth/jwt/config", json!({"jwt_validation_pubkeys": [keys.rsa_pub]})).await;
        let role = json!({"role_type": "jwt", "user_claim": "sub", "bound_audiences": ["vault"],
                          "token_policies": ["dev", "prod"]});
        b.setup("POST", &format!("auth/jwt/role/{}", role_of(s)), role).await;
        let claims = json!({"sub": "ci", "aud": "vault", "iat": now(), "exp": now() + 600});
        let body = request(s, json!({"jwt": sign(&keys.rsa, "RS256", &claims)}));
        b.send("POST", &path(s, &[]), None, Some(&body), &[]).await
    })
}

pub fn kubernetes_login<'a>(b: &'a Bench<'a>, s: &'a Sample) -> Fut<'a> {
    fut(async move {
        let keys = b.shared.keys().await;
        b.setup("POST", "sys/auth/kubernetes", json!({"type": "kubernetes"})).await;
        let config = json!({"kubernetes_host": "https://k8s.test", "pem_keys": [keys.rsa_pub]});
        b.setup("POST", "auth/kubernetes/config", config).await;
        let role = json!({"bound_service_account_names": ["openbao-auth"],
                          "bound_service_account_namespaces": ["default"], "token_policies": ["default"]});
        b.setup("POST", &format!("auth/kubernetes/role/{}", role_of(s)), role).await;
        let claims = json!({"iss": "https://kubernetes.default.svc", "aud": ["vault"], "iat": now(),
            "exp": now() + 600, "sub": "system:serviceaccount:default:openbao-auth",
            "kubernetes.io": {"namespace": "default", "serviceaccount": {"name": "openbao-auth", "uid": "uid-1"},
                              "secret": {"name": "openbao-auth-token-pd21c"}}});
        let body = request(s, json!({"jwt": sign(&keys.rsa, "RS256", &claims)}));
        b.send("POST", &path(s, &[]), None, Some(&body), &[]).await
    })
}

/// A renewable child of the root token living an hour, with the lookup
/// samples' metadata: `(token, accessor)`.
async fn child_token(b: &Bench<'_>) -> (String, String) {
    let body = json!({"policies": ["default"], "ttl": "1h", "meta": {"username": "tesla"}});
    let auth = b.setup("POST", "auth/token/create", body).await["auth"].clone();
    (auth["client_token"].as_str().unwrap().to_owned(), auth["accessor"].as_str().unwrap().to_owned())
}

/// token.json's calls: create as documented; the rest about a fresh child
/// token, named in the body (`token`, `accessor`) or used as the caller
/// (`-self`).
pub fn token_call<'a>(b: &'a Bench<'a>, s: &'a Sample) -> Fut<'a> {
    fut(async move {
        let method = s.entry["method"].as_str().unwrap();
        let api = path(s, &[]);
        if api == "auth/token/create" {
            return b.root(method, &api, Some(request(s, json!({})))).await;
        }
        let (token, accessor) = child_token(b).await;
        let body = match s.request() {
            Value::Null => None,
            r if r.get("token").is_some() => Some(request(s, json!({"token": token}))),
            r if r.get("accessor").is_some() => Some(request(s, json!({"accessor": accessor}))),
            _ => Some(request(s, json!({}))),
        };
        let caller = if api.ends_with("-self") { token.as_str() } else { ROOT };
        let answer = b.send(method, &api, Some(caller), body.as_ref(), &[]).await;
        if api.ends_with("-accessor") {
            let id = answer.body["data"]["id"].as_str().or(answer.body["auth"]["client_token"].as_str());
            b.check(id == Some(""), || format!("{api} must not reveal the token: {}", answer.body));
        }
        if api == "auth/token/lookup-self" {
            let lease = b.client(&token).lookup_self().await.unwrap();
            b.check(lease.ttl.as_secs() > 3000 && lease.renewable, || "client lookup_self".into());
        }
        if api == "auth/token/renew-self" {
            let lease = b.client(&token).renew_self(None).await.unwrap();
            b.check(lease.ttl.as_secs() > 3000 && lease.renewable, || "client renew_self".into());
        }
        answer
    })
}
