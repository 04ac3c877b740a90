//! The host's own calls to AWS: one signed request per operation, JSON 1.1
//! (Secrets Manager) or the query protocol (STS), with a timeout, a cap on
//! what is read back, typed errors and a few jittered retries for what may
//! pass (throttling, 5xx, a dropped connection).
//!
//! Endpoints follow the SDKs' standard variables, so a test or a VPC
//! endpoint needs no config of rotator's: `AWS_ENDPOINT_URL_<SERVICE>`
//! (`AWS_ENDPOINT_URL_SECRETS_MANAGER`), then `AWS_ENDPOINT_URL`, then
//! `https://<service>.<region>.amazonaws.com`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::header::{CONTENT_TYPE, HeaderValue};
use serde_json::Value;

use super::credentials::{AwsEnv, Credentials, CredentialsError, CredentialsProvider, WebIdentityRequest};
use super::sigv4;
use crate::vault::RequestRetry;

/// The most the host reads of an answer (Secrets Manager's values are at
/// most 64 KiB).
const MAX_ANSWER: usize = 1 << 20;
/// An error message from AWS is cut to this many characters.
const MAX_MESSAGE: usize = 300;

/// An AWS service the host calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Service {
    /// The signing name and endpoint prefix (`secretsmanager`).
    pub name: &'static str,
    /// The suffix of its endpoint variable (`AWS_ENDPOINT_URL_SECRETS_MANAGER`).
    pub env: &'static str,
}

impl Service {
    pub const SECRETS_MANAGER: Self = Self { name: "secretsmanager", env: "SECRETS_MANAGER" };
    pub const STS: Self = Self { name: "sts", env: "STS" };
}

/// Error codes AWS uses for "slow down", whatever the status.
const THROTTLING: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "InternalServiceError",
    "InternalFailure",
    "ServiceUnavailable",
];

/// Why a call failed. Never holds a request body, a credential or a value.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error("AWS endpoint for {service}: {message}")]
    Config { service: &'static str, message: String },
    /// No answer: connection refused or reset, DNS, timeout.
    #[error("{service} {operation}: no answer ({message})")]
    Transport { service: &'static str, operation: String, message: String },
    /// AWS answered with an error.
    #[error("{service} {operation}: {code} (HTTP {status}): {message}")]
    Api { service: &'static str, operation: String, status: u16, code: String, message: String },
    #[error("{service} {operation}: unexpected answer: {message}")]
    BadResponse { service: &'static str, operation: String, message: String },
}

impl AwsError {
    /// Worth trying again later: throttling, AWS's own failures, no answer.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Credentials(e) => e.is_transient(),
            Self::Transport { .. } => true,
            Self::Api { status, code, .. } => *status >= 500 || *status == 429 || THROTTLING.contains(&code.as_str()),
            Self::Config { .. } | Self::BadResponse { .. } => false,
        }
    }

    /// AWS's error code (`ResourceNotFoundException`), if it answered one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// AWS's message, if it answered one.
    pub fn message(&self) -> Option<&str> {
        match self {
            Self::Api { message, .. } => Some(message),
            _ => None,
        }
    }
}

/// A client for the host's AWS calls. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AwsClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    env: AwsEnv,
    credentials: CredentialsProvider,
    retry: RequestRetry,
}

impl AwsClient {
    /// A client whose credentials come from the standard chain in `env`.
    pub fn from_env(env: AwsEnv, timeout: Duration) -> Result<Self, AwsError> {
        let credentials = CredentialsProvider::from_env(&env)?;
        Self::new(env, credentials, timeout, RequestRetry::default())
    }

