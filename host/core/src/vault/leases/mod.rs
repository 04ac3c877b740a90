//! Dynamic secrets and the leases behind them.
//!
//! [`LeaseManager`] keeps every credential it handed out alive until it is
//! revoked or reaches its max TTL, and fixes what Vault Agent's users
//! complain about:
//!
//! - every lease handed out is tracked by its id, in a table bounded by a
//!   configured cap ([`LeaseError::Full`] when it is reached, before Vault
//!   mints anything), so a second request for a path never leaves the
//!   first caller's credential unrenewed;
//! - [`LeaseMode::Reuse`] is the Vault Agent way instead: a request for a
//!   path whose live credential still has a tenth of its TTL left gets that
//!   credential, and the live credential is replaced by fresh ones shortly
//!   before its max TTL (the replaced one is not revoked: it simply expires);
//! - renewable leases renew at ≈2/3 of their TTL, with a per-lease jitter
//!   (the 10–20 % grace of [`RenewalTiming`]), so replicas do not renew in step;
//! - a renewal that Vault capped at the max TTL (200 with a shorter
//!   `lease_duration`) is noticed: the lease is kept, unrenewed, until it
//!   expires, then dropped (logged); non-renewable leases likewise;
//! - one global rate limit spaces out all renewals, so thousands of leases
//!   never hit Vault in one burst;
//! - a Vault outage does not cost a lease: transient errors (unreachable,
//!   5xx, 429, 503 sealed) are retried with jittered exponential backoff,
//!   never past expiry, for as long as the lease has TTL left; only errors
//!   that retrying cannot fix (403, a malformed answer) count towards
//!   [`MAX_FAILURES`], after which the lease is dropped, loudly;
//! - with [`LeaseRecords`], every tracked lease (its id and times, never the
//!   credential) is kept in Vault KV, and [`LeaseManager::restore`] picks
//!   them up in the next daemon.
//!
//! A deadline queue (ordered set of next-action times) drives one task; a
//! newly tracked lease wakes it early. Each due renewal runs in a task of
//! its own (at most [`MAX_CONCURRENT_RENEWALS`] at once), so one slow
//! request delays no other lease ([`renew`] has that loop). [`LeaseApi`] is
//! the Vault side, so the timing can be tested on tokio's paused clock.

mod api;
mod records;
mod renew;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::sync::{Notify, broadcast};
use tokio::time::Instant;

pub(crate) use api::ttl;
pub use api::{DynamicSecret, LeaseApi, LeaseEvent, LeaseStatus, NextAction, Renewed, parse_dynamic, parse_renewed};
pub use records::{LeaseRecord, LeaseRecords, RecordProblem};

use super::VaultError;
use super::lifetime::RenewalTiming;
use crate::secret::SecretJson;

/// Renewals and refetches in flight at once, at most.
pub const MAX_CONCURRENT_RENEWALS: usize = 16;

/// Consecutive failures that retrying cannot fix (403, a malformed answer)
/// after which a lease is dropped. Transient failures never count: they are
/// retried until the lease expires.
pub const MAX_FAILURES: u32 = 5;

/// Leases tracked at once unless configured otherwise.
pub const DEFAULT_MAX_LEASES: usize = 10_000;

/// What a request for a path's credential gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LeaseMode {
    /// A fresh credential each time; every one is renewed until revoked or
    /// at its max TTL.
    Each,
    /// The path's live credential while it has a tenth of its TTL left (as
    /// Vault Agent's cache does); it is replaced by fresh credentials before
    /// Vault's max TTL ends it.
    #[default]
    Reuse,
}

/// Why a credential was not handed out.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The table is full: nothing was asked of Vault.
    #[error(
        "already tracking {limit} leases, the configured maximum (`[vault] max_tracked_leases`): revoke some (DELETE /leases/<id>) or wait for them to expire"
    )]
    Full { limit: usize },
}

struct Tracked {
    path: String,
    lease_id: String,
    /// The credential, kept only while it is the live credential of its
    /// path in [`LeaseMode::Reuse`]: nothing else needs it again.
    data: Option<SecretJson>,
    /// The TTL first issued: what every renewal asks for.
    increment: Duration,
    expires: Instant,
    next: Instant,
    timing: RenewalTiming,
    /// Renewal no longer extends it (max TTL reached, or not renewable).
    capped: bool,
    /// Its latest possible expiry, once Vault capped a renewal.
    max_expires: Option<SystemTime>,
    /// Read back from a record: its stored expiry may be behind the truth
    /// (a record write failed), so Vault is asked before it is dropped.
    unconfirmed: bool,
    /// Failures in a row, of any kind: they drive the backoff.
    failures: u32,
    /// Failures in a row that retrying cannot fix: they drop the lease.
    hard_failures: u32,
}

