//! The live dashboard: one HTML page, its script, its stylesheet and its
//! tab icon, served at `GET /`, `GET /assets/app.js`, `GET /assets/style.css`
//! and `GET /assets/icon.png`.
//!
//! The files are embedded in the binary (`include_str!`), so the dashboard
//! needs no build step, no files on disk and nothing from the network. They
//! are public routes because they hold no data: the page asks for the API
//! token (or takes it from the URL fragment `#token=…`, which browsers never
//! send to a server) and every data call it makes goes to the token-guarded
//! routes with `Authorization: Bearer`. The live feed is read from
//! `GET /events` with `fetch()` for the same reason: `EventSource` cannot
//! send that header.
//!
//! Every answer carries a strict `Content-Security-Policy`: scripts, styles
//! and connections only from this origin, no inline script, no frames. The
//! page draws its charts as SVG in the DOM, so it needs no images either.

use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// The page: the skeleton the script fills in.
pub const INDEX_HTML: &str = include_str!("index.html");
/// The script: token handling, data calls, the feed reader, rendering.
/// Kept in three files by subject (each well under the size a reader takes
/// in) and served as one, so the page loads a single script and the parts
/// share one scope without globals.
pub const APP_JS: &str = concat!(
    "'use strict';\n\n(() => {\n",
    include_str!("app.js"),
    "\n",
    include_str!("jobs.js"),
    "\n",
    include_str!("feed.js"),
    "\n  init();\n})();\n"
);
/// The stylesheet.
pub const STYLE_CSS: &str = include_str!("style.css");
/// The tab icon, 32×32 (browsers ask for one; without it they log a 404).
pub const ICON_PNG: &[u8] = include_bytes!("icon.png");

/// The policy every dashboard answer carries. `default-src 'self'` covers
/// scripts, styles and `fetch()`; the rest turns off what the page never
/// uses (plugins, `<base>`, being framed, form posts elsewhere).
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// An embedded file as an answer, with the dashboard's security headers.
fn asset(content_type: &'static str, body: &'static [u8]) -> Response {
    let headers: [(HeaderName, HeaderValue); 5] = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY)),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        // The token lives in the fragment, which is never sent; this makes
        // sure no other part of the address leaves the page either.
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        // The files change with the binary; always ask again.
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    (headers, body).into_response()
}

pub(super) async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML.as_bytes())
}

pub(super) async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS.as_bytes())
}

pub(super) async fn style_css() -> Response {
    asset("text/css; charset=utf-8", STYLE_CSS.as_bytes())
}

pub(super) async fn icon_png() -> Response {
    asset("image/png", ICON_PNG)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_its_own_assets_and_nothing_from_elsewhere() {
        assert!(INDEX_HTML.contains(r#"src="/assets/app.js""#));
        assert!(INDEX_HTML.contains(r#"href="/assets/style.css""#));
        assert!(INDEX_HTML.contains(r#"href="/assets/icon.png""#));
        assert_eq!(&ICON_PNG[..8], b"\x89PNG\r\n\x1a\n");
        for (name, text) in [("index.html", INDEX_HTML), ("app.js", APP_JS), ("style.css", STYLE_CSS)] {
            assert!(!text.contains("http://") && !text.contains("https://"), "{name} names an external URL");
            // Inline handlers and inline scripts would be refused by the policy.
            assert!(!text.contains(" onclick=") && !text.contains("<script>"), "{name} has inline script");
        }
    }
}
