//! Vouch's shared vocabulary: content digests, tensors and their canonical digest, model
//! signatures, receipts and their canonical byte encoding, receipt bundles, and the stable error
//! codes every layer reports.
//!
//! This crate owns *formats*, not behaviour: it must not execute models, sign, touch a network,
//! a database or an async runtime. Anything that checks a receipt offline depends on it, so it
//! stays small and pure (only `serde`, `sha2` and friends).

pub mod bundle;
pub mod chat;
pub mod digest;
pub mod error;
pub mod model;
pub mod receipt;
#[cfg(feature = "utoipa")]
mod schema;
pub mod tensor;

pub use bundle::{BUNDLE_FORMAT, Bundle, BundleSignature};
pub use chat::{
    CHAT_BUNDLE_FORMAT, CHAT_RECEIPT_VERSION, ChatBundle, ChatKind, ChatReceipt, ChunkLink,
    FinishReason, FiniteF64, Sampling, Seed, StreamChain, StreamCommitment, Usage,
};
pub use digest::{Digest, DigestParseError, ModelDigest};
pub use error::ErrorCode;
pub use model::{Dim, ModelRef, ModelSignature, TensorSpec};
pub use receipt::{
    EngineInfo, ExecProfile, NodeKey, PaymentRef, RECEIPT_VERSION, Receipt, Tier, canonical_config,
    config_digest,
};
pub use tensor::{DType, Tensor, TensorData, TensorError, TensorMap};
