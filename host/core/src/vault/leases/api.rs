//! The Vault side of dynamic secrets: what a lease answer looks like
//! ([`DynamicSecret`], [`Renewed`]), the calls the manager makes
//! ([`LeaseApi`], so its timing can be tested on tokio's paused clock with a
//! scripted Vault), and what it tells its listeners ([`LeaseEvent`],
//! [`LeaseStatus`]). Nothing here holds a lease's state.

use std::future::Future;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::super::{AnswerError, VaultClient, VaultError};
use crate::secret::SecretJson;

/// A dynamic secret with its lease.
#[derive(Debug, Clone)]
pub struct DynamicSecret {
    /// Where it came from, e.g. `database/creds/app`; fetching it again
    /// gives a fresh credential.
    pub path: String,
    pub lease_id: String,
    pub lease_duration: Duration,
    pub renewable: bool,
    pub data: SecretJson,
}

/// Vault's answer to a lease renewal.
#[derive(Debug, Clone)]
pub struct Renewed {
    pub lease_duration: Duration,
    pub renewable: bool,
}

/// The Vault calls the manager makes.
pub trait LeaseApi: Send + Sync + 'static {
    fn fetch(&self, path: &str) -> impl Future<Output = Result<DynamicSecret, VaultError>> + Send;
    fn renew(&self, lease_id: &str, increment: Duration) -> impl Future<Output = Result<Renewed, VaultError>> + Send;
    fn revoke(&self, lease_id: &str) -> impl Future<Output = Result<(), VaultError>> + Send;
}

impl LeaseApi for VaultClient {
    async fn fetch(&self, path: &str) -> Result<DynamicSecret, VaultError> {
        let resp = self.request("GET", path, None).await?;
        parse_dynamic(path, &resp.body.unwrap_or(Value::Null))
            .map_err(|e| VaultError::Protocol { path: path.to_owned(), message: e.to_string() })
    }

    async fn renew(&self, lease_id: &str, increment: Duration) -> Result<Renewed, VaultError> {
        let body = json!({ "lease_id": lease_id, "increment": increment.as_secs() }).to_string();
        let resp = self.request("PUT", "sys/leases/renew", Some(body)).await?;
        Ok(parse_renewed(&resp.body.unwrap_or(Value::Null)))
    }

    async fn revoke(&self, lease_id: &str) -> Result<(), VaultError> {
        let body = json!({ "lease_id": lease_id }).to_string();
        self.request("PUT", "sys/leases/revoke", Some(body)).await.map(|_| ())
    }
}

/// A daemon without Vault tracks no lease: every call says so.
impl LeaseApi for Option<VaultClient> {
    async fn fetch(&self, path: &str) -> Result<DynamicSecret, VaultError> {
        self.as_ref().ok_or_else(no_vault)?.fetch(path).await
    }

    async fn renew(&self, lease_id: &str, increment: Duration) -> Result<Renewed, VaultError> {
        self.as_ref().ok_or_else(no_vault)?.renew(lease_id, increment).await
    }

    async fn revoke(&self, lease_id: &str) -> Result<(), VaultError> {
        self.as_ref().ok_or_else(no_vault)?.revoke(lease_id).await
    }
}

fn no_vault() -> VaultError {
    VaultError::Config("this daemon runs without Vault".into())
}

/// The longest TTL believed from an answer: ten years. Vault's own ceiling
/// (`max_lease_ttl`) is far lower; a larger number is a broken or hostile
/// server, and must not overflow the clock arithmetic that plans renewals.
pub(crate) const MAX_TTL: Duration = Duration::from_secs(3650 * 86_400);

/// A TTL in seconds from a Vault answer, at most [`MAX_TTL`].
pub(crate) fn ttl(v: &Value) -> Duration {
    Duration::from_secs(v.as_u64().unwrap_or(0)).min(MAX_TTL)
}

/// Parse a dynamic secret answer (`GET database/creds/<role>` and alike).
pub fn parse_dynamic(path: &str, body: &Value) -> Result<DynamicSecret, AnswerError> {
    let data = body["data"].as_object().ok_or(AnswerError::NoDynamicData)?;
    Ok(DynamicSecret {
        path: path.to_owned(),
        lease_id: body["lease_id"].as_str().unwrap_or_default().to_owned(),
        lease_duration: ttl(&body["lease_duration"]),
        renewable: body["renewable"].as_bool().unwrap_or(false),
        data: SecretJson::from_map(data),
    })
}

/// Parse a `sys/leases/renew` answer.
pub fn parse_renewed(body: &Value) -> Renewed {
    Renewed { lease_duration: ttl(&body["lease_duration"]), renewable: body["renewable"].as_bool().unwrap_or(false) }
}

/// Something that happened to a lease. Holds ids and times, never values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseEvent {
    Tracked {
        path: String,
        lease_id: String,
        ttl: Duration,
    },
    Renewed {
        path: String,
        lease_id: String,
        ttl: Duration,
        capped: bool,
    },
    /// Fresh credentials replaced a lease that could not be renewed further.
    Refetched {
        path: String,
        old_lease_id: String,
        new_lease_id: String,
        ttl: Duration,
    },
    /// No longer tracked: expired (at its max TTL, or after failed
    /// renewals), forgotten by Vault, or refused too often.
    Dropped {
        path: String,
        lease_id: String,
        reason: String,
    },
    Revoked {
        path: String,
        lease_id: String,
    },
}

/// One tracked lease, as the API shows it.
#[derive(Debug, Clone)]
pub struct LeaseStatus {
    pub path: String,
    pub lease_id: String,
    /// Renewing still extends it (false once Vault capped it at its max
    /// TTL, or for a lease issued non-renewable).
    pub renewable: bool,
    pub expires_at: Instant,
    pub next_action_at: Instant,
    pub consecutive_failures: u32,
    /// What the manager does when the next action is due.
    pub next_action: NextAction,
}

/// What the manager does with a lease when it falls due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextAction {
    /// Ask Vault to extend it.
    Renew,
    /// Fetch fresh credentials for its path (the live credential of a path
    /// in reuse mode, which Vault will not extend further).
    Refetch,
    /// Nothing can extend it: stop tracking it when it expires.
    Expire,
}

impl NextAction {
    /// The name the API shows.
    pub fn name(self) -> &'static str {
        match self {
            Self::Renew => "renew",
            Self::Refetch => "refetch",
            Self::Expire => "expire",
        }
    }
}

impl LeaseStatus {
    /// How long Vault may be unreachable from now before this lease expires.
    pub fn budget(&self, now: Instant) -> Duration {
        self.expires_at.saturating_duration_since(now)
    }
}
