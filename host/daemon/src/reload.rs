//! Live reload: `SIGHUP` and `POST /reload` read the config file again and
//! apply its jobs without a restart.
//!
//! The new file goes through everything startup does (parse, every plugin
//! loaded, every job's settings checked against its plugin's schema); if
//! anything is wrong, nothing changes and every problem is reported at
//! once, located in the file. Otherwise, by job id: a job that is new is
//! added and scheduled, a job whose definition changed (its plugin's
//! sha256, settings, schedule, grants, limits, secret …) is used from its
//! next run on, and a job no longer in the file stops being scheduled. A
//! rotation in flight ends on the definition it started with (it holds
//! its own copy). Jobs added through the API are not the file's and are
//! left alone. The Flask service's environment is merged in again as at
//! startup (`seed_env::with_file`), so its jobs are not dropped. `[vault]` and `[daemon]` are read at startup only: a change
//! there is reported as needing a restart, and the jobs are still applied.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use rotator_core::config::{self, Config, ConfigErrors};
use rotator_core::plugin::Runtime;
use rotator_core::rotation::Job;
use serde::Serialize;

use crate::scheduler::Scheduler;
use crate::setup;

/// What a reload did, by job id.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ReloadReport {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    pub unchanged: usize,
    /// Sections whose change takes a restart (`vault`, `daemon`).
    pub restart_needed: Vec<&'static str>,
}

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// Every problem of the new file, located; the old config keeps running.
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    /// The environment's part (`rotator run --config` merges it in, so a
    /// reload does too) has problems, one located line each.
    #[error("{0}")]
    Environment(#[from] config::seed_env::SeedEnvErrors),
}

/// Reads the daemon's config file again on request. One reload at a time.
pub struct Reloader {
    path: PathBuf,
    runtime: Arc<Runtime>,
    scheduler: Scheduler,
    current: tokio::sync::Mutex<Current>,
}

/// What the last applied file said.
struct Current {
    /// The file's jobs by id, with the fingerprint of each definition.
    jobs: BTreeMap<String, String>,
    /// `[vault]` and `[daemon]` as read at startup.
    sections: [String; 2],
}

/// A job's definition as a comparable text: its config without source
/// locations (moving a job in the file changes nothing) and its plugin's
/// sha256 (a rebuilt plugin file is a change). Holds no secret values:
/// configs hold only references to them.
fn fingerprint(job: &Job) -> String {
    let mut config = job.config.clone();
    config.spans = Default::default();
    format!("{config:?} {}", job.plugin.sha256())
}

fn sections(config: &Config) -> [String; 2] {
    [format!("{:?}", config.vault), format!("{:?}", config.daemon)]
}

impl Reloader {
    /// A reloader for the file `path`, whose `config` and `jobs` the daemon
    /// started with.
    pub fn new(path: PathBuf, config: &Config, jobs: &[Job], runtime: Arc<Runtime>, scheduler: Scheduler) -> Self {
        let current = Current {
            jobs: jobs.iter().map(|j| (j.config.id.clone(), fingerprint(j))).collect(),
            sections: sections(config),
        };
        Self { path, runtime, scheduler, current: tokio::sync::Mutex::new(current) }
    }

    /// Read the file again and apply its jobs, or change nothing.
    pub async fn reload(&self) -> Result<ReloadReport, ReloadError> {
        let mut current = self.current.lock().await;
        // As at startup: the file, with the environment filling what it
        // leaves out (so the environment's jobs are not dropped).
        let config = config::seed_env::with_file(config::load(&self.path)?)?.config;
        // Plugins are loaded (and compiled) off the async threads.
        let runtime = self.runtime.clone();
        let loaded = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || setup::load_jobs(&config, &runtime))
                .await
                .expect("loading plugins does not panic")?
        };
        let mut report = ReloadReport::default();
        let new_sections = sections(&config);
        for ((name, old), new) in ["vault", "daemon"].into_iter().zip(&current.sections).zip(&new_sections) {
            if old != new {
                report.restart_needed.push(name);
            }
        }
        let mut next = BTreeMap::new();
        for job in loaded {
            let (id, print) = (job.config.id.clone(), fingerprint(&job));
            let was = current.jobs.get(&id).cloned();
            next.insert(id.clone(), print.clone());
            if was.as_ref() == Some(&print) {
                report.unchanged += 1;
                continue;
            }
            // A job the file did not have may still run under that id (added
            // through the API): the file's definition takes its place.
            let known = self.scheduler.registry().contains(&id);
            let applied = if known { self.scheduler.replace(job).await } else { self.scheduler.add(job).await };
            if let Err(e) = applied {
                tracing::warn!(job = %id, error = %e, "reload could not apply the job");
            }
            if was.is_some() || known { report.changed.push(id) } else { report.added.push(id) }
        }
        for id in current.jobs.keys().filter(|id| !next.contains_key(*id)) {
            self.scheduler.remove(id);
            report.removed.push(id.clone());
        }
        *current = Current { jobs: next, sections: current.sections.clone() };
        tracing::info!(
            added = report.added.len(),
            changed = report.changed.len(),
            removed = report.removed.len(),
            unchanged = report.unchanged,
            "config reloaded"
        );
        if !report.restart_needed.is_empty() {
            tracing::warn!(sections = %report.restart_needed.join(", "), "changed sections take effect after a restart");
        }
        Ok(report)
    }
}
