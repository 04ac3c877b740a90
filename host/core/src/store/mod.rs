//! Where a job's secret lives, behind the four operations the rotation
//! protocol needs from any secret store: read the current value (or the
//! one a rotation replaces), stage PENDING, promote it with a check that
//! nobody else wrote meanwhile, and take the PENDING mark off once the
//! rotation has ended. The protocol ([`crate::rotation`]) drives a
//! `dyn SecretStore` and never knows which store it talks to.
//!
//! - [`kv`]: Vault KV v2. PENDING has no place in KV, so it lives in the
//!   job's state record (which the protocol writes anyway); promotion is a
//!   write with check-and-set.
//! - [`kv1`]: Vault KV v1, reached through [`kv`]: no versions, so values
//!   are told apart by a keyed fingerprint, and promotion checks it just
//!   before an unconditional write.
//! - [`secrets_manager`]: AWS Secrets Manager, with its own staging labels:
//!   PENDING is a version labelled `AWSPENDING` whose `ClientRequestToken`
//!   is the rotation id, promotion moves `AWSCURRENT` to it (AWS moves
//!   `AWSPREVIOUS`).
//!
//! Another store (GCP Secret Manager, Azure Key Vault) is one more
//! implementation and one more [`SecretAt`] variant; `docs/aws.md` says what
//! each would need. Versions differ per store (a KV version number, a
//! Secrets Manager version id): [`StoreVersion`] holds either, and is
//! written in state records as the JSON number or string it is.

pub mod kv;
pub mod kv1;
pub mod secrets_manager;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::aws::AwsError;
use crate::secret::SecretJson;
use crate::vault::VaultError;
pub use crate::vault::kv::SecretLocation;
pub use secrets_manager::AwsSecretId;

/// Where a job's secret lives (`secret = …` in a job).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretAt {
    /// `{ mount, path }`: a Vault KV v2 secret.
    Kv(SecretLocation),
    /// `{ aws = { id, region } }`: an AWS Secrets Manager secret.
    Aws(AwsSecretId),
}

impl SecretAt {
    /// The KV location, for what exists only in Vault (the API's
    /// `/kv/<path>/rotate`, the harness, the seed service's job format).
    pub fn kv(&self) -> Option<&SecretLocation> {
        match self {
            Self::Kv(loc) => Some(loc),
            Self::Aws(_) => None,
        }
    }
}

impl From<SecretLocation> for SecretAt {
    fn from(loc: SecretLocation) -> Self {
        Self::Kv(loc)
    }
}

impl std::fmt::Display for SecretAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Kv(loc) => loc.fmt(f),
            Self::Aws(id) => id.fmt(f),
        }
    }
}

/// A version of a secret, as its store names it: a KV version number or a
/// Secrets Manager version id. Serialized as that number or string, so
/// state records written before stores existed still read.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StoreVersion {
    Kv(u64),
    Id(String),
}

impl StoreVersion {
    /// The KV version number, which plugins are shown (`context.current`).
    pub fn number(&self) -> Option<u64> {
        match self {
            Self::Kv(n) => Some(*n),
            Self::Id(_) => None,
        }
    }
}

impl std::fmt::Display for StoreVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Kv(n) => n.fmt(f),
            Self::Id(id) => id.fmt(f),
        }
    }
}

impl From<u64> for StoreVersion {
    fn from(n: u64) -> Self {
        Self::Kv(n)
    }
}

/// A secret's value at one version.
#[derive(Debug, Clone)]
pub struct Stored {
    pub data: SecretJson,
    pub version: Option<StoreVersion>,
}

/// Why a store operation failed. Names the location, never a value.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{action} {location}: {source}")]
    Vault { action: &'static str, location: String, source: VaultError },
    #[error("{action} {location}: {source}")]
    /// Boxed: AWS's error is large and rare.
    Aws { action: &'static str, location: String, source: Box<AwsError> },
    /// Someone else wrote the secret since the rotation read it.
    #[error(
        "{location} was changed by someone else during the rotation (expected version {}, found {}); not overwritten",
        shown(.expected),
        shown(.found)
    )]
    Conflict { location: String, expected: Option<StoreVersion>, found: Option<StoreVersion> },
    /// The store holds something rotator must not touch: a secret deleted
    /// or scheduled for deletion, a value that is not a JSON object.
    #[error("{location}: {message}")]
    Refused { location: String, message: String },
}

fn shown(v: &Option<StoreVersion>) -> String {
    v.as_ref().map_or_else(|| "none".into(), ToString::to_string)
}

impl StoreError {
    /// Worth retrying: the store was unreachable, throttled or failing.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Vault { source, .. } => source.is_transient(),
            Self::Aws { source, .. } => source.is_transient(),
            Self::Conflict { .. } | Self::Refused { .. } => false,
        }
    }

    /// A short machine name for metrics and audit records.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Vault { .. } => "vault",
            Self::Aws { .. } => "aws",
            Self::Conflict { .. } => "conflict",
            Self::Refused { .. } => "store-refused",
        }
    }
}

/// A secret store, as the rotation protocol drives it. Every operation is
/// idempotent for one rotation id: a run resumed after a crash repeats the
/// operation it may have done already.
pub trait SecretStore: Send + Sync {
    /// Where the secret is, for errors, events and the audit log.
    fn location(&self) -> String;

    /// The current value (`version` = `None`) or the value at `version`;
    /// `Ok(None)` when the secret has no value yet.
    fn read<'a>(&'a self, version: Option<&'a StoreVersion>) -> BoxFuture<'a, Result<Option<Stored>, StoreError>>;

    /// Keep `pending` beside the current value, marked as the rotation's,
    /// if the store has a place for it (`AWSPENDING`); a no-op for a store
    /// without one, whose PENDING lives in the state record only.
    fn stage<'a>(&'a self, rotation: &'a str, pending: &'a SecretJson) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Make `pending` the current value if the current version is still
    /// `base` (`None`: the secret had no value), else [`StoreError::Conflict`].
    /// A promotion that finds `pending` current already (a crash after
    /// promoting) answers that version.
    fn promote<'a>(
        &'a self,
        rotation: &'a str,
        pending: &'a SecretJson,
        base: Option<&'a StoreVersion>,
    ) -> BoxFuture<'a, Result<StoreVersion, StoreError>>;

    /// Take the rotation's PENDING mark off, after it was promoted or
    /// rolled back, so that no PENDING is left but on the current value.
    fn unstage<'a>(&'a self, rotation: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;
}
