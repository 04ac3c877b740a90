//! Typed Vault errors. Messages carry paths and Vault's own error strings,
//! never request or response bodies, so they are safe to log.

use serde_json::Value;

/// What is wrong with an answer Vault sent: a field rotator reads is
/// missing or of the wrong type. Names the field, never its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error("no data.metadata.version")]
    NoVersion,
    #[error("secret data is not an object")]
    DataNotObject,
    #[error("dynamic secret answer has no data")]
    NoDynamicData,
}

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// Vault answered with an error status.
    #[error("vault answered {status} to {method} {path}: {}", display_errors(.errors))]
    Status { status: u16, method: String, path: String, errors: Vec<String> },
    /// A KV check-and-set did not match: someone else wrote the secret.
    #[error("check-and-set on {path} failed: the secret changed since version {expected}")]
    CasMismatch { path: String, expected: u64 },
    /// Vault could not be reached or did not answer in time.
    #[error("vault at {address} is unreachable: {message}")]
    Unavailable { address: String, message: String },
    /// Vault answered something we cannot understand.
    #[error("unexpected answer from vault for {path}: {message}")]
    Protocol { path: String, message: String },
    /// The client is misconfigured.
    #[error("vault client: {0}")]
    Config(String),
    /// A path that is not canonical ([`super::path`]); nothing was sent.
    #[error("refused Vault path: {0}")]
    Path(#[from] super::path::PathError),
    /// A KV call on a mount whose type (in Vault's mount table) is not
    /// `kv`: `sys`, `auth/token`, `cubbyhole`, … are not secrets stores, and
    /// treating them as one would write policies or mint tokens.
    #[error("`{mount}` is not a KV mount ({found}); only mounts of type `kv` hold secrets here")]
    NotKv { mount: String, found: String },
}

fn display_errors(errors: &[String]) -> String {
    if errors.is_empty() { "(no message)".into() } else { errors.join("; ") }
}

impl VaultError {
    /// Build from a non-2xx answer and its `{"errors": [...]}` body.
    pub fn from_status(method: &str, path: &str, status: u16, body: Option<&Value>) -> Self {
        let errors = body
            .and_then(|b| b.get("errors"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        Self::Status { status, method: method.to_owned(), path: path.to_owned(), errors }
    }

    /// HTTP status if Vault answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Worth retrying: Vault down, sealed (503), rate limiting (429) or 5xx.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Status { status, .. } => *status == 429 || *status >= 500,
            Self::Unavailable { .. } => true,
            Self::CasMismatch { .. } | Self::Protocol { .. } | Self::Config(_) | Self::Path(_) | Self::NotKv { .. } => {
                false
            }
        }
    }

    /// Vault's error strings, if it answered.
    pub fn messages(&self) -> Vec<String> {
        match self {
            Self::Status { errors, .. } => errors.clone(),
            other => vec![other.to_string()],
        }
    }
}
