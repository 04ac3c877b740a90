//! Replicas: several daemons on one config share its jobs, coordinating
//! through Vault (`[daemon] replicas`), the store every replica already
//! trusts, rather than through anything of our own.
//!
//! - **Ownership.** Jobs fall into [`table::SHARDS`] shards by a hash of
//!   their id. One KV v2 record beside the job records (`<state
//!   prefix>/_replicas`) says which replica owns each shard and under which
//!   epoch. Each replica's heartbeat, every third of the lease TTL, is one
//!   read and one check-and-set write of that record: it moves the
//!   replica's beat on (renewing every shard it owns at once), removes
//!   members whose beat has not moved for a TTL, gives up shards beyond an
//!   even split and claims free ones ([`table::plan`]).
//! - **Fencing.** A replica acts on a job only while its own monotonic clock
//!   says its ownership holds: until a third of the TTL before anyone else
//!   may judge it dead. Each write to a job's record carries the replica's
//!   epoch, and a record already written under a newer epoch is never
//!   overwritten ([`rotator_core::state::fence`]). A takeover resumes an
//!   unfinished rotation from its record, with the same rotation id.
//! - **Leaving.** At shutdown, after its rotations ended, a replica removes
//!   itself and frees its shards, so the others take them at their next
//!   heartbeat instead of after a TTL.
//!
//! The guarantees and their cost in Vault requests are in
//! docs/architecture.md ("Replicas") and the README.

pub mod table;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rand::Rng;
use serde::Serialize;
use tokio::sync::watch;

use crate::scheduler::{Ownership, Scheduler};
use rotator_core::config::replicas::ReplicasConfig;
use rotator_core::metrics::Metrics;
use rotator_core::secret::SecretJson;
use rotator_core::state::{Fence, Fenced, Guard};
use rotator_core::vault::{VaultClient, VaultError};
use table::{Observed, Table, shard_of};

/// A replica: its view of the coordination record and what it owns. Cheap
/// to clone.
#[derive(Clone)]
pub struct Replicas {
    inner: Arc<Inner>,
}

struct Inner {
    /// `<name>-<random>`: a restarted process is a new member.
    me: String,
    ttl: Duration,
    vault: VaultClient,
    mount: String,
    /// The record's path in `mount`.
    path: String,
    /// This replica's API address, published for callers sent here.
    api: Option<String>,
    metrics: Metrics,
    local: Mutex<Local>,
    /// The kept API jobs' generation as last read; the daemon reloads them
    /// when it moves.
    generation: watch::Sender<u64>,
    /// Moves each time this replica removes dead members: the daemon then
    /// picks up the leases they were renewing.
    removals: watch::Sender<u64>,
}

/// What this replica knows and holds.
#[derive(Default)]
struct Local {
    /// Shards owned, with epochs, as of the last successful heartbeat.
    owned: BTreeMap<u16, u64>,
    /// Until when that ownership holds, by this process's clock.
    valid_until: Option<Instant>,
    /// The record as last read or written.
    table: Table,
    observed: Observed,
    /// A change of the kept API jobs to announce in the next write.
    jobs_changed: bool,
    last_error: Option<String>,
}

/// A heartbeat that could not be completed.
#[derive(Debug, thiserror::Error)]
enum BeatError {
    #[error("reading the replicas record: {0}")]
    Read(VaultError),
    #[error("writing the replicas record: {0}")]
    Write(VaultError),
    #[error("the replicas record is not ours to read: {0}")]
    Corrupt(serde_json::Error),
    #[error("the replicas record kept changing under this replica's writes")]
    Contended,
}

/// What `/status` shows of the replicas.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicaStatus {
    pub id: String,
    pub lease_ttl_seconds: f64,
    /// Whether this replica's ownership holds right now.
    pub holding: bool,
    pub shards_owned: usize,
    pub jobs_owned: usize,
    /// The ids of the jobs this replica runs, sorted.
    pub jobs: Vec<String>,
    /// Every member in the record: id, API address, last heartbeat (its own
    /// clock), shards held, takeovers.
    pub members: Vec<MemberStatus>,
    pub last_error: Option<String>,
}

/// One member as `/status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct MemberStatus {
    pub id: String,
    pub api: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub seen: time::OffsetDateTime,
    pub shards: usize,
    pub takeovers: u64,
}

impl Replicas {
    /// A replica that keeps its record at `<mount>/<prefix>/_replicas`.
    pub fn new(config: &ReplicasConfig, vault: VaultClient, mount: &str, prefix: &str, metrics: Metrics) -> Self {
        let name = config
            .name
            .clone()
            .or_else(|| {
                std::env::var("HOSTNAME").ok().filter(|h| rotator_core::config::replicas::check_name(h).is_ok())
            })
            .unwrap_or_else(|| "rotator".into());
        let me = format!("{name}-{:06x}", rand::rng().random_range(0..0x100_0000u32));
        let inner = Inner {
            me,
            ttl: config.lease_ttl,
            vault,
            mount: mount.to_owned(),
            path: format!("{}/_replicas", prefix.trim_matches('/')),
            api: None,
            metrics,
            local: Mutex::new(Local::default()),
            generation: watch::Sender::new(0),
            removals: watch::Sender::new(0),
        };
        Self { inner: Arc::new(inner) }
    }

