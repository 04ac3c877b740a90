//! The `http` import: one request to a granted origin, performed, signed
//! and audited by the host, with secrets filled in from handles.
//!
//! [`HostState::http_send`] runs a request through fixed stages, each its
//! own module: the grants decide what may be sent ([`Grants::check_http`]:
//! exactly that URL and method leave), [`outgoing`] checks the rest and
//! fills in handles (and [`crate::aws::sigv4`] signs), the shared client sends it
//! under the tighter of the plugin's timeout, the host's cap
//! ([`MAX_TIMEOUT`]) and what is left of the step, [`incoming`] reads the
//! answer under its size cap and takes captures (in `create` only) into
//! the pending secret, and [`scrub`] replaces every value the run holds a
//! handle for before the plugin sees the answer. Every call, allowed or
//! not, is recorded as a [`HostCall`] (origin and path, never the query)
//! and every failure is logged once naming job, plugin, method and host,
//! never a value.
//!
//! [`Grants::check_http`]: crate::plugin::Grants::check_http

mod client;
mod incoming;
mod outgoing;
mod scrub;

use std::time::{Duration, Instant};

use secrecy::SecretString;
use tokio::runtime::Handle;

use self::incoming::Raw;
use self::outgoing::Outgoing;
use self::scrub::Scrubber;
use super::{CallOutcome, HostCall, HostState, NOT_GRANTED, READ_ONLY};
use crate::plugin::Step;
use crate::plugin::grants::{HttpRefusal, HttpTarget, RefusalKind};
use crate::vault::path::shown;

/// The longest any request may take, whatever the plugin asks.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(30);

pub use self::client::{CONNECT_TIMEOUT, GuardedResolver, ResolveError, classify, client, screen};

/// Text that is either the plugin's own or a secret filled in by the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Text {
    Plain(String),
    /// A handle ([`crate::plugin::handles`]).
    Secret(String),
}

/// What the request carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Empty,
    Bytes(Vec<u8>),
    /// A JSON document and, per JSON pointer, the handle whose value goes there.
    Json {
        document: String,
        secrets: Vec<(String, String)>,
    },
    Form(Vec<(String, Text)>),
}

/// How the host authenticates the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    None,
    Basic {
        username: Text,
        password: Text,
    },
    Bearer(Text),
    AwsSigV4 {
        access_key_id: Text,
        /// Always a handle.
        secret_access_key: String,
        session_token: Option<Text>,
        region: String,
        service: String,
    },
}

/// Where a captured value is in a response body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureSource {
    JsonPointer(String),
    XmlPath(String),
}

/// Take a value from the response into the new secret's `field`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    pub field: String,
    pub source: CaptureSource,
}

/// One request, as the plugin asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    pub url: String,
    pub query: Vec<(String, Text)>,
    pub headers: Vec<(String, Text)>,
    pub body: Body,
    pub auth: Auth,
    pub captures: Vec<Capture>,
    pub timeout: Option<Duration>,
}

/// What came back, scrubbed of every value the run holds a handle for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// `(field, handle)` of each captured value.
    pub captured: Vec<(String, String)>,
}

/// Why a request failed, as the plugin is told (see the WIT for which are
/// worth a retry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    Denied(String),
    InvalidRequest(String),
    Dns(String),
    Connect(String),
    Tls(String),
    Timeout(String),
    TooLarge(String),
    BadResponse(String),
}

/// A plugin run's HTTP client, plus the runtime to drive it from a
/// blocking thread.
#[derive(Clone)]
pub struct HttpBridge {
    pub client: reqwest::Client,
    pub handle: Handle,
}

impl HttpBridge {
    /// A new client on the current runtime, for one plugin run.
    pub fn current() -> Self {
        Self { client: client(), handle: Handle::current() }
    }
}

impl HttpError {
    /// The case's name as the WIT spells it (audit details, log lines).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Denied(_) => "denied",
            Self::InvalidRequest(_) => "invalid-request",
            Self::Dns(_) => "dns",
            Self::Connect(_) => "connect",
            Self::Tls(_) => "tls",
            Self::Timeout(_) => "timeout",
            Self::TooLarge(_) => "too-large",
            Self::BadResponse(_) => "bad-response",
        }
    }

    /// The same case with its message passed through `f`.
    fn map_message(self, f: impl FnOnce(&str) -> String) -> Self {
        match self {
            Self::Denied(m) => Self::Denied(f(&m)),
            Self::InvalidRequest(m) => Self::InvalidRequest(f(&m)),
            Self::Dns(m) => Self::Dns(f(&m)),
            Self::Connect(m) => Self::Connect(f(&m)),
            Self::Tls(m) => Self::Tls(f(&m)),
            Self::Timeout(m) => Self::Timeout(f(&m)),
            Self::TooLarge(m) => Self::TooLarge(f(&m)),
            Self::BadResponse(m) => Self::BadResponse(f(&m)),
        }
    }
}

