//! A throwaway RabbitMQ node for tests: Debian's `rabbitmq-server` with the
//! management plugin, run in a temp dir with its own `HOME` (so its Erlang
//! cookie), node name, epmd, ports and config, loopback only; stopped and
//! deleted on drop, or when the test process dies.
//!
//! The scripts under `/usr/lib/rabbitmq/bin` are run directly: the wrappers
//! in `/usr/sbin` `cd /var/lib/rabbitmq` and, as root, switch to the
//! `rabbitmq` user, whose `HOME` and cookie are the system node's. Any user
//! can run a node this way, root included, as everything lives in the temp
//! dir. The admin user ([`ADMIN_USER`]) is made by the node itself at first
//! boot from `rabbitmq.conf` (`default_user`), so no `rabbitmqctl` call (a
//! second Erlang VM, whose distribution ports default to one fixed range
//! every node would share) is needed to start or stop a node.
//!
//! Every process of a node (our own epmd, the server, the watchdog) is in
//! one process group led by a watchdog shell that holds a pipe from the test
//! process. When the pipe closes (drop, or the test process exits, however
//! it exits: a static is never dropped) the watchdog sends the group
//! SIGTERM (RabbitMQ stops gracefully on it), waits up to 10 s for the VM,
//! deletes the temp dir and SIGKILLs what is left. Erlang's port helpers
//! (`erl_child_setup` and its children) run in their own session and exit
//! when the VM does; drop waits for them and kills stragglers by pid.
//! Every process of a node carries `RABBITMQ_NODENAME` in its environment,
//! which is how [`processes_of`] finds them.

use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::watchdog::{Watchdog, block_on, client, free_port, poll_until};

/// The administrator every node creates at first boot.
pub const ADMIN_USER: &str = "rotator-admin";
/// [`ADMIN_USER`]'s password.
pub const ADMIN_PASSWORD: &str = "rabbitmq-test-admin";

/// Debian's scripts, run directly (see the module doc).
const BIN: &str = "/usr/lib/rabbitmq/bin";
/// A node slower than this to answer its management API has failed.
const READY_WITHIN: Duration = Duration::from_secs(90);
/// How long drop waits for the watchdog and then for the port helpers.
const STOP_WITHIN: Duration = Duration::from_secs(30);

/// The watchdog (`$1` is the node's dir): blocks until the test process
/// closes its stdin, then stops the group it leads, ignoring its own TERM.
const WATCHDOG: &str = r#"trap '' TERM
while read -r _; do :; done
beam=$(cat "$1/pid" 2>/dev/null)
kill -TERM 0
running() {
    [ -n "$beam" ] && 2>/dev/null read -r _ _ state _ <"/proc/$beam/stat" && [ "$state" != Z ]
}
i=0
while [ $i -lt 100 ] && running; do
    sleep 0.1
    i=$((i + 1))
done
rm -rf "$1"
kill -KILL 0
"#;

/// A running node.
pub struct RabbitMq {
    dir: tempfile::TempDir,
    /// The Erlang node name, unique per process and node.
    pub node: String,
    /// The AMQP listener's port on 127.0.0.1.
    pub amqp_port: u16,
    /// The management API's port on 127.0.0.1.
    pub management_port: u16,
    http: reqwest::Client,
    /// Stops the node (see the module doc).
    watchdog: Watchdog,
    /// Our epmd and the server, reaped on drop.
    children: Vec<Child>,
}

impl RabbitMq {
    /// Start a node and wait until its management API knows the admin.
    /// Panics with the node's log on failure; retries with new ports when
    /// one was taken between probing and binding.
    pub fn start() -> Self {
        assert!(
            Path::new(BIN).join("rabbitmq-server").exists(),
            "RabbitMQ not found ({BIN}/rabbitmq-server); ./scripts/test.sh installs it (apt-get install rabbitmq-server)"
        );
        for attempt in 1.. {
            let mut node = Self::spawn();
            let Err(why) = block_on(node.wait_ready()) else { return node };
            let log = node.log_tail();
            drop(node);
            // epmd exits silently when its port is taken.
            let port_taken = log.contains("eaddrinuse") || why.starts_with("epmd exited");
            if !port_taken || attempt == 3 {
                panic!("RabbitMQ node did not start: {why}\n{log}");
            }
        }
        unreachable!()
    }

