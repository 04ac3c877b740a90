//! Which engine answers a request: Vault's router.
//!
//! `sys/` and `auth/token/` are always there and answered by their own
//! modules; everything else goes to the engine mounted at the longest
//! matching prefix (secret engines and auth methods alike). A path under no
//! mount is a 404 "no handler for route". The database engine answers a
//! [`Handled`] of its own: its SQL runs after the state lock is released.

use std::sync::Arc;

use super::mounts::Engine;
use super::response::Reply;
use super::{Handled, Request, Shared, State, auth, database, leases, policy, sys, token, wrapping};

/// Send `req` to its handler; answers the reply and the `mount_type` the
/// envelope reports.
pub(crate) fn route(shared: &Arc<Shared>, state: &mut State, req: &Request) -> (Handled, &'static str) {
    if let Some(rest) = req.path.strip_prefix("sys/") {
        if let Some(handled) = leases::handle(shared, state, rest, req) {
            return (handled, "system");
        }
        if let Some(reply) = policy::handle(state, rest, req) {
            return (reply.into(), "system");
        }
        if let Some(reply) = rest.strip_prefix("wrapping/").and_then(|w| wrapping::handle(state, w, req)) {
            return (reply.into(), "system");
        }
        return (sys::handle(shared, state, rest, req), "system");
    }
    if let Some(rest) = req.path.strip_prefix("auth/token/") {
        return (token::handle(shared, state, rest, req), "token");
    }
    let Some(mount) = state.mounts.matching(&req.path).map(str::to_owned) else {
        return (Reply::no_route(&req.path).into(), "");
    };
    let rest = &req.path[mount.len()..];
    let Some(entry) = state.mounts.get_mut(&mount) else {
        return (Reply::no_route(&req.path).into(), "");
    };
    let default_lease = entry.effective_default_lease_ttl();
    let mount_type = entry.mount_type();
    if matches!(entry.engine, Engine::Database(_)) {
        // Async engine: it may answer later, after SQL run without the lock.
        return (database::handle(shared, state, &mount, rest, req), mount_type);
    }
    let reply = match &mut entry.engine {
        Engine::KvV2(kv) => kv.handle(rest, req),
        Engine::KvV1(kv) => kv.handle(rest, req, Some(default_lease)),
        Engine::Cubbyhole(per_token) => {
            per_token.entry(req.token_accessor.clone()).or_default().handle(rest, req, None)
        }
        Engine::AppRole(_) | Engine::Jwt(_) | Engine::Kubernetes(_) | Engine::UserPass(_) => {
            auth::handle(state, &mount, rest, req)
        }
        Engine::System | Engine::Token | Engine::Database(_) => Reply::unsupported_path(),
        Engine::Identity | Engine::Unimplemented => {
            tracing::warn!(mount = %mount, kind = entry.type_name.as_str(), "the dev server does not implement this engine");
            Reply::unsupported_path()
        }
    };
    (reply.into(), mount_type)
}
