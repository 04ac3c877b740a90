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
//! 4. The token (`X-Vault-Token` or `Authorization: Bearer`) must exist, or
//!    the answer is 403 whatever the path.
//! 5. The longest mount prefix picks the engine; no mount is a 404.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::mounts::Engine;
use super::response::Reply;
use super::{Operation, Request, Shared, State, sys, token};

/// The axum app: one fallback handler for every path and method.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

async fn handle(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let (reply, mount_type) = dispatch(&shared, &method, &uri, &headers, &body);
    let status = reply.status_code().as_u16();
    // Paths and statuses only: bodies and tokens never reach the logs.
    tracing::debug!(method = %method, path = uri.path(), status, "vault dev server request");
    reply.into_response(&request_id, mount_type)
}

fn dispatch(shared: &Shared, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> (Reply, &'static str) {
    let raw_path = percent_decode(uri.path());
    let Some(path) = raw_path.strip_prefix("/v1/").filter(|p| !p.is_empty()) else {
        return (Reply::not_found(), "");
    };
    let query = parse_query(uri.query().unwrap_or(""));

    if let Some(reply) = sys::unauthenticated(&shared.info, method, path, &query) {
        return (reply, "system");
    }

    let (op, path, data) = match logical_request(method, path, query, headers, body) {
        Ok(parts) => parts,
        Err(reply) => return (reply, ""),
    };

    let Some(client_token) = request_token(headers) else {
        return (Reply::permission_denied(), "");
    };
    let mut state = shared.lock();
    let Some(token_accessor) = state.tokens.get(&client_token).map(|t| t.accessor.clone()) else {
        return (Reply::permission_denied(), "");
    };
    let request = Request { op, path, data, client_token, token_accessor, now: OffsetDateTime::now_utc() };
    route(&mut state, &request)
}

/// Send the request to the engine mounted at the longest matching prefix.
fn route(state: &mut State, req: &Request) -> (Reply, &'static str) {
    if let Some(rest) = req.path.strip_prefix("sys/") {
        return (sys::handle(state, rest, req), "system");
    }
    if let Some(rest) = req.path.strip_prefix("auth/token/") {
        return (token::handle(&mut state.tokens, rest, req), "token");
    }
    let Some(mount) = state.mounts.matching(&req.path).map(str::to_owned) else {
        return (Reply::no_route(&req.path), "");
    };
    let rest = &req.path[mount.len()..];
    let Some(entry) = state.mounts.get_mut(&mount) else {
        return (Reply::no_route(&req.path), "");
    };
    let default_lease = entry.effective_default_lease_ttl();
    let mount_type = entry.mount_type();
    let reply = match &mut entry.engine {
        Engine::KvV2(kv) => kv.handle(rest, req),
        Engine::KvV1(kv) => kv.handle(rest, req, Some(default_lease)),
        Engine::Cubbyhole(per_token) => {
            per_token.entry(req.token_accessor.clone()).or_default().handle(rest, req, None)
        }
        Engine::System | Engine::Token => Reply::unsupported_path(),
        Engine::Identity | Engine::Unimplemented => {
            tracing::warn!(mount = %mount, kind = entry.type_name.as_str(), "the dev server does not implement this engine");
            Reply::unsupported_path()
        }
    };
    (reply, mount_type)
}

/// Vault's method-to-operation rules and request data parsing.
fn logical_request(
    method: &Method,
    path: &str,
    mut query: Map<String, Value>,
    headers: &HeaderMap,
    body: &[u8],
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
        Operation::Write | Operation::Patch => parse_body(body)?,
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
