//! The `tee` tier: hardware attestation that the node's receipt-signing key lives inside
//! measured code.
//!
//! A node creates its Ed25519 key at boot, inside the TEE, and asks the platform for evidence
//! whose report data is [`binding::report_data`] of that key (and of a verifier's nonce, when
//! one asked). Receipts carry that evidence (or its digest, see [`evidence`]) next to the
//! key's signature over the receipt, so a verifier concludes: code measured as X holds key K,
//! and K signed "model D on input I gave output O".
//!
//! Two halves:
//! - **Verifiers** ([`verify_tee_evidence`], [`verify_bundle_tee`] and the per-platform
//!   functions) are pure: no clock (the caller passes the verification time), no files, no
//!   network, no async runtime. Vendor roots are pinned in this crate: the AWS Nitro root by
//!   SHA-256 fingerprint, Intel's SGX Root CA (through `dcap-qvl`), AMD's ARKs (through `sev`).
//! - **Producers** (`producer`, cargo feature `producer`) talk to hardware (`/dev/nsm`, Linux
//!   `configfs-tsm`) or make clearly labelled simulated evidence for development.
//!
//! Evidence is judged at its own time where it has one: Nitro leaf certificates live about three
//! hours and receipts are checked much later, so a document is checked at its signed timestamp;
//! Intel collateral is judged at the envelope's `collateral_time`. Spec: `docs/tee.md`.

pub mod binding;
pub mod dcap;
pub mod evidence;
pub mod nitro;
#[cfg(feature = "producer")]
pub mod producer;
pub mod simulated;
pub mod snp;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use vouch_core::{Bundle, Digest, NodeKey, Tier};

pub use evidence::{BindingInfo, Platform, SnpCerts, TeeEvidence, TeeEvidenceRef, resolve};
#[cfg(feature = "producer")]
pub use producer::{EvidenceProducer, ProducerConfig, ProducerKind, select_producer};

/// How far a signed evidence time may lie after the verification time (clock skew between the
/// node and the verifier).
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum TeeError {
    #[error("malformed tee evidence: {0}")]
    Malformed(String),
    #[error(
        "tee evidence is referenced by digest {0}, not included: fetch it from the issuing node \
         (GET /v1/attestation/{0}) and supply it to the verifier"
    )]
    Referenced(Digest),
    #[error(
        "the receipt references tee evidence {expected}, but the supplied evidence has digest {supplied}"
    )]
    ReferenceMismatch { expected: Digest, supplied: String },
    #[error(
        "simulated tee evidence rejected: its root was made at runtime and proves nothing about \
         hardware (allow it for development with --allow-simulated)"
    )]
    SimulatedNotAllowed,
    #[error("{platform} evidence is not accepted by this policy (accepted: {accepted})")]
    PlatformNotAllowed {
        platform: Platform,
        accepted: String,
    },
    #[error("the envelope says {declared}, but the evidence is {actual}")]
    TypeMismatch {
        declared: Platform,
        actual: Platform,
    },
    /// Forged or altered: a signature, chain or root does not check out.
    #[error("{platform}: evidence is not authentic: {reason}")]
    Authenticity { platform: Platform, reason: String },
    /// Genuine, but its certificates or collateral are not valid at the verification time.
    #[error("{platform}: the evidence is genuine but out of date: {reason}")]
    Expired { platform: Platform, reason: String },
    #[error("{platform}: debug-mode TEE rejected: {reason}")]
    Debug { platform: Platform, reason: String },
    #[error("{platform}: measurement {name} is {found}, the policy expects {expected}")]
    MeasurementMismatch {
        platform: Platform,
        name: String,
        expected: String,
        found: String,
    },
    #[error(
        "{platform}: the policy expects measurement {name}, which this evidence does not have (it has {available})"
    )]
    MeasurementUnknown {
        platform: Platform,
        name: String,
        available: String,
    },
    #[error(
        "{platform}: TCB status {status} is not accepted (advisories: {advisories}; accepted: {accepted})"
    )]
    TcbStatus {
        platform: Platform,
        status: String,
        advisories: String,
        accepted: String,
    },
    #[error("evidence time {evidence_time} is after the verification time {at_time}")]
    FromTheFuture {
        evidence_time: String,
        at_time: String,
    },
    #[error(
        "evidence time {evidence_time} is {age_secs} s before the verification time; the policy allows {max_secs} s"
    )]
    TooOld {
        evidence_time: String,
        age_secs: u64,
        max_secs: u64,
    },
    #[error(
        "binding: the evidence commits to node key {evidence}, but the receipt is signed by {receipt}"
    )]
    KeyMismatch { evidence: NodeKey, receipt: NodeKey },
    #[error("binding: the verifier's nonce is {expected}, but the evidence was made for {found}")]
    NonceMismatch { expected: String, found: String },
    #[error("binding: {0}")]
    Binding(String),
    #[error("receipt: {0}")]
    Receipt(String),
    #[error("tee producer unavailable: {0}")]
    Unavailable(String),
    #[error("tee producer failed: {0}")]
    Producer(String),
}