/// The method as the audit names it (a static string, lower case).
fn operation(method: &str) -> &'static str {
    match method.to_ascii_uppercase().as_str() {
        "GET" => "get",
        "HEAD" => "head",
        "POST" => "post",
        "PUT" => "put",
        "PATCH" => "patch",
        "DELETE" => "delete",
        _ => "other",
    }
}

/// What a call is recorded as.
struct Call {
    /// `<origin><path>`.
    path: String,
    operation: &'static str,
    origin: String,
}

impl HostState {
    /// Send one request for the plugin (see the module's documentation).
    pub fn http_send(&mut self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let started = Instant::now();
        let target = self.http_target(&request)?;
        let call =
            Call { path: target.shown(), operation: operation(target.operation()), origin: target.origin.clone() };
        let result = self.http_exchange(&request, &target);
        self.http_record(&call, &result, started);
        result
    }

    /// What the grants allow this request to send ([`Grants::check_http`]:
    /// grants, canonical URL, forbidden addresses, read-only runs), or the
    /// refusal, recorded and logged. A run without a client (the job has
    /// no HTTP grant) refuses everything.
    fn http_target(&mut self, request: &HttpRequest) -> Result<HttpTarget, HttpError> {
        let checked = self.grants.check_http(&request.method, &request.url);
        if self.http.is_none() {
            let (op, target) = match &checked {
                Ok(t) => (operation(t.operation()), t.shown()),
                Err(r) => (operation(r.method), r.target.clone()),
            };
            let message = format!("no http grant: job `{}` may not send HTTP requests", self.job_id);
            return Err(self.http_deny(op, &target, NOT_GRANTED, HttpError::Denied(message)));
        }
        checked.map_err(|refusal| {
            let reason = match refusal.kind {
                RefusalKind::NotGranted => NOT_GRANTED,
                RefusalKind::ReadOnly => READ_ONLY,
                other => other.reason(),
            };
            let HttpRefusal { method, target, .. } = &refusal;
            let (op, target) = (operation(method), target.clone());
            self.http_deny(op, &target, reason, HttpError::from(refusal))
        })
    }

    fn http_deny(&mut self, operation: &'static str, path: &str, reason: &str, error: HttpError) -> HttpError {
        self.calls.push(HostCall {
            function: "http.send",
            path: path.to_owned(),
            operation,
            detail: Some("denied".into()),
            outcome: CallOutcome::Denied,
        });
        tracing::warn!(job = %self.job_id, plugin = %self.plugin, operation, path, "plugin call denied: {reason}");
        error
    }

    /// Build, send, read, capture, scrub.
    fn http_exchange(&mut self, request: &HttpRequest, target: &HttpTarget) -> Result<HttpResponse, HttpError> {
        outgoing::check_shape(request)?;
        self.check_captures(request)?;
        let bridge = self.http.clone().ok_or_else(|| HttpError::Denied("no http grant".into()))?;
        let Outgoing { request: built, derived } = outgoing::build(&bridge.client, &self.handles, request, target)?;
        let limit = request.timeout.unwrap_or(MAX_TIMEOUT).min(MAX_TIMEOUT).min(self.time_for_call());
        if limit.is_zero() {
            return Err(HttpError::Timeout("no time is left in this step; nothing was sent".into()));
        }
        let client = bridge.client.clone();
        let exchange = async move {
            let response = client.execute(built).await.map_err(|e| classify(&e))?;
            incoming::read(response).await
        };
        let raw = super::perform(&bridge.handle, async move {
            tokio::time::timeout(limit, exchange).await.unwrap_or_else(|_| {
                Err(HttpError::Timeout(format!("no complete answer within {} ms", limit.as_millis())))
            })
        });
        // Errors from here on may quote the peer, the library or the body:
        // scrub them like the answer (values never belong in an error).
        let scrub_error = |host: &Self, e: HttpError| {
            let scrubber = Scrubber::new(host.handles.hidden(), &derived);
            e.map_message(|m| scrubber.text(m))
        };
        let raw = raw.map_err(|e| scrub_error(self, e))?;
        let captured = self.capture(request, &raw).map_err(|e| scrub_error(self, e))?;
        let scrubber = Scrubber::new(self.handles.hidden(), &derived);
        Ok(HttpResponse {
            status: raw.status,
            // Names too: a header name is a token, and so may a value be.
            headers: raw.headers.iter().map(|(n, v)| (scrubber.text(n), scrubber.text(v))).collect(),
            body: scrubber.bytes(&raw.body),
            captured,
        })
    }