    /// Launch the watchdog, epmd and the server; nothing waits yet.
    fn spawn() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let node = format!("rotator-{}-{}@localhost", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let dir = tempfile::Builder::new().prefix("rotator-rabbitmq-").tempdir().unwrap();
        let (amqp_port, management_port, dist_port, epmd_port) = (free_port(), free_port(), free_port(), free_port());
        let root = dir.path().to_path_buf();
        let path = |name: &str| root.join(name);
        for sub in ["home", "mnesia", "log"] {
            std::fs::create_dir(path(sub)).unwrap();
        }
        std::fs::write(path("enabled_plugins"), "[rabbitmq_management].\n").unwrap();
        std::fs::write(path("rabbitmq-env.conf"), "").unwrap();
        std::fs::write(
            path("rabbitmq.conf"),
            format!(
                "listeners.tcp.default = 127.0.0.1:{amqp_port}\n\
                 management.tcp.ip = 127.0.0.1\n\
                 management.tcp.port = {management_port}\n\
                 default_user = {ADMIN_USER}\n\
                 default_pass = {ADMIN_PASSWORD}\n\
                 default_user_tags.administrator = true\n\
                 default_permissions.configure = .*\n\
                 default_permissions.read = .*\n\
                 default_permissions.write = .*\n"
            ),
        )
        .unwrap();
        let env: Vec<(&str, String)> = vec![
            ("HOME", path("home").display().to_string()),
            ("RABBITMQ_NODENAME", node.clone()),
            ("RABBITMQ_CONFIG_FILE", path("rabbitmq.conf").display().to_string()),
            ("RABBITMQ_ADVANCED_CONFIG_FILE", path("advanced.config").display().to_string()),
            ("RABBITMQ_CONF_ENV_FILE", path("rabbitmq-env.conf").display().to_string()),
            ("RABBITMQ_ENABLED_PLUGINS_FILE", path("enabled_plugins").display().to_string()),
            ("RABBITMQ_MNESIA_BASE", path("mnesia").display().to_string()),
            ("RABBITMQ_LOG_BASE", path("log").display().to_string()),
            ("RABBITMQ_PID_FILE", path("pid").display().to_string()),
            ("RABBITMQ_DIST_PORT", dist_port.to_string()),
            ("ERL_EPMD_PORT", epmd_port.to_string()),
            ("ERL_EPMD_ADDRESS", "127.0.0.1".into()),
            // Never start an epmd of its own (it would detach and outlive
            // the node); keep distribution on loopback.
            (
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                "-start_epmd false -kernel inet_dist_use_interface {127,0,0,1}".into(),
            ),
        ];
        let command = |program: &str, group: u32, log: &str| {
            let mut c = Command::new(program);
            c.current_dir(&root).env_remove("NOTIFY_SOCKET").envs(env.iter().map(|(k, v)| (k, v)));
            c.process_group(group as i32).stdin(Stdio::null());
            let out = std::fs::OpenOptions::new().create(true).append(true).open(path(log)).unwrap();
            c.stdout(out.try_clone().unwrap()).stderr(out);
            c
        };
        let watchdog = Watchdog::start(command("sh", 0, "watchdog.log"), WATCHDOG, &root);
        let group = watchdog.group();
        let epmd = command("epmd", group, "epmd.log")
            .args(["-port", &epmd_port.to_string(), "-address", "127.0.0.1"])
            .spawn()
            .unwrap_or_else(|e| panic!("starting epmd: {e}"));
        // The server must find our epmd listening (it may not start one).
        poll_until(Duration::from_secs(10), || TcpStream::connect(("127.0.0.1", epmd_port)).is_ok());
        let server = command(&format!("{BIN}/rabbitmq-server"), group, "console.log")
            .spawn()
            .unwrap_or_else(|e| panic!("starting rabbitmq-server: {e}"));
        let children = vec![epmd, server];
        Self { dir, node, amqp_port, management_port, http: client(), watchdog, children }
    }

