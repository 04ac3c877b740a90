//! The response as it arrives: read with a size cap, its headers checked,
//! and values captured from its body for the pending secret.
//!
//! The body is read chunk by chunk and refused as soon as it passes
//! [`MAX_RESPONSE_BODY`] (or at once if `Content-Length` says so), so a
//! hostile server cannot make the host buffer more than the cap. A header
//! value that is not UTF-8 makes the response unusable (the plugin gets
//! strings); the error names the header, not the value. Redirects are not
//! followed: a 3xx is a response like any other.

use serde_json::Value;

use super::HttpError;
use crate::aws::xml::XmlError;
use crate::vault::path::shown;

/// The largest response body the host reads.
pub const MAX_RESPONSE_BODY: usize = 1 << 20;

/// A response read whole, before captures and scrubbing.
pub struct Raw {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Read `response` under the cap.
pub async fn read(mut response: reqwest::Response) -> Result<Raw, HttpError> {
    let status = response.status().as_u16();
    let mut headers = Vec::with_capacity(response.headers().len());
    for (name, value) in response.headers() {
        match std::str::from_utf8(value.as_bytes()) {
            Ok(v) => headers.push((name.as_str().to_owned(), v.to_owned())),
            Err(_) => return Err(HttpError::BadResponse(format!("the value of header `{name}` is not UTF-8"))),
        }
    }
    if let Some(len) = response.content_length()
        && len > MAX_RESPONSE_BODY as u64
    {
        return Err(too_large(format!("Content-Length is {len}")));
    }
    let mut body = Vec::new();
    loop {
        let chunk = response.chunk().await.map_err(|e| super::classify(&e))?;
        let Some(chunk) = chunk else { break };
        if body.len() + chunk.len() > MAX_RESPONSE_BODY {
            return Err(too_large(format!("more than {MAX_RESPONSE_BODY} bytes arrived")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Raw { status, headers, body })
}

fn too_large(what: String) -> HttpError {
    HttpError::TooLarge(format!("the response body is over the host's cap of {MAX_RESPONSE_BODY} bytes: {what}"))
}

fn not_found(what: &str, path: &str) -> HttpError {
    HttpError::BadResponse(format!("capture {what} `{}` found nothing in the response", shown(path)))
}

/// The string or number at `pointer` in a JSON body.
pub fn json_pointer(body: &[u8], pointer: &str) -> Result<String, HttpError> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| {
        HttpError::BadResponse(format!(
            "capture: the response is not JSON ({})",
            format!("{:?}", e.classify()).to_lowercase()
        ))
    })?;
    match doc.pointer(pointer) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => Err(not_found("JSON pointer", pointer)),
    }
}

/// The text of the first element at `path` (local names from the root,
/// `/`-separated; namespaces ignored) in an XML body.
pub fn xml_path(body: &[u8], path: &str) -> Result<String, HttpError> {
    crate::aws::xml::text_at(body, path).map_err(|e| match e {
        XmlError::NotXml(why) => HttpError::BadResponse(format!("capture: the response is not XML ({why})")),
        XmlError::NotFound => not_found("XML path", path),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const IAM: &str = r#"<CreateAccessKeyResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">
  <CreateAccessKeyResult><AccessKey>
    <UserName>Bob</UserName>
    <AccessKeyId>AKIAIOSFODNN7EXAMPLE</AccessKeyId>
    <SecretAccessKey>wJalr/K7&amp;MDENG<![CDATA[+x]]></SecretAccessKey>
  </AccessKey></CreateAccessKeyResult>
</CreateAccessKeyResponse>"#;

    #[test]
    fn xml_paths_take_the_text_of_the_named_element() {
        let path = "CreateAccessKeyResponse/CreateAccessKeyResult/AccessKey/SecretAccessKey";
        assert_eq!(xml_path(IAM.as_bytes(), path).unwrap(), "wJalr/K7&MDENG+x");
        assert_eq!(
            xml_path(IAM.as_bytes(), "CreateAccessKeyResponse/CreateAccessKeyResult/AccessKey/AccessKeyId").unwrap(),
            "AKIAIOSFODNN7EXAMPLE"
        );
        for missing in ["AccessKey/SecretAccessKey", "CreateAccessKeyResponse/Nope", ""] {
            assert!(matches!(xml_path(IAM.as_bytes(), missing), Err(HttpError::BadResponse(_))), "{missing}");
        }
        let prefixed = "<a:R xmlns:a='urn:x'><a:K>v&#65;</a:K></a:R>";
        assert_eq!(xml_path(prefixed.as_bytes(), "R/K").unwrap(), "vA", "namespaces are ignored");
        assert!(matches!(xml_path(b"<R><K>unclosed", "R/K"), Err(HttpError::BadResponse(_))));
    }

    #[test]
    fn json_pointers_take_strings_and_numbers_only() {
        let body = br#"{"key":{"secret":"s3cr3t-v","id":42,"obj":{}}}"#;
        assert_eq!(json_pointer(body, "/key/secret").unwrap(), "s3cr3t-v");
        assert_eq!(json_pointer(body, "/key/id").unwrap(), "42");
        for missing in ["/key/obj", "/key/none", "key"] {
            assert!(matches!(json_pointer(body, missing), Err(HttpError::BadResponse(_))), "{missing}");
        }
        let err = json_pointer(b"not json s3cr3t", "/x").unwrap_err();
        assert!(!format!("{err:?}").contains("s3cr3t"), "a parse error never quotes the body");
    }
}
