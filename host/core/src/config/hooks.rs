//! A job's `hooks`: who is told once a rotation has made a new value
//! current, before `finish` may retire the old one, in the order written.
//!
//! ```toml
//! hooks = [
//!   { webhook = "https://deploy.example/rotated", key = { env = "HOOK_KEY" } },
//!   { exec = ["/usr/bin/systemctl", "reload", "app"], timeout = "30s" },
//! ]
//! ```
//!
//! A webhook gets a JSON notice (job, rotation id, version, plugin; never a
//! value) signed with HMAC-SHA256 under `key`, a secret reference (never
//! inline); an exec hook runs a command by absolute path, without a shell,
//! with the job in its environment. What is checked here is what is used:
//! the URL is the one requested (http or https, a host, no credentials, no
//! fragment), the command is the one run (an absolute path, bounded
//! arguments without NUL).

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::Collector;
use super::units::Bounds;
use crate::secret::SecretRef;

/// At most this many hooks per job.
pub const MAX_HOOKS: usize = 16;
/// An exec hook's arguments: at most this many, each at most 4 KiB.
const MAX_ARGS: usize = 64;
const MAX_ARG_BYTES: usize = 4096;
/// `timeout` of an exec hook (default 30 s).
pub const HOOK_TIMEOUT: Bounds =
    Bounds { key: "hooks.timeout", min: Duration::from_millis(100), max: Duration::from_secs(600) };
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// One hook, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hook {
    /// `POST url` with the notice, signed (`X-Rotator-Signature: sha256=…`).
    Webhook { url: String, key: SecretRef },
    /// `command[0]` (an absolute path) with the rest as arguments.
    Exec { command: Vec<String>, timeout: Duration },
}

impl Hook {
    /// What the hook reaches, for events and errors (no secret).
    pub fn target(&self) -> String {
        match self {
            Self::Webhook { url, .. } => format!("webhook {url}"),
            Self::Exec { command, .. } => format!("exec {}", command[0]),
        }
    }
}

/// A hook as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHook {
    #[serde(default)]
    webhook: Option<String>,
    #[serde(default)]
    key: Option<SecretRef>,
    #[serde(default)]
    exec: Option<Vec<String>>,
    #[serde(default)]
    timeout: Option<String>,
}

/// Check a job's hooks; problems located at each hook.
pub(super) fn hooks(c: &mut Collector, raw: Vec<Spanned<RawHook>>, span: Range<usize>, base_dir: &Path) -> Vec<Hook> {
    if raw.len() > MAX_HOOKS {
        c.error(span, format!("at most {MAX_HOOKS} hooks per job"));
        return Vec::new();
    }
    raw.into_iter().filter_map(|h| hook(c, h, base_dir)).collect()
}

fn hook(c: &mut Collector, raw: Spanned<RawHook>, base_dir: &Path) -> Option<Hook> {
    let span = raw.span();
    let mut problem = |message: String| {
        c.error(span.clone(), format!("hook: {message}"));
        None
    };
    match raw.into_inner() {
        RawHook { webhook: Some(url), key, exec: None, timeout: None } => {
            if let Err(why) = check_url("webhook", &url) {
                return problem(why);
            }
            let Some(key) = key else {
                return problem(
                    "a webhook needs `key = { env = \"…\" }` or `{ file = \"…\" }` to sign its notices".into(),
                );
            };
            // A relative key file is the config folder's, as every path.
            let key = match key {
                SecretRef::File(p) if p.is_relative() => SecretRef::File(base_dir.join(p)),
                other => other,
            };
            Some(Hook::Webhook { url, key })
        }
        RawHook { webhook: None, key: None, exec: Some(command), timeout } => {
            if let Err(why) = check_command(&command) {
                return problem(why);
            }
            let timeout = match timeout.as_deref().map(|t| HOOK_TIMEOUT.parse(t)) {
                None => DEFAULT_TIMEOUT,
                Some(Ok(t)) => t,
                Some(Err(e)) => return problem(e.to_string()),
            };
            Some(Hook::Exec { command, timeout })
        }
        RawHook { webhook: Some(_), exec: Some(_), .. } | RawHook { webhook: None, exec: None, .. } => {
            problem("give either `webhook` (with `key`) or `exec`".into())
        }
        RawHook { webhook: Some(_), .. } => problem("`timeout` belongs to an `exec` hook".into()),
        RawHook { exec: Some(_), .. } => problem("`key` belongs to a `webhook` hook".into()),
    }
}

/// The URL requested: http(s), a host, no credentials, no fragment.
pub(super) fn check_url(what: &str, url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{what} `{url}` is not a URL ({e})"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("{what} `{url}` must start with http:// or https://"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("{what} `{url}` names no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        // Credentials in a URL end up in logs.
        return Err(format!("a {what} URL must not carry credentials"));
    }
    if parsed.fragment().is_some() {
        return Err(format!("{what} `{url}` must not have a fragment"));
    }
    Ok(())
}

/// The command run: an absolute path (no PATH lookup), bounded arguments.
fn check_command(command: &[String]) -> Result<(), String> {
    let Some(program) = command.first() else { return Err("`exec` names no command".into()) };
    if !PathBuf::from(program).is_absolute() {
        return Err(format!("`exec` runs `{program}` by absolute path only (no PATH lookup, no shell)"));
    }
    if command.len() > MAX_ARGS {
        return Err(format!("`exec` has {} arguments; at most {MAX_ARGS}", command.len()));
    }
    if command.iter().any(|a| a.len() > MAX_ARG_BYTES || a.contains('\0')) {
        return Err(format!("`exec` arguments must be at most {MAX_ARG_BYTES} bytes, without NUL"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{check_command, check_url};

    #[test]
    fn urls_and_commands_are_checked_as_they_are_used() {
        assert!(check_url("webhook", "https://deploy.example/rotated?team=a").is_ok());
        assert!(check_url("webhook", "http://127.0.0.1:9000/hook").is_ok());
        for bad in ["ftp://x/", "https://user:pw@x/", "https://", "https://x/#frag", "not a url"] {
            let why = check_url("webhook", bad).unwrap_err();
            assert!(!why.contains("pw"), "{why}");
        }
        assert!(check_command(&["/usr/bin/true".into()]).is_ok());
        for bad in [vec![], vec!["true".to_owned()], vec!["/bin/echo".to_owned(), "a\0b".to_owned()]] {
            assert!(check_command(&bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
        /// Whatever the text, the check answers, and an accepted URL is one
        /// reqwest sends as written: http(s), a host, no user info.
        #[test]
        fn any_text_is_answered_and_accepted_urls_are_plain(text in "\\\\PC{0,60}") {
            if check_url("webhook", &text).is_ok() {
                let u = reqwest::Url::parse(&text).unwrap();
                prop_assert!(matches!(u.scheme(), "http" | "https") && u.username().is_empty() && u.password().is_none());
            }
        }
    }
}
