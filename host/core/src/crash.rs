//! Crash points, for the fault-injection suite: abort the whole process at a
//! named moment of a rotation, the way a power cut or `kill -9` would.
//!
//! Set `ROTATOR_CRASH_AT` to a comma-separated list of points; the process
//! aborts (no unwinding, no cleanup, no flush) the first time it reaches one.
//! Points are `before:<x>` and `after:<x>` where `<x>` is a protocol
//! [`Action`] or `host-call:<n>`, the n-th host call a plugin makes in this
//! process (1-based). Unset, this costs one load of a cached flag.
//!
//! This is a testing switch: it is read once, never from config, and
//! `rotator` logs loudly at startup when it is set. A leaf module: the
//! protocol names its points with it, and the plugin runtime counts host
//! calls with it, without either knowing the other.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// The environment variable that arms crash points.
pub const ENV: &str = "ROTATOR_CRASH_AT";
/// The environment variable that arms pause points: the process stops
/// itself (`SIGSTOP`, as a long GC pause or a frozen VM would) the first
/// time it reaches one, until someone sends `SIGCONT`. The replica suite
/// uses it to freeze a replica mid-rotation past its lease.
pub const PAUSE_ENV: &str = "ROTATOR_PAUSE_AT";

/// Before or after something happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum When {
    Before,
    After,
}

/// Every protocol action a crash point can name, in protocol order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Create,
    Stage,
    Set,
    Test,
    Promote,
    Finish,
    RecordDone,
    Rollback,
    RecordRollback,
}

impl Action {
    /// Every action, in protocol order.
    pub const ALL: [Action; 9] = [
        Action::Create,
        Action::Stage,
        Action::Set,
        Action::Test,
        Action::Promote,
        Action::Finish,
        Action::RecordDone,
        Action::Rollback,
        Action::RecordRollback,
    ];

    /// The action's name in a point (`record-done`).
    pub fn name(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Stage => "stage",
            Action::Set => "set",
            Action::Test => "test",
            Action::Promote => "promote",
            Action::Finish => "finish",
            Action::RecordDone => "record-done",
            Action::Rollback => "rollback",
            Action::RecordRollback => "record-rollback",
        }
    }
}

/// What a point is at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum At {
    Action(Action),
    /// The n-th host call of the process, 1-based.
    HostCall(u32),
}

/// One crash point: `before:set`, `after:host-call:3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Point {
    pub when: When,
    pub at: At,
}

impl Point {
    pub const fn before(action: Action) -> Self {
        Point { when: When::Before, at: At::Action(action) }
    }
    pub const fn after(action: Action) -> Self {
        Point { when: When::After, at: At::Action(action) }
    }
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let when = match self.when {
            When::Before => "before",
            When::After => "after",
        };
        match self.at {
            At::Action(a) => write!(f, "{when}:{}", a.name()),
            At::HostCall(n) => write!(f, "{when}:host-call:{n}"),
        }
    }
}

/// A point name that is not one (the text is a test's, never a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown crash point `{0}` (expected before:<action>, after:<action> or <when>:host-call:<n>)")]
pub struct UnknownPoint(pub String);

impl FromStr for Point {
    type Err = UnknownPoint;
    fn from_str(s: &str) -> Result<Self, UnknownPoint> {
        let unknown = || UnknownPoint(s.to_owned());
        let (when, rest) = s.split_once(':').ok_or_else(unknown)?;
        let when = match when {
            "before" => When::Before,
            "after" => When::After,
            _ => return Err(unknown()),
        };
        let at = match rest.strip_prefix("host-call:") {
            Some(n) => At::HostCall(n.parse().ok().filter(|n| *n > 0).ok_or_else(unknown)?),
            None => At::Action(*Action::ALL.iter().find(|a| a.name() == rest).ok_or_else(unknown)?),
        };
        Ok(Point { when, at })
    }
}

