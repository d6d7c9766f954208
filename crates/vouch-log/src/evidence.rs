//! The `log` evidence inside a receipt bundle, and its offline verification.
//!
//! `Bundle.evidence["log"]` is:
//!
//! ```json
//! {
//!   "format": "vouch.log.v1",
//!   "index": 42,
//!   "proof": "c2sp.org/tlog-proof@v1\nindex 42\n<hashes>\n\n<cosigned checkpoint note>"
//! }
//! ```
//!
//! `index` is where the node committed the receipt before answering; `proof` is absent when the
//! client did not wait for a covering checkpoint (the node then answers without the checkpoint
//! delay) and is added later by `vouch log prove`. Without `proof`, the index is only the node's
//! word.
//!
//! `proof` is a complete C2SP `tlog-proof@v1` text, so `vouch verify` can also write it out as a
//! standalone `.tlog-proof` file for other tools. The leaf it proves is not stored: the verifier
//! recomputes it from the bundle's receipt (`"vouch-log/v1 receipt\n" ‖ canonical bytes`), so
//! the proof can only ever vouch for that exact receipt.

use serde::{Deserialize, Serialize};
use vouch_core::{Bundle, ChatBundle, Receipt};

use crate::checkpoint::{LogKey, NoteError, verify_checkpoint};
use crate::cosign::{CosignError, WitnessKey, WitnessedBy, verify_cosignatures};
use crate::entry::{chat_receipt_entry_bytes, receipt_entry_bytes};
use crate::merkle::{Hash, ProofError, leaf_hash, verify_inclusion};
use crate::proof::{TlogProof, TlogProofError};

pub const LOG_EVIDENCE_FORMAT: &str = "vouch.log.v1";

/// Key under which the evidence sits in `Bundle.evidence`.
pub const BUNDLE_EVIDENCE_KEY: &str = "log";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogEvidence {
    pub format: String,
    /// Leaf index of the receipt's entry.
    pub index: u64,
    /// C2SP tlog-proof@v1 text, once fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<String>,
}

impl LogEvidence {
    pub fn new(proof: &TlogProof) -> Self {
        LogEvidence {
            format: LOG_EVIDENCE_FORMAT.to_string(),
            index: proof.index,
            proof: Some(proof.to_text()),
        }
    }

