//! The JSON shape of `Bundle.evidence["tee"]` and of `GET /v1/attestation` answers: one
//! envelope for every platform, or a reference to one by digest.
//!
//! ```json
//! {
//!   "format": "vouch.tee.v1",
//!   "type": "aws-nitro" | "intel-tdx" | "intel-sgx" | "amd-sev-snp" | "simulated",
//!   "evidence": "<standard base64 of the platform's own bytes>",
//!   "collateral": { … },            // intel-*: dcap-qvl QuoteCollateralV3 JSON, stored
//!   "collateral_time": "RFC 3339",  // intel-*: the time the collateral is judged at
//!   "certs": { "vcek": "<b64 DER>", "ask": "<b64 DER>" },   // amd-sev-snp; ARK is pinned
//!   "binding": { "scheme": "vouch.tee.binding.v1", "node_key": "ed25519:…", "nonce": "<hex>" },
//!   "produced_at": "RFC 3339"
//! }
//! ```
//! or `{ "format": "vouch.tee.ref.v1", "digest": "sha256:…" }`, the digest being SHA-256 over
//! the RFC 8785 canonical JSON of the full envelope.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use vouch_core::{Digest, NodeKey};

use super::TeeError;
use super::binding::BINDING_SCHEME;

pub const EVIDENCE_FORMAT: &str = "vouch.tee.v1";
pub const REFERENCE_FORMAT: &str = "vouch.tee.ref.v1";
/// Largest evidence accepted (decoded). Real evidence is 1–6 KiB; the bound keeps a hostile
/// bundle from making the verifier decode megabytes.
pub const MAX_EVIDENCE_BYTES: usize = 64 * 1024;

/// Which kind of evidence an envelope carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Platform {
    /// AWS Nitro Enclaves: a COSE_Sign1 attestation document from the Nitro Secure Module.
    AwsNitro,
    /// Intel TDX: a DCAP quote (v4/v5) over a TD report.
    IntelTdx,
    /// Intel SGX: a DCAP quote (v3) over an enclave report.
    IntelSgx,
    /// AMD SEV-SNP: a 1184-byte attestation report signed by the chip's VCEK.
    AmdSevSnp,
    /// Development stand-in signed by a root made at runtime; proves nothing about hardware.
    Simulated,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::AwsNitro => "aws-nitro",
            Platform::IntelTdx => "intel-tdx",
            Platform::IntelSgx => "intel-sgx",
            Platform::AmdSevSnp => "amd-sev-snp",
            Platform::Simulated => "simulated",
        }
    }

    /// Every platform, for messages that list the choices.
    pub const ALL: [Platform; 5] = [
        Platform::AwsNitro,
        Platform::IntelTdx,
        Platform::IntelSgx,
        Platform::AmdSevSnp,
        Platform::Simulated,
    ];
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Platform {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Platform::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown tee platform {:?}: expected one of aws-nitro, intel-tdx, intel-sgx, \
                 amd-sev-snp, simulated",
                    s.chars().take(40).collect::<String>()
                )
            })
    }
}

/// What the report data commits to (see [`super::binding`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingInfo {
    pub scheme: String,
    pub node_key: NodeKey,
    /// Hex of the verifier's nonce, when the evidence was made for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

impl BindingInfo {
    pub fn new(node_key: NodeKey, nonce: Option<&[u8]>) -> Self {
        BindingInfo {
            scheme: BINDING_SCHEME.into(),
            node_key,
            nonce: nonce.map(hex::encode),
        }
    }

    /// The nonce bytes, checked for form.
    pub fn nonce_bytes(&self) -> Result<Option<Vec<u8>>, TeeError> {
        self.nonce
            .as_deref()
            .map(super::binding::parse_nonce_hex)
            .transpose()
    }
}

