//! One error type for every handler: an HTTP status, a stable machine-readable code, and a
//! message a person can act on. Body: `{"error": {"code": "...", "message": "..."}}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use vouch_core::ErrorCode;
use vouch_exec::ExecError;
use vouch_store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// A finer stable name within `code` (e.g. a `TeeError::code()`), sent as `error.reason`.
    pub reason: Option<&'static str>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            reason: None,
        }
    }

    pub fn with_reason(mut self, reason: &'static str) -> Self {
        self.reason = Some(reason);
        self
    }

    pub fn status(&self) -> StatusCode {
        match self.code {
            ErrorCode::BadRequest | ErrorCode::BadInput => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::ModelNotFound | ErrorCode::ProofNotFound => StatusCode::NOT_FOUND,
            ErrorCode::VersionConflict => StatusCode::CONFLICT,
            ErrorCode::PayloadTooLarge | ErrorCode::ModelTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::InvalidModel | ErrorCode::TierUnavailable => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ErrorCode::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ExecutionFailed | ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn internal(what: impl std::fmt::Display) -> Self {
        tracing::error!("internal error: {what}");
        ApiError::new(ErrorCode::Internal, format!("internal error: {what}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut body = json!({"error": {"code": self.code.as_str(), "message": self.message}});
        if let Some(r) = self.reason {
            body["error"]["reason"] = json!(r);
        }
        let mut resp = (status, axum::Json(body)).into_response();
        if self.code == ErrorCode::Overloaded {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::VersionConflict { .. } => {
                ApiError::new(ErrorCode::VersionConflict, e.to_string())
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<ExecError> for ApiError {
    fn from(e: ExecError) -> Self {
        match e {
            ExecError::BadInput(m) => ApiError::new(ErrorCode::BadInput, m),
            ExecError::Load { .. } => ApiError::new(ErrorCode::InvalidModel, e.to_string()),
            ExecError::Overloaded { .. } => ApiError::new(ErrorCode::Overloaded, e.to_string()),
            ExecError::Run { .. } => ApiError::new(ErrorCode::ExecutionFailed, e.to_string()),
            ExecError::EngineUnavailable(_) | ExecError::Stopped => ApiError::internal(e),
        }
    }
}

impl From<vouch_attest::tee::TeeError> for ApiError {
    fn from(e: vouch_attest::tee::TeeError) -> Self {
        use vouch_attest::tee::TeeError as T;
        let code = match &e {
            T::Malformed(_) | T::Binding(_) | T::NonceMismatch { .. } => ErrorCode::BadRequest,
            T::Unavailable(_) => ErrorCode::TierUnavailable,
            _ => ErrorCode::Internal,
        };
        if code == ErrorCode::Internal {
            tracing::error!("tee: {e}");
        }
        ApiError::new(code, e.to_string()).with_reason(e.code())
    }
}
