//! One error type for every handler: an HTTP status, a stable machine-readable code, and a
//! message a person can act on. Body: `{"error": {"code": "...", "message": "..."}}`.

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
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
    /// Protocol answers that replace the JSON error body and add headers (x402's 402).
    pub protocol: Option<Box<ProtocolAnswer>>,
}

/// A body and headers a protocol prescribes for this refusal (see `crate::payment`).
#[derive(Debug)]
pub struct ProtocolAnswer {
    pub headers: Vec<(&'static str, String)>,
    pub body: serde_json::Value,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            reason: None,
            protocol: None,
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
        if let Some(p) = self.protocol {
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
        let mut body = json!({"error": {"code": self.code.as_str(), "message": self.message}});
        if let Some(r) = self.reason {
            body["error"]["reason"] = json!(r);
        }
        let mut resp = (status, axum::Json(body)).into_response();
        if matches!(self.code, ErrorCode::Overloaded | ErrorCode::Timeout) {
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
            ExecError::Load { .. } | ExecError::InvalidModel(_) => {
                ApiError::new(ErrorCode::InvalidModel, e.to_string())
            }
            ExecError::Overloaded { .. } | ExecError::Abandoned => {
                ApiError::new(ErrorCode::Overloaded, e.to_string())
            }
            ExecError::MemoryLimit { .. } => ApiError::new(ErrorCode::ResourceLimit, e.to_string()),
            ExecError::TimedOut { .. } => ApiError::new(ErrorCode::Timeout, e.to_string()),
            ExecError::Run { .. } | ExecError::Panicked { .. } => {
                ApiError::new(ErrorCode::ExecutionFailed, e.to_string())
            }
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

impl From<vouch_log::LogError> for ApiError {
    fn from(e: vouch_log::LogError) -> Self {
        use vouch_log::LogError as L;
        use vouch_log::merkle::ProofError as P;
        match &e {
            L::BeyondLog { .. } | L::NotYetCheckpointed { .. } | L::NoSuchCheckpoint(_) => {
                ApiError::new(ErrorCode::NotFound, e.to_string())
            }
            L::Proof(P::IndexOutOfRange { .. }) => {
                ApiError::new(ErrorCode::NotFound, e.to_string())
            }
            L::Tile(_) => ApiError::new(ErrorCode::NotFound, e.to_string()),
            L::Proof(_) | L::Entry(_) | L::Cosignature(_) | L::UnknownWitness => {
                ApiError::new(ErrorCode::BadRequest, e.to_string())
            }
            L::Store(_) | L::Closed | L::Inconsistent(_) => ApiError::internal(e),
        }
    }
}
