//! The daemon: every enabled job on its schedule, the HTTP API, and a clean
//! shutdown.
//!
//! Shape (after mini-redis): [`Daemon::run`] takes a shutdown future. When it
//! resolves, a watch channel tells every task; job loops stop *between*
//! rotations, never inside one, and `run` waits for them (up to the grace
//! period) before returning. A failed rotation is logged and the job carries
//! on with its next slot; one job's plugin trapping never affects another.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::api::{self, ApiOptions, ApiState, JobSummary};
use crate::rotation::Job;
use crate::vault::leases::LeaseManager;
use crate::vault::lifetime::{ClientTokenApi, TokenStatus, watch_token};
use crate::vault::{AuthMethod, TokenLease, VaultClient};

/// Who the daemon is in Vault: how it logs in and its token as of startup.
#[derive(Debug, Clone)]
pub struct Identity {
    pub method: AuthMethod,
    pub lease: TokenLease,
    /// Where relative credential files are resolved.
    pub base_dir: std::path::PathBuf,
}

impl Identity {
    /// A token that never expires and is never renewed (tests, dev root).
    pub fn static_token() -> Self {
        let lease = TokenLease { ttl: Duration::ZERO, renewable: false, policies: vec![], accessor: String::new() };
        Self { method: AuthMethod::Token, lease, base_dir: ".".into() }
    }
}

/// How the daemon looks after dynamic secrets' leases.
#[derive(Debug, Clone, Copy)]
pub struct LeaseOptions {
    pub renewals_per_second: u32,
    pub revoke_on_shutdown: bool,
}

impl Default for LeaseOptions {
    fn default() -> Self {
        Self { renewals_per_second: 20, revoke_on_shutdown: false }
    }
}

/// Everything the daemon runs.
pub struct Daemon {
    pub jobs: Vec<Job>,
    pub vault: VaultClient,
    pub identity: Identity,
    pub leases: LeaseOptions,
    /// Already bound, so callers can print the real address first.
    pub api_listener: TcpListener,
    pub max_concurrent_rotations: usize,
    pub shutdown_grace: Duration,
    /// The operator API's token, secrets policy and built-in plugins.
    pub api: ApiOptions,
}

impl Daemon {
    /// Run until `shutdown` resolves, then stop cleanly.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let limit = Arc::new(Semaphore::new(self.max_concurrent_rotations.max(1)));
        let mut tasks = JoinSet::new();

        let token = Arc::new(std::sync::RwLock::new(TokenStatus::default()));
        let api_client = ClientTokenApi {
            client: self.vault.clone(),
            method: self.identity.method.clone(),
            base_dir: self.identity.base_dir.clone(),
        };
        log_budget(&self.identity);
        tasks.spawn(watch_token(Arc::new(api_client), self.identity.lease.clone(), token.clone(), stop_rx.clone()));
        let leases = LeaseManager::new(Arc::new(self.vault.clone()), self.leases.renewals_per_second);
        let lease_task = {
            let (leases, stop) = (leases.clone(), stop_rx.clone());
            tokio::spawn(async move { leases.run(stop).await })
        };

        let state = Arc::new(ApiState {
            jobs: self.jobs.iter().map(summary).collect(),
            started: Instant::now(),
            token,
            leases: leases.clone(),
            vault: self.vault.clone(),
            options: self.api,
        });
        let mut api_stop = stop_rx.clone();
        let api = axum::serve(self.api_listener, api::router(state)).with_graceful_shutdown(async move {
            let _ = api_stop.wait_for(|s| *s).await;
        });
        tasks.spawn(async move {
            if let Err(e) = api.await {
                tracing::error!(error = %e, "API server failed");
            }
        });

        for job in self.jobs.into_iter().filter(|j| j.config.enabled) {
            tasks.spawn(job_loop(job, self.vault.clone(), limit.clone(), stop_rx.clone()));
        }

        shutdown.await;
        tracing::info!("shutting down: waiting for running rotations to finish");
        let _ = stop_tx.send(true);
        let drained =
            tokio::time::timeout(self.shutdown_grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::error!(grace = ?self.shutdown_grace, "rotations still running after the grace period; abandoning them");
        }
        let _ = lease_task.await;
        if self.leases.revoke_on_shutdown {
            leases.revoke_all().await;
        }
        Ok(())
    }
}

/// Say at startup how long Vault may be unreachable before rotator loses
/// its token (no peer tells its operators this).
fn log_budget(identity: &Identity) {
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
}

fn summary(job: &Job) -> JobSummary {
    JobSummary {
        id: job.config.id.clone(),
        plugin: job.plugin.label(),
        plugin_sha256: job.plugin.sha256().to_owned(),
        secret: job.config.secret.as_ref().map(ToString::to_string),
        interval_seconds: job.config.interval.as_secs(),
    }
}

/// One job: wait for the next slot, rotate, repeat, until told to stop. A
/// job whose secret does not exist yet is rotated at once, creating it.
async fn job_loop(job: Job, vault: VaultClient, limit: Arc<Semaphore>, mut stop: watch::Receiver<bool>) {
    let id = job.config.id.clone();
    let mut wait = match &job.config.secret {
        Some(loc) if matches!(vault.kv_read(&loc.mount, &loc.path).await, Ok(None)) => Duration::ZERO,
        _ => job.config.interval,
    };
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        wait = job.config.interval;
        let Ok(_permit) = limit.acquire().await else { break };
        // Not raced against `stop`: a started rotation always completes.
        match job.rotate(&vault, 1).await {
            Ok(r) => tracing::info!(job = %id, version = ?r.new_version, "rotated"),
            Err(e) => tracing::error!(job = %id, transient = e.is_transient(), error = %e, "rotation failed"),
        }
        if *stop.borrow() {
            break;
        }
    }
}
