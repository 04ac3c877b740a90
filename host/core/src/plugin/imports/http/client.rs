//! The HTTP client every plugin request shares, and where it may connect.
//!
//! [`crate::plugin::Grants::check_http`] decides which requests may leave
//! and to which origin; this module makes sure the connection goes where the
//! check looked, and nowhere else:
//!
//! - no proxy (an environment `HTTP_PROXY` would otherwise carry every
//!   request, and its credentials, through a host no grant names);
//! - redirects are never followed: a 3xx reaches the plugin as it is, and
//!   following it is a new request, checked again;
//! - names resolve through [`GuardedResolver`]: tokio's system lookup, then
//!   every address is judged by [`forbidden_address`], and if ANY is
//!   link-local, cloud metadata, unspecified, multicast or broadcast the
//!   request fails before a connection is tried. The connection uses only
//!   the addresses this resolver returned, so there is no second lookup for
//!   a rebinding DNS server to answer differently. Address literals never
//!   reach a resolver (hyper connects to them directly); the grant check
//!   judged those.
//! - rustls with the platform's roots, on the process-wide ring provider
//!   the Vault client installs too ([`crate::vault::install_crypto_provider`]);
//!   a 10 s connect timeout and no overall one (the sender sets one per
//!   request).
//!
//! [`classify`] maps a reqwest error to what the plugin is told. A forbidden
//! address is `denied` (the grants do not let this request reach that
//! address; a retry cannot help), any other resolution failure is `dns`.

use std::error::Error as StdError;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::HttpError;
use crate::plugin::grants::{HttpRefusal, RefusalKind, forbidden_address};

/// How long a TCP connection may take to open.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the guarded resolver gave no addresses. Found again in a reqwest
/// error's source chain by [`classify`].
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The system lookup failed.
    #[error("`{host}` did not resolve: {source}")]
    Lookup {
        host: String,
        #[source]
        source: std::io::Error,
    },
    /// The lookup succeeded with nothing in it.
    #[error("`{host}` resolved to no address")]
    NoAddress { host: String },
    /// One of the addresses may not be connected to.
    #[error("`{host}` resolves to {address}, {why}; such an address is reachable only through a grant that names it")]
    Forbidden { host: String, address: IpAddr, why: &'static str },
}

/// Keep `addresses` only if none of them is forbidden.
pub fn screen(host: &str, addresses: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, ResolveError> {
    if addresses.is_empty() {
        return Err(ResolveError::NoAddress { host: host.to_owned() });
    }
    for a in &addresses {
        if let Some(why) = forbidden_address(a.ip()) {
            return Err(ResolveError::Forbidden { host: host.to_owned(), address: a.ip(), why });
        }
    }
    Ok(addresses)
}

/// A resolver that refuses names with a forbidden address among theirs.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    lookup: Lookup,
}

#[derive(Debug, Clone)]
enum Lookup {
    /// tokio's `lookup_host` (the system resolver, on a blocking thread).
    System,
    /// Every name resolves to these addresses: for tests of the screening
    /// through a real client, without a DNS server.
    #[cfg(test)]
    Fixed(Vec<IpAddr>),
}

impl GuardedResolver {
    /// The system resolver, guarded.
    pub fn system() -> Self {
        Self { lookup: Lookup::System }
    }

    /// Resolve and screen `host`.
    pub async fn resolve_host(&self, host: &str) -> Result<Vec<SocketAddr>, ResolveError> {
        let found = match &self.lookup {
            Lookup::System => tokio::net::lookup_host((host, 0))
                .await
                .map_err(|source| ResolveError::Lookup { host: host.to_owned(), source })?
                .collect(),
            #[cfg(test)]
            Lookup::Fixed(ips) => ips.iter().map(|ip| SocketAddr::new(*ip, 0)).collect(),
        };
        screen(host, found)
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let this = self.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addresses = this.resolve_host(&host).await?;
            Ok(Box::new(addresses.into_iter()) as Addrs)
        })
    }
}

/// The client every plugin run shares (one connection pool), built once.
pub fn shared_client() -> reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| build_client(GuardedResolver::system())).clone()
}

/// A client with the rules of the module documentation. Without any
/// system trust roots (a bare container) the platform verifier cannot be
/// built; the client is then built with no roots at all, so plain `http`
/// still works and every `https` request fails as a TLS error the plugin
/// can report, rather than the daemon failing.
fn build_client(resolver: GuardedResolver) -> reqwest::Client {
    crate::vault::install_crypto_provider();
    let builder = || {
        reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(resolver.clone()))
            .connect_timeout(CONNECT_TIMEOUT)
    };
    builder().build().unwrap_or_else(|e| {
        tracing::error!("plugin HTTP client: no TLS trust roots ({}); https requests will fail", causes(&e));
        builder().tls_certs_only([]).build().expect("a client without trust roots needs nothing from the system")
    })
}

/// What the plugin is told about a failed request.
pub fn classify(e: &reqwest::Error) -> HttpError {
    let detail = causes(e);
    let mut resolve = None;
    let mut tls = false;
    let mut source: Option<&(dyn StdError + 'static)> = e.source();
    while let Some(err) = source {
        if let Some(r) = err.downcast_ref::<ResolveError>() {
            resolve = Some(r);
        }
        tls |= err.is::<rustls::Error>();
        source = next_cause(err);
    }
    match resolve {
        Some(forbidden @ ResolveError::Forbidden { .. }) => HttpError::Denied(forbidden.to_string()),
        Some(_) => HttpError::Dns(detail),
        None if e.is_timeout() => HttpError::Timeout(detail),
        None if tls => HttpError::Tls(detail),
        None if e.is_dns() => HttpError::Dns(detail),
        // A connection refused, reset or broken mid-answer: worth a retry.
        None => HttpError::Connect(detail),
    }
}

/// The cause after `err`. `io::Error::source` skips the error it wraps
/// (it returns that error's own source), which is where rustls puts its
/// error; so look inside it.
fn next_cause<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a (dyn StdError + 'static)> {
    match err.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
        Some(inner) => Some(inner),
        None => err.source(),
    }
}

/// The causes of `e`, joined, without reqwest's own text: that names the
/// URL, whose query may hold a secret the host filled in.
fn causes(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = e.source();
    while let Some(err) = source {
        let text = err.to_string();
        // An io::Error shows the error it wraps, which comes next: once.
        if !parts.last().is_some_and(|last| last.ends_with(&text)) {
            parts.push(text);
        }
        source = next_cause(err);
    }
    if parts.is_empty() {
        parts.push(if e.is_timeout() { "timed out" } else { "the request failed" }.to_owned());
    }
    parts.join(": ")
}

/// A refused request as the plugin is told: malformed is `invalid-request`,
/// everything else `denied`.
impl From<HttpRefusal> for HttpError {
    fn from(r: HttpRefusal) -> Self {
        match r.kind {
            RefusalKind::Invalid => HttpError::InvalidRequest(r.message),
            RefusalKind::NotGranted | RefusalKind::ReadOnly | RefusalKind::ForbiddenAddress => {
                HttpError::Denied(r.message)
            }
        }
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
