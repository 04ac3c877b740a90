//! Tokens and ACL policies on the dev server, over real HTTP: what a Vault
//! client sees when it creates, looks up, renews and revokes tokens, and
//! when its policies allow or deny a request. Shapes are checked against
//! `shared/contracts/vault/token.json` and `errors.json`.

use std::collections::BTreeSet;
use std::time::Duration;

use rotator_tests::{Dev, ROOT};
use serde_json::{Value, json};

const TOKEN: &str = include_str!("../../../../shared/contracts/vault/token.json");
const ERRORS: &str = include_str!("../../../../shared/contracts/vault/errors.json");

async fn start() -> Dev {
    Dev::start().await
}

/// The token tests' own shorthands on the shared [`Dev`].
trait TokenDev {
    /// A call made with `token`.
    async fn call_as(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value);
    /// A new token with `body` as the create request; answers its auth block.
    async fn token(&self, parent: &str, body: Value) -> Value;
    /// Write an ACL policy as root.
    async fn policy(&self, name: &str, hcl: &str);
}

impl TokenDev for Dev {
    async fn call_as(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call(Some(token), method, path, body).await
    }

    async fn token(&self, parent: &str, body: Value) -> Value {
        let (status, answer) = self.call_as(parent, "POST", "auth/token/create", Some(body)).await;
        assert_eq!(status, 200, "{answer}");
        answer["auth"].clone()
    }

    async fn policy(&self, name: &str, hcl: &str) {
        let (status, body) =
            self.root("PUT", &format!("sys/policies/acl/{name}"), Some(json!({ "policy": hcl }))).await;
        assert_eq!(status, 204, "{body}");
    }
}

fn sample(file: &str, method: &str, path: &str) -> Value {
    let entries: Vec<Value> = serde_json::from_str(file).unwrap();
    entries.into_iter().find(|e| e["method"] == method && e["path"] == path).unwrap()["response"].clone()
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap_or_else(|| panic!("not an object: {v}")).keys().cloned().collect()
}

fn assert_has_keys(actual: &Value, documented: &Value, what: &str) {
    let missing: Vec<_> = keys(documented).difference(&keys(actual)).cloned().collect();
    assert!(missing.is_empty(), "{what}: missing documented keys {missing:?} in {actual}");
}

fn denied() -> Value {
    let entries: Vec<Value> = serde_json::from_str(ERRORS).unwrap();
    entries.into_iter().find(|e| e["response_status"] == 403 && !e["response"].is_null()).unwrap()["response"].clone()
}

