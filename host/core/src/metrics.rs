//! Prometheus metrics: a fixed set of counters, gauges and one histogram,
//! rendered in the text exposition format 0.0.4.
//!
//! The daemon's parts (rotations, the Vault client, the lease and token
//! watchers, the plugin sandbox) report through typed methods on one
//! [`Metrics`] handle, and the API serves [`Metrics::render`] with
//! [`CONTENT_TYPE`]. The set of metric families is fixed here, so a typo
//! cannot create a new series name and every family has its HELP text.
//!
//! All state sits behind one mutex: updates are a map lookup and an add, far
//! cheaper than the work they count. A family with no series yet (nothing
//! observed) is left out of the output, so an unknown token TTL is absent,
//! not a misleading 0.
//!
//! Series per job exist only where an alert needs one: the time of each
//! job's last successful rotation ("not rotated for two intervals") and the
//! jobs that need an operator (present only while they do, with a total
//! beside them). Everything else is labelled by plugin and step, so a scrape
//! stays small at 10,000 jobs (`cargo bench -p rotator-core --bench
//! metrics_scrape`; docs/benchmarks.md).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds (seconds) of `rotator_step_duration_seconds`: plugin steps
/// take from under a millisecond (`create`) to the step deadline (`set` and
/// `test` against a slow target).
pub const STEP_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0];

/// One job's alerting gauges ([`Metrics::set_jobs`]).
pub struct JobGauges<'a> {
    pub id: &'a str,
    pub needs_attention: bool,
    /// When it last rotated successfully (from its state record, so it
    /// survives restarts).
    pub last_success: Option<time::OffsetDateTime>,
}

