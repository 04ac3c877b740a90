//! Token and lease renewal timing, on tokio's paused clock.
//!
//! The watcher and the lease manager talk to Vault through the `TokenApi` and
//! `LeaseApi` traits; here those are scripted so hours of renewals run in
//! milliseconds and every call's simulated time can be checked. The same
//! loops against the dev server over real HTTP are in `vault_identity.rs`.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rotator_core::secret::SecretJson;
use rotator_core::vault::leases::{DynamicSecret, LeaseApi, LeaseEvent, LeaseManager, Renewed};
use rotator_core::vault::lifetime::{TokenApi, TokenStatus, watch_token};
use rotator_core::vault::{TokenLease, VaultError};
use tokio::sync::watch;
use tokio::time::Instant;

fn lease(ttl: u64, renewable: bool) -> TokenLease {
    TokenLease { ttl: Duration::from_secs(ttl), renewable, policies: vec![], accessor: "acc".into() }
}

fn status(code: u16) -> VaultError {
    VaultError::Status { status: code, method: "POST".into(), path: "auth/token/renew-self".into(), errors: vec![] }
}

/// A scripted Vault for the token watcher: answers come from closures of
/// (call number, seconds since start); every call's time is recorded.
struct Script {
    start: Instant,
    can_login: bool,
    renew: Box<dyn Fn(usize, f64) -> Result<TokenLease, VaultError> + Send + Sync>,
    login: Box<dyn Fn(usize, f64) -> Result<Option<TokenLease>, VaultError> + Send + Sync>,
    calls: Mutex<Vec<(&'static str, f64)>>,
}

impl Script {
    /// `login: None` stands for the token auth method, which cannot log in.
    fn new(
        renew: impl Fn(usize, f64) -> Result<TokenLease, VaultError> + Send + Sync + 'static,
        login: Option<fn() -> TokenLease>,
    ) -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            can_login: login.is_some(),
            renew: Box::new(renew),
            login: Box::new(move |_, _| Ok(login.map(|f| f()))),
            calls: Mutex::default(),
        })
    }

    fn record(&self, what: &'static str) -> (usize, f64) {
        let t = self.start.elapsed().as_secs_f64();
        let mut calls = self.calls.lock().unwrap();
        let n = calls.iter().filter(|(w, _)| *w == what).count();
        calls.push((what, t));
        (n, t)
    }

    fn times(&self, what: &str) -> Vec<f64> {
        self.calls.lock().unwrap().iter().filter(|(w, _)| *w == what).map(|(_, t)| *t).collect()
    }
}

impl TokenApi for Script {
    fn can_login(&self) -> bool {
        self.can_login
    }
    async fn renew_self(&self) -> Result<TokenLease, VaultError> {
        let (n, t) = self.record("renew");
        (self.renew)(n, t)
    }
    async fn login(&self) -> Result<Option<TokenLease>, VaultError> {
        let (n, t) = self.record("login");
        (self.login)(n, t)
    }
}

/// Run the watcher for `hours` of simulated time.
async fn watch_for(api: Arc<Script>, initial: TokenLease, secs: u64) -> TokenStatus {
    let status = Arc::new(RwLock::new(TokenStatus::default()));
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(watch_token(api, initial, status.clone(), rx));
    tokio::time::sleep(Duration::from_secs(secs)).await;
    tx.send(true).unwrap();
    task.await.unwrap();
    status.read().unwrap().clone()
}

#[tokio::test(start_paused = true)]
async fn a_renewable_token_renews_at_about_seventy_percent_of_its_ttl() {
    let api = Script::new(|_, _| Ok(lease(3600, true)), None);
    let s = watch_for(api.clone(), lease(3600, true), 10 * 3600).await;
    let times = api.times("renew");
    assert!((13..=15).contains(&times.len()), "{} renewals in 10 h", times.len());
    let mut prev = 0.0;
    for t in times {
        let gap = (t - prev) / 3600.0;
        assert!((0.69..=0.74).contains(&gap), "renewed after {gap:.3} of the TTL");
        prev = t;
    }
    assert!(api.times("login").is_empty());
    assert_eq!(s.renewals as usize, api.times("renew").len());
}

