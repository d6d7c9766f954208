//! The receipt bundle: the self-contained JSON document a caller keeps and anyone can verify
//! offline (`vouch verify bundle.json`). Later tiers add their evidence under `evidence`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::receipt::Receipt;
use crate::tensor::TensorMap;

pub const BUNDLE_FORMAT: &str = "vouch.bundle.v1";

/// An Ed25519 signature by `receipt.node_key` over `receipt.signing_message()`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BundleSignature {
    /// Always `ed25519` in this version.
    pub alg: String,
    /// Standard base64 of the 64-byte signature.
    pub sig: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    pub format: String,
    pub receipt: Receipt,
    /// Present when the `signed` tier was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<BundleSignature>,
    /// The outputs themselves, so the bundle alone shows what was vouched for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<TensorMap>,
    /// Per-tier evidence (`tee`, `zk`, `log`), each documented by the crate that verifies it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub evidence: BTreeMap<String, serde_json::Value>,
}