impl TeeError {
    /// Whether the evidence was found genuine (its signatures and chain to the pinned vendor
    /// root hold) but falls short of what the policy or the verification time accepts: an old
    /// TCB, expired certificates or collateral, debug mode, other measurements, too old.
    pub fn is_below_policy(&self) -> bool {
        matches!(
            self,
            TeeError::Expired { .. }
                | TeeError::TcbStatus { .. }
                | TeeError::Debug { .. }
                | TeeError::MeasurementMismatch { .. }
                | TeeError::MeasurementUnknown { .. }
                | TeeError::PlatformNotAllowed { .. }
                | TeeError::SimulatedNotAllowed
                | TeeError::TooOld { .. }
        )
    }

    /// A stable machine-readable name for each kind of failure.
    pub fn code(&self) -> &'static str {
        match self {
            TeeError::Malformed(_) => "tee_malformed",
            TeeError::Referenced(_) => "tee_evidence_referenced",
            TeeError::ReferenceMismatch { .. } => "tee_reference_mismatch",
            TeeError::SimulatedNotAllowed => "tee_simulated_not_allowed",
            TeeError::PlatformNotAllowed { .. } => "tee_platform_not_allowed",
            TeeError::TypeMismatch { .. } => "tee_type_mismatch",
            TeeError::Authenticity { .. } => "tee_not_authentic",
            TeeError::Expired { .. } => "tee_expired",
            TeeError::Debug { .. } => "tee_debug_mode",
            TeeError::MeasurementMismatch { .. } => "tee_measurement_mismatch",
            TeeError::MeasurementUnknown { .. } => "tee_measurement_unknown",
            TeeError::TcbStatus { .. } => "tee_tcb_status",
            TeeError::FromTheFuture { .. } => "tee_from_the_future",
            TeeError::TooOld { .. } => "tee_too_old",
            TeeError::KeyMismatch { .. } => "tee_key_mismatch",
            TeeError::NonceMismatch { .. } => "tee_nonce_mismatch",
            TeeError::Binding(_) => "tee_binding",
            TeeError::Receipt(_) => "tee_receipt",
            TeeError::Unavailable(_) => "tee_unavailable",
            TeeError::Producer(_) => "tee_producer_failed",
        }
    }
}

/// What the verifier's caller accepts. The default accepts every hardware platform, any
/// measurement, and Intel TCB levels that need no microcode or platform update.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TeePolicy {
    /// Expected measurements by name (`PCR0`, `MRTD`, `RTMR0`, `MRENCLAVE`, `MEASUREMENT`, …),
    /// as hex. Every entry must be present in the evidence and equal.
    pub expect: BTreeMap<String, String>,
    /// Accepted platforms; empty accepts all (simulated still needs `allow_simulated`).
    pub platforms: Vec<Platform>,
    /// Accepted Intel TCB statuses (dcap-qvl's names, e.g. `UpToDate`, `SWHardeningNeeded`).
    pub intel_tcb_statuses: Vec<String>,
    /// Reject evidence whose own time is older than this at the verification time.
    pub max_evidence_age_secs: Option<u64>,
}

