//! The receipt: what ran, on what, producing what, where and when — and its one canonical byte
//! form, which every signature, attestation, proof and log entry commits to.
//!
//! Canonical bytes = RFC 8785 (JSON Canonicalization Scheme) of the receipt object. Absent
//! optional fields are omitted, never `null`. The receipt hash is SHA-256 of those bytes; the
//! `signed` tier signs `"vouch.receipt.v1\0" ‖ receipt hash` (domain-separated so a node key can
//! never be tricked into signing a receipt that is also a valid message of another protocol).
//! Details and test vectors: `docs/receipt.md`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

use crate::digest::{Digest, ModelDigest};

pub const RECEIPT_VERSION: u32 = 1;
const SIGNING_DOMAIN: &[u8] = b"vouch.receipt.v1\0";

/// A verification tier a caller may ask for. Several may be combined on one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// The node's Ed25519 signature over the receipt: trusts the node's key.
    Signed,
    /// Hardware attestation binding the signing key to measured code.
    Tee,
    /// A zero-knowledge proof that the output is the committed model on the committed input.
    Zk,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Signed => "signed",
            Tier::Tee => "tee",
            Tier::Zk => "zk",
        }
    }

    /// Sorted, de-duplicated: the canonical form stored in a receipt.
    pub fn canonical_set(tiers: &[Tier]) -> Vec<Tier> {
        let mut v = tiers.to_vec();
        v.sort();
        v.dedup();
        v
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Tier {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "signed" => Ok(Tier::Signed),
            "tee" => Ok(Tier::Tee),
            "zk" => Ok(Tier::Zk),
            other => Err(format!(
                "unknown tier {other:?}: expected signed, tee or zk"
            )),
        }
    }
}

/// How the engine ran: outputs of different engines, thread counts and batchings may differ in
/// the last bits, so a verifier replaying the run needs to know which profile it reproduces.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ExecProfile {
    pub threads: u32,
    /// True when the same engine version gives bit-identical outputs for the same input.
    pub deterministic: bool,
    /// How many requests ran together in one engine call (1 = alone).
    pub batch: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EngineInfo {
    /// `onnxruntime` or `tract`.
    pub name: String,
    pub version: String,
    pub profile: ExecProfile,
}

/// An Ed25519 public key, written `ed25519:<64 hex>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeKey(pub [u8; 32]);

impl fmt::Display for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ed25519:")?;
        f.write_str(crate::digest::Hex32::new(&self.0).as_str())
    }
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for NodeKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex_part = s.strip_prefix("ed25519:").unwrap_or(s);
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut out).map_err(|_| {
            format!(
                "invalid node key {:?}: expected ed25519:<64 hex characters>",
                s.chars().take(80).collect::<String>()
            )
        })?;
        Ok(NodeKey(out))
    }
}

impl Serialize for NodeKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for NodeKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Who paid for this inference, so the audit trail links payment to result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PaymentRef {
    pub scheme: String,
    pub network: String,
    pub asset: String,
    /// Amount in the asset's smallest unit, as a decimal string (JSON numbers lose precision).
    pub amount: String,
    pub payer: String,
    /// Settlement reference: a transaction hash or ledger id.
    pub settlement: String,
}

/// The signed statement about one inference.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    pub version: u32,
    pub request_id: String,
    pub model: ModelDigest,
    /// How the caller named the model (`name@version`), if by name: shows which pointer resolved
    /// to `model` at the time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_ref: Option<String>,
    pub input_digest: Digest,
    pub output_digest: Digest,
    pub engine: EngineInfo,
    /// Digest of system settings that shape the output (system prompt, generation config).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_digest: Option<Digest>,
    pub tiers: Vec<Tier>,
    pub node_key: NodeKey,
    /// RFC 3339, UTC, millisecond precision.
    pub issued_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment: Option<PaymentRef>,
}

