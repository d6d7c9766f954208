//! `POST /v1/infer`. The answer is a `vouch_core::Bundle`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vouch_core::{Digest, TensorMap, Tier};

use crate::proofs::JobStatus;

/// The body of `POST /v1/infer`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InferRequest {
    /// `name`, `name@version` or `sha256:<hex>`.
    pub model: String,
    /// Input name → tensor.
    pub inputs: TensorMap,
    /// Any of `signed`, `tee`, `zk`; default `["signed"]`. `[]` returns an unsigned receipt.
    /// `tee` receipts are always signed by the attested key.
    #[serde(default = "default_tiers")]
    #[schema(default = json!(["signed"]))]
    pub tiers: Vec<Tier>,
    /// When the model's policy demands a stronger tier than asked for, add it (at its price)
    /// instead of refusing. The headers `vouch-upgraded-from` and `vouch-price` say so.
    #[serde(default)]
    pub allow_upgrade: bool,
    /// Wait for the checkpoint that covers this receipt and put its inclusion proof in
    /// `evidence.log`, so the bundle verifies against the log offline at once.
    #[serde(default)]
    pub log_proof: bool,
}

fn default_tiers() -> Vec<Tier> {
    vec![Tier::Signed]
}

/// `evidence.zk_job` of a bundle whose zk proof is still being made: where to fetch it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ZkJobRef {
    pub id: String,
    /// `/v1/proofs/{id}`.
    pub url: String,
    pub status: JobStatus,
    /// The receipt hash the proof binds.
    pub receipt: Digest,
    pub estimate_ms: u64,
    /// Estimated proving time of the jobs ahead of this one.
    pub wait_ms: u64,
}

impl ZkJobRef {
    /// The key of this object in a bundle's `evidence`.
    pub const EVIDENCE_KEY: &'static str = "zk_job";
}
