//! HTTP grants and the one check every plugin request passes: which
//! requests may leave, and to which origin.
//!
//! A grant is an origin (`https://rabbit.internal:15672`: scheme, host and
//! port, nothing else) with optional path prefixes and methods. Grants are
//! written by operators in several spellings (`HTTP://Rabbit.Internal`,
//! `http://rabbit.internal:80/`), so both sides are compared in one
//! canonical form: lowercase scheme, the host as the `url` crate serialises
//! it (lowercase, IDNA to punycode, IPv4 in dotted decimal whatever form was
//! written, IPv6 compressed in brackets) and the port always explicit.
//!
//! [`Grants::check_http`] reads the plugin's text once and returns the
//! [`HttpTarget`] the sender sends: its URL, method, origin and path are
//! exactly what was checked (the sender only appends query pairs, which
//! never change origin or path). What is refused, and why:
//!
//! - anything but an absolute `http://` or `https://` URL: a relative or
//!   scheme-less URL would let something else (a `Host` header, the
//!   lesson of Spin's CVE-2024-32980) decide where it goes;
//! - user info (`http://granted@evil/`), a fragment (`http://evil#@granted/`),
//!   a `\` anywhere (URL parsers read it as `/`), white space or control
//!   characters anywhere (URL parsers silently drop some of them), and a
//!   host holding anything but letters, digits, `-._~:[]` or non-ASCII text;
//! - a path that is not canonical ([`UrlPath`]: dot segments in any
//!   spelling, `//`, `\`, …), or outside the grant's prefixes on whole
//!   segments;
//! - a method not granted, and in a read-only run (a dry run's `plan`)
//!   any method but `GET` and `HEAD`;
//! - an address literal that is link-local, cloud metadata, unspecified,
//!   multicast or broadcast ([`forbidden_address`]), unless a grant's origin
//!   is that very origin. (Origins compare canonically, so a literal URL
//!   only ever matches a grant that names the same address; the separate
//!   check says why plainly. `http://0xa9fea9fe/` is 169.254.169.254 to the
//!   `url` crate and is judged as that.) A name is judged when it resolves,
//!   by the shared client's resolver (`imports::http::client`).
//!
//! Refusals name the method and origin+path, never the query: it may carry
//! values.

use std::fmt;

use url::{Host, Url};

use super::address::forbidden_address;
use super::url_path::{UrlPath, UrlPathError};
use super::{GrantError, Grants};
use crate::vault::path::shown;

/// The longest URL a plugin may give, in bytes.
pub const MAX_URL_BYTES: usize = 8192;

/// The methods a grant may name and a plugin may send.
pub const HTTP_METHODS: [&str; 6] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];

/// The methods a read-only run (a dry run's `plan`) may send.
const READ_ONLY_METHODS: [&str; 2] = ["GET", "HEAD"];

/// The canonical (uppercase) name of an HTTP method written in any case.
pub fn http_method(name: &str) -> Option<&'static str> {
    HTTP_METHODS.into_iter().find(|m| m.eq_ignore_ascii_case(name))
}

/// One HTTP grant: an origin (`https://host:port`), optional path prefixes
/// and methods (empty: any).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HttpGrant {
    pub origin: String,
    pub paths: Vec<String>,
    pub methods: Vec<String>,
}

/// A grant in the form requests are matched against.
struct Compiled {
    origin: String,
    paths: Vec<UrlPath>,
    methods: Vec<&'static str>,
}

impl HttpGrant {
    /// Check the origin, path prefixes and methods.
    pub fn validate(&self) -> Result<(), GrantError> {
        self.compile().map(drop)
    }

    /// The same grant in canonical form (origin with explicit port, paths
    /// with uppercase escapes, methods uppercase, duplicates dropped), or
    /// why it is invalid.
    pub fn canonical(&self) -> Result<HttpGrant, GrantError> {
        let c = self.compile()?;
        Ok(HttpGrant {
            origin: c.origin,
            paths: c.paths.iter().map(|p| p.as_str().to_owned()).collect(),
            methods: c.methods.iter().map(|m| (*m).to_owned()).collect(),
        })
    }

    fn compile(&self) -> Result<Compiled, GrantError> {
        let origin =
            canonical_origin(&self.origin).map_err(|why| GrantError::Origin { origin: shown(&self.origin), why })?;
        let mut paths = Vec::new();
        for raw in &self.paths {
            let path = UrlPath::parse(raw).map_err(|why| GrantError::HttpPath {
                origin: origin.clone(),
                path: shown(raw),
                why,
            })?;
            if !paths.contains(&path) {
                paths.push(path);
            }
        }
        let mut methods = Vec::new();
        for raw in &self.methods {
            let method = http_method(raw)
                .ok_or_else(|| GrantError::HttpMethod { origin: origin.clone(), method: shown(raw) })?;
            if !methods.contains(&method) {
                methods.push(method);
            }
        }
        Ok(Compiled { origin, paths, methods })
    }
}

