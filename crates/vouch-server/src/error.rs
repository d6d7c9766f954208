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
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self.code {
            ErrorCode::BadRequest | ErrorCode::BadInput => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::ModelNotFound => StatusCode::NOT_FOUND,
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
        let body = json!({"error": {"code": self.code.as_str(), "message": self.message}});
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
