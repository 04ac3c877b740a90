//! A world for `rotator run` processes: a dev server, one real target
//! (PostgreSQL with role `app_user` and a single-user `postgres-password`
//! job, RabbitMQ with user `app_user` and a single-user
//! `rabbitmq-password` job in handle mode, or moto with IAM user `app_user`
//! and an `aws-iam-access-key` job), the secret in Vault KV or in AWS
//! Secrets Manager (the same moto), plus the daemon as a child
//! process whose output is collected as it comes. Used by the crash suite
//! and the shutdown tests.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rotator_core::crash;
use rotator_core::secret::SecretJson;
use rotator_core::state::{JobState, Outcome, StateStore};
use rotator_core::store::StoreVersion;
use rotator_core::vault::{VaultClient, VaultOptions};
use rotator_devserver::{DevServer, DevServerOptions};
use secrecy::SecretString;

use crate::{moto, postgres, rabbitmq};

pub const ROOT: &str = "crash-suite-root";
pub const JOB: &str = "app-db";
pub const ROLE: &str = "app_user";
/// Where the job's secret lives (mount `secret`).
const SECRET_PATH: &str = "app/db";

/// The system whose password the job rotates.
pub enum Target {
    Postgres(postgres::Postgres),
    RabbitMq(rabbitmq::RabbitMq),
    AwsIam(moto::Moto),
    /// None beyond the secret's store (kv-random): the moto it lives in.
    SecretsManager(moto::Moto),
}

/// `secret/app/db`'s place in Secrets Manager, as a job's `secret`.
fn in_secrets_manager() -> String {
    format!("secret = {{ aws = {{ id = \"{SECRET_PATH}\", region = \"{}\" }} }}", moto::REGION)
}

/// One dev server, one target, one config: the world a daemon restarts in.
pub struct Rig {
    /// Kept alive for the daemons to talk to.
    _server: DevServer,
    pub target: Target,
    pub vault: VaultClient,
    pub store: StateStore,
    dir: tempfile::TempDir,
    /// KV versions of the secret before the first rotation (a job that
    /// cannot create its first secret starts from one).
    initial_versions: u64,
    /// The secret lives in Secrets Manager (at [`SECRET_PATH`]), not in Vault.
    in_aws: bool,
    /// The state records live in Secrets Manager too, and the daemon is
    /// given no Vault.
    without_vault: bool,
}

/// Where a rig without Vault keeps its state records in Secrets Manager.
pub const STATE_PREFIX: &str = "rotator/state/";

impl Rig {
    /// A PostgreSQL rig; `job_extra` is TOML appended to the job's table
    /// (e.g. `limits`).
    pub async fn new(job_extra: &str) -> Self {
        let (server, vault) = dev_server().await;
        let pg = tokio::task::spawn_blocking(postgres::Postgres::start).await.unwrap();
        let admin = pg.connect("postgres", postgres::SUPERUSER_PASSWORD).await.unwrap();
        admin.batch_execute(&format!("CREATE ROLE {ROLE} LOGIN PASSWORD 'initial-password'")).await.unwrap();
        let creds = SecretJson::new(postgres::Postgres::admin_secret());
        vault.kv_write("secret", "pg/admin", &creds, None).await.unwrap();
        let job = format!("{}{job_extra}", pg.single_user_job(JOB, SECRET_PATH, ROLE));
        Self::with(server, vault, Target::Postgres(pg), &job)
    }

    /// A RabbitMQ rig: user `app_user` (tag `management`), the admin's
    /// credentials in Vault KV, and a single-user `rabbitmq-password` job
    /// in handle mode granted only the management API paths it uses.
    pub async fn rabbitmq() -> Self {
        let (server, vault) = dev_server().await;
        let mq = tokio::task::spawn_blocking(rabbitmq::RabbitMq::start).await.unwrap();
        mq.create_user(ROLE, "initial-password", &["management"]).await;
        mq.set_permissions(ROLE).await;
        let admin = serde_json::json!({"username": mq.admin_user(), "password": mq.admin_password()});
        vault.kv_write("secret", "rabbit/admin", &SecretJson::new(admin.to_string()), None).await.unwrap();
        let job = mq.single_user_job(JOB, SECRET_PATH, ROLE);
        Self::with(server, vault, Target::RabbitMq(mq), &job)
    }

