//! Simulated evidence for development: the same envelope, binding and verification path as real
//! hardware, signed by an Ed25519 root generated when the producer starts. No vendor root is
//! Ed25519 and the verifier never sends this type through a vendor chain, so it can never pass
//! as hardware; verifiers reject it unless told `allow_simulated`, and every verdict says
//! `tee: simulated`.
//!
//! Evidence bytes are RFC 8785 canonical JSON:
//! `{"signature":"<b64>","statement":{"label":…,"measurement":"<hex48>","report_data":"<hex64>","root_key":"<hex32>","timestamp_ms":…}}`
//! with the signature over `"vouch.tee.simulated.v1\0" ‖ JCS(statement)`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;

use super::{Platform, PlatformReport, TeeError, format_time};

#[cfg(feature = "producer")]
pub use producing::SimulatedProducer;

/// The label every simulated statement carries, word for word.
pub const SIMULATED_LABEL: &str = "vouch simulated TEE: NOT HARDWARE, development only";
const SIG_DOMAIN: &[u8] = b"vouch.tee.simulated.v1\0";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatedStatement {
    pub label: String,
    /// Hex of the runtime root's Ed25519 public key.
    pub root_key: String,
    /// Hex of the self-reported code measurement (SHA-384 of the producer's executable).
    pub measurement: String,
    /// Hex of the 64-byte binding.
    pub report_data: String,
    pub timestamp_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SimulatedEvidence {
    statement: SimulatedStatement,
    signature: String,
}

fn bad(reason: impl Into<String>) -> TeeError {
    TeeError::Authenticity {
        platform: Platform::Simulated,
        reason: reason.into(),
    }
}

fn signing_message(statement: &SimulatedStatement) -> Result<Vec<u8>, TeeError> {
    let mut m = SIG_DOMAIN.to_vec();
    m.extend(
        serde_jcs::to_vec(statement)
            .map_err(|e| bad(format!("statement does not canonicalise: {e}")))?,
    );
    Ok(m)
}

/// Checks a simulated statement's form and self-signature. This proves only that the bytes are
/// intact: the root is whatever key the producer made up.
pub fn verify_statement(bytes: &[u8]) -> Result<PlatformReport, TeeError> {
    let ev: SimulatedEvidence = serde_json::from_slice(bytes)
        .map_err(|e| bad(format!("not a simulated statement: {e}")))?;
    let canonical =
        serde_jcs::to_vec(&ev).map_err(|e| bad(format!("does not canonicalise: {e}")))?;
    if canonical != bytes {
        return Err(bad("the statement is not in RFC 8785 canonical form"));
    }
    let s = &ev.statement;
    if s.label != SIMULATED_LABEL {
        return Err(bad(format!(
            "label is {:?}, not {SIMULATED_LABEL:?}",
            s.label
        )));
    }
    let root = fixed_hex::<32>(&s.root_key, "root_key")?;
    let root = VerifyingKey::from_bytes(&root)
        .map_err(|_| bad("root_key is not an Ed25519 public key"))?;
    let sig: [u8; 64] = B64
        .decode(&ev.signature)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| bad("signature is not 64 bytes of standard base64"))?;
    root.verify_strict(&signing_message(s)?, &Signature::from_bytes(&sig))
        .map_err(|_| bad("the signature does not verify under the statement's root key"))?;
    let measurement = fixed_hex::<48>(&s.measurement, "measurement")?;
    let report_data = fixed_hex::<64>(&s.report_data, "report_data")?;
    let time = OffsetDateTime::from_unix_timestamp_nanos(i128::from(s.timestamp_ms) * 1_000_000)
        .map_err(|e| bad(format!("timestamp out of range: {e}")))?;

    let mut measurements = BTreeMap::new();
    measurements.insert("MEASUREMENT".to_string(), hex::encode(measurement));
    let mut details = BTreeMap::new();
    details.insert("simulated_root".to_string(), s.root_key.clone());
    Ok(PlatformReport {
        platform: Platform::Simulated,
        measurements,
        report_data: Some(report_data.to_vec()),
        report_data_field: "report_data",
        evidence_time: Some(time),
        trust_assumption: format!(
            "simulated TEE: development only, no hardware guarantee (self-signed by runtime root {}; \
             self-reported MEASUREMENT={}, {})",
            s.root_key,
            hex::encode(measurement),
            format_time(time)
        ),
        details,
        bound_public_key: None,
        bound_nonce: None,
    })
}

