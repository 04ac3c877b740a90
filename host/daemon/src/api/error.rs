//! API errors and the extractors that produce them.
//!
//! Every failure is answered as `{"error": "…"}` with a status saying whose
//! fault it was: 400 for a bad request, 401 for a missing or wrong token,
//! 404 when there is nothing there, 409 when a check-and-set lost, 502 when
//! Vault or a rotation target failed, 500 when rotator itself did. Messages
//! come from typed errors that carry paths and Vault's own error strings,
//! never secret values; request bodies are never echoed.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use rotator_core::plugin::Failure;
use rotator_core::rotation::RotationError;
use rotator_core::store::StoreError;
use rotator_core::vault::VaultError;

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = self.status.as_u16(), error = %self.message, "API request failed");
        }
        let mut resp = (self.status, Json(json!({ "error": self.message }))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// The status a Vault failure is answered with.
fn vault_status(e: &VaultError) -> StatusCode {
    match e {
        VaultError::Status { status: 404, .. } => StatusCode::NOT_FOUND,
        VaultError::Status { status: 400, .. }
        | VaultError::Config(_)
        | VaultError::Path(_)
        | VaultError::NotKv { .. } => StatusCode::BAD_REQUEST,
        VaultError::CasMismatch { .. } => StatusCode::CONFLICT,
        VaultError::Status { .. } | VaultError::Unavailable { .. } | VaultError::Protocol { .. } => {
            StatusCode::BAD_GATEWAY
        }
    }
}

impl From<VaultError> for ApiError {
    fn from(e: VaultError) -> Self {
        Self::new(vault_status(&e), e.to_string())
    }
}

impl From<RotationError> for ApiError {
    fn from(e: RotationError) -> Self {
        let status = match &e {
            RotationError::Step { source, .. } => match source.failure {
                Failure::InvalidConfig(_) => StatusCode::BAD_REQUEST,
                // The plugin reported that its target (or Vault) failed.
                Failure::Transient(_) | Failure::Permanent(_) => StatusCode::BAD_GATEWAY,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
            RotationError::Store { source, .. } => match source.as_ref() {
                StoreError::Vault { source, .. } => vault_status(source),
                // The secret is deleted, scheduled for deletion, not JSON, …
                StoreError::Refused { .. } => StatusCode::CONFLICT,
                _ => StatusCode::BAD_GATEWAY,
            },
            RotationError::Conflict { .. } => StatusCode::CONFLICT,
            RotationError::State(e) if e.is_conflict() || e.is_fenced() => StatusCode::CONFLICT,
            // Accepted: the new value is current, `finish` waits for consumers.
            RotationError::AwaitingAdoption { .. } => StatusCode::ACCEPTED,
            RotationError::State(_) | RotationError::RolledBack { .. } => StatusCode::BAD_GATEWAY,
            RotationError::Lost { .. } | RotationError::Interrupted { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, e.to_string())
    }
}

impl From<rotator_core::builtin::LegacyError> for ApiError {
    fn from(e: rotator_core::builtin::LegacyError) -> Self {
        Self::bad_request(e.to_string())
    }
}

/// A JSON request body; a malformed one is a 400 in this API's shape.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Json::<T>::from_request(req, state)
            .await
            .map(|Json(v)| Self(v))
            .map_err(|e: JsonRejection| ApiError::bad_request(format!("invalid JSON body: {}", e.body_text())))
    }
}

/// Query parameters; unknown or malformed ones are a 400.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| Self(v))
            .map_err(|e: QueryRejection| ApiError::bad_request(e.body_text()))
    }
}

/// The captured path parameter of a route, decoded; a URL whose escapes
/// would change the path is refused ([`super::params::raw_escapes`]).
pub struct PathParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        // Before decoding: `%2F` would otherwise become a segment separator.
        super::params::raw_escapes(parts.uri.path())?;
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| Self(v))
            .map_err(|e: PathRejection| ApiError::bad_request(e.body_text()))
    }
}

/// Deserialize part of a body that was read as a [`Value`]. Fields that
/// may hold secret values are typed `Value` in the target, so serde's
/// messages (which quote the offending value) only ever quote non-secrets.
pub fn from_body<T: DeserializeOwned>(body: Value) -> Result<T, ApiError> {
    serde_json::from_value(body).map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))
}
