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

use super::super::response::Reply;
use super::super::token::string_list;
use super::super::util::weak_bool;
use super::super::{Operation, Request};
use super::jws::{self, PublicKey};
use super::jwt::{Leeways, audiences, check_times};
use super::{AuthOutcome, LoginGrant, TokenParams, glob_match, str_field, valid_name};

/// The issuer of legacy service-account tokens.
const LEGACY_ISSUER: &str = "kubernetes/serviceaccount";

/// One Kubernetes mount: config and roles.
#[derive(Default)]
pub(crate) struct KubeAuth {
    config: Option<Config>,
    roles: BTreeMap<String, Role>,
}

struct Config {
    host: String,
    ca_cert: String,
    pem_keys: Vec<String>,
    keys: Vec<PublicKey>,
    issuer: String,
    disable_iss_validation: bool,
}

#[derive(Clone, Default)]
struct Role {
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

impl KubeAuth {
    /// Answer `auth/<mount>/<rest>`.
    pub fn handle(&mut self, rest: &str, req: &Request) -> AuthOutcome {
        let reply = match (rest, req.op) {
            ("login", Operation::Write) => return self.login(req),
            ("config", Operation::Read) => self.config.as_ref().map_or_else(Reply::not_found, Config::to_json),
            ("config", Operation::Write) => self.write_config(&req.data),
            ("role/", Operation::List) => Reply::list(self.roles.keys().cloned().collect()),
            _ => match rest.strip_prefix("role/") {
                Some(name) if !valid_name(name) => Reply::bad_request(format!("invalid role name {name:?}")),
                Some(name) => match req.op {
                    Operation::Read => self.roles.get(name).map_or_else(Reply::not_found, Role::to_json),
                    Operation::Write => self.write_role(name, &req.data),
                    Operation::Delete => {
                        self.roles.remove(name);
                        Reply::NoContent
                    }
                    _ => Reply::unsupported_operation(),
                },
                None => Reply::unsupported_path(),
            },
        };
        reply.into()
    }

    fn write_config(&mut self, body: &Map<String, Value>) -> Reply {
        let host = str_field(body, "kubernetes_host");
        if host.is_empty() {
            return Reply::bad_request("no host provided");
        }
        let pem_keys = match string_list(body.get("pem_keys")) {
            Ok(keys) => keys,
            Err(e) => return Reply::bad_request(e),
        };
        let mut keys = Vec::new();
        for pem in &pem_keys {
            match jws::parse_pem_keys(pem) {
                Ok(parsed) => keys.extend(parsed),
                Err(e) => return Reply::bad_request(format!("error parsing public key: {e}")),
            }
        }
        self.config = Some(Config {
            host: host.to_owned(),
            ca_cert: str_field(body, "kubernetes_ca_cert").to_owned(),
            pem_keys,
            keys,
            issuer: str_field(body, "issuer").to_owned(),
            disable_iss_validation: body.get("disable_iss_validation").and_then(weak_bool).unwrap_or(true),
        });
        Reply::NoContent
    }

    fn write_role(&mut self, name: &str, body: &Map<String, Value>) -> Reply {
        let mut role = self.roles.get(name).cloned().unwrap_or_default();
        let result = (|| -> Result<(), String> {
            if let Some(v) = body.get("bound_service_account_names") {
                role.names = string_list(Some(v))?;
            }
            if let Some(v) = body.get("bound_service_account_namespaces") {
                role.namespaces = string_list(Some(v))?;
            }
            if let Some(v) = body.get("audience").and_then(Value::as_str) {
                role.audience = v.to_owned();
            }
            if let Some(v) = body.get("alias_name_source").and_then(Value::as_str) {
                role.alias_name_source = v.to_owned();
            }
            role.token.update_from(body)?;
            if role.names.is_empty() {
                return Err("\"bound_service_account_names\" can not be empty".into());
            }
            if role.namespaces.is_empty() {
                return Err("\"bound_service_account_namespaces\" can not be empty".into());
            }
            Ok(())
        })();
        match result {
            Ok(()) => {
                self.roles.insert(name.to_owned(), role);
                Reply::NoContent
            }
            Err(e) => Reply::bad_request(e),
        }
    }

    /// `POST login` {role, jwt}.
    fn login(&self, req: &Request) -> AuthOutcome {
        let role_name = str_field(&req.data, "role");
        if role_name.is_empty() {
            return Reply::bad_request("missing role").into();
        }
        let token = str_field(&req.data, "jwt");
        if token.is_empty() {
            return Reply::bad_request("missing jwt").into();
        }
        let Some(role) = self.roles.get(role_name) else {
            return Reply::bad_request(format!("invalid role name {role_name:?}")).into();
        };
        let Some(config) = &self.config else {
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
    let jwt = jws::decode(token).map_err(|_| Reply::permission_denied())?;
    jwt.verify(&config.keys, &[]).map_err(|_| Reply::permission_denied())?;
    let claims = &jwt.claims;
    check_times(claims, Leeways { clock_skew: -1, expiration: -1, not_before: -1 }, req.now)
        .map_err(|_| Reply::permission_denied())?;
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

impl Config {
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
}

impl Role {
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
