//! HTTP through the host: an idiomatic builder over the WIT `http`
//! interface ([`crate::http_api`]).
//!
//! The host sends the request, and only to origins, paths and methods the
//! job grants. Secrets travel as handles: put a [`Handle`] where a value
//! goes ([`Text::secret`], [`Request::header_secret`],
//! [`Request::json_with_secrets`], a basic-auth pair) and the host fills in
//! the value as the request leaves, so a plugin in handle mode rotates a
//! credential without ever holding it. What comes back has every handle's
//! value scrubbed out.
//!
//! ```no_run
//! use rotator_plugin_sdk::http::{self, Text};
//! use rotator_plugin_sdk::{RotateError, Secret};
//!
//! fn user(secret: &Secret) -> Result<serde_json::Value, RotateError> {
//!     let admin = secret.handle("password").ok_or(RotateError::Permanent("no password".into()))?;
//!     http::get("https://rabbit.internal:15672/api/users/app")
//!         .basic_auth("admin", Text::secret(admin))
//!         .timeout(std::time::Duration::from_secs(10))
//!         .send()?
//!         .error_for_status()?
//!         .json()
//! }
//! ```
//!
//! Errors: [`HttpError`] converts into [`RotateError`] by whether a retry can
//! help (`?` does it), and [`Response::error_for_status`] /
//! [`status_error`] do the same for an HTTP status.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::http_api::{self as api, BasicAuth, Capture, Header, JsonBody};
pub use crate::http_api::{Auth, AwsSigv4, Body, CaptureSource, HttpError, Text};
use crate::{Handle, RotateError};

/// How much of an error answer's body goes into an error message: enough to
/// show the server's reason, bounded so a huge page does not flood the log.
const BODY_EXCERPT: usize = 200;

impl Text {
    /// Text sent as it is.
    pub fn plain(text: impl Into<String>) -> Self {
        Text::Plain(text.into())
    }

    /// The value behind `handle`, filled in by the host. A handle does not
    /// turn into [`Text`] any other way, so it cannot go out as plain text:
    ///
    /// ```compile_fail
    /// let handle: rotator_plugin_sdk::Handle = "rotator-handle:current/token".to_owned();
    /// let _ = rotator_plugin_sdk::http::get("https://api.example/").bearer(handle);
    /// ```
    pub fn secret(handle: &Handle) -> Self {
        Text::Secret(handle.clone())
    }
}

/// Plain text. There is deliberately no conversion from `String` or
/// `&String`: a [`Handle`] is a `String`, and one must never go out as plain
/// text by accident; write [`Text::secret`] for a handle and
/// [`Text::plain`] (or `.as_str()`) for owned plain text.
impl From<&str> for Text {
    fn from(text: &str) -> Self {
        Text::Plain(text.to_owned())
    }
}

/// A request being built. Start with [`get`], [`put`], [`post`], [`patch`],
/// [`delete`], [`head`] or [`request`]; finish with [`Request::send`].
#[derive(Debug, Clone)]
#[must_use = "a request does nothing until it is sent"]
pub struct Request {
    inner: api::Request,
}

/// A request with any method (`GET`, `POST`, `PUT`, `PATCH`, `DELETE`,
/// `HEAD`; the host refuses others).
pub fn request(method: &str, url: impl Into<String>) -> Request {
    Request {
        inner: api::Request {
            method: method.to_owned(),
            url: url.into(),
            query: Vec::new(),
            headers: Vec::new(),
            body: Body::Empty,
            auth: Auth::None,
            captures: Vec::new(),
            timeout_ms: None,
        },
    }
}

/// `GET url`.
pub fn get(url: impl Into<String>) -> Request {
    request("GET", url)
}

/// `PUT url`.
pub fn put(url: impl Into<String>) -> Request {
    request("PUT", url)
}

/// `POST url`.
pub fn post(url: impl Into<String>) -> Request {
    request("POST", url)
}

/// `PATCH url`.
pub fn patch(url: impl Into<String>) -> Request {
    request("PATCH", url)
}

