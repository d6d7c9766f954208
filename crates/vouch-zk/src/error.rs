//! One error enum for the crate; [`ZkError::code`] maps each to Vouch's stable error codes.

use vouch_core::ErrorCode;

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum ZkError {
    /// The model uses an operator (or an operator option) the zk tier cannot prove.
    #[error("zk: unavailable: operator {op} is not supported by the zk tier{}", detail_suffix(.detail))]
    Unsupported { op: String, detail: String },
    /// The bytes are not an ONNX model vouch-zk can read.
    #[error("zk: invalid model: {0}")]
    InvalidModel(String),
    /// Inputs do not fit the model (names, shapes, dtypes) or the zk configuration.
    #[error("zk: bad input: {0}")]
    BadInput(String),
    /// A value left the range the circuit was calibrated for; the proof cannot be made.
    #[error("zk: value out of the circuit's calibrated range: {0}")]
    OutOfRange(String),
    /// The proving library failed.
    #[error("zk: proving failed: {0}")]
    Prover(String),
    /// Evidence could not be parsed.
    #[error("zk: malformed evidence: {0}")]
    Malformed(String),
    /// The proof or its statement does not check out.
    #[error("zk: verification failed: {0}")]
    Verify(String),
    #[error("zk: internal error: {0}")]
    Internal(String),
    /// The model's circuit, graph or a tensor is larger than this node accepts, or its analysis
    /// ran past the node's time limit: the message names the estimate and the limit.
    #[error("zk: unavailable ({0})")]
    OverLimit(String),
}

fn detail_suffix(d: &str) -> String {
    if d.is_empty() {
        String::new()
    } else {
        format!(" ({d})")
    }
}

impl ZkError {
    pub(crate) fn unsupported(op: impl Into<String>, detail: impl Into<String>) -> Self {
        ZkError::Unsupported {
            op: op.into(),
            detail: detail.into(),
        }
    }

    /// The stable code the server answers with (`Unsupported` is the 422 `tier_unavailable`).
    pub fn code(&self) -> ErrorCode {
        match self {
            ZkError::Unsupported { .. } | ZkError::OverLimit(_) => ErrorCode::TierUnavailable,
            ZkError::InvalidModel(_) => ErrorCode::InvalidModel,
            ZkError::BadInput(_) | ZkError::OutOfRange(_) | ZkError::Malformed(_) => {
                ErrorCode::BadInput
            }
            ZkError::Verify(_) => ErrorCode::BadInput,
            ZkError::Prover(_) | ZkError::Internal(_) => ErrorCode::Internal,
        }
    }
}
