//! The `sys/leases/*` endpoints (and the older `sys/renew`, `sys/revoke*`).
//!
//! Shapes and errors follow `shared/contracts/vault/leases.json` and
//! `errors.json`: lookup answers `data` with id, path, issue/expire times,
//! last_renewal, renewable and ttl; renew takes `increment` in seconds and,
//! past the max TTL, answers 200 with the shorter `lease_duration` and
//! Vault's "TTL of ... exceeded the effective max_ttl" warning; unknown,
//! expired, token and non-renewable leases are 400s with Vault's words.
//! Revocation is synchronous unless `sync` is false (Vault's default is
//! true): the answer then comes once the engine has revoked the secret.

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::super::response::{Envelope, LeaseInfo, Reply};
use super::super::ttl::{TtlInputs, calculate_ttl};
use super::super::util::{list_children, parse_duration, weak_bool};
use super::super::{Handled, Operation, Request, Shared, State};
use super::run_revocations;

/// Answer the lease endpoints under `sys/<rest>`; `None` for other paths.
pub(crate) fn handle(shared: &Arc<Shared>, state: &mut State, rest: &str, req: &Request) -> Option<Handled> {
    let rest = rest.strip_prefix("leases/").unwrap_or(rest);
    let in_url = |name: &str| match rest.strip_prefix(name) {
        Some("") => Some(""),
        Some(tail) => tail.strip_prefix('/'),
        None => None,
    };
    let write = req.op == Operation::Write;
    if rest == "lookup" && write {
        return Some(Handled::Now(lookup(state, req)));
    }
    if let Some(prefix) = rest.strip_prefix("lookup/").filter(|_| req.op == Operation::List) {
        let keys = list_children(state.leases.ids(), prefix);
        return Some(Handled::Now(Reply::list(keys)));
    }
    if let Some(id) = in_url("renew") {
        return Some(if write { renew(shared, state, lease_id(req, id), req) } else { unsupported() });
    }
    if let Some(id) = in_url("revoke") {
        return Some(if write { revoke(shared, state, &[lease_id(req, id)], req, false) } else { unsupported() });
    }
    if let Some(prefix) = rest.strip_prefix("revoke-prefix/") {
        return Some(if write { revoke_prefix(shared, state, prefix, req, false) } else { unsupported() });
    }
    if let Some(prefix) = rest.strip_prefix("revoke-force/") {
        return Some(if write { revoke_prefix(shared, state, prefix, req, true) } else { unsupported() });
    }
    None
}

fn unsupported() -> Handled {
    Handled::Now(Reply::unsupported_operation())
}

/// The lease id: the body's `lease_id` wins over the one in the URL.
fn lease_id(req: &Request, from_url: &str) -> String {
    let body = req.data.get("lease_id").and_then(Value::as_str).unwrap_or("").trim();
    if body.is_empty() { from_url.to_owned() } else { body.to_owned() }
}

/// `PUT sys/leases/lookup` {lease_id}.
fn lookup(state: &State, req: &Request) -> Reply {
    let id = lease_id(req, "");
    match state.leases.get(&id) {
        Some(lease) => Reply::ok(lease.lookup_json(req.now)),
        None => Reply::bad_request("invalid lease"),
    }
}

/// `PUT sys/leases/renew` {lease_id, increment}.
fn renew(shared: &Arc<Shared>, state: &mut State, id: String, req: &Request) -> Handled {
    let planned = plan_renewal(state, &id, &req.data, req.now);
    let (view, backend, ttl, warnings) = match planned {
        Ok(plan) => plan,
        Err(reply) => return Handled::Now(reply),
    };
    let shared = Arc::clone(shared);
    Handled::Later(Box::pin(async move {
        if let Err(error) = backend.renew(view, ttl).await {
            return Reply::bad_request(format!("failed to renew entry: {error}"));
        }
        let now = OffsetDateTime::now_utc();
        let mut state = shared.lock();
        let Some(lease) = state.leases.get_mut(&id).filter(|l| !l.revoking) else {
            return Reply::bad_request("lease not found");
        };
        lease.expire_time = now + time::Duration::seconds(ttl as i64);
        lease.last_renewal = Some(now);
        let mut envelope = Envelope::data(Value::Null);
        envelope.lease = Some(Box::new(LeaseInfo { id: lease.id.clone(), renewable: lease.renewable }));
        envelope.lease_duration = ttl;
        envelope.warnings = warnings;
        state.wake.notify_one();
        Reply::Envelope(StatusCode::OK, envelope)
    }))
}

