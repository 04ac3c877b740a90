//! What the throwaway servers of the tests (`rabbitmq.rs`, `moto.rs`)
//! share: a process group led by a watchdog shell that holds a pipe from the
//! test process and stops the group when the pipe closes (on drop, or when
//! the test process exits however it exits: a static is never dropped), and
//! the small helpers every such fixture needs.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// A running watchdog shell: the leader of its server's process group.
pub struct Watchdog {
    /// Closing it makes the watchdog stop the group.
    lifeline: Option<ChildStdin>,
    child: Child,
}

impl Watchdog {
    /// Run `script` as `sh -c script watchdog <dir>` from `command` (a `sh`
    /// command the caller set up: environment, output, a new process group)
    /// with a pipe from this process as its stdin. From here a panic drops
    /// the pipe, and the watchdog cleans up.
    pub fn start(mut command: Command, script: &str, dir: &Path) -> Self {
        let mut child = command
            .args(["-c", script, "watchdog"])
            .arg(dir)
            .stdin(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting the watchdog shell: {e}"));
        Self { lifeline: child.stdin.take(), child }
    }

    /// The process group the watchdog leads: the server's processes join it.
    pub fn group(&self) -> u32 {
        self.child.id()
    }

    /// Close the pipe and wait up to `within` for the watchdog to stop the
    /// group; if it is stuck, kill the whole group.
    pub fn stop(&mut self, within: Duration) {
        drop(self.lifeline.take());
        let child = &mut self.child;
        if !poll_until(within, || !matches!(child.try_wait(), Ok(None))) {
            let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", self.child.id())]).status();
            let _ = self.child.wait();
        }
    }
}

/// A free TCP port on 127.0.0.1 (free when probed).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Poll `done` every 50 ms until it holds or `within` passes: does it hold?
pub fn poll_until(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// An HTTP client for a fixture's server; each request opens its own
/// connection (no pool), since one server serves tests on many runtimes.
pub fn client() -> reqwest::Client {
    rotator_core::vault::install_crypto_provider();
    reqwest::Client::builder().timeout(Duration::from_secs(30)).pool_max_idle_per_host(0).build().unwrap()
}

/// Run `f` to completion on a runtime of its own, on a thread of its own,
/// so a fixture's synchronous `start` works inside or outside a runtime.
pub fn block_on<F: std::future::Future + Send>(f: F) -> F::Output
where
    F::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f))
            .join()
            .unwrap()
    })
}

/// The two halves of a test proving that a shared server stops when its
/// test process exits (the static holding it is never dropped). The test
/// `test` (its full name) runs itself again as a child process with `var`
/// set. In the child, `report` starts the shared server and names it in one
/// line; the child prints it, waits for its stdin to close and exits without
/// dropping anything (this call never returns there). In the parent, the
/// words of that line, and the child: close its stdin to let it exit.
pub fn in_child_process(test: &str, var: &str, report: impl FnOnce() -> String) -> (Vec<String>, Child) {
    const MARK: &str = "SHARED-SERVER ";
    if std::env::var_os(var).is_some() {
        println!("{MARK}{}", report());
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        std::process::exit(0);
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture"])
        .env(var, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let line = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix(MARK).map(str::to_owned))
        .expect("the child names its server");
    (line.split(' ').map(str::to_owned).collect(), child)
}
