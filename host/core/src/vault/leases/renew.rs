//! The renewal loop of [`LeaseManager`]: when each tracked lease is due, and
//! what happens then (renew, fetch fresh credentials for a path's live
//! credential, or let a lease Vault will not extend expire and drop it).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rand::Rng;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{LeaseApi, LeaseEvent, LeaseManager, MAX_CONCURRENT_RENEWALS, MAX_FAILURES, NextAction, Tracked};
use crate::vault::{Backoff, VaultError};

/// What is done with `t` when due; `live`: it is its path's live credential
/// in reuse mode.
pub(super) fn next_action(t: &Tracked, live: bool) -> NextAction {
    match (t.capped, live) {
        (false, _) => NextAction::Renew,
        (true, true) => NextAction::Refetch,
        (true, false) => NextAction::Expire,
    }
}

/// How long from now `t` is due, with `left` of its TTL remaining.
pub(super) fn wait(t: &Tracked, live: bool, left: Duration) -> Duration {
    match next_action(t, live) {
        NextAction::Renew => t.timing.sleep(left),
        NextAction::Refetch => refetch_wait(left),
        NextAction::Expire => left,
    }
}

/// When to fetch fresh credentials for a lease with `ttl` left: at 85–90 %
/// of it, and at least a second before expiry: Vault reports TTLs in whole
/// seconds, so the real expiry can be up to a second earlier than `ttl` says.
fn refetch_wait(ttl: Duration) -> Duration {
    let margin = ttl.saturating_sub(Duration::from_secs(1));
    ttl.mul_f64(0.85 + 0.05 * rand::rng().random::<f64>()).min(margin)
}

