//! The IAM and STS query-API calls the plugin makes, each a form `POST /`
//! sent through the host and signed there (SigV4) with a key whose secret
//! half the plugin holds only as a handle; and what AWS's error answers
//! mean for a retry.

use std::time::Duration;

use rotator_plugin_sdk::http::{self, AwsSigv4, Text};
use rotator_plugin_sdk::{Handle, RotateError, Secret, fields};
use serde_json::Value;

use crate::settings::Job;
use crate::xml;

/// Per call; the host caps it further by what is left of the step.
const TIMEOUT: Duration = Duration::from_secs(8);
/// How much of AWS's message goes into an error.
const MESSAGE_EXCERPT: usize = 200;
/// Where `CreateAccessKey` puts the new secret key (namespaces ignored).
pub const SECRET_KEY_PATH: &str = "CreateAccessKeyResponse/CreateAccessKeyResult/AccessKey/SecretAccessKey";
/// The secret's fields.
pub const ID_FIELD: &str = "access_key_id";
pub const SECRET_FIELD: &str = "secret_access_key";

/// An access key as the host signs with it: the id in clear (a visible
/// field), the secret key as a handle.
pub struct Key {
    pub id: String,
    pub secret: Handle,
}

impl Key {
    /// The key a secret holds; `what` names the secret in the error.
    pub fn of(secret: &Secret, what: &str) -> Result<Self, RotateError> {
        let id = fields(&secret.data)?.get(ID_FIELD).and_then(Value::as_str).map(str::to_owned);
        match (id, secret.handle(SECRET_FIELD)) {
            (Some(id), Some(handle)) if is_key_id(&id) => Ok(Self { id, secret: handle.clone() }),
            (Some(_), Some(_)) => Err(RotateError::Permanent(format!("{what}'s `{ID_FIELD}` is not an access key id"))),
            _ => Err(RotateError::Permanent(format!("{what} lacks an `{ID_FIELD}` or `{SECRET_FIELD}` field"))),
        }
    }
}

