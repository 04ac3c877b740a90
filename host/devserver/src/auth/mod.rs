//! Auth methods: AppRole, JWT, Kubernetes and userpass, mounted under `auth/`.
//!
//! Each method is an engine in the mount table ([`super::mounts::Engine`])
//! with its own config and roles; `sys/auth/:path` enables and disables
//! them ([`mount`]). A method's `login` is the one path that needs no
//! token: the method checks the credential and answers a [`LoginGrant`],
//! and this module turns the grant into an orphan service token with the
//! role's token settings ([`TokenParams`], Vault's `token_*` role fields),
//! its TTL bounded by the role and the mount's tuned TTLs. Login answers
//! have the `auth` block of approle.json, jwt.json and kubernetes.json.
//! JWT and Kubernetes are both a config and named roles: [`ConfigAndRoles`]
//! answers their paths (`login`, `config`, `role/:name`).

pub(crate) mod approle;
mod jws;
pub(crate) mod jwt;
pub(crate) mod kubernetes;
pub(crate) mod mount;
pub(crate) mod userpass;

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::mounts::Engine;
use super::response::Reply;
use super::token::{TokenSettings, TokenSpec, auth_reply, sanitize_policies, string_list};
use super::ttl::{TtlInputs, calculate_ttl};
use super::util::{parse_duration, weak_bool, weak_i64};
use super::{Operation, Request, State};

/// What a method's handler answers: a plain reply, or a successful login.
pub(crate) enum AuthOutcome {
    Reply(Reply),
    Login(LoginGrant),
}

impl From<Reply> for AuthOutcome {
    fn from(reply: Reply) -> Self {
        AuthOutcome::Reply(reply)
    }
}

/// A credential that checked out: what the new token gets.
pub(crate) struct LoginGrant {
    pub params: TokenParams,
    /// The token's (and the answer's) `metadata`.
    pub metadata: BTreeMap<String, String>,
    /// Appended to the mount name in the token's display name.
    pub display_name: String,
}

/// Vault's common `token_*` role fields (sdk/helper/tokenutil).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TokenParams {
    pub policies: Vec<String>,
    pub ttl: u64,
    pub max_ttl: u64,
    pub explicit_max_ttl: u64,
    pub period: u64,
    pub num_uses: u64,
    pub no_default_policy: bool,
    pub bound_cidrs: Vec<String>,
    pub token_type: String,
}

impl TokenParams {
    /// Apply the fields present in a role write; the legacy names
    /// (`policies`, `ttl`, `max_ttl`, `period`) count when the `token_*`
    /// one is absent.
    pub fn update_from(&mut self, body: &Map<String, Value>) -> Result<(), String> {
        let field = |name: &str, legacy: &str| body.get(name).or_else(|| body.get(legacy));
        if let Some(v) = field("token_policies", "policies") {
            self.policies = string_list(Some(v))?;
        }
        let seconds = |v: &Value| parse_duration(v).map(|d| d.as_secs());
        if let Some(v) = field("token_ttl", "ttl") {
            self.ttl = seconds(v)?;
        }
        if let Some(v) = field("token_max_ttl", "max_ttl") {
            self.max_ttl = seconds(v)?;
        }
        if let Some(v) = body.get("token_explicit_max_ttl") {
            self.explicit_max_ttl = seconds(v)?;
        }
        if let Some(v) = field("token_period", "period") {
            self.period = seconds(v)?;
        }
        if let Some(v) = body.get("token_num_uses") {
            self.num_uses = weak_i64(v).and_then(|n| u64::try_from(n).ok()).ok_or("token_num_uses must be >= 0")?;
        }
        if let Some(v) = body.get("token_no_default_policy") {
            self.no_default_policy = weak_bool(v).ok_or("token_no_default_policy must be a boolean")?;
        }
        if let Some(v) = body.get("token_bound_cidrs") {
            self.bound_cidrs = string_list(Some(v))?;
        }
        if let Some(v) = body.get("token_type").and_then(Value::as_str) {
            match v {
                "" | "default" | "service" | "default-service" => self.token_type = v.to_owned(),
                other => return Err(format!("token_type {other:?} is not supported by the rotator dev server")),
            }
        }
        if self.max_ttl > 0 && self.ttl > self.max_ttl {
            return Err("\"token_ttl\" value must be less than \"token_max_ttl\" value".into());
        }
        Ok(())
    }

