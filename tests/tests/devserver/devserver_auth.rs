//! Auth methods on the dev server, over real HTTP: AppRole end to end, and
//! JWT and Kubernetes logins with tokens signed at test time by the
//! `openssl` CLI (RS256 and ES256), including the failures a client must
//! see (bad signature, wrong audience, expired, unbound claims). Login
//! answers are checked against approle.json, jwt.json and kubernetes.json.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use rotator_tests::jwt::{keys, now, sign};
use rotator_tests::{Dev, ROOT};
use serde_json::{Value, json};

const APPROLE: &str = include_str!("../../../../shared/contracts/vault/approle.json");
const JWT: &str = include_str!("../../../../shared/contracts/vault/jwt.json");
const KUBERNETES: &str = include_str!("../../../../shared/contracts/vault/kubernetes.json");

/// The auth tests' own shorthands on the shared [`Dev`].
trait AuthDev {
    /// A root call that must succeed.
    async fn setup(&self, method: &str, path: &str, body: Value) -> Value;
    /// An unauthenticated login call.
    async fn login(&self, path: &str, body: Value) -> (u16, Value);
}

impl AuthDev for Dev {
    async fn setup(&self, method: &str, path: &str, body: Value) -> Value {
        let (status, answer) = self.root(method, path, Some(body)).await;
        assert!(status == 200 || status == 204, "{method} {path}: {status} {answer}");
        answer
    }

    async fn login(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(None, "POST", path, Some(body)).await
    }
}

async fn start() -> Dev {
    Dev::start().await
}

fn sample(file: &str, path: &str) -> Value {
    let entries: Vec<Value> = serde_json::from_str(file).unwrap();
    entries.into_iter().find(|e| e["path"] == path).unwrap()["response"].clone()
}

fn assert_has_keys(actual: &Value, documented: &Value, what: &str) {
    let keys = |v: &Value| -> BTreeSet<String> { v.as_object().unwrap().keys().cloned().collect() };
    let missing: Vec<_> = keys(documented).difference(&keys(actual)).cloned().collect();
    assert!(missing.is_empty(), "{what}: missing documented keys {missing:?} in {actual}");
}

