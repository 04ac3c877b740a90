//! What goes back on the wire: Vault's response envelope, its error bodies
//! and its headers.
//!
//! Handlers return a [`Reply`] and never touch HTTP; the router turns it into
//! a response here, adding the request id and the mount type. Keeping every
//! body shape in one place is what keeps the dev server's answers identical
//! across engines: a success with a body is the envelope
//! (`request_id, lease_id, renewable, lease_duration, data, wrap_info,
//! warnings, auth, mount_type`), a success without one is 204, and an error
//! is `{"errors": [...]}` (see `shared/contracts/vault/errors.json`). Every
//! answer carries `Content-Type: application/json` and
//! `Cache-Control: no-store`, as Vault's do.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Map, Value, json};

/// Vault core wraps raw errors (permission denied, unsupported path) with
/// go-multierror, so their text is the multierror list format.
pub(crate) fn multierror(message: &str) -> String {
    multierror_list(&[message.to_owned()])
}

/// go-multierror's list format for several errors.
pub(crate) fn multierror_list(messages: &[String]) -> String {
    match messages {
        [one] => format!("1 error occurred:\n\t* {one}\n\n"),
        many => {
            let points: Vec<String> = many.iter().map(|m| format!("* {m}")).collect();
            format!("{} errors occurred:\n\t{}\n\n", many.len(), points.join("\n\t"))
        }
    }
}

/// The lease fields of an envelope.
pub(crate) struct LeaseInfo {
    pub id: String,
    pub renewable: bool,
}

/// The body of a successful logical response.
pub(crate) struct Envelope {
    /// `null` or an object.
    pub data: Value,
    pub warnings: Vec<String>,
    pub auth: Option<Value>,
    /// Seconds; KV v1 reads report the advisory TTL here.
    pub lease_duration: u64,
    /// Set for leased secrets and lease renewals (boxed: most answers have
    /// none, and `Reply` stays small).
    pub lease: Option<Box<LeaseInfo>>,
    /// Vault copies `data`'s keys to the top level for a fixed list of sys/
    /// routes (sys/mounts, sys/auth, ...); see the contract README.
    pub inject_top_level: bool,
    /// Set on the answer that replaces a wrapped one (boxed, as `lease`).
    pub wrap_info: Option<Box<Value>>,
}

impl Envelope {
    pub fn data(data: Value) -> Self {
        Self {
            data,
            warnings: Vec::new(),
            auth: None,
            lease_duration: 0,
            lease: None,
            inject_top_level: false,
            wrap_info: None,
        }
    }

    fn into_json(self, request_id: &str, mount_type: &str) -> Value {
        let mut body = Map::new();
        body.insert("request_id".into(), json!(request_id));
        let (lease_id, renewable) = self.lease.as_deref().map_or(("", false), |l| (l.id.as_str(), l.renewable));
        body.insert("lease_id".into(), json!(lease_id));
        body.insert("renewable".into(), json!(renewable));
        body.insert("lease_duration".into(), json!(self.lease_duration));
        body.insert("wrap_info".into(), self.wrap_info.map_or(Value::Null, |info| *info));
        body.insert("warnings".into(), if self.warnings.is_empty() { Value::Null } else { json!(self.warnings) });
        body.insert("auth".into(), self.auth.unwrap_or(Value::Null));
        body.insert("mount_type".into(), json!(mount_type));
        if self.inject_top_level
            && let Value::Object(data) = &self.data
        {
            for (key, value) in data {
                // On a clash Go's decoder keeps the envelope's field,
                // which Vault writes last.
                body.entry(key.clone()).or_insert_with(|| value.clone());
            }
        }
        body.insert("data".into(), self.data);
        Value::Object(body)
    }
}

/// A handler's answer, before it becomes HTTP.
pub(crate) enum Reply {
    /// 204, empty body.
    NoContent,
    /// The envelope with a status: 200 normally, 404 for a deleted KV version.
    Envelope(StatusCode, Envelope),
    /// A body that is not an envelope (sys/health, sys/seal-status).
    Plain(StatusCode, Value),
    /// A status and no body (HEAD).
    Head(StatusCode),
    /// `{"errors": [...]}`.
    Errors(StatusCode, Vec<String>),
}

impl Reply {
    /// 200 with `data`.
    pub fn ok(data: Value) -> Self {
        Self::Envelope(StatusCode::OK, Envelope::data(data))
    }

