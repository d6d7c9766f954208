//! Model execution: turning registered model bytes into outputs, fast.
//!
//! Owns the [`Engine`] trait and its two real implementations (ONNX Runtime through `ort`,
//! loaded dynamically; `tract`, pure Rust and bit-for-bit deterministic), per-model engine
//! choice at registration ([`Engines::admit`]), the memory-bounded cache of compiled models
//! ([`ModelCache`]) and the bounded worker pool with dynamic batching ([`Executor`]).
//!
//! Engines never see a receipt and this crate knows nothing of HTTP, SQL or signatures: it takes
//! bytes and tensors and returns tensors plus a description of how they were computed.

pub mod batch;
pub mod cache;
pub mod engine;
pub mod engines;
pub mod executor;
pub mod ort_engine;
pub mod tract_engine;

pub use cache::ModelCache;
pub use engine::{Engine, EngineKind, ExecError, LoadedModel, RunOutput};
pub use engines::{Admission, Engines};
pub use executor::{Executor, ExecutorConfig, ExecutorStats};