/// The armed points. Entries that are no point are reported at startup
/// ([`unknown_armed`]) and otherwise ignored.
fn armed() -> &'static [Point] {
    static POINTS: OnceLock<Vec<Point>> = OnceLock::new();
    POINTS.get_or_init(|| armed_text().iter().filter_map(|p| p.parse().ok()).collect())
}

/// The armed pause points ([`PAUSE_ENV`]).
fn pause_points() -> &'static [Point] {
    static POINTS: OnceLock<Vec<Point>> = OnceLock::new();
    POINTS.get_or_init(|| text_of(PAUSE_ENV).iter().filter_map(|p| p.parse().ok()).collect())
}

fn armed_text() -> Vec<String> {
    text_of(ENV)
}

fn text_of(var: &str) -> Vec<String> {
    match std::env::var(var) {
        Ok(v) => v.split(',').map(|p| p.trim().to_owned()).filter(|p| !p.is_empty()).collect(),
        Err(_) => Vec::new(),
    }
}

/// Are any crash or pause points armed? (For the startup warning.)
pub fn is_armed() -> bool {
    !armed().is_empty() || !pause_points().is_empty()
}

/// Entries of `ROTATOR_CRASH_AT` that name no point (for the startup warning).
pub fn unknown_armed() -> Vec<UnknownPoint> {
    armed_text().into_iter().filter_map(|p| p.parse::<Point>().err()).collect()
}

/// Every action point a test can arm, in protocol order.
pub fn all_points() -> Vec<Point> {
    Action::ALL.iter().flat_map(|a| [Point::before(*a), Point::after(*a)]).collect()
}

/// Abort here if `point` is armed.
pub fn point(point: Point) {
    let points = armed();
    if !points.is_empty() && points.contains(&point) {
        abort(point);
    }
    let pauses = pause_points();
    if !pauses.is_empty() && pauses.contains(&point) {
        static PAUSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if !PAUSED.swap(true, Ordering::SeqCst) {
            pause(point);
        }
    }
}

/// Stop the whole process where it stands (the first time only).
fn pause(point: Point) {
    eprintln!("rotator: pause point {point} reached: stopping ({PAUSE_ENV}); SIGCONT resumes");
    let pid = std::process::id().to_string();
    // SIGSTOP cannot be caught: the process freezes inside this call and
    // goes on from here when continued.
    let _ = std::process::Command::new("kill").args(["-STOP", &pid]).status();
}

static HOST_CALLS: AtomicU32 = AtomicU32::new(0);

/// Count a plugin's host call; abort if `before:host-call:<n>` is armed.
/// Returns the call's number for [`after_host_call`].
pub fn before_host_call() -> u32 {
    if armed().is_empty() {
        return 0;
    }
    let n = HOST_CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    point(Point { when: When::Before, at: At::HostCall(n) });
    n
}

/// Abort if `after:host-call:<n>` is armed.
pub fn after_host_call(n: u32) {
    if n > 0 {
        point(Point { when: When::After, at: At::HostCall(n) });
    }
}

fn abort(point: Point) -> ! {
    // stderr is unbuffered: this line is the last thing the process does.
    eprintln!("rotator: crash point {point} reached: aborting ({ENV})");
    std::process::abort()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_point_reads_back_as_itself() {
        for p in all_points().into_iter().chain([
            Point { when: When::Before, at: At::HostCall(1) },
            Point { when: When::After, at: At::HostCall(u32::MAX) },
        ]) {
            assert_eq!(p.to_string().parse::<Point>(), Ok(p));
        }
        assert_eq!(all_points().len(), 18);
    }

    #[test]
    fn what_is_no_point_is_refused() {
        for text in ["", "before", "before:", "during:set", "after:sett", "before:host-call:0", "after:host-call:x"] {
            assert_eq!(text.parse::<Point>(), Err(UnknownPoint(text.to_owned())), "{text}");
        }
    }
}
