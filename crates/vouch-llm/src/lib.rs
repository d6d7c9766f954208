//! Vouch's LLM engine layer: GGUF models on candle, behind types of its own.
//!
//! - [`gguf`]: the gate every GGUF passes (bounded header walk, tensor ranges and shapes
//!   against the header) and the [`GgufFacts`] registration shows.
//! - [`tokenizer`], [`template`]: the tokenizer and chat template, both from the file itself.
//! - [`model`]: [`LoadedLlm`] (weights, shared through an `Arc`) and [`Session`] (one
//!   sequence, its own KV cache).
//! - [`sampler`], [`generate`]: reproducible token choice and the generation loop.
//! - [`profile`]: deterministic (one-thread kernels) or fast.
//!
//! No HTTP, no SQL, no receipts: the node wraps these calls (docs/llm.md).

pub mod batch;
pub mod engine;
pub mod error;
pub mod generate;
pub mod gguf;
pub mod kernels;
pub mod model;
pub mod profile;
pub mod sampler;
pub mod template;
pub mod tokenizer;
mod transformer;

pub use batch::Batcher;
pub use engine::EngineId;
pub use error::{GgufError, LlmError, TemplateError, TokenizerError};
pub use generate::{
    FinishReason, GenerateRequest, Generation, TokenEvent, Usage, generate, generate_batched,
};
pub use gguf::{Architecture, GgufFacts, GgufFile};
pub use model::{Inspected, LoadedLlm, Session, inspect};
pub use profile::Profile;
pub use sampler::SamplingParams;
pub use template::{ChatTemplate, Message, Role};
pub use tokenizer::Tokenizer;
