//! The daemon: every enabled job on its schedule, the HTTP API, and a clean
//! shutdown.
//!
//! Shape (after mini-redis): [`Daemon::run`] takes a shutdown future. When it
//! resolves, a watch channel tells every task; the scheduler stops starting
//! rotations and waits for running ones (up to the grace period) before
//! `run` returns. A failed rotation is recorded and the job carries on with
//! its retries or next slot; one job's plugin trapping never affects another.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::api::{self, ApiOptions, ApiState};
use crate::reload::Reloader;
use crate::replicas::Replicas;
use crate::scheduler::Scheduler;
pub use crate::setup::Identity;
use rotator_core::rotation::{Job, Observer};
use rotator_core::state::StateStore;
use rotator_core::supervise;
use rotator_core::vault::VaultClient;
use rotator_core::vault::leases::{LeaseManager, LeaseMode, LeaseRecords, LeaseStatus};
use rotator_core::vault::lifetime::{ClientTokenApi, TokenStatus, watch_token};

/// How the daemon looks after dynamic secrets' leases.
#[derive(Debug, Clone)]
pub struct LeaseOptions {
    pub renewals_per_second: u32,
    pub revoke_on_shutdown: bool,
    /// Most leases tracked at once.
    pub max_tracked: usize,
    /// Hand out a path's live credential again ([`LeaseMode::Reuse`]).
    pub mode: LeaseMode,
    /// Where tracked leases are kept (`(mount, state prefix)` in Vault KV
    /// v2, beside the job records), for the next daemon; `None`: not kept.
    pub records: Option<(String, String)>,
}

impl Default for LeaseOptions {
    fn default() -> Self {
        Self {
            renewals_per_second: 20,
            revoke_on_shutdown: false,
            max_tracked: rotator_core::vault::leases::DEFAULT_MAX_LEASES,
            mode: LeaseMode::Each,
            records: None,
        }
    }
}

/// Everything the daemon runs.
pub struct Daemon {
    pub jobs: Vec<Job>,
    /// The Vault client and who the daemon is there; `None` for a config
    /// that runs without Vault (records and secrets in AWS).
    pub vault: Option<(VaultClient, Identity)>,
    pub leases: LeaseOptions,
    /// Already bound, so callers can print the real address first.
    pub api_listener: TcpListener,
    pub max_concurrent_rotations: usize,
    /// Scheduled rotations started per second at most (`None`: no limit).
    pub max_rotations_per_second: Option<u32>,
    /// The config file and what it said at startup, for live reload.
    pub reload_from: Option<(std::path::PathBuf, rotator_core::config::Config)>,
    pub shutdown_grace: Duration,
    /// Where job state records live.
    pub state: StateStore,
    /// With `[daemon] replicas`: this replica, sharing the jobs with others.
    pub replicas: Option<Replicas>,
    /// Who else hears about every rotation step (the audit log); the
    /// daemon's metrics always do.
    pub observers: Vec<Arc<dyn Observer>>,
    /// Served at `/metrics`.
    pub metrics: rotator_core::metrics::Metrics,
    /// The operator API's token, secrets policy and built-in plugins.
    pub api: ApiOptions,
}