/// Is `id` shaped like an access key id (IAM: 16 to 128 word characters)?
/// Ids from an answer are checked before they go into a secret, a request
/// or an error, so a strange answer cannot put text there.
pub fn is_key_id(id: &str) -> bool {
    (16..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// An error answer from AWS.
#[derive(Debug)]
pub struct Refusal {
    pub status: u16,
    /// AWS's error code (`NoSuchEntity`, `Throttling`, …); empty if the
    /// answer named none.
    pub code: String,
    message: String,
}

impl Refusal {
    fn of(status: u16, body: &[u8]) -> Self {
        let text = String::from_utf8_lossy(body);
        let code = xml::field(&text, "Code").unwrap_or_default();
        let message = xml::field(&text, "Message").unwrap_or_default();
        let mut message: String = message.chars().filter(|c| !c.is_control()).take(MESSAGE_EXCERPT).collect();
        if message.chars().count() == MESSAGE_EXCERPT {
            message.push('…');
        }
        Self { status, code: code.chars().filter(char::is_ascii_alphanumeric).take(64).collect(), message }
    }

    /// Throttling, rate limits and server trouble pass; a retry helps.
    pub fn is_transient(&self) -> bool {
        const CODES: [&str; 7] = [
            "Throttling",
            "ThrottlingException",
            "RequestLimitExceeded",
            "TooManyRequestsException",
            "ServiceUnavailable",
            "InternalFailure",
            "RequestTimeout",
        ];
        self.status == 429 || self.status >= 500 || CODES.contains(&self.code.as_str())
    }

    /// Was the signing key itself refused (unknown, wrong secret)?
    pub fn is_bad_key(&self) -> bool {
        matches!(self.code.as_str(), "InvalidClientTokenId" | "SignatureDoesNotMatch" | "AuthFailure")
    }

    /// The error for `action` on `user`'s keys, signed with `signer` (which
    /// key, in words), with a hint for the codes an operator must act on.
    pub fn into_error(self, action: &str, user: &str, signer: &str) -> RotateError {
        let shown = if self.code.is_empty() { format!("HTTP {}", self.status) } else { self.code.clone() };
        let hint = match self.code.as_str() {
            "LimitExceeded" => format!(": user `{user}` already has the two access keys IAM allows"),
            "NoSuchEntity" => format!(": user `{user}` or the key does not exist"),
            "AccessDenied" => format!(
                ": the policy of user `{user}` does not allow iam:{action} on itself (see the plugin's minimal policy)"
            ),
            _ if self.is_bad_key() => format!(": AWS does not accept {signer} of user `{user}`"),
            _ => String::new(),
        };
        let message = format!("IAM/STS {action} signed with {signer} failed ({shown}){hint}: {}", self.message);
        if self.is_transient() { RotateError::Transient(message) } else { RotateError::Permanent(message) }
    }
}

/// IAM and STS for one job, signed with one key.
pub struct Aws<'a> {
    pub job: &'a Job,
    pub key: &'a Key,
}

/// A call's outcome: AWS's answer, or its refusal. Transport failures are
/// the outer `RotateError`.
pub type Answer<T> = Result<Result<T, Refusal>, RotateError>;

impl Aws<'_> {
    /// `POST /` at `origin` with `Action=action`, `params` and `Version`,
    /// signed for `service`; `capture` takes a field of the answer into the
    /// new secret (only in `create`).
    fn call(
        &self,
        service: &str,
        action: &str,
        params: &[(&str, &str)],
        capture: Option<(&str, &str)>,
    ) -> Answer<String> {
        let (origin, version) = match service {
            "sts" => (&self.job.sts, "2011-06-15"),
            _ => (&self.job.iam, "2010-05-08"),
        };
        let mut form: Vec<(&str, Text)> = vec![("Action", action.into()), ("Version", version.into())];
        form.extend(params.iter().map(|(k, v)| (*k, Text::from(*v))));
        let signing = AwsSigv4 {
            access_key_id: Text::plain(self.key.id.as_str()),
            secret_access_key: self.key.secret.clone(),
            session_token: None,
            region: self.job.region.clone(),
            service: service.to_owned(),
        };
        let mut request = http::post(format!("{origin}/")).form(form).aws_sigv4(signing).timeout(TIMEOUT);
        if let Some((field, path)) = capture {
            request = request.capture_xml(field, path);
        }
        let response = request.send()?;
        if !response.is_success() {
            return Ok(Err(Refusal::of(response.status(), response.body())));
        }
        Ok(Ok(String::from_utf8_lossy(response.body()).into_owned()))
    }

    fn iam(&self, action: &str, params: &[(&str, &str)]) -> Answer<String> {
        self.call("iam", action, params, None)
    }

    /// The user's access keys as (id, status).
    pub fn list_keys(&self) -> Answer<Vec<(String, String)>> {
        let xml = match self.iam("ListAccessKeys", &[("UserName", &self.job.user)])? {
            Ok(xml) => xml,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let mut keys = Vec::new();
        for member in xml::elements(&xml, "member") {
            match (xml::field(member, "AccessKeyId"), xml::field(member, "Status")) {
                (Some(id), Some(status)) if is_key_id(&id) => keys.push((id, status)),
                _ => return Err(RotateError::Permanent("ListAccessKeys answered a key that is not one".into())),
            }
        }
        Ok(Ok(keys))
    }

    /// Has key `id` ever been used (does IAM know a `LastUsedDate`)?
    pub fn was_used(&self, id: &str) -> Answer<bool> {
        let answer = self.iam("GetAccessKeyLastUsed", &[("AccessKeyId", id)])?;
        Ok(answer.map(|xml| xml::field(&xml, "LastUsedDate").is_some_and(|d| !d.trim().is_empty())))
    }

    /// Delete key `id` of the user.
    pub fn delete_key(&self, id: &str) -> Answer<()> {
        Ok(self.iam("DeleteAccessKey", &[("UserName", &self.job.user), ("AccessKeyId", id)])?.map(drop))
    }

    /// Set key `id`'s status (`Active`, `Inactive`).
    pub fn set_status(&self, id: &str, status: &str) -> Answer<()> {
        let params = [("UserName", self.job.user.as_str()), ("AccessKeyId", id), ("Status", status)];
        Ok(self.iam("UpdateAccessKey", &params)?.map(drop))
    }

    /// Create a key for the user: its id (`None` if the answer names
    /// none that looks like one); the host captures its secret key into the
    /// new secret's `secret_access_key`.
    pub fn create_key(&self) -> Answer<Option<String>> {
        let capture = Some((SECRET_FIELD, SECRET_KEY_PATH));
        let answer = self.call("iam", "CreateAccessKey", &[("UserName", &self.job.user)], capture)?;
        Ok(answer.map(|xml| xml::field(&xml, "AccessKeyId").filter(|id| is_key_id(id))))
    }

    /// The ARN the signing key authenticates as (`sts:GetCallerIdentity`).
    pub fn caller_arn(&self) -> Answer<Option<String>> {
        Ok(self.call("sts", "GetCallerIdentity", &[], None)?.map(|xml| xml::field(&xml, "Arn")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(status: u16, code: &str) -> Refusal {
        let body = format!(
            "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>why &amp; how</Message></Error></ErrorResponse>"
        );
        Refusal::of(status, body.as_bytes())
    }

    fn kind(e: &RotateError) -> &'static str {
        match e {
            RotateError::Transient(_) => "transient",
            RotateError::Permanent(_) => "permanent",
            RotateError::InvalidConfig(_) => "invalid-config",
        }
    }

    #[test]
    fn throttling_and_server_trouble_are_transient_the_rest_permanent() {
        for (status, code) in
            [(400, "Throttling"), (429, ""), (500, "InternalFailure"), (503, ""), (400, "RequestLimitExceeded")]
        {
            assert_eq!(
                kind(&refusal(status, code).into_error("ListAccessKeys", "u", "the current key")),
                "transient",
                "{status} {code}"
            );
        }
        for (status, code, hint) in [
            (409, "LimitExceeded", "already has the two access keys"),
            (404, "NoSuchEntity", "does not exist"),
            (403, "AccessDenied", "does not allow iam:CreateAccessKey"),
            (403, "InvalidClientTokenId", "AWS does not accept the current key"),
            (403, "SignatureDoesNotMatch", "AWS does not accept the current key"),
            (400, "ValidationError", "(ValidationError): why & how"),
        ] {
            let e = refusal(status, code).into_error("CreateAccessKey", "u", "the current key");
            assert_eq!(kind(&e), "permanent", "{code}");
            let RotateError::Permanent(m) = e else { unreachable!() };
            assert!(m.contains(hint) && m.contains(&format!("({code})")), "{m}");
        }
    }

    #[test]
    fn key_ids_are_word_characters_of_iams_length() {
        assert!(is_key_id("AKIAIOSFODNN7EXAMPLE") && is_key_id(&"A".repeat(128)));
        for bad in
            ["", "AKIA", "AKIAIOSFODNN7EXAMP`E", "AKIAIOSFODNN7EXAMPLE\n", "AKIAIOSFODNN7EXAMPLE ", &"A".repeat(129)]
        {
            assert!(!is_key_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn an_answer_without_a_code_says_its_status_and_a_huge_message_is_cut() {
        let huge = format!("<Error><Message>{}</Message></Error>", "x\n".repeat(5000));
        let r = Refusal::of(418, huge.as_bytes());
        assert_eq!((r.code.as_str(), r.message.chars().count()), ("", MESSAGE_EXCERPT + 1));
        let RotateError::Permanent(m) = r.into_error("GetCallerIdentity", "u", "the new key") else { panic!() };
        assert!(m.contains("(HTTP 418)") && !m.contains('\n'), "{m}");
        let odd = Refusal::of(400, b"<Code>A<b>&lt;script</Code>");
        assert!(odd.code.chars().all(|c| c.is_ascii_alphanumeric()), "{}", odd.code);
    }
}
