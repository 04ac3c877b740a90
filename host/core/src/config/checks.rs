//! Value checks for the keys of sections that serde reads whole (`[vault]`,
//! `[daemon]`), as `deserialize_with` functions: toml locates each error at
//! the offending value, and the rest of the file is still checked.
//!
//! What is checked is what the daemon will use: the Vault address must be a
//! URL the client can call, the state record's mount and prefix must be
//! paths that name one place in Vault, and counts must be in a range the
//! daemon can run with.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use crate::plugin::grants::validate_path;

/// `[vault] address`: `http(s)://host[:port][/path]`, nothing else.
pub fn vault_address<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let text = String::deserialize(d)?;
    check_address(&text).map(|()| Some(text)).map_err(D::Error::custom)
}

/// Why a text is not a Vault address the client can call. The address is
/// quoted except when it carries credentials, which must not be shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("vault address `{text}` is not a URL ({why})")]
    NotUrl { text: String, why: String },
    #[error("vault address `{0}` must start with http:// or https://")]
    Scheme(String),
    #[error("vault address `{0}` names no host")]
    NoHost(String),
    #[error("vault address must not carry credentials (use `token` or `auth`)")]
    Credentials,
    #[error("vault address `{0}` must not have a query or fragment")]
    QueryOrFragment(String),
}

/// Why `text` is not a Vault address the client can call.
pub fn check_address(text: &str) -> Result<(), AddressError> {
    let url =
        reqwest::Url::parse(text).map_err(|e| AddressError::NotUrl { text: text.to_owned(), why: e.to_string() })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(AddressError::Scheme(text.to_owned()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(AddressError::NoHost(text.to_owned()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Credentials in a URL end up in logs; the token has its own key.
        return Err(AddressError::Credentials);
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(AddressError::QueryOrFragment(text.to_owned()));
    }
    Ok(())
}

fn vault_path<'de, D: Deserializer<'de>>(d: D, key: &str) -> Result<String, D::Error> {
    let text = String::deserialize(d)?;
    validate_path(&text).map(|()| text).map_err(|why| D::Error::custom(format!("{key}: {why}")))
}

/// `[daemon] state.mount`: one place in Vault, no `..` tricks.
pub fn state_mount<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    vault_path(d, "daemon.state.mount").map(Some)
}

/// `[daemon] state.prefix`, under the same rules.
pub fn state_prefix<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    vault_path(d, "daemon.state.prefix").map(Some)
}

/// `[daemon] state.aws.prefix`: the start of a Secrets Manager name (AWS's
/// characters, room left for a 64-character job id within AWS's 512).
pub fn aws_state_prefix<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let text = String::deserialize(d)?;
    let allowed = |c: char| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c);
    if text.len() > 256 || !text.chars().all(allowed) {
        return Err(D::Error::custom(format!(
            "daemon.state.aws.prefix must be at most 256 characters from A-Za-z0-9/_+=.@- (found {} characters)",
            text.chars().count()
        )));
    }
    Ok(text)
}

/// An AWS region name (it becomes part of a host name).
pub fn aws_region<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let text = String::deserialize(d)?;
    if !crate::aws::valid_region(&text) {
        return Err(D::Error::custom(format!("`{text}` is not an AWS region name")));
    }
    Ok(Some(text))
}

fn in_range<'de, D: Deserializer<'de>>(d: D, key: &str, max: u32) -> Result<u32, D::Error> {
    let n = u32::deserialize(d)?;
    if n == 0 || n > max {
        return Err(D::Error::custom(format!("{key} must be between 1 and {max}")));
    }
    Ok(n)
}

/// `[vault] lease_renewals_per_second`: 1 to 10,000.
pub fn renewal_rate<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    in_range(d, "vault.lease_renewals_per_second", 10_000)
}

/// `[vault] max_tracked_leases`: 1 to 1,000,000.
pub fn max_leases<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    in_range(d, "vault.max_tracked_leases", 1_000_000)
}

/// `[daemon] max_rotations_per_second`: 1 to 10,000.
pub fn rotation_rate<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    in_range(d, "daemon.max_rotations_per_second", 10_000).map(Some)
}

/// `[daemon] max_concurrent_rotations`: 1 to 1,024.
pub fn max_concurrent<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    in_range(d, "daemon.max_concurrent_rotations", 1024)
}

#[cfg(test)]
mod tests {
    use super::check_address;

    #[test]
    fn only_callable_vault_addresses_pass() {
        for ok in ["http://127.0.0.1:8200", "https://vault.example", "https://proxy.example/vault"] {
            assert_eq!(check_address(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("vault.example:8200", "must start with http"),
            ("garbage", "is not a URL"),
            ("ftp://vault.example", "must start with http"),
            ("http://user:pw@vault.example", "must not carry credentials"),
            ("http://vault.example/?x=1", "query or fragment"),
            ("http://vault.example/#top", "query or fragment"),
            ("", "is not a URL"),
        ] {
            let err = check_address(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