/// AMD certificates that travel with an SEV-SNP report. The ARK is never taken from here: it is
/// pinned in this crate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnpCerts {
    /// Standard base64 of the VCEK certificate (DER).
    pub vcek: String,
    /// Standard base64 of the ASK certificate (DER); when absent, the pinned ASKs are tried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ask: Option<String>,
}

/// The full evidence envelope.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeeEvidence {
    pub format: String,
    #[serde(rename = "type")]
    pub platform: Platform,
    /// Standard base64 of the platform's evidence bytes.
    pub evidence: String,
    /// Intel DCAP collateral (PCK CRLs, TCB info, QE identity and their chains) as stored JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collateral: Option<serde_json::Value>,
    /// The time Intel collateral is evaluated at (RFC 3339): DCAP quotes carry no time of their
    /// own, and collateral expires after about a month while receipts are checked much later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collateral_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certs: Option<SnpCerts>,
    pub binding: BindingInfo,
    /// When the producer made this evidence (RFC 3339, informational: the signed time, where a
    /// platform has one, is inside the evidence).
    pub produced_at: String,
}

impl TeeEvidence {
    /// A bare envelope around `bytes`; callers add collateral or certificates as the platform needs.
    pub fn new(
        platform: Platform,
        bytes: &[u8],
        binding: BindingInfo,
        produced_at: String,
    ) -> Self {
        TeeEvidence {
            format: EVIDENCE_FORMAT.into(),
            platform,
            evidence: B64.encode(bytes),
            collateral: None,
            collateral_time: None,
            certs: None,
            binding,
            produced_at,
        }
    }

