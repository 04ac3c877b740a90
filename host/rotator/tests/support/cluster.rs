//! Replicas as real `rotator run` processes: one dev server, one
//! PostgreSQL, kv-random and PostgreSQL jobs on short intervals, and `n`
//! daemons on the same config (`[daemon] replicas`), each with a folder of
//! its own (its compile cache). Used by the replica suite and the replica
//! benchmark; [`History`] reads back, from every KV version Vault kept,
//! what the replicas did.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rotator_core::secret::SecretJson;
use rotator_core::state::{HistoryEntry, InProgress, JobState, Outcome};
use rotator_core::vault::{VaultClient, VaultOptions};
use rotator_devserver::{DevServer, DevServerOptions};
use rotator_tests::postgres::{self, Postgres};
use secrecy::SecretString;
use time::OffsetDateTime;

use crate::rig::Proc;

const ROOT: &str = "replica-suite-root";
const API_TOKEN: &str = "replica-suite-api-token-0123456789";
/// Where the job records live (the defaults).
const STATE: &str = "rotator/state";

/// The world the replicas share.
pub struct Cluster {
    pub server: DevServer,
    pub vault: VaultClient,
    /// Started only for PostgreSQL jobs.
    pub pg: Option<Postgres>,
    dir: tempfile::TempDir,
    pub kv_jobs: Vec<String>,
    pub pg_jobs: Vec<String>,
    pub interval: Duration,
    pub ttl: Duration,
    /// Replica `i`'s process, while it runs.
    pub procs: Vec<Option<Proc>>,
}

impl Cluster {
    /// `kv` kv-random jobs and `pg` PostgreSQL jobs (roles `app_0`, …), all
    /// every `interval`; `replicas` folders; no replica started yet. Vault
    /// keeps every version of every key, so the history can be read back.
    pub async fn new(replicas: usize, kv: usize, pg: usize, interval: Duration, ttl: Duration) -> Self {
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let server = DevServer::start(DevServerOptions { addr, root_token: ROOT.into(), ..Default::default() })
            .await
            .expect("dev server");
        let vault = VaultClient::new(VaultOptions::new(server.url(), SecretString::from(ROOT))).unwrap();
        vault
            .request("POST", "secret/config", Some(serde_json::json!({ "max_versions": 100_000 }).to_string()))
            .await
            .unwrap();
        let kv_jobs: Vec<String> = (0..kv).map(|i| format!("kv-{i}")).collect();
        let pg_jobs: Vec<String> = (0..pg).map(|i| format!("pg-{i}")).collect();
        let cluster_pg = match pg {
            0 => None,
            _ => Some(tokio::task::spawn_blocking(Postgres::start).await.unwrap()),
        };
        if let Some(pg) = &cluster_pg {
            let creds = SecretJson::new(Postgres::admin_secret());
            vault.kv_write("secret", "pg/admin", &creds, None).await.unwrap();
            let admin = pg.connect("postgres", postgres::SUPERUSER_PASSWORD).await.unwrap();
            for i in 0..pg_jobs.len() {
                admin.batch_execute(&format!("CREATE ROLE app_{i} LOGIN PASSWORD 'initial-password'")).await.unwrap();
            }
        }
        for i in 0..pg_jobs.len() {
            let secret = serde_json::json!({ "username": format!("app_{i}"), "password": "initial-password" });
            vault
                .kv_write("secret", &format!("chaos/pg-{i}"), &SecretJson::new(secret.to_string()), None)
                .await
                .unwrap();
        }
        for job in &kv_jobs {
            let secret = serde_json::json!({ "password": "initial" });
            vault
                .kv_write("secret", &format!("chaos/{job}"), &SecretJson::new(secret.to_string()), None)
                .await
                .unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let procs = (0..replicas).map(|_| None).collect();
        let cluster = Self { server, vault, pg: cluster_pg, dir, kv_jobs, pg_jobs, interval, ttl, procs };
        for i in 0..replicas {
            std::fs::create_dir_all(cluster.folder(i)).unwrap();
            std::fs::write(cluster.folder(i).join("rotator.toml"), cluster.config(i)).unwrap();
        }
        cluster
    }

    fn folder(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("r{i}"))
    }

