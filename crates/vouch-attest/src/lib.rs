//! Node identity and evidence: the Ed25519 key a node signs receipts with, the verifier for
//! those signatures, and the `tee` tier ([`tee`]): producers that ask TEE hardware for evidence
//! binding the node key, and pure verifiers for that evidence. The server makes the key with
//! [`NodeSigner::generate`] at boot when a TEE producer is configured (never from disk), attests
//! it once, and attaches that evidence to every `tee` receipt.
//!
//! The verifier half ([`verify`]) is pure: no files, no clock, no network, so offline verifiers
//! can embed it. The signer half ([`signer`]) reads and writes the node's key file. This crate
//! must not know about HTTP, databases or engines.

pub mod signer;
pub mod tee;
pub mod verify;

pub use signer::{NodeSigner, SignerError};
pub use verify::{SignatureError, verify_receipt_signature};
