//! The lease table: secrets with a lifetime, and how they end.
//!
//! A dynamic secrets engine (database credentials, ...) calls
//! [`State::create_lease`] with a [`NewLease`]: the path it was issued
//! under, its TTL settings, whether it is renewable, the token that asked
//! for it, engine-private data, and a [`LeaseBackend`] that knows how to
//! revoke (and optionally renew) it. The table then owns its life: the
//! `sys/leases/*` endpoints ([`api`]) look it up, renew it (capped at its
//! max TTL with Vault's warning) and revoke it; revoking its token revokes
//! it; and the expiry task revokes it when its time is up.
//!
//! Revocation may be slow and async (SQL over the network), while the
//! state sits behind a `std::sync::Mutex` that must never be held across an
//! await. So revoking is three steps: [`LeaseTable::begin_revoke`] marks the
//! lease under the lock and hands back a [`PendingRevocation`];
//! [`run_revocations`] awaits the backend with the lock released; then the
//! lease is removed under the lock, or, if the backend failed, kept and
//! retried later with backoff (unless forced, as `revoke-force` does).

mod api;
#[cfg(test)]
mod tests;

pub(crate) use api::handle;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::response::Reply;
use super::token::random_id;
use super::util::rfc3339;
use super::{BoxFuture, Handled, Shared, State};

/// What a lease looks like to its backend.
#[derive(Clone, Debug)]
#[allow(dead_code, reason = "read by dynamic-secret engines (database); the unit tests use it until one lands")]
pub(crate) struct LeaseView {
    pub id: String,
    /// The path it was issued under (`database/creds/readonly`).
    pub path: String,
    /// Engine-private data (a database username, a role name).
    pub data: Value,
    pub issue_time: OffsetDateTime,
    pub expire_time: OffsetDateTime,
}

/// The engine side of a lease: how to end it, and optionally extend it.
/// Both run with the state lock released.
pub(crate) trait LeaseBackend: Send + Sync {
    /// Undo the secret (drop the database user). An error keeps the lease
    /// and it is tried again later.
    fn revoke(&self, lease: LeaseView) -> BoxFuture<Result<(), String>>;

    /// Tell the target the secret now lives `ttl` more seconds (a database
    /// `VALID UNTIL`). The default has nothing to do.
    fn renew(&self, lease: LeaseView, ttl: u64) -> BoxFuture<Result<(), String>> {
        let _ = (lease, ttl);
        Box::pin(async { Ok(()) })
    }
}

/// What an engine asks for when it issues a leased secret.
#[allow(dead_code, reason = "built by dynamic-secret engines (database); the unit tests use it until one lands")]
pub(crate) struct NewLease {
    /// The request path the secret was read from; the lease id is this
    /// plus "/" and a random suffix.
    pub path: String,
    /// Seconds; 0: the mount's default lease TTL.
    pub ttl: u64,
    /// Seconds; 0: the mount's max lease TTL (the system's 768h unless tuned).
    pub max_ttl: u64,
    pub renewable: bool,
    /// The accessor of the token that asked; revoking it revokes the lease.
    pub token_accessor: Option<String>,
    pub data: Value,
    pub backend: Arc<dyn LeaseBackend>,
}

/// One lease in the table.
pub(crate) struct Lease {
    pub id: String,
    pub path: String,
    pub issue_time: OffsetDateTime,
    pub expire_time: OffsetDateTime,
    pub last_renewal: Option<OffsetDateTime>,
    /// The TTL a renewal without increment extends by.
    pub ttl: u64,
    /// Nothing outlives `issue_time + max_ttl`.
    pub max_ttl: u64,
    pub renewable: bool,
    pub token_accessor: Option<String>,
    pub data: Value,
    backend: Arc<dyn LeaseBackend>,
    /// A revocation is running: not renewable, not revoked twice.
    revoking: bool,
    failures: u32,
    /// After a failed revocation, when to try again.
    retry_at: Option<OffsetDateTime>,
}

impl Lease {
    fn view(&self) -> LeaseView {
        LeaseView {
            id: self.id.clone(),
            path: self.path.clone(),
            data: self.data.clone(),
            issue_time: self.issue_time,
            expire_time: self.expire_time,
        }
    }

    /// `sys/leases/lookup` data (leases.json).
    pub fn lookup_json(&self, now: OffsetDateTime) -> Value {
        json!({
            "id": self.id,
            "issue_time": rfc3339(self.issue_time),
            "expire_time": rfc3339(self.expire_time),
            "last_renewal": self.last_renewal.map(rfc3339),
            "path": self.path,
            "renewable": self.renewable,
            "ttl": (self.expire_time - now).whole_seconds().max(0),
        })
    }
}

/// A revocation decided under the lock, to be run outside it.
pub(crate) struct PendingRevocation {
    pub lease: LeaseView,
    backend: Arc<dyn LeaseBackend>,
}

/// Every lease, by id.
#[derive(Default)]
pub(crate) struct LeaseTable {
    leases: BTreeMap<String, Lease>,
}