#[tokio::test]
async fn approle_role_secret_id_login_and_disable() {
    let dev = start().await;
    dev.setup("POST", "sys/auth/approle", json!({"type": "approle"})).await;
    let (_, auths) = dev.call(Some(ROOT), "GET", "sys/auth", None).await;
    assert_eq!(auths["data"]["approle/"]["type"], "approle");
    dev.setup(
        "PUT",
        "sys/policies/acl/app-read",
        json!({"policy": "path \"secret/data/app/*\" { capabilities = [\"read\"] }"}),
    )
    .await;
    dev.setup("POST", "secret/data/app/db", json!({"data": {"password": "s3cret"}})).await;
    let role =
        json!({"token_policies": ["app-read"], "token_ttl": "20m", "token_max_ttl": "1h", "secret_id_num_uses": 2});
    dev.setup("POST", "auth/approle/role/web", role).await;
    let (_, read) = dev.call(Some(ROOT), "GET", "auth/approle/role/web", None).await;
    assert_eq!(
        (read["data"]["token_ttl"].as_u64(), read["data"]["bind_secret_id"].as_bool()),
        (Some(1200), Some(true))
    );

    let role_id = dev.setup("GET", "auth/approle/role/web/role-id", Value::Null).await;
    assert_has_keys(&role_id, &sample(APPROLE, "/v1/auth/approle/role/:role_name/role-id"), "role-id");
    let role_id = role_id["data"]["role_id"].as_str().unwrap().to_owned();
    let generated =
        dev.setup("POST", "auth/approle/role/web/secret-id", json!({"metadata": "{\"tag\":\"blue\"}"})).await;
    let documented = sample(APPROLE, "/v1/auth/approle/role/:role_name/secret-id");
    assert_has_keys(&generated, &documented, "secret-id envelope");
    assert_has_keys(&generated["data"], &documented["data"], "secret-id data");
    assert_eq!(generated["data"]["secret_id_num_uses"], 2);
    let secret_id = generated["data"]["secret_id"].as_str().unwrap().to_owned();

    let creds = json!({"role_id": role_id, "secret_id": secret_id});
    let (status, login) = dev.login("auth/approle/login", creds.clone()).await;
    assert_eq!(status, 200, "{login}");
    let documented = sample(APPROLE, "/v1/auth/approle/login");
    assert_has_keys(&login, &documented, "login envelope");
    assert_has_keys(&login["auth"], &documented["auth"], "login auth");
    let auth = &login["auth"];
    assert_eq!((auth["lease_duration"].as_u64(), auth["renewable"].as_bool()), (Some(1200), Some(true)));
    assert_eq!(auth["token_policies"], json!(["app-read", "default"]));
    assert_eq!(auth["metadata"], json!({"role_name": "web", "tag": "blue"}));
    assert_eq!(auth["orphan"], true);
    let token = auth["client_token"].as_str().unwrap().to_owned();
    let (status, read) = dev.call(Some(&token), "GET", "secret/data/app/db", None).await;
    assert_eq!((status, read["data"]["data"]["password"].as_str()), (200, Some("s3cret")));
    let (status, renewed) =
        dev.call(Some(&token), "POST", "auth/token/renew-self", Some(json!({"increment": "2h"}))).await;
    assert_eq!(status, 200, "the default policy allows renew-self");
    assert!(renewed["auth"]["lease_duration"].as_u64().unwrap() <= 3600, "token_max_ttl caps it: {renewed}");
    let (_, own) = dev.call(Some(&token), "GET", "auth/token/lookup-self", None).await;
    assert_eq!(
        (own["data"]["path"].as_str(), own["data"]["display_name"].as_str()),
        (Some("auth/approle/login"), Some("approle"))
    );

    assert_eq!(dev.login("auth/approle/login", creds.clone()).await.0, 200, "second of two uses");
    let (status, body) = dev.login("auth/approle/login", creds).await;
    assert_eq!((status, body), (400, json!({"errors": ["invalid role or secret ID"]})), "used up");
    let (status, body) = dev.login("auth/approle/login", json!({"role_id": role_id, "secret_id": "wrong"})).await;
    assert_eq!((status, body), (400, json!({"errors": ["invalid role or secret ID"]})));
    let (status, body) = dev.login("auth/approle/login", json!({"secret_id": "x"})).await;
    assert_eq!((status, body), (400, json!({"errors": ["missing role_id"]})));

    dev.setup("POST", "auth/approle/role/web/role-id", json!({"role_id": "my-custom-id"})).await;
    let custom = dev.setup("POST", "auth/approle/role/web/custom-secret-id", json!({"secret_id": "chosen"})).await;
    assert_eq!(custom["data"]["secret_id"], "chosen");
    let (status, _) = dev.login("auth/approle/login", json!({"role_id": "my-custom-id", "secret_id": "chosen"})).await;
    assert_eq!(status, 200);

    assert_eq!(dev.call(Some(ROOT), "DELETE", "sys/auth/approle", None).await.0, 204);
    assert_eq!(dev.call(Some(&token), "GET", "auth/token/lookup-self", None).await.0, 403, "its tokens went with it");
    assert_eq!(dev.login("auth/approle/login", json!({"role_id": "my-custom-id"})).await.0, 403, "no method, no login");
}