    pub fn new(
        env: AwsEnv,
        credentials: CredentialsProvider,
        timeout: Duration,
        retry: RequestRetry,
    ) -> Result<Self, AwsError> {
        crate::vault::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| AwsError::Config { service: "aws", message: format!("cannot build HTTP client: {e}") })?;
        Ok(Self { inner: Arc::new(Inner { http, env, credentials, retry }) })
    }

    /// Where the credentials come from, for startup logs.
    pub fn describe_credentials(&self) -> String {
        self.inner.credentials.describe()
    }

    /// The environment the client was made from (region defaults).
    pub fn env(&self) -> &AwsEnv {
        &self.inner.env
    }

    /// The base URL of `service` in `region`.
    pub fn endpoint(&self, service: Service, region: &str) -> Result<reqwest::Url, AwsError> {
        let config = |message: String| AwsError::Config { service: service.name, message };
        if !super::valid_region(region) {
            return Err(config(format!("`{region}` is not an AWS region name")));
        }
        let env = &self.inner.env;
        let text = match env.get(&format!("AWS_ENDPOINT_URL_{}", service.env)).or(env.get("AWS_ENDPOINT_URL")) {
            Some(url) => url.to_owned(),
            None => format!("https://{}.{region}.amazonaws.com", service.name),
        };
        let url = reqwest::Url::parse(&text).map_err(|e| config(format!("`{text}` is not a URL: {e}")))?;
        let plain = matches!(url.scheme(), "http" | "https")
            && url.host_str().is_some()
            && url.username().is_empty()
            && url.password().is_none()
            && url.query().is_none()
            && url.fragment().is_none();
        if !plain {
            return Err(config(format!("`{text}` must be an http(s) URL with a host and nothing else")));
        }
        Ok(url)
    }

    /// Call a JSON 1.1 operation (`secretsmanager.GetSecretValue`) and
    /// return its answer, retrying what may pass.
    pub async fn json(&self, service: Service, region: &str, operation: &str, body: &Value) -> Result<Value, AwsError> {
        let url = self.endpoint(service, region)?;
        let body = serde_json::to_vec(body).expect("a JSON value serializes");
        let target = format!("{}.{operation}", service.name);
        let headers = [(CONTENT_TYPE.as_str(), "application/x-amz-json-1.1"), ("x-amz-target", target.as_str())];
        let call = Call { service, region, operation, url: &url, headers: &headers, body: &body };
        let answer = self.send(&call).await?;
        if answer.is_empty() {
            return Ok(Value::Object(Default::default()));
        }
        serde_json::from_slice(&answer).map_err(|e| bad(service, operation, format!("not JSON ({e})")))
    }

    /// Sign and send one request, with retries; the answer's body on 2xx.
    async fn send(&self, call: &Call<'_>) -> Result<Vec<u8>, AwsError> {
        let retry = self.inner.retry;
        let mut attempt = 1;
        loop {
            let result = self.send_once(call).await;
            match result {
                Err(e) if attempt < retry.attempts && e.is_transient() => {
                    let delay = retry.delay(attempt, &mut rand::rng());
                    let (service, operation) = (call.service.name, call.operation);
                    tracing::debug!(service, operation, attempt, error = %e, delay = %humantime::format_duration(delay), "AWS call retried");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn send_once(&self, call: &Call<'_>) -> Result<Vec<u8>, AwsError> {
        let Call { service, region, operation, url, headers, body } = *call;
        let credentials = self.credentials(region).await?;
        let mut request = reqwest::Request::new(reqwest::Method::POST, url.clone());
        for (name, value) in headers {
            let value = HeaderValue::from_str(value).map_err(|e| bad(service, operation, e.to_string()))?;
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| bad(service, operation, e.to_string()))?;
            request.headers_mut().insert(name, value);
        }
        *request.body_mut() = Some(reqwest::Body::from(body.to_vec()));
        let key = sigv4::Key {
            access_key_id: &credentials.access_key_id,
            secret_access_key: &credentials.secret_access_key,
            session_token: credentials.session_token.as_deref().map(String::as_str),
            region,
            service: service.name,
        };
        sigv4::sign(&mut request, &key, SystemTime::now()).map_err(|e| bad(service, operation, e.to_string()))?;
        self.exchange(service, operation, request).await
    }

    /// Send a built request and read its answer under the cap.
    async fn exchange(
        &self,
        service: Service,
        operation: &str,
        request: reqwest::Request,
    ) -> Result<Vec<u8>, AwsError> {
        let transport = |e: reqwest::Error| AwsError::Transport {
            service: service.name,
            operation: operation.to_owned(),
            message: e.without_url().to_string(),
        };
        let mut response = self.inner.http.execute(request).await.map_err(transport)?;
        let status = response.status().as_u16();
        let header_code = response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(':').next().unwrap_or(v).to_owned());
        let mut answer = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if answer.len() + chunk.len() > MAX_ANSWER {
                return Err(bad(service, operation, format!("more than {MAX_ANSWER} bytes")));
            }
            answer.extend_from_slice(&chunk);
        }
        if (200..300).contains(&status) {
            return Ok(answer);
        }
        let (code, message) = error_of(&answer, header_code);
        Err(AwsError::Api { service: service.name, operation: operation.to_owned(), status, code, message })
    }

    /// Credentials for a call in `region` (web identity is exchanged with
    /// STS in the same region).
    async fn credentials(&self, region: &str) -> Result<Credentials, AwsError> {
        let exchange = |request: WebIdentityRequest<'_>| {
            let form = [
                ("Action", "AssumeRoleWithWebIdentity"),
                ("Version", "2011-06-15"),
                ("RoleArn", request.role_arn),
                ("RoleSessionName", request.session_name),
                ("WebIdentityToken", request.token),
            ];
            let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
            let body = zeroize::Zeroizing::new(body);
            async move {
                let url = self.endpoint(Service::STS, region).map_err(exchange_error)?;
                let mut http = reqwest::Request::new(reqwest::Method::POST, url);
                http.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded"));
                *http.body_mut() = Some(reqwest::Body::from(body.as_bytes().to_vec()));
                let answer = self.exchange(Service::STS, "AssumeRoleWithWebIdentity", http).await;
                temporary_credentials(&answer.map_err(exchange_error)?)
            }
        };
        Ok(self.inner.credentials.get(exchange).await?)
    }
}