    /// Replica `i`'s config: the same jobs for all, its own name.
    fn config(&self, i: usize) -> String {
        let every = humantime::format_duration(self.interval);
        let mut toml = format!(
            "[vault]\naddress = \"{}\"\ntoken = {{ env = \"CLUSTER_TOKEN\" }}\n\n\
             [daemon]\napi_addr = \"127.0.0.1:0\"\ncache_dir = \"cache\"\nshutdown_grace = \"20s\"\nreveal_secrets = true\n\
             replicas = {{ name = \"r{i}\", lease_ttl = \"{}\" }}\n{}",
            self.server.url(),
            humantime::format_duration(self.ttl),
            self.pg.as_ref().map(|pg| postgres::app_connection(pg.port)).unwrap_or_default(),
        );
        for job in &self.kv_jobs {
            toml += &format!(
                "\n[[jobs]]\nid = \"{job}\"\nplugin = \"kv-random\"\nsecret = {{ path = \"chaos/{job}\" }}\n\
                 interval = \"{every}\"\nsettings = {{ field = \"password\" }}\n"
            );
        }
        for (n, job) in self.pg_jobs.iter().enumerate() {
            toml += &format!(
                "\n[[jobs]]\nid = \"{job}\"\nplugin = \"postgres-password\"\nsecret = {{ path = \"chaos/{job}\" }}\n\
                 interval = \"{every}\"\nsettings = {{ connection = \"app\", strategy = \"single-user\", username = \"app_{n}\" }}\n\
                 grants = [{{ sql = \"app\" }}]\n"
            );
        }
        toml
    }

    /// Start replica `i`, with extra environment (`ROTATOR_PAUSE_AT`).
    pub fn spawn_with(&mut self, i: usize, env: &[(&str, &str)]) {
        let mut c = Command::new(env!("CARGO_BIN_EXE_rotator"));
        c.args(["--log-format", "json", "run", "--config"])
            .arg(self.folder(i).join("rotator.toml"))
            .env_remove("RUST_LOG")
            .env_remove(rotator_core::crash::ENV)
            .env_remove(rotator_core::crash::PAUSE_ENV)
            .env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN")
            .env("CLUSTER_TOKEN", ROOT)
            .env("ROTATOR_API_TOKEN", API_TOKEN)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        self.procs[i] = Some(Proc::spawn(c));
    }

    pub fn spawn(&mut self, i: usize) {
        self.spawn_with(i, &[]);
    }

    /// SIGKILL replica `i`; its output so far.
    pub fn kill(&mut self, i: usize) -> String {
        let mut p = self.procs[i].take().expect("replica runs");
        let _ = p.child.kill();
        let _ = p.child.wait();
        p.output()
    }

    /// Send `signal` (`STOP`, `CONT`, `TERM`) to replica `i`.
    pub fn signal(&self, i: usize, signal: &str) {
        self.procs[i].as_ref().expect("replica runs").signal(signal);
    }

    /// Stop replica `i` with SIGTERM (continuing it first, should it be
    /// stopped) and wait; its whole output.
    pub fn stop(&mut self, i: usize) -> String {
        let Some(mut p) = self.procs[i].take() else { return String::new() };
        p.signal("CONT");
        p.signal("TERM");
        let status = p.child.wait().unwrap();
        let out = p.output();
        assert!(status.success(), "replica r{i} stopped with {status}:\n{out}");
        out
    }

    /// Replica `i`'s API address, once it is up.
    pub async fn api(&mut self, i: usize) -> SocketAddr {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let p = self.procs[i].as_mut().expect("replica runs");
            if let Some(addr) = p.api_addr() {
                return addr;
            }
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("replica r{i} exited with {status}: {}", p.output());
            }
            assert!(Instant::now() < deadline, "replica r{i} not up in 60 s: {}", p.output());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Replica `i`'s `/status`.
    pub async fn status(&mut self, i: usize) -> serde_json::Value {
        let addr = self.api(i).await;
        let http = reqwest::Client::new();
        let resp = http.get(format!("http://{addr}/status")).bearer_auth(API_TOKEN).send().await.unwrap();
        resp.json().await.unwrap()
    }