/// A cheap-to-clone handle on the daemon's metrics; clones share values.
#[derive(Clone, Default)]
pub struct Metrics {
    inner: Arc<Mutex<Registry>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram(&'static [f64]),
}

/// One metric family's fixed description.
struct Family {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
}

/// Indexes into [`FAMILIES`], in output order.
#[derive(Clone, Copy)]
enum Id {
    Rotations,
    StepDuration,
    LastSuccess,
    VaultRequests,
    LeaseRenewals,
    Leases,
    TokenTtl,
    PluginTraps,
    PluginDenials,
    NeedsAttention,
    NeedingAttention,
    TaskPanics,
    ReplicaShards,
    ReplicaJobs,
    ReplicaMembers,
    ReplicaHeartbeats,
    ReplicaRequests,
    ReplicaTakeovers,
}

const FAMILIES: [Family; 18] = [
    Family {
        name: "rotator_rotations_total",
        help: "Rotations finished, by plugin and outcome.",
        kind: Kind::Counter,
        labels: &["plugin", "outcome"],
    },
    Family {
        name: "rotator_step_duration_seconds",
        help: "How long each rotation step took, by plugin and step.",
        kind: Kind::Histogram(STEP_BUCKETS),
        labels: &["plugin", "step"],
    },
    Family {
        name: "rotator_job_last_success_timestamp_seconds",
        help: "When each job last rotated successfully (Unix time).",
        kind: Kind::Gauge,
        labels: &["job"],
    },
    Family {
        name: "rotator_vault_requests_total",
        help: "HTTP requests to Vault, by response status (\"error\" when no response came).",
        kind: Kind::Counter,
        labels: &["status"],
    },
    Family {
        name: "rotator_lease_renewals_total",
        help: "Lease renewals, by outcome.",
        kind: Kind::Counter,
        labels: &["outcome"],
    },
    Family { name: "rotator_leases", help: "Leases being kept alive.", kind: Kind::Gauge, labels: &[] },
    Family {
        name: "rotator_token_ttl_seconds",
        help: "Remaining TTL of the daemon's Vault token when last checked.",
        kind: Kind::Gauge,
        labels: &[],
    },
    Family {
        name: "rotator_plugin_traps_total",
        help: "Plugin steps that trapped (panic, out of memory, deadline).",
        kind: Kind::Counter,
        labels: &["plugin"],
    },
    Family {
        name: "rotator_plugin_denials_total",
        help: "Plugin Vault calls refused by the job's grants.",
        kind: Kind::Counter,
        labels: &["plugin"],
    },
    Family {
        name: "rotator_job_needs_attention",
        help: "1 for each job that failed in a way that needs an operator (e.g. a rollback failed); absent otherwise.",
        kind: Kind::Gauge,
        labels: &["job"],
    },
    Family {
        name: "rotator_jobs_needing_attention",
        help: "How many jobs need an operator.",
        kind: Kind::Gauge,
        labels: &[],
    },
    Family {
        name: "rotator_task_panics_total",
        help: "Daemon tasks that panicked (a bug in rotator); any makes /readyz answer 503.",
        kind: Kind::Counter,
        labels: &["task"],
    },
    Family {
        name: "rotator_replica_shards_owned",
        help: "Shards of jobs this replica owns (replicas only).",
        kind: Kind::Gauge,
        labels: &[],
    },
    Family {
        name: "rotator_replica_jobs_owned",
        help: "Jobs this replica runs (replicas only).",
        kind: Kind::Gauge,
        labels: &[],
    },
    Family {
        name: "rotator_replica_members",
        help: "Replicas in the coordination record, this one included.",
        kind: Kind::Gauge,
        labels: &[],
    },
    Family {
        name: "rotator_replica_heartbeats_total",
        help: "Heartbeats, by outcome (ok, conflict, failed).",
        kind: Kind::Counter,
        labels: &["outcome"],
    },
    Family {
        name: "rotator_replica_vault_requests_total",
        help: "Vault requests spent on coordination (reads and writes of the replicas record).",
        kind: Kind::Counter,
        labels: &[],
    },
    Family {
        name: "rotator_replica_takeovers_total",
        help: "Shards this replica took over from replicas judged dead.",
        kind: Kind::Counter,
        labels: &[],
    },
];

enum Series {
    Counter(u64),
    Gauge(f64),
    /// Observations per bucket (not cumulative; the last is +Inf).
    Histogram {
        buckets: Vec<u64>,
        sum: f64,
        count: u64,
    },
}

impl Series {
    fn new(kind: Kind) -> Self {
        match kind {
            Kind::Counter => Self::Counter(0),
            Kind::Gauge => Self::Gauge(0.0),
            Kind::Histogram(bounds) => Self::Histogram { buckets: vec![0; bounds.len() + 1], sum: 0.0, count: 0 },
        }
    }
}

/// Series of every family, keyed by label values (in the family's order).
#[derive(Default)]
struct Registry {
    series: [BTreeMap<Vec<String>, Series>; FAMILIES.len()],
}

impl Metrics {
    /// A fresh registry with every value unset.
    pub fn new() -> Self {
        Self::default()
    }

    /// A rotation by `plugin` (`name@version`) ended with `outcome` (e.g.
    /// `rotated`, `failed`, `conflict`).
    pub fn rotation(&self, plugin: &str, outcome: &str) {
        self.add(Id::Rotations, &[plugin, outcome]);
    }

    /// One step (`create`, `set`, `promote`, …) of a rotation by `plugin`
    /// took `took`.
    pub fn step_duration(&self, plugin: &str, step: &str, took: Duration) {
        let seconds = took.as_secs_f64();
        self.update(Id::StepDuration, &[plugin, step], |s| {
            if let (Series::Histogram { buckets, sum, count }, Kind::Histogram(bounds)) =
                (s, FAMILIES[Id::StepDuration as usize].kind)
            {
                let i = bounds.iter().position(|&le| seconds <= le).unwrap_or(bounds.len());
                buckets[i] += 1;
                *sum += seconds;
                *count += 1;
            }
        });
    }

    /// One HTTP exchange with Vault: its status, or `None` when no response
    /// came (connection refused, timeout, TLS).
    pub fn vault_request(&self, status: Option<u16>) {
        let status = status.map_or_else(|| "error".to_owned(), |s| s.to_string());
        self.add(Id::VaultRequests, &[&status]);
    }

    /// A lease renewal ended with `outcome` (e.g. `ok`, `failed`, `capped`).
    pub fn lease_renewal(&self, outcome: &str) {
        self.add(Id::LeaseRenewals, &[outcome]);
    }