impl Tracked {
    fn new(secret: &DynamicSecret, keep_data: bool, now: Instant) -> Self {
        let timing = RenewalTiming::for_ttl(secret.lease_duration, &mut rand::rng());
        Self {
            path: secret.path.clone(),
            lease_id: secret.lease_id.clone(),
            data: keep_data.then(|| secret.data.clone()),
            increment: secret.lease_duration,
            expires: now + secret.lease_duration,
            next: now,
            timing,
            capped: !secret.renewable,
            max_expires: None,
            unconfirmed: false,
            failures: 0,
            hard_failures: 0,
        }
    }

    fn record(&self, now: Instant) -> LeaseRecord {
        let wall = SystemTime::now() + self.expires.saturating_duration_since(now);
        LeaseRecord {
            lease_id: self.lease_id.clone(),
            path: self.path.clone(),
            renewable: !self.capped,
            increment_seconds: self.increment.as_secs(),
            expires_at: records::unix(wall),
            max_expires_at: self.max_expires.map(records::unix),
        }
    }
}

#[derive(Default)]
struct State {
    /// By lease id.
    leases: HashMap<String, Tracked>,
    /// [`LeaseMode::Reuse`]: the lease id of each path's live credential.
    live: HashMap<String, String>,
    /// (due, lease id).
    queue: BTreeSet<(Instant, String)>,
    /// Slots taken by fetches still waiting for Vault.
    reserved: usize,
}

impl State {
    /// Stop tracking `lease_id`; what it was, if tracked.
    fn remove(&mut self, lease_id: &str) -> Option<Tracked> {
        let t = self.leases.remove(lease_id)?;
        self.queue.remove(&(t.next, t.lease_id.clone()));
        if self.live.get(&t.path).is_some_and(|id| id == lease_id) {
            self.live.remove(&t.path);
        }
        Some(t)
    }

    /// Track `t`, due at `t.next`.
    fn insert(&mut self, t: Tracked) {
        if let Some(old) = self.leases.remove(&t.lease_id) {
            self.queue.remove(&(old.next, old.lease_id));
        }
        self.queue.insert((t.next, t.lease_id.clone()));
        self.leases.insert(t.lease_id.clone(), t);
    }
}

/// Keeps dynamic secrets alive. Cheap to clone.
pub struct LeaseManager<A: LeaseApi> {
    api: Arc<A>,
    state: Arc<Mutex<State>>,
    wake: Arc<Notify>,
    events: broadcast::Sender<LeaseEvent>,
    limiter: Arc<crate::pace::Pace>,
    /// Where a renewal that panics is counted ([`crate::supervise`]).
    metrics: crate::metrics::Metrics,
    mode: LeaseMode,
    max_leases: usize,
    records: Option<Arc<LeaseRecords>>,
}

impl<A: LeaseApi> Clone for LeaseManager<A> {
    fn clone(&self) -> Self {
        Self {
            api: self.api.clone(),
            state: self.state.clone(),
            wake: self.wake.clone(),
            events: self.events.clone(),
            limiter: self.limiter.clone(),
            metrics: self.metrics.clone(),
            mode: self.mode,
            max_leases: self.max_leases,
            records: self.records.clone(),
        }
    }
}

/// A slot in the table, taken before Vault is asked and given back if the
/// fetch fails or its caller goes away, so the cap holds under concurrency.
struct Reservation<'a>(&'a Mutex<State>);

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let mut st = self.0.lock().unwrap_or_else(|p| p.into_inner());
        st.reserved = st.reserved.saturating_sub(1);
    }
}

impl<A: LeaseApi> LeaseManager<A> {
    /// A manager renewing at most `renewals_per_second` leases per second,
    /// in [`LeaseMode::Reuse`], tracking at most [`DEFAULT_MAX_LEASES`].
    pub fn new(api: Arc<A>, renewals_per_second: u32) -> Self {
        let (events, _) = broadcast::channel(256);
        Self {
            api,
            state: Arc::default(),
            wake: Arc::default(),
            events,
            limiter: Arc::new(crate::pace::Pace::per_second(renewals_per_second)),
            metrics: crate::metrics::Metrics::default(),
            mode: LeaseMode::default(),
            max_leases: DEFAULT_MAX_LEASES,
            records: None,
        }
    }

