//! Node identity and evidence: the Ed25519 key a node signs receipts with, the verifier for
//! those signatures, and the `tee` tier ([`tee`]): producers that ask TEE hardware for evidence
//! binding the node key, and pure verifiers for that evidence. The server makes the key with
//! [`NodeSigner::generate`] at boot when a TEE producer is configured (never from disk), attests
//! it once, and attaches that evidence to every `tee` receipt.
//!
//! The verifier half ([`verify`], the `tee` verifiers) is pure: no files, no clock, no network,
//! so offline verifiers can embed it. The producer half (cargo feature `producer`, on by
//! default) is the signer ([`signer`], which reads and writes the node's key file) and the TEE
//! evidence producers; verifiers build without it (`default-features = false`). This crate must
//! not know about HTTP, databases or engines.

#[cfg(feature = "producer")]
pub mod signer;
pub mod tee;
pub mod verify;

#[cfg(feature = "producer")]
pub use signer::{NodeSigner, SignerError};
pub use verify::{
    SignatureError, verify_chat_receipt_signature, verify_receipt_signature, verify_signed_message,
};