impl Daemon {
    /// Run until `shutdown` resolves, then stop cleanly.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        if rotator_core::crash::is_armed() {
            tracing::warn!(var = rotator_core::crash::ENV, "CRASH POINTS ARMED: this process will abort on purpose");
        }
        for unknown in rotator_core::crash::unknown_armed() {
            tracing::warn!(var = rotator_core::crash::ENV, "{unknown}: ignored");
        }

        let token = Arc::new(std::sync::RwLock::new(TokenStatus::default()));
        // Every long-lived task runs under `supervise::task`: a panic in one
        // is logged and counted and makes `/readyz` answer 503.
        let metrics = self.metrics.clone();
        let client = self.vault.as_ref().map(|(client, _)| client.clone());
        if let Some((client, identity)) = &self.vault {
            let api_client = ClientTokenApi {
                client: client.clone(),
                method: identity.method.clone(),
                base_dir: identity.base_dir.clone(),
            };
            let watcher = watch_token(Arc::new(api_client), identity.lease.clone(), token.clone(), stop_rx.clone());
            tasks.spawn(supervise::task(metrics.clone(), "token-renewal", watcher));
        } else {
            tracing::info!("running without Vault: no token to renew, no leases");
        }
        let mut leases = LeaseManager::new(Arc::new(client.clone()), self.leases.renewals_per_second)
            .with_metrics(metrics.clone())
            .with_mode(self.leases.mode)
            .with_max_leases(self.leases.max_tracked);
        if let (Some(client), Some((mount, prefix))) = (&client, &self.leases.records) {
            leases = leases.with_records(LeaseRecords::beside_state(client.clone(), mount, prefix));
        }
        // No lease is tracked yet at startup (they come through the API
        // later, or from the records below, and each logs its own budget
        // when tracked); should the manager ever start with leases, they
        // are in this report too.
        if let Some((_, identity)) = &self.vault {
            log_budget(identity, &leases.list(), tokio::time::Instant::now());
        }
        let lease_task = {
            let (leases, stop) = (leases.clone(), stop_rx.clone());
            tokio::spawn(supervise::task(metrics.clone(), "lease-renewal", async move {
                // Kept leases are picked up in this task, so a slow Vault
                // delays nothing else at startup.
                if let Err(e) = leases.restore().await {
                    tracing::error!(error = %e, "could not read the kept lease records: leases handed out by an earlier daemon are not renewed by this one");
                }
                leases.run(stop).await
            }))
        };

        // The daemon's own metrics always hear every rotation.
        let mut observers = self.observers;
        observers.push(Arc::new(self.metrics.clone()));
        let mut scheduler =
            Scheduler::with_metrics(self.state, self.max_concurrent_rotations, observers, metrics.clone())
                .with_rate_limit(self.max_rotations_per_second);
        if let Some(replicas) = &self.replicas {
            scheduler = scheduler.with_ownership(Arc::new(replicas.clone()));
        }
        let reloader = self.reload_from.map(|(path, config)| {
            let runtime = self.api.plugins.runtime().clone();
            Arc::new(Reloader::new(path, &config, &self.jobs, runtime, scheduler.clone()))
        });
        if let Some(reloader) = &reloader {
            tasks.spawn(supervise::task(
                metrics.clone(),
                "reload-on-sighup",
                reload_on_hangup(reloader.clone(), stop_rx.clone()),
            ));
        }
        let state = Arc::new(ApiState {
            jobs: scheduler.registry().clone(),
            started: Instant::now(),
            token,
            leases: leases.clone(),
            vault: client,
            options: self.api,
            scheduler: scheduler.clone(),
            metrics: self.metrics.clone(),
            shutdown: stop_rx.clone(),
            ready_probe: Default::default(),
            reloader,
            replicas: self.replicas.clone(),
            kept_jobs: Default::default(),
        });
        // Every configured job is known before the API answers, so a request
        // for one right after start finds it; each is queued (its record
        // read, which may wait for Vault) once the API is up.
        let mut configured = Vec::with_capacity(self.jobs.len());
        for job in self.jobs {
            let id = job.config.id.clone();
            match scheduler.register(job) {
                Ok(()) => configured.push(id),
                Err(e) => tracing::error!(error = %e, "job not scheduled"),
            }
        }
        let counting = count_lease_events(leases.subscribe(), metrics.clone(), stop_rx.clone());
        tasks.spawn(supervise::task(metrics.clone(), "lease-metrics", counting));
        let mut api_stop = stop_rx.clone();
        let api = axum::serve(self.api_listener, api::router(state.clone())).with_graceful_shutdown(async move {
            let _ = api_stop.wait_for(|s| *s).await;
        });
        tasks.spawn(supervise::task(metrics.clone(), "api-server", async move {
            if let Err(e) = api.await {
                tracing::error!(error = %e, "API server failed");
            }
        }));

        for id in configured {
            // A panic while queueing one job leaves it unqueued (it still
            // rotates on request) and the others scheduled.
            let _ = supervise::catch(&metrics, "schedule", Some(&id), scheduler.arm(&id)).await;
        }
        api::jobs::restore(&state).await;
        // Heartbeats stop only after the rotations drained (below), so a
        // replica keeps its ownership while it finishes what it started.
        let replica = self.replicas.as_ref().map(|r| {
            let parts = ReplicaParts { scheduler: &scheduler, api: &state, leases: &leases, stop: &stop_rx };
            start_replica(r, parts, &metrics, &mut tasks)
        });
        {
            let (scheduler, stop) = (scheduler.clone(), stop_rx.clone());
            tasks.spawn(supervise::task(metrics.clone(), "scheduler", async move { scheduler.run(stop).await }));
        }

        shutdown.await;
        tracing::info!("shutting down: waiting for running rotations to finish");
        // The scheduler first, synchronously: a rotation waiting for a
        // concurrency slot must not slip in before its loop sees the signal.
        scheduler.stop();
        let _ = stop_tx.send(true);
        let drained =
            tokio::time::timeout(self.shutdown_grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::error!(grace = %humantime::format_duration(self.shutdown_grace), "rotations still running after the grace period; abandoning them");
        }
        if let (Some((stop, task)), Some(replicas)) = (replica, &self.replicas) {
            let _ = stop.send(true);
            let _ = task.await;
            replicas.leave().await;
        }
        let _ = lease_task.await;
        if self.leases.revoke_on_shutdown {
            leases.revoke_all().await;
        }
        Ok(())
    }
}