    /// Poll `GET /api/overview` as the admin until it answers 200, the
    /// server or epmd exits, or [`READY_WITHIN`] passes.
    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_WITHIN;
        let url = format!("{}/api/overview", self.base_url());
        loop {
            for (child, name) in self.children.iter_mut().zip(["epmd", "rabbitmq-server"]) {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!("{name} exited ({status})"));
                }
            }
            let answer = self.http.get(&url).basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD)).send().await;
            let last = match answer {
                Ok(resp) if resp.status() == 200 => return Ok(()),
                Ok(resp) => format!("the management API answered {}", resp.status()),
                Err(e) => format!("the management API did not answer: {e}"),
            };
            if Instant::now() > deadline {
                return Err(format!("not ready within {READY_WITHIN:?}: {last}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The last lines of the node's log files, for failure messages.
    pub fn log_tail(&self) -> String {
        let files = [format!("log/{}.log", self.node), "console.log".into(), "epmd.log".into()];
        let mut out = String::new();
        for name in files {
            let text = std::fs::read_to_string(self.dir.path().join(&name)).unwrap_or_default();
            let mut lines: Vec<&str> = text.lines().rev().take(40).collect();
            lines.reverse();
            out += &format!("--- {name} (last 40 lines)\n{}\n", lines.join("\n"));
        }
        out
    }

    /// The node's temp dir (deleted when the node stops).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The admin's name ([`ADMIN_USER`]).
    pub fn admin_user(&self) -> &'static str {
        ADMIN_USER
    }

    /// The admin's password ([`ADMIN_PASSWORD`]).
    pub fn admin_password(&self) -> &'static str {
        ADMIN_PASSWORD
    }

    /// The management API's base URL, `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.management_port)
    }

    /// Config for an hourly single-user `rabbitmq-password` job `id` in
    /// handle mode that rotates `user`'s password into `secret/<path>`,
    /// with the admin's credentials at `secret/rabbit/admin` and grants for
    /// exactly the management API paths it uses.
    pub fn single_user_job(&self, id: &str, path: &str, user: &str) -> String {
        format!(
            r#"[[jobs]]
id = "{id}"
plugin = "rabbitmq-password"
secret = {{ path = "{path}" }}
interval = "1h"
settings = {{ url = "{url}", username = "{user}", admin = {{ mount = "secret", path = "rabbit/admin" }} }}
secret_access = "handles"

[[jobs.grants]]
path = "secret/data/rabbit/admin"
operations = ["read"]

[[jobs.grants]]
http = "{url}"
paths = ["/api/users/", "/api/whoami", "/api/permissions/"]
methods = ["GET", "PUT"]
"#,
            url = self.base_url(),
        )
    }

    /// The origin a plugin's HTTP grant names: the same as [`Self::base_url`].
    pub fn origin(&self) -> String {
        self.base_url()
    }

    /// `METHOD <path>` on the management API as the admin, `body` as JSON:
    /// the status and the JSON answer (`Null` when the body is empty).
    pub async fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(method, format!("{}{path}", self.base_url()));
        req = req.basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD));
        if let Some(body) = body {
            req = req.header("content-type", "application/json").body(body.to_string());
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{path}: the management API did not answer: {e}"));
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, if bytes.is_empty() { Value::Null } else { json })
    }

    /// Create `name` with `password` and `tags` (`PUT /api/users/{name}`;
    /// on an existing user this replaces its password and tags). The
    /// `management` tag is added when missing, so the user may call the API
    /// (and [`Self::authenticates`] can prove its password).
    pub async fn create_user(&self, name: &str, password: &str, tags: &[&str]) {
        let mut tags: Vec<&str> = tags.to_vec();
        if !tags.contains(&"management") {
            tags.push("management");
        }
        let body = json!({"password": password, "tags": tags.join(",")});
        let (status, answer) = self.api("PUT", &format!("/api/users/{}", segment(name)), Some(body)).await;
        assert!(matches!(status, 201 | 204), "creating user {name}: {status} {answer}");
    }

    /// Give `user` full permissions on vhost `/`.
    pub async fn set_permissions(&self, user: &str) {
        let body = json!({"configure": ".*", "write": ".*", "read": ".*"});
        let (status, answer) = self.api("PUT", &format!("/api/permissions/%2F/{}", segment(user)), Some(body)).await;
        assert!(matches!(status, 201 | 204), "setting permissions of {user}: {status} {answer}");
    }

    /// Does `user` log in with `password`? `GET /api/whoami` with basic
    /// auth: 200 is yes, 401 no (also for a user without a management
    /// tag); any other answer panics.
    pub async fn authenticates(&self, user: &str, password: &str) -> bool {
        let url = format!("{}/api/whoami", self.base_url());
        let resp = self.http.get(url).basic_auth(user, Some(password)).send().await;
        let status = resp.unwrap_or_else(|e| panic!("the management API did not answer: {e}")).status();
        match status.as_u16() {
            200 => true,
            401 => false,
            other => panic!("GET /api/whoami as {user} answered {other}"),
        }
    }
}