impl<A: LeaseApi> LeaseManager<A> {
    /// Renew, refetch and expire until `shutdown` flips to true.
    ///
    /// Each due lease gets its own task: one renewal stuck on a slow Vault
    /// (a request may retry for most of a minute) must not hold up the
    /// others. The global rate limit still spaces their starts, and at most
    /// [`MAX_CONCURRENT_RENEWALS`] are in flight. Renewals still running at
    /// shutdown are abandoned.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) {
        let slots = Arc::new(Semaphore::new(MAX_CONCURRENT_RENEWALS));
        let mut inflight = JoinSet::new();
        loop {
            let next = self.lock().queue.first().map(|(at, _)| *at);
            tokio::select! {
                _ = async { match next { Some(at) => tokio::time::sleep_until(at).await, None => std::future::pending().await } } => {}
                _ = self.wake.notified() => continue,
                Some(_) = inflight.join_next(), if !inflight.is_empty() => continue,
                _ = shutdown.wait_for(|s| *s) => break,
            }
            let now = Instant::now();
            let due: Vec<String> = {
                let mut st = self.lock();
                let due: Vec<(Instant, String)> = st.queue.iter().take_while(|(at, _)| *at <= now).cloned().collect();
                due.into_iter().map(|k| st.queue.take(&k).expect("present").1).collect()
            };
            for lease_id in due {
                let (manager, slots) = (self.clone(), slots.clone());
                inflight.spawn(async move {
                    let Ok(_slot) = slots.acquire_owned().await else { return };
                    manager.limiter.acquire().await;
                    let renewal = manager.act(&lease_id);
                    if crate::supervise::catch(&manager.metrics, "lease-renewal", None, renewal).await.is_err() {
                        tracing::error!(lease = %lease_id, "this lease is no longer renewed: its renewal panicked");
                    }
                });
            }
        }
        inflight.shutdown().await;
    }

    /// Act on one due lease and schedule its next action.
    async fn act(&self, lease_id: &str) {
        let now = Instant::now();
        let (path, increment, action, remaining, unconfirmed) = {
            let st = self.lock();
            let Some(t) = st.leases.get(lease_id) else { return };
            let live = st.live.get(&t.path).is_some_and(|id| id == lease_id);
            (t.path.clone(), t.increment, next_action(t, live), t.expires.saturating_duration_since(now), t.unconfirmed)
        };
        // A renewable lease read back from a record is asked about even if
        // its stored expiry has passed: the record may be behind.
        if remaining.is_zero() && (!unconfirmed || action != NextAction::Renew) {
            // Vault has forgotten it already: asking would only add load.
            let reason = match action {
                NextAction::Expire => "the lease reached its max TTL",
                _ => "the lease expired before it could be renewed",
            };
            self.drop_lease(lease_id, reason.into(), action == NextAction::Expire).await;
            return;
        }
        match action {
            NextAction::Expire => {
                // Woken before its expiry: nothing to do until then.
                let mut st = self.lock();
                if let Some(t) = st.leases.get_mut(lease_id) {
                    t.next = now + remaining;
                    st.queue.insert((now + remaining, lease_id.to_owned()));
                }
            }
            NextAction::Refetch => self.refetch(&path, lease_id).await,
            NextAction::Renew => self.renew(&path, lease_id, increment).await,
        }
    }

    /// Replace the live credential of `path` by fresh ones. The old lease
    /// is not revoked: its users keep it until it expires.
    async fn refetch(&self, path: &str, lease_id: &str) {
        match self.api.fetch(path).await {
            Ok(new) => {
                tracing::info!(path, old_lease = %lease_id, new_lease = %new.lease_id, "fetched fresh credentials before the old lease expires");
                self.emit(LeaseEvent::Refetched {
                    path: path.to_owned(),
                    old_lease_id: lease_id.to_owned(),
                    new_lease_id: new.lease_id.clone(),
                    ttl: new.lease_duration,
                });
                let old = self.lock().remove(lease_id);
                let record = self.track(&new, None);
                self.save(record).await;
                if old.is_some() {
                    self.forget(lease_id).await;
                }
            }
            Err(e) => self.failed(lease_id, e).await,
        }
    }

    async fn renew(&self, path: &str, lease_id: &str, increment: Duration) {
        match self.api.renew(lease_id, increment).await {
            Ok(r) => {
                let capped = r.lease_duration < increment || !r.renewable;
                let now = Instant::now();
                let record = {
                    let mut st = self.lock();
                    let live = st.live.get(path).is_some_and(|id| id == lease_id);
                    let Some(t) = st.leases.get_mut(lease_id) else { return };
                    t.failures = 0;
                    t.hard_failures = 0;
                    t.unconfirmed = false;
                    t.expires = now + r.lease_duration;
                    t.capped = capped;
                    if capped && t.max_expires.is_none() {
                        t.max_expires = Some(SystemTime::now() + r.lease_duration);
                    }
                    t.next = now + wait(t, live, r.lease_duration);
                    let (next, record) = (t.next, t.record(now));
                    st.queue.insert((next, lease_id.to_owned()));
                    record
                };
                if capped {
                    tracing::info!(path, lease = %lease_id, ttl = %humantime::format_duration(r.lease_duration), "lease renewal capped by max TTL");
                }
                self.emit(LeaseEvent::Renewed {
                    path: path.to_owned(),
                    lease_id: lease_id.to_owned(),
                    ttl: r.lease_duration,
                    capped,
                });
                self.save(record).await;
            }
            Err(e) if e.status() == Some(400) => {
                // "lease not found" / "lease is not renewable". A path's
                // live credential is replaced at once; any other lease is
                // gone for good.
                let live = {
                    let mut st = self.lock();
                    let live = st.live.get(path).is_some_and(|id| id == lease_id);
                    let now = Instant::now();
                    if let Some(t) = st.leases.get_mut(lease_id).filter(|_| live) {
                        t.capped = true;
                        t.next = now;
                        st.queue.insert((now, lease_id.to_owned()));
                    }
                    live
                };
                if live {
                    tracing::warn!(path, lease = %lease_id, error = %e, "lease cannot be renewed; fetching fresh credentials");
                } else {
                    self.drop_lease(lease_id, format!("vault will not renew it: {e}"), false).await;
                }
            }
            Err(e) => self.failed(lease_id, e).await,
        }
    }

    /// Book a failed renewal or refetch: back off and try again, or drop the
    /// lease once it has expired or failed [`MAX_FAILURES`] times in a way
    /// retrying cannot fix.
    async fn failed(&self, lease_id: &str, e: VaultError) {
        let transient = e.is_transient();
        let outcome = {
            let now = Instant::now();
            let mut st = self.lock();
            let Some(t) = st.leases.get_mut(lease_id) else { return };
            t.failures += 1;
            if !transient {
                t.hard_failures += 1;
            }
            let remaining = t.expires.saturating_duration_since(now);
            if remaining.is_zero() {
                Err(format!("the lease expired after {} failed tries; last: {e}", t.failures))
            } else if t.hard_failures >= MAX_FAILURES {
                Err(format!("{MAX_FAILURES} failures in a row that retrying cannot fix; last: {e}"))
            } else {
                // Backoff caps each wait at half the time left, so tries keep
                // coming until the very end of the lease, and never after it.
                t.next = now + Backoff::default().delay(t.failures, Some(remaining), &mut rand::rng());
                let (next, failures, path) = (t.next, t.failures, t.path.clone());
                st.queue.insert((next, lease_id.to_owned()));
                Ok((failures, path, remaining))
            }
        };
        match outcome {
            Err(reason) => self.drop_lease(lease_id, reason, false).await,
            Ok((failures, path, remaining)) => tracing::warn!(
                path,
                lease = %lease_id,
                failures,
                transient,
                budget = %humantime::format_duration(Duration::from_secs(remaining.as_secs())),
                error = %e,
                "lease renewal failed; backing off"
            ),
        }
    }

    /// Stop tracking a lease whose credential can no longer be kept alive:
    /// `expected` when it simply reached its max TTL, loudly otherwise.
    async fn drop_lease(&self, lease_id: &str, reason: String, expected: bool) {
        let Some(t) = self.lock().remove(lease_id) else { return };
        if expected {
            tracing::info!(path = %t.path, lease = %lease_id, %reason, "lease no longer tracked");
        } else {
            tracing::error!(path = %t.path, lease = %lease_id, %reason, "DROPPING LEASE: its credential will not be renewed");
        }
        self.forget(lease_id).await;
        self.emit(LeaseEvent::Dropped { path: t.path, lease_id: lease_id.to_owned(), reason });
    }
}
