//! The tee tier's evidence: `GET /v1/attestation[?nonce=hex]`, `GET /v1/attestation/{digest}`.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use vouch_core::NodeKey;

/// Query of `GET /v1/attestation`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AttestParams {
    /// Hex, 1–64 bytes: ask for fresh evidence committing to this nonce as well as the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

/// Which kind of evidence an envelope carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Platform {
    AwsNitro,
    IntelTdx,
    IntelSgx,
    AmdSevSnp,
    /// Development stand-in; proves nothing about hardware.
    Simulated,
}

/// A `vouch.tee.v1` evidence envelope (docs/tee.md), checked by `vouch-attest`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TeeEvidence {
    pub format: String,
    #[serde(rename = "type")]
    pub platform: Platform,
    /// Standard base64 of the platform's evidence bytes.
    pub evidence: String,
    /// Intel DCAP collateral, as stored JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub collateral: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collateral_time: Option<String>,
    /// AMD SEV-SNP certificates (VCEK, ASK, ARK).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub certs: Option<serde_json::Value>,
    pub binding: Binding,
    pub produced_at: String,
}

/// How the evidence commits to the node key (and the verifier's nonce).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Binding {
    pub scheme: String,
    pub node_key: NodeKey,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}
