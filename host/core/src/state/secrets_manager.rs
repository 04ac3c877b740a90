//! State records as secrets of their own in AWS Secrets Manager, for a
//! deployment without Vault: job `x`'s record is the secret `<prefix>x`,
//! its current value the version labelled `AWSCURRENT`.
//!
//! Check-and-set comes from AWS's own idempotency rule: a
//! `ClientRequestToken` names the version it creates, and a second request
//! with the same token and a different value is refused
//! (`ResourceExistsException`), atomically, by the service. Each write's
//! token is derived from the version it replaces ([`next_version`]), so
//! two writers that read the same version race for the same token and
//! exactly one wins; the loser is told, never overwrites. Each write also
//! carries an id of its own (`write_id`) in the text, so two writers with
//! the same new state still differ (AWS would take the second for a retry
//! of the first), while the client's own retry of one request, the same
//! text, is AWS's no-op: a lost answer is safe to retry. The
//! first write is `CreateSecret` (a second creator gets
//! `ResourceExistsException` too).
//!
//! What this does not cover, unlike Vault's check-and-set: a writer other
//! than rotator that puts a version with a token of its own (rotator's next
//! write then lands on top of it), and a writer paused for so long that
//! AWS has dropped the version its token would collide with (AWS keeps
//! labelled versions and prunes unlabelled ones past 100, never those under
//! a day old). `docs/aws.md` says so.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::aws::{AwsClient, AwsError, Service};
use crate::secret::SecretJson;

/// At most this many pages of `ListSecrets` (100 names each) are read.
const MAX_LIST_PAGES: usize = 1_000;

/// Job state records in Secrets Manager under one name prefix and region.
#[derive(Debug, Clone)]
pub(super) struct SmRecords {
    aws: AwsClient,
    prefix: String,
    region: String,
}

