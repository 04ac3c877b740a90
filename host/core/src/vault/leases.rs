//! Dynamic secrets and the leases behind them.
//!
//! [`LeaseManager`] keeps every credential it handed out alive, like Vault
//! Agent's templates do, and fixes what their users complain about:
//!
//! - renewable leases renew at ≈2/3 of their TTL, with a per-lease jitter
//!   (the 10–20 % grace of [`RenewalTiming`]), so replicas do not renew in step;
//! - a renewal that Vault capped at the max TTL (200 with a shorter
//!   `lease_duration`) is noticed, and fresh credentials are fetched at
//!   85–90 % of what is left; non-renewable leases get the same treatment;
//! - the old credential is never revoked when a new one is fetched (it simply
//!   expires), so nobody loses a working credential to a refresh (vault#17541);
//! - one global rate limit spaces out all renewals, so thousands of leases
//!   never hit Vault in one burst;
//! - a Vault outage does not cost a lease: transient errors (unreachable,
//!   5xx, 429, 503 sealed) are retried with jittered exponential backoff,
//!   never past expiry, for as long as the lease has TTL left; only errors
//!   that retrying cannot fix (403, a malformed answer) count towards
//!   [`MAX_FAILURES`], after which the lease is dropped, loudly, as it is
//!   when it expires during an outage.
//!
//! A deadline queue (ordered set of next-action times) drives one task; a
//! newly tracked lease wakes it early. Each due renewal runs in a task of
//! its own (at most [`MAX_CONCURRENT_RENEWALS`] at once), so one slow
//! request delays no other lease. [`LeaseApi`] is the Vault side, so the
//! timing can be tested on tokio's paused clock.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use serde_json::{Value, json};
use tokio::sync::{Notify, Semaphore, broadcast, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::lifetime::RenewalTiming;
use super::{AnswerError, Backoff, VaultClient, VaultError};
use crate::secret::SecretJson;

/// Renewals and refetches in flight at once, at most.
pub const MAX_CONCURRENT_RENEWALS: usize = 16;

/// Consecutive failures that retrying cannot fix (403, a malformed answer)
/// after which a lease is dropped. Transient failures never count: they are
/// retried until the lease expires.
pub const MAX_FAILURES: u32 = 5;

/// A dynamic secret with its lease.
#[derive(Debug, Clone)]
pub struct DynamicSecret {
    /// Where it came from, e.g. `database/creds/app`; fetching it again
    /// gives a fresh credential.
    pub path: String,
    pub lease_id: String,
    pub lease_duration: Duration,
    pub renewable: bool,
    pub data: SecretJson,
}

/// Vault's answer to a lease renewal.
#[derive(Debug, Clone)]
pub struct Renewed {
    pub lease_duration: Duration,
    pub renewable: bool,
}

/// The Vault calls the manager makes.
pub trait LeaseApi: Send + Sync + 'static {
    fn fetch(&self, path: &str) -> impl Future<Output = Result<DynamicSecret, VaultError>> + Send;
    fn renew(&self, lease_id: &str, increment: Duration) -> impl Future<Output = Result<Renewed, VaultError>> + Send;
    fn revoke(&self, lease_id: &str) -> impl Future<Output = Result<(), VaultError>> + Send;
}

impl LeaseApi for VaultClient {
    async fn fetch(&self, path: &str) -> Result<DynamicSecret, VaultError> {
        let resp = self.request("GET", path, None).await?;
        parse_dynamic(path, &resp.body.unwrap_or(Value::Null))
            .map_err(|e| VaultError::Protocol { path: path.to_owned(), message: e.to_string() })
    }

    async fn renew(&self, lease_id: &str, increment: Duration) -> Result<Renewed, VaultError> {
        let body = json!({ "lease_id": lease_id, "increment": increment.as_secs() }).to_string();
        let resp = self.request("PUT", "sys/leases/renew", Some(body)).await?;
        Ok(parse_renewed(&resp.body.unwrap_or(Value::Null)))
    }

    async fn revoke(&self, lease_id: &str) -> Result<(), VaultError> {
        let body = json!({ "lease_id": lease_id }).to_string();
        self.request("PUT", "sys/leases/revoke", Some(body)).await.map(|_| ())
    }
}

/// A daemon without Vault tracks no lease: every call says so.
impl LeaseApi for Option<VaultClient> {
    async fn fetch(&self, path: &str) -> Result<DynamicSecret, VaultError> {
        self.as_ref().ok_or_else(no_vault)?.fetch(path).await
    }