#[tokio::test]
async fn jwt_logins_check_signature_audience_expiry_and_claims() {
    let keys = keys().expect("the openssl CLI signs the test JWTs; ./scripts/test.sh installs it");
    let dev = start().await;
    dev.setup("POST", "sys/auth/jwt", json!({"type": "jwt"})).await;
    let config = json!({"jwt_validation_pubkeys": [keys.rsa_pub, keys.ec_pub], "bound_issuer": "https://issuer.test"});
    dev.setup("POST", "auth/jwt/config", config).await;
    let role = json!({
        "role_type": "jwt", "user_claim": "sub", "bound_audiences": ["rotator"],
        "bound_claims": {"team": ["ops", "sec"]}, "token_policies": ["ci"], "token_ttl": "10m",
        "claim_mappings": {"team": "team"},
    });
    dev.setup("POST", "auth/jwt/role/ci", role).await;
    let claims = |overrides: Value| {
        let mut base = json!({"iss": "https://issuer.test", "sub": "pipeline-7", "aud": "rotator", "team": "ops",
                              "iat": now(), "nbf": now() - 5, "exp": now() + 300});
        for (k, v) in overrides.as_object().unwrap() {
            base[k] = v.clone();
        }
        base
    };
    let login = |jwt: String| json!({"role": "ci", "jwt": jwt});

    let (status, body) = dev.login("auth/jwt/login", login(sign(&keys.rsa, "RS256", &claims(json!({}))))).await;
    assert_eq!(status, 200, "{body}");
    assert_has_keys(&body["auth"], &sample(JWT, "/v1/auth/jwt/login")["auth"], "jwt login auth");
    assert_eq!(body["auth"]["policies"], json!(["ci", "default"]));
    assert_eq!(body["auth"]["lease_duration"], 600);
    assert_eq!(body["auth"]["metadata"], json!({"role": "ci", "team": "ops"}));
    let token = body["auth"]["client_token"].as_str().unwrap().to_owned();
    let (_, own) = dev.call(Some(&token), "GET", "auth/token/lookup-self", None).await;
    assert_eq!(own["data"]["display_name"], "jwt-pipeline-7");
    let ec = sign(&keys.ec, "ES256", &claims(json!({"team": "sec", "aud": ["other", "rotator"]})));
    assert_eq!(dev.login("auth/jwt/login", login(ec)).await.0, 200, "ES256 works too");

    let failures = [
        (
            sign(&keys.other_rsa, "RS256", &claims(json!({}))),
            "error validating token: failed to verify id token signature",
        ),
        (
            sign(&keys.rsa, "RS256", &claims(json!({"aud": "someone-else"}))),
            "audience claim does not match any expected audience",
        ),
        (sign(&keys.rsa, "RS256", &claims(json!({"exp": now() - 3600}))), "token is expired"),
        (sign(&keys.rsa, "RS256", &claims(json!({"iss": "https://evil.test"}))), "invalid issuer"),
        (
            sign(&keys.rsa, "RS256", &claims(json!({"team": "dev"}))),
            "error validating claims: claim \"team\" does not match any associated bound claim values",
        ),
    ];
    for (jwt, expected) in failures {
        let (status, body) = dev.login("auth/jwt/login", login(jwt)).await;
        assert_eq!(status, 400, "{body}");
        assert!(body["errors"][0].as_str().unwrap().contains(expected), "want {expected:?}: {body}");
    }
    let mut tampered = sign(&keys.rsa, "RS256", &claims(json!({})));
    tampered.insert_str(tampered.find('.').unwrap() + 1, "eyJ0ZWFtIjoib3BzIn0");
    assert_eq!(dev.login("auth/jwt/login", login(tampered)).await.0, 400);
    let (status, body) = dev.login("auth/jwt/login", json!({"role": "nope", "jwt": "x.y.z"})).await;
    assert_eq!((status, body), (400, json!({"errors": ["role \"nope\" could not be found"]})));
}

#[tokio::test]
async fn kubernetes_logins_bind_service_accounts() {
    let keys = keys().expect("the openssl CLI signs the test JWTs; ./scripts/test.sh installs it");
    let dev = start().await;
    dev.setup("POST", "sys/auth/k8s", json!({"type": "kubernetes"})).await;
    dev.setup(
        "POST",
        "auth/k8s/config",
        json!({"kubernetes_host": "https://k8s.test", "pem_keys": [keys.ec_pub, keys.rsa_pub]}),
    )
    .await;
    let role = json!({"bound_service_account_names": ["app-*"], "bound_service_account_namespaces": ["prod"],
                      "token_policies": ["app"], "token_ttl": "1h", "audience": "vault"});
    dev.setup("POST", "auth/k8s/role/app", role).await;
    let token = |namespace: &str, exp: i64, key: &Path, alg: &str| {
        let claims = json!({"iss": "https://kubernetes.default.svc", "aud": ["vault"], "exp": exp, "iat": now(),
            "sub": format!("system:serviceaccount:{namespace}:app-api"),
            "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": "app-api", "uid": "uid-1"}}});
        json!({"role": "app", "jwt": sign(key, alg, &claims)})
    };

    let (status, body) = dev.login("auth/k8s/login", token("prod", now() + 600, &keys.rsa, "RS256")).await;
    assert_eq!(status, 200, "{body}");
    let documented = sample(KUBERNETES, "/v1/auth/kubernetes/login")["auth"].clone();
    assert_has_keys(&body["auth"], &documented, "kubernetes login auth");
    assert_has_keys(&body["auth"]["metadata"], &documented["metadata"], "kubernetes login metadata");
    assert_eq!(body["auth"]["metadata"]["service_account_name"], "app-api");
    assert_eq!(
        (body["auth"]["lease_duration"].as_u64(), body["auth"]["policies"].clone()),
        (Some(3600), json!(["app", "default"]))
    );
    assert_eq!(dev.login("auth/k8s/login", token("prod", now() + 600, &keys.ec, "ES256")).await.0, 200);

    let (status, body) = dev.login("auth/k8s/login", token("dev", now() + 600, &keys.rsa, "RS256")).await;
    assert_eq!((status, body), (403, json!({"errors": ["namespace not authorized"]})));
    let (status, _) = dev.login("auth/k8s/login", token("prod", now() + 600, &keys.other_rsa, "RS256")).await;
    assert_eq!(status, 403, "bad signature");
    let (status, _) = dev.login("auth/k8s/login", token("prod", now() - 60, &keys.rsa, "RS256")).await;
    assert_eq!(status, 403, "expired");
    let (status, body) = dev.login("auth/k8s/login", json!({"role": "ghost", "jwt": "a.b.c"})).await;
    assert_eq!((status, body), (400, json!({"errors": ["invalid role name \"ghost\""]})));
}

