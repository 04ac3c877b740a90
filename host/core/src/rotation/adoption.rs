//! The adoption gate at work (see [`crate::config::adoption`] for what a
//! job configures): has a consumer taken up the new version yet?
//!
//! Each check is one look, never a wait: a rotation whose consumers have
//! not adopted yet ends its run with [`RotationError::AwaitingAdoption`]
//! and keeps its record (stage `promoted`, the gate's start time), and the
//! scheduler looks again a few seconds later. So a gate never holds a
//! concurrency slot while it waits, and a crash while waiting resumes the
//! wait with the same deadline.
//!
//! A probe is a `GET` with a 5 s timeout, no redirects, and at most 4 KiB
//! read; it answers `{"version": …}` (a number or a string) or the bare
//! version as text. Anything else is "not adopted yet", with the reason
//! logged, never fatal: the deadline decides.
//!
//! [`RotationError::AwaitingAdoption`]: super::RotationError::AwaitingAdoption

use std::time::Duration;

use crate::config::adoption::Gate;
use crate::state::StateStore;

const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
const PROBE_MAX_BYTES: usize = 4096;

/// What a gate is asked about: the job, the new version, and the role of
/// the credential it replaced (for `pg_sessions`).
pub(super) struct Ask<'a> {
    pub job: &'a super::Job,
    pub version: &'a str,
    /// The old credential's `username`: `None` when there was no old
    /// credential (nothing to wait for), `Some(None)` when it had none.
    pub old_role: Option<Option<String>>,
    /// The new credential's `username`.
    pub new_role: Option<String>,
}

/// Do the job's consumers use the new version? `Err` says why it could not
/// be told (it counts as "not yet").
pub(super) async fn adopted(gate: &Gate, store: &StateStore, ask: &Ask<'_>) -> Result<bool, String> {
    let job = ask.job.config.id.as_str();
    match gate {
        Gate::Ack => Ok(store.adoption(job).await.map_err(|e| e.to_string())?.as_deref() == Some(ask.version)),
        Gate::Probe { url } => probe(url).await.map(|v| v == ask.version),
        Gate::PgSessions { connection } => {
            let old = match &ask.old_role {
                None => return Ok(true),
                Some(None) => return Err("the old credential has no `username` field".into()),
                Some(Some(old)) => old,
            };
            if ask.new_role.as_ref() == Some(old) {
                // One role for both (single-user): its sessions say nothing.
                tracing::info!(job, role = %old, "pg_sessions: the new credential keeps the role; nothing to wait for");
                return Ok(true);
            }
            let conn = ask.job.config.sql.get(connection).ok_or_else(|| format!("no sql connection `{connection}`"))?;
            let vault = store.vault.as_ref().ok_or("this daemon runs without Vault")?;
            let open = crate::plugin::sessions_of(conn, vault, old).await?;
            if open > 0 {
                tracing::info!(job, role = %old, sessions = open, "pg_sessions: the old role still has sessions");
            }
            Ok(open == 0)
        }
    }
}

/// The version the probe URL reports.
async fn probe(url: &str) -> Result<String, String> {
    let http = reqwest::Client::builder()
        .timeout(PROBE_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?;
    let mut resp = http.get(url).send().await.map_err(|e| format!("probe {url}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("probe {url} answered {}", resp.status().as_u16()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| format!("probe {url}: {e}"))? {
        body.extend_from_slice(&chunk);
        if body.len() > PROBE_MAX_BYTES {
            return Err(format!("probe {url} answered more than {PROBE_MAX_BYTES} bytes"));
        }
    }
    Ok(reported_version(&String::from_utf8_lossy(&body)))
}

/// `{"version": 7}`, `{"version": "abc"}` or `7` → the version as text.
fn reported_version(body: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(o)) => match o.get("version") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            _ => String::new(),
        },
        Ok(serde_json::Value::Number(n)) => n.to_string(),
        Ok(serde_json::Value::String(s)) => s,
        _ => body.trim().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_reports_its_version_as_json_or_text() {
        assert_eq!(reported_version(r#"{"version": 7}"#), "7");
        assert_eq!(reported_version(r#"{"version": "a1b2"}"#), "a1b2");
        assert_eq!(reported_version("7\n"), "7");
        assert_eq!(reported_version(r#""7""#), "7");
        assert_eq!(reported_version(r#"{"other": 7}"#), "");
        assert_eq!(reported_version("[7]"), "[7]");
    }
}
