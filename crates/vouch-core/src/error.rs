//! Stable, machine-readable error codes. The server maps each to an HTTP status; clients match on
//! the string, so a code once published is never renamed.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Malformed request: JSON, missing fields, bad parameters.
    BadRequest,
    /// Inputs do not match the model's signature or exceed limits.
    BadInput,
    /// Uploaded bytes are not a model any engine can load.
    InvalidModel,
    /// Model is too big for this node's limits.
    ModelTooLarge,
    /// No model, name or version by that reference.
    ModelNotFound,
    /// No zk proof job by that id on this node.
    ProofNotFound,
    /// A name@version already points at a different model.
    VersionConflict,
    /// Missing or wrong admin token.
    Unauthorized,
    /// Body larger than the configured limit.
    PayloadTooLarge,
    /// The requested verification tier cannot be provided for this model or node.
    TierUnavailable,
    /// The worker queue is full; retry after the advertised delay.
    Overloaded,
    /// The engine failed while running a model that loaded fine.
    ExecutionFailed,
    /// The run would exceed a per-run limit of this node (memory); the same request will fail
    /// again here.
    ResourceLimit,
    /// The request did not finish within the node's time limit; its run was stopped.
    Timeout,
    /// Something on the node broke; not the caller's fault.
    Internal,
    /// No such resource (log entry, checkpoint, tile, proof) — yet or at all.
    NotFound,
    /// The request must be paid (x402) and carried no valid payment; the 402 says how to pay.
    PaymentRequired,
    /// The payment facilitator could not be reached; nothing was charged, retry later.
    PaymentUnavailable,
    /// Gateway mode: the upstream endpoint failed or answered what a receipt cannot state.
    UpstreamFailed,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::BadInput => "bad_input",
            ErrorCode::InvalidModel => "invalid_model",
            ErrorCode::ModelTooLarge => "model_too_large",
            ErrorCode::ModelNotFound => "model_not_found",
            ErrorCode::ProofNotFound => "proof_not_found",
            ErrorCode::VersionConflict => "version_conflict",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::TierUnavailable => "tier_unavailable",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::ExecutionFailed => "execution_failed",
            ErrorCode::ResourceLimit => "resource_limit",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Internal => "internal",
            ErrorCode::NotFound => "not_found",
            ErrorCode::PaymentRequired => "payment_required",
            ErrorCode::PaymentUnavailable => "payment_unavailable",
            ErrorCode::UpstreamFailed => "upstream_failed",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_name_matches_as_str() {
        for c in [
            ErrorCode::BadInput,
            ErrorCode::InvalidModel,
            ErrorCode::PayloadTooLarge,
            ErrorCode::ProofNotFound,
        ] {
            assert_eq!(
                serde_json::to_value(c).unwrap(),
                serde_json::json!(c.as_str())
            );
        }
    }
}
