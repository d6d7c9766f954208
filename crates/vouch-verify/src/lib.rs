//! Offline verification of receipt bundles: the library `vouch verify` runs and other programs
//! can embed.
//!
//! It checks what a bundle claims against what the verifier holds (a trusted node key, the
//! model file, the inputs, the outputs) and reports exactly what was proven and what was not.
//! It must stay light: no async runtime, no network, no database, no inference engine — only
//! `vouch-core` and the verifier halves of the evidence crates. Re-execution (`vouch replay`)
//! is deliberately elsewhere, because it needs an engine.

use serde::Serialize;
use vouch_attest::{SignatureError, verify_receipt_signature};
use vouch_core::{BUNDLE_FORMAT, Bundle, Digest, NodeKey, RECEIPT_VERSION, TensorMap, Tier};

/// What the verifier holds besides the bundle. Everything is optional; each item given adds a
/// check, and each missing one is named in the report as not proven.
#[derive(Default)]
pub struct Evidence<'a> {
    /// The node key the verifier trusts; without it, a valid signature proves only that *some*
    /// key signed.
    pub trusted_key: Option<NodeKey>,
    pub model_bytes: Option<&'a [u8]>,
    pub inputs: Option<&'a TensorMap>,
    pub outputs: Option<&'a TensorMap>,
}

/// One passed check, in words.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Finding {
    pub check: &'static str,
    pub detail: String,
}

/// A bundle that passed every check it could be given, with what that establishes.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub proven: Vec<Finding>,
    pub not_proven: Vec<String>,
    /// One line: the strongest statement the checks support.
    pub summary: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("not a Vouch bundle: format is {0:?}, expected \"vouch.bundle.v1\"")]
    Format(String),
    #[error("receipt version {0} is not supported by this verifier (it knows version 1)")]
    ReceiptVersion(u32),
    #[error("the receipt lists the signed tier but the bundle carries no signature")]
    MissingSignature,
    #[error("signature check failed: {0}")]
    Signature(#[from] SignatureError),
    #[error(
        "the receipt lists the {0} tier, whose evidence this verifier cannot check yet: refusing to report it as verified"
    )]
    UncheckedTier(Tier),
    #[error(
        "{what} does not match the receipt: receipt says {expected}, {what} hashes to {actual}"
    )]
    DigestMismatch {
        what: &'static str,
        expected: Digest,
        actual: Digest,
    },
}

/// Checks `bundle`, failing at the first discrepancy with a precise reason.
pub fn verify_bundle(bundle: &Bundle, ev: &Evidence<'_>) -> Result<Report, VerifyError> {
    let r = &bundle.receipt;
    if bundle.format != BUNDLE_FORMAT {
        return Err(VerifyError::Format(
            bundle.format.chars().take(64).collect(),
        ));
    }
    if r.version != RECEIPT_VERSION {
        return Err(VerifyError::ReceiptVersion(r.version));
    }
    if let Some(t) = r.tiers.iter().find(|t| **t != Tier::Signed) {
        return Err(VerifyError::UncheckedTier(*t));
    }
    let mut proven = Vec::new();
    let mut not_proven = Vec::new();

    match (&bundle.signature, r.tiers.contains(&Tier::Signed)) {
        (None, true) => return Err(VerifyError::MissingSignature),
        (None, false) => {
            not_proven.push("who produced this receipt: it is unsigned (tiers [])".to_string())
        }
        (Some(sig), _) => {
            verify_receipt_signature(r, sig, ev.trusted_key.as_ref())?;
            let trust = if ev.trusted_key.is_some() {
                "the key you trust"
            } else {
                "a key you did not pin (pass --trust-key)"
            };
            proven.push(Finding {
                check: "signature",
                detail: format!("node {} signed this receipt ({trust})", r.node_key),
            });
        }
    }

    let mut digest_check = |what: &'static str,
                            expected: Digest,
                            actual: Option<Digest>,
                            missing: &str| {
        match actual {
            Some(a) if a == expected => {
                proven.push(Finding {
                    check: what,
                    detail: format!("{what} hashes to the receipt's {expected}"),
                });
                Ok(())
            }
            Some(a) => Err(VerifyError::DigestMismatch {
                what,
                expected,
                actual: a,
            }),
            None => {
                not_proven.push(missing.to_string());
                Ok(())
            }
        }
    };
    digest_check(
        "bundled outputs",
        r.output_digest,
        bundle.outputs.as_ref().map(TensorMap::digest),
        "the outputs' values: the bundle does not carry them",
    )?;
    digest_check(
        "model file",
        r.model.0,
        ev.model_bytes.map(Digest::of),
        "which model file this is: pass --model to compare it with the receipt's model digest",
    )?;
    digest_check(
        "input file",
        r.input_digest,
        ev.inputs.map(TensorMap::digest),
        "which inputs were used: pass --inputs to compare them with the receipt's input digest",
    )?;
    digest_check(
        "output file",
        r.output_digest,
        ev.outputs.map(TensorMap::digest),
        "your copy of the outputs: pass --outputs to compare it",
    )?;
    not_proven.push(
        "that the model really produced these outputs: a signature only vouches for the node's word; check by re-execution with `vouch replay`".into(),
    );

    let summary = if bundle.signature.is_some() {
        "signature only: trusts the node".to_string()
    } else {
        "unsigned: integrity of the given files only".to_string()
    };
    Ok(Report {
        proven,
        not_proven,
        summary,
    })
}