    /// `GET path` on replica `i`'s API: status and JSON body.
    pub async fn get(&mut self, i: usize, path: &str) -> (u16, serde_json::Value) {
        let addr = self.api(i).await;
        let resp =
            reqwest::Client::new().get(format!("http://{addr}{path}")).bearer_auth(API_TOKEN).send().await.unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap_or_default())
    }

    /// Replica `i`'s `/metrics` text.
    pub async fn metrics(&mut self, i: usize) -> String {
        let addr = self.api(i).await;
        let http = reqwest::Client::new();
        let resp = http.get(format!("http://{addr}/metrics")).bearer_auth(API_TOKEN).send().await.unwrap();
        resp.text().await.unwrap()
    }

    /// `POST /jobs/{job}/rotate` on replica `i`: status and body.
    pub async fn rotate_now(&mut self, i: usize, job: &str) -> (u16, String) {
        let addr = self.api(i).await;
        let http = reqwest::Client::new();
        let url = format!("http://{addr}/jobs/{job}/rotate");
        let resp = http.post(url).bearer_auth(API_TOKEN).send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    /// The replicas record as Vault holds it now.
    pub async fn table(&self) -> serde_json::Value {
        let found = self.vault.kv_read("secret", &format!("{STATE}/_replicas")).await.unwrap();
        found.map(|s| serde_json::from_str(s.data.expose()).unwrap()).unwrap_or_default()
    }

    /// Wait until the record has exactly `n` members and every shard has an
    /// owner among them, each holding its even share; the time it took.
    pub async fn settled(&self, n: usize, within: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let t = self.table().await;
            let members: Vec<String> =
                t["members"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
            let shards = t["shards"].as_array().cloned().unwrap_or_default();
            let mut held: BTreeMap<String, usize> = BTreeMap::new();
            for s in &shards {
                if let Some(o) = s["owner"].as_str() {
                    *held.entry(o.to_owned()).or_default() += 1;
                }
            }
            let even = held.values().all(|h| h.abs_diff(shards.len() / n.max(1)) <= 1);
            if members.len() == n && held.values().sum::<usize>() == shards.len() && shards.len() == 64 && even {
                return started.elapsed();
            }
            assert!(started.elapsed() < within, "no even split over {n} replicas in {within:?}: {t}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every job id.
    pub fn jobs(&self) -> Vec<String> {
        self.kv_jobs.iter().chain(&self.pg_jobs).cloned().collect()
    }

    /// Everything Vault kept of `job`: every version of its record and the
    /// number of versions its secret gained.
    pub async fn history(&self, job: &str) -> History {
        let path = format!("{STATE}/{job}");
        let newest = self.vault.kv_read("secret", &path).await.unwrap().expect("a record");
        let mut records = Vec::new();
        for v in 1..=newest.version.unwrap() {
            let found = self.vault.kv_read_version("secret", &path, Some(v)).await.unwrap();
            let data = found.unwrap_or_else(|| panic!("{job}: record version {v} was not kept"));
            records.push(JobState::from_secret(&data.data).unwrap());
        }
        let secret = self.vault.kv_read("secret", &format!("chaos/{job}")).await.unwrap().unwrap();
        History { job: job.to_owned(), records, secret_versions: secret.version.unwrap() - 1, current: secret.data }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for p in self.procs.iter_mut().flatten() {
            p.signal("CONT");
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }
}

/// One job's past, from every version of its record.
pub struct History {
    pub job: String,
    /// Every version of the record, oldest first.
    pub records: Vec<JobState>,
    /// Versions the secret gained (one per rotation, if all is well).
    pub secret_versions: u64,
    /// The secret's current value.
    pub current: SecretJson,
}

impl History {
    /// Every finished rotation, once each (records repeat their history).
    pub fn entries(&self) -> Vec<HistoryEntry> {
        let mut seen = BTreeMap::new();
        for r in &self.records {
            for h in &r.history {
                seen.entry(h.id.clone()).or_insert_with(|| h.clone());
            }
        }
        let mut all: Vec<HistoryEntry> = seen.into_values().collect();
        all.sort_by_key(|h| h.finished);
        all
    }

    /// Every rotation that was ever in progress, by id.
    pub fn started(&self) -> BTreeMap<String, InProgress> {
        self.records.iter().filter_map(|r| r.in_progress.clone()).map(|p| (p.id.clone(), p)).collect()
    }

    /// The ownership epochs on the record's versions, in write order.
    pub fn epochs(&self) -> Vec<u64> {
        self.records.iter().filter_map(|r| r.fence.as_ref().map(|f| f.epoch)).collect()
    }

    /// Rotated entries, oldest first.
    pub fn rotated(&self) -> Vec<HistoryEntry> {
        self.entries().into_iter().filter(|h| h.outcome == Outcome::Rotated).collect()
    }

    /// Grid slots that no rotation or failure answered, between consecutive
    /// answered slots, that the catch-up rule does not explain: the next
    /// slot after a run is the first one after the run ended, so a slot
    /// passed while that run was still going is merged into it. Returns
    /// the unexplained slots.
    pub fn missed(&self, interval: Duration) -> Vec<OffsetDateTime> {
        let mut by_slot: BTreeMap<OffsetDateTime, OffsetDateTime> = BTreeMap::new();
        for h in self.entries() {
            if let Some(slot) = h.slot {
                let end = by_slot.entry(slot).or_insert(h.finished);
                *end = (*end).max(h.finished);
            }
        }
        let slots: Vec<_> = by_slot.into_iter().collect();
        let mut missed = Vec::new();
        for pair in slots.windows(2) {
            let ((s1, ended), (s2, _)) = (pair[0], pair[1]);
            let mut g = s1 + interval;
            while g < s2 {
                // One second of slack: the next slot is computed a moment
                // after the entry's `finished` is stamped.
                if g > ended + Duration::from_secs(1) {
                    missed.push(g);
                }
                g += interval;
            }
        }
        missed
    }
}