    /// The fields as role reads show them.
    pub fn to_json(&self, out: &mut Map<String, Value>) {
        let token_type = if self.token_type.is_empty() { "default" } else { self.token_type.as_str() };
        for (key, value) in [
            ("token_policies", json!(self.policies)),
            ("policies", json!(self.policies)),
            ("token_ttl", json!(self.ttl)),
            ("token_max_ttl", json!(self.max_ttl)),
            ("token_explicit_max_ttl", json!(self.explicit_max_ttl)),
            ("token_period", json!(self.period)),
            ("token_num_uses", json!(self.num_uses)),
            ("token_no_default_policy", json!(self.no_default_policy)),
            ("token_bound_cidrs", json!(self.bound_cidrs)),
            ("token_type", json!(token_type)),
        ] {
            out.insert(key.into(), value);
        }
    }
}

/// Answer a request below an auth method's mount (`rest` is below `mount`).
pub(crate) fn handle(state: &mut State, mount: &str, rest: &str, req: &Request) -> Reply {
    let Some(entry) = state.mounts.get_mut(mount) else {
        return Reply::no_route(&req.path);
    };
    let outcome = match &mut entry.engine {
        Engine::AppRole(method) => method.handle(rest, req),
        Engine::Jwt(method) => method.handle(rest, req),
        Engine::Kubernetes(method) => method.handle(rest, req),
        Engine::UserPass(method) => method.handle(rest, req),
        _ => return Reply::unsupported_path(),
    };
    match outcome {
        AuthOutcome::Reply(reply) => reply,
        AuthOutcome::Login(grant) => issue_login_token(state, mount, grant, req),
    }
}

/// The config of a method made of one config and named roles beside
/// `login` (JWT and Kubernetes): what [`ConfigAndRoles`] needs of it.
pub(crate) trait MethodConfig: Sized {
    type Role: MethodRole;

    /// `POST config`: the new config; the error is a 400's message.
    fn from_body(body: &Map<String, Value>) -> Result<Self, String>;
    /// `GET config`.
    fn to_json(&self) -> Reply;
    /// `POST login`, with the config if one was written.
    fn login(config: Option<&Self>, roles: &BTreeMap<String, Self::Role>, req: &Request) -> AuthOutcome;
}

/// A role of a [`MethodConfig`] method; `Default` is a role before its
/// first write.
pub(crate) trait MethodRole: Clone + Default {
    /// Apply a role write: only the fields given change, then the role must
    /// still be valid. The error is a 400's message.
    fn update_from(&mut self, body: &Map<String, Value>) -> Result<(), String>;
    /// `GET role/:name`.
    fn to_json(&self) -> Reply;
}

/// One mount of a method with a config and named roles.
pub(crate) struct ConfigAndRoles<C: MethodConfig> {
    config: Option<C>,
    roles: BTreeMap<String, C::Role>,
}

impl<C: MethodConfig> Default for ConfigAndRoles<C> {
    fn default() -> Self {
        Self { config: None, roles: BTreeMap::new() }
    }
}