/// `DELETE url`.
pub fn delete(url: impl Into<String>) -> Request {
    request("DELETE", url)
}

/// `HEAD url`.
pub fn head(url: impl Into<String>) -> Request {
    request("HEAD", url)
}

impl Request {
    /// Add a header. The host refuses `Host` and the headers that frame the
    /// message (`Content-Length`, `Transfer-Encoding`, hop-by-hop ones).
    pub fn header(mut self, name: &str, value: impl Into<Text>) -> Self {
        self.inner.headers.push(Header { name: name.to_owned(), value: value.into() });
        self
    }

    /// Add a header whose value is the secret behind `handle`
    /// (`X-Api-Key`, say).
    pub fn header_secret(self, name: &str, handle: &Handle) -> Self {
        self.header(name, Text::secret(handle))
    }

    /// Append a query pair (the host encodes it). Secrets belong here, not
    /// in the URL, whose query may hold plain values only.
    pub fn query(mut self, name: &str, value: impl Into<Text>) -> Self {
        self.inner.query.push((name.to_owned(), value.into()));
        self
    }

    /// HTTP basic authentication; either part may be a secret:
    /// `.basic_auth("admin", Text::secret(handle))`.
    pub fn basic_auth(mut self, username: impl Into<Text>, password: impl Into<Text>) -> Self {
        self.inner.auth = Auth::Basic(BasicAuth { username: username.into(), password: password.into() });
        self
    }

    /// `Authorization: Bearer <token>`; the token is usually a secret.
    pub fn bearer(mut self, token: impl Into<Text>) -> Self {
        self.inner.auth = Auth::Bearer(token.into());
        self
    }

    /// Have the host sign the request with AWS Signature Version 4.
    pub fn aws_sigv4(mut self, signing: AwsSigv4) -> Self {
        self.inner.auth = Auth::AwsSigv4(signing);
        self
    }

    /// A JSON body with no secrets in it.
    pub fn json(self, document: Value) -> Self {
        self.json_with_secrets(document, std::iter::empty::<(&str, &Handle)>())
    }

    /// A JSON body whose places named by JSON pointers (RFC 6901) the host
    /// sets to secrets, as JSON strings:
    ///
    /// ```
    /// # use rotator_plugin_sdk::http::{self, Body};
    /// let pending_password = "rotator-handle:pending/password".to_owned();
    /// let request = http::put("https://rabbit.internal:15672/api/users/app")
    ///     .json_with_secrets(serde_json::json!({"tags": "management"}), [("/password", &pending_password)]);
    /// let Body::Json(body) = &request.as_raw().body else { unreachable!() };
    /// assert_eq!(body.document, r#"{"password":null,"tags":"management"}"#);
    /// assert_eq!(body.secrets, [("/password".to_owned(), pending_password)]);
    /// ```
    ///
    /// A place missing from `document` gets a `null` placeholder (and empty
    /// objects on the way), so the document need not spell it out.
    pub fn json_with_secrets<'a>(
        mut self,
        mut document: Value,
        secrets: impl IntoIterator<Item = (&'a str, &'a Handle)>,
    ) -> Self {
        let secrets: Vec<(String, Handle)> = secrets
            .into_iter()
            .map(|(pointer, handle)| {
                placeholder(&mut document, pointer);
                (pointer.to_owned(), handle.clone())
            })
            .collect();
        self.inner.body = Body::Json(JsonBody { document: document.to_string(), secrets });
        self
    }

    /// A form body (`application/x-www-form-urlencoded`); values may be
    /// secrets.
    pub fn form<K: Into<String>, V: Into<Text>>(mut self, pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        self.inner.body = Body::Form(pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect());
        self
    }

    /// A raw body, sent as it is, with its `Content-Type`.
    pub fn bytes(mut self, content_type: &str, body: Vec<u8>) -> Self {
        self.inner.body = Body::Bytes(body);
        self.header("Content-Type", content_type)
    }

    /// Take the string or number at `json_pointer` in the response body
    /// straight into field `field` of the new secret (only during
    /// `create`): the response gives a handle for it, never the value.
    pub fn capture(mut self, field: &str, json_pointer: &str) -> Self {
        let source = CaptureSource::JsonPointer(json_pointer.to_owned());
        self.inner.captures.push(Capture { field: field.to_owned(), source });
        self
    }

    /// [`Self::capture`] for an XML answer: `path` names elements from the
    /// root, separated by `/`.
    pub fn capture_xml(mut self, field: &str, path: &str) -> Self {
        let source = CaptureSource::XmlPath(path.to_owned());
        self.inner.captures.push(Capture { field: field.to_owned(), source });
        self
    }

    /// Give up after `timeout` (whole milliseconds, at least 1; the host
    /// caps it by its own limit and by what is left of the step).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        let ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX).max(1);
        self.inner.timeout_ms = Some(ms);
        self
    }

    /// The request as the WIT interface takes it.
    pub fn as_raw(&self) -> &api::Request {
        &self.inner
    }

    /// The request as the WIT interface takes it, by value.
    pub fn into_raw(self) -> api::Request {
        self.inner
    }

    /// Send it through the host and wait for the response. Any status
    /// counts as a response; see [`Response::error_for_status`].
    pub fn send(self) -> Result<Response, HttpError> {
        api::send(&self.inner).map(Response::from)
    }
}

