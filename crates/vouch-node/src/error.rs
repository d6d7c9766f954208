//! One error type for the node: a stable machine-readable code, a message a person can act on,
//! and optionally a finer reason and a protocol's own answer. No transport here: `vouch-server`
//! maps the code to an HTTP status and the body `{"error": {"code", "message", "reason"}}`.

use vouch_core::ErrorCode;
use vouch_exec::ExecError;
use vouch_store::StoreError;

#[derive(Debug)]
pub struct NodeError {
    pub code: ErrorCode,
    pub message: String,
    /// A finer stable name within `code` (e.g. a `TeeError::code()`), sent as `error.reason`.
    pub reason: Option<&'static str>,
    /// A protocol's prescribed answer that replaces the error body and adds headers (x402's 402).
    pub protocol: Option<Box<ProtocolAnswer>>,
}

/// A body and headers a protocol prescribes for this refusal (see `crate::payments`).
#[derive(Debug)]
pub struct ProtocolAnswer {
    pub headers: Vec<(&'static str, String)>,
    pub body: serde_json::Value,
}

impl NodeError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        NodeError {
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

    /// A fault of this node, not of the caller: logged here, answered as `internal`.
    pub fn internal(what: impl std::fmt::Display) -> Self {
        tracing::error!("internal error: {what}");
        NodeError::new(ErrorCode::Internal, format!("internal error: {what}"))
    }
}

impl std::fmt::Display for NodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for NodeError {}

impl From<StoreError> for NodeError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::VersionConflict { .. } => {
                NodeError::new(ErrorCode::VersionConflict, e.to_string())
            }
            other => NodeError::internal(other),
        }
    }
}

impl From<ExecError> for NodeError {
    fn from(e: ExecError) -> Self {
        match e {
            ExecError::BadInput(m) => NodeError::new(ErrorCode::BadInput, m),
            ExecError::Load { .. } | ExecError::InvalidModel(_) => {
                NodeError::new(ErrorCode::InvalidModel, e.to_string())
            }
            ExecError::Overloaded { .. } | ExecError::Abandoned => {
                NodeError::new(ErrorCode::Overloaded, e.to_string())
            }
            ExecError::MemoryLimit { .. } => {
                NodeError::new(ErrorCode::ResourceLimit, e.to_string())
            }
            ExecError::TimedOut { .. } => NodeError::new(ErrorCode::Timeout, e.to_string()),
            ExecError::Run { .. } | ExecError::Panicked { .. } => {
                NodeError::new(ErrorCode::ExecutionFailed, e.to_string())
            }
            ExecError::EngineUnavailable(_) | ExecError::Stopped => NodeError::internal(e),
        }
    }
}

impl From<vouch_attest::tee::TeeError> for NodeError {
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
        NodeError::new(code, e.to_string()).with_reason(e.code())
    }
}

impl From<vouch_log::LogError> for NodeError {
    fn from(e: vouch_log::LogError) -> Self {
        use vouch_log::LogError as L;
        use vouch_log::merkle::ProofError as P;
        match &e {
            L::BeyondLog { .. } | L::NotYetCheckpointed { .. } | L::NoSuchCheckpoint(_) => {
                NodeError::new(ErrorCode::NotFound, e.to_string())
            }
            L::Proof(P::IndexOutOfRange { .. }) => {
                NodeError::new(ErrorCode::NotFound, e.to_string())
            }
            L::Tile(_) => NodeError::new(ErrorCode::NotFound, e.to_string()),
            L::Proof(_) | L::Entry(_) | L::Cosignature(_) | L::UnknownWitness => {
                NodeError::new(ErrorCode::BadRequest, e.to_string())
            }
            L::Store(_) | L::Closed | L::Inconsistent(_) => NodeError::internal(e),
        }
    }
}
