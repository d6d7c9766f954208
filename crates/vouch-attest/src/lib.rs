//! Node identity and evidence: the Ed25519 key a node signs receipts with, and the verifier for
//! those signatures. Later, TEE evidence producers and verifiers live here too.
//!
//! The verifier half ([`verify`]) is pure: no files, no clock, no network, so offline verifiers
//! can embed it. The signer half ([`signer`]) reads and writes the node's key file. This crate
//! must not know about HTTP, databases or engines.

pub mod signer;
pub mod tee;
pub mod verify;

pub use signer::{NodeSigner, SignerError};
pub use verify::{verify_receipt_signature, SignatureError};