/// Make sure the place `pointer` names exists in `document`, creating
/// objects on the way and `null` at the end, so the host finds somewhere to
/// put the secret. Array indices and non-object parents are left to the
/// host to judge (it rejects a pointer that names nothing).
fn placeholder(document: &mut Value, pointer: &str) {
    let Some(rest) = pointer.strip_prefix('/') else { return };
    let mut at = document;
    for token in rest.split('/') {
        let key = token.replace("~1", "/").replace("~0", "~");
        at = match at {
            Value::Object(map) => map.entry(key).or_insert(Value::Null),
            Value::Array(items) => match key.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                Some(item) => item,
                None => return,
            },
            Value::Null => {
                *at = Value::Object(serde_json::Map::new());
                let Value::Object(map) = at else { unreachable!("just set") };
                map.entry(key).or_insert(Value::Null)
            }
            _ => return,
        };
    }
}

/// What came back: any status, with secrets scrubbed by the host.
#[derive(Debug, Clone)]
pub struct Response {
    inner: api::Response,
}

impl From<api::Response> for Response {
    fn from(inner: api::Response) -> Self {
        Self { inner }
    }
}

impl Response {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.inner.status
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.inner.status)
    }

    /// The first value of header `name` (names compare case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.inner.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body, up to the host's cap.
    pub fn body(&self) -> &[u8] {
        &self.inner.body
    }

    /// The body as JSON, parsed into `T`. An answer that does not parse
    /// will not parse on a retry either: `permanent`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, RotateError> {
        serde_json::from_slice(&self.inner.body).map_err(|e| {
            RotateError::Permanent(format!("the answer ({}) is not the JSON expected: {e}", self.status()))
        })
    }

    /// The handle of a field captured from this response.
    pub fn captured(&self, field: &str) -> Option<&Handle> {
        self.inner.captured.iter().find(|c| c.field == field).map(|c| &c.handle)
    }

    /// The response if its status is 2xx, else the error [`status_error`]
    /// makes of it. A 3xx is an error too: the host never follows
    /// redirects, so a plugin that wanted the resource did not get it.
    pub fn error_for_status(self) -> Result<Self, RotateError> {
        if self.is_success() {
            return Ok(self);
        }
        let mut what = match self.header("location") {
            Some(to) if (300..400).contains(&self.status()) => format!("redirected to {to}"),
            _ => String::new(),
        };
        if what.is_empty() {
            what = excerpt(&self.inner.body);
        }
        Err(status_error(self.status(), &what))
    }

    /// The raw WIT record.
    pub fn into_raw(self) -> api::Response {
        self.inner
    }
}