impl Receipt {
    /// RFC 8785 canonical JSON bytes.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        // A receipt holds only strings, small integers and booleans under fixed ASCII keys, so
        // its JCS form is serde_json's compact output with the keys in sorted order (JCS
        // escapes strings exactly as serde_json does). `Canonical` declares them sorted; going
        // through serde_jcs instead cost a heap allocation per key and per value, every request.
        // Tests check the two agree (`serde_jcs` stays the oracle).
        let mut out = Vec::with_capacity(640);
        // Writing to a Vec fails only on a serializer error, which these types never raise.
        serde_json::to_writer(&mut out, &Canonical::of(self)).expect("a Receipt always serialises");
        out
    }

    /// SHA-256 of the canonical bytes: the handle every tier's evidence commits to.
    pub fn hash(&self) -> Digest {
        Digest::of(&self.canonical_bytes())
    }

    /// The exact bytes an Ed25519 `signed`-tier signature covers.
    pub fn signing_message(&self) -> Vec<u8> {
        signing_message_for(&self.hash())
    }
}

/// A receipt's fields in RFC 8785 key order (sorted by UTF-16 code units; all keys are ASCII).
/// Adding a field to [`Receipt`] means adding it here, in order: the equality test against
/// serde_jcs fails otherwise.
#[derive(Serialize)]
struct Canonical<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    config_digest: Option<&'a Digest>,
    engine: CanonicalEngine<'a>,
    input_digest: &'a Digest,
    issued_at: &'a str,
    model: &'a ModelDigest,
    #[serde(skip_serializing_if = "Option::is_none")]
    model_ref: Option<&'a str>,
    node_key: &'a NodeKey,
    output_digest: &'a Digest,
    #[serde(skip_serializing_if = "Option::is_none")]
    payment: Option<CanonicalPayment<'a>>,
    request_id: &'a str,
    tiers: &'a [Tier],
    version: u32,
}

#[derive(Serialize)]
struct CanonicalEngine<'a> {
    name: &'a str,
    profile: CanonicalProfile,
    version: &'a str,
}

#[derive(Serialize)]
struct CanonicalProfile {
    batch: u32,
    deterministic: bool,
    threads: u32,
}

#[derive(Serialize)]
struct CanonicalPayment<'a> {
    amount: &'a str,
    asset: &'a str,
    network: &'a str,
    payer: &'a str,
    scheme: &'a str,
    settlement: &'a str,
}

impl<'a> Canonical<'a> {
    fn of(r: &'a Receipt) -> Self {
        // Destructured, so a field added to `Receipt` does not compile until placed here.
        let Receipt {
            version,
            request_id,
            model,
            model_ref,
            input_digest,
            output_digest,
            engine,
            config_digest,
            tiers,
            node_key,
            issued_at,
            payment,
        } = r;
        let EngineInfo {
            name,
            version: engine_version,
            profile,
        } = engine;
        let ExecProfile {
            threads,
            deterministic,
            batch,
        } = profile;
        Canonical {
            config_digest: config_digest.as_ref(),
            engine: CanonicalEngine {
                name,
                profile: CanonicalProfile {
                    batch: *batch,
                    deterministic: *deterministic,
                    threads: *threads,
                },
                version: engine_version,
            },
            input_digest,
            issued_at,
            model,
            model_ref: model_ref.as_deref(),
            node_key,
            output_digest,
            payment: payment.as_ref().map(
                |PaymentRef {
                     scheme,
                     network,
                     asset,
                     amount,
                     payer,
                     settlement,
                 }| CanonicalPayment {
                    amount,
                    asset,
                    network,
                    payer,
                    scheme,
                    settlement,
                },
            ),
            request_id,
            tiers,
            version: *version,
        }
    }
}

/// The `config_digest` receipts carry for a model's configuration (system prompt, generation
/// settings): SHA-256 of its RFC 8785 canonical JSON, so any byte form of the same object gives
/// the same digest. Fails only on a number JSON cannot canonicalise.
pub fn config_digest(config: &serde_json::Value) -> Result<Digest, String> {
    canonical_config(config).map(|c| Digest::of(c.as_bytes()))
}

/// A configuration's RFC 8785 canonical JSON: what is stored, logged and digested.
pub fn canonical_config(config: &serde_json::Value) -> Result<String, String> {
    serde_jcs::to_string(config)
        .map_err(|e| format!("the configuration has no canonical form: {e}"))
}