    /// An IAM rig: a private moto server with authentication on, IAM user
    /// `app_user` with the self-service policy and one key, that key in
    /// Vault KV (version 1), and an `aws-iam-access-key` job granted only
    /// `POST /` at moto.
    pub async fn aws_iam() -> Self {
        let (server, vault) = dev_server().await;
        let aws = tokio::task::spawn_blocking(moto::Moto::start).await.unwrap();
        let key = aws.create_user(ROLE, moto::SELF_SERVICE_POLICY).await;
        let secret = SecretJson::new(moto::Moto::secret_of(&key).to_string());
        vault.kv_write("secret", SECRET_PATH, &secret, None).await.unwrap();
        let job = aws.access_key_job(JOB, SECRET_PATH, ROLE);
        Self { initial_versions: 1, ..Self::with(server, vault, Target::AwsIam(aws), &job) }
    }

    /// An IAM rig whose key lives in AWS Secrets Manager on the same moto:
    /// AWS as both the store and the target.
    pub async fn aws_iam_in_secrets_manager() -> Self {
        let (server, vault) = dev_server().await;
        let aws = tokio::task::spawn_blocking(moto::Moto::start).await.unwrap();
        let key = aws.create_user(ROLE, moto::SELF_SERVICE_POLICY).await;
        create_secret(&aws, &moto::Moto::secret_of(&key)).await;
        let job = aws.access_key_job(JOB, SECRET_PATH, ROLE);
        let job = job.replace(&format!("secret = {{ path = \"{SECRET_PATH}\" }}"), &in_secrets_manager());
        assert!(job.contains("aws = {"), "the IAM job's secret line changed: {job}");
        Self { in_aws: true, ..Self::with(server, vault, Target::AwsIam(aws), &job) }
    }

    /// kv-random with its secret in Secrets Manager: nothing to log in to,
    /// the store's labels are what the trials check.
    pub async fn kv_random_in_secrets_manager() -> Self {
        let (server, vault) = dev_server().await;
        let aws = tokio::task::spawn_blocking(moto::Moto::start).await.unwrap();
        create_secret(&aws, &serde_json::json!({"username": ROLE, "password": "initial-password"})).await;
        let job = format!(
            "[[jobs]]\nid = \"{JOB}\"\nplugin = \"kv-random\"\n{}\ninterval = \"1h\"\nsettings = {{ field = \"password\" }}\n",
            in_secrets_manager()
        );
        Self { in_aws: true, ..Self::with(server, vault, Target::SecretsManager(aws), &job) }
    }

    /// kv-random with its secret and its state records in Secrets Manager,
    /// and no Vault at all: the config has no `[vault]` section and the
    /// daemon's environment names no Vault.
    pub async fn kv_random_without_vault() -> Self {
        let mut rig = Self::kv_random_in_secrets_manager().await;
        let path = rig.dir.path().join("rotator.toml");
        let toml = std::fs::read_to_string(&path).unwrap();
        let (_, rest) = toml.split_once("[daemon]\n").expect("the rig's config has [daemon]");
        let state = format!("state = {{ aws = {{ prefix = \"{STATE_PREFIX}\", region = \"{}\" }} }}\n", moto::REGION);
        std::fs::write(&path, format!("[daemon]\n{state}{rest}")).unwrap();
        let aws = rig.moto().client(&rig.moto().admin, rotator_core::vault::RequestRetry::default());
        rig.store = StateStore::in_secrets_manager(aws, STATE_PREFIX, moto::REGION);
        rig.without_vault = true;
        rig
    }

    /// The moto of an AWS rig.
    fn moto(&self) -> &moto::Moto {
        match &self.target {
            Target::AwsIam(m) | Target::SecretsManager(m) => m,
            _ => panic!("not an AWS rig"),
        }
    }

    fn with(server: DevServer, vault: VaultClient, target: Target, job: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let job = away_from_now(job);
        let toml = format!(
            "[vault]\naddress = \"{}\"\ntoken = {{ env = \"CRASH_SUITE_TOKEN\" }}\n\n\
             [daemon]\napi_addr = \"127.0.0.1:0\"\ncache_dir = \"cache\"\nshutdown_grace = \"20s\"\n{job}",
            server.url(),
        );
        std::fs::write(dir.path().join("rotator.toml"), toml).unwrap();
        let store = StateStore::new(vault.clone(), "secret", "rotator/state");
        Self { _server: server, target, vault, store, dir, initial_versions: 0, in_aws: false, without_vault: false }
    }

    /// The config file the daemons run (`rotator run --config`).
    pub fn config_path(&self) -> std::path::PathBuf {
        self.dir.path().join("rotator.toml")
    }

    /// The PostgreSQL cluster of a PostgreSQL rig.
    pub fn pg(&self) -> &postgres::Postgres {
        match &self.target {
            Target::Postgres(pg) => pg,
            _ => panic!("only a PostgreSQL rig has PostgreSQL"),
        }
    }

