//! The `auth/token/` endpoints: create, lookup, renew and revoke tokens.
//!
//! Shapes follow `shared/contracts/vault/token.json`; rules follow Vault's
//! token store: a child inherits its parent's policies unless it asks for a
//! subset of them, orphans, periodic tokens and custom ids need root or
//! sudo, TTLs go through [`calculate_ttl`] (so capping warnings read like
//! Vault's), and revoking answers only once the revoked tokens' leases have
//! been revoked too ([`revocations_then`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::{Map, Value};

use super::super::leases::revocations_then;
use super::super::policy::Capability;
use super::super::response::{Envelope, Reply};
use super::super::ttl::{TtlInputs, calculate_ttl};
use super::super::util::{parse_duration, weak_bool, weak_i64, weak_string};
use super::super::{Handled, Operation, Request, Shared, State};
use super::{TokenSettings, TokenSpec, sanitize_policies};

/// Answer `auth/token/<rest>`.
pub(crate) fn handle(shared: &Arc<Shared>, state: &mut State, rest: &str, req: &Request) -> Handled {
    let write = req.op == Operation::Write;
    let reply = match rest {
        "create" | "create-orphan" if write => create(state, req, rest == "create-orphan"),
        "lookup-self" if matches!(req.op, Operation::Read | Operation::Write) => lookup(state, req, &req.client_token),
        "lookup" if matches!(req.op, Operation::Read | Operation::Write) => match str_field(&req.data, "token") {
            "" => Reply::bad_request("missing token"),
            token => lookup(state, req, token),
        },
        "lookup-accessor" if write => match state.tokens.by_accessor(str_field(&req.data, "accessor"), req.now) {
            Some(entry) => Reply::ok(entry.lookup_json(req.now, false)),
            None => Reply::bad_request("invalid accessor"),
        },
        "renew-self" if write => renew(state, req, &req.client_token, true),
        "renew" if write => match str_field(&req.data, "token") {
            "" => Reply::bad_request("missing token"),
            token => renew(state, req, token, true),
        },
        "renew-accessor" if write => {
            let id = state.tokens.by_accessor(str_field(&req.data, "accessor"), req.now).map(|t| t.id.clone());
            match id {
                Some(id) => renew(state, req, &id, false),
                None => Reply::bad_request("invalid accessor"),
            }
        }
        "revoke-self" if write => {
            let pending = state.revoke_token_tree(&req.client_token);
            return revocations_then(shared, pending, Reply::NoContent);
        }
        "revoke" if write => match str_field(&req.data, "token") {
            "" => Reply::bad_request("missing token"),
            token => {
                let pending = state.revoke_token_tree(token);
                return revocations_then(shared, pending, Reply::NoContent);
            }
        },
        "revoke-orphan" if write => match str_field(&req.data, "token") {
            "" => Reply::bad_request("missing token"),
            token => {
                let pending = state.revoke_token_orphaning(token);
                return revocations_then(shared, pending, Reply::NoContent);
            }
        },
        "revoke-accessor" if write => {
            let id = state.tokens.by_accessor(str_field(&req.data, "accessor"), req.now).map(|t| t.id.clone());
            match id {
                Some(id) => {
                    let pending = state.revoke_token_tree(&id);
                    return revocations_then(shared, pending, Reply::NoContent);
                }
                None => Reply::bad_request("invalid accessor"),
            }
        }
        "accessors/" if req.op == Operation::List => Reply::list(state.tokens.accessors().cloned().collect()),
        "create" | "create-orphan" | "lookup-self" | "lookup" | "lookup-accessor" | "renew-self" | "renew"
        | "renew-accessor" | "revoke-self" | "revoke" | "revoke-orphan" | "revoke-accessor" | "accessors/" => {
            Reply::unsupported_operation()
        }
        other if other.starts_with("create/") && write => {
            Reply::bad_request(format!("unknown role {}", &other["create/".len()..]))
        }
        _ => Reply::unsupported_path(),
    };
    Handled::Now(reply)
}

fn str_field<'a>(data: &'a Map<String, Value>, name: &str) -> &'a str {
    data.get(name).and_then(Value::as_str).map(str::trim).unwrap_or("")
}