/// One request as the host sends it, before signing.
#[derive(Clone, Copy)]
struct Call<'a> {
    service: Service,
    region: &'a str,
    operation: &'a str,
    url: &'a reqwest::Url,
    headers: &'a [(&'a str, &'a str)],
    body: &'a [u8],
}

fn bad(service: Service, operation: &str, message: String) -> AwsError {
    AwsError::BadResponse { service: service.name, operation: operation.to_owned(), message }
}

fn exchange_error(e: AwsError) -> CredentialsError {
    CredentialsError::Exchange { transient: e.is_transient(), message: e.to_string() }
}

/// The code and message of an error answer: JSON (`__type`, `message`) or
/// XML (`Error/Code`, `Error/Message`), cut to [`MAX_MESSAGE`] characters.
fn error_of(answer: &[u8], header_code: Option<String>) -> (String, String) {
    let cut = |s: &str| s.chars().take(MAX_MESSAGE).collect::<String>();
    if let Ok(v) = serde_json::from_slice::<Value>(answer) {
        let code = v["__type"].as_str().map(|t| t.rsplit('#').next().unwrap_or(t).to_owned()).or(header_code);
        let message = v["message"].as_str().or(v["Message"].as_str()).unwrap_or("");
        return (cut(&code.unwrap_or_else(|| "Unknown".into())), cut(message));
    }
    let xml = |path: &str| super::xml::text_at(answer, path).ok();
    let code = xml("ErrorResponse/Error/Code").or(header_code).unwrap_or_else(|| "Unknown".into());
    let message = xml("ErrorResponse/Error/Message").unwrap_or_default();
    (cut(&code), cut(&message))
}