fn fixed_hex<const N: usize>(s: &str, field: &str) -> Result<[u8; N], TeeError> {
    let mut out = [0u8; N];
    // Lowercase only, so each value has one spelling.
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(bad(format!("{field} must be lowercase hex")));
    }
    hex::decode_to_slice(s, &mut out)
        .map_err(|_| bad(format!("{field} must be {N} bytes of hex")))?;
    Ok(out)
}

/// The producing half: a runtime root key and the running executable's measurement.
#[cfg(feature = "producer")]
mod producing {
    use base64::Engine as _;
    use ed25519_dalek::{Signer as _, SigningKey};
    use sha2::{Digest as _, Sha384};
    use std::time::SystemTime;
    use time::OffsetDateTime;
    use vouch_core::NodeKey;

    use super::super::evidence::{BindingInfo, TeeEvidence};
    use super::super::producer::EvidenceProducer;
    use super::super::{Platform, TeeError, binding, format_time};
    use super::{B64, SIMULATED_LABEL, SimulatedEvidence, SimulatedStatement, signing_message};

    /// Makes simulated evidence. Each producer has its own root, made when it is created.
    pub struct SimulatedProducer {
        root: SigningKey,
        measurement: [u8; 48],
    }

    impl SimulatedProducer {
        /// A producer whose measurement is SHA-384 of the running executable, so rebuilding the
        /// server changes it as a real measurement would.
        pub fn new() -> Result<Self, TeeError> {
            let exe = std::env::current_exe().map_err(|e| {
                TeeError::Producer(format!(
                    "cannot locate the running executable to measure: {e}"
                ))
            })?;
            let bytes = std::fs::read(&exe).map_err(|e| {
                TeeError::Producer(format!("cannot read {} to measure it: {e}", exe.display()))
            })?;
            Ok(Self::with_measurement(Sha384::digest(&bytes).into()))
        }

        /// A producer reporting `measurement` (tests, or a stable value across rebuilds).
        pub fn with_measurement(measurement: [u8; 48]) -> Self {
            SimulatedProducer {
                root: SigningKey::generate(&mut rand_core::OsRng),
                measurement,
            }
        }

        pub fn measurement(&self) -> [u8; 48] {
            self.measurement
        }

        /// Evidence for `node_key` (and `nonce`) stamped with `now`.
        pub fn attest_at(
            &self,
            node_key: &NodeKey,
            nonce: Option<&[u8]>,
            now: SystemTime,
        ) -> Result<TeeEvidence, TeeError> {
            let report_data = binding::report_data(node_key, nonce)?;
            let now = OffsetDateTime::from(now);
            let timestamp_ms = u64::try_from(now.unix_timestamp_nanos() / 1_000_000)
                .map_err(|_| TeeError::Producer("the clock is before 1970".into()))?;
            let statement = SimulatedStatement {
                label: SIMULATED_LABEL.into(),
                root_key: hex::encode(self.root.verifying_key().to_bytes()),
                measurement: hex::encode(self.measurement),
                report_data: hex::encode(report_data),
                timestamp_ms,
            };
            let signature = B64.encode(self.root.sign(&signing_message(&statement)?).to_bytes());
            let bytes = serde_jcs::to_vec(&SimulatedEvidence {
                statement,
                signature,
            })
            .map_err(|e| TeeError::Producer(format!("cannot encode the statement: {e}")))?;
            Ok(TeeEvidence::new(
                Platform::Simulated,
                &bytes,
                BindingInfo::new(*node_key, nonce),
                format_time(now),
            ))
        }
    }

    impl EvidenceProducer for SimulatedProducer {
        fn platform(&self) -> Platform {
            Platform::Simulated
        }

        fn attest(
            &self,
            node_key: &NodeKey,
            nonce: Option<&[u8]>,
        ) -> Result<TeeEvidence, TeeError> {
            self.attest_at(node_key, nonce, SystemTime::now())
        }
    }
}