impl LeaseTable {
    pub fn get(&self, id: &str) -> Option<&Lease> {
        self.leases.get(id)
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut Lease> {
        self.leases.get_mut(id)
    }

    /// All lease ids (for listing by prefix).
    pub fn ids(&self) -> impl Iterator<Item = &String> {
        self.leases.keys()
    }

    /// Mark one lease as being revoked; `None` if unknown or already so.
    pub fn begin_revoke(&mut self, id: &str) -> Option<PendingRevocation> {
        let lease = self.leases.get_mut(id).filter(|l| !l.revoking)?;
        lease.revoking = true;
        Some(PendingRevocation { lease: lease.view(), backend: Arc::clone(&lease.backend) })
    }

    /// Mark every lease under `prefix` (revoke-prefix, unmount).
    pub fn begin_revoke_prefix(&mut self, prefix: &str) -> Vec<PendingRevocation> {
        let ids: Vec<String> = self.leases.keys().filter(|id| id.starts_with(prefix)).cloned().collect();
        ids.iter().filter_map(|id| self.begin_revoke(id)).collect()
    }

    /// Mark every lease created by these tokens.
    pub fn begin_revoke_for_tokens(&mut self, accessors: &[String]) -> Vec<PendingRevocation> {
        let ids: Vec<String> = self
            .leases
            .values()
            .filter(|l| l.token_accessor.as_ref().is_some_and(|a| accessors.contains(a)))
            .map(|l| l.id.clone())
            .collect();
        ids.iter().filter_map(|id| self.begin_revoke(id)).collect()
    }

    /// Mark every lease whose time is up (and whose retry is due).
    pub fn begin_revoke_expired(&mut self, now: OffsetDateTime) -> Vec<PendingRevocation> {
        let ids: Vec<String> = self
            .leases
            .values()
            .filter(|l| !l.revoking && l.expire_time <= now && l.retry_at.is_none_or(|at| at <= now))
            .map(|l| l.id.clone())
            .collect();
        ids.iter().filter_map(|id| self.begin_revoke(id)).collect()
    }

    /// Record how a revocation ended: gone on success or when forced; kept
    /// for a retry (1 s, doubling, at most a minute) otherwise.
    fn finish_revoke(&mut self, id: &str, result: &Result<(), String>, force: bool, now: OffsetDateTime) {
        if result.is_ok() || force {
            self.leases.remove(id);
            return;
        }
        if let Some(lease) = self.leases.get_mut(id) {
            lease.revoking = false;
            lease.failures += 1;
            let backoff = 1i64 << lease.failures.min(6);
            lease.retry_at = Some(now + time::Duration::seconds(backoff.min(60)));
        }
    }

    /// The earliest moment the expiry task has work here.
    pub fn next_deadline(&self) -> Option<OffsetDateTime> {
        self.leases
            .values()
            .filter(|l| !l.revoking)
            .map(|l| l.retry_at.unwrap_or(l.expire_time).max(l.expire_time))
            .min()
    }
}

impl State {
    /// Issue a lease for a secret an engine is handing out, bounded by the
    /// mount's TTLs; answers the new lease. The expiry task is told.
    #[allow(dead_code, reason = "called by dynamic-secret engines (database); the unit tests use it until one lands")]
    pub fn create_lease(&mut self, spec: NewLease, now: OffsetDateTime) -> &Lease {
        let mount = self.mounts.matching(&spec.path).and_then(|m| self.mounts.get(m));
        let (mount_default, mount_max) =
            mount.map_or((0, 0), |m| (m.effective_default_lease_ttl(), m.effective_max_lease_ttl()));
        let mount_max = if mount_max == 0 { super::mounts::SYSTEM_DEFAULT_LEASE_TTL } else { mount_max };
        let max_ttl = if spec.max_ttl == 0 { mount_max } else { spec.max_ttl.min(mount_max) };
        let ttl = if spec.ttl == 0 { mount_default } else { spec.ttl }.min(max_ttl);
        let id = format!("{}/{}", spec.path.trim_end_matches('/'), random_id(24));
        let lease = Lease {
            id: id.clone(),
            path: spec.path,
            issue_time: now,
            expire_time: now + time::Duration::seconds(ttl as i64),
            last_renewal: None,
            ttl,
            max_ttl,
            renewable: spec.renewable,
            token_accessor: spec.token_accessor,
            data: spec.data,
            backend: spec.backend,
            revoking: false,
            failures: 0,
            retry_at: None,
        };
        self.wake.notify_one();
        self.leases.leases.entry(id).insert_entry(lease).into_mut()
    }
}

/// Run revocations with the lock released, then record each outcome.
/// Answers every lease's result, in order.
pub(crate) async fn run_revocations(
    shared: Arc<Shared>,
    pending: Vec<PendingRevocation>,
    force: bool,
) -> Vec<(String, Result<(), String>)> {
    let mut results = Vec::with_capacity(pending.len());
    for job in pending {
        let id = job.lease.id.clone();
        let result = job.backend.revoke(job.lease).await;
        if let Err(error) = &result {
            tracing::warn!(lease = %id, %error, force, "vault dev server: lease revocation failed");
        }
        shared.lock().finish_revoke_lease(&id, &result, force);
        results.push((id, result));
    }
    results
}

impl State {
    fn finish_revoke_lease(&mut self, id: &str, result: &Result<(), String>, force: bool) {
        self.leases.finish_revoke(id, result, force, OffsetDateTime::now_utc());
        self.wake.notify_one();
    }
}

/// Answer `reply` once `pending` revocations have run (immediately if there
/// are none). Failures stay in the table for the expiry task to retry.
pub(crate) fn revocations_then(shared: &Arc<Shared>, pending: Vec<PendingRevocation>, reply: Reply) -> Handled {
    if pending.is_empty() {
        return Handled::Now(reply);
    }
    let shared = Arc::clone(shared);
    Handled::Later(Box::pin(async move {
        run_revocations(shared, pending, false).await;
        reply
    }))
}
