//! Crash points, for the fault-injection suite: abort the whole process at a
//! named moment of a rotation, the way a power cut or `kill -9` would.
//!
//! Set `ROTATOR_CRASH_AT` to a comma-separated list of points; the process
//! aborts (no unwinding, no cleanup, no flush) the first time it reaches one.
//! Points are `before:<x>` and `after:<x>` where `<x>` is a protocol action
//! ([`ACTIONS`]) or `host-call:<n>`, the n-th host call a plugin makes in
//! this process (1-based). Unset, this costs one load of a cached flag.
//!
//! This is a testing switch: it is read once, never from config, and
//! `rotator` logs loudly at startup when it is set.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// The environment variable that arms crash points.
pub const ENV: &str = "ROTATOR_CRASH_AT";

/// Every protocol action a crash point can name, in protocol order.
pub const ACTIONS: &[&str] = &[
    "create",
    "stage",
    "set",
    "record-set",
    "test",
    "record-test",
    "promote",
    "record-promote",
    "finish",
    "record-done",
    "rollback",
    "record-rollback",
];

fn armed() -> &'static [String] {
    static POINTS: OnceLock<Vec<String>> = OnceLock::new();
    POINTS.get_or_init(|| match std::env::var(ENV) {
        Ok(v) => v.split(',').map(|p| p.trim().to_owned()).filter(|p| !p.is_empty()).collect(),
        Err(_) => Vec::new(),
    })
}

/// Are any crash points armed? (For the startup warning.)
pub fn is_armed() -> bool {
    !armed().is_empty()
}

/// Every point name a test can arm.
pub fn all_points() -> Vec<String> {
    ACTIONS.iter().flat_map(|a| [format!("before:{a}"), format!("after:{a}")]).collect()
}

/// Abort here if `when:what` is armed.
pub fn point(when: &str, what: &str) {
    let points = armed();
    if points.is_empty() {
        return;
    }
    if points.iter().any(|p| p.strip_prefix(when).and_then(|r| r.strip_prefix(':')) == Some(what)) {
        abort(&format!("{when}:{what}"));
    }
}

static HOST_CALLS: AtomicU32 = AtomicU32::new(0);

/// Count a plugin's host call; abort if `before:host-call:<n>` is armed.
/// Returns the call's number for [`after_host_call`].
pub fn before_host_call() -> u32 {
    if armed().is_empty() {
        return 0;
    }
    let n = HOST_CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    point("before", &format!("host-call:{n}"));
    n
}

/// Abort if `after:host-call:<n>` is armed.
pub fn after_host_call(n: u32) {
    if n > 0 {
        point("after", &format!("host-call:{n}"));
    }
}

fn abort(point: &str) -> ! {
    // stderr is unbuffered: this line is the last thing the process does.
    eprintln!("rotator: crash point {point} reached: aborting ({ENV})");
    std::process::abort()
}
