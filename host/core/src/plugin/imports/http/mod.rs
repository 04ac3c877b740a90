//! The `http` import: one request to a granted origin, performed, signed
//! and audited by the host, with secrets filled in from handles.
//!
//! (Scaffold: the types are the contract between the WIT adapter and this
//! module; the request itself is built in the next commit.)

use std::time::Duration;

use tokio::runtime::Handle;

use super::HostState;

mod client;
pub use client::{CONNECT_TIMEOUT, GuardedResolver, ResolveError, classify, screen, shared_client};

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

/// The HTTP client every plugin run shares, plus the runtime to drive it
/// from a blocking thread.
#[derive(Clone)]
pub struct HttpBridge {
    pub client: reqwest::Client,
    pub handle: Handle,
}

impl HttpBridge {
    /// The shared client on the current runtime.
    pub fn current() -> Self {
        static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
        let client = CLIENT.get_or_init(|| {
            reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("an HTTP client with no TLS roots to load")
        });
        Self { client: client.clone(), handle: Handle::current() }
    }
}

impl HostState {
    /// Send one request for the plugin.
    pub fn http_send(&mut self, _request: HttpRequest) -> Result<HttpResponse, HttpError> {
        Err(HttpError::Denied(format!("http is not granted to job `{}`", self.job_id)))
    }
}
