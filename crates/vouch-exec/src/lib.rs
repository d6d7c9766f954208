//! Model execution: turning registered model bytes into outputs, fast.
//!
//! Owns the [`Engine`] trait and its two real implementations (ONNX Runtime through `ort`,
//! loaded dynamically; `tract`, pure Rust and bit-for-bit deterministic), per-model engine
//! choice at registration ([`Engines::admit`]), the memory-bounded cache of compiled models
//! ([`ModelCache`]) and the bounded worker pool with dynamic batching ([`Executor`]).
//!
//! Every model file passes one gate before an engine sees it ([`ModelFile`]: self-contained,
//! bounded graph, batching only when rows are proven independent), and every run is bounded
//! ([`RunControl`]: deadline, cancellation when the caller goes away, memory budget); a panic
//! in an engine fails its run, never its worker.
//!
//! Engines never see a receipt and this crate knows nothing of HTTP, SQL or signatures: it takes
//! bytes and tensors and returns tensors plus a description of how they were computed.

pub mod batch;
pub mod cache;
pub mod engine;
pub mod engines;
pub mod executor;
pub mod model_file;
pub mod ort_engine;
pub mod row_independence;
pub mod run_control;
pub mod tract_engine;

pub use cache::ModelCache;
pub use engine::{Engine, EngineKind, ExecError, LoadedModel, RunOutput};
pub use engines::{Admission, Engines};
pub use executor::{Executor, ExecutorConfig, ExecutorStats, RunHandle};
pub use model_file::{ModelFile, ModelLimits};
pub use run_control::{RunControl, StopReason};