type RenewPlan = (super::LeaseView, Arc<dyn super::LeaseBackend>, u64, Vec<String>);

/// Everything Vault checks before it asks the engine to renew.
fn plan_renewal(state: &State, id: &str, body: &Map<String, Value>, now: OffsetDateTime) -> Result<RenewPlan, Reply> {
    if id.is_empty() {
        return Err(Reply::bad_request("lease_id must be specified"));
    }
    if id.starts_with("auth/") {
        return Err(Reply::bad_request("tokens cannot be renewed through this endpoint"));
    }
    let lease = state.leases.get(id).filter(|l| !l.revoking).ok_or_else(|| Reply::bad_request("lease not found"))?;
    if lease.expire_time <= now {
        return Err(Reply::bad_request("lease expired"));
    }
    if !lease.renewable {
        return Err(Reply::bad_request("lease is not renewable"));
    }
    let increment = body.get("increment").map(parse_duration).transpose().map_err(Reply::bad_request)?;
    let inputs = TtlInputs {
        increment: increment.map_or(0, |d| d.as_secs()),
        backend_ttl: lease.ttl,
        backend_max: lease.max_ttl,
        mount_max: lease.max_ttl,
        ..Default::default()
    };
    let decision = calculate_ttl(inputs, lease.issue_time, now).map_err(Reply::bad_request)?;
    Ok((lease.view(), Arc::clone(&lease.backend), decision.ttl, decision.warnings))
}

/// `PUT sys/leases/revoke` {lease_id, sync}: unknown ids succeed, as in Vault.
fn revoke(shared: &Arc<Shared>, state: &mut State, ids: &[String], req: &Request, force: bool) -> Handled {
    if ids.iter().any(String::is_empty) {
        return Handled::Now(Reply::bad_request("lease_id must be specified"));
    }
    let pending: Vec<_> = ids.iter().filter_map(|id| state.leases.begin_revoke(id)).collect();
    finish(shared, pending, req, force)
}

/// `PUT sys/leases/revoke-prefix/:prefix` and `revoke-force/:prefix`.
fn revoke_prefix(shared: &Arc<Shared>, state: &mut State, prefix: &str, req: &Request, force: bool) -> Handled {
    if prefix.is_empty() {
        return Handled::Now(Reply::bad_request("prefix must be specified"));
    }
    let pending = state.leases.begin_revoke_prefix(prefix);
    finish(shared, pending, req, force)
}

/// Run the revocations now (sync) or in the background; a failed sync
/// revocation is a 400 with the engine's error and the lease stays.
fn finish(shared: &Arc<Shared>, pending: Vec<super::PendingRevocation>, req: &Request, force: bool) -> Handled {
    if pending.is_empty() {
        return Handled::Now(Reply::NoContent);
    }
    let shared = Arc::clone(shared);
    let sync = force || req.data.get("sync").and_then(weak_bool).unwrap_or(true);
    if !sync {
        tokio::spawn(run_revocations(shared, pending, false));
        return Handled::Now(Reply::NoContent);
    }
    Handled::Later(Box::pin(async move {
        let results = run_revocations(shared, pending, force).await;
        let errors: Vec<String> = results
            .into_iter()
            .filter_map(|(id, r)| r.err().map(|e| format!("failed to revoke entry: lease_id={id}: {e}")))
            .collect();
        if errors.is_empty() || force { Reply::NoContent } else { Reply::Errors(StatusCode::BAD_REQUEST, errors) }
    }))
}