/// Reload the config on every `SIGHUP` until the daemon stops. A refused
/// file is logged with every problem; the running config stays.
async fn reload_on_hangup(reloader: Arc<Reloader>, mut stop: watch::Receiver<bool>) {
    let mut hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => return tracing::error!(error = %e, "cannot listen for SIGHUP: no reload on signal"),
    };
    loop {
        tokio::select! {
            _ = hangups.recv() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        tracing::info!("SIGHUP: reloading the config");
        if let Err(e) = reloader.reload().await {
            tracing::error!(error = %e, "config reload refused; the running config stays");
        }
    }
}

/// What a replica's tasks work with.
struct ReplicaParts<'a> {
    scheduler: &'a Scheduler,
    api: &'a Arc<ApiState>,
    leases: &'a LeaseManager<Option<VaultClient>>,
    stop: &'a watch::Receiver<bool>,
}

/// A replica's tasks: its heartbeat (stopped through the returned sender,
/// only after the rotations drained, so the replica keeps its ownership
/// while it finishes what it started), following the kept API jobs, and
/// taking over the leases of replicas judged dead.
fn start_replica(
    replicas: &Replicas,
    parts: ReplicaParts<'_>,
    metrics: &rotator_core::metrics::Metrics,
    tasks: &mut JoinSet<()>,
) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let (stop_tx, stop) = watch::channel(false);
    let (r, s) = (replicas.clone(), parts.scheduler.clone());
    let heartbeat =
        tokio::spawn(supervise::task(metrics.clone(), "replica-heartbeat", async move { r.run(s, stop).await }));
    let sync = api::jobs::follow_kept_jobs(parts.api.clone(), replicas.jobs_generation(), parts.stop.clone());
    tasks.spawn(supervise::task(metrics.clone(), "kept-jobs-sync", sync));
    let adopt = adopt_leases(parts.leases.clone(), replicas.removals(), parts.stop.clone());
    tasks.spawn(supervise::task(metrics.clone(), "lease-takeover", adopt));
    (stop_tx, heartbeat)
}

/// With replicas: when a replica is judged dead, keep renewing the leases
/// it handed out (their records are beside the job records; leases this
/// daemon already tracks are left as they are, and renewing a lease from
/// two daemons is harmless).
async fn adopt_leases(
    leases: LeaseManager<Option<VaultClient>>,
    mut removals: watch::Receiver<u64>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            changed = removals.changed() => if changed.is_err() { return },
            _ = stop.wait_for(|s| *s) => return,
        }
        match leases.restore().await {
            Ok(n) if n > 0 => tracing::info!(leases = n, "renewing the leases of a replica judged dead"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not read the kept lease records after a takeover"),
        }
    }
}

