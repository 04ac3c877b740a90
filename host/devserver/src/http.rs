//! From HTTP request to engine and back: Vault's request pipeline.
//!
//! Vault has no fixed route table: mounts come and go, and its clients use a
//! `LIST` method. So every request lands in one fallback handler that does
//! what Vault's HTTP layer and router do, in the same order:
//!
//! 1. Only `/v1/...` exists.
//! 2. sys/health, sys/seal-status, sys/leader and sys/init are answered
//!    without a token (they have their own handlers in Vault too).
//! 3. The method becomes an [`Operation`]; `GET ?list=true` and `LIST` are a
//!    list (with a "/" appended to the path), PATCH must be a JSON merge
//!    patch, and the data is the JSON body or the query string.
//! 4. The token (`X-Vault-Token` or `Authorization: Bearer`) must exist and
//!    its policies allow the operation ([`access`]), or the answer is 403
//!    whatever the path; auth methods' login paths need no token.
//! 5. The longest mount prefix picks the engine; no mount is a 404
//!    ([`routing`]).
//! 6. With `X-Vault-Wrap-TTL`, an answer with data is wrapped ([`wrapping`]).
//!
//! `X-Vault-Namespace` resolves the path under that namespace, as the
//! headers contract says (the same as prefixing the path). The dev server
//! has only the root namespace, so anything under another finds no mount;
//! the unauthenticated sys/ endpoints ignore the header, as Vault's
//! dedicated handlers do.
//!
//! Before all that, a [`super::FaultRules`] may answer in Vault's place, and
//! every answer is counted ([`super::faults`]).
//!
//! Bodies are read up to Vault's default `max_request_size`
//! ([`MAX_REQUEST_SIZE`], 32 MiB). Past it, a write or patch is answered as
//! Vault answers it: 413 with `{"errors":["failed to parse JSON input: http:
//! request body too large"]}` (Vault wraps the body in Go's
//! `http.MaxBytesReader`, `parseJSONRequest` prefixes the reader's error, and
//! `AdjustErrorStatusCode` turns it into a 413). Other operations ignore
//! their body, as Vault's do. Unlike Go's server, which hangs up after an
//! oversized body, the rest of the body is read and dropped (up to
//! [`DRAIN_LIMIT`]) so the client's keep-alive connection stays usable;
//! beyond that the connection is closed rather than read for ever.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use futures_util::StreamExt;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::leases::run_revocations;
use super::response::{Reply, multierror};
use super::{Handled, Operation, Request, Shared, access, routing, sys, wrapping};

/// Vault's default `max_request_size`: 32 MiB (`DefaultMaxRequestSize`).
pub const MAX_REQUEST_SIZE: u64 = 32 * 1024 * 1024;

/// An oversized body is read and dropped up to this many bytes in all, to
/// keep the connection; a larger one (declared or sent) closes it instead.
pub const DRAIN_LIMIT: u64 = 2 * MAX_REQUEST_SIZE;

/// Vault's error for a body over `max_request_size`.
const TOO_LARGE: &str = "failed to parse JSON input: http: request body too large";

/// A request body as the listener read it.
enum ReadBody {
    Within(Bytes),
    /// Over [`MAX_REQUEST_SIZE`]; `drained` when all of it was read, so the
    /// connection may carry the next request.
    TooLarge {
        drained: bool,
    },
    /// The client's stream broke off.
    Broken,
}

/// The axum app: one fallback handler for every path and method.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

