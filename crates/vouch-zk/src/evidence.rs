//! The JSON shape of `Bundle.evidence["zk"]`:
//!
//! ```json
//! {
//!   "format": "vouch.zk.v1",
//!   "system": "spartan2-0.9/spartan/hyrax/pallas/r1cs-logup",
//!   "model": "sha256:<model file digest>",
//!   "vk_digest": "sha256:<verifying-key digest, as in the registry entry>",
//!   "config": { "quant": { "act_bits": 12, ... }, "output_tolerance": 0.001 },
//!   "receipt": "sha256:<receipt hash the proof is bound to>",
//!   "input_q_digest": "sha256:<digest of the proven quantised input>",
//!   "outputs_q": { "y": [123, -45, ...] },
//!   "proof": "<standard base64 of the Spartan2 proof (bincode)>"
//! }
//! ```
//! `outputs_q` are the proven outputs as integers at scale `2^config.quant.act_bits`.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use vouch_core::{Bundle, Digest, ModelDigest};

use crate::ZkConfig;
use crate::error::ZkError;

pub const EVIDENCE_FORMAT: &str = "vouch.zk.v1";

/// Key of zk evidence in `Bundle.evidence`.
pub const EVIDENCE_KEY: &str = "zk";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZkEvidence {
    pub format: String,
    pub system: String,
    pub model: ModelDigest,
    pub vk_digest: Digest,
    pub config: ZkConfig,
    pub receipt: Digest,
    pub input_q_digest: Digest,
    pub outputs_q: BTreeMap<String, Vec<i64>>,
    pub proof: String,
    /// Tensor system only: the model key (base64 bincode: the program and the weights'
    /// commitments) a verifier checks the proof with, so it needs no model file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_key: Option<String>,
    /// Tensor system only: the proven public input (`input_ids`, the unpadded token ids).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs_q: Option<BTreeMap<String, Vec<i64>>>,
}

impl ZkEvidence {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    pub fn from_json(v: &serde_json::Value) -> Result<Self, ZkError> {
        serde_json::from_value(v.clone()).map_err(|e| ZkError::Malformed(e.to_string()))
    }

    /// The zk evidence of a bundle, if it has any.
    pub fn from_bundle(b: &Bundle) -> Result<Option<Self>, ZkError> {
        b.evidence
            .get(EVIDENCE_KEY)
            .map(Self::from_json)
            .transpose()
    }

    /// Size of the proof in bytes.
    pub fn proof_len(&self) -> usize {
        self.proof.len() / 4 * 3
    }
}

#[cfg(feature = "prover")]
pub(crate) fn b64(b: &[u8]) -> String {
    B64.encode(b)
}

pub(crate) fn unb64(s: &str) -> Result<Vec<u8>, ZkError> {
    B64.decode(s)
        .map_err(|_| ZkError::Malformed("proof is not valid base64".into()))
}