    /// How many leases are being kept alive now.
    pub fn set_leases(&self, n: usize) {
        self.set(Id::Leases, &[], n as f64);
    }

    /// The token's remaining TTL as of now.
    pub fn set_token_ttl(&self, ttl: Duration) {
        self.set(Id::TokenTtl, &[], ttl.as_secs_f64());
    }

    /// A plugin step trapped. `plugin` is its `name@version`.
    pub fn plugin_trap(&self, plugin: &str) {
        self.add(Id::PluginTraps, &[plugin]);
    }

    /// A plugin's Vault call was denied by its grants.
    pub fn plugin_denial(&self, plugin: &str) {
        self.add(Id::PluginDenials, &[plugin]);
    }

    /// A replica's heartbeat ended with `outcome`, after `requests` Vault
    /// requests, taking over `takeovers` shards.
    pub fn replica_heartbeat(&self, outcome: &str, requests: u64, takeovers: u64) {
        self.add(Id::ReplicaHeartbeats, &[outcome]);
        self.add_n(Id::ReplicaRequests, &[], requests);
        if takeovers > 0 {
            self.add_n(Id::ReplicaTakeovers, &[], takeovers);
        }
    }

    /// What this replica holds now: shards, jobs, and members it sees.
    pub fn set_replica(&self, shards: usize, jobs: usize, members: usize) {
        self.set(Id::ReplicaShards, &[], shards as f64);
        self.set(Id::ReplicaJobs, &[], jobs as f64);
        self.set(Id::ReplicaMembers, &[], members as f64);
    }

    /// The per-job gauges, replaced wholesale from the daemon's job list
    /// at each scrape, so removed jobs vanish: each job's last successful
    /// rotation, and the jobs that need an operator (only those have a
    /// series) with their total.
    pub fn set_jobs<'a>(&self, jobs: impl IntoIterator<Item = JobGauges<'a>>) {
        let (mut last, mut needs) = (BTreeMap::new(), BTreeMap::new());
        for job in jobs {
            if let Some(at) = job.last_success {
                last.insert(vec![job.id.to_owned()], Series::Gauge(at.unix_timestamp() as f64));
            }
            if job.needs_attention {
                needs.insert(vec![job.id.to_owned()], Series::Gauge(1.0));
            }
        }
        let total = BTreeMap::from([(Vec::new(), Series::Gauge(needs.len() as f64))]);
        let mut registry = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        registry.series[Id::LastSuccess as usize] = last;
        registry.series[Id::NeedsAttention as usize] = needs;
        registry.series[Id::NeedingAttention as usize] = total;
    }

    /// A daemon task (`rotation`, `token-renewal`, `api`, …) panicked.
    pub fn task_panic(&self, task: &str) {
        self.add(Id::TaskPanics, &[task]);
    }

    /// How many daemon tasks have panicked since the start, all kinds.
    pub fn task_panics(&self) -> u64 {
        let registry = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let counts = registry.series[Id::TaskPanics as usize].values();
        counts.map(|s| if let Series::Counter(n) = s { *n } else { 0 }).sum()
    }