async fn handle(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = read_body(&headers, body).await;
    let request_id = uuid::Uuid::new_v4().to_string();
    shared.faults.log(|| {
        let decoded = percent_decode(uri.path());
        super::SeenRequest {
            method: method.as_str().to_owned(),
            path: decoded.strip_prefix("/v1/").map_or_else(|| decoded.clone(), str::to_owned),
            raw_path: uri.path().to_owned(),
            query: uri.query().map(str::to_owned),
        }
    });
    let logical_path = uri.path().strip_prefix("/v1/").unwrap_or(uri.path()).to_owned();
    let disturbance = shared.faults.decide(method.as_str(), &logical_path);
    let injected = match disturbance {
        Some(d) => {
            if let Some(delay) = d.delay {
                tokio::time::sleep(delay).await;
            }
            d.status.map(|status| Reply::injected_fault(status, &logical_path))
        }
        None => None,
    };
    let was_injected = injected.is_some();
    let (reply, mount_type) = match injected {
        Some(reply) => (reply, ""),
        None => dispatch(&shared, &method, &uri, &headers, &body).await,
    };
    let status = reply.status_code().as_u16();
    shared.faults.record(method.as_str(), &logical_path, status, was_injected);
    // Paths and statuses only: bodies and tokens never reach the logs.
    tracing::debug!(method = %method, path = uri.path(), status, injected = was_injected, "vault dev server request");
    let mut response = reply.into_response(&request_id, mount_type);
    if let ReadBody::TooLarge { drained: false } = body {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Read the body up to [`MAX_REQUEST_SIZE`]; drop (but read) the rest up to
/// [`DRAIN_LIMIT`].
async fn read_body(headers: &HeaderMap, body: Body) -> ReadBody {
    let declared = header_text(headers, header::CONTENT_LENGTH.as_str()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > DRAIN_LIMIT) {
        return ReadBody::TooLarge { drained: false };
    }
    let mut stream = body.into_data_stream();
    let (mut kept, mut seen) = (Vec::new(), 0u64);
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else { return ReadBody::Broken };
        seen = seen.saturating_add(chunk.len() as u64);
        if seen > DRAIN_LIMIT {
            return ReadBody::TooLarge { drained: false };
        }
        if seen <= MAX_REQUEST_SIZE {
            kept.extend_from_slice(&chunk);
        } else if !kept.is_empty() {
            kept = Vec::new();
        }
    }
    if seen > MAX_REQUEST_SIZE { ReadBody::TooLarge { drained: true } } else { ReadBody::Within(kept.into()) }
}

async fn dispatch(
    shared: &Arc<Shared>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &ReadBody,
) -> (Reply, &'static str) {
    let raw_path = percent_decode(uri.path());
    let Some(path) = raw_path.strip_prefix("/v1/").filter(|p| !p.is_empty()) else {
        return (Reply::not_found(), "");
    };
    let query = parse_query(uri.query().unwrap_or(""));

    if let Some(reply) = sys::unauthenticated(&shared.info, method, path, &query) {
        return (reply, "system");
    }

    let path = match namespace(headers) {
        Some(ns) => format!("{ns}{path}"),
        None => path.to_owned(),
    };
    let wrap_ttl = match wrapping::parse_ttl(header_text(headers, "x-vault-wrap-ttl")) {
        Ok(ttl) => ttl,
        Err(reply) => return (reply, ""),
    };
    let (op, path, data) = match logical_request(method, &path, query, headers, body) {
        Ok(parts) => parts,
        Err(reply) => return (reply, ""),
    };
    let creation_path = path.clone();
    let client_token = request_token(headers);
    let now = OffsetDateTime::now_utc();
    // The lock is held for this block only: never across an await.
    let (handled, mount_type, exhausted) = {
        let mut state = shared.lock();
        if let Some(token) = &client_token
            && let Some(reply) = wrapping::as_wrapping_token(&mut state, op, &path, token, now)
        {
            return (reply, "system");
        }
        let (client_token, grant) = if access::is_login(&state, op, &path) {
            (String::new(), access::Grant { accessor: String::new(), policies: Vec::new(), exhausted: false })
        } else {
            let Some(token) = client_token else {
                return (Reply::permission_denied(), "");
            };
            match access::authorize(&mut state, &token, op, &path, now) {
                Ok(grant) => (token, grant),
                Err(reply) => return (reply, ""),
            }
        };
        let request = Request {
            op,
            path,
            data,
            client_token,
            token_accessor: grant.accessor,
            policies: grant.policies,
            now,
            wrap_ttl,
        };
        let (handled, mount_type) = routing::route(shared, &mut state, &request);
        let exhausted = if grant.exhausted { state.revoke_token_tree(&request.client_token) } else { Vec::new() };
        (handled, mount_type, exhausted)
    };
    if !exhausted.is_empty() {
        tokio::spawn(run_revocations(Arc::clone(shared), exhausted, false));
    }
    let reply = match handled {
        Handled::Now(reply) => reply,
        // Spawned so a client hanging up cannot cancel a revocation halfway.
        Handled::Later(work) => tokio::spawn(work).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "vault dev server: async handler failed");
            Reply::Errors(StatusCode::INTERNAL_SERVER_ERROR, vec![multierror("internal error")])
        }),
    };
    if let Some(ttl) = wrap_ttl
        && wrapping::wrappable(&reply)
    {
        let body = reply.into_body(&uuid::Uuid::new_v4().to_string(), mount_type).unwrap_or_default();
        let info = shared.lock().wraps.wrap(body, ttl, &creation_path, now);
        return (wrapping::wrapped_reply(info), mount_type);
    }
    (reply, mount_type)
}