    /// How long a call may take: what is left of the step, less a tenth of
    /// it (at most a second) kept for the plugin to handle the outcome. A
    /// call that took all of it would end the step at the deadline, and
    /// the plugin could never report the timeout.
    fn time_for_call(&self) -> Duration {
        let left = self.deadline.saturating_duration_since(Instant::now());
        left - (left / 10).min(Duration::from_secs(1))
    }

    /// Captures are for `create` only, into distinct fields not captured
    /// before in this step. Checked before anything is sent.
    fn check_captures(&self, request: &HttpRequest) -> Result<(), HttpError> {
        if request.captures.is_empty() {
            return Ok(());
        }
        if self.step != Step::Create {
            let why = format!("captures are allowed only in `create`, not in `{}`", self.step);
            return Err(HttpError::InvalidRequest(why));
        }
        for (i, c) in request.captures.iter().enumerate() {
            let twice = request.captures[..i].iter().any(|o| o.field == c.field)
                || self.captured.iter().any(|(f, _)| *f == c.field);
            if c.field.is_empty() || twice {
                let why = format!("capture field `{}` is empty or named twice", shown(&c.field));
                return Err(HttpError::InvalidRequest(why));
            }
        }
        Ok(())
    }

    /// Take every capture from `raw` (all or none) into the pending secret;
    /// the plugin gets a handle for each.
    fn capture(&mut self, request: &HttpRequest, raw: &Raw) -> Result<Vec<(String, String)>, HttpError> {
        let mut values = Vec::with_capacity(request.captures.len());
        for c in &request.captures {
            let value = match &c.source {
                CaptureSource::JsonPointer(p) => incoming::json_pointer(&raw.body, p)?,
                CaptureSource::XmlPath(p) => incoming::xml_path(&raw.body, p)?,
            };
            if value.is_empty() {
                return Err(HttpError::BadResponse(format!("capture `{}` found an empty value", shown(&c.field))));
            }
            values.push((c.field.clone(), value));
        }
        Ok(values
            .into_iter()
            .map(|(field, value)| {
                self.captured.push((field.clone(), SecretString::from(value.clone())));
                let handle = self.handles.add("pending", &field, SecretString::from(value));
                (field, handle)
            })
            .collect())
    }

    /// Record the call; log a failure (an error, or a 4xx/5xx answer) once.
    fn http_record(&mut self, call: &Call, result: &Result<HttpResponse, HttpError>, started: Instant) {
        if let Err(denied @ HttpError::Denied(_)) = result {
            // Past the grant check only the resolver denies: the name
            // resolved to a forbidden address. Recorded as the denial it is.
            let reason = RefusalKind::ForbiddenAddress.reason();
            self.http_deny(call.operation, &call.path, reason, denied.clone());
            return;
        }
        let ms = started.elapsed().as_millis();
        let (detail, outcome) = match result {
            Ok(r) if r.status >= 400 => (format!("{} in {ms} ms", r.status), CallOutcome::Failed(Some(r.status))),
            Ok(r) => (format!("{} in {ms} ms", r.status), CallOutcome::Ok),
            Err(e) => (e.kind().to_owned(), CallOutcome::Failed(None)),
        };
        if outcome != CallOutcome::Ok {
            tracing::warn!(
                job = %self.job_id,
                plugin = %self.plugin,
                method = call.operation,
                host = %call.origin,
                "plugin http call failed: {detail}"
            );
        }
        self.calls.push(HostCall {
            function: "http.send",
            path: call.path.clone(),
            operation: call.operation,
            detail: Some(detail),
            outcome,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_recorded_in_lower_case() {
        assert_eq!(operation("get"), "get");
        assert_eq!(operation("DELETE"), "delete");
        assert_eq!(operation("BREW"), "other");
    }
}
