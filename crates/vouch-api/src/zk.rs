//! A model's zk tier as the registry reports it (`zk` of `/v1/models…` and of the advisor).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vouch_core::Digest;

/// Whether this node can prove the model, tagged by `status`. The variants' fields are inline
/// (not newtypes of named structs): a `oneOf` of `allOf`s is more than some generators read.
// Built once per answer and moved little: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ModelZk {
    /// `[zk] enabled = false` on this node.
    Disabled,
    /// Not analysed on this node (registered before zk was enabled, or not yet seen).
    Unknown,
    /// The analysis runs in the background; ask again.
    Analysing,
    Unavailable {
        /// E.g. "zk: unavailable: operator Softmax is not supported by the zk tier".
        reason: String,
        /// The circuit the graph predicted, when the estimate got that far.
        circuit_estimate: Option<CircuitEstimate>,
    },
    Available {
        /// The proof system, e.g. `spartan2-hyrax`.
        system: String,
        /// What `vouch verify --zk-vk-digest` pins.
        vk_digest: Digest,
        vk_bytes: u64,
        keygen_ms: u64,
        /// Fixed-point scale: values are multiplied by 2^scale_bits.
        scale_bits: u32,
        /// Largest |proven output − float output| a verifier accepts by default.
        output_tolerance: f64,
        calibration_max_abs_err: f64,
        params: u64,
        macs: u64,
        circuit: CircuitStats,
        /// What the graph alone predicted (absent in analyses older than the estimate).
        circuit_estimate: Option<CircuitEstimate>,
        estimate: ProofEstimate,
    },
}

/// The built circuit's size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CircuitStats {
    pub constraints: u64,
    pub precommitted: u64,
    pub rest: u64,
    pub public: u64,
    pub lookups: u64,
    pub table_entries: u64,
    pub nnz: u64,
    /// Range-check width in bits (a decimal string: JSON keys are strings) → how many checks
    /// of that width.
    pub range_widths: BTreeMap<String, u64>,
}

/// The circuit a model would compile to, predicted from its graph.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CircuitEstimate {
    pub nodes: u64,
    pub constraints: u64,
    pub precommitted: u64,
    pub rest: u64,
    pub public: u64,
    pub lookups: u64,
    pub table_entries: u64,
    pub nnz: u64,
    pub table_bits: u32,
    pub values: u64,
    pub largest_tensor: u64,
}

/// Predicted cost of one proof on this node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProofEstimate {
    pub prove_ms: u64,
    pub peak_bytes: u64,
    pub verify_ms: u64,
    pub vk_bytes: u64,
}