impl<C: MethodConfig> ConfigAndRoles<C> {
    /// Answer `auth/<mount>/<rest>`: `login`, `config` and `role/:name`.
    pub fn handle(&mut self, rest: &str, req: &Request) -> AuthOutcome {
        let reply = match (rest, req.op) {
            ("login", Operation::Write) => return C::login(self.config.as_ref(), &self.roles, req),
            ("config", Operation::Read) => self.config.as_ref().map_or_else(Reply::not_found, C::to_json),
            ("config", Operation::Write) => match C::from_body(&req.data) {
                Ok(config) => {
                    self.config = Some(config);
                    Reply::NoContent
                }
                Err(e) => Reply::bad_request(e),
            },
            ("role/", Operation::List) => Reply::list(self.roles.keys().cloned().collect()),
            _ => match rest.strip_prefix("role/") {
                Some(name) if !valid_name(name) => Reply::bad_request(format!("invalid role name {name:?}")),
                Some(name) => match req.op {
                    Operation::Read => self.roles.get(name).map_or_else(Reply::not_found, C::Role::to_json),
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

    /// `POST role/:name`: create or update; a failed write changes nothing.
    fn write_role(&mut self, name: &str, body: &Map<String, Value>) -> Reply {
        let mut role = self.roles.get(name).cloned().unwrap_or_default();
        match role.update_from(body) {
            Ok(()) => {
                self.roles.insert(name.to_owned(), role);
                Reply::NoContent
            }
            Err(e) => Reply::bad_request(e),
        }
    }
}

/// Mint the token a successful login earns: an orphan carrying the role's
/// policies and TTLs.
fn issue_login_token(state: &mut State, mount: &str, grant: LoginGrant, req: &Request) -> Reply {
    let (mount_default, mount_max) =
        state.mounts.get(mount).map_or((0, 0), |m| (m.config.default_lease_ttl, m.config.max_lease_ttl));
    let params = &grant.params;
    let inputs = TtlInputs {
        backend_ttl: params.ttl,
        period: params.period,
        backend_max: params.max_ttl,
        explicit_max: params.explicit_max_ttl,
        mount_default,
        mount_max,
        ..Default::default()
    };
    let decision = match calculate_ttl(inputs, req.now, req.now) {
        Ok(decision) => decision,
        Err(e) => return Reply::bad_request(e),
    };
    let method_name = mount.trim_start_matches("auth/").trim_end_matches('/').replace('/', "-");
    let display_name = match grant.display_name.as_str() {
        "" => method_name,
        name => format!("{method_name}-{name}"),
    };
    let spec = TokenSpec {
        settings: TokenSettings {
            policies: sanitize_policies(&params.policies, !params.no_default_policy),
            display_name,
            path: format!("{mount}login"),
            mount: mount.to_owned(),
            meta: Some(grant.metadata),
            ttl: decision.ttl,
            explicit_max_ttl: params.explicit_max_ttl,
            period: params.period,
            role_max_ttl: params.max_ttl,
            num_uses: params.num_uses,
            parent: None,
        },
        renewable: true,
        ..Default::default()
    };
    let auth = state.tokens.create(spec, req.now).auth_json(req.now, true);
    state.wake.notify_one();
    tracing::debug!(mount, "vault dev server: login");
    auth_reply(auth, decision.warnings)
}

/// Vault's role-name rule: letters, digits and `_-.@`, not empty.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "_-.@".contains(c))
}

/// A string field of a request body, trimmed ("" when absent).
pub(crate) fn str_field<'a>(body: &'a Map<String, Value>, name: &str) -> &'a str {
    body.get(name).and_then(Value::as_str).map(str::trim).unwrap_or("")
}

/// Vault's `StrListContainsGlob`: `*` at the start and/or end of a pattern
/// matches any text there.
pub(crate) fn glob_match(pattern: &str, value: &str) -> bool {
    match (pattern.strip_prefix('*'), pattern.strip_suffix('*')) {
        _ if pattern == "*" => true,
        (Some(rest), _) if rest.ends_with('*') => value.contains(&rest[..rest.len() - 1]),
        (Some(suffix), _) => value.ends_with(suffix),
        (None, Some(prefix)) => value.starts_with(prefix),
        (None, None) => pattern == value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devserver_globs_and_token_params() {
        assert!(glob_match("*", "x") && glob_match("app-*", "app-1") && glob_match("*-sa", "db-sa"));
        assert!(glob_match("*mid*", "a-mid-b") && !glob_match("app", "app2"));
        let mut params = TokenParams::default();
        let body = json!({"policies": "a,b", "token_ttl": "1h", "token_max_ttl": 7200, "token_num_uses": 3});
        params.update_from(body.as_object().unwrap()).unwrap();
        assert_eq!((params.policies.len(), params.ttl, params.max_ttl, params.num_uses), (2, 3600, 7200, 3));
        let bad = json!({"token_ttl": "3h"});
        assert!(params.update_from(bad.as_object().unwrap()).is_err());
    }
}
