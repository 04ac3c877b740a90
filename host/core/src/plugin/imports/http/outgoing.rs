//! The request as it leaves: the plugin's [`HttpRequest`] checked and
//! turned into one [`reqwest::Request`], with every handle replaced by its
//! value, the body encoded and the authentication added (AWS SigV4 signs
//! the final bytes: [`crate::aws::sigv4`]).
//!
//! Everything that can be wrong with a request is found here, before
//! anything is sent: an unknown handle (or one of another run: the table
//! is the run's own), a header name or value that is not valid, a header
//! that frames the message or names the host (the URL the grants checked
//! is the only authority the request has: Spin's CVE-2024-32980), a JSON
//! pointer that names nothing, more than [`MAX_PARTS`] headers, query
//! pairs, form pairs, JSON secrets or captures, a body over
//! [`MAX_REQUEST_BODY`]. Each is an `invalid-request` naming the part, never
//! a value.

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use serde_json::Value;

use super::{Auth, Body, HttpError, HttpRequest, Text};
use crate::plugin::grants::HttpTarget;
use crate::plugin::handles::Handles;
use crate::vault::path::shown;

/// The most headers, query pairs, form pairs, JSON secrets or captures one
/// request may have.
pub const MAX_PARTS: usize = 64;

/// The largest request body, after encoding.
pub const MAX_REQUEST_BODY: usize = 1 << 20;

/// Headers a plugin may not set: the host frames the message and takes the
/// authority from the granted URL.
const FORBIDDEN: &[&str] =
    &["host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer", "keep-alive"];

/// A request ready to send, and what of it must be scrubbed from what comes
/// back beyond the run's values (the encoded basic-auth credentials).
pub struct Outgoing {
    pub request: reqwest::Request,
    pub derived: Vec<Vec<u8>>,
}

fn invalid(why: String) -> HttpError {
    HttpError::InvalidRequest(why)
}

/// Refuse a list of more than [`MAX_PARTS`].
fn bounded<T>(what: &str, list: &[T]) -> Result<(), HttpError> {
    if list.len() > MAX_PARTS {
        return Err(invalid(format!("{} {what}; at most {MAX_PARTS}", list.len())));
    }
    Ok(())
}

/// The text a [`Text`] stands for: plain text, or a handle's value.
pub fn resolve<'a>(handles: &'a Handles, text: &'a Text) -> Result<&'a str, HttpError> {
    match text {
        Text::Plain(s) => Ok(s),
        Text::Secret(h) => secret(handles, h),
    }
}

/// The value behind a handle of this run.
pub fn secret<'a>(handles: &'a Handles, handle: &str) -> Result<&'a str, HttpError> {
    handles.value(handle).ok_or_else(|| invalid(format!("`{}` is not a handle of this rotation", shown(handle))))
}

/// Check the parts the grants did not: counts, header names. Runs before
/// any value is looked up.
pub fn check_shape(request: &HttpRequest) -> Result<(), HttpError> {
    bounded("headers", &request.headers)?;
    bounded("query pairs", &request.query)?;
    bounded("captures", &request.captures)?;
    match &request.body {
        Body::Json { secrets, .. } => bounded("JSON secrets", secrets)?,
        Body::Form(pairs) => bounded("form pairs", pairs)?,
        Body::Empty | Body::Bytes(_) => {}
    }
    for (name, _) in &request.headers {
        let lower = name.to_ascii_lowercase();
        if FORBIDDEN.contains(&lower.as_str()) || lower.starts_with("proxy-") {
            return Err(invalid(format!("header `{}` is set by the host, not the plugin", shown(name))));
        }
        if lower == "authorization" && request.auth != Auth::None {
            return Err(invalid("an `Authorization` header and host-side auth together".into()));
        }
    }
    Ok(())
}

