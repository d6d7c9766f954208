//! The crate's one error type. Each variant says what was wrong and, where it helps, what the
//! caller can change; the node maps [`LlmError::is_invalid_model`] to 422 `invalid_model`.

use thiserror::Error;

/// Why a GGUF was refused: the file is not a GGUF this engine can serve as it stands.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum GgufError {
    #[error("not a GGUF file: the first four bytes are not `GGUF`")]
    NotGguf,
    #[error("GGUF version {0} is not supported (versions 2 and 3 are)")]
    UnsupportedVersion(u32),
    #[error("the file ends inside the {what} (at byte {at} of {len}): truncated or corrupt")]
    Truncated { what: String, at: u64, len: u64 },
    #[error("{what} declares {declared} items, above the limit of {limit}")]
    TooLarge {
        what: String,
        declared: u64,
        limit: u64,
    },
    #[error("metadata key `{key}` has value type {value_type}, which GGUF does not define")]
    BadValueType { key: String, value_type: u32 },
    #[error("metadata key `{key}`: nested arrays are not supported")]
    NestedArray { key: String },
    #[error("metadata key `{key}` is missing")]
    MissingKey { key: String },
    #[error("metadata key `{key}` has the wrong type: expected {expected}")]
    WrongType { key: String, expected: &'static str },
    #[error("metadata key `{key}` is {value}, {why}")]
    BadValue {
        key: String,
        value: String,
        why: &'static str,
    },
    #[error("tensor `{name}` {why}")]
    BadTensor { name: String, why: String },
    #[error("tensor `{name}` is missing")]
    MissingTensor { name: String },
    #[error("architecture `{0}` is not supported (supported: llama, qwen2, qwen3, phi3, gemma3)")]
    UnsupportedArchitecture(String),
    #[error("a tensor or metadata key is named twice")]
    Duplicate,
    #[error("candle could not read the GGUF: {0}")]
    Candle(String),
}

/// Why a tokenizer could not be built from the file's `tokenizer.ggml.*` metadata.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TokenizerError {
    #[error(
        "tokenizer model `{0}` is not supported (supported: gpt2 byte-level BPE, llama SentencePiece BPE)"
    )]
    UnsupportedModel(String),
    #[error("pre-tokenizer `{0}` of a gpt2 tokenizer is not supported")]
    UnsupportedPre(String),
    #[error("tokenizer metadata is inconsistent: {0}")]
    Inconsistent(String),
    #[error("tokenizer failed: {0}")]
    Failed(String),
}

/// Why a chat template could not be rendered.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TemplateError {
    #[error("the chat template does not compile: {0}")]
    Compile(String),
    #[error("the chat template failed on these messages: {0}")]
    Render(String),
}

/// Everything that can go wrong in this crate.
#[derive(Debug, Error)]
pub enum LlmError {
    #[error("invalid GGUF: {0}")]
    Gguf(#[from] GgufError),
    #[error("invalid tokenizer: {0}")]
    Tokenizer(#[from] TokenizerError),
    #[error("chat template: {0}")]
    Template(#[from] TemplateError),
    #[error("reading the model file: {0}")]
    Io(#[from] std::io::Error),
    #[error(
        "the prompt has {prompt_tokens} tokens; the model's context is {context_length} tokens (prompt plus completion must fit)"
    )]
    PromptTooLong {
        prompt_tokens: usize,
        context_length: usize,
    },
    #[error("the prompt is empty: at least one token is needed")]
    EmptyPrompt,
    #[error("invalid generation parameter `{name}`: {why}")]
    BadParameter { name: &'static str, why: String },
    #[error(
        "this model's weights are in use by another session (qwen2 sessions are exclusive); retry later"
    )]
    Busy,
    #[error("engine failure: {0}")]
    Engine(String),
}

impl LlmError {
    /// True when the model file itself is at fault (the node answers 422 `invalid_model`),
    /// false for a caller's request or an engine fault.
    pub fn is_invalid_model(&self) -> bool {
        matches!(
            self,
            LlmError::Gguf(_)
                | LlmError::Tokenizer(_)
                | LlmError::Template(TemplateError::Compile(_))
        )
    }
}

impl From<candle_core::Error> for LlmError {
    fn from(e: candle_core::Error) -> Self {
        LlmError::Engine(crate::gguf::candle_reason(&e))
    }
}