    /// Count renewals that panic in `metrics` (the daemon's, so that
    /// `/readyz` sees them).
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Hand out credentials as `mode` says.
    pub fn with_mode(mut self, mode: LeaseMode) -> Self {
        self.mode = mode;
        self
    }

    /// Track at most `max` leases (at least one).
    pub fn with_max_leases(mut self, max: usize) -> Self {
        self.max_leases = max.max(1);
        self
    }

    /// Keep every tracked lease in `records`, for [`restore`](Self::restore).
    pub fn with_records(mut self, records: LeaseRecords) -> Self {
        self.records = Some(Arc::new(records));
        self
    }

    pub fn subscribe(&self) -> broadcast::Receiver<LeaseEvent> {
        self.events.subscribe()
    }

    fn emit(&self, e: LeaseEvent) {
        let _ = self.events.send(e);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A credential for `path` (e.g. `database/creds/app`), kept alive from
    /// now on: a fresh one, or in [`LeaseMode::Reuse`] the path's live one.
    pub async fn fetch(&self, path: &str) -> Result<DynamicSecret, LeaseError> {
        if self.mode == LeaseMode::Reuse
            && let Some(live) = self.live(path)
        {
            return Ok(live);
        }
        let slot = self.reserve()?;
        let secret = self.api.fetch(path).await?;
        // Tracked before anything else can be awaited: a caller that goes
        // away now must not leave a minted credential untracked.
        let record = self.track(&secret, Some(slot));
        self.save(record).await;
        Ok(secret)
    }

    /// Take a slot, or say the table is full.
    fn reserve(&self) -> Result<Reservation<'_>, LeaseError> {
        let mut st = self.lock();
        if st.leases.len() + st.reserved >= self.max_leases {
            tracing::warn!(limit = self.max_leases, "lease table full: no new credential handed out");
            return Err(LeaseError::Full { limit: self.max_leases });
        }
        st.reserved += 1;
        Ok(Reservation(&self.state))
    }

    /// The live credential of `path` if it has more than a tenth of its TTL
    /// (and a second) left, as a client should get it: with what is left.
    fn live(&self, path: &str) -> Option<DynamicSecret> {
        let st = self.lock();
        let t = st.leases.get(st.live.get(path)?)?;
        let left = t.expires.saturating_duration_since(Instant::now());
        if left <= (t.increment / 10).max(Duration::from_secs(1)) {
            return None;
        }
        Some(DynamicSecret {
            path: t.path.clone(),
            lease_id: t.lease_id.clone(),
            lease_duration: Duration::from_secs(left.as_secs()),
            renewable: !t.capped,
            data: t.data.clone()?,
        })
    }

    /// Track `secret` from now on (in reuse mode as its path's live
    /// credential), giving back `slot`; the record to keep.
    fn track(&self, secret: &DynamicSecret, slot: Option<Reservation<'_>>) -> LeaseRecord {
        let now = Instant::now();
        let reuse = self.mode == LeaseMode::Reuse;
        let mut t = Tracked::new(secret, reuse, now);
        t.next = now + renew::wait(&t, reuse, secret.lease_duration);
        tracing::info!(
            path = %secret.path,
            lease = %secret.lease_id,
            budget = %humantime::format_duration(secret.lease_duration),
            renewable = secret.renewable,
            "renewal budget: vault may be unreachable this long before the lease expires"
        );
        self.emit(LeaseEvent::Tracked {
            path: secret.path.clone(),
            lease_id: secret.lease_id.clone(),
            ttl: secret.lease_duration,
        });
        let record = t.record(now);
        let mut st = self.lock();
        if reuse {
            st.live.insert(secret.path.clone(), secret.lease_id.clone());
        }
        st.insert(t);
        drop(st);
        // Given back only now, so the slot and the lease are never both
        // missing from the count.
        drop(slot);
        self.wake.notify_one();
        record
    }

    /// Keep `record` if there are records; a failure is logged (the lease
    /// is still renewed by this daemon, only not by the next one).
    async fn save(&self, record: LeaseRecord) {
        let Some(records) = &self.records else { return };
        if let Err(e) = records.save(&record).await {
            tracing::warn!(lease = %record.lease_id, at = %records.describe(), error = %e, "could not keep the lease record: a restarted daemon would not renew this lease");
        }
    }

