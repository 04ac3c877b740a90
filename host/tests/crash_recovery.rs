//! The fault-injection suite: the real `rotator run` process is aborted at
//! every crash point of a rotation (`ROTATOR_CRASH_AT`), restarted, and the
//! end-state rule is checked against Vault and a real PostgreSQL.
//!
//! After every trial: the password Vault holds logs in to PostgreSQL, the
//! state record holds no PENDING, and exactly one more rotation was recorded
//! (one more KV version, one more `rotated` history entry). The randomized
//! trial count is `CRASH_TRIALS` (default 200); `scripts/crash-trials.sh`
//! runs 1,000 and writes `docs/reliability.md`.

#[path = "../../tests/src/postgres.rs"]
#[allow(dead_code)]
mod postgres;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use rotator::devserver::{DevServer, DevServerOptions};
use rotator::rotation::crash;
use rotator::rotation::state::{JobState, Outcome, StateStore};
use rotator::secret::SecretJson;
use rotator::vault::{VaultClient, VaultOptions};
use secrecy::SecretString;

const ROOT: &str = "crash-suite-root";
const JOB: &str = "app-db";
const ROLE: &str = "app_user";

/// One dev server, one PostgreSQL, one config: the world a daemon restarts in.
struct Rig {
    /// Kept alive for the daemons to talk to.
    _server: DevServer,
    pg: postgres::Postgres,
    vault: VaultClient,
    store: StateStore,
    dir: tempfile::TempDir,
}

impl Rig {
    async fn new() -> Self {
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let server = DevServer::start(DevServerOptions { addr, root_token: ROOT.into(), ..Default::default() })
            .await
            .expect("dev server");
        let vault = VaultClient::new(VaultOptions::new(server.url(), SecretString::from(ROOT))).unwrap();
        let pg = tokio::task::spawn_blocking(postgres::Postgres::start).await.unwrap();
        let admin = pg.connect("postgres", postgres::SUPERUSER_PASSWORD).await.unwrap();
        admin.batch_execute(&format!("CREATE ROLE {ROLE} LOGIN PASSWORD 'initial-password'")).await.unwrap();
        let creds = SecretJson::new(postgres::Postgres::admin_secret());
        vault.kv_write("secret", "pg/admin", &creds, None).await.unwrap();

        let dir = tempfile::tempdir().unwrap();
        let toml = format!(
            "[vault]\naddress = \"{}\"\ntoken = {{ env = \"CRASH_SUITE_TOKEN\" }}\n\n\
             [daemon]\napi_addr = \"127.0.0.1:0\"\ncache_dir = \"cache\"\nshutdown_grace = \"20s\"\n{}",
            server.url(),
            pg.single_user_job(JOB, "app/db", ROLE)
        );
        std::fs::write(dir.path().join("rotator.toml"), toml).unwrap();
        let store = StateStore::new(vault.clone(), "secret", "rotator/state");
        Self { _server: server, pg, vault, store, dir }
    }

    fn daemon(&self, crash_at: Option<&str>) -> Proc {
        let mut c = Command::new(env!("CARGO_BIN_EXE_rotator"));
        c.args(["--log-format", "json", "run", "--config"])
            .arg(self.dir.path().join("rotator.toml"))
            .env_remove("RUST_LOG")
            .env_remove(crash::ENV)
            .env("CRASH_SUITE_TOKEN", ROOT)
            .env("ROTATOR_API_TOKEN", "crash-suite-api-token-0123456789")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(point) = crash_at {
            c.env(crash::ENV, point);
        }
        Proc::spawn(c)
    }

    async fn state(&self) -> JobState {
        self.store.load(JOB).await.expect("state readable").state
    }

    /// Make the job's next rotation due now, as if its slot had come.
    async fn make_due(&self) {
        let mut v = self.store.load(JOB).await.unwrap();
        let now = time::OffsetDateTime::now_utc() - Duration::from_secs(1);
        v.state.slot = Some(now);
        v.state.next_due = Some(now);
        self.store.save(JOB, &mut v).await.unwrap();
    }