/// The version id (and `ClientRequestToken`) the write replacing
/// `expected` (`None`: creating the record) of the secret `name` uses: a
/// UUID from sha256, the same for every writer that read `expected`.
pub fn next_version(name: &str, expected: Option<&str>) -> String {
    let mut hash = Sha256::new();
    let parts = match expected {
        None => ["rotator state record", name, "create", ""],
        Some(version) => ["rotator state record", name, "replace", version],
    };
    for part in parts {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid().hyphenated().to_string()
}

/// `data` (a JSON object) with a fresh `write_id` field first, copied only
/// into zeroizing buffers (the record may hold PENDING). Readers ignore
/// the field.
fn with_write_id(data: &SecretJson) -> SecretJson {
    let text = data.expose();
    let rest = text.trim_start().strip_prefix('{').unwrap_or("}").trim_start();
    let mut out = zeroize::Zeroizing::new(String::with_capacity(text.len() + 64));
    out.push_str("{\"write_id\":\"");
    out.push_str(&uuid::Uuid::new_v4().to_string());
    out.push('"');
    if !rest.starts_with('}') {
        out.push(',');
    }
    out.push_str(rest);
    SecretJson::new(std::mem::take(&mut *out))
}

impl SmRecords {
    pub fn new(aws: AwsClient, prefix: String, region: String) -> Self {
        Self { aws, prefix, region }
    }

    fn name(&self, job: &str) -> String {
        format!("{}{job}", self.prefix)
    }

    /// `aws:<region>:<name>`, as secrets in AWS are shown.
    pub fn location(&self, job: &str) -> String {
        format!("aws:{}:{}", self.region, self.name(job))
    }

    async fn call(&self, operation: &str, body: Value) -> Result<Value, AwsError> {
        self.aws.json(Service::SECRETS_MANAGER, &self.region, operation, &body).await
    }

    /// The record's text and version id, `None` if it has none yet.
    pub async fn read(&self, job: &str) -> Result<Option<(SecretJson, String)>, AwsError> {
        let body = json!({ "SecretId": self.name(job), "VersionStage": "AWSCURRENT" });
        let answer = match self.call("GetSecretValue", body).await {
            Err(e) if e.code() == Some("ResourceNotFoundException") => return Ok(None),
            other => other?,
        };
        let bad = |message: &str| AwsError::BadResponse {
            service: "secretsmanager",
            operation: "GetSecretValue".into(),
            message: message.into(),
        };
        let text = answer["SecretString"].as_str().ok_or_else(|| bad("the state record holds no SecretString"))?;
        let id = answer["VersionId"].as_str().ok_or_else(|| bad("the answer names no VersionId"))?;
        Ok(Some((SecretJson::new(text.to_owned()), id.to_owned())))
    }

    /// Write `data` as the record's new current version if the current one
    /// is still `expected`: `Some(new version id)`, or `None` if another
    /// writer got there first.
    pub async fn write(
        &self,
        job: &str,
        data: &SecretJson,
        expected: Option<&str>,
    ) -> Result<Option<String>, AwsError> {
        let name = self.name(job);
        let token = next_version(&name, expected);
        let data = &with_write_id(data);
        let (operation, body) = match expected {
            None => (
                "CreateSecret",
                json!({
                    "Name": name,
                    "SecretString": data.expose(),
                    "ClientRequestToken": token,
                    "Description": format!("rotator's state record for job {job}: written by rotator only"),
                }),
            ),
            // No VersionStages: AWS puts AWSCURRENT on the new version and
            // AWSPREVIOUS on the one it replaces.
            Some(_) => (
                "PutSecretValue",
                json!({ "SecretId": name, "SecretString": data.expose(), "ClientRequestToken": token }),
            ),
        };
        match self.call(operation, body).await {
            Ok(_) => Ok(Some(token)),
            Err(e) if e.code() == Some("ResourceExistsException") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Delete the secret of `job` at once (no recovery window): a job
    /// definition that was removed. Gone already is fine.
    pub async fn delete(&self, job: &str) -> Result<(), AwsError> {
        let body = json!({ "SecretId": self.name(job), "ForceDeleteWithoutRecovery": true });
        match self.call("DeleteSecret", body).await {
            Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(()),
            other => other.map(drop),
        }
    }

    /// The jobs with a record: secret names under the prefix, paged.
    pub async fn list(&self) -> Result<Vec<String>, AwsError> {
        let mut jobs = Vec::new();
        let mut next: Option<String> = None;
        for _ in 0..MAX_LIST_PAGES {
            let mut body = json!({ "MaxResults": 100, "Filters": [{ "Key": "name", "Values": [self.prefix] }] });
            if let Some(token) = &next {
                body["NextToken"] = json!(token);
            }
            let answer = self.call("ListSecrets", body).await?;
            let names = answer["SecretList"].as_array().into_iter().flatten().filter_map(|s| s["Name"].as_str());
            // AWS's name filter matches more than prefixes; job ids have no `/`.
            jobs.extend(
                names
                    .filter_map(|n| n.strip_prefix(self.prefix.as_str()))
                    .filter(|j| !j.is_empty() && !j.contains('/'))
                    .map(str::to_owned),
            );
            next = answer["NextToken"].as_str().filter(|t| !t.is_empty()).map(str::to_owned);
            if next.is_none() {
                break;
            }
        }
        Ok(jobs)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{next_version, with_write_id};
    use crate::secret::SecretJson;
    use crate::state::JobState;

    #[test]
    fn each_write_carries_its_own_id_and_reads_back_the_same() {
        let state = JobState { rotations: 4, ..JobState::default() };
        let (a, b) = (with_write_id(&state.to_secret()), with_write_id(&state.to_secret()));
        assert_ne!(a.expose(), b.expose(), "two writers of the same state differ");
        let back = JobState::from_secret(&a).unwrap();
        assert_eq!(back.rotations, 4);
        assert_eq!(with_write_id(&SecretJson::new("{}".into())).expose().matches("write_id").count(), 1);
        let empty: serde_json::Value =
            serde_json::from_str(with_write_id(&SecretJson::new(" { } ".into())).expose()).unwrap();
        assert!(empty["write_id"].is_string());
    }

    #[test]
    fn the_next_version_depends_on_the_record_and_the_version_replaced() {
        let first = next_version("rotator/state/a", None);
        assert_eq!(first, next_version("rotator/state/a", None), "every writer derives the same token");
        assert_ne!(first, next_version("rotator/state/b", None));
        assert_ne!(first, next_version("rotator/state/a", Some("")), "creating is not replacing an empty id");
        let second = next_version("rotator/state/a", Some(&first));
        assert_ne!(second, first);
        // AWS takes 32 to 64 characters.
        assert_eq!(first.len(), 36);
        assert!(uuid::Uuid::parse_str(&second).is_ok());
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]
        /// Splitting the same characters differently between the name and
        /// the version never gives the same token (lengths are hashed in).
        #[test]
        fn tokens_of_different_inputs_differ(a in "[a-z/]{0,12}", b in "[a-z-]{0,12}", c in "[a-z/]{0,12}", d in "[a-z-]{0,12}") {
            prop_assume!((a.as_str(), b.as_str()) != (c.as_str(), d.as_str()));
            prop_assert_ne!(next_version(&a, Some(&b)), next_version(&c, Some(&d)));
        }
    }
}
