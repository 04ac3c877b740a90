//! Response wrapping: `X-Vault-Wrap-TTL` and `sys/wrapping/{wrap,unwrap,lookup}`.
//!
//! A request carrying `X-Vault-Wrap-TTL` (seconds or a duration string) has
//! its answer, if it has `data` or `auth`, stored under a new single-use
//! wrapping token; the caller gets the envelope with `data: null` and
//! `wrap_info {token, accessor, ttl, creation_time, creation_path}` (plus
//! `wrapped_accessor` when the answer held a token), as headers.json and
//! sys.json show. `sys/wrapping/wrap` wraps its own body and needs the
//! header. Unwrapping answers the stored body once; the wrapping token may
//! come in the body (`token`) or be the caller's own token, as Vault allows.
//! Wrapping tokens are not in the token store: they can do nothing but be
//! looked up and unwrapped, which is all Vault's `response-wrapping` policy
//! grants them. They expire after their TTL (checked when used).

use std::collections::BTreeMap;

use axum::http::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::response::{Envelope, Reply};
use super::util::{parse_duration, rfc3339};
use super::{Operation, Request, State, token};

/// Vault's answer for an unknown, used or expired wrapping token.
const INVALID: &str = "wrapping token is not valid or does not exist";

/// One wrapped answer.
struct Wrapped {
    body: Value,
    creation_time: OffsetDateTime,
    ttl: u64,
    creation_path: String,
}

impl Wrapped {
    fn live(&self, now: OffsetDateTime) -> bool {
        now < self.creation_time + time::Duration::seconds(self.ttl as i64)
    }
}

/// The wrapped answers, by wrapping token.
#[derive(Default)]
pub(crate) struct WrapStore {
    wrapped: BTreeMap<String, Wrapped>,
}

impl WrapStore {
    /// Store `body` (the whole answer) for `ttl` seconds; the `wrap_info`
    /// the caller gets instead.
    pub fn wrap(&mut self, body: Value, ttl: u64, creation_path: &str, now: OffsetDateTime) -> Value {
        self.wrapped.retain(|_, w| w.live(now));
        let token = token::random_token_id();
        let accessor = token::random_id(24);
        let mut info = json!({
            "token": token,
            "accessor": accessor,
            "ttl": ttl,
            "creation_time": rfc3339(now),
            "creation_path": creation_path,
        });
        if let Some(wrapped_accessor) = body["auth"]["accessor"].as_str() {
            info["wrapped_accessor"] = json!(wrapped_accessor);
        }
        let wrapped = Wrapped { body, creation_time: now, ttl, creation_path: creation_path.to_owned() };
        self.wrapped.insert(token, wrapped);
        info
    }

    /// Is `token` a live wrapping token?
    pub fn holds(&self, token: &str, now: OffsetDateTime) -> bool {
        self.wrapped.get(token).is_some_and(|w| w.live(now))
    }
}

/// The `X-Vault-Wrap-TTL` header's value in seconds; 0 or absent is no
/// wrapping.
pub(crate) fn parse_ttl(header: Option<&str>) -> Result<Option<u64>, Reply> {
    let Some(raw) = header.map(str::trim).filter(|h| !h.is_empty()) else {
        return Ok(None);
    };
    let value = raw.parse::<i64>().map_or_else(|_| Value::String(raw.to_owned()), Value::from);
    if value.as_i64().is_some_and(|n| n < 0) {
        return Err(Reply::bad_request("requested wrap ttl cannot be negative"));
    }
    let ttl = parse_duration(&value).map_err(|e| Reply::bad_request(format!("error parsing wrap TTL: {e}")))?;
    Ok(Some(ttl.as_secs()).filter(|s| *s > 0))
}

/// Does this answer get wrapped? Successes with data or an auth block.
pub(crate) fn wrappable(reply: &Reply) -> bool {
    matches!(reply, Reply::Envelope(StatusCode::OK, e) if !e.data.is_null() || e.auth.is_some())
}

/// The envelope sent in place of a wrapped answer.
pub(crate) fn wrapped_reply(wrap_info: Value) -> Reply {
    let mut envelope = Envelope::data(Value::Null);
    envelope.wrap_info = Some(Box::new(wrap_info));
    Reply::Envelope(StatusCode::OK, envelope)
}

/// `sys/wrapping/<rest>` for an authenticated caller; `None` for paths
/// that are not wrapping endpoints.
pub(crate) fn handle(state: &mut State, rest: &str, req: &Request) -> Option<Reply> {
    let reply = match (rest, req.op) {
        ("wrap", Operation::Write) => match req.wrap_ttl {
            Some(_) => Reply::ok(Value::Object(req.data.clone())),
            None => Reply::bad_request("endpoint requires response wrapping to be used"),
        },
        ("unwrap" | "lookup", Operation::Write) => {
            let named = req.data.get("token").and_then(Value::as_str).map(str::trim).unwrap_or("");
            let token = if named.is_empty() { req.client_token.as_str() } else { named };
            answer(state, rest, token, req.now)
        }
        ("wrap" | "unwrap" | "lookup", _) => Reply::unsupported_operation(),
        _ => return None,
    };
    Some(reply)
}

/// A request made with a wrapping token as the caller's token: it may only
/// unwrap or look up itself.
pub(crate) fn as_wrapping_token(
    state: &mut State,
    op: Operation,
    path: &str,
    token: &str,
    now: OffsetDateTime,
) -> Option<Reply> {
    if !state.wraps.holds(token, now) {
        return None;
    }
    Some(match (path, op) {
        ("sys/wrapping/unwrap", Operation::Write) => answer(state, "unwrap", token, now),
        ("sys/wrapping/lookup", Operation::Write) => answer(state, "lookup", token, now),
        _ => Reply::permission_denied(),
    })
}

/// Unwrap (once) or look up `token`.
fn answer(state: &mut State, what: &str, token: &str, now: OffsetDateTime) -> Reply {
    if !state.wraps.holds(token, now) {
        return Reply::bad_request(INVALID);
    }
    if what == "lookup" {
        let w = &state.wraps.wrapped[token];
        return Reply::ok(json!({
            "creation_path": w.creation_path,
            "creation_time": rfc3339(w.creation_time),
            "creation_ttl": w.ttl,
        }));
    }
    match state.wraps.wrapped.remove(token) {
        Some(w) => Reply::Plain(StatusCode::OK, w.body),
        None => Reply::bad_request(INVALID),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_ttls_parse_like_vaults() {
        assert_eq!(parse_ttl(None).ok(), Some(None));
        assert_eq!(parse_ttl(Some("60")).ok(), Some(Some(60)));
        assert_eq!(parse_ttl(Some("5m")).ok(), Some(Some(300)));
        assert_eq!(parse_ttl(Some("0")).ok(), Some(None));
        assert!(parse_ttl(Some("-5")).is_err());
        assert!(parse_ttl(Some("soon")).is_err());
    }

    #[test]
    fn wrapped_answers_expire_and_are_single_use() {
        let now = OffsetDateTime::now_utc();
        let mut store = WrapStore::default();
        let info = store.wrap(json!({"data": {"a": 1}, "auth": {"accessor": "acc"}}), 60, "sys/wrapping/wrap", now);
        let token = info["token"].as_str().unwrap().to_owned();
        assert_eq!(info["wrapped_accessor"], "acc");
        assert!(store.holds(&token, now));
        assert!(!store.holds(&token, now + time::Duration::seconds(61)));
        assert_eq!(store.wrapped.remove(&token).map(|w| w.body["data"]["a"].clone()), Some(json!(1)));
        assert!(!store.holds(&token, now));
    }
}
