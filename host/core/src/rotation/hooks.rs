//! Running a job's hooks once a rotation has made its new value current
//! (see [`crate::config::hooks`] for what a job may configure).
//!
//! Hooks run in the order written, each to its end before the next, before
//! `finish` may retire the old credential. They are told, not asked: a hook
//! that fails is recorded (an event, so the audit log and the metrics have
//! it) and the rotation goes on, because the new value is already current
//! and works. Delivery is at least once: a rotation resumed after a crash
//! between promotion and its end tells its hooks again, with the same
//! rotation id, by which a receiver can tell a repeat.
//!
//! - A webhook is `POST`ed a JSON notice (`event`, `job`, `rotation_id`,
//!   `version`, `plugin`, `sent_at`) with `X-Rotator-Signature: sha256=<hex
//!   HMAC-SHA256 of the body under the key>`; no redirects are followed;
//!   a 5xx, a 429 or no answer is tried again (3 tries, 0.5 s then 1 s
//!   apart, 10 s each), any other status is final.
//! - An exec hook runs with an empty environment but for `PATH` and
//!   `ROTATOR_JOB`, `ROTATOR_ROTATION_ID`, `ROTATOR_VERSION`,
//!   `ROTATOR_PLUGIN`; no stdin, its output discarded; killed at its
//!   `timeout`; a non-zero exit is a failure.
//!
//! No hook ever sees a secret value, and errors name the hook, never the key.

use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use serde_json::json;

use crate::config::Hook;

const TRIES: u32 = 3;
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// What the hooks are told about a rotation.
pub(crate) struct Notice<'a> {
    pub job: &'a str,
    pub rotation_id: &'a str,
    /// The new current version, as its store names it.
    pub version: Option<String>,
    pub plugin: &'a str,
}

/// How one hook went.
pub(crate) struct Delivery {
    pub target: String,
    pub duration: Duration,
    /// The failure's message and kind (`hook-failed`, `hook-timeout`).
    pub error: Option<(String, &'static str)>,
}

/// Tell every hook, in order.
pub(crate) async fn tell(hooks: &[Hook], notice: &Notice<'_>) -> Vec<Delivery> {
    let mut out = Vec::with_capacity(hooks.len());
    for (i, hook) in hooks.iter().enumerate() {
        let started = Instant::now();
        let result = match hook {
            Hook::Webhook { url, key } => webhook(url, key, notice).await,
            Hook::Exec { command, timeout } => exec(command, *timeout, notice).await,
        };
        let target = hook.target();
        let error = result.err().map(|(why, kind)| (format!("hook {} ({target}): {why}", i + 1), kind));
        out.push(Delivery { target, duration: started.elapsed(), error });
    }
    out
}

type Failure = (String, &'static str);

async fn webhook(url: &str, key: &crate::secret::SecretRef, notice: &Notice<'_>) -> Result<(), Failure> {
    let failed = |why: String| (why, "hook-failed");
    // A file key's path was made absolute when the config was read.
    let key = key.resolve(std::path::Path::new("/")).map_err(|e| failed(format!("signing key: {e}")))?;
    let body = json!({
        "event": "promoted",
        "job": notice.job,
        "rotation_id": notice.rotation_id,
        "version": notice.version,
        "plugin": notice.plugin,
        "sent_at": time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
    })
    .to_string();
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(key.expose_secret().as_bytes()).expect("HMAC takes any key length");
    mac.update(body.as_bytes());
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let http = reqwest::Client::builder()
        .timeout(WEBHOOK_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| failed(e.to_string()))?;
    let mut last = String::new();
    for attempt in 1..=TRIES {
        if attempt > 1 {
            tokio::time::sleep(Duration::from_millis(500) * (attempt - 1)).await;
        }
        let sent = http
            .post(url)
            .header("content-type", "application/json")
            .header("x-rotator-signature", &signature)
            .header("x-rotator-rotation-id", notice.rotation_id)
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(resp) if resp.status().is_success() => return Ok(()),
            Ok(resp) if resp.status().is_server_error() || resp.status().as_u16() == 429 => {
                last = format!("answered {}", resp.status().as_u16());
            }
            Ok(resp) => return Err(failed(format!("answered {}", resp.status().as_u16()))),
            Err(e) => {
                last = format!("no answer ({})", if e.is_timeout() { "timed out".to_owned() } else { e.to_string() })
            }
        }
    }
    Err(failed(format!("{last} after {TRIES} tries")))
}

async fn exec(command: &[String], timeout: Duration, notice: &Notice<'_>) -> Result<(), Failure> {
    let mut child = tokio::process::Command::new(&command[0])
        .args(&command[1..])
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("ROTATOR_JOB", notice.job)
        .env("ROTATOR_ROTATION_ID", notice.rotation_id)
        .env("ROTATOR_VERSION", notice.version.as_deref().unwrap_or(""))
        .env("ROTATOR_PLUGIN", notice.plugin)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| (format!("cannot start: {e}"), "hook-failed"))?;
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err((format!("exited with {status}"), "hook-failed")),
        Ok(Err(e)) => Err((format!("waiting for it: {e}"), "hook-failed")),
        Err(_) => {
            let _ = child.kill().await;
            Err((format!("timed out after {}", humantime::format_duration(timeout)), "hook-timeout"))
        }
    }
}