    async fn renew(&self, lease_id: &str, increment: Duration) -> Result<Renewed, VaultError> {
        self.as_ref().ok_or_else(no_vault)?.renew(lease_id, increment).await
    }

    async fn revoke(&self, lease_id: &str) -> Result<(), VaultError> {
        self.as_ref().ok_or_else(no_vault)?.revoke(lease_id).await
    }
}

fn no_vault() -> VaultError {
    VaultError::Config("this daemon runs without Vault".into())
}

/// The longest TTL believed from an answer: ten years. Vault's own ceiling
/// (`max_lease_ttl`) is far lower; a larger number is a broken or hostile
/// server, and must not overflow the clock arithmetic that plans renewals.
const MAX_TTL: Duration = Duration::from_secs(3650 * 86_400);

/// A TTL in seconds from a Vault answer, at most [`MAX_TTL`].
pub(crate) fn ttl(v: &Value) -> Duration {
    Duration::from_secs(v.as_u64().unwrap_or(0)).min(MAX_TTL)
}

/// Parse a dynamic secret answer (`GET database/creds/<role>` and alike).
pub fn parse_dynamic(path: &str, body: &Value) -> Result<DynamicSecret, AnswerError> {
    let data = body["data"].as_object().ok_or(AnswerError::NoDynamicData)?;
    Ok(DynamicSecret {
        path: path.to_owned(),
        lease_id: body["lease_id"].as_str().unwrap_or_default().to_owned(),
        lease_duration: ttl(&body["lease_duration"]),
        renewable: body["renewable"].as_bool().unwrap_or(false),
        data: SecretJson::from_map(data),
    })
}

/// Parse a `sys/leases/renew` answer.
pub fn parse_renewed(body: &Value) -> Renewed {
    Renewed { lease_duration: ttl(&body["lease_duration"]), renewable: body["renewable"].as_bool().unwrap_or(false) }
}

/// Something that happened to a lease. Holds ids and times, never values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseEvent {
    Tracked {
        path: String,
        lease_id: String,
        ttl: Duration,
    },
    Renewed {
        path: String,
        lease_id: String,
        ttl: Duration,
        capped: bool,
    },
    /// Fresh credentials replaced a lease that could not be renewed further.
    Refetched {
        path: String,
        old_lease_id: String,
        new_lease_id: String,
        ttl: Duration,
    },
    Dropped {
        path: String,
        lease_id: String,
        reason: String,
    },
    Revoked {
        path: String,
        lease_id: String,
    },
}

/// One tracked lease, as the API shows it.
#[derive(Debug, Clone)]
pub struct LeaseStatus {
    pub path: String,
    pub lease_id: String,
    pub renewable: bool,
    pub expires_at: Instant,
    pub next_action_at: Instant,
    pub consecutive_failures: u32,
}

impl LeaseStatus {
    /// How long Vault may be unreachable from now before this lease expires.
    pub fn budget(&self, now: Instant) -> Duration {
        self.expires_at.saturating_duration_since(now)
    }
}

struct Tracked {
    secret: DynamicSecret,
    /// The TTL first issued: what every renewal asks for.
    increment: Duration,
    expires: Instant,
    next: Instant,
    timing: RenewalTiming,
    /// Renewal stopped extending (max TTL reached): fetch anew when due.
    refetch: bool,
    /// Failures in a row, of any kind: they drive the backoff.
    failures: u32,
    /// Failures in a row that retrying cannot fix: they drop the lease.
    hard_failures: u32,
}

#[derive(Default)]
struct State {
    /// By path: one live credential per dynamic secret path.
    leases: HashMap<String, Tracked>,
    queue: BTreeSet<(Instant, String)>,
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
        }
    }
}

impl<A: LeaseApi> LeaseManager<A> {
    /// A manager renewing at most `renewals_per_second` leases per second.
    pub fn new(api: Arc<A>, renewals_per_second: u32) -> Self {
        let (events, _) = broadcast::channel(256);
        Self {
            api,
            state: Arc::default(),
            wake: Arc::default(),
            events,
            limiter: Arc::new(crate::pace::Pace::per_second(renewals_per_second)),
            metrics: crate::metrics::Metrics::default(),
        }
    }

    /// Count renewals that panic in `metrics` (the daemon's, so that
    /// `/readyz` sees them).
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    pub fn subscribe(&self) -> broadcast::Receiver<LeaseEvent> {
        self.events.subscribe()
    }

    fn emit(&self, e: LeaseEvent) {
        let _ = self.events.send(e);
    }

