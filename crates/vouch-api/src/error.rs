//! The body of every refusal but x402's 402 (which follows the x402 spec instead).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vouch_core::ErrorCode;

/// `{"error": {"code", "message", "reason"?}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable: clients match on it.
    pub code: ErrorCode,
    /// For people: what happened, what was expected, what to do.
    pub message: String,
    /// A finer stable name within `code` (e.g. `zk_queue_full`, `tee_unavailable`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