fn lookup(state: &State, req: &Request, token: &str) -> Reply {
    match state.tokens.get(token, req.now) {
        Some(entry) => Reply::ok(entry.lookup_json(req.now, true)),
        None => Reply::Errors(StatusCode::FORBIDDEN, vec!["bad token".into()]),
    }
}

/// The caller may act beyond its own policies on `path`.
fn privileged(state: &State, req: &Request, path: &str) -> bool {
    req.is_root() || state.policies.capabilities(&req.policies, path).allows(Capability::Sudo)
}

/// `POST auth/token/create` and `create-orphan`.
fn create(state: &mut State, req: &Request, orphan_endpoint: bool) -> Reply {
    let body = &req.data;
    let path = format!("auth/token/{}", if orphan_endpoint { "create-orphan" } else { "create" });
    let privileged = privileged(state, req, &path);
    match str_field(body, "type") {
        "" | "service" | "default" => {}
        "batch" => return Reply::bad_request("batch tokens are not supported by the rotator dev server"),
        other => return Reply::bad_request(format!("invalid 'type' value {other:?}")),
    }
    let duration = |name: &str| body.get(name).map(parse_duration).transpose().map(|d| d.map_or(0, |d| d.as_secs()));
    let (ttl, explicit_max, period) = match (duration("ttl"), duration("explicit_max_ttl"), duration("period")) {
        (Ok(ttl), Ok(max), Ok(period)) => (if ttl == 0 { duration("lease").unwrap_or(0) } else { ttl }, max, period),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return Reply::bad_request(e),
    };
    let flag = |name: &str, default: bool| body.get(name).and_then(weak_bool).unwrap_or(default);
    let no_parent = orphan_endpoint || flag("no_parent", false);
    if no_parent && !orphan_endpoint && !privileged {
        return Reply::bad_request("root or sudo privileges required to create orphan token");
    }
    if period > 0 && !privileged {
        return Reply::bad_request("root or sudo privileges required to create periodic token");
    }
    let id = str_field(body, "id");
    if !id.is_empty() && !privileged {
        return Reply::bad_request("root or sudo privileges required to specify token id");
    }
    if !id.is_empty() && state.tokens.contains(id) {
        return Reply::bad_request("cannot use a token ID that is already in use");
    }
    let num_uses = match body.get("num_uses").map(weak_i64) {
        None => 0,
        Some(Some(n)) if n >= 0 => n as u64,
        Some(_) => return Reply::bad_request("number of uses cannot be negative"),
    };
    let requested = match string_list(body.get("policies")) {
        Ok(list) => list,
        Err(e) => return Reply::bad_request(e),
    };
    let no_default = flag("no_default_policy", false);
    let parent_policies: Vec<String> = req.policies.clone();
    let mut policies = if requested.is_empty() {
        parent_policies.iter().filter(|p| !(no_default && *p == "default")).cloned().collect()
    } else {
        sanitize_policies(&requested, !no_default)
    };
    if !req.is_root() && !privileged {
        let outside: Vec<&String> =
            policies.iter().filter(|p| *p != "default" && !parent_policies.contains(p)).collect();
        if !outside.is_empty() {
            return Reply::bad_request("child policies must be subset of parent");
        }
    }
    policies = sanitize_policies(&policies, false);
    let meta = match string_map(body.get("meta")) {
        Ok(meta) => meta,
        Err(e) => return Reply::bad_request(e),
    };
    let mut warnings: Vec<String> =
        policies.iter().filter(|p| !state.policies.exists(p)).map(|p| format!("Policy {p:?} does not exist")).collect();
    let mount = state.mounts.get("auth/token/");
    let (mount_default, mount_max) = mount.map_or((0, 0), |m| (m.config.default_lease_ttl, m.config.max_lease_ttl));
    let never_expires = period == 0 && ttl == 0 && policies.iter().any(|p| p == "root");
    let ttl = if never_expires {
        0
    } else {
        let inputs =
            TtlInputs { backend_ttl: ttl, period, explicit_max, mount_default, mount_max, ..Default::default() };
        match calculate_ttl(inputs, req.now, req.now) {
            Ok(decision) => {
                warnings.extend(decision.warnings);
                decision.ttl
            }
            Err(e) => return Reply::bad_request(e),
        }
    };
    let display_name = match str_field(body, "display_name") {
        "" => "token".to_owned(),
        name => format!("token-{name}").chars().take(256).collect(),
    };
    let spec = TokenSpec {
        id: id.to_owned(),
        settings: TokenSettings {
            policies,
            display_name,
            path,
            mount: "auth/token/".into(),
            meta,
            ttl,
            explicit_max_ttl: explicit_max,
            period,
            role_max_ttl: 0,
            num_uses,
            parent: (!no_parent).then(|| req.client_token.clone()),
        },
        renewable: flag("renewable", true),
    };
    let entry = state.tokens.create(spec, req.now);
    let auth = entry.auth_json(req.now, true);
    state.wake.notify_one();
    auth_reply(auth, warnings)
}