/// The start of a body for an error message, if it is text.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(BODY_EXCERPT * 4)]);
    let mut out: String = text.chars().filter(|c| !c.is_control()).take(BODY_EXCERPT).collect();
    if text.chars().count() > BODY_EXCERPT {
        out.push('…');
    }
    out
}

/// The [`RotateError`] for an HTTP error status: 429 (rate limited), 408
/// and 5xx are worth a retry (`transient`), every other status is
/// `permanent` (a retry sends the same request to the same answer). `what`
/// (the server's reason, say) is appended if not empty.
///
/// ```
/// # use rotator_plugin_sdk::{RotateError, http::status_error};
/// assert!(matches!(status_error(503, ""), RotateError::Transient(_)));
/// assert!(matches!(status_error(404, "no such user"), RotateError::Permanent(m) if m.ends_with("404: no such user")));
/// ```
pub fn status_error(status: u16, what: &str) -> RotateError {
    let message = if what.is_empty() {
        format!("the server answered {status}")
    } else {
        format!("the server answered {status}: {what}")
    };
    if status == 429 || status == 408 || status >= 500 {
        RotateError::Transient(message)
    } else {
        RotateError::Permanent(message)
    }
}

impl From<HttpError> for RotateError {
    /// Name resolution, connection and timeout failures may pass; a denied
    /// or malformed request, a TLS failure, an oversized or unusable answer
    /// will come back the same on a retry.
    fn from(e: HttpError) -> Self {
        match e {
            HttpError::Dns(m) => RotateError::Transient(format!("http: name not resolved: {m}")),
            HttpError::Connect(m) => RotateError::Transient(format!("http: cannot connect: {m}")),
            HttpError::Timeout(m) => RotateError::Transient(format!("http: timed out: {m}")),
            HttpError::Denied(m) => RotateError::Permanent(format!("http: denied: {m}")),
            HttpError::InvalidRequest(m) => RotateError::Permanent(format!("http: invalid request: {m}")),
            HttpError::Tls(m) => RotateError::Permanent(format!("http: TLS failed: {m}")),
            HttpError::TooLarge(m) => RotateError::Permanent(format!("http: answer too large: {m}")),
            HttpError::BadResponse(m) => RotateError::Permanent(format!("http: unusable answer: {m}")),
        }
    }
}

/// `url` if it is an `http(s)` origin (nothing after the authority but an
/// optional `/`), without the slash; `None` otherwise. A settings URL with a
/// path, query, fragment or user info would make requests go somewhere the
/// operator did not read, so plugins take origins only.
///
/// ```
/// # use rotator_plugin_sdk::http::origin;
/// assert_eq!(origin("https://api.example:8443/").as_deref(), Some("https://api.example:8443"));
/// assert_eq!(origin("https://api.example/v1"), None);
/// assert_eq!(origin("https://user@api.example"), None);
/// ```
pub fn origin(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"))?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty()
        || authority.contains(['/', '?', '#', '@', '\\'])
        || authority.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return None;
    }
    Some(url[..url.len() - (rest.len() - authority.len())].to_owned())
}

/// Percent-encode `segment` as one URL path segment: everything but RFC
/// 3986 unreserved characters is encoded, so `/`, `?`, `#`, `%` and `..`
/// tricks in a user name cannot change which resource is addressed
/// (`a/b` → `a%2Fb`, `/` → `%2F`, `..` → `%2E%2E`).
///
/// ```
/// # use rotator_plugin_sdk::http::path_segment;
/// assert_eq!(path_segment("app-user"), "app-user");
/// assert_eq!(path_segment("../admin"), "..%2Fadmin");
/// assert_eq!(path_segment(".."), "%2E%2E");
/// ```
pub fn path_segment(segment: &str) -> String {
    let dots_only = !segment.is_empty() && segment.bytes().all(|b| b == b'.');
    let mut out = String::with_capacity(segment.len() * 3);
    for b in segment.bytes() {
        let unreserved = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~') || (b == b'.' && !dots_only);
        if unreserved {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
