//! Checking a `signed`-tier signature: pure, offline, no clock.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, VerifyingKey};
use vouch_core::{BundleSignature, ChatReceipt, NodeKey, Receipt};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("unsupported signature algorithm {0:?}: this verifier knows ed25519")]
    UnsupportedAlg(String),
    #[error("signature is not 64 bytes of standard base64")]
    Malformed,
    #[error("node key {0} is not a valid Ed25519 public key")]
    BadKey(NodeKey),
    #[error(
        "signature does not match the receipt under node key {0}: the receipt or signature was altered, or another key signed it"
    )]
    Mismatch(NodeKey),
    #[error("receipt was signed by {actual}, which is not the trusted key {expected}")]
    Untrusted { expected: NodeKey, actual: NodeKey },
}

/// Verifies `sig` over `receipt` with the key the receipt names, and, if given, that this key is
/// the one the caller trusts. Strict verification: rejects non-canonical and small-order forms.
pub fn verify_receipt_signature(
    receipt: &Receipt,
    sig: &BundleSignature,
    trusted: Option<&NodeKey>,
) -> Result<(), SignatureError> {
    verify_signed_message(&receipt.signing_message(), &receipt.node_key, sig, trusted)
}

/// As [`verify_receipt_signature`] for a chat receipt (its own signing domain).
pub fn verify_chat_receipt_signature(
    receipt: &ChatReceipt,
    sig: &BundleSignature,
    trusted: Option<&NodeKey>,
) -> Result<(), SignatureError> {
    verify_signed_message(&receipt.signing_message(), &receipt.node_key, sig, trusted)
}

/// The one Ed25519 check behind both receipt kinds: `sig` over `message` by `node_key`, which
/// must be `trusted` when given. `message` is a receipt kind's domain-separated signing message.
pub fn verify_signed_message(
    message: &[u8],
    node_key: &NodeKey,
    sig: &BundleSignature,
    trusted: Option<&NodeKey>,
) -> Result<(), SignatureError> {
    if sig.alg != "ed25519" {
        return Err(SignatureError::UnsupportedAlg(
            sig.alg.chars().take(32).collect(),
        ));
    }
    let raw = B64
        .decode(&sig.sig)
        .map_err(|_| SignatureError::Malformed)?;
    let raw: [u8; 64] = raw.try_into().map_err(|_| SignatureError::Malformed)?;
    let key =
        VerifyingKey::from_bytes(&node_key.0).map_err(|_| SignatureError::BadKey(*node_key))?;
    key.verify_strict(message, &Signature::from_bytes(&raw))
        .map_err(|_| SignatureError::Mismatch(*node_key))?;
    if let Some(expected) = trusted
        && expected != node_key
    {
        return Err(SignatureError::Untrusted {
            expected: *expected,
            actual: *node_key,
        });
    }
    Ok(())
}
