//! Checks on the names callers put into Vault paths.
//!
//! A KV path lands in a Vault URL, so it must not be able to change that
//! URL (`..`, `?`, `#`, `%`). Mounts, roles and connections also end up in
//! the grants of a one-off rotation, where `+` and `*` are wildcards, so
//! they are held to plain names.

use super::ApiError;
use crate::plugin::grants::validate_path;

/// A KV secret path (or a mount, which may be nested): non-empty segments,
/// none `.` or `..`, and no character that would change the Vault URL.
pub fn kv_path<'a>(what: &str, raw: &'a str) -> Result<&'a str, ApiError> {
    validate_path(raw).map_err(|e| ApiError::bad_request(format!("{what}: {e}")))?;
    if let Some(c) = raw.chars().find(|c| matches!(c, '?' | '#' | '%' | '\\') || c.is_control()) {
        return Err(ApiError::bad_request(format!("{what}: the character {c:?} is not allowed")));
    }
    Ok(raw.trim_matches('/'))
}

/// A plain name: letters, digits, `-`, `_` and `.` (not `.` or `..`),
/// with `/` between segments where `nested` allows it (mounts).
pub fn name<'a>(what: &str, raw: &'a str, nested: bool) -> Result<&'a str, ApiError> {
    let trimmed = if nested { raw.trim_matches('/') } else { raw };
    let plain = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    let ok = if nested { trimmed.split('/').all(plain) } else { plain(trimmed) };
    if !ok {
        let extra = if nested { ", `.` and `/`" } else { " and `.`" };
        return Err(ApiError::bad_request(format!(
            "{what} `{raw}` is not a plain name: use letters, digits, `-`, `_`{extra}"
        )));
    }
    Ok(trimmed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_paths_cannot_escape_their_url() {
        assert_eq!(kv_path("path", "/app/db/").unwrap(), "app/db");
        for bad in ["", "a/../sys", "a//b", "a?version=1", "a#b", "a%2e", "a\nb"] {
            assert!(kv_path("path", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_hold_no_wildcards() {
        assert_eq!(name("mount", "team/db", true).unwrap(), "team/db");
        assert!(name("role", "team/db", false).is_err());
        for bad in ["*", "a+", "..", "", "a b", "a/*"] {
            assert!(name("connection", bad, true).is_err(), "{bad:?}");
        }
    }
}