/// The credentials in an `AssumeRoleWithWebIdentity` answer.
fn temporary_credentials(answer: &[u8]) -> Result<Credentials, CredentialsError> {
    let field = |name: &str| {
        let path = format!("AssumeRoleWithWebIdentityResponse/AssumeRoleWithWebIdentityResult/Credentials/{name}");
        super::xml::text_at(answer, &path).map_err(|e| CredentialsError::Exchange {
            message: format!("STS answer without {name}: {e}"),
            transient: false,
        })
    };
    let expiration = field("Expiration")?;
    let expires = time::OffsetDateTime::parse(&expiration, &time::format_description::well_known::Rfc3339)
        .map_err(|e| CredentialsError::Exchange { message: format!("STS Expiration: {e}"), transient: false })?;
    Ok(Credentials {
        access_key_id: field("AccessKeyId")?,
        secret_access_key: zeroize::Zeroizing::new(field("SecretAccessKey")?),
        session_token: Some(zeroize::Zeroizing::new(field("SessionToken")?)),
        expires: Some(SystemTime::from(expires)),
        source: "web identity".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(pairs: &[(&str, &str)]) -> AwsClient {
        let env = AwsEnv::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let creds = Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: zeroize::Zeroizing::new("s".into()),
            session_token: None,
            expires: None,
            source: "test".into(),
        };
        AwsClient::new(env, CredentialsProvider::fixed(creds), Duration::from_secs(5), RequestRetry::NONE).unwrap()
    }

    #[test]
    fn endpoints_follow_the_sdk_variables() {
        let none = client(&[]);
        let sm = Service::SECRETS_MANAGER;
        assert_eq!(none.endpoint(sm, "eu-west-1").unwrap().as_str(), "https://secretsmanager.eu-west-1.amazonaws.com/");
        assert!(none.endpoint(sm, "eu-west-1.evil.com").is_err());
        let all = client(&[("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")]);
        assert_eq!(all.endpoint(sm, "eu-west-1").unwrap().as_str(), "http://127.0.0.1:5000/");
        let one = client(&[("AWS_ENDPOINT_URL", "http://a:1"), ("AWS_ENDPOINT_URL_SECRETS_MANAGER", "http://b:2")]);
        assert_eq!(one.endpoint(sm, "eu-west-1").unwrap().as_str(), "http://b:2/");
        assert_eq!(one.endpoint(Service::STS, "eu-west-1").unwrap().as_str(), "http://a:1/");
        for bad in ["ftp://x", "http://user:pw@x", "http://x/?q=1", "not a url"] {
            assert!(client(&[("AWS_ENDPOINT_URL", bad)]).endpoint(sm, "eu-west-1").is_err(), "{bad}");
        }
    }

    #[test]
    fn error_answers_are_read_in_both_protocols_and_cut() {
        let json = br#"{"__type":"com.amazonaws.secretsmanager#ResourceNotFoundException","message":"not here"}"#;
        assert_eq!(error_of(json, None), ("ResourceNotFoundException".into(), "not here".into()));
        let xml =
            b"<ErrorResponse><Error><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>";
        assert_eq!(error_of(xml, None), ("Throttling".into(), "Rate exceeded".into()));
        let long = format!(r#"{{"__type":"X","message":"{}"}}"#, "m".repeat(5000));
        assert_eq!(error_of(long.as_bytes(), None).1.len(), MAX_MESSAGE);
        assert_eq!(error_of(b"", Some("AccessDeniedException".into())).0, "AccessDeniedException");
        let throttled = AwsError::Api {
            service: "secretsmanager",
            operation: "GetSecretValue".into(),
            status: 400,
            code: "ThrottlingException".into(),
            message: String::new(),
        };
        assert!(throttled.is_transient());
    }

    #[test]
    fn sts_answers_become_temporary_credentials() {
        let answer = br#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult><Credentials>
    <AccessKeyId>ASIAEXAMPLE</AccessKeyId><SecretAccessKey>temp-secret</SecretAccessKey>
    <SessionToken>tok</SessionToken><Expiration>2026-12-06T12:00:00Z</Expiration>
  </Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"#;
        let c = temporary_credentials(answer).unwrap();
        assert_eq!(c.access_key_id, "ASIAEXAMPLE");
        assert_eq!(c.expires, Some(SystemTime::from(time::macros::datetime!(2026-12-06 12:00 UTC))));
        assert!(temporary_credentials(b"<x/>").is_err());
    }
}
