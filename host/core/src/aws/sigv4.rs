//! AWS Signature Version 4, applied by the host as a request leaves: for a
//! plugin's request (so a plugin can call AWS with a key whose secret half
//! it holds only as a handle) and for the host's own calls to Secrets
//! Manager and STS ([`super::client`]).
//!
//! The signature covers exactly what is sent: the method, the final URL
//! (query pairs appended), every header the request carries and the hash of
//! the encoded body. `Host` is taken from the URL, as the client sends it.
//! The signer adds `x-amz-date`, `authorization` and, for temporary
//! credentials, `x-amz-security-token`; each replaces a header of the same
//! name the plugin may have set.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign as sign_request};
use aws_sigv4::sign::v4;
use reqwest::header::{HeaderName, HeaderValue};

/// The credentials and scope to sign with (values already looked up).
pub struct Key<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub session_token: Option<&'a str>,
    pub region: &'a str,
    pub service: &'a str,
}

/// Why a request could not be signed. Names no credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the request cannot be signed: {0}")]
pub struct SignError(String);

fn invalid(why: impl std::fmt::Display) -> SignError {
    SignError(why.to_string())
}

/// Sign `request` in place with `key` at `time`.
pub fn sign(request: &mut reqwest::Request, key: &Key<'_>, time: SystemTime) -> Result<(), SignError> {
    if key.region.is_empty() || key.service.is_empty() {
        return Err(invalid("region and service must not be empty"));
    }
    let identity = Credentials::new(
        key.access_key_id,
        key.secret_access_key,
        key.session_token.map(str::to_owned),
        None,
        "rotator-handle",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(key.region)
        .name(key.service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(invalid)?
        .into();
    let mut headers = Vec::with_capacity(request.headers().len());
    for (name, value) in request.headers() {
        let value = value.to_str().map_err(|_| invalid(format!("header `{name}` is not visible ASCII")))?;
        headers.push((name.as_str(), value));
    }
    let body = request.body().and_then(reqwest::Body::as_bytes).unwrap_or_default();
    let signable = SignableRequest::new(
        request.method().as_str(),
        request.url().as_str(),
        headers.into_iter(),
        SignableBody::Bytes(body),
    )
    .map_err(invalid)?;
    let (instructions, _signature) = sign_request(signable, &params).map_err(invalid)?.into_parts();
    for header in instructions.into_parts().0 {
        let name = HeaderName::from_static(header.name());
        let mut value = HeaderValue::from_str(header.value()).map_err(invalid)?;
        // The signature is no secret, but it is a credential for a while.
        value.set_sensitive(header.sensitive() || name == reqwest::header::AUTHORIZATION);
        request.headers_mut().insert(name, value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Against vectors of the AWS SigV4 test suite (published by AWS, shipped
    //! in the aws-sigv4 crate's `aws-signing-test-suite/v4`).

    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    /// 2015-08-30T12:36:00Z, the suite's timestamp.
    fn suite_time() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_440_938_160)
    }

    fn signed(method: &str, url: &str, token: Option<&str>) -> reqwest::Request {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = reqwest::Request::new(method, url.parse().unwrap());
        *request.body_mut() = Some(reqwest::Body::from(Vec::new()));
        let key = Key {
            access_key_id: "AKIDEXAMPLE",
            secret_access_key: SECRET,
            session_token: token,
            region: "us-east-1",
            service: "service",
        };
        sign(&mut request, &key, suite_time()).unwrap();
        request
    }

    fn header<'a>(r: &'a reqwest::Request, name: &str) -> &'a str {
        r.headers().get(name).unwrap().to_str().unwrap()
    }

    const CREDENTIAL: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request";

    #[test]
    fn get_vanilla_query_order_key_case_matches_the_suite() {
        let r = signed("GET", "https://example.amazonaws.com/?Param2=value2&Param1=value1", None);
        assert_eq!(header(&r, "x-amz-date"), "20150830T123600Z");
        assert_eq!(
            header(&r, "authorization"),
            format!(
                "{CREDENTIAL}, SignedHeaders=host;x-amz-date, Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
            )
        );
        assert!(r.headers().get("authorization").unwrap().is_sensitive());
    }

    #[test]
    fn post_vanilla_matches_the_suite() {
        let r = signed("POST", "https://example.amazonaws.com/", None);
        assert_eq!(
            header(&r, "authorization"),
            format!(
                "{CREDENTIAL}, SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
            )
        );
    }

    #[test]
    fn a_session_token_is_sent_and_signed_as_the_suite_says() {
        let token = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267";
        let r = signed("GET", "https://example.amazonaws.com/", Some(token));
        assert_eq!(header(&r, "x-amz-security-token"), token);
        assert_eq!(
            header(&r, "authorization"),
            format!(
                "{CREDENTIAL}, SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8"
            )
        );
        assert!(!format!("{r:?}").contains(SECRET), "Debug never shows the secret key");
    }
}