    /// Fetch a dynamic secret (e.g. `database/creds/app`) and keep it alive.
    pub async fn fetch(&self, path: &str) -> Result<DynamicSecret, VaultError> {
        let secret = self.api.fetch(path).await?;
        self.track(secret.clone());
        Ok(secret)
    }

    /// Keep `secret` alive from now on (replacing any lease of its path).
    pub fn track(&self, secret: DynamicSecret) {
        let now = Instant::now();
        let timing = RenewalTiming::for_ttl(secret.lease_duration, &mut rand::rng());
        let refetch = !secret.renewable;
        let next = now + first_wait(&timing, secret.lease_duration, refetch);
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
        let path = secret.path.clone();
        let tracked = Tracked {
            increment: secret.lease_duration,
            expires: now + secret.lease_duration,
            next,
            timing,
            refetch,
            failures: 0,
            hard_failures: 0,
            secret,
        };
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = st.leases.insert(path.clone(), tracked) {
            st.queue.remove(&(old.next, path.clone()));
        }
        st.queue.insert((next, path));
        drop(st);
        self.wake.notify_one();
    }

    /// The live credential for `path`, if tracked.
    pub fn current(&self, path: &str) -> Option<DynamicSecret> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).leases.get(path).map(|t| t.secret.clone())
    }

    /// Every tracked lease.
    pub fn list(&self) -> Vec<LeaseStatus> {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<LeaseStatus> = st
            .leases
            .values()
            .map(|t| LeaseStatus {
                path: t.secret.path.clone(),
                lease_id: t.secret.lease_id.clone(),
                renewable: t.secret.renewable && !t.refetch,
                expires_at: t.expires,
                next_action_at: t.next,
                consecutive_failures: t.failures,
            })
            .collect();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }

    /// Revoke a lease in Vault and stop tracking it.
    pub async fn revoke(&self, lease_id: &str) -> Result<(), VaultError> {
        self.api.revoke(lease_id).await?;
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let path = st.leases.iter().find(|(_, t)| t.secret.lease_id == lease_id).map(|(p, _)| p.clone());
        if let Some(path) = path {
            let t = st.leases.remove(&path).expect("found above");
            st.queue.remove(&(t.next, path.clone()));
            drop(st);
            self.emit(LeaseEvent::Revoked { path, lease_id: lease_id.to_owned() });
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

    /// Renew and refetch until `shutdown` flips to true.
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
            let next = self.state.lock().unwrap_or_else(|p| p.into_inner()).queue.first().map(|(at, _)| *at);
            tokio::select! {
                _ = async { match next { Some(at) => tokio::time::sleep_until(at).await, None => std::future::pending().await } } => {}
                _ = self.wake.notified() => continue,
                Some(_) = inflight.join_next(), if !inflight.is_empty() => continue,
                _ = shutdown.wait_for(|s| *s) => break,
            }
            let now = Instant::now();
            let due: Vec<String> = {
                let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                let due: Vec<(Instant, String)> = st.queue.iter().take_while(|(at, _)| *at <= now).cloned().collect();
                due.into_iter().map(|k| st.queue.take(&k).expect("present").1).collect()
            };
            for path in due {
                let (manager, slots) = (self.clone(), slots.clone());
                inflight.spawn(async move {
                    let Ok(_slot) = slots.acquire_owned().await else { return };
                    manager.limiter.acquire().await;
                    let renewal = manager.act(&path);
                    if crate::supervise::catch(&manager.metrics, "lease-renewal", None, renewal).await.is_err() {
                        tracing::error!(path = %path, "this lease is no longer renewed: its renewal panicked");
                    }
                });
            }
        }
        inflight.shutdown().await;
    }

    /// Renew or refetch one due lease and schedule its next action.
    async fn act(&self, path: &str) {
        let (lease_id, increment, refetch, remaining) = {
            let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let Some(t) = st.leases.get(path) else { return };
            // Only a lease Vault will not extend (capped, not renewable) is
            // replaced. One whose renewals failed is still renewed, even
            // late: its users hold this credential, and a fresh one would
            // leave theirs to expire.
            let remaining = t.expires.saturating_duration_since(Instant::now());
            (t.secret.lease_id.clone(), t.increment, t.refetch, remaining)
        };
        if remaining.is_zero() {
            // Vault has forgotten it already: asking would only add load.
            self.drop_lease(path, &lease_id, "the lease expired before it could be renewed".into());
            return;
        }
        if refetch {
            match self.api.fetch(path).await {
                Ok(new) => {
                    tracing::info!(path, old_lease = %lease_id, new_lease = %new.lease_id, "fetched fresh credentials before the old lease expires");
                    self.emit(LeaseEvent::Refetched {
                        path: path.to_owned(),
                        old_lease_id: lease_id,
                        new_lease_id: new.lease_id.clone(),
                        ttl: new.lease_duration,
                    });
                    self.track(new);
                }
                Err(e) => self.failed(path, &lease_id, e),
            }
            return;
        }
        match self.api.renew(&lease_id, increment).await {
            Ok(r) => {
                let capped = r.lease_duration < increment;
                let now = Instant::now();
                let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                let Some(t) = st.leases.get_mut(path).filter(|t| t.secret.lease_id == lease_id) else { return };
                t.failures = 0;
                t.hard_failures = 0;
                t.expires = now + r.lease_duration;
                t.refetch = capped || !r.renewable;
                t.next = now + first_wait(&t.timing, r.lease_duration, t.refetch);
                let next = t.next;
                st.queue.insert((next, path.to_owned()));
                drop(st);
                if capped {
                    tracing::info!(path, lease = %lease_id, ttl = %humantime::format_duration(r.lease_duration), "lease renewal capped by max TTL; will fetch fresh credentials");
                }
                self.emit(LeaseEvent::Renewed { path: path.to_owned(), lease_id, ttl: r.lease_duration, capped });
            }
            Err(e) if e.status() == Some(400) => {
                // "lease not found" / "lease is not renewable": fetch anew now.
                let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                if let Some(t) = st.leases.get_mut(path).filter(|t| t.secret.lease_id == lease_id) {
                    t.refetch = true;
                    t.next = now;
                    st.queue.insert((now, path.to_owned()));
                }
                tracing::warn!(path, lease = %lease_id, error = %e, "lease cannot be renewed; fetching fresh credentials");
            }
            Err(e) => self.failed(path, &lease_id, e),
        }
    }

    /// Book a failed renewal or refetch: back off and try again, or drop the
    /// lease once it has expired or failed [`MAX_FAILURES`] times in a way
    /// retrying cannot fix.
    fn failed(&self, path: &str, lease_id: &str, e: VaultError) {
        let now = Instant::now();
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let Some(t) = st.leases.get_mut(path).filter(|t| t.secret.lease_id == lease_id) else { return };
        let transient = e.is_transient();
        t.failures += 1;
        if !transient {
            t.hard_failures += 1;
        }
        let remaining = t.expires.saturating_duration_since(now);
        let reason = if remaining.is_zero() {
            Some(format!("the lease expired after {} failed tries; last: {e}", t.failures))
        } else if t.hard_failures >= MAX_FAILURES {
            Some(format!("{MAX_FAILURES} failures in a row that retrying cannot fix; last: {e}"))
        } else {
            None
        };
        if let Some(reason) = reason {
            drop(st);
            self.drop_lease(path, lease_id, reason);
            return;
        }
        // Backoff caps each wait at half the time left, so tries keep
        // coming until the very end of the lease, and never after it.
        t.next = now + Backoff::default().delay(t.failures, Some(remaining), &mut rand::rng());
        let (next, failures) = (t.next, t.failures);
        st.queue.insert((next, path.to_owned()));
        drop(st);
        tracing::warn!(
            path,
            lease = %lease_id,
            failures,
            transient,
            budget = %humantime::format_duration(Duration::from_secs(remaining.as_secs())),
            error = %e,
            "lease renewal failed; backing off"
        );
    }

    /// Stop tracking a lease whose credential can no longer be kept alive.
    fn drop_lease(&self, path: &str, lease_id: &str, reason: String) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.leases.get(path).is_none_or(|t| t.secret.lease_id != lease_id) {
            return;
        }
        st.leases.remove(path);
        drop(st);
        tracing::error!(path, lease = %lease_id, %reason, "DROPPING LEASE: its credential will not be renewed");
        self.emit(LeaseEvent::Dropped { path: path.to_owned(), lease_id: lease_id.to_owned(), reason });
    }
}

/// When to act on a lease just obtained or renewed: renew at the timing's
/// sleep, or (to refetch) at 85–90 % of the TTL, and at least a second
/// before expiry: Vault reports TTLs in whole seconds, so the real expiry
/// can be up to a second earlier than `ttl` says.
fn first_wait(timing: &RenewalTiming, ttl: Duration, refetch: bool) -> Duration {
    if refetch {
        let margin = ttl.saturating_sub(Duration::from_secs(1));
        ttl.mul_f64(0.85 + 0.05 * rand::rng().random::<f64>()).min(margin)
    } else {
        timing.sleep(ttl)
    }
}
