//! A job's `adoption` gate: before `finish` retires the old credential,
//! wait until the consumers use the new one, up to a deadline.
//!
//! ```toml
//! adoption = { ack = true, timeout = "10m", on_timeout = "keep" }
//! adoption = { probe = "https://app.internal/credential-version", timeout = "10m", on_timeout = "finish" }
//! adoption = { pg_sessions = "app", timeout = "1h" }   # alternating users on PostgreSQL
//! ```
//!
//! - `ack = true`: consumers say they use a version with `POST
//!   /jobs/{id}/adopted` (`{"version": "…"}`, with the API token).
//! - `probe = URL`: rotator asks the URL which version is in use (`GET`,
//!   answered with `{"version": …}` or the bare version as text).
//! - `pg_sessions = CONNECTION`: adopted once no session of the old
//!   credential's role (its `username` field) is left in `pg_stat_activity`,
//!   asked over the named `[sql.connections]` entry, which the job's grants
//!   must name (what is used is what is granted).
//! - `on_timeout`: `keep` (the default: `finish` is not run, so the old
//!   credential stays valid, and the job needs attention) or `finish`
//!   (retire it anyway).
//!
//! No peer has this: AWS rotation functions and Vault retire the old
//! credential on their own clock. Useful where `finish` invalidates
//! something (alternating users, IAM key deactivation, a revoked lease).

use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;

use super::Collector;
use super::units::Bounds;

/// `timeout`: how long consumers get (default 10 minutes).
pub const ADOPTION_TIMEOUT: Bounds =
    Bounds { key: "adoption.timeout", min: Duration::from_secs(1), max: Duration::from_secs(7 * 86_400) };
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// A job's gate, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adoption {
    pub gate: Gate,
    pub timeout: Duration,
    pub on_timeout: OnTimeout,
}

/// How rotator learns that consumers use the new version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Consumers acknowledge it through the API.
    Ack,
    /// A URL reports the version in use.
    Probe { url: String },
    /// No PostgreSQL session of the old credential's role is left.
    PgSessions { connection: String },
}

/// What happens when the deadline passes without adoption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnTimeout {
    /// Run `finish` anyway.
    Finish,
    /// Skip `finish` (the old credential stays valid) and flag the job.
    Keep,
}

/// `adoption` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdoption {
    #[serde(default)]
    ack: Option<bool>,
    #[serde(default)]
    probe: Option<String>,
    #[serde(default)]
    pg_sessions: Option<String>,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    on_timeout: Option<String>,
}

/// Check a job's gate; problems located at `span`, all reported.
/// `granted`: the SQL connections the job's grants name.
pub(super) fn adoption(
    c: &mut Collector,
    raw: RawAdoption,
    span: Range<usize>,
    granted: &crate::plugin::connections::SqlConnections,
) -> Option<Adoption> {
    let mut ok = true;
    let mut problem = |c: &mut Collector, message: String| {
        c.error(span.clone(), format!("adoption: {message}"));
        ok = false;
    };
    let gate = match (raw.ack, raw.probe, raw.pg_sessions) {
        (Some(true), None, None) => Some(Gate::Ack),
        (None | Some(false), Some(url), None) => match super::hooks::check_url("probe", &url) {
            Ok(()) => Some(Gate::Probe { url }),
            Err(why) => {
                problem(c, why);
                None
            }
        },
        (None | Some(false), None, Some(connection)) if granted.contains_key(&connection) => {
            Some(Gate::PgSessions { connection })
        }
        (None | Some(false), None, Some(connection)) => {
            let why = format!(
                "pg_sessions names `{}`, which the job's grants do not (add `{{ sql = \"…\" }}`)",
                connection.escape_debug()
            );
            problem(c, why);
            None
        }
        _ => {
            problem(c, "give one of `ack = true`, `probe = \"https://…\"` or `pg_sessions = \"<connection>\"`".into());
            None
        }
    };
    let timeout = match raw.timeout.as_deref().map(|t| ADOPTION_TIMEOUT.parse(t)) {
        None => DEFAULT_TIMEOUT,
        Some(Ok(t)) => t,
        Some(Err(e)) => {
            problem(c, e.to_string());
            DEFAULT_TIMEOUT
        }
    };
    let on_timeout = match raw.on_timeout.as_deref() {
        None | Some("keep") => OnTimeout::Keep,
        Some("finish") => OnTimeout::Finish,
        Some(other) => {
            problem(c, format!("on_timeout `{}` is not `keep` or `finish`", other.escape_debug()));
            OnTimeout::Keep
        }
    };
    if !ok {
        return None;
    }
    Some(Adoption { gate: gate?, timeout, on_timeout })
}