    /// Parses an envelope. A reference is reported as [`TeeError::Referenced`].
    pub fn from_json(value: &serde_json::Value) -> Result<Self, TeeError> {
        match value.get("format").and_then(|f| f.as_str()) {
            Some(EVIDENCE_FORMAT) => serde_json::from_value(value.clone())
                .map_err(|e| TeeError::Malformed(format!("tee evidence envelope: {e}"))),
            Some(REFERENCE_FORMAT) => Err(TeeError::Referenced(
                TeeEvidenceRef::from_json(value)?.digest,
            )),
            Some(other) => Err(TeeError::Malformed(format!(
                "unknown tee evidence format {:?}: this verifier knows {EVIDENCE_FORMAT} and {REFERENCE_FORMAT}",
                other.chars().take(40).collect::<String>()
            ))),
            None => Err(TeeError::Malformed(
                "tee evidence has no \"format\" string".into(),
            )),
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        // A struct of strings, maps and `serde_json::Value`s always serialises.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// SHA-256 of the envelope's RFC 8785 canonical JSON: what a reference names.
    pub fn digest(&self) -> Digest {
        Digest::of(&serde_jcs::to_vec(self).unwrap_or_default())
    }

    /// A reference to this envelope, for receipts that should not repeat the evidence.
    pub fn reference(&self) -> TeeEvidenceRef {
        TeeEvidenceRef {
            format: REFERENCE_FORMAT.into(),
            digest: self.digest(),
        }
    }

    /// The platform's evidence bytes.
    pub fn evidence_bytes(&self) -> Result<Vec<u8>, TeeError> {
        if self.evidence.len() > MAX_EVIDENCE_BYTES / 3 * 4 + 4 {
            return Err(TeeError::Malformed(format!(
                "\"evidence\" is {} base64 characters; no platform's evidence exceeds {MAX_EVIDENCE_BYTES} bytes",
                self.evidence.len()
            )));
        }
        B64.decode(&self.evidence)
            .map_err(|e| TeeError::Malformed(format!("\"evidence\" is not standard base64: {e}")))
    }
}

/// A pointer to an envelope kept elsewhere (the node serves it at `/v1/attestation/{digest}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeeEvidenceRef {
    pub format: String,
    pub digest: Digest,
}

impl TeeEvidenceRef {
    pub fn from_json(value: &serde_json::Value) -> Result<Self, TeeError> {
        let r: TeeEvidenceRef = serde_json::from_value(value.clone())
            .map_err(|e| TeeError::Malformed(format!("tee evidence reference: {e}")))?;
        if r.format != REFERENCE_FORMAT {
            return Err(TeeError::Malformed(format!(
                "reference format is {:?}, expected {REFERENCE_FORMAT}",
                r.format
            )));
        }
        Ok(r)
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// Resolves `value` (inline evidence or a reference) to a full envelope, looking references up
/// among `supplied` envelopes (given by the verifier's caller, e.g. `--tee-evidence file`).
pub fn resolve(
    value: &serde_json::Value,
    supplied: &[TeeEvidence],
) -> Result<TeeEvidence, TeeError> {
    match TeeEvidence::from_json(value) {
        Err(TeeError::Referenced(digest)) => {
            if supplied.is_empty() {
                return Err(TeeError::Referenced(digest));
            }
            supplied
                .iter()
                .find(|e| e.digest() == digest)
                .cloned()
                .ok_or_else(|| TeeError::ReferenceMismatch {
                    expected: digest,
                    supplied: supplied
                        .iter()
                        .map(|e| e.digest().to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                })
        }
        other => other,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample() -> TeeEvidence {
        TeeEvidence::new(
            Platform::Simulated,
            b"bytes",
            BindingInfo::new(NodeKey([9; 32]), Some(&[1, 2])),
            "2026-11-25T12:00:00Z".into(),
        )
    }

    #[test]
    fn envelope_round_trips_and_rejects_unknown_fields() {
        let e = sample();
        let j = e.to_json();
        assert_eq!(j["type"], "simulated");
        assert_eq!(j["binding"]["nonce"], "0102");
        assert!(j.get("collateral").is_none());
        assert_eq!(TeeEvidence::from_json(&j).unwrap(), e);
        let mut bad = j.clone();
        bad["extra"] = serde_json::json!(1);
        assert!(matches!(
            TeeEvidence::from_json(&bad),
            Err(TeeError::Malformed(_))
        ));
        let mut bad = j;
        bad["type"] = serde_json::json!("intel-sgx2");
        assert!(matches!(
            TeeEvidence::from_json(&bad),
            Err(TeeError::Malformed(_))
        ));
    }

    #[test]
    fn references_resolve_only_to_the_named_evidence() {
        let e = sample();
        let r = e.reference().to_json();
        assert!(
            matches!(TeeEvidence::from_json(&r), Err(TeeError::Referenced(d)) if d == e.digest())
        );
        assert_eq!(resolve(&r, std::slice::from_ref(&e)).unwrap(), e);
        let mut other = sample();
        other.produced_at = "2026-11-25T12:00:01Z".into();
        assert_ne!(other.digest(), e.digest());
        assert!(matches!(
            resolve(&r, &[other]),
            Err(TeeError::ReferenceMismatch { .. })
        ));
        assert!(matches!(resolve(&r, &[]), Err(TeeError::Referenced(_))));
    }

    #[test]
    fn oversized_evidence_is_refused_before_decoding() {
        let mut e = sample();
        e.evidence = "A".repeat(MAX_EVIDENCE_BYTES / 3 * 4 + 8);
        let m = e.evidence_bytes().unwrap_err().to_string();
        assert!(
            m.contains("no platform's evidence exceeds 65536 bytes"),
            "{m}"
        );
        e.evidence = B64.encode(vec![0u8; MAX_EVIDENCE_BYTES]);
        assert_eq!(e.evidence_bytes().unwrap().len(), MAX_EVIDENCE_BYTES);
    }

    #[test]
    fn platform_names_parse() {
        for p in Platform::ALL {
            assert_eq!(p.as_str().parse::<Platform>().unwrap(), p);
            assert_eq!(
                serde_json::to_value(p).unwrap(),
                serde_json::json!(p.as_str())
            );
        }
        assert!("sgx".parse::<Platform>().is_err());
    }
}