/// Build the request for `target` (what the grants allowed): query pairs
/// appended, headers, body and authentication, handles filled in.
pub fn build(
    client: &reqwest::Client,
    handles: &Handles,
    request: &HttpRequest,
    target: &HttpTarget,
) -> Result<Outgoing, HttpError> {
    let HttpTarget { url, method, .. } = target;
    let mut url = url.clone();
    if !request.query.is_empty() {
        let mut pairs = url.query_pairs_mut();
        for (name, value) in &request.query {
            pairs.append_pair(name, resolve(handles, value)?);
        }
    }
    let mut builder = client.request(method.clone(), url);
    let mut has_type = false;
    for (name, value) in &request.headers {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| invalid(format!("`{}` is not a header name", shown(name))))?;
        let mut v = HeaderValue::from_str(resolve(handles, value)?)
            .map_err(|_| invalid(format!("the value of header `{header}` is not valid in a header")))?;
        v.set_sensitive(matches!(value, Text::Secret(_)));
        has_type |= header == CONTENT_TYPE;
        builder = builder.header(header, v);
    }
    let (body, default_type) = body(handles, &request.body)?;
    if body.len() > MAX_REQUEST_BODY {
        return Err(invalid(format!("the body has {} bytes; at most {MAX_REQUEST_BODY}", body.len())));
    }
    if let (Some(t), false) = (default_type, has_type) {
        builder = builder.header(CONTENT_TYPE, t);
    }
    builder = builder.body(body);
    let mut derived = Vec::new();
    match &request.auth {
        Auth::None | Auth::AwsSigV4 { .. } => {}
        Auth::Basic { username, password } => {
            builder = builder.basic_auth(resolve(handles, username)?, Some(resolve(handles, password)?));
        }
        Auth::Bearer(token) => {
            let mut v = HeaderValue::from_str(&format!("Bearer {}", resolve(handles, token)?))
                .map_err(|_| invalid("the bearer token is not valid in a header".into()))?;
            v.set_sensitive(true);
            builder = builder.header(AUTHORIZATION, v);
        }
    }
    let mut built =
        builder.build().map_err(|e| invalid(format!("the request cannot be built: {}", e.without_url())))?;
    if let Auth::Basic { .. } = &request.auth
        && let Some(v) = built.headers().get(AUTHORIZATION)
    {
        // An echo of `Authorization` would hand back the password in base64.
        derived.push(v.as_bytes().strip_prefix(b"Basic ").unwrap_or(v.as_bytes()).to_vec());
    }
    if let Auth::AwsSigV4 { access_key_id, secret_access_key, session_token, region, service } = &request.auth {
        let key = crate::aws::sigv4::Key {
            access_key_id: resolve(handles, access_key_id)?,
            secret_access_key: secret(handles, secret_access_key)?,
            session_token: session_token.as_ref().map(|t| resolve(handles, t)).transpose()?,
            region,
            service,
        };
        crate::aws::sigv4::sign(&mut built, &key, std::time::SystemTime::now())
            .map_err(|e| HttpError::InvalidRequest(e.to_string()))?;
    }
    Ok(Outgoing { request: built, derived })
}

/// The encoded body and the content type it implies.
fn body(handles: &Handles, body: &Body) -> Result<(Vec<u8>, Option<&'static str>), HttpError> {
    Ok(match body {
        Body::Empty => (Vec::new(), None),
        Body::Bytes(b) => (b.clone(), None),
        Body::Json { document, secrets } => {
            let mut doc: Value =
                serde_json::from_str(document).map_err(|e| invalid(format!("the JSON body does not parse: {e}")))?;
            for (pointer, handle) in secrets {
                let value = secret(handles, handle)?;
                let slot = doc
                    .pointer_mut(pointer)
                    .ok_or_else(|| invalid(format!("JSON pointer `{}` names nothing in the body", shown(pointer))))?;
                *slot = Value::String(value.to_owned());
            }
            (doc.to_string().into_bytes(), Some("application/json"))
        }
        Body::Form(pairs) => {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            for (name, value) in pairs {
                form.append_pair(name, resolve(handles, value)?);
            }
            (form.finish().into_bytes(), Some("application/x-www-form-urlencoded"))
        }
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn with_header(name: &str, auth: Auth) -> HttpRequest {
        HttpRequest {
            method: "GET".into(),
            url: "http://h/".into(),
            query: vec![],
            headers: vec![(name.to_owned(), Text::Plain("v".into()))],
            body: Body::Empty,
            auth,
            captures: vec![],
            timeout: None,
        }
    }

    /// Any casing of a name the host owns.
    fn casing(name: &'static str) -> impl Strategy<Value = String> {
        proptest::collection::vec(any::<bool>(), name.len())
            .prop_map(move |up| name.chars().zip(up).map(|(c, u)| if u { c.to_ascii_uppercase() } else { c }).collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, rng_seed: proptest::test_runner::RngSeed::Fixed(11), ..ProptestConfig::default() })]

        #[test]
        fn headers_the_host_owns_are_refused_in_any_casing(
            name in proptest::sample::select(FORBIDDEN).prop_flat_map(casing),
            proxy in "[Pp][Rr][Oo][Xx][Yy]-[a-zA-Z-]{0,12}",
        ) {
            for n in [name, proxy] {
                let refused = check_shape(&with_header(&n, Auth::None));
                prop_assert!(matches!(refused, Err(HttpError::InvalidRequest(_))), "{n}");
            }
        }

        #[test]
        fn other_headers_pass_the_shape_check(name in "x-[a-z0-9-]{1,20}") {
            prop_assert!(check_shape(&with_header(&name, Auth::None)).is_ok());
            prop_assert!(check_shape(&with_header(&name, Auth::Bearer(Text::Plain("t".into())))).is_ok());
        }
    }

    #[test]
    fn counts_are_bounded() {
        let mut r = with_header("x-a", Auth::None);
        r.headers = (0..=MAX_PARTS).map(|i| (format!("x-{i}"), Text::Plain("v".into()))).collect();
        assert!(matches!(check_shape(&r), Err(HttpError::InvalidRequest(m)) if m.contains("65 headers")));
        r.headers.truncate(MAX_PARTS);
        assert!(check_shape(&r).is_ok());
        assert!(check_shape(&with_header("Authorization", Auth::Bearer(Text::Plain("t".into())))).is_err());
    }
}