/// A request header as text, if present and readable.
fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `X-Vault-Namespace` as a path prefix ("ns1/ns2/"); `None` for the root
/// namespace (no header, empty, or `root`).
fn namespace(headers: &HeaderMap) -> Option<String> {
    let ns = header_text(headers, "x-vault-namespace")?.trim().trim_matches('/');
    (!ns.is_empty() && ns != "root").then(|| format!("{ns}/"))
}

/// Vault's method-to-operation rules and request data parsing.
fn logical_request(
    method: &Method,
    path: &str,
    mut query: Map<String, Value>,
    headers: &HeaderMap,
    body: &ReadBody,
) -> Result<(Operation, String, Map<String, Value>), Reply> {
    let mut path = path.to_owned();
    let op = match method.as_str() {
        "GET" => match query.remove("list") {
            Some(Value::String(flag)) => match flag.as_str() {
                "1" | "t" | "T" | "true" | "TRUE" | "True" => Operation::List,
                "0" | "f" | "F" | "false" | "FALSE" | "False" => Operation::Read,
                _ => return Err(Reply::status(StatusCode::BAD_REQUEST)),
            },
            _ => Operation::Read,
        },
        "POST" | "PUT" => Operation::Write,
        "PATCH" => {
            check_merge_patch(headers)?;
            Operation::Patch
        }
        "DELETE" => Operation::Delete,
        "LIST" => Operation::List,
        "HEAD" => Operation::Head,
        _ => return Err(Reply::status(StatusCode::METHOD_NOT_ALLOWED)),
    };
    if op == Operation::List && !path.ends_with('/') {
        path.push('/');
    }
    let data = match op {
        Operation::Write | Operation::Patch => match body {
            ReadBody::Within(bytes) => parse_body(bytes)?,
            ReadBody::TooLarge { .. } => {
                return Err(Reply::Errors(StatusCode::PAYLOAD_TOO_LARGE, vec![TOO_LARGE.to_owned()]));
            }
            // OpenBao's wording when the body cannot be read.
            ReadBody::Broken => return Err(Reply::bad_request("error reading data")),
        },
        _ => query,
    };
    Ok((op, path, data))
}

/// Vault refuses a PATCH that is not `application/merge-patch+json`.
fn check_merge_patch(headers: &HeaderMap) -> Result<(), Reply> {
    let value = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media_type = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if media_type.is_empty() {
        return Err(Reply::bad_request("mime: no media type"));
    }
    if media_type != "application/merge-patch+json" {
        return Err(Reply::Errors(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            vec![format!("PATCH requires Content-Type of application/merge-patch+json, provided {media_type}")],
        ));
    }
    Ok(())
}

/// A JSON object body; an empty body is no data.
fn parse_body(body: &[u8]) -> Result<Map<String, Value>, Reply> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(Value::Null) => Ok(Map::new()),
        _ => Err(Reply::bad_request("error parsing JSON")),
    }
}

/// `X-Vault-Token`, else `Authorization: Bearer <token>`.
fn request_token(headers: &HeaderMap) -> Option<String> {
    let from_header =
        headers.get("x-vault-token").and_then(|v| v.to_str().ok()).map(str::trim).filter(|t| !t.is_empty());
    let from_bearer = || {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
    };
    from_header.or_else(from_bearer).map(str::to_owned)
}

/// The query string as Vault's `parseQuery` gives it: one string per name.
fn parse_query(query: &str) -> Map<String, Value> {
    let mut out = Map::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = percent_decode(&name.replace('+', " "));
        let value = percent_decode(&value.replace('+', " "));
        // Go's url.Values.Get returns the first value.
        out.entry(name).or_insert(Value::String(value));
    }
    out
}

/// Decode %XX escapes (invalid escapes stay as they are).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_handles_edges() {
        assert_eq!(percent_decode("/v1/secret/data/a%20b"), "/v1/secret/data/a b");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%41"), "A");
    }

    #[test]
    fn query_takes_the_first_value() {
        let q = parse_query("version=2&version=3&list=true");
        assert_eq!(q["version"], "2");
        assert_eq!(q["list"], "true");
    }
}