/// Feed lease renewals into the metrics.
async fn count_lease_events(
    mut events: tokio::sync::broadcast::Receiver<rotator_core::vault::leases::LeaseEvent>,
    metrics: rotator_core::metrics::Metrics,
    mut stop: watch::Receiver<bool>,
) {
    use rotator_core::vault::leases::LeaseEvent;
    loop {
        let event = tokio::select! {
            e = events.recv() => e,
            _ = stop.wait_for(|s| *s) => return,
        };
        match event {
            Ok(LeaseEvent::Renewed { capped, .. }) => metrics.lease_renewal(if capped { "capped" } else { "ok" }),
            Ok(LeaseEvent::Refetched { .. }) => metrics.lease_renewal("refetched"),
            Ok(LeaseEvent::Dropped { .. }) => metrics.lease_renewal("dropped"),
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Say at startup how long Vault may be unreachable before rotator loses
/// its token, and each tracked lease (no peer tells its operators this).
fn log_budget(identity: &Identity, leases: &[LeaseStatus], now: tokio::time::Instant) {
    if identity.lease.ttl.is_zero() {
        tracing::info!(method = identity.method.name(), "renewal budget: the vault token never expires");
    } else {
        tracing::info!(
            method = identity.method.name(),
            budget = %humantime::format_duration(identity.lease.ttl),
            renewable = identity.lease.renewable,
            can_login = identity.method.can_login(),
            "renewal budget: vault may be unreachable this long before the token expires"
        );
    }
    for lease in leases {
        tracing::info!(
            path = %lease.path,
            lease = %lease.lease_id,
            budget = %humantime::format_duration(Duration::from_secs(lease.budget(now).as_secs())),
            renewable = lease.renewable,
            "renewal budget: vault may be unreachable this long before the lease expires"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Seek};

    use super::*;
    use rotator_core::vault::{AuthMethod, TokenLease};

    /// What `f` logs, as the human log format writes it.
    fn logged(f: impl FnOnce()) -> String {
        let file = Arc::new(tempfile::tempfile().unwrap());
        let subscriber = tracing_subscriber::fmt().with_writer(file.clone()).with_ansi(false).finish();
        tracing::subscriber::with_default(subscriber, f);
        let mut reader = &*file;
        reader.rewind().unwrap();
        let mut text = String::new();
        reader.read_to_string(&mut text).unwrap();
        text
    }

    #[test]
    fn the_startup_log_names_the_token_budget_and_every_lease_budget() {
        let lease = TokenLease {
            ttl: Duration::from_secs(2 * 3600),
            renewable: true,
            policies: vec![],
            accessor: String::new(),
        };
        let identity = Identity { method: AuthMethod::Token, lease, base_dir: ".".into() };
        let now = tokio::time::Instant::now();
        let tracked = LeaseStatus {
            path: "database/creds/app".into(),
            lease_id: "database/creds/app/abc".into(),
            renewable: true,
            expires_at: now + Duration::from_secs(1800),
            next_action_at: now + Duration::from_secs(1200),
            consecutive_failures: 0,
            next_action: rotator_core::vault::leases::NextAction::Renew,
        };
        let text = logged(|| log_budget(&identity, std::slice::from_ref(&tracked), now));
        let token = text.lines().find(|l| l.contains("before the token expires")).expect(&text);
        assert!(token.contains("budget=2h") && token.contains("method=\"token\""), "{token}");
        assert!(token.contains("can_login=false"), "{token}");
        let lease = text.lines().find(|l| l.contains("before the lease expires")).expect(&text);
        assert!(lease.contains("budget=30m") && lease.contains("database/creds/app/abc"), "{lease}");

        let forever = logged(|| log_budget(&Identity::static_token(), &[], now));
        assert!(forever.contains("renewal budget: the vault token never expires"), "{forever}");
        assert!(!forever.contains("lease"), "{forever}");
    }
}
