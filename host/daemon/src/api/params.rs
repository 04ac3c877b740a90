//! Checks on the names callers put into Vault paths.
//!
//! A KV path lands in a Vault URL, so it is parsed into the same canonical
//! [`VaultPath`] a plugin's paths are (no `..`, `?`, `#`, `%`, `\`, …;
//! [`rotator_core::vault::path`]). The URL the caller sent is held to it too: an
//! escape that hides a `/`, `.`, `\` or `%` ([`raw_escapes`]) is refused
//! before axum decodes it into something else. Mounts and roles of dynamic
//! credentials are held to plain names, like every name a built-in puts in
//! a grant path, where `+` and `*` are wildcards.

use super::ApiError;
use rotator_core::vault::VaultPath;

/// A KV secret path (or a mount, which may be nested), in canonical form.
pub fn kv_path(what: &str, raw: &str) -> Result<VaultPath, ApiError> {
    VaultPath::parse(raw).map_err(|e| ApiError::bad_request(format!("{what}: {e}")))
}

/// Refuse a request path whose percent-escapes decode to `/`, `.`, `\`,
/// `%`, `?`, `#` or a control byte: decoded, they would change which Vault
/// path the request names. (`%20` or UTF-8 escapes stay usable.)
pub fn raw_escapes(raw_path: &str) -> Result<(), ApiError> {
    let bytes = raw_path.as_bytes();
    for (i, _) in raw_path.match_indices('%') {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        let decoded = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
        if decoded.is_none_or(|b| b.is_ascii_control() || matches!(b, b'/' | b'.' | b'\\' | b'%' | b'?' | b'#')) {
            let shown = rotator_core::vault::path::shown(&raw_path[i..raw_path.len().min(i + 3)]);
            return Err(ApiError::bad_request(format!(
                "the URL holds the escape `{shown}`, which would change the path it names; send the path unencoded"
            )));
        }
    }
    Ok(())
}

/// A plain name: letters, digits, `-`, `_` and `.` (not `.` or `..`),
/// with `/` between segments where `nested` allows it (mounts); the same
/// check the built-ins apply to the names they put in grants
/// ([`rotator_core::builtin::legacy::plain_name`]).
pub fn name<'a>(what: &str, raw: &'a str, nested: bool) -> Result<&'a str, ApiError> {
    Ok(rotator_core::builtin::legacy::plain_name(what, raw, nested)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_paths_cannot_escape_their_url() {
        assert_eq!(kv_path("path", "/app/db/").unwrap().as_str(), "app/db");
        for bad in ["", "a/../sys", "a//b", "a?version=1", "a#b", "a%2e", "a\nb", "a\\b", "http://x"] {
            assert!(kv_path("path", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn escapes_that_change_the_path_are_refused() {
        for bad in
            ["/kv/a%2Fb", "/kv/%2e%2e/sys", "/kv/a%5c", "/kv/a%252e", "/kv/a%00", "/kv/a%", "/kv/a%zz", "/kv/%3f"]
        {
            assert!(raw_escapes(bad).is_err(), "{bad}");
        }
        for good in ["/kv/app/db", "/kv/a%20b", "/kv/%C3%A9"] {
            assert!(raw_escapes(good).is_ok(), "{good}");
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
