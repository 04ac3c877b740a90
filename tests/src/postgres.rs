//! A throwaway PostgreSQL cluster for tests: `initdb` in a temp dir, started
//! with `pg_ctl` on a free loopback port, stopped and deleted on drop.
//!
//! PostgreSQL refuses to run as root, so as root the cluster belongs to the
//! unprivileged `nobody` user (commands run through `runuser`). Host
//! connections need a password (scram-sha-256), so tests can prove an old
//! password is refused; the superuser is `postgres` with [`SUPERUSER_PASSWORD`].
//! Clusters started in parallel may race for a port; starting retries on a
//! new one when the port was taken.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The superuser's password in every test cluster.
pub const SUPERUSER_PASSWORD: &str = "postgres-test-superuser";

/// A running cluster.
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
}

fn bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).filter(|p| p.join("initdb").exists()).collect())
        .unwrap_or_default();
    found.sort();
    found.pop().or_else(|| which("initdb").and_then(|p| p.parent().map(Path::to_path_buf))).expect(
        "PostgreSQL server binaries not found (initdb); ./scripts/test.sh installs them (apt-get install postgresql)",
    )
}

fn which(cmd: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(cmd)).find(|p| p.exists())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Postgres {
    /// Create and start a cluster. Panics with the server's log on failure.
    pub fn start() -> Self {
        let bin = bin_dir();
        let dir = tempfile::Builder::new().prefix("rotator-pg-").tempdir().unwrap();
        let root = is_root();
        if root {
            run("chown", &["nobody", dir.path().to_str().unwrap()], false);
        }
        let data = dir.path().join("data");
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, SUPERUSER_PASSWORD).unwrap();
        if root {
            run("chown", &["nobody", pwfile.to_str().unwrap()], false);
        }
        let initdb = bin.join("initdb");
        run(
            initdb.to_str().unwrap(),
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--pwfile",
                pwfile.to_str().unwrap(),
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--no-sync",
            ],
            root,
        );
        let log = dir.path().join("log");
        let pg_ctl = bin.join("pg_ctl");
        // A free port can be taken between probing and binding (tests start
        // clusters in parallel): try a few.
        let mut attempt = 0;
        let port = loop {
            attempt += 1;
            let port = free_port();
            let opts = format!("-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", dir.path().display());
            let started = cmd(
                pg_ctl.to_str().unwrap(),
                &["-D", data.to_str().unwrap(), "-o", &opts, "-l", log.to_str().unwrap(), "-w", "-t", "60", "start"],
                root,
            )
            .output()
            .unwrap_or_else(|e| panic!("running pg_ctl: {e}"));
            if started.status.success() {
                break port;
            }
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let port_taken = text.contains("could not bind") || text.contains("already in use");
            if !port_taken || attempt == 3 {
                panic!("pg_ctl start failed:\n{text}");
            }
        };
        Self { dir, bin, port }
    }

    /// A connection URL for `user`/`password` to database `postgres`.
    pub fn url(&self, user: &str, password: &str) -> String {
        format!("postgres://{user}:{password}@127.0.0.1:{}/postgres", self.port)
    }

    /// The superuser's URL.
    pub fn superuser_url(&self) -> String {
        self.url("postgres", SUPERUSER_PASSWORD)
    }

    /// Connect as `user`/`password` and run a query: does the login work?
    pub async fn connect(&self, user: &str, password: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, connection) = tokio_postgres::connect(&self.url(user, password), tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    /// Does `user` log in with `password` (and can it run a query)?
    pub async fn logs_in(&self, user: &str, password: &str) -> bool {
        match self.connect(user, password).await {
            Ok(client) => client.query_one("SELECT 1", &[]).await.is_ok(),
            Err(_) => false,
        }
    }

    /// Hold `role`'s catalog row in an open transaction: every `ALTER ROLE`
    /// on it waits until the returned session ends that transaction
    /// (`ROLLBACK`), so a test can hold a rotation inside its `set` step.
    pub async fn hold_role(&self, role: &str) -> tokio_postgres::Client {
        let session = self.connect("postgres", SUPERUSER_PASSWORD).await.expect("superuser session");
        // -1 is the default: the change itself is nothing.
        session.batch_execute(&format!("BEGIN; ALTER ROLE {role} CONNECTION LIMIT -1")).await.expect("hold the role");
        session
    }

    /// Wait until some other session waits for a lock (such as an `ALTER
    /// ROLE` behind [`Self::hold_role`]); panics after a minute.
    pub async fn wait_for_lock_waiter(&self) {
        let session = self.connect("postgres", SUPERUSER_PASSWORD).await.expect("superuser session");
        let waiting =
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()";
        for _ in 0..3000 {
            let n: i64 = session.query_one(waiting, &[]).await.expect("pg_stat_activity").get(0);
            if n > 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("no session waited for a lock within a minute");
    }

    /// The connection URL with Vault's `{{username}}`/`{{password}}` slots.
    pub fn templated_url(&self) -> String {
        format!("postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{}/postgres", self.port)
    }

    /// The body of a Vault `database/config/:name` write for this cluster,
    /// connecting as `user`/`password` and allowing `allowed_roles`.
    pub fn vault_config(&self, user: &str, password: &str, allowed_roles: serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": self.templated_url(),
            "username": user,
            "password": password,
            "allowed_roles": allowed_roles,
        })
    }

    /// The KV data (JSON) the admin credentials at `secret/pg/admin` hold
    /// for [`Self::single_user_job`]'s connection.
    pub fn admin_secret() -> String {
        serde_json::json!({"username": "postgres", "password": SUPERUSER_PASSWORD}).to_string()
    }

    /// Config for connection `app` to this cluster (admin credentials from
    /// `secret/pg/admin`) and an hourly single-user `postgres-password` job
    /// `id` that rotates `role`'s password into `secret/<path>`.
    pub fn single_user_job(&self, id: &str, path: &str, role: &str) -> String {
        let connection = app_connection(self.port);
        format!(
            r#"{connection}
[[jobs]]
id = "{id}"
plugin = "postgres-password"
secret = {{ path = "{path}" }}
interval = "1h"
settings = {{ connection = "app", strategy = "single-user", username = "{role}" }}
grants = [{{ sql = "app" }}]
"#
        )
    }
}

/// Config for connection `app` to a server on loopback `port`, with the
/// admin credentials [`Postgres::admin_secret`] at `secret/pg/admin`.
pub fn app_connection(port: u16) -> String {
    format!(
        r#"
[sql.connections.app]
url = "postgres://127.0.0.1:{port}/postgres"
credentials = {{ vault = {{ mount = "secret", path = "pg/admin" }} }}
"#
    )
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let data = self.dir.path().join("data");
        let _ = cmd(pg_ctl.to_str().unwrap(), &["-D", data.to_str().unwrap(), "-m", "immediate", "stop"], is_root())
            .output();
    }
}

fn cmd(program: &str, args: &[&str], as_nobody: bool) -> Command {
    if as_nobody {
        let mut c = Command::new("runuser");
        c.args(["-u", "nobody", "--", program]).args(args);
        c
    } else {
        let mut c = Command::new(program);
        c.args(args);
        c
    }
}

fn run(program: &str, args: &[&str], as_nobody: bool) {
    let out = cmd(program, args, as_nobody).output().unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