#[tokio::test(start_paused = true)]
async fn near_the_max_ttl_the_watcher_logs_in_again_before_expiry() {
    // explicit_max_ttl of 2 h: renewals are capped at what is left of it.
    let api = Script::new(|_, t| Ok(lease((7200.0 - t).clamp(0.0, 3600.0) as u64, true)), Some(|| lease(3600, true)));
    watch_for(api.clone(), lease(3600, true), 7000).await;
    let logins = api.times("login");
    assert_eq!(logins.len(), 1, "{:?}", api.calls.lock().unwrap());
    assert!(logins[0] < 7200.0, "logged in at {} s, after the token expired", logins[0]);
    assert!(logins[0] > 7200.0 - 3600.0 * 0.5, "logged in too early, at {} s", logins[0]);
}

#[tokio::test(start_paused = true)]
async fn a_policy_denying_renew_self_does_not_flood_vault() {
    // AppRole-like: can log in; renew-self is forbidden by policy.
    let api = Script::new(|_, _| Err(status(403)), Some(|| lease(60, true)));
    let s = watch_for(api.clone(), lease(60, true), 3600).await;
    let requests = api.calls.lock().unwrap().len();
    // One denied renewal, then one login per ~70 % of the 60 s TTL.
    assert_eq!(api.times("renew").len(), 1);
    assert!(requests <= 90, "{requests} requests in an hour ({} per minute)", requests / 60);
    assert!(s.renew_denied);

    // A plain token that cannot log in: a retry every 5 minutes at most.
    let api = Script::new(|_, _| Err(status(403)), None);
    watch_for(api.clone(), lease(86_400, true), 3600).await;
    let requests = api.calls.lock().unwrap().len();
    assert!(requests <= 14, "{requests} requests in an hour");
}

#[tokio::test(start_paused = true)]
async fn vault_outages_back_off_exponentially_but_never_past_expiry() {
    // Vault answers 503 (sealed) to everything; the run goes on well past
    // the token's expiry at 3600 s.
    let api = Script::new(|_, _| Err(status(503)), None);
    let s = watch_for(api.clone(), lease(3600, true), 4500).await;
    let times = api.times("renew");
    assert!(times.len() >= 5, "{times:?}");
    let gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    // 10 s doubling (±20 %), then capped by half of the time left.
    assert!((8.0..=12.0).contains(&gaps[0]), "{gaps:?}");
    assert!((16.0..=24.0).contains(&gaps[1]), "{gaps:?}");
    assert!((32.0..=48.0).contains(&gaps[2]), "{gaps:?}");
    assert!(gaps.iter().all(|gap| *gap <= 300.0 + 1e-6), "{gaps:?}");
    // Tries keep coming until the last minute, and none once it expired.
    let last = *times.last().unwrap();
    assert!((3540.0..3600.0).contains(&last), "last try at {last} s: {times:?}");
    assert!(s.stranded, "{s:?}");
}

#[tokio::test(start_paused = true)]
async fn a_plain_token_at_its_max_ttl_is_retried_at_half_the_time_left() {
    // explicit_max_ttl of 2 h and no way to log in: renewals are capped at
    // what is left, so the token is stranded in its last minutes.
    let api = Script::new(|_, t| Ok(lease((7200.0 - t).clamp(0.0, 3600.0) as u64, true)), None);
    let status = Arc::new(RwLock::new(TokenStatus::default()));
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(watch_token(api.clone(), lease(3600, true), status.clone(), rx));
    tokio::time::sleep(Duration::from_secs(7100)).await;
    let s = status.read().unwrap().clone();
    assert!(s.stranded, "the watcher knows the token cannot be saved: {s:?}");
    tokio::time::sleep(Duration::from_secs(900)).await;
    tx.send(true).unwrap();
    task.await.unwrap();

    let times = api.times("renew");
    assert!(times.iter().all(|t| *t < 7200.0), "renewed an expired token: {times:?}");
    // Inside the grace (≥ 360 s) renewals no longer help: each try comes
    // after at most half the time that was left, densest at the end.
    let stranded: Vec<f64> = times.iter().copied().filter(|t| 7200.0 - t < 360.0).collect();
    assert!(stranded.len() >= 4, "{times:?}");
    for w in stranded.windows(2) {
        let (left, gap) = (7200.0 - w[0], w[1] - w[0]);
        assert!(gap <= (left / 2.0).clamp(1.0, 300.0) + 1e-6, "waited {gap} s with {left} s left: {times:?}");
    }
    assert!(7200.0 - stranded.last().unwrap() <= 2.0, "{times:?}");
}