fn secret(token: &Value) -> String {
    token["client_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn tokens_are_created_looked_up_and_carry_the_documented_shape() {
    let dev = start().await;
    let documented = sample(TOKEN, "POST", "/v1/auth/token/create");
    let (status, body) = dev.root("POST", "auth/token/create", Some(documented_request())).await;
    assert_eq!(status, 200);
    assert_has_keys(&body, &documented, "create envelope");
    assert_has_keys(&body["auth"], &documented["auth"], "create auth");
    assert_eq!(body["warnings"], documented["warnings"], "unknown policies are warned about, sorted");
    let auth = &body["auth"];
    assert_eq!(auth["policies"], json!(["default", "stage", "web"]));
    assert_eq!((auth["lease_duration"].as_u64(), auth["renewable"].as_bool()), (Some(3600), Some(true)));
    assert_eq!((auth["orphan"].as_bool(), auth["token_type"].as_str()), (Some(false), Some("service")));
    assert_eq!(auth["metadata"], json!({"user": "armon"}));
    let token = secret(auth);
    assert!(token.starts_with("hvs.") && token.len() > 20);

    let (status, looked) = dev.root("POST", "auth/token/lookup", Some(json!({ "token": token }))).await;
    assert_eq!(status, 200);
    assert_has_keys(&looked["data"], &sample(TOKEN, "POST", "/v1/auth/token/lookup")["data"], "lookup");
    assert_eq!(
        (looked["data"]["id"].as_str(), looked["data"]["display_name"].as_str()),
        (Some(&*token), Some("token"))
    );
    let (status, own) = dev.call_as(&token, "GET", "auth/token/lookup-self", None).await;
    assert_eq!(status, 200, "the default policy allows lookup-self");
    assert_eq!(own["data"]["accessor"], auth["accessor"]);
    let (_, by_accessor) =
        dev.root("POST", "auth/token/lookup-accessor", Some(json!({ "accessor": auth["accessor"] }))).await;
    assert_eq!(by_accessor["data"]["id"], "", "never reveal the token by accessor");
    let (status, body) = dev.root("POST", "auth/token/lookup", Some(json!({ "token": "hvs.nope" }))).await;
    assert_eq!((status, body), (403, json!({"errors": ["bad token"]})));
}

fn documented_request() -> Value {
    let entries: Vec<Value> = serde_json::from_str(TOKEN).unwrap();
    entries.into_iter().find(|e| e["path"] == "/v1/auth/token/create").unwrap()["request"].clone()
}

#[tokio::test]
async fn renewal_is_capped_by_the_max_ttl_with_vaults_warning() {
    let dev = start().await;
    let auth = dev.token(ROOT, json!({"ttl": "30s", "explicit_max_ttl": "2m"})).await;
    let token = secret(&auth);
    let (status, body) = dev.call_as(&token, "POST", "auth/token/renew-self", Some(json!({"increment": "1m"}))).await;
    assert_eq!((status, body["auth"]["lease_duration"].as_u64()), (200, Some(60)));
    assert_has_keys(&body["auth"], &sample(TOKEN, "POST", "/v1/auth/token/renew-self")["auth"], "renew-self auth");
    assert!(body["warnings"].is_null());
    let (status, body) = dev.call_as(&token, "POST", "auth/token/renew-self", Some(json!({"increment": "1h"}))).await;
    assert_eq!(status, 200, "capping is not an error: {body}");
    let capped = body["auth"]["lease_duration"].as_u64().unwrap();
    assert!((118..=120).contains(&capped), "{body}");
    let left = if capped == 120 { "2m".to_owned() } else { format!("1m{}s", capped - 60) };
    let expected =
        format!("TTL of \"1h\" exceeded the effective max_ttl of \"{left}\"; TTL value is capped accordingly");
    assert_eq!(body["warnings"], json!([expected]));
    let (status, body) = dev.root("POST", "auth/token/renew", Some(json!({"token": token, "increment": 10}))).await;
    assert_eq!((status, body["auth"]["lease_duration"].as_u64()), (200, Some(10)), "seconds work too");

    let periodic = secret(&dev.token(ROOT, json!({"period": "10m", "ttl": "1m"})).await);
    let (_, body) = dev.call_as(&periodic, "POST", "auth/token/renew-self", Some(json!({"increment": "5s"}))).await;
    assert_eq!(body["auth"]["lease_duration"], 600, "periodic tokens renew to their period");
    let fixed = secret(&dev.token(ROOT, json!({"ttl": "1m", "renewable": false})).await);
    let (status, body) = dev.call_as(&fixed, "POST", "auth/token/renew-self", None).await;
    assert_eq!((status, body), (400, json!({"errors": ["lease is not renewable"]})));
    let (status, body) = dev.root("POST", "auth/token/renew-self", None).await;
    assert_eq!((status, body), (400, json!({"errors": ["lease is not renewable"]})), "the root token has no TTL");
}

#[tokio::test]
async fn revoking_a_token_revokes_its_children_and_expiry_is_enforced() {
    let dev = start().await;
    dev.policy("minter", r#"path "auth/token/create" { capabilities = ["update"] }"#).await;
    let parent = secret(&dev.token(ROOT, json!({"policies": ["minter"], "ttl": "1h"})).await);
    let child_auth = dev.token(&parent, json!({})).await;
    assert_eq!(child_auth["policies"], json!(["default", "minter"]), "children inherit the policies");
    let child = secret(&child_auth);
    let grandchild = secret(&dev.token(&child, json!({"policies": ["default"]})).await);
    let (status, body) = dev.call_as(&child, "POST", "auth/token/create", Some(json!({"policies": ["root"]}))).await;
    assert_eq!((status, body), (400, json!({"errors": ["child policies must be subset of parent"]})));
    let (status, _) = dev.call_as(&child, "POST", "auth/token/create", Some(json!({"no_parent": true}))).await;
    assert_eq!(status, 400, "orphans need sudo");

    let (status, _) = dev.root("POST", "auth/token/revoke", Some(json!({ "token": parent }))).await;
    assert_eq!(status, 204);
    for token in [&parent, &child, &grandchild] {
        let (status, body) = dev.call_as(token, "GET", "auth/token/lookup-self", None).await;
        assert_eq!((status, body), (403, denied()), "the whole tree is gone");
    }

    let orphan_parent = secret(&dev.token(ROOT, json!({"policies": ["minter"]})).await);
    let kept = secret(&dev.token(&orphan_parent, json!({})).await);
    let (status, _) = dev.root("POST", "auth/token/revoke-orphan", Some(json!({ "token": orphan_parent }))).await;
    assert_eq!(status, 204);
    let (status, body) = dev.call_as(&kept, "GET", "auth/token/lookup-self", None).await;
    assert_eq!((status, body["data"]["orphan"].as_bool()), (200, Some(true)), "revoke-orphan keeps the children");
    let accessor = dev.token(ROOT, json!({})).await["accessor"].clone();
    let (status, _) = dev.root("POST", "auth/token/revoke-accessor", Some(json!({ "accessor": accessor }))).await;
    assert_eq!(status, 204);
    let (status, _) = dev.root("POST", "auth/token/lookup-accessor", Some(json!({ "accessor": accessor }))).await;
    assert_eq!(status, 400);

    let limited = secret(&dev.token(ROOT, json!({"num_uses": 2})).await);
    assert_eq!(dev.call_as(&limited, "GET", "auth/token/lookup-self", None).await.0, 200);
    let (_, body) = dev.call_as(&limited, "GET", "auth/token/lookup-self", None).await;
    assert_eq!(body["data"]["num_uses"], 1, "a use was spent on the first call");
    assert_eq!(dev.call_as(&limited, "GET", "auth/token/lookup-self", None).await.0, 403, "uses are counted");

    let brief = secret(&dev.token(ROOT, json!({"ttl": "1s"})).await);
    assert_eq!(dev.call_as(&brief, "GET", "auth/token/lookup-self", None).await.0, 200);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let (status, body) = dev.call_as(&brief, "GET", "auth/token/lookup-self", None).await;
    assert_eq!((status, body), (403, denied()), "an expired token is refused");
    let (status, _) = dev.root("POST", "auth/token/lookup", Some(json!({ "token": brief }))).await;
    assert_eq!(status, 403);

    let (status, _) = dev.call_as(&kept, "POST", "auth/token/revoke-self", None).await;
    assert_eq!(status, 204);
    assert_eq!(dev.call_as(&kept, "GET", "auth/token/lookup-self", None).await.0, 403);
}

#[tokio::test]
async fn policies_grant_read_deny_writes_and_match_like_vault() {
    let dev = start().await;
    dev.root("POST", "secret/data/app/db", Some(json!({"data": {"password": "p"}}))).await;
    dev.root("POST", "secret/data/app/locked", Some(json!({"data": {"k": "v"}}))).await;
    dev.root("POST", "secret/data/team-a/config", Some(json!({"data": {"k": "v"}}))).await;
    let readonly = r#"
        # the app may read its secrets
        path "secret/data/app/*" { capabilities = ["read", "list"] }
        path "secret/data/+/config" { capabilities = ["read"] }
        path "secret/data/new/*" { capabilities = ["create"] }
    "#;
    dev.policy("readonly", readonly).await;
    dev.policy("no-locked", r#"path "secret/data/app/locked" { capabilities = ["deny"] }"#).await;
    dev.policy("also-locked", r#"path "secret/data/app/locked" { capabilities = ["read"] }"#).await;
    let token = secret(&dev.token(ROOT, json!({"policies": ["readonly", "no-locked", "also-locked"]})).await);

    let (status, body) = dev.call_as(&token, "GET", "secret/data/app/db", None).await;
    assert_eq!((status, body["data"]["data"]["password"].as_str()), (200, Some("p")));
    let write = json!({"data": {"password": "x"}});
    let (status, body) = dev.call_as(&token, "POST", "secret/data/app/db", Some(write.clone())).await;
    assert_eq!((status, body), (403, denied()), "read-only: the exact documented 403 body");
    assert_eq!(dev.call_as(&token, "GET", "secret/data/app/locked", None).await.0, 403, "deny wins on its path");
    assert_eq!(dev.call_as(&token, "GET", "secret/data/team-a/config", None).await.0, 200, "'+' is one segment");
    assert_eq!(dev.call_as(&token, "GET", "secret/data/team-a/b/config", None).await.0, 403, "but only one");
    assert_eq!(dev.call_as(&token, "GET", "sys/mounts", None).await.0, 403);
    let preflight = dev.call_as(&token, "GET", "sys/internal/ui/mounts/secret/app/db", None).await;
    assert_eq!(preflight.0, 200, "the vault CLI's kv preflight works for any token");
    assert_eq!(dev.call_as(&token, "POST", "secret/data/new/x", Some(write.clone())).await.0, 200, "create allowed");
    assert_eq!(dev.call_as(&token, "POST", "secret/data/new/x", Some(write)).await.0, 403, "update is not create");

    let (status, body) =
        dev.call_as(&token, "POST", "sys/capabilities-self", Some(json!({"paths": ["secret/data/app/db"]}))).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["capabilities"], json!(["list", "read"]));
    assert_eq!(body["capabilities"], json!(["list", "read"]), "copied to the top level like Vault");

    let (_, body) = dev.root("GET", "sys/policies/acl/readonly", None).await;
    assert_eq!((body["data"]["name"].as_str(), body["data"]["policy"].as_str()), (Some("readonly"), Some(readonly)));
    let (_, body) = dev.root("GET", "sys/policy", None).await;
    assert!(body["data"]["policies"].as_array().unwrap().contains(&json!("root")));
    assert_eq!(body["keys"], body["data"]["keys"]);
    let (status, body) = dev.root("LIST", "sys/policies/acl", None).await;
    assert_eq!(status, 200);
    assert!(body["data"]["keys"].as_array().unwrap().contains(&json!("default")));
    let (status, body) =
        dev.root("PUT", "sys/policy/bad", Some(json!({"policy": "path \"x\" { capabilities = [\"fly\"] }"}))).await;
    assert_eq!(status, 400);
    assert!(body["errors"][0].as_str().unwrap().starts_with("failed to parse policy"), "{body}");
    let (status, body) = dev.root("DELETE", "sys/policies/acl/default", None).await;
    assert_eq!((status, body), (400, json!({"errors": ["cannot delete default policy"]})));
    assert_eq!(dev.root("DELETE", "sys/policies/acl/readonly", None).await.0, 204);
    assert_eq!(dev.call_as(&token, "GET", "secret/data/app/db", None).await.0, 403, "a deleted policy grants nothing");
}
