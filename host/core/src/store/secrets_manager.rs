//! A secret in AWS Secrets Manager, rotated with Secrets Manager's own
//! staging labels, as its rotation functions do:
//!
//! - stage: `PutSecretValue` with `VersionStages = [AWSPENDING]` and the
//!   rotation id as `ClientRequestToken`: AWS's idempotency key, so a
//!   resumed rotation finds the same version. A version with that id that
//!   already holds `AWSPENDING` or `AWSCURRENT` is not written again (moto
//!   would replace its labels where AWS does nothing). The label moves off
//!   any older version, so an abandoned stage strands no `AWSPENDING`.
//! - promote: `UpdateSecretVersionStage` moving `AWSCURRENT` to that version
//!   with `RemoveFromVersionId` = the version the rotation read (AWS moves
//!   `AWSPREVIOUS` along). The current version is read first and compared,
//!   so a concurrent writer is reported as a conflict, never overwritten;
//!   AWS checks `RemoveFromVersionId` again as it moves the label (moto,
//!   the test server, does not: the read is what the tests prove).
//! - unstage: `AWSPENDING` is taken off the version once the rotation has
//!   ended, so AWS's invariant holds: no `AWSPENDING`, or it is on
//!   `AWSCURRENT`.
//!
//! Values are JSON objects of fields (`SecretString`), as in Vault KV. A
//! secret that does not exist, is scheduled for deletion or holds binary
//! is refused with a clear error; rotator never creates or restores one.

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{SecretStore, StoreError, StoreVersion, Stored};
use crate::aws::{AwsClient, AwsError, Service};
use crate::secret::SecretJson;

const CURRENT: &str = "AWSCURRENT";
const PENDING: &str = "AWSPENDING";

/// `secret = { aws = { id = "prod/orders/db", region = "eu-west-1" } }`: a
/// secret's name or ARN, and its region (default: the AWS chain's region).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsSecretId {
    pub id: String,
    #[serde(default)]
    pub region: Option<String>,
}

impl AwsSecretId {
    /// Problems with the id or region as written (AWS's own limits: a name
    /// of 1 to 512 characters from `A-Za-z0-9/_+=.@-`, or an ARN of at
    /// most 2048).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let allowed = |c: char| c.is_ascii_alphanumeric() || "/_+=.@-:".contains(c);
        let is_arn = self.id.starts_with("arn:");
        let max = if is_arn { 2048 } else { 512 };
        if self.id.is_empty()
            || self.id.len() > max
            || !self.id.chars().all(allowed)
            || (!is_arn && self.id.contains(':'))
        {
            out.push(format!(
                "aws secret id must be a name of 1 to 512 characters from A-Za-z0-9/_+=.@- or an ARN (found {} characters)",
                self.id.chars().count()
            ));
        }
        if let Some(r) = &self.region
            && !crate::aws::valid_region(r)
        {
            out.push(format!("`{r}` is not an AWS region name"));
        }
        out
    }
}

impl std::fmt::Display for AwsSecretId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.region {
            Some(r) => write!(f, "aws:{r}:{}", self.id),
            None => write!(f, "aws:{}", self.id),
        }
    }
}

/// A job's secret in Secrets Manager, with the region resolved.
pub struct SecretsManagerStore {
    aws: AwsClient,
    id: String,
    region: String,
}

impl SecretsManagerStore {
    pub fn new(aws: AwsClient, id: &AwsSecretId, region: String) -> Self {
        Self { aws, id: id.id.clone(), region }
    }

    fn at(&self) -> String {
        format!("aws:{}:{}", self.region, self.id)
    }

    fn error(&self, action: &'static str, source: AwsError) -> StoreError {
        let refused = |message: &str| StoreError::Refused { location: self.at(), message: message.into() };
        let message = source.message().unwrap_or("").to_ascii_lowercase();
        match source.code() {
            Some("InvalidRequestException") if message.contains("deleted") || message.contains("deletion") => {
                refused("the secret is scheduled for deletion (restore it with RestoreSecret to rotate it)")
            }
            _ => StoreError::Aws { action, location: self.at(), source: Box::new(source) },
        }
    }

    async fn call(&self, action: &'static str, operation: &str, body: Value) -> Result<Value, StoreError> {
        let answer = self.aws.json(Service::SECRETS_MANAGER, &self.region, operation, &body).await;
        answer.map_err(|e| self.error(action, e))
    }