impl Compiled {
    fn allows(&self, method: &str, origin: &str, path: &UrlPath) -> bool {
        self.origin == origin
            && (self.methods.is_empty() || self.methods.contains(&method))
            && (self.paths.is_empty() || self.paths.iter().any(|p| p.covers(path)))
    }
}

/// Why a URL (or a grant's origin) was refused. Never quotes the query.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("the URL is {0} bytes long; at most {MAX_URL_BYTES} are accepted")]
    TooLong(usize),
    #[error("the URL holds {0}")]
    Character(&'static str),
    #[error("the URL has a fragment (`#`), which is never sent")]
    Fragment,
    /// Relative, scheme-less, or another scheme.
    #[error("not an absolute http:// or https:// URL")]
    NotAbsolute,
    #[error("the URL holds user info (`user@`); credentials go in the request's auth")]
    UserInfo,
    #[error("the URL names no host")]
    NoHost,
    #[error("the host holds {0:?}")]
    HostCharacter(char),
    #[error("the URL does not parse: {0}")]
    Parse(url::ParseError),
    #[error("port 0 is not a port a server listens on")]
    PortZero,
    #[error(transparent)]
    Path(UrlPathError),
    /// A grant's origin with a path, query or fragment.
    #[error("an origin is scheme, host and optional port only (no path or query)")]
    NotBare,
    /// The `url` crate would send another path than the one checked.
    #[error("the URL's path would change when sent")]
    NotCanonical,
}

/// An absolute http(s) URL split as written, after the checks that apply
/// to the whole text.
struct RawUrl<'a> {
    path: &'a str,
    query: Option<&'a str>,
}

fn split_raw(raw: &str) -> Result<RawUrl<'_>, UrlError> {
    if raw.len() > MAX_URL_BYTES {
        return Err(UrlError::TooLong(raw.len()));
    }
    for c in raw.chars() {
        match c {
            c if c.is_whitespace() || c.is_control() => {
                return Err(UrlError::Character("white space or a control character"));
            }
            '\\' => return Err(UrlError::Character("a `\\`, which URL parsers read as `/`")),
            '#' => return Err(UrlError::Fragment),
            _ => {}
        }
    }
    let (scheme, rest) = raw.split_once("://").ok_or(UrlError::NotAbsolute)?;
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return Err(UrlError::NotAbsolute);
    }
    let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    if authority.contains('@') {
        return Err(UrlError::UserInfo);
    }
    if authority.is_empty() {
        return Err(UrlError::NoHost);
    }
    let odd = |c: &char| c.is_ascii() && !(c.is_ascii_alphanumeric() || "-._~:[]".contains(*c));
    if let Some(c) = authority.chars().find(odd) {
        return Err(UrlError::HostCharacter(c));
    }
    let (path, query) = match tail.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (tail, None),
    };
    Ok(RawUrl { path, query })
}

/// `scheme://host:port` of a parsed URL, the port always written.
pub(super) fn origin_of(url: &Url) -> Result<String, UrlError> {
    let host = match url.host() {
        Some(Host::Domain(d)) if !d.is_empty() => d.to_owned(),
        Some(Host::Ipv4(ip)) => ip.to_string(),
        Some(Host::Ipv6(ip)) => format!("[{ip}]"),
        _ => return Err(UrlError::NoHost),
    };
    match url.port_or_known_default() {
        Some(0) => Err(UrlError::PortZero),
        Some(port) => Ok(format!("{}://{host}:{port}", url.scheme())),
        None => Err(UrlError::NotAbsolute),
    }
}

/// The canonical form of a grant's origin.
pub fn canonical_origin(raw: &str) -> Result<String, UrlError> {
    let parts = split_raw(raw)?;
    if !matches!(parts.path, "" | "/") || parts.query.is_some() {
        return Err(UrlError::NotBare);
    }
    origin_of(&Url::parse(raw).map_err(UrlError::Parse)?)
}

/// Parse a request URL once: the URL to send, its origin, its path.
fn parse_url(raw: &str) -> Result<(Url, String, UrlPath), UrlError> {
    let parts = split_raw(raw)?;
    let path = UrlPath::parse(if parts.path.is_empty() { "/" } else { parts.path }).map_err(UrlError::Path)?;
    let mut url = Url::parse(raw).map_err(UrlError::Parse)?;
    // Already refused as text; the parsed URL is what is sent, so check it too.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlError::UserInfo);
    }
    if url.fragment().is_some() {
        return Err(UrlError::Fragment);
    }
    let origin = origin_of(&url)?;
    url.set_path(path.as_str());
    if url.path() != path.as_str() {
        return Err(UrlError::NotCanonical);
    }
    Ok((url, origin, path))
}