/// rotator's own client logs in with the Kubernetes and JWT methods as the
/// daemon would: credentials read from files at login time.
#[tokio::test]
async fn the_client_logs_in_with_kubernetes_and_jwt_credentials_from_files() {
    use rotator_core::config::SecretRef;
    use rotator_core::vault::{AuthMethod, VaultClient, VaultOptions};

    let keys = keys().expect("the openssl CLI signs the test JWTs; ./scripts/test.sh installs it");
    let dev = start().await;
    dev.setup("POST", "sys/auth/kubernetes", json!({"type": "kubernetes"})).await;
    dev.setup(
        "POST",
        "auth/kubernetes/config",
        json!({"kubernetes_host": "https://k8s.test", "pem_keys": [keys.rsa_pub]}),
    )
    .await;
    let role = json!({"bound_service_account_names": ["rotator"], "bound_service_account_namespaces": ["ops"],
                      "token_policies": ["rotator"], "token_ttl": "20m"});
    dev.setup("POST", "auth/kubernetes/role/rotator", role).await;
    dev.setup("POST", "sys/auth/jwt", json!({"type": "jwt"})).await;
    dev.setup("POST", "auth/jwt/config", json!({"jwt_validation_pubkeys": [keys.ec_pub]})).await;
    let role = json!({"role_type": "jwt", "user_claim": "sub", "bound_audiences": ["vault"],
                      "token_policies": ["rotator"], "token_ttl": "5m"});
    dev.setup("POST", "auth/jwt/role/rotator", role).await;

    let dir = tempfile::tempdir().unwrap();
    let sa = json!({"iss": "https://kubernetes.default.svc", "aud": ["vault"], "exp": now() + 600, "iat": now(),
        "sub": "system:serviceaccount:ops:rotator",
        "kubernetes.io": {"namespace": "ops", "serviceaccount": {"name": "rotator", "uid": "uid-9"}}});
    std::fs::write(dir.path().join("sa-token"), sign(&keys.rsa, "RS256", &sa)).unwrap();
    let ci = json!({"sub": "rotator", "aud": "vault", "iat": now(), "exp": now() + 600});
    std::fs::write(dir.path().join("ci.jwt"), sign(&keys.ec, "ES256", &ci)).unwrap();

    let client = VaultClient::new(VaultOptions::new(dev.server.url(), "".to_owned().into())).unwrap();
    let k8s =
        AuthMethod::Kubernetes { mount: "kubernetes".into(), role: "rotator".into(), jwt_path: "sa-token".into() };
    let lease = k8s.login(&client, dir.path()).await.unwrap().expect("kubernetes can log in");
    assert_eq!((lease.ttl, lease.renewable), (Duration::from_secs(1200), true));
    assert_eq!(client.lookup_self().await.unwrap().policies, vec!["default", "rotator"]);

    let jwt = AuthMethod::Jwt { mount: "jwt".into(), role: "rotator".into(), jwt: SecretRef::File("ci.jwt".into()) };
    let lease = jwt.login(&client, dir.path()).await.unwrap().expect("jwt can log in");
    assert_eq!(lease.ttl, Duration::from_secs(300));
    assert!(client.lookup_self().await.is_ok());
    // The token method cannot log in; a missing credential file is a clear error.
    assert!(AuthMethod::Token.login(&client, dir.path()).await.unwrap().is_none());
    let missing = AuthMethod::Jwt { mount: "jwt".into(), role: "rotator".into(), jwt: SecretRef::File("nope".into()) };
    let err = missing.login(&client, dir.path()).await.unwrap_err();
    assert!(err.to_string().contains("cannot read"), "{err}");
}