impl Drop for RabbitMq {
    fn drop(&mut self) {
        self.watchdog.stop(STOP_WITHIN);
        for child in &mut self.children {
            let _ = child.wait();
        }
        // The port helpers leave when the VM is gone; give them a moment.
        poll_until(STOP_WITHIN, || processes_of(&self.node).is_empty());
        for pid in processes_of(&self.node) {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
    }
}

/// The node of this test process, started on first use and stopped when
/// the process exits: the static is never dropped, but the process's end
/// closes the watchdog's pipe (see the module doc).
pub fn shared() -> &'static RabbitMq {
    static NODE: OnceLock<RabbitMq> = OnceLock::new();
    NODE.get_or_init(RabbitMq::start)
}

/// The live processes whose environment names Erlang node `node` (every
/// process of a node started here does; a zombie has no environment).
pub fn processes_of(node: &str) -> Vec<u32> {
    let needle = format!("RABBITMQ_NODENAME={node}");
    let Ok(entries) = std::fs::read_dir("/proc") else { return vec![] };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let environ = std::fs::read(PathBuf::from(format!("/proc/{pid}/environ"))).unwrap_or_default();
            environ.split(|b| *b == 0).any(|var| var == needle.as_bytes())
        })
        .collect()
}

/// `s` percent-encoded as one URL path segment.
fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watchdog::in_child_process;

    const MINUTE: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn node_proves_passwords_and_leaves_nothing_behind() {
        let rabbit = RabbitMq::start();
        assert!(rabbit.authenticates(ADMIN_USER, ADMIN_PASSWORD).await);
        rabbit.create_user("app user", "first-password", &[]).await;
        rabbit.set_permissions("app user").await;
        let (status, perms) = rabbit.api("GET", "/api/users/app%20user/permissions", None).await;
        assert_eq!((status, perms[0]["vhost"].as_str()), (200, Some("/")), "{perms}");
        assert!(rabbit.authenticates("app user", "first-password").await);
        assert!(!rabbit.authenticates("app user", "first-passwordX").await);
        assert!(!rabbit.authenticates("nobody", "first-password").await);

        let body = json!({"password": "second-password", "tags": "management"});
        let (status, answer) = rabbit.api("PUT", "/api/users/app%20user", Some(body)).await;
        assert_eq!(status, 204, "{answer}");
        assert!(!rabbit.authenticates("app user", "first-password").await);
        assert!(rabbit.authenticates("app user", "second-password").await);

        let (node, dir) = (rabbit.node.clone(), rabbit.dir().to_path_buf());
        assert!(processes_of(&node).len() >= 3, "the node's processes are found: {:?}", processes_of(&node));
        assert!(dir.join("home/.erlang.cookie").exists(), "the cookie lives in the node's HOME");
        drop(rabbit);
        assert_eq!(processes_of(&node), Vec::<u32>::new(), "processes of {node} outlive the drop");
        assert!(!dir.exists(), "{} outlives the drop", dir.display());
    }

    #[test]
    fn shared_node_stops_when_its_process_exits() {
        let test = "rabbitmq::tests::shared_node_stops_when_its_process_exits";
        let (words, mut child) = in_child_process(test, "ROTATOR_RABBITMQ_SHARED_CHILD", || {
            let node = shared();
            assert!(block_on(node.authenticates(ADMIN_USER, ADMIN_PASSWORD)));
            format!("{} {}", node.node, node.dir().display())
        });
        let (node, dir) = (words[0].clone(), PathBuf::from(&words[1]));
        assert!(!processes_of(&node).is_empty() && dir.exists(), "the child's node runs");
        drop(child.stdin.take());
        assert!(child.wait().unwrap().success());
        assert!(
            poll_until(MINUTE, || processes_of(&node).is_empty()),
            "{node} outlives its process: {:?}",
            processes_of(&node)
        );
        assert!(poll_until(MINUTE, || !dir.exists()), "{} outlives its process", dir.display());
    }
}