impl Default for TeePolicy {
    fn default() -> Self {
        TeePolicy {
            expect: BTreeMap::new(),
            platforms: Vec::new(),
            intel_tcb_statuses: [
                "UpToDate",
                "SWHardeningNeeded",
                "ConfigurationNeeded",
                "ConfigurationAndSWHardeningNeeded",
            ]
            .map(String::from)
            .to_vec(),
            max_evidence_age_secs: None,
        }
    }
}

/// How to verify: the time to verify at (explicit, so verification is reproducible and works on
/// old receipts), whether to accept simulated evidence, and the nonce the caller sent, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TeeOptions {
    pub at_time: SystemTime,
    pub allow_simulated: bool,
    pub expected_nonce: Option<Vec<u8>>,
}

impl TeeOptions {
    pub fn at(at_time: SystemTime) -> Self {
        TeeOptions {
            at_time,
            allow_simulated: false,
            expected_nonce: None,
        }
    }
}

/// What a platform verifier established about its evidence, before policy and binding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlatformReport {
    pub platform: Platform,
    /// Measurement name → lowercase hex.
    pub measurements: BTreeMap<String, String>,
    /// The platform's report-data field, which a Vouch binding fills.
    pub report_data: Option<Vec<u8>>,
    /// The field's name on this platform, for messages.
    pub report_data_field: &'static str,
    /// The evidence's own signed time, where the platform has one (Nitro, simulated) or the
    /// time collateral was judged at (Intel).
    pub evidence_time: Option<OffsetDateTime>,
    /// The root of trust and what was measured, for people.
    pub trust_assumption: String,
    /// Platform facts worth showing (TCB status, module id, product line).
    pub details: BTreeMap<String, String>,
    /// Nitro only: the document's own `public_key` and `nonce` fields, which must agree with the
    /// binding when present.
    pub bound_public_key: Option<Vec<u8>>,
    pub bound_nonce: Option<Vec<u8>>,
}

/// What a successful verification proves, and under which trust assumption.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeeVerdict {
    pub platform: Platform,
    pub measurements: BTreeMap<String, String>,
    pub trust_assumption: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence_time: Option<String>,
    pub node_key: NodeKey,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    pub details: BTreeMap<String, String>,
}

impl TeeVerdict {
    pub fn is_simulated(&self) -> bool {
        self.platform == Platform::Simulated
    }

    /// One line for `vouch verify`: `tee: simulated` stands out on every simulated result.
    pub fn summary(&self) -> String {
        if self.is_simulated() {
            format!("tee: simulated — {}", self.trust_assumption)
        } else {
            format!(
                "tee: {} — node key {} is held by that code",
                self.trust_assumption, self.node_key
            )
        }
    }
}

/// Verifies one `evidence["tee"]` value for `node_key` (the receipt's signer).
pub fn verify_tee_evidence(
    evidence_json: &serde_json::Value,
    node_key: &NodeKey,
    policy: &TeePolicy,
    options: &TeeOptions,
) -> Result<TeeVerdict, TeeError> {
    verify_envelope(
        &TeeEvidence::from_json(evidence_json)?,
        node_key,
        policy,
        options,
    )
}