    /// Every family with at least one series, in the text format 0.0.4.
    pub fn render(&self) -> String {
        let registry = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        for (family, series) in FAMILIES.iter().zip(&registry.series) {
            if series.is_empty() {
                continue;
            }
            let kind = match family.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
                Kind::Histogram(_) => "histogram",
            };
            let _ = writeln!(out, "# HELP {} {}", family.name, escape_help(family.help));
            let _ = writeln!(out, "# TYPE {} {kind}", family.name);
            for (values, s) in series {
                let labels = |extra: Option<&str>| label_set(family.labels, values, extra);
                match s {
                    Series::Counter(n) => {
                        let _ = writeln!(out, "{}{} {n}", family.name, labels(None));
                    }
                    Series::Gauge(v) => {
                        let _ = writeln!(out, "{}{} {}", family.name, labels(None), number(*v));
                    }
                    Series::Histogram { buckets, sum, count } => {
                        let Kind::Histogram(bounds) = family.kind else { continue };
                        let mut cumulative = 0;
                        let les = bounds.iter().map(|&b| number(b)).chain(["+Inf".to_owned()]);
                        for (le, n) in les.zip(buckets) {
                            cumulative += n;
                            let _ = writeln!(out, "{}_bucket{} {cumulative}", family.name, labels(Some(&le)));
                        }
                        let _ = writeln!(out, "{}_sum{} {}", family.name, labels(None), number(*sum));
                        let _ = writeln!(out, "{}_count{} {count}", family.name, labels(None));
                    }
                }
            }
        }
        out
    }

    fn update(&self, id: Id, labels: &[&str], f: impl FnOnce(&mut Series)) {
        let family = &FAMILIES[id as usize];
        debug_assert_eq!(labels.len(), family.labels.len(), "{}", family.name);
        let key: Vec<String> = labels.iter().map(|&l| l.to_owned()).collect();
        let mut registry = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(registry.series[id as usize].entry(key).or_insert_with(|| Series::new(family.kind)));
    }

    fn add(&self, id: Id, labels: &[&str]) {
        self.add_n(id, labels, 1);
    }

    fn add_n(&self, id: Id, labels: &[&str], by: u64) {
        self.update(id, labels, |s| {
            if let Series::Counter(n) = s {
                *n += by;
            }
        });
    }

    fn set(&self, id: Id, labels: &[&str], value: f64) {
        self.update(id, labels, |s| {
            if let Series::Gauge(v) = s {
                *v = value;
            }
        });
    }
}

/// `{a="x",b="y"}` (empty when there are no labels), with `le` appended for
/// histogram buckets.
fn label_set(names: &[&str], values: &[String], le: Option<&str>) -> String {
    let pairs: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(n, v)| (*n, v.as_str()))
        .chain(le.map(|le| ("le", le)))
        .map(|(n, v)| format!("{n}=\"{}\"", escape_label(v)))
        .collect();
    if pairs.is_empty() { String::new() } else { format!("{{{}}}", pairs.join(",")) }
}

/// Label values escape backslash, double quote and newline.
fn escape_label(value: &str) -> String {
    value.replace('\\', r"\\").replace('"', "\\\"").replace('\n', r"\n")
}

/// HELP text escapes backslash and newline.
fn escape_help(text: &str) -> String {
    text.replace('\\', r"\\").replace('\n', r"\n")
}