    /// Publish this replica's API address in the record. Set before the
    /// replica is shared.
    pub fn with_api(mut self, addr: impl ToString) -> Self {
        let inner = Arc::get_mut(&mut self.inner).expect("the API address is set before the replica is shared");
        inner.api = Some(addr.to_string());
        self
    }

    /// This replica's id.
    pub fn id(&self) -> &str {
        &self.inner.me
    }

    /// The guard every job record write and target step asks.
    pub fn guard(&self) -> Arc<dyn Guard> {
        Arc::new(self.clone())
    }

    /// The kept API jobs' generation: moves when another replica (or this
    /// one) added or removed such a job.
    pub fn jobs_generation(&self) -> watch::Receiver<u64> {
        self.inner.generation.subscribe()
    }

    /// Moves each time this replica removed members it judged dead.
    pub fn removals(&self) -> watch::Receiver<u64> {
        self.inner.removals.subscribe()
    }

    /// Announce a change of the kept API jobs to every replica (with the
    /// next heartbeat).
    pub fn jobs_changed(&self) {
        self.local().jobs_changed = true;
    }

    fn local(&self) -> MutexGuard<'_, Local> {
        self.inner.local.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Heartbeat until `stop`, moving jobs in and out of `scheduler` as
    /// shards come and go. The first heartbeat is at once.
    pub async fn run(&self, scheduler: Scheduler, mut stop: watch::Receiver<bool>) {
        let every = self.inner.ttl / 3;
        loop {
            self.heartbeat(&scheduler).await;
            // ±10 %, so replicas started together do not beat in step.
            let pause = every.mul_f64(rand::rng().random_range(0.9..1.1));
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// One heartbeat, its outcome applied and counted.
    async fn heartbeat(&self, scheduler: &Scheduler) {
        let mut requests = 0;
        let result = self.beat(scheduler, &mut requests).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(BeatError::Contended) => "conflict",
            Err(_) => "failed",
        };
        let taken_over = match result {
            Ok(plan) => {
                let (gained, released) = (plan.gained, plan.released);
                if !plan.removed.is_empty() {
                    self.inner.removals.send_modify(|n| *n += 1);
                }
                if !gained.is_empty() || !released.is_empty() || !plan.removed.is_empty() {
                    tracing::info!(replica = %self.inner.me, gained = gained.len(), released = released.len(), removed = ?plan.removed, taken_over = plan.taken_over, "replica shards moved");
                }
                if !gained.is_empty() {
                    // Arming reads each job's record: thousands of reads
                    // must not hold up the next heartbeat.
                    let shards: Vec<u16> = gained.iter().map(|(s, _)| *s).collect();
                    let scheduler = scheduler.clone();
                    tokio::spawn(async move { scheduler.gained(|job| shards.contains(&shard_of(job))).await });
                }
                plan.taken_over
            }
            Err(e) => {
                tracing::warn!(replica = %self.inner.me, error = %e, "replica heartbeat failed");
                self.local().last_error = Some(e.to_string());
                0
            }
        };
        let (shards, members) = {
            let l = self.local();
            (l.owned.len(), l.table.members.len())
        };
        let jobs = scheduler.registry().ids_where(|j| self.owns(j)).len();
        self.inner.metrics.replica_heartbeat(outcome, requests, taken_over);
        self.inner.metrics.set_replica(shards, jobs, members);
    }

    /// Read the record, plan this replica's change, write it with
    /// check-and-set; on a conflict, read again (a few times).
    async fn beat(&self, scheduler: &Scheduler, requests: &mut u64) -> Result<table::Plan, BeatError> {
        for _ in 0..4 {
            *requests += 1;
            let (read, version) = match self.read().await {
                Ok(found) => found,
                Err(e) => {
                    // Vault unreachable: nobody's beat can be judged on this gap.
                    self.local().observed.forget();
                    return Err(e);
                }
            };
            let running: Vec<u16> =
                scheduler.registry().ids_where(|_| true).iter().filter(|(_, r)| *r).map(|(j, _)| shard_of(j)).collect();
            let (plan, lost) = {
                let mut l = self.local();
                let dead = l.observed.dead(&read, &self.inner.me, Instant::now(), self.inner.ttl);
                let mut plan =
                    table::plan(&read, &self.inner.me, self.inner.api.as_deref(), &dead, |s| running.contains(&s));
                if l.jobs_changed {
                    plan.table.jobs_generation += 1;
                }
                // Stop acting on shards given up (or taken while this
                // replica was away) before the record says so.
                let now_mine = plan.table.owned_by(&self.inner.me);
                let lost: Vec<u16> = l.owned.keys().filter(|s| !now_mine.contains_key(s)).copied().collect();
                for s in &lost {
                    l.owned.remove(s);
                }
                (plan, lost)
            };
            if !lost.is_empty() {
                scheduler.lost(|job| lost.contains(&shard_of(job)));
            }
            let sent = Instant::now();
            *requests += 1;
            match self.write(&plan.table, version).await {
                Ok(()) => {
                    self.applied(&plan, sent);
                    return Ok(plan);
                }
                Err(BeatError::Write(VaultError::CasMismatch { .. })) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(BeatError::Contended)
    }

    /// The write of `plan` landed at or after `sent`: what it says this
    /// replica owns holds until a margin before anyone may take it.
    fn applied(&self, plan: &table::Plan, sent: Instant) {
        let mut l = self.local();
        l.owned = plan.table.owned_by(&self.inner.me);
        l.valid_until = Some(sent + self.inner.ttl - self.inner.ttl / 3);
        l.table = plan.table.clone();
        l.jobs_changed = false;
        l.last_error = None;
        self.inner.generation.send_if_modified(|g| std::mem::replace(g, plan.table.jobs_generation) != *g);
    }

    async fn read(&self) -> Result<(Table, u64), BeatError> {
        let found = self.inner.vault.kv_read(&self.inner.mount, &self.inner.path).await.map_err(BeatError::Read)?;
        match found {
            None => Ok((Table::default(), 0)),
            Some(secret) => {
                let table = serde_json::from_str(secret.data.expose()).map_err(BeatError::Corrupt)?;
                Ok((table, secret.version.unwrap_or(0)))
            }
        }
    }

    async fn write(&self, table: &Table, version: u64) -> Result<(), BeatError> {
        let data = SecretJson::new(serde_json::to_string(table).expect("the table serializes"));
        self.inner
            .vault
            .kv_write(&self.inner.mount, &self.inner.path, &data, Some(version))
            .await
            .map_err(BeatError::Write)?;
        Ok(())
    }

    /// Leave the record at shutdown (after the rotations ended): remove this
    /// member and free its shards, so the others take them at their next
    /// heartbeat. Best effort: if it fails, they take them after a TTL.
    pub async fn leave(&self) {
        self.local().owned.clear();
        for _ in 0..4 {
            let Ok((mut t, version)) = self.read().await else { break };
            t.members.remove(&self.inner.me);
            for s in t.shards.iter_mut().filter(|s| s.owner.as_deref() == Some(self.inner.me.as_str())) {
                s.owner = None;
            }
            match self.write(&t, version).await {
                Err(BeatError::Write(VaultError::CasMismatch { .. })) => continue,
                Err(e) => {
                    tracing::warn!(replica = %self.inner.me, error = %e, "could not leave the replicas record; the others take over after the lease TTL")
                }
                Ok(()) => tracing::info!(replica = %self.inner.me, "left the replicas record"),
            }
            return;
        }
    }

    /// What `/status` shows.
    pub fn status(&self, scheduler: &Scheduler) -> ReplicaStatus {
        let l = self.local();
        let holding = l.valid_until.is_some_and(|u| Instant::now() < u);
        let members = l
            .table
            .members
            .iter()
            .map(|(id, m)| MemberStatus {
                id: id.clone(),
                api: m.api.clone(),
                seen: m.seen,
                shards: l.table.owned_by(id).len(),
                takeovers: m.takeovers,
            })
            .collect();
        let (shards_owned, last_error) = (l.owned.len(), l.last_error.clone());
        drop(l);
        let mut jobs: Vec<String> =
            scheduler.registry().ids_where(|j| self.owns(j)).into_iter().map(|(id, _)| id).collect();
        jobs.sort();
        ReplicaStatus {
            id: self.inner.me.clone(),
            lease_ttl_seconds: self.inner.ttl.as_secs_f64(),
            holding,
            shards_owned,
            jobs_owned: jobs.len(),
            jobs,
            members,
            last_error,
        }
    }
}

impl Guard for Replicas {
    fn check(&self, job: &str) -> Result<Fence, Fenced> {
        let shard = shard_of(job);
        let l = self.local();
        let Some(epoch) = l.owned.get(&shard) else {
            return Err(Fenced(format!("replica `{}` does not own job `{job}` (shard {shard})", self.inner.me)));
        };
        match l.valid_until {
            Some(until) if Instant::now() < until => Ok(Fence { replica: self.inner.me.clone(), epoch: *epoch }),
            _ => Err(Fenced(format!(
                "replica `{}` has not renewed its ownership in time (lease TTL {}); another replica may hold job `{job}`",
                self.inner.me,
                humantime::format_duration(self.inner.ttl)
            ))),
        }
    }
}

impl std::fmt::Debug for Replicas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replicas").field("id", &self.inner.me).finish_non_exhaustive()
    }
}

impl Ownership for Replicas {
    fn owns(&self, job: &str) -> bool {
        self.check(job).is_ok()
    }

    fn owner(&self, job: &str) -> Option<(String, Option<String>)> {
        let l = self.local();
        let owner = l.table.owner(shard_of(job))?.to_owned();
        let api = l.table.members.get(&owner).and_then(|m| m.api.clone());
        Some((owner, api))
    }
}
