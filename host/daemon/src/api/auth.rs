//! The API's bearer token: where it comes from and how it is checked.
//!
//! Only the token's SHA-256 digest is kept; a presented token is hashed and
//! the two digests compared in constant time, so neither the token's bytes
//! nor its length leak through timing. A token is never logged: `rotator
//! run` refuses to start without a configured one rather than invent one it
//! would have to print, and `rotator dev` prints the one it generates on
//! its banner, as `vault server -dev` prints its root token.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use super::{ApiError, ApiState};
use rotator_core::config::Config;

/// The environment variable read when `[daemon] api_token` is not set.
pub const API_TOKEN_ENV: &str = "ROTATOR_API_TOKEN";

/// Shorter tokens are refused: they could be guessed.
pub const MIN_TOKEN_LEN: usize = 16;

/// Why no usable API token could be had.
#[derive(Debug, thiserror::Error)]
pub enum ApiTokenError {
    /// `[daemon] api_token` names an unset variable or unreadable file.
    #[error("[daemon] api_token: {0}")]
    Unreadable(String),
    /// The token is too short to be safe.
    #[error(
        "the API token from {origin} is shorter than {MIN_TOKEN_LEN} characters; use a random one (e.g. `openssl rand -hex 32`)"
    )]
    TooShort { origin: String },
}

/// The API's token, kept as a digest.
#[derive(Clone)]
pub struct ApiToken {
    digest: [u8; 32],
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken([REDACTED])")
    }
}

impl ApiToken {
    /// Accept `token` if it is long enough; `origin` names where it came
    /// from in the error.
    pub fn new(token: &SecretString, origin: &str) -> Result<Self, ApiTokenError> {
        let value = token.expose_secret();
        if value.chars().count() < MIN_TOKEN_LEN {
            return Err(ApiTokenError::TooShort { origin: origin.to_owned() });
        }
        Ok(Self { digest: Sha256::digest(value.as_bytes()).into() })
    }

    /// A fresh random token (256 bits, hex) and its value, to show once.
    pub fn generate() -> (Self, SecretString) {
        let value = SecretString::from(hex::encode(rand::rng().random::<[u8; 32]>()));
        let token = Self::new(&value, "generation").expect("64 hex digits are long enough");
        (token, value)
    }

    /// The token `[daemon] api_token` names, else `$ROTATOR_API_TOKEN`;
    /// `None` if neither is set.
    pub fn from_config(config: &Config) -> Result<Option<Self>, ApiTokenError> {
        if let Some(r) = &config.daemon.api_token {
            let value = r.resolve(&config.base_dir).map_err(|e| ApiTokenError::Unreadable(e.to_string()))?;
            return Self::new(&value, "[daemon] api_token").map(Some);
        }
        match std::env::var(API_TOKEN_ENV) {
            Ok(value) => Self::new(&SecretString::from(value), API_TOKEN_ENV).map(Some),
            Err(_) => Ok(None),
        }
    }

    /// Is `presented` this token? Constant time in its content and length.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        constant_time_eq(&self.digest, &digest)
    }
}

/// Compare two digests without stopping at the first difference.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer(req: &Request) -> Option<&[u8]> {
    let value = req.headers().get(AUTHORIZATION)?.as_bytes();
    let (scheme, token) = value.split_at_checked(7)?;
    scheme.eq_ignore_ascii_case(b"bearer ").then_some(token.trim_ascii())
}

/// Middleware: let the request through only with the API token.
pub(super) async fn require_token(State(state): State<Arc<ApiState>>, req: Request, next: Next) -> Response {
    match bearer(&req) {
        Some(token) if state.options.token.matches(token) => next.run(req).await,
        Some(_) => {
            tracing::warn!(method = %req.method(), path = req.uri().path(), "API request with a wrong token refused");
            ApiError::unauthorized("the API token is not valid").into_response()
        }
        None => ApiError::unauthorized("this endpoint needs `Authorization: Bearer <API token>`").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(s: &str) -> ApiToken {
        ApiToken::new(&SecretString::from(s.to_owned()), "test").unwrap()
    }

    #[test]
    fn only_the_exact_token_matches() {
        let t = token("0123456789abcdef-token");
        assert!(t.matches(b"0123456789abcdef-token"));
        assert!(!t.matches(b"0123456789abcdef-toke"));
        assert!(!t.matches(b"0123456789abcdef-tokeN"));
        assert!(!t.matches(b""));
    }

    #[test]
    fn short_tokens_are_refused_and_generated_ones_are_distinct() {
        let err = ApiToken::new(&SecretString::from("short".to_owned()), "X").unwrap_err();
        assert!(err.to_string().contains("from X is shorter than 16"), "{err}");
        let (a, va) = ApiToken::generate();
        let (_, vb) = ApiToken::generate();
        assert_ne!(va.expose_secret(), vb.expose_secret());
        assert!(a.matches(va.expose_secret().as_bytes()));
        assert_eq!(format!("{a:?}"), "ApiToken([REDACTED])");
    }
}