/// Vault's answer to a renewal, by lease id and seconds since start.
type RenewAnswer = Box<dyn Fn(&str, f64) -> Result<Renewed, VaultError> + Send + Sync>;

/// A scripted Vault for the lease manager (`lease_table.rs` uses it too).
pub(crate) struct Leases {
    start: Instant,
    renew: RenewAnswer,
    ttl: u64,
    renewable: bool,
    pub(crate) fetched: Mutex<u32>,
    pub(crate) renewals: Mutex<Vec<(String, f64)>>,
    pub(crate) revoked: Mutex<Vec<String>>,
    /// Fetches answer this status while set.
    pub(crate) fetch_fails: Mutex<Option<u16>>,
    /// Renewals of leases under this path never get an answer.
    hang: Mutex<Option<String>>,
}

impl Leases {
    pub(crate) fn new(
        ttl: u64,
        renewable: bool,
        renew: impl Fn(&str, f64) -> Result<Renewed, VaultError> + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            renew: Box::new(renew),
            ttl,
            renewable,
            fetched: Mutex::default(),
            renewals: Mutex::default(),
            revoked: Mutex::default(),
            fetch_fails: Mutex::default(),
            hang: Mutex::default(),
        })
    }
}

impl LeaseApi for Leases {
    async fn fetch(&self, path: &str) -> Result<DynamicSecret, VaultError> {
        if let Some(code) = *self.fetch_fails.lock().unwrap() {
            return Err(status(code));
        }
        let mut n = self.fetched.lock().unwrap();
        *n += 1;
        Ok(DynamicSecret {
            path: path.to_owned(),
            lease_id: format!("{path}/lease-{n}"),
            lease_duration: Duration::from_secs(self.ttl),
            renewable: self.renewable,
            data: SecretJson::new(format!(r#"{{"username":"u{n}","password":"p{n}-secret"}}"#)),
        })
    }
    async fn renew(&self, lease_id: &str, _increment: Duration) -> Result<Renewed, VaultError> {
        let t = self.start.elapsed().as_secs_f64();
        self.renewals.lock().unwrap().push((lease_id.to_owned(), t));
        let hangs = self.hang.lock().unwrap().as_ref().is_some_and(|p| lease_id.starts_with(p.as_str()));
        if hangs {
            std::future::pending::<()>().await;
        }
        (self.renew)(lease_id, t)
    }
    async fn revoke(&self, lease_id: &str) -> Result<(), VaultError> {
        self.revoked.lock().unwrap().push(lease_id.to_owned());
        Ok(())
    }
}

pub(crate) async fn run_leases<A: LeaseApi>(m: &LeaseManager<A>, secs: u64) {
    let (tx, rx) = watch::channel(false);
    let task = {
        let m = m.clone();
        tokio::spawn(async move { m.run(rx).await })
    };
    tokio::time::sleep(Duration::from_secs(secs)).await;
    tx.send(true).unwrap();
    // A manager stuck in one renewal would never see the signal.
    tokio::time::timeout(Duration::from_secs(60), task).await.expect("the manager stops when told").unwrap();
}

#[tokio::test(start_paused = true)]
async fn capped_lease_renewal_fetches_fresh_credentials_before_expiry() {
    // max_ttl 900 s from issue: renewals are capped at what is left.
    let api = Leases::new(300, true, |_, t| {
        Ok(Renewed { lease_duration: Duration::from_secs((900.0 - t).clamp(0.0, 300.0) as u64), renewable: true })
    });
    let m = LeaseManager::new(api.clone(), 20);
    let mut events = m.subscribe();
    let first = m.fetch("database/creds/app").await.unwrap();
    run_leases(&m, 880).await;
    let renewals = api.renewals.lock().unwrap().clone();
    assert!(renewals.len() >= 2, "{renewals:?}");
    assert!((200.0..=225.0).contains(&renewals[0].1), "first renewal at {} s", renewals[0].1);
    let mut refetched = None;
    while let Ok(e) = events.try_recv() {
        if let LeaseEvent::Refetched { old_lease_id, new_lease_id, .. } = e {
            refetched = Some((old_lease_id, new_lease_id));
        }
    }
    let (old, new) = refetched.expect("a refetch event");
    assert_eq!(old, first.lease_id);
    assert_eq!(new, "database/creds/app/lease-2");
    assert_eq!(m.current("database/creds/app").unwrap().lease_id, new);
    // The old credential was left to expire, not revoked under its users.
    assert!(api.revoked.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn non_renewable_leases_are_refetched_at_85_to_90_percent() {
    let api = Leases::new(1000, false, |_, _| panic!("never renewed"));
    let m = LeaseManager::new(api.clone(), 20);
    m.fetch("database/creds/ro").await.unwrap();
    run_leases(&m, 1000).await;
    assert_eq!(*api.fetched.lock().unwrap(), 2);
    // The second credential was fetched at 850–900 s, so it has most of its TTL left.
    let budget = m.list()[0].budget(Instant::now()).as_secs();
    assert!((850..=900).contains(&budget), "new lease has {budget} s left");
}

#[tokio::test(start_paused = true)]
async fn a_thousand_leases_renew_spread_out_under_the_rate_limit() {
    let api = Leases::new(600, true, |_, _| Ok(Renewed { lease_duration: Duration::from_secs(600), renewable: true }));
    let m = LeaseManager::new(api.clone(), 50);
    for i in 0..1000 {
        m.fetch(&format!("database/creds/r{i}")).await.unwrap();
    }
    run_leases(&m, 500).await;
    let renewals = api.renewals.lock().unwrap().clone();
    assert_eq!(renewals.len(), 1000, "every lease renewed once");
    let mut per_second = std::collections::HashMap::<u64, u32>::new();
    for (_, t) in &renewals {
        *per_second.entry(*t as u64).or_default() += 1;
    }
    let max = per_second.values().max().unwrap();
    assert!(*max <= 51, "{max} renewals in one second");
    // Every lease renewed before it expired.
    assert!(renewals.iter().all(|(_, t)| *t < 600.0));
}

/// The reasons of every `Dropped` event received so far, by lease id.
pub(crate) fn dropped(events: &mut tokio::sync::broadcast::Receiver<LeaseEvent>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let LeaseEvent::Dropped { lease_id, reason, .. } = e {
            out.push((lease_id, reason));
        }
    }
    out
}

#[tokio::test(start_paused = true)]
async fn a_lease_refused_repeatedly_is_dropped_loudly() {
    // 403: the policy lost `sys/leases/renew`; retrying cannot fix that.
    let api = Leases::new(3600, true, |_, _| Err(status(403)));
    let m = LeaseManager::new(api.clone(), 20);
    let mut events = m.subscribe();
    let s = m.fetch("database/creds/x").await.unwrap();
    run_leases(&m, 3600).await;
    assert_eq!(api.renewals.lock().unwrap().len(), 5);
    assert!(m.list().is_empty());
    let dropped = dropped(&mut events);
    assert_eq!(dropped.len(), 1, "{dropped:?}");
    assert_eq!(dropped[0].0, s.lease_id);
    assert!(dropped[0].1.contains("5 failures"), "{}", dropped[0].1);
}

#[tokio::test(start_paused = true)]
async fn a_ten_minute_outage_does_not_cost_a_lease() {
    // Vault answers 503 (sealed) from 2400 s to 3000 s, across the first
    // renewal (≈2500–2650 s) of a one-hour lease.
    let api = Leases::new(3600, true, |_, t| {
        if (2400.0..3000.0).contains(&t) {
            Err(status(503))
        } else {
            Ok(Renewed { lease_duration: Duration::from_secs(3600), renewable: true })
        }
    });
    let m = LeaseManager::new(api.clone(), 20);
    let mut events = m.subscribe();
    let s = m.fetch("database/creds/app").await.unwrap();
    run_leases(&m, 3500).await;
    let renewals = api.renewals.lock().unwrap().clone();
    let failed = renewals.iter().filter(|(_, t)| *t < 3000.0).count();
    assert!(failed >= 5, "only {failed} tries during the outage: {renewals:?}");
    let (_, renewed_at) = renewals.last().unwrap();
    assert!((3000.0..3400.0).contains(renewed_at), "renewed at {renewed_at} s: {renewals:?}");
    assert!(dropped(&mut events).is_empty());
    let tracked = m.list();
    assert_eq!(tracked.len(), 1);
    assert_eq!((tracked[0].lease_id.as_str(), tracked[0].consecutive_failures), (s.lease_id.as_str(), 0));
    assert!(tracked[0].budget(Instant::now()) > Duration::from_secs(3000), "the renewal extended the lease");
}

#[tokio::test(start_paused = true)]
async fn a_lease_is_retried_through_an_outage_until_it_expires_and_never_after() {
    let api = Leases::new(3600, true, |_, _| Err(status(500)));
    let m = LeaseManager::new(api.clone(), 20);
    let mut events = m.subscribe();
    m.fetch("database/creds/x").await.unwrap();
    run_leases(&m, 4000).await;
    let times: Vec<f64> = api.renewals.lock().unwrap().iter().map(|(_, t)| *t).collect();
    assert!(times.len() > 5, "{times:?}");
    let last = *times.last().unwrap();
    assert!((3540.0..3600.0).contains(&last), "last try at {last} s: {times:?}");
    assert!(m.list().is_empty());
    let dropped = dropped(&mut events);
    assert_eq!(dropped.len(), 1, "{dropped:?}");
    assert!(dropped[0].1.contains("expired"), "{}", dropped[0].1);
}

#[tokio::test(start_paused = true)]
async fn a_renewal_that_hangs_delays_no_other_lease() {
    let api = Leases::new(600, true, |_, _| Ok(Renewed { lease_duration: Duration::from_secs(600), renewable: true }));
    *api.hang.lock().unwrap() = Some("database/creds/slow".into());
    let m = LeaseManager::new(api.clone(), 20);
    // The hanging lease falls due first (≈420–440 s), the others a minute later.
    m.fetch("database/creds/slow").await.unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    for name in ["a", "b"] {
        m.fetch(&format!("database/creds/{name}")).await.unwrap();
    }
    // Stopping must not wait for the answer that never comes, either.
    run_leases(&m, 1500).await;
    let renewals = api.renewals.lock().unwrap().clone();
    let of = |name: &str| -> Vec<f64> {
        renewals.iter().filter(|(id, _)| id.starts_with(&format!("database/creds/{name}/"))).map(|(_, t)| *t).collect()
    };
    assert_eq!(of("slow").len(), 1, "{renewals:?}");
    assert!((420.0..=445.0).contains(&of("slow")[0]), "{renewals:?}");
    for name in ["a", "b"] {
        let times = of(name);
        // Fetched at 60 s: renewals due at ≈480–500 s and ≈900–940 s,
        // each on time even though the slow one is still waiting.
        assert_eq!(times.len(), 3, "{name}: {times:?}");
        assert!((480.0..=505.0).contains(&times[0]), "{name}: {times:?}");
        for gap in times.windows(2).map(|w| w[1] - w[0]) {
            assert!((415.0..=445.0).contains(&gap), "{name}: {times:?}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn revoking_a_lease_tells_vault_and_stops_tracking_it() {
    let api =
        Leases::new(3600, true, |_, _| Ok(Renewed { lease_duration: Duration::from_secs(3600), renewable: true }));
    let m = LeaseManager::new(api.clone(), 20);
    let s = m.fetch("database/creds/y").await.unwrap();
    m.revoke(&s.lease_id).await.unwrap();
    assert_eq!(*api.revoked.lock().unwrap(), vec![s.lease_id]);
    assert!(m.current("database/creds/y").is_none());
}

#[tokio::test(start_paused = true)]
async fn a_renewal_that_panics_is_counted_and_the_other_leases_keep_renewing() {
    let api = Leases::new(600, true, |lease_id, _| {
        assert!(!lease_id.starts_with("database/creds/bad"), "injected bug in one lease's renewal");
        Ok(Renewed { lease_duration: Duration::from_secs(600), renewable: true })
    });
    let metrics = rotator_core::metrics::Metrics::new();
    let m = LeaseManager::new(api.clone(), 20).with_metrics(metrics.clone());
    m.fetch("database/creds/bad").await.unwrap();
    m.fetch("database/creds/good").await.unwrap();
    run_leases(&m, 1800).await;
    // The panic was caught inside the manager: counted once (that lease is
    // no longer renewed), and the good lease renewed on, every ~400 s.
    assert_eq!(metrics.task_panics(), 1);
    assert!(metrics.render().contains("rotator_task_panics_total{task=\"lease-renewal\"} 1\n"));
    let renewals = api.renewals.lock().unwrap().clone();
    let good = renewals.iter().filter(|(id, _)| id.starts_with("database/creds/good")).count();
    let bad = renewals.iter().filter(|(id, _)| id.starts_with("database/creds/bad")).count();
    assert_eq!(bad, 1, "{renewals:?}");
    assert!(good >= 3, "{renewals:?}");
}
