//! The Kubernetes auth method, validated locally with `pem_keys`.
//!
//! Real Vault sends the service-account JWT to the cluster's TokenReview
//! API; the dev server has no cluster, so it verifies the JWT's signature
//! against the `pem_keys` of the mount's config (which Vault also accepts)
//! and reads the service account from the claims, both legacy secret-based
//! tokens (`kubernetes.io/serviceaccount/...`) and projected ones
//! (`kubernetes.io: {namespace, serviceaccount}`). A role binds service
//! account names and namespaces (with `*` globs) and optionally an
//! audience. Failures are 403s in Vault's words ("service account name not
//! authorized", "namespace not authorized"); the answer's metadata follows
//! kubernetes.json.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::super::Request;
use super::super::response::Reply;
use super::super::token::string_list;
use super::super::util::weak_bool;
use super::jws::{self, PublicKey};
use super::jwt::{Leeways, audiences, verified_claims};
use super::{AuthOutcome, ConfigAndRoles, LoginGrant, MethodConfig, MethodRole, TokenParams, glob_match, str_field};

/// The issuer of legacy service-account tokens.
const LEGACY_ISSUER: &str = "kubernetes/serviceaccount";

/// One Kubernetes mount: config and roles.
pub(crate) type KubeAuth = ConfigAndRoles<Config>;

/// The mount's `config`: the cluster, and the keys that sign its tokens.
pub(crate) struct Config {
    host: String,
    ca_cert: String,
    pem_keys: Vec<String>,
    keys: Vec<PublicKey>,
    issuer: String,
    disable_iss_validation: bool,
}

/// A role: the service accounts and namespaces it admits.
#[derive(Clone, Default)]
pub(crate) struct Role {
    names: Vec<String>,
    namespaces: Vec<String>,
    audience: String,
    alias_name_source: String,
    token: TokenParams,
}

/// The service account a token speaks for.
struct ServiceAccount {
    name: String,
    namespace: String,
    uid: String,
    secret_name: String,
}

fn forbidden(message: &str) -> Reply {
    Reply::Errors(StatusCode::FORBIDDEN, vec![message.to_owned()])
}

impl MethodConfig for Config {
    type Role = Role;

    fn from_body(body: &Map<String, Value>) -> Result<Self, String> {
        let host = str_field(body, "kubernetes_host");
        if host.is_empty() {
            return Err("no host provided".into());
        }
        let pem_keys = string_list(body.get("pem_keys"))?;
        let keys = jws::parse_pem_list(&pem_keys)?;
        Ok(Config {
            host: host.to_owned(),
            ca_cert: str_field(body, "kubernetes_ca_cert").to_owned(),
            pem_keys,
            keys,
            issuer: str_field(body, "issuer").to_owned(),
            disable_iss_validation: body.get("disable_iss_validation").and_then(weak_bool).unwrap_or(true),
        })
    }

    fn to_json(&self) -> Reply {
        Reply::ok(json!({
            "kubernetes_host": self.host,
            "kubernetes_ca_cert": self.ca_cert,
            "pem_keys": self.pem_keys,
            "issuer": self.issuer,
            "disable_iss_validation": self.disable_iss_validation,
            "disable_local_ca_jwt": false,
        }))
    }

    /// `POST login` {role, jwt}.
    fn login(config: Option<&Self>, roles: &BTreeMap<String, Role>, req: &Request) -> AuthOutcome {
        let role_name = str_field(&req.data, "role");
        if role_name.is_empty() {
            return Reply::bad_request("missing role").into();
        }
        let token = str_field(&req.data, "jwt");
        if token.is_empty() {
            return Reply::bad_request("missing jwt").into();
        }
        let Some(role) = roles.get(role_name) else {
            return Reply::bad_request(format!("invalid role name {role_name:?}")).into();
        };
        let Some(config) = config else {
            return Reply::bad_request("could not load backend configuration").into();
        };
        if config.keys.is_empty() {
            return Reply::bad_request(
                "the rotator dev server cannot call the TokenReview API: set pem_keys in the auth method's config",
            )
            .into();
        }
        let sa = match validate(config, role, token, req) {
            Ok(sa) => sa,
            Err(reply) => return reply.into(),
        };
        let metadata = BTreeMap::from([
            ("role".to_owned(), role_name.to_owned()),
            ("service_account_name".to_owned(), sa.name.clone()),
            ("service_account_namespace".to_owned(), sa.namespace.clone()),
            ("service_account_secret_name".to_owned(), sa.secret_name),
            ("service_account_uid".to_owned(), sa.uid),
        ]);
        let display_name = format!("{}-{}", sa.namespace, sa.name);
        AuthOutcome::Login(LoginGrant { params: role.token.clone(), metadata, display_name })
    }
}