/// A request the grants allow, exactly as it is sent. The sender may append
/// query pairs to `url` (which changes neither origin nor path) and nothing
/// else.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpTarget {
    /// The URL to send.
    pub url: Url,
    pub method: reqwest::Method,
    /// `scheme://host:port`, canonical, as in the grants.
    pub origin: String,
    /// The path as sent (canonical: escapes in uppercase hex).
    pub path: String,
}

impl HttpTarget {
    /// The method as a static name, for call records.
    pub fn operation(&self) -> &'static str {
        http_method(self.method.as_str()).unwrap_or("?")
    }

    /// `origin` + `path`: what records, logs and audit show (never the query).
    pub fn shown(&self) -> String {
        format!("{}{}", self.origin, self.path)
    }
}

/// Debug shows method, origin and path only: the query (after the sender
/// appends to it) may hold secrets.
impl fmt::Debug for HttpTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpTarget")
            .field("method", &self.method.as_str())
            .field("origin", &self.origin)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Why a request was refused before anything was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// The method or URL is malformed or ambiguous (`invalid-request`).
    Invalid,
    /// No grant covers it (`denied`).
    NotGranted,
    /// It could change state and the run is read-only (`denied`).
    ReadOnly,
    /// A forbidden address literal no grant names (`denied`).
    ForbiddenAddress,
}

impl RefusalKind {
    /// Why, in the words of the log line.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Invalid => "the request is malformed or ambiguous",
            Self::NotGranted => "not granted",
            Self::ReadOnly => "the run is read-only",
            Self::ForbiddenAddress => "a forbidden address",
        }
    }
}

/// A refused request: why, and what to record. The message names the
/// method and origin+path (or, for a URL that does not parse, a bounded
/// excerpt of the text before any `?`), never the query.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HttpRefusal {
    pub kind: RefusalKind,
    /// The method's canonical name, or `?` if it is not one of
    /// [`HTTP_METHODS`].
    pub method: &'static str,
    /// What to record as the call's target.
    pub target: String,
    pub message: String,
}

impl Grants {
    /// Check one request, as the plugin wrote it, against the HTTP grants;
    /// the target to send, or why not (see the module documentation).
    /// Grants that do not validate grant nothing.
    pub fn check_http(&self, method: &str, url: &str) -> Result<HttpTarget, HttpRefusal> {
        let before_query = excerpt(url);
        let refuse = |kind, method, target: String, message: String| HttpRefusal { kind, method, target, message };
        let Some(method) = http_method(method) else {
            let message = format!("method `{}` is not one of {}", shown(method), HTTP_METHODS.join(", "));
            return Err(refuse(RefusalKind::Invalid, "?", before_query, message));
        };
        let (url, origin, path) = parse_url(url).map_err(|why| {
            let message = format!("{method} `{before_query}` refused: {why}");
            refuse(RefusalKind::Invalid, method, before_query.clone(), message)
        })?;
        // Canonical ASCII without control characters, bounded by
        // MAX_URL_BYTES: recorded whole; messages quote an excerpt.
        let target = format!("{origin}{path}");
        let quoted = shown(&target);
        let grants: Vec<Compiled> = self.http.iter().filter_map(|g| g.compile().ok()).collect();
        if let Some(why) = literal_ip(&url).and_then(forbidden_address)
            && !grants.iter().any(|g| g.origin == origin)
        {
            let message =
                format!("{method} `{quoted}` refused: the host is {why}, reachable only through a grant that names it");
            return Err(refuse(RefusalKind::ForbiddenAddress, method, target, message));
        }
        if self.read_only && !READ_ONLY_METHODS.contains(&method) {
            let message = format!("{method} `{quoted}` refused: a read-only run (a dry run) sends only GET and HEAD");
            return Err(refuse(RefusalKind::ReadOnly, method, target, message));
        }
        if !grants.iter().any(|g| g.allows(method, &origin, &path)) {
            let message = format!("{method} `{quoted}` is not granted");
            return Err(refuse(RefusalKind::NotGranted, method, target, message));
        }
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a standard method");
        Ok(HttpTarget { url, method, origin, path: path.as_str().to_owned() })
    }
}

/// What a refusal may quote of a URL that did not parse: the text before
/// any query or fragment, with whatever precedes an `@` in each
/// `/`-separated piece masked (where user info would be, however the URL
/// is malformed; query, fragment and user info may all carry values), as
/// a bounded, escaped excerpt.
fn excerpt(raw: &str) -> String {
    let text = raw.split(['?', '#']).next().unwrap_or_default();
    let masked: Vec<String> = text
        .split('/')
        .map(|piece| match piece.rsplit_once('@') {
            Some((_, after)) => format!("…@{after}"),
            None => piece.to_owned(),
        })
        .collect();
    shown(&masked.join("/"))
}

/// The URL's host, if it is an address literal.
fn literal_ip(url: &Url) -> Option<std::net::IpAddr> {
    match url.host()? {
        Host::Ipv4(ip) => Some(ip.into()),
        Host::Ipv6(ip) => Some(ip.into()),
        Host::Domain(_) => None,
    }
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