    /// Forget `lease_id`'s record if there are records.
    async fn forget(&self, lease_id: &str) {
        let Some(records) = &self.records else { return };
        if let Err(e) = records.delete(lease_id).await {
            tracing::warn!(lease = %lease_id, at = %records.describe(), error = %e, "could not delete the lease record; a restarted daemon will find the lease gone");
        }
    }

    /// Track the leases kept in the records (by an earlier daemon, or
    /// another replica): each is renewed at once, since its stored expiry
    /// may be behind, and Vault's answer decides. Records whose max TTL has
    /// passed are deleted. The number of leases now tracked from records.
    pub async fn restore(&self) -> Result<usize, VaultError> {
        let Some(records) = &self.records else { return Ok(0) };
        let room = self.max_leases.saturating_sub(self.lock().leases.len());
        let mut restored = 0;
        for r in records.load(room).await? {
            if let Some(Err(ago)) = r.max_expires_at.map(records::from_now) {
                tracing::info!(lease = %r.lease_id, path = %r.path, ago = %humantime::format_duration(Duration::from_secs(ago.as_secs())), "a kept lease reached its max TTL while no daemon tracked it; record deleted");
                self.forget(&r.lease_id).await;
                continue;
            }
            let now = Instant::now();
            let secret = DynamicSecret {
                path: r.path.clone(),
                lease_id: r.lease_id.clone(),
                lease_duration: Duration::from_secs(r.increment_seconds),
                renewable: r.renewable,
                data: SecretJson::new(String::new()),
            };
            let mut t = Tracked::new(&secret, false, now);
            t.expires = now + records::from_now(r.expires_at).unwrap_or_default();
            t.max_expires = r.max_expires_at.map(|at| SystemTime::UNIX_EPOCH + Duration::from_secs(at));
            t.unconfirmed = true;
            let mut st = self.lock();
            if st.leases.contains_key(&r.lease_id) {
                continue;
            }
            // Requests may have filled the table meanwhile: the cap holds.
            if st.leases.len() + st.reserved >= self.max_leases {
                tracing::error!(limit = self.max_leases, lease = %r.lease_id, "lease table full: this kept lease and the rest are not renewed by this daemon");
                break;
            }
            st.insert(t);
            restored += 1;
        }
        if restored > 0 {
            tracing::info!(restored, at = %records.describe(), "renewing the leases kept by an earlier daemon");
            self.wake.notify_one();
        }
        Ok(restored)
    }

    /// The live credential for `path` ([`LeaseMode::Reuse`]), if tracked.
    pub fn current(&self, path: &str) -> Option<DynamicSecret> {
        let st = self.lock();
        let t = st.leases.get(st.live.get(path)?)?;
        Some(DynamicSecret {
            path: t.path.clone(),
            lease_id: t.lease_id.clone(),
            lease_duration: t.increment,
            renewable: !t.capped,
            data: t.data.clone()?,
        })
    }

    /// Every tracked lease, by path, then lease id.
    pub fn list(&self) -> Vec<LeaseStatus> {
        let st = self.lock();
        let mut out: Vec<LeaseStatus> = st
            .leases
            .values()
            .map(|t| LeaseStatus {
                path: t.path.clone(),
                lease_id: t.lease_id.clone(),
                renewable: !t.capped,
                expires_at: t.expires,
                next_action_at: t.next,
                consecutive_failures: t.failures,
                next_action: renew::next_action(t, st.live.get(&t.path).is_some_and(|id| *id == t.lease_id)),
            })
            .collect();
        out.sort_by(|a, b| (&a.path, &a.lease_id).cmp(&(&b.path, &b.lease_id)));
        out
    }

    /// Whether `lease_id` is tracked.
    pub fn tracks(&self, lease_id: &str) -> bool {
        self.lock().leases.contains_key(lease_id)
    }

    /// Revoke a lease in Vault and stop tracking it.
    pub async fn revoke(&self, lease_id: &str) -> Result<(), VaultError> {
        self.api.revoke(lease_id).await?;
        let removed = self.lock().remove(lease_id);
        if let Some(t) = removed {
            self.forget(lease_id).await;
            self.emit(LeaseEvent::Revoked { path: t.path, lease_id: lease_id.to_owned() });
        }
        Ok(())
    }

    /// Revoke every tracked lease (for shutdown, if configured).
    pub async fn revoke_all(&self) {
        let ids: Vec<String> = self.list().into_iter().map(|l| l.lease_id).collect();
        for id in ids {
            if let Err(e) = self.revoke(&id).await {
                tracing::warn!(lease = %id, error = %e, "could not revoke lease at shutdown");
            }
        }
    }
}
