//! Who may do what: the token and ACL check every authenticated request
//! passes before it is routed.
//!
//! As in Vault's request handling: the token must exist and be unexpired
//! (else 403 "permission denied" whatever the path), a use is spent from a
//! limited-use token, and the token's policies must grant the capability the
//! operation needs on the path, plus `sudo` on root-protected paths. For a
//! write, the engine's existence check decides between `create` and
//! `update`; engines without one count as `update`, as in Vault. Login
//! paths of auth methods are the only ones that need no token.

use time::OffsetDateTime;

use super::mounts::Engine;
use super::policy::{self, Capability};
use super::response::Reply;
use super::{Operation, State};

/// A token that passed the check.
pub(crate) struct Grant {
    pub accessor: String,
    pub policies: Vec<String>,
    /// This request used its last use: revoke it after answering.
    pub exhausted: bool,
}

/// Check `token` for `op` on `path` (after `/v1/`, with the "/" a LIST
/// gets).
pub(crate) fn authorize(
    state: &mut State,
    token: &str,
    op: Operation,
    path: &str,
    now: OffsetDateTime,
) -> Result<Grant, Reply> {
    let policies = state.tokens.get(token, now).ok_or_else(Reply::permission_denied)?.settings.policies.clone();
    let caps = state.policies.capabilities(&policies, path);
    let needed = policy::required(op, exists(state, op, path));
    // Any valid token may ask which mount serves a path: the vault CLI's
    // `kv` commands do it first (Vault lets every token through, too).
    let open_to_all = path.starts_with("sys/internal/ui/mounts/") && op == Operation::Read;
    let allowed = caps.allows(needed) && (!policy::needs_sudo(path) || caps.allows(Capability::Sudo));
    if !open_to_all && !allowed {
        tracing::debug!(path, ?needed, "vault dev server: permission denied");
        return Err(Reply::permission_denied());
    }
    let used = state.tokens.use_token(token, now).ok_or_else(Reply::permission_denied)?;
    Ok(Grant { accessor: used.accessor, policies: used.policies, exhausted: used.exhausted })
}

/// The engine's existence check for a write: `Some(false)` makes it a
/// create. Only KV engines have one.
fn exists(state: &State, op: Operation, path: &str) -> Option<bool> {
    if op != Operation::Write {
        return None;
    }
    let mount = state.mounts.matching(path)?;
    let rest = &path[mount.len()..];
    match &state.mounts.get(mount)?.engine {
        Engine::KvV2(kv) => kv.exists(rest),
        Engine::KvV1(kv) => Some(kv.exists(rest)),
        _ => None,
    }
}

/// Whether `path` is an auth method's login endpoint, which needs no token.
pub(crate) fn is_login(state: &State, op: Operation, path: &str) -> bool {
    if op != Operation::Write || !path.starts_with("auth/") {
        return false;
    }
    let Some(mount) = state.mounts.matching(path) else {
        return false;
    };
    let rest = &path[mount.len()..];
    state.mounts.get(mount).is_some_and(|m| match m.engine {
        Engine::AppRole(_) | Engine::Jwt(_) | Engine::Kubernetes(_) => rest == "login",
        // `login/:username`
        Engine::UserPass(_) => rest.strip_prefix("login/").is_some_and(|name| !name.is_empty() && !name.contains('/')),
        _ => false,
    })
}