    /// The entry's index alone: committed, proof to be fetched later.
    pub fn pending(index: u64) -> Self {
        LogEvidence {
            format: LOG_EVIDENCE_FORMAT.to_string(),
            index,
            proof: None,
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({ "format": self.format, "index": self.index });
        if let Some(p) = &self.proof {
            v["proof"] = serde_json::Value::String(p.clone());
        }
        v
    }

    pub fn from_json(v: &serde_json::Value) -> Result<Self, OfflineError> {
        let e: LogEvidence =
            serde_json::from_value(v.clone()).map_err(|e| OfflineError::Evidence(e.to_string()))?;
        if e.format != LOG_EVIDENCE_FORMAT {
            return Err(OfflineError::Evidence(format!(
                "unknown format {:?}, expected {LOG_EVIDENCE_FORMAT:?}",
                e.format.chars().take(40).collect::<String>()
            )));
        }
        Ok(e)
    }
}

/// Whose word the verifier takes: the log's key, and how many of which witnesses must cosign.
#[derive(Clone, Debug)]
pub struct TrustPolicy {
    pub log: LogKey,
    pub witnesses: Vec<WitnessKey>,
    /// Distinct trusted witnesses whose valid cosignatures are required (0 = log key alone).
    pub threshold: usize,
}

impl TrustPolicy {
    /// From the verifier keys a user passes (`--log-key`, `--witness`, `--witness-threshold`).
    pub fn from_vkeys(
        log_vkey: &str,
        witness_vkeys: &[String],
        threshold: usize,
    ) -> Result<Self, OfflineError> {
        let log = LogKey::parse(log_vkey)?;
        let witnesses = witness_vkeys
            .iter()
            .map(|w| WitnessKey::parse(w))
            .collect::<Result<Vec<_>, _>>()?;
        if threshold > witnesses.len() {
            return Err(OfflineError::ImpossibleThreshold {
                threshold,
                known: witnesses.len(),
            });
        }
        Ok(TrustPolicy {
            log,
            witnesses,
            threshold,
        })
    }
}

/// What an offline check proved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InclusionVerified {
    /// The log (checkpoint origin), whose key signed the checkpoint.
    pub origin: String,
    pub index: u64,
    pub tree_size: u64,
    pub root: Hash,
    pub leaf_hash: Hash,
    /// Trusted witnesses whose cosignatures verified, with their timestamps.
    pub witnesses: Vec<WitnessedBy>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OfflineError {
    #[error("bundle has no `log` evidence (it was made by a node without a transparency log)")]
    Missing,
    #[error(
        "the bundle names log entry {index} but carries no inclusion proof yet: run `vouch log prove BUNDLE`"
    )]
    NoProof { index: u64 },
    #[error("the log evidence names entry {evidence} but its proof is for entry {proof}")]
    IndexMismatch { evidence: u64, proof: u64 },
    #[error("log evidence is malformed: {0}")]
    Evidence(String),
    #[error(transparent)]
    ProofFile(#[from] TlogProofError),
    #[error("log checkpoint: {0}")]
    Checkpoint(#[from] NoteError),
    #[error("witness cosignature: {0}")]
    Cosignature(#[from] CosignError),
    #[error("inclusion proof: {0}")]
    Inclusion(#[from] ProofError),
    #[error(
        "only {got} of the {need} required trusted witness cosignatures verified{}",
        if seen.is_empty() { String::new() } else { format!(" (valid: {})", seen.join(", ")) }
    )]
    Threshold {
        need: usize,
        got: usize,
        seen: Vec<String>,
    },
    #[error("witness threshold {threshold} is larger than the {known} trusted witnesses given")]
    ImpossibleThreshold { threshold: usize, known: usize },
}

/// Verifies that `entry` (canonical entry bytes) is in the log under a checkpoint signed by
/// `policy.log` and cosigned by at least `policy.threshold` trusted witnesses. Pure: no clock,
/// no network, no storage.
pub fn verify_inclusion_offline(
    proof: &TlogProof,
    entry: &[u8],
    policy: &TrustPolicy,
) -> Result<InclusionVerified, OfflineError> {
    if policy.threshold > policy.witnesses.len() {
        return Err(OfflineError::ImpossibleThreshold {
            threshold: policy.threshold,
            known: policy.witnesses.len(),
        });
    }
    let cp = verify_checkpoint(&proof.checkpoint, &policy.log)?;
    let witnesses = verify_cosignatures(&cp.note, &policy.witnesses)?;
    if witnesses.len() < policy.threshold {
        return Err(OfflineError::Threshold {
            need: policy.threshold,
            got: witnesses.len(),
            seen: witnesses.iter().map(|w| w.witness.clone()).collect(),
        });
    }
    let leaf = leaf_hash(entry);
    let c = &cp.checkpoint;
    verify_inclusion(leaf, proof.index, c.size, &proof.hashes, c.root)?;
    Ok(InclusionVerified {
        origin: c.origin.clone(),
        index: proof.index,
        tree_size: c.size,
        root: c.root,
        leaf_hash: leaf,
        witnesses,
    })
}

/// The `vouch verify` step for a bundle: its receipt is in the log (see
/// [`verify_inclusion_offline`]).
pub fn verify_bundle_log(
    bundle: &Bundle,
    policy: &TrustPolicy,
) -> Result<InclusionVerified, OfflineError> {
    verify_log_evidence(
        bundle.evidence.get(BUNDLE_EVIDENCE_KEY),
        &receipt_entry_bytes(&bundle.receipt),
        policy,
    )
}

/// The same step for a chat bundle: its `evidence.log` proves the chat receipt's leaf
/// ([`crate::entry::chat_receipt_entry_bytes`]).
pub fn verify_chat_bundle_log(
    bundle: &ChatBundle,
    policy: &TrustPolicy,
) -> Result<InclusionVerified, OfflineError> {
    verify_log_evidence(
        bundle.evidence.get(BUNDLE_EVIDENCE_KEY),
        &chat_receipt_entry_bytes(&bundle.receipt),
        policy,
    )
}

/// A bundle's `evidence.log` value (absent: `Missing`) proves `entry`, the leaf recomputed from
/// the bundle's receipt.
pub fn verify_log_evidence(
    evidence: Option<&serde_json::Value>,
    entry: &[u8],
    policy: &TrustPolicy,
) -> Result<InclusionVerified, OfflineError> {
    let ev = LogEvidence::from_json(evidence.ok_or(OfflineError::Missing)?)?;
    let text = ev
        .proof
        .as_ref()
        .ok_or(OfflineError::NoProof { index: ev.index })?;
    let proof = TlogProof::parse(text.as_bytes())?;
    if proof.index != ev.index {
        return Err(OfflineError::IndexMismatch {
            evidence: ev.index,
            proof: proof.index,
        });
    }
    verify_inclusion_offline(&proof, entry, policy)
}

/// Same check for a receipt and a standalone `.tlog-proof` file.
pub fn verify_receipt_inclusion(
    receipt: &Receipt,
    proof: &TlogProof,
    policy: &TrustPolicy,
) -> Result<InclusionVerified, OfflineError> {
    verify_inclusion_offline(proof, &receipt_entry_bytes(receipt), policy)
}
