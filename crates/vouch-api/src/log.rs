//! The transparency log's JSON routes (`/v1/log…`) and `POST /log/cosignature`. The C2SP
//! routes (`/log/checkpoint`, `/log/tile/…`) answer text and bytes, not JSON.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use vouch_core::ModelDigest;

/// `GET /v1/log`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LogInfo {
    pub origin: String,
    /// Pass it to `vouch verify --log-key`.
    pub log_key: String,
    pub size: u64,
    /// The latest signed checkpoint note, with cosignatures.
    pub checkpoint: Option<String>,
    /// Verifier keys of the witnesses this log asks to cosign.
    pub witnesses: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum EntryKind {
    Receipt,
    ChatReceipt,
    ModelRegistered,
    PointerMoved,
    PolicyChanged,
    ConfigChanged,
}

/// `GET /v1/log/entries/{index}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LogEntry {
    pub index: u64,
    pub kind: EntryKind,
    /// RFC 6962 leaf hash, base64.
    pub leaf_hash: String,
    /// The entry's canonical bytes, as text.
    pub entry: String,
}

/// Query of `GET /v1/log/entries`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EntryPageParams {
    /// First index of the page; default: the last `limit` entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<u64>,
    /// Entries per page, 1–100 (default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// `GET /v1/log/entries`: a page of entries in log order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LogEntryPage {
    /// The log's size when the page was read.
    pub size: u64,
    pub entries: Vec<LogEntry>,
}

/// Query of `GET /v1/log/proof/{index}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProofParams {
    /// Tree size to prove inclusion in; default: the latest checkpoint's, as a tlog-proof.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Wait (bounded by the node's `max_proof_wait_ms`) for a checkpoint covering the entry.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub wait: bool,
}

/// `evidence.log` of a bundle (`vouch-log`'s format, checked by `vouch verify --log-key`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LogEvidence {
    pub format: String,
    pub index: u64,
    /// A C2SP tlog-proof@v1 under a cosigned checkpoint, once there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<String>,
}

/// `GET /v1/log/proof/{index}`: with `size`, the RFC 6962 hashes; without, bundle evidence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum InclusionProof {
    Hashes {
        index: u64,
        size: u64,
        /// Base64 hashes, leaf to root.
        hashes: Vec<String>,
    },
    Evidence {
        index: u64,
        evidence: LogEvidence,
    },
}

/// Query of `GET /v1/log/consistency`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConsistencyParams {
    pub old: u64,
    pub new: u64,
}

/// `GET /v1/log/consistency`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConsistencyProof {
    pub old: u64,
    pub new: u64,
    /// Base64 hashes (RFC 6962).
    pub hashes: Vec<String>,
}

/// `GET /v1/log/history/{name}`: oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NameHistory {
    pub name: String,
    pub changes: Vec<PointerChange>,
}

/// One logged change of what a name (no `version`: its latest pointer) pointed at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PointerChange {
    pub index: u64,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<ModelDigest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<ModelDigest>,
    pub at: String,
    /// The pointer moved at least once without a log entry before this change: an alarm.
    pub unlogged_move_before: bool,
}

/// Query of `POST /log/cosignature` (the body is the `cosignature/v1` line).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CosignParams {
    /// Size of the checkpoint the cosignature is for.
    pub size: u64,
}

/// `POST /log/cosignature`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CosignatureAccepted {
    pub size: u64,
    /// The witness's key name.
    pub witness: String,
    /// Seconds since the epoch, as the witness signed it.
    pub timestamp: u64,
}