    /// Run the daemon until it aborts at its crash point, or until the
    /// record shows `rotations` done with nothing in progress (then stop it
    /// with SIGTERM, once it is up). Returns whether it crashed.
    async fn drive(&self, mut p: Proc, rotations: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = p.child.try_wait() {
                let text = p.output();
                assert!(text.contains("crash point"), "rotator exited with {status} without a crash point:\n{text}");
                return true;
            }
            let s = self.state().await;
            if p.is_up() && s.rotations >= rotations && s.in_progress.is_none() {
                Command::new("kill").args(["-TERM", &p.child.id().to_string()]).status().unwrap();
                let status = p.child.wait().unwrap();
                let text = p.output();
                // It may have reached a late crash point just before the signal.
                assert!(status.success() || text.contains("crash point"), "rotator stopped with {status}:\n{text}");
                return !status.success();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = p.child.kill();
        panic!("the rotation did not settle in 60 s: {}", p.output());
    }

    /// The end-state rule and the lockout check.
    async fn check(&self, rotations: u64, context: &str) {
        let s = self.state().await;
        assert!(s.in_progress.is_none(), "{context}: PENDING left behind: {:?}", s.in_progress);
        assert_eq!(s.rotations, rotations, "{context}: rotation count");
        let rotated = s.history.iter().filter(|h| h.outcome == Outcome::Rotated).count() as u64;
        assert_eq!(rotated, rotations.min(rotator::rotation::state::HISTORY_LEN as u64), "{context}: history");
        let secret = self.vault.kv_read("secret", "app/db").await.unwrap().expect("secret exists");
        assert_eq!(secret.version, Some(rotations), "{context}: one KV version per rotation");
        let fields = secret.data.fields();
        let password = fields["password"].as_str().unwrap();
        assert_eq!(fields["username"], ROLE);
        assert!(self.pg.logs_in(ROLE, password).await, "{context}: LOCKOUT: the password in Vault is refused");
    }
}

/// A running `rotator run`, with its output collected as it comes.
struct Proc {
    child: Child,
    output: Arc<Mutex<String>>,
}

impl Proc {
    fn spawn(mut c: Command) -> Self {
        let mut child = c.spawn().expect("rotator run starts");
        let output = Arc::new(Mutex::new(String::new()));
        let pipes: [Box<dyn Read + Send>; 2] =
            [Box::new(child.stdout.take().unwrap()), Box::new(child.stderr.take().unwrap())];
        for pipe in pipes {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut out = output.lock().unwrap();
                    out.push_str(&line);
                    out.push('\n');
                }
            });
        }
        Self { child, output }
    }

    /// Past startup: its signal handlers are installed.
    fn is_up(&self) -> bool {
        self.output.lock().unwrap().contains("daemon started")
    }

    fn output(&self) -> String {
        // Let the reader threads drain what the process wrote last.
        std::thread::sleep(Duration::from_millis(50));
        self.output.lock().unwrap().clone()
    }
}

/// One trial: make a rotation due, run the daemon with `crashes` armed one
/// after another (each restart arms the next), then a clean daemon, and
/// check the result.
async fn trial(rig: &Rig, before: u64, crashes: &[String]) -> usize {
    rig.make_due().await;
    let mut crashed = 0;
    for point in crashes {
        crashed += usize::from(rig.drive(rig.daemon(Some(point)), before + 1).await);
    }
    let clean = rig.drive(rig.daemon(None), before + 1).await;
    assert!(!clean, "no crash point was armed");
    rig.check(before + 1, &format!("after crashes {crashes:?}")).await;
    crashed
}

/// Every point a single-user PostgreSQL rotation passes: the protocol's
/// actions and each host call the plugin makes.
fn points() -> Vec<String> {
    let mut all = crash::all_points();
    for n in 1..=3 {
        all.push(format!("before:host-call:{n}"));
        all.push(format!("after:host-call:{n}"));
    }
    all
}

#[tokio::test(flavor = "multi_thread")]
async fn every_crash_point_recovers_without_lockout() {
    let rig = Rig::new().await;
    let mut done = 0;
    // The first rotation creates the secret; each point gets one trial.
    trial(&rig, done, &[]).await;
    done += 1;
    for point in points() {
        let crashed = trial(&rig, done, std::slice::from_ref(&point)).await;
        done += 1;
        // A successful rotation passes every point but the rollback ones
        // (and the plugin makes two host calls: set's and test's).
        let reached = !point.contains("rollback") && !point.ends_with("host-call:3");
        assert_eq!(crashed, usize::from(reached), "{point}: crashed {crashed} times");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn randomized_crashes_never_lock_anyone_out() {
    let trials: u64 = std::env::var("CRASH_TRIALS").ok().and_then(|n| n.parse().ok()).unwrap_or(200);
    let rig = Rig::new().await;
    trial(&rig, 0, &[]).await;
    let all = points();
    let mut rng = rand::rng();
    let started = Instant::now();
    let mut crashes_total = 0;
    for t in 0..trials {
        // Up to three crashes in a row: the recovery itself may crash.
        let n = rng.random_range(0..=3);
        let crashes: Vec<String> = (0..n).map(|_| all[rng.random_range(0..all.len())].clone()).collect();
        crashes_total += trial(&rig, t + 1, &crashes).await;
    }
    // Read by scripts/crash-trials.sh for docs/reliability.md.
    println!("crash trials: 0 lockouts / {trials} trials ({crashes_total} crashes) in {:.0?}", started.elapsed());
}