/// Go-style float text: `0.25`, `3`, `+Inf`, `NaN`.
fn number(v: f64) -> String {
    match v {
        f64::INFINITY => "+Inf".into(),
        f64::NEG_INFINITY => "-Inf".into(),
        v if v.is_nan() => "NaN".into(),
        v => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_observed_renders_nothing() {
        assert_eq!(Metrics::new().render(), "");
    }

    #[test]
    fn counters_and_gauges_render_exactly_with_escaped_labels() {
        let m = Metrics::new();
        m.rotation("kv-random@0.1.0", "rotated");
        m.rotation("kv-random@0.1.0", "rotated");
        m.rotation("a\"b\\c\nd", "failed");
        m.vault_request(Some(200));
        m.vault_request(None);
        m.lease_renewal("ok");
        m.set_leases(3);
        m.set_token_ttl(Duration::from_millis(2500));
        m.plugin_trap("kv-random@0.1.0");
        m.clone().plugin_denial("kv-random@0.1.0");
        let at = time::OffsetDateTime::from_unix_timestamp(1_764_970_000).ok();
        m.set_jobs([
            JobGauges { id: "billing", needs_attention: true, last_success: at },
            JobGauges { id: "orders", needs_attention: false, last_success: None },
        ]);
        let want = r#"# HELP rotator_rotations_total Rotations finished, by plugin and outcome.
# TYPE rotator_rotations_total counter
rotator_rotations_total{plugin="a\"b\\c\nd",outcome="failed"} 1
rotator_rotations_total{plugin="kv-random@0.1.0",outcome="rotated"} 2
# HELP rotator_job_last_success_timestamp_seconds When each job last rotated successfully (Unix time).
# TYPE rotator_job_last_success_timestamp_seconds gauge
rotator_job_last_success_timestamp_seconds{job="billing"} 1764970000
# HELP rotator_vault_requests_total HTTP requests to Vault, by response status ("error" when no response came).
# TYPE rotator_vault_requests_total counter
rotator_vault_requests_total{status="200"} 1
rotator_vault_requests_total{status="error"} 1
# HELP rotator_lease_renewals_total Lease renewals, by outcome.
# TYPE rotator_lease_renewals_total counter
rotator_lease_renewals_total{outcome="ok"} 1
# HELP rotator_leases Leases being kept alive.
# TYPE rotator_leases gauge
rotator_leases 3
# HELP rotator_token_ttl_seconds Remaining TTL of the daemon's Vault token when last checked.
# TYPE rotator_token_ttl_seconds gauge
rotator_token_ttl_seconds 2.5
# HELP rotator_plugin_traps_total Plugin steps that trapped (panic, out of memory, deadline).
# TYPE rotator_plugin_traps_total counter
rotator_plugin_traps_total{plugin="kv-random@0.1.0"} 1
# HELP rotator_plugin_denials_total Plugin Vault calls refused by the job's grants.
# TYPE rotator_plugin_denials_total counter
rotator_plugin_denials_total{plugin="kv-random@0.1.0"} 1
# HELP rotator_job_needs_attention 1 for each job that failed in a way that needs an operator (e.g. a rollback failed); absent otherwise.
# TYPE rotator_job_needs_attention gauge
rotator_job_needs_attention{job="billing"} 1
# HELP rotator_jobs_needing_attention How many jobs need an operator.
# TYPE rotator_jobs_needing_attention gauge
rotator_jobs_needing_attention 1
"#;
        assert_eq!(m.render(), want);
        m.set_jobs([JobGauges { id: "orders", needs_attention: false, last_success: at }]);
        let rendered = m.render();
        assert!(!rendered.contains("billing"), "{rendered}");
        assert!(rendered.contains("rotator_jobs_needing_attention 0"), "{rendered}");
    }

    #[test]
    fn histogram_buckets_are_cumulative_with_sum_and_count() {
        let m = Metrics::new();
        m.step_duration("p@1", "set", Duration::from_millis(3));
        m.step_duration("p@1", "set", Duration::from_millis(5));
        m.step_duration("p@1", "set", Duration::from_secs(2));
        m.step_duration("p@1", "set", Duration::from_secs(90));
        let want = r#"# HELP rotator_step_duration_seconds How long each rotation step took, by plugin and step.
# TYPE rotator_step_duration_seconds histogram
rotator_step_duration_seconds_bucket{plugin="p@1",step="set",le="0.001"} 0
rotator_step_duration_seconds_bucket{plugin="p@1",step="set",le="0.005"} 2
rotator_step_duration_seconds_bucket{plugin="p@1",step="set",le="0.01"} 2
rotator_step_duration_seconds_bucket{plugin="p@1",step="set",le="0.05"} 2
rotator_step_duration_seconds_bucket{plugin="p@1",step="set",le="0.1"} 2
rotator_step_duration_seconds_bucket{plugin="p@1",step="set",le="0.5"} 2
rotator_step_duration_seconds_bucket{plugin="p@1",step="set",le="1"} 2
rotator_step_duration_seconds_bucket{plugin="p@1",step="set",le="5"} 3
rotator_step_duration_seconds_bucket{plugin="p@1",step="set",le="10"} 3
rotator_step_duration_seconds_bucket{plugin="p@1",step="set",le="60"} 3
rotator_step_duration_seconds_bucket{plugin="p@1",step="set",le="+Inf"} 4
rotator_step_duration_seconds_sum{plugin="p@1",step="set"} 92.008
rotator_step_duration_seconds_count{plugin="p@1",step="set"} 4
"#;
        assert_eq!(m.render(), want);
    }

    #[test]
    fn special_numbers_and_help_escaping() {
        assert_eq!([number(f64::INFINITY), number(f64::NAN), number(0.1), number(3.0)], ["+Inf", "NaN", "0.1", "3"]);
        assert_eq!(escape_help("a\\b\nc \"q\""), "a\\\\b\\nc \"q\"");
    }
}
