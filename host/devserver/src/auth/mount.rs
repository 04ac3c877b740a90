//! `sys/auth/:path`: enabling, reading, tuning and disabling auth methods.
//!
//! Auth methods share the mount table with secret engines (Vault routes
//! them the same way) but live under `auth/` and are listed by `GET
//! sys/auth`. AppRole, JWT (and its `oidc` alias), Kubernetes and userpass work;
//! Vault's other builtin methods can be mounted and listed but answer
//! "unsupported path". Disabling a method revokes every token it issued,
//! and their leases, as Vault does.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::super::leases::revocations_then;
use super::super::mounts::{Engine, MountEntry, Table, normalize_mount_path};
use super::super::response::Reply;
use super::super::util::weak_bool;
use super::super::{Handled, Operation, Request, Shared, State, sys};
use super::{approle::AppRole, jwt::JwtAuth, kubernetes::KubeAuth, userpass::UserPass};

/// Vault's other builtin auth methods: mountable, not implemented here.
const OTHER_BUILTINS: [&str; 13] =
    ["alicloud", "aws", "azure", "cert", "cf", "gcp", "github", "kerberos", "ldap", "oci", "okta", "radius", "saml"];

/// Answer `sys/auth/<sub>` (`sub` is the method's path, maybe + "/tune").
pub(crate) fn handle(shared: &Arc<Shared>, state: &mut State, sub: &str, req: &Request) -> Handled {
    if let Some(path) = sub.strip_suffix("/tune") {
        let path = format!("auth/{}", normalize_mount_path(path));
        return sys::tune(state, &path, req).into();
    }
    let name = normalize_mount_path(sub);
    if name.is_empty() {
        return Reply::bad_request("path must be specified").into();
    }
    let path = format!("auth/{name}");
    match req.op {
        Operation::Read => match state.mounts.get(&path).filter(|e| e.table == Table::Auth) {
            Some(entry) => Reply::ok_injected(entry.info_json()),
            None => Reply::bad_request(format!("No auth engine at {path}")),
        }
        .into(),
        Operation::Write => match enable(state, &path, &req.data) {
            Ok(()) => Reply::NoContent.into(),
            Err(reply) => reply.into(),
        },
        Operation::Delete => {
            if path == "auth/token/" {
                return Reply::bad_request("token credential backend cannot be disabled").into();
            }
            if state.mounts.get(&path).is_none_or(|e| e.table != Table::Auth) {
                return Reply::NoContent.into();
            }
            if let Err(reply) = state.mounts.disable(&path) {
                return reply.into();
            }
            let mut pending = Vec::new();
            for id in state.tokens.issued_by(&path) {
                pending.extend(state.revoke_token_tree(&id));
            }
            tracing::info!(mount = %path, "vault dev server: auth method disabled");
            revocations_then(shared, pending, Reply::NoContent)
        }
        _ => Reply::unsupported_operation().into(),
    }
}

/// `POST sys/auth/:path` with `{"type", "description", "config", ...}`.
fn enable(state: &mut State, path: &str, body: &Map<String, Value>) -> Result<(), Reply> {
    let type_name = body.get("type").and_then(Value::as_str).map(str::trim).unwrap_or("");
    let engine = match type_name {
        "" => return Err(Reply::bad_request("backend type must be specified")),
        "approle" => Engine::AppRole(Box::<AppRole>::default()),
        "jwt" | "oidc" => Engine::Jwt(Box::<JwtAuth>::default()),
        "kubernetes" => Engine::Kubernetes(Box::<KubeAuth>::default()),
        "userpass" => Engine::UserPass(Box::<UserPass>::default()),
        "token" => return Err(Reply::bad_request("token credential backend cannot be instantiated")),
        other if OTHER_BUILTINS.contains(&other) => Engine::Unimplemented,
        other => return Err(Reply::bad_request(format!("plugin not found in the catalog: {other}"))),
    };
    let description = body.get("description").and_then(Value::as_str).unwrap_or("");
    let mut entry = MountEntry::new(path, Table::Auth, type_name, description, engine);
    entry.local = body.get("local").and_then(weak_bool).unwrap_or(false);
    entry.seal_wrap = body.get("seal_wrap").and_then(weak_bool).unwrap_or(false);
    if let Some(Value::Object(config)) = body.get("config") {
        entry.config.update_from(config).map_err(Reply::bad_request)?;
    }
    state.mounts.enable(entry)?;
    tracing::info!(mount = path, kind = type_name, "vault dev server: auth method enabled");
    Ok(())
}