    /// Does the secret's credential log `ROLE` in to the target? For IAM
    /// also: the user has at most one key besides it, and that one is
    /// Inactive (the previous key, which the next rotation deletes): no
    /// orphan is left.
    async fn logs_in(&self, fields: &serde_json::Map<String, serde_json::Value>, context: &str) -> bool {
        let text =
            |k: &str| fields[k].as_str().unwrap_or_else(|| panic!("{context}: no `{k}` in the secret")).to_owned();
        match &self.target {
            Target::Postgres(pg) => pg.logs_in(ROLE, &text("password")).await,
            Target::RabbitMq(mq) => mq.authenticates(ROLE, &text("password")).await,
            Target::SecretsManager(_) => text("password") != "initial-password",
            Target::AwsIam(aws) => {
                let key = moto::AwsKey { id: text("access_key_id"), secret: text("secret_access_key") };
                let keys = aws.access_keys(ROLE).await;
                let others: Vec<_> = keys.iter().filter(|(id, _)| *id != key.id).collect();
                assert!(keys.len() <= 2, "{context}: user {ROLE} has {keys:?}");
                assert!(others.iter().all(|(_, status)| status == "Inactive"), "{context}: an orphan key: {keys:?}");
                let arn = aws.caller_identity(&key).await;
                matches!(&arn, Ok(arn) if arn.ends_with(&format!(":user/{ROLE}")))
            }
        }
    }

    pub fn daemon(&self, crash_at: Option<&str>) -> Proc {
        let mut c = Command::new(env!("CARGO_BIN_EXE_rotator"));
        c.args(["--log-format", "json", "run", "--config"])
            .arg(self.config_path())
            .env_remove("RUST_LOG")
            .env_remove(crash::ENV)
            .env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN")
            .env("CRASH_SUITE_TOKEN", ROOT)
            .env("ROTATOR_API_TOKEN", "crash-suite-api-token-0123456789")
            .envs(if self.in_aws { self.moto().env() } else { Vec::new() })
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(point) = crash_at {
            c.env(crash::ENV, point);
        }
        Proc::spawn(c)
    }

    pub async fn state(&self) -> JobState {
        self.store.load(JOB).await.expect("state readable").state
    }

    /// Make the job's next rotation due now, as if its slot had come.
    pub async fn make_due(&self) {
        let mut v = self.store.load(JOB).await.unwrap();
        let now = time::OffsetDateTime::now_utc() - Duration::from_secs(1);
        v.state.slot = Some(now);
        v.state.next_due = Some(now);
        self.store.save(JOB, &mut v).await.unwrap();
    }

    /// The end-state rule and the lockout check.
    pub async fn check(&self, rotations: u64, context: &str) {
        let s = self.state().await;
        assert!(s.in_progress.is_none(), "{context}: PENDING left behind: {:?}", s.in_progress);
        assert_eq!(s.rotations, rotations, "{context}: rotation count");
        let rotated = s.history.iter().filter(|h| h.outcome == Outcome::Rotated).count() as u64;
        assert_eq!(rotated, rotations.min(rotator_core::state::HISTORY_LEN as u64), "{context}: history");
        let fields = if self.in_aws {
            self.aws_secret(&s, rotations, context).await
        } else {
            let secret = self.vault.kv_read("secret", SECRET_PATH).await.unwrap().expect("secret exists");
            let versions = rotations + self.initial_versions;
            assert_eq!(secret.version, Some(versions), "{context}: one KV version per rotation");
            secret.data.fields()
        };
        if !matches!(self.target, Target::AwsIam(_)) {
            assert_eq!(fields["username"], ROLE);
        }
        assert!(self.logs_in(&fields, context).await, "{context}: LOCKOUT: the credential in Vault is refused");
    }
}

impl Rig {
    /// The secret's fields in Secrets Manager, after AWS's end-state rule:
    /// no `AWSPENDING` left, and `AWSCURRENT` on the last rotation's version.
    async fn aws_secret(
        &self,
        s: &JobState,
        rotations: u64,
        context: &str,
    ) -> serde_json::Map<String, serde_json::Value> {
        let moto = self.moto();
        let sm = |op: &str, body: serde_json::Value| {
            let target = format!("secretsmanager.{op}");
            async move { moto.json_call(&moto.admin, "secretsmanager", moto::REGION, &target, &body).await.unwrap() }
        };
        let d = sm("DescribeSecret", serde_json::json!({ "SecretId": SECRET_PATH })).await;
        let labels = d["VersionIdsToStages"].as_object().cloned().unwrap_or_default();
        let holding = |label: &str| -> Vec<String> {
            let has = |stages: &serde_json::Value| stages.as_array().unwrap().iter().any(|l| l == label);
            labels.iter().filter(|(_, stages)| has(stages)).map(|(id, _)| id.clone()).collect()
        };
        assert!(holding("AWSPENDING").is_empty(), "{context}: AWSPENDING stranded: {labels:?}");
        let current = holding("AWSCURRENT");
        assert_eq!(current.len(), 1, "{context}: {labels:?}");
        if rotations > 0 {
            let last = s.history.iter().find(|h| h.outcome == Outcome::Rotated).and_then(|h| h.version.clone());
            assert_eq!(
                last,
                Some(StoreVersion::Id(current[0].clone())),
                "{context}: AWSCURRENT is the last rotation's"
            );
        }
        let v =
            sm("GetSecretValue", serde_json::json!({ "SecretId": SECRET_PATH, "VersionStage": "AWSCURRENT" })).await;
        serde_json::from_str(v["SecretString"].as_str().unwrap()).unwrap()
    }
}