/// Verifies a parsed envelope: authenticity against the pinned root, then policy, then binding.
pub fn verify_envelope(
    env: &TeeEvidence,
    node_key: &NodeKey,
    policy: &TeePolicy,
    options: &TeeOptions,
) -> Result<TeeVerdict, TeeError> {
    if env.format != evidence::EVIDENCE_FORMAT {
        return Err(TeeError::Malformed(format!(
            "format {:?} is not {}",
            env.format,
            evidence::EVIDENCE_FORMAT
        )));
    }
    if env.platform == Platform::Simulated && !options.allow_simulated {
        return Err(TeeError::SimulatedNotAllowed);
    }
    if !policy.platforms.is_empty() && !policy.platforms.contains(&env.platform) {
        return Err(TeeError::PlatformNotAllowed {
            platform: env.platform,
            accepted: policy
                .platforms
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let at = OffsetDateTime::from(options.at_time);
    let bytes = env.evidence_bytes()?;

    let report = match env.platform {
        Platform::AwsNitro => nitro::verify_document(&bytes)?,
        Platform::IntelTdx | Platform::IntelSgx => {
            let collateral = env.collateral.as_ref().ok_or_else(|| {
                TeeError::Malformed(format!(
                    "{} evidence needs stored \"collateral\"",
                    env.platform
                ))
            })?;
            let time = env.collateral_time.as_deref().ok_or_else(|| {
                TeeError::Malformed(format!(
                    "{} evidence needs \"collateral_time\"",
                    env.platform
                ))
            })?;
            let time = parse_time(time, "collateral_time")?;
            dcap::verify_quote(&bytes, collateral, time, env.platform)?
        }
        Platform::AmdSevSnp => {
            let certs = env.certs.as_ref().ok_or_else(|| {
                TeeError::Malformed("amd-sev-snp evidence needs \"certs\" with the VCEK".into())
            })?;
            let vcek = decode_b64(&certs.vcek, "certs.vcek")?;
            let ask = certs
                .ask
                .as_deref()
                .map(|a| decode_b64(a, "certs.ask"))
                .transpose()?;
            snp::verify_report(&bytes, &vcek, ask.as_deref(), at)?
        }
        Platform::Simulated => simulated::verify_statement(&bytes)?,
    };
    if report.platform != env.platform {
        return Err(TeeError::TypeMismatch {
            declared: env.platform,
            actual: report.platform,
        });
    }

    check_time(&report, at, policy)?;
    check_measurements(&report, policy)?;
    if let Some(status) = report.details.get("tcb_status")
        && !policy.intel_tcb_statuses.iter().any(|s| s == status)
    {
        return Err(TeeError::TcbStatus {
            platform: report.platform,
            status: status.clone(),
            advisories: report
                .details
                .get("advisory_ids")
                .cloned()
                .unwrap_or_else(|| "none".into()),
            accepted: policy.intel_tcb_statuses.join(", "),
        });
    }
    check_binding(env, &report, node_key, options)?;

    Ok(TeeVerdict {
        platform: report.platform,
        measurements: report.measurements,
        trust_assumption: report.trust_assumption,
        evidence_time: report.evidence_time.and_then(|t| t.format(&Rfc3339).ok()),
        node_key: *node_key,
        nonce: env.binding.nonce.clone(),
        details: report.details,
    })
}

/// Verifies the `tee` tier of a whole bundle: the receipt claims the tier, the node key signed
/// the receipt, and the evidence (inline, or one of `supplied` when referenced) binds that key.
pub fn verify_bundle_tee(
    bundle: &Bundle,
    supplied: &[TeeEvidence],
    policy: &TeePolicy,
    options: &TeeOptions,
) -> Result<TeeVerdict, TeeError> {
    let receipt = &bundle.receipt;
    if !receipt.tiers.contains(&Tier::Tee) {
        return Err(TeeError::Receipt(
            "the receipt does not claim the tee tier".into(),
        ));
    }
    let sig = bundle.signature.as_ref().ok_or_else(|| {
        TeeError::Receipt(
            "a tee receipt needs the attested key's signature over it (bundle.signature)".into(),
        )
    })?;
    crate::verify::verify_receipt_signature(receipt, sig, None)
        .map_err(|e| TeeError::Receipt(e.to_string()))?;
    let value = bundle
        .evidence
        .get("tee")
        .ok_or_else(|| TeeError::Receipt("the bundle has no evidence[\"tee\"]".into()))?;
    let env = resolve(value, supplied)?;
    verify_envelope(&env, &receipt.node_key, policy, options)
}

fn check_time(
    report: &PlatformReport,
    at: OffsetDateTime,
    policy: &TeePolicy,
) -> Result<(), TeeError> {
    let Some(t) = report.evidence_time else {
        return Ok(());
    };
    let show = |t: OffsetDateTime| t.format(&Rfc3339).unwrap_or_else(|_| t.to_string());
    if t > at + MAX_CLOCK_SKEW {
        return Err(TeeError::FromTheFuture {
            evidence_time: show(t),
            at_time: show(at),
        });
    }
    if let Some(max) = policy.max_evidence_age_secs {
        let age = (at - t).whole_seconds().max(0).unsigned_abs();
        if age > max {
            return Err(TeeError::TooOld {
                evidence_time: show(t),
                age_secs: age,
                max_secs: max,
            });
        }
    }
    Ok(())
}

fn check_measurements(report: &PlatformReport, policy: &TeePolicy) -> Result<(), TeeError> {
    for (name, want) in &policy.expect {
        let want = want.trim().to_ascii_lowercase();
        match report.measurements.get(name) {
            None => {
                return Err(TeeError::MeasurementUnknown {
                    platform: report.platform,
                    name: name.clone(),
                    available: report
                        .measurements
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            Some(found) if *found != want => {
                return Err(TeeError::MeasurementMismatch {
                    platform: report.platform,
                    name: name.clone(),
                    expected: want,
                    found: found.clone(),
                });
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn check_binding(
    env: &TeeEvidence,
    report: &PlatformReport,
    node_key: &NodeKey,
    options: &TeeOptions,
) -> Result<(), TeeError> {
    if env.binding.scheme != binding::BINDING_SCHEME {
        return Err(TeeError::Binding(format!(
            "unknown binding scheme {:?}: this verifier knows {}",
            env.binding.scheme,
            binding::BINDING_SCHEME
        )));
    }
    if env.binding.node_key != *node_key {
        return Err(TeeError::KeyMismatch {
            evidence: env.binding.node_key,
            receipt: *node_key,
        });
    }
    let nonce = env.binding.nonce_bytes()?;
    if let Some(expected) = &options.expected_nonce
        && nonce.as_deref() != Some(expected.as_slice())
    {
        return Err(TeeError::NonceMismatch {
            expected: hex::encode(expected),
            found: nonce
                .as_deref()
                .map(hex::encode)
                .unwrap_or_else(|| "no nonce".into()),
        });
    }
    binding::check(
        report.report_data.as_deref(),
        report.report_data_field,
        node_key,
        nonce.as_deref(),
    )?;
    if let Some(pk) = &report.bound_public_key
        && *pk != binding::ed25519_spki_der(node_key)
    {
        return Err(TeeError::Binding(format!(
            "the document's public_key is {}, not the SubjectPublicKeyInfo of node key {node_key}",
            hex::encode(pk)
        )));
    }
    if let Some(n) = &report.bound_nonce
        && nonce.as_deref() != Some(n.as_slice())
    {
        return Err(TeeError::Binding(format!(
            "the document's nonce field is {}, but the binding names {}",
            hex::encode(n),
            nonce
                .as_deref()
                .map(hex::encode)
                .unwrap_or_else(|| "no nonce".into())
        )));
    }
    Ok(())
}

pub(crate) fn parse_time(s: &str, field: &str) -> Result<OffsetDateTime, TeeError> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|e| {
        TeeError::Malformed(format!(
            "{field} {:?} is not RFC 3339: {e}",
            s.chars().take(40).collect::<String>()
        ))
    })
}

/// A vendor crate's error message without the Rust debug text some of them append after the
/// sentence (`…: signature::Error { source: None }`, `…: CrlExpired { time: UnixTime(…) }`):
/// everything from the first `": "` whose remainder looks like debug output is dropped.
pub(crate) fn sentence(text: &str) -> String {
    let debugish = |rest: &str| rest.contains(['{', '(', '[']) || rest.contains("::");
    let end = text
        .match_indices(": ")
        .map(|(i, _)| i)
        .find(|&i| debugish(&text[i + 2..]))
        .unwrap_or(text.len());
    text[..end].to_string()
}

pub(crate) fn format_time(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

fn decode_b64(s: &str, field: &str) -> Result<Vec<u8>, TeeError> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| TeeError::Malformed(format!("{field} is not standard base64: {e}")))
}