/// `"vouch.receipt.v1\0" ‖ receipt hash`.
pub fn signing_message_for(receipt_hash: &Digest) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGNING_DOMAIN.len() + 32);
    m.extend_from_slice(SIGNING_DOMAIN);
    m.extend_from_slice(receipt_hash.as_bytes());
    m
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn sample() -> Receipt {
        Receipt {
            version: RECEIPT_VERSION,
            request_id: "018f6b6e-0000-7000-8000-000000000001".into(),
            model: ModelDigest(Digest::of(b"model bytes")),
            model_ref: Some("mnist-cnn@1".into()),
            input_digest: Digest::of(b"in"),
            output_digest: Digest::of(b"out"),
            engine: EngineInfo {
                name: "tract".into(),
                version: "0.23.9".into(),
                profile: ExecProfile {
                    threads: 1,
                    deterministic: true,
                    batch: 1,
                },
            },
            config_digest: None,
            tiers: vec![Tier::Signed],
            node_key: NodeKey([7u8; 32]),
            issued_at: "2026-11-25T12:00:00.000Z".into(),
            payment: None,
        }
    }

    #[test]
    fn canonical_bytes_sort_keys_and_omit_absent_fields() {
        let bytes = String::from_utf8(sample().canonical_bytes()).unwrap();
        assert!(
            bytes.starts_with("{\"engine\":{\"name\":\"tract\",\"profile\":{\"batch\":1,"),
            "{bytes}"
        );
        assert!(!bytes.contains("null"));
        assert!(!bytes.contains("config_digest"));
        assert!(!bytes.contains(' '));
    }

    #[test]
    fn canonical_bytes_equal_serde_jcs() {
        let mut receipts = vec![sample()];
        let mut r = sample();
        r.model_ref = None;
        r.config_digest = Some(Digest::of(b"config"));
        r.tiers = vec![Tier::Signed, Tier::Tee, Tier::Zk];
        r.payment = Some(PaymentRef {
            scheme: "exact".into(),
            network: "base-sepolia".into(),
            asset: "0x036CbD53842c5426634e7929541eC2318f3dCF7e".into(),
            amount: "1000".into(),
            payer: "0xAbC\u{0}".into(),
            settlement: "ledger:1".into(),
        });
        receipts.push(r);
        // Strings JCS and serde_json must escape alike: quotes, backslashes, every control
        // character, DEL, non-ASCII (BMP and beyond), U+2028/2029, '/' and '<'.
        let mut r = sample();
        r.request_id = (0u8..0x20).map(char::from).collect::<String>()
            + "\"\\/<>\u{7f}é€𝄞\u{2028}\u{2029}\u{feff}";
        r.model_ref = Some("naïve@1 \"quoted\"\n".into());
        r.engine.name = "\u{0}".into();
        r.engine.version = String::new();
        r.issued_at = "\t".into();
        r.version = u32::MAX;
        r.engine.profile = ExecProfile {
            threads: u32::MAX,
            deterministic: false,
            batch: 0,
        };
        r.tiers = Vec::new();
        receipts.push(r);
        for r in receipts {
            assert_eq!(
                String::from_utf8(r.canonical_bytes()).unwrap(),
                serde_jcs::to_string(&r).unwrap()
            );
        }
    }

    #[test]
    fn every_field_changes_the_hash() {
        let base = sample().hash();
        let mut r = sample();
        r.output_digest = Digest::of(b"other");
        assert_ne!(r.hash(), base);
        let mut r = sample();
        r.tiers = vec![Tier::Signed, Tier::Tee];
        assert_ne!(r.hash(), base);
        let mut r = sample();
        r.engine.profile.threads = 2;
        assert_ne!(r.hash(), base);
        let mut r = sample();
        r.model_ref = None;
        assert_ne!(r.hash(), base);
    }

    #[test]
    fn parse_rejects_unknown_fields() {
        let mut v = serde_json::to_value(sample()).unwrap();
        v["extra"] = serde_json::json!(1);
        assert!(serde_json::from_value::<Receipt>(v).is_err());
    }

    #[test]
    fn tiers_canonicalise() {
        assert_eq!(
            Tier::canonical_set(&[Tier::Zk, Tier::Signed, Tier::Zk]),
            vec![Tier::Signed, Tier::Zk]
        );
    }
}