/// Signature, times, issuer and audience, then the role's bindings.
fn validate(config: &Config, role: &Role, token: &str, req: &Request) -> Result<ServiceAccount, Reply> {
    let no_leeway = Leeways { clock_skew: -1, expiration: -1, not_before: -1 };
    let claims =
        &verified_claims(token, &config.keys, &[], no_leeway, req.now).map_err(|_| Reply::permission_denied())?;
    if !config.disable_iss_validation {
        let expected = if config.issuer.is_empty() { LEGACY_ISSUER } else { config.issuer.as_str() };
        if claims.get("iss").and_then(Value::as_str) != Some(expected) {
            return Err(forbidden("invalid issuer (iss) claim"));
        }
    }
    if !role.audience.is_empty() && !audiences(claims).contains(&role.audience) {
        return Err(forbidden("invalid audience (aud) claim: audience claim does not match any expected audience"));
    }
    let sa = service_account(claims).ok_or_else(|| Reply::bad_request("missing service account claims in the JWT"))?;
    let allowed = |patterns: &[String], value: &str| patterns.iter().any(|p| glob_match(p, value));
    if !allowed(&role.names, &sa.name) {
        return Err(forbidden("service account name not authorized"));
    }
    if !allowed(&role.namespaces, &sa.namespace) {
        return Err(forbidden("namespace not authorized"));
    }
    Ok(sa)
}

/// The service account from legacy or projected token claims.
fn service_account(claims: &Map<String, Value>) -> Option<ServiceAccount> {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_owned();
    if let Some(k8s) = claims.get("kubernetes.io").and_then(Value::as_object) {
        let sa = k8s.get("serviceaccount").and_then(Value::as_object);
        return Some(ServiceAccount {
            name: text(sa.and_then(|s| s.get("name"))),
            namespace: text(k8s.get("namespace")),
            uid: text(sa.and_then(|s| s.get("uid"))),
            secret_name: String::new(),
        })
        .filter(|sa| !sa.name.is_empty() && !sa.namespace.is_empty());
    }
    let legacy = |key: &str| text(claims.get(&format!("kubernetes.io/serviceaccount/{key}")));
    Some(ServiceAccount {
        name: legacy("service-account.name"),
        namespace: legacy("namespace"),
        uid: legacy("service-account.uid"),
        secret_name: legacy("secret.name"),
    })
    .filter(|sa| !sa.name.is_empty() && !sa.namespace.is_empty())
}

impl MethodRole for Role {
    fn update_from(&mut self, body: &Map<String, Value>) -> Result<(), String> {
        if let Some(v) = body.get("bound_service_account_names") {
            self.names = string_list(Some(v))?;
        }
        if let Some(v) = body.get("bound_service_account_namespaces") {
            self.namespaces = string_list(Some(v))?;
        }
        if let Some(v) = body.get("audience").and_then(Value::as_str) {
            self.audience = v.to_owned();
        }
        if let Some(v) = body.get("alias_name_source").and_then(Value::as_str) {
            self.alias_name_source = v.to_owned();
        }
        self.token.update_from(body)?;
        if self.names.is_empty() {
            return Err("\"bound_service_account_names\" can not be empty".into());
        }
        if self.namespaces.is_empty() {
            return Err("\"bound_service_account_namespaces\" can not be empty".into());
        }
        Ok(())
    }

    fn to_json(&self) -> Reply {
        let mut out = Map::new();
        out.insert("bound_service_account_names".into(), json!(self.names));
        out.insert("bound_service_account_namespaces".into(), json!(self.namespaces));
        out.insert("audience".into(), json!(self.audience));
        let source = if self.alias_name_source.is_empty() { "serviceaccount_uid" } else { &self.alias_name_source };
        out.insert("alias_name_source".into(), json!(source));
        self.token.to_json(&mut out);
        Reply::ok(Value::Object(out))
    }
}
