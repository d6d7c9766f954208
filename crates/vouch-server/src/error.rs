//! The node's errors over HTTP: a stable code becomes a status, and the body says it for
//! machines and people. Body: `{"error": {"code": "...", "message": "..."}}`.

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use vouch_core::ErrorCode;
use vouch_exec::ExecError;
use vouch_node::NodeError;
use vouch_store::StoreError;

/// A node error on its way out over HTTP. A newtype so this crate can give it a response.
#[derive(Debug)]
pub struct ApiError(pub NodeError);

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError(NodeError::new(code, message))
    }

    pub fn internal(what: impl std::fmt::Display) -> Self {
        ApiError(NodeError::internal(what))
    }

    pub fn with_reason(self, reason: &'static str) -> Self {
        ApiError(self.0.with_reason(reason))
    }

    /// The HTTP status of a stable error code.
    pub fn status(&self) -> StatusCode {
        match self.0.code {
            ErrorCode::BadRequest | ErrorCode::BadInput => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::ModelNotFound | ErrorCode::NotFound | ErrorCode::ProofNotFound => {
                StatusCode::NOT_FOUND
            }
            ErrorCode::VersionConflict => StatusCode::CONFLICT,
            ErrorCode::PayloadTooLarge | ErrorCode::ModelTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::InvalidModel | ErrorCode::TierUnavailable | ErrorCode::ResourceLimit => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ErrorCode::Overloaded | ErrorCode::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ExecutionFailed | ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::PaymentRequired => StatusCode::PAYMENT_REQUIRED,
            ErrorCode::PaymentUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::UpstreamFailed => StatusCode::BAD_GATEWAY,
        }
    }
}

/// An `ApiError` is a node error with an HTTP face: its code, message and reason read through.
impl std::ops::Deref for ApiError {
    type Target = NodeError;

    fn deref(&self) -> &NodeError {
        &self.0
    }
}

/// Every error the node and the layers under it return becomes an `ApiError` with `?`.
macro_rules! from_node_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for ApiError {
            fn from(e: $t) -> Self {
                ApiError(NodeError::from(e))
            }
        }
    )*};
}
from_node_errors!(
    StoreError,
    ExecError,
    vouch_attest::tee::TeeError,
    vouch_log::LogError
);

impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let e = self.0;
        if let Some(p) = e.protocol {
            let mut resp = (status, axum::Json(p.body)).into_response();
            for (name, value) in p.headers {
                if let (Ok(n), Ok(v)) = (
                    HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_str(&value),
                ) {
                    resp.headers_mut().insert(n, v);
                }
            }
            return resp;
        }
        let body = vouch_api::ErrorBody {
            error: vouch_api::ErrorDetail {
                code: e.code,
                message: e.message,
                reason: e.reason.map(str::to_string),
            },
        };
        let mut resp = (status, axum::Json(body)).into_response();
        if matches!(e.code, ErrorCode::Overloaded | ErrorCode::Timeout) {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}