    /// The version ids and their labels (versions without labels are not
    /// listed by AWS).
    async fn labels(&self) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        let answer = self.call("describing", "DescribeSecret", json!({ "SecretId": self.id })).await?;
        if answer.get("DeletedDate").is_some_and(|d| !d.is_null()) {
            return Err(StoreError::Refused {
                location: self.at(),
                message: "the secret is scheduled for deletion (restore it with RestoreSecret to rotate it)".into(),
            });
        }
        let map = answer["VersionIdsToStages"].as_object().cloned().unwrap_or_default();
        Ok(map
            .into_iter()
            .map(|(id, stages)| {
                let stages =
                    stages.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect());
                (id, stages.unwrap_or_default())
            })
            .collect())
    }

    async fn read_at(&self, version: Option<&StoreVersion>) -> Result<Option<Stored>, StoreError> {
        let body = match version {
            None => json!({ "SecretId": self.id, "VersionStage": CURRENT }),
            Some(v) => json!({ "SecretId": self.id, "VersionId": v.to_string() }),
        };
        let answer = match self.call("reading", "GetSecretValue", body).await {
            Err(StoreError::Aws { source, .. }) if source.code() == Some("ResourceNotFoundException") => {
                // No such secret, or a secret with no current value yet.
                self.labels().await.map_err(|e| match e {
                    StoreError::Aws { source, .. } if source.code() == Some("ResourceNotFoundException") => {
                        StoreError::Refused {
                            location: self.at(),
                            message: "no such secret in Secrets Manager: create it first (rotator never creates one)"
                                .into(),
                        }
                    }
                    other => other,
                })?;
                return Ok(None);
            }
            other => other?,
        };
        let Some(text) = answer["SecretString"].as_str() else {
            return Err(StoreError::Refused {
                location: self.at(),
                message: "the secret holds binary data, not a JSON object of fields".into(),
            });
        };
        if !text.trim_start().starts_with('{') || serde_json::from_str::<serde_json::Map<String, Value>>(text).is_err()
        {
            return Err(StoreError::Refused {
                location: self.at(),
                message: "the secret's value is not a JSON object of fields".into(),
            });
        }
        let version = answer["VersionId"].as_str().map(|v| StoreVersion::Id(v.to_owned()));
        Ok(Some(Stored { data: SecretJson::new(text.to_owned()), version }))
    }

    async fn put_pending(&self, rotation: &str, pending: &SecretJson) -> Result<(), StoreError> {
        let labels = self.labels().await?;
        let staged = labels.iter().any(|(id, s)| id == rotation && s.iter().any(|l| l == PENDING || l == CURRENT));
        if staged {
            return Ok(());
        }
        let body = json!({
            "SecretId": self.id,
            "ClientRequestToken": rotation,
            "SecretString": pending.expose(),
            "VersionStages": [PENDING],
        });
        self.call("staging", "PutSecretValue", body).await.map(drop)
    }

    async fn move_current(&self, rotation: &str, base: Option<&StoreVersion>) -> Result<StoreVersion, StoreError> {
        let labels = self.labels().await?;
        let current = labels.iter().find(|(_, s)| s.iter().any(|l| l == CURRENT)).map(|(id, _)| id.clone());
        if current.as_deref() == Some(rotation) {
            return Ok(StoreVersion::Id(rotation.to_owned()));
        }
        let base_id = base.map(ToString::to_string);
        if current != base_id {
            return Err(StoreError::Conflict {
                location: self.at(),
                expected: base.cloned(),
                found: current.map(StoreVersion::Id),
            });
        }
        let mut body = json!({ "SecretId": self.id, "VersionStage": CURRENT, "MoveToVersionId": rotation });
        if let Some(from) = base_id {
            body["RemoveFromVersionId"] = Value::String(from);
        }
        self.call("promoting", "UpdateSecretVersionStage", body).await?;
        Ok(StoreVersion::Id(rotation.to_owned()))
    }

    async fn remove_pending(&self, rotation: &str) -> Result<(), StoreError> {
        let labels = self.labels().await?;
        let ours = labels.iter().any(|(id, s)| id == rotation && s.iter().any(|l| l == PENDING));
        if !ours {
            return Ok(());
        }
        let body = json!({ "SecretId": self.id, "VersionStage": PENDING, "RemoveFromVersionId": rotation });
        self.call("unstaging", "UpdateSecretVersionStage", body).await.map(drop)
    }
}

impl SecretStore for SecretsManagerStore {
    fn location(&self) -> String {
        self.at()
    }

    fn read<'a>(&'a self, version: Option<&'a StoreVersion>) -> BoxFuture<'a, Result<Option<Stored>, StoreError>> {
        self.read_at(version).boxed()
    }

    fn stage<'a>(&'a self, rotation: &'a str, pending: &'a SecretJson) -> BoxFuture<'a, Result<(), StoreError>> {
        self.put_pending(rotation, pending).boxed()
    }

    fn promote<'a>(
        &'a self,
        rotation: &'a str,
        _pending: &'a SecretJson,
        base: Option<&'a StoreVersion>,
    ) -> BoxFuture<'a, Result<StoreVersion, StoreError>> {
        self.move_current(rotation, base).boxed()
    }

    fn unstage<'a>(&'a self, rotation: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        self.remove_pending(rotation).boxed()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn id(id: &str, region: Option<&str>) -> AwsSecretId {
        AwsSecretId { id: id.into(), region: region.map(str::to_owned) }
    }

    #[test]
    fn ids_and_regions_are_checked_as_aws_limits_them() {
        assert!(id("prod/orders/db", Some("eu-west-1")).problems().is_empty());
        assert!(id("arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf", None).problems().is_empty());
        for bad in ["", "with space", "a:b", "x\u{0}", "é"] {
            assert_eq!(id(bad, None).problems().len(), 1, "{bad:?}");
        }
        assert_eq!(id(&"a".repeat(513), None).problems().len(), 1);
        assert_eq!(id("ok", Some("eu-west-1/../x")).problems().len(), 1);
        assert_eq!(id("ok", Some("eu-west-1")).to_string(), "aws:eu-west-1:ok");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]
        /// An accepted id is never able to smuggle JSON or a control
        /// character into a request: only AWS's own name characters pass.
        #[test]
        fn accepted_ids_hold_only_aws_name_characters(s in "\\PC{0,80}") {
            if id(&s, None).problems().is_empty() {
                prop_assert!(s.chars().all(|c| c.is_ascii_alphanumeric() || "/_+=.@-:".contains(c)));
                prop_assert!(!s.is_empty());
            }
        }
    }
}