    /// 200 with `data` also copied to the top level (sys/mounts and friends).
    pub fn ok_injected(data: Value) -> Self {
        let mut envelope = Envelope::data(data);
        envelope.inject_top_level = true;
        Self::Envelope(StatusCode::OK, envelope)
    }

    /// 204, or 200 with a null `data` if there are warnings to deliver:
    /// Vault turns a bodiless success with warnings into a 200.
    pub fn done(warnings: Vec<String>) -> Self {
        if warnings.is_empty() {
            Self::NoContent
        } else {
            let mut envelope = Envelope::data(Value::Null);
            envelope.warnings = warnings;
            Self::Envelope(StatusCode::OK, envelope)
        }
    }

    /// A LIST answer; no keys is a 404 with an empty errors array.
    pub fn list(keys: Vec<String>) -> Self {
        if keys.is_empty() { Self::not_found() } else { Self::ok(json!({ "keys": keys })) }
    }

    /// 404 `{"errors":[]}`: unknown key, empty list.
    pub fn not_found() -> Self {
        Self::Errors(StatusCode::NOT_FOUND, Vec::new())
    }

    /// 400 with one message (Vault's `logical.ErrorResponse`).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::Errors(StatusCode::BAD_REQUEST, vec![message.into()])
    }

    /// 403 as OpenBao/Vault core words it.
    pub fn permission_denied() -> Self {
        Self::Errors(StatusCode::FORBIDDEN, vec![multierror("permission denied")])
    }

    /// 404 for a path inside a mount that the engine does not serve.
    pub fn unsupported_path() -> Self {
        Self::Errors(StatusCode::NOT_FOUND, vec![multierror("unsupported path")])
    }

    /// 405 for a known path that does not support the operation.
    pub fn unsupported_operation() -> Self {
        Self::Errors(StatusCode::METHOD_NOT_ALLOWED, vec![multierror("unsupported operation")])
    }

    /// 404 for a path under no mount at all.
    pub fn no_route(path: &str) -> Self {
        Self::Errors(
            StatusCode::NOT_FOUND,
            vec![format!("no handler for route {}. route entry not found.", go_quote(path))],
        )
    }

    /// A bare status with `{"errors":[]}` (method not allowed, bad query).
    pub fn status(status: StatusCode) -> Self {
        Self::Errors(status, Vec::new())
    }

    /// An injected fault, with the body Vault sends for that status:
    /// "Vault is sealed" for 503, the rate-limit quota message for 429
    /// (errors.json), a core error for the rest.
    pub fn injected_fault(status: u16, path: &str) -> Self {
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let message = match code.as_u16() {
            503 => "Vault is sealed".to_owned(),
            429 => format!("request path {}: rate limit quota exceeded", go_quote(path)),
            500 => multierror("internal error"),
            _ => multierror(&code.canonical_reason().unwrap_or("injected fault").to_lowercase()),
        };
        Self::Errors(code, vec![message])
    }

    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::NoContent => StatusCode::NO_CONTENT,
            Self::Envelope(status, _) | Self::Plain(status, _) | Self::Head(status) | Self::Errors(status, _) => {
                *status
            }
        }
    }

    /// The JSON body, with the request id and the mount type of the engine
    /// that answered; `None` for answers without one.
    pub fn into_body(self, request_id: &str, mount_type: &str) -> Option<Value> {
        match self {
            Self::NoContent | Self::Head(_) => None,
            Self::Plain(_, body) => Some(body),
            Self::Errors(_, errors) => Some(json!({ "errors": errors })),
            Self::Envelope(_, envelope) => Some(envelope.into_json(request_id, mount_type)),
        }
    }

    /// The HTTP response, with the request id and the mount type of the
    /// engine that answered.
    pub fn into_response(self, request_id: &str, mount_type: &str) -> Response {
        let status = self.status_code();
        let body = self.into_body(request_id, mount_type);
        let bytes = match body {
            // Go's json.Encoder ends each document with a newline.
            Some(body) => {
                let mut bytes = serde_json::to_vec(&body).unwrap_or_default();
                bytes.push(b'\n');
                bytes
            }
            None => Vec::new(),
        };
        let mut response = Response::new(Body::from(bytes));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// Go's `%q` for the ASCII paths Vault quotes in messages.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
