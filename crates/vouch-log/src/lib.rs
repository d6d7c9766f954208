//! Vouch's transparency log: every receipt and every model, pointer, policy or configuration
//! change becomes an entry in an append-only RFC 6962 Merkle log, published as C2SP signed
//! checkpoints, cosigned by witnesses, mirrored through C2SP tlog-tiles, and provable offline
//! with C2SP tlog-proof files.
//!
//! Two halves. The *verifier* half — [`entry`], [`merkle`], [`checkpoint`], [`cosign`],
//! [`proof`], [`evidence`], [`tiles`], [`witness`], [`audit`], [`history`] — is pure: no async
//! runtime, no clock, no storage, no network; `vouch verify` and other programs embed it with
//! `default-features = false`. The *writer* half (feature `writer`: [`store`], [`log`]) appends
//! with group commit and serves proofs over a [`store::LogStore`], which `vouch-store`
//! implements on SQLite. This crate must not know SQL, HTTP or a particular runtime (tokio):
//! the server spawns [`log::Committer::run`] and maps [`log::LogError`] to HTTP itself.
//!
//! Formats, byte layouts and test vectors: `docs/log.md`.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod audit;
pub mod checkpoint;
pub mod cosign;
pub mod entry;
pub mod evidence;
pub mod history;
pub mod merkle;
pub mod proof;
pub mod tiles;
pub mod witness;

#[cfg(feature = "writer")]
pub mod log;
#[cfg(feature = "writer")]
pub mod store;

pub use checkpoint::{Checkpoint, LogKey, LogSigner, RawSigner};
pub use cosign::{Cosignature, Cosigner, WitnessKey};
pub use entry::{EntryKind, LogEntry};
pub use evidence::{
    InclusionVerified, LogEvidence, TrustPolicy, verify_bundle_log, verify_chat_bundle_log,
    verify_inclusion_offline, verify_log_evidence,
};
#[cfg(feature = "writer")]
pub use log::{Appended, CheckpointView, Committer, Log, LogConfig, LogError};
pub use merkle::Hash;
pub use proof::TlogProof;
#[cfg(feature = "writer")]
pub use store::{LogStore, MemoryStore};
