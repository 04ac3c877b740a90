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

use crate::api::{self, ApiState, JobSummary};
use crate::rotation::Job;
use crate::vault::VaultClient;

/// Everything the daemon runs.
pub struct Daemon {
    pub jobs: Vec<Job>,
    pub vault: VaultClient,
    /// Already bound, so callers can print the real address first.
    pub api_listener: TcpListener,
    pub max_concurrent_rotations: usize,
    pub shutdown_grace: Duration,
}

impl Daemon {
    /// Run until `shutdown` resolves, then stop cleanly.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let limit = Arc::new(Semaphore::new(self.max_concurrent_rotations.max(1)));
        let mut tasks = JoinSet::new();

        let state = Arc::new(ApiState { jobs: self.jobs.iter().map(summary).collect(), started: Instant::now() });
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
        Ok(())
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
