//! TEMPORARY stand-in for the grant check and the shared client, which the
//! `http` branch builds (`Grants::check_http`, `client::shared_client`,
//! `client::classify`). Deleted when that branch is merged; nothing here is
//! meant to last.

use std::error::Error as _;

use reqwest::Method;
use url::Url;

use super::HttpError;
use crate::plugin::grants::Grants;

/// What a granted request sends: exactly this URL and method.
pub struct HttpTarget {
    pub url: Url,
    pub method: Method,
    pub origin: String,
    pub path: String,
}

/// Why the grants refuse a request.
#[derive(Debug)]
pub struct HttpRefusal(pub String);

impl std::fmt::Display for HttpRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Grants {
    /// The request's target if an HTTP grant allows it.
    pub(crate) fn check_http(&self, method: &str, url: &str) -> Result<HttpTarget, HttpRefusal> {
        let method = match method {
            "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" => Method::from_bytes(method.as_bytes()).unwrap(),
            _ => return Err(HttpRefusal(format!("method `{method}` is not supported"))),
        };
        let url = Url::parse(url).map_err(|e| HttpRefusal(format!("not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || !url.username().is_empty() || url.fragment().is_some() {
            return Err(HttpRefusal("only http(s) URLs without user info or fragment".into()));
        }
        let origin = url.origin().ascii_serialization();
        let path = url.path().to_owned();
        let allowed = self.http.iter().any(|g| {
            g.origin == origin
                && (g.methods.is_empty() || g.methods.iter().any(|m| m == method.as_str()))
                && (g.paths.is_empty() || g.paths.iter().any(|p| path.starts_with(p.as_str())))
        });
        if !allowed {
            return Err(HttpRefusal(format!("{method} {origin}{path} is not granted")));
        }
        Ok(HttpTarget { url, method, origin, path })
    }
}

/// The client every run shares: no proxy, no redirects.
pub fn shared_client() -> reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            crate::vault::install_crypto_provider();
            reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("an HTTP client")
        })
        .clone()
}

/// What the plugin is told about a transport error (never the URL).
pub fn classify(e: &reqwest::Error) -> HttpError {
    let mut causes = Vec::new();
    let mut source = e.source();
    while let Some(s) = source {
        causes.push(s.to_string());
        source = s.source();
    }
    let why = causes.last().cloned().unwrap_or_else(|| "no detail".into());
    if e.is_timeout() {
        HttpError::Timeout(why)
    } else if causes.iter().any(|c| c.contains("dns error")) {
        HttpError::Dns(why)
    } else if causes.iter().any(|c| c.contains("certificate") || c.contains("tls")) {
        HttpError::Tls(why)
    } else {
        HttpError::Connect(why)
    }
}