/// Create the rig's secret `app/db` in Secrets Manager with `value`.
async fn create_secret(aws: &moto::Moto, value: &serde_json::Value) {
    let body = serde_json::json!({ "Name": SECRET_PATH, "SecretString": value.to_string() });
    aws.json_call(&aws.admin, "secretsmanager", moto::REGION, "secretsmanager.CreateSecret", &body).await.unwrap();
}

/// A dev server and a root client for it.
async fn dev_server() -> (DevServer, VaultClient) {
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = DevServer::start(DevServerOptions { addr, root_token: ROOT.into(), ..Default::default() })
        .await
        .expect("dev server");
    let vault = VaultClient::new(VaultOptions::new(server.url(), SecretString::from(ROOT))).unwrap();
    (server, vault)
}

/// A running `rotator run`, with its output collected as it comes.
pub struct Proc {
    pub child: Child,
    output: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Proc {
    pub fn spawn(mut c: Command) -> Self {
        let mut child = c.spawn().expect("rotator run starts");
        let output = Arc::new(Mutex::new(String::new()));
        let pipes: [Box<dyn Read + Send>; 2] =
            [Box::new(child.stdout.take().unwrap()), Box::new(child.stderr.take().unwrap())];
        let readers = pipes
            .into_iter()
            .map(|pipe| {
                let output = output.clone();
                std::thread::spawn(move || {
                    for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                        let mut out = output.lock().unwrap();
                        out.push_str(&line);
                        out.push('\n');
                    }
                })
            })
            .collect();
        Self { child, output, readers }
    }

    /// Send signal `name` (`TERM`, `INT`) to the daemon.
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args([&format!("-{name}"), &pid]).status().unwrap().success(), "kill -{name}");
    }

    /// Past startup: its signal handlers are installed.
    pub fn is_up(&self) -> bool {
        self.output.lock().unwrap().contains("daemon started")
    }

    /// The API's address, from the JSON startup line (once [`Self::is_up`]).
    pub fn api_addr(&self) -> Option<SocketAddr> {
        let output = self.output.lock().unwrap();
        let line = output.lines().find(|l| l.contains("daemon started"))?;
        let line: serde_json::Value = serde_json::from_str(line).ok()?;
        line["fields"]["api"].as_str()?.parse().ok()
    }

    pub fn output(&mut self) -> String {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            // Exited: its pipes are closed, so the readers end at EOF.
            // Waiting for them (not for a fixed time) never misses the
            // last line, such as an abort's "crash point" on a loaded machine.
            for reader in self.readers.drain(..) {
                let _ = reader.join();
            }
        } else {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.output.lock().unwrap().clone()
    }
}

/// `job` with an interval whose next slot is at least an hour away: the
/// rig's job rotates only when a trial makes it due (or, never rotated, at
/// once). An interval job's slots sit on a grid whose phase is a hash of the
/// job id, so on `interval = "1h"` a trial running across that second of
/// the hour saw a second, scheduled rotation and failed its count. The
/// interval is picked with the scheduler's own rule (`Schedule::next_slot`).
fn away_from_now(job: &str) -> String {
    use rotator_core::schedule::spec::Schedule;
    let now = time::OffsetDateTime::now_utc();
    let hours = (2..=24)
        .find(|h| {
            let next = Schedule::every(Duration::from_secs(h * 3600)).spread_for(JOB).next_slot(Some(now), now);
            next - now >= time::Duration::hours(1)
        })
        .expect("an interval of 2 to 24 hours whose next slot is an hour away");
    assert!(job.contains("interval = \"1h\""), "the rig's job has an interval to replace:\n{job}");
    job.replacen("interval = \"1h\"", &format!("interval = \"{hours}h\""), 1)
}