/// A 200 whose payload is an `auth` block (create, renew, login).
pub(crate) fn auth_reply(auth: Value, warnings: Vec<String>) -> Reply {
    let mut envelope = Envelope::data(Value::Null);
    envelope.auth = Some(auth);
    envelope.warnings = warnings;
    Reply::Envelope(StatusCode::OK, envelope)
}

/// Renew token `id` by the request's `increment` (a duration string or
/// seconds), capped by its max TTLs with Vault's warning.
fn renew(state: &mut State, req: &Request, id: &str, show_id: bool) -> Reply {
    let increment = match req.data.get("increment").map(parse_duration).transpose() {
        Ok(d) => d.map_or(0, |d| d.as_secs()),
        Err(e) => return Reply::bad_request(e),
    };
    let mount_ttls =
        |mount: &str| state.mounts.get(mount).map_or((0, 0), |m| (m.config.default_lease_ttl, m.config.max_lease_ttl));
    let Some(entry) = state.tokens.get(id, req.now) else {
        return Reply::bad_request("token not found");
    };
    let (mount_default, mount_max) = mount_ttls(&entry.settings.mount.clone());
    let Some(entry) = state.tokens.get_mut(id, req.now) else {
        return Reply::bad_request("token not found");
    };
    if !entry.renewable || entry.expire_time.is_none() {
        return Reply::bad_request("lease is not renewable");
    }
    let inputs = TtlInputs {
        increment,
        backend_ttl: entry.settings.ttl,
        period: entry.settings.period,
        backend_max: entry.settings.role_max_ttl,
        explicit_max: entry.settings.explicit_max_ttl,
        mount_default,
        mount_max,
    };
    let decision = match calculate_ttl(inputs, entry.creation_time, req.now) {
        Ok(decision) => decision,
        Err(e) => return Reply::bad_request(e),
    };
    entry.expire_time = Some(req.now + time::Duration::seconds(decision.ttl as i64));
    entry.last_renewal = Some(req.now);
    let auth = entry.auth_json(req.now, show_id);
    state.wake.notify_one();
    auth_reply(auth, decision.warnings)
}

/// Vault's comma-string-slice fields: `["a","b"]` or `"a,b"`.
pub(crate) fn string_list(value: Option<&Value>) -> Result<Vec<String>, String> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(s.split(',').map(str::trim).filter(|p| !p.is_empty()).map(String::from).collect()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| weak_string(v).map(|s| s.trim().to_owned()).ok_or_else(|| format!("invalid list item {v}")))
            .filter(|s| s.as_ref().map_or(true, |s| !s.is_empty()))
            .collect(),
        Some(other) => Err(format!("expected a list of strings, got {other}")),
    }
}

/// A map of strings (`meta`), decoded weakly.
fn string_map(value: Option<&Value>) -> Result<Option<BTreeMap<String, String>>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) if map.is_empty() => Ok(None),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| weak_string(v).map(|v| (k.clone(), v)).ok_or_else(|| format!("meta {k:?} must be a string")))
            .collect::<Result<_, _>>()
            .map(Some),
        Some(_) => Err("meta must be a map of strings".into()),
    }
}
