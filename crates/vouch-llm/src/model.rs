//! A loaded model ([`LoadedLlm`]: weights, tokenizer, template — shared, behind an `Arc`) and
//! a sequence running on it ([`Session`]: its own KV cache).
//!
//! The weights are Vouch's own ([`crate::transformer`]) behind an `Arc`: a session holds a
//! pointer to them and its own [`KvCache`], nothing else, so any number of sessions share one
//! copy. The node runs chats through the model's [`Batcher`] instead ([`crate::generate_batched`]),
//! which advances every running sequence in one step.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256};
use vouch_core::{Digest, ModelDigest};

use crate::batch::Batcher;
use crate::error::LlmError;
use crate::gguf::{GgufFacts, GgufFile};
use crate::profile::{Profile, ProfileRunner};
use crate::template::ChatTemplate;
use crate::tokenizer::Tokenizer;
use crate::transformer::{KvCache, Step, Transformer};

/// A GGUF loaded for serving: checked, its weights in memory once, shared by every session.
pub struct LoadedLlm {
    digest: ModelDigest,
    facts: GgufFacts,
    tokenizer: Tokenizer,
    template: ChatTemplate,
    context_length: usize,
    weights: Arc<Transformer>,
    /// One scheduler per profile, started on first use.
    batchers: Mutex<HashMap<Profile, Arc<Batcher>>>,
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
        let context_length = usize::try_from(facts.context_length).unwrap_or(usize::MAX);
        // A loader error here is a file fault the checks did not name (a tensor it needs is
        // missing, a key it reads has the wrong type): the file is refused, not the engine.
        let refuse = |e: candle_core::Error| {
            LlmError::Gguf(crate::error::GgufError::Candle(crate::gguf::candle_reason(
                &e,
            )))
        };
        let weights =
            Arc::new(Transformer::from_gguf(facts.architecture, &content, reader).map_err(refuse)?);
        drop(content);
        Ok(Self {
            digest,
            facts,
            tokenizer,
            template,
            context_length,
            weights,
            batchers: Mutex::new(HashMap::new()),
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

    /// Positions a session can hold: the file's context length.
    pub fn context_length(&self) -> usize {
        self.context_length
    }

    /// KV-cache bytes per position: layers × (K + V) × KV heads × head width × 4 (f32).
    pub fn kv_bytes_per_token(&self) -> u64 {
        self.weights.kv_bytes_per_token()
    }

    /// KV-cache bytes of a session holding `positions` positions (what the node budgets; the
    /// cache allocates in steps of 64 positions, so it may run up to 63 positions ahead).
    pub fn kv_bytes_for(&self, positions: usize) -> u64 {
        self.kv_bytes_per_token().saturating_mul(positions as u64)
    }

    /// Bytes of weights in memory (the token embedding stays quantized).
    pub fn weight_bytes(&self) -> u64 {
        self.weights.weight_bytes() as u64
    }

    /// Refuses token ids outside the vocabulary.
    pub(crate) fn check_tokens(&self, tokens: &[u32]) -> Result<(), LlmError> {
        let vocab = self.weights.config.vocab;
        match tokens.iter().find(|&&t| t as usize >= vocab) {
            Some(bad) => Err(LlmError::BadParameter {
                name: "tokens",
                why: format!("token id {bad} is outside the vocabulary of {vocab}"),
            }),
            None => Ok(()),
        }
    }

    /// The model's scheduler for `profile` (started on first use): one kernel thread for
    /// [`Profile::Deterministic`], rayon's global pool size for [`Profile::Fast`].
    pub fn batcher(&self, profile: Profile) -> Result<Arc<Batcher>, LlmError> {
        let mut batchers = self
            .batchers
            .lock()
            .map_err(|_| LlmError::Engine("batchers poisoned".into()))?;
        if let Some(b) = batchers.get(&profile) {
            return Ok(Arc::clone(b));
        }
        let b = Arc::new(Batcher::start(
            Arc::clone(&self.weights),
            self.tokenizer.end_of_generation.clone(),
            profile.threads(),
        )?);
        batchers.insert(profile, Arc::clone(&b));
        Ok(b)
    }

    /// A new sequence on this model, with an empty KV cache.
    pub fn session(self: &Arc<Self>, profile: Profile) -> Result<Session, LlmError> {
        Ok(Session {
            model: Arc::clone(self),
            cache: KvCache::default(),
            runner: ProfileRunner::new(profile)?,
        })
    }
}

/// One sequence: its KV cache, its profile.
pub struct Session {
    model: Arc<LoadedLlm>,
    cache: KvCache,
    runner: ProfileRunner,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("position", &self.cache.len())
            .field("profile", &self.runner.profile())
            .finish_non_exhaustive()
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
        self.cache.len()
    }

    /// Bytes this session's KV cache holds now.
    pub fn kv_cache_bytes(&self) -> u64 {
        self.model.kv_bytes_for(self.position())
    }

    /// Feeds `tokens` after what the session already holds; returns the logits for the next
    /// token. Refuses input that would overrun the context.
    pub fn feed(&mut self, tokens: &[u32]) -> Result<Vec<f32>, LlmError> {
        if tokens.is_empty() {
            return Err(LlmError::EmptyPrompt);
        }
        let context_length = self.model.context_length;
        if self.position() + tokens.len() > context_length {
            return Err(LlmError::PromptTooLong {
                prompt_tokens: self.position() + tokens.len(),
                context_length,
            });
        }
        self.model.check_tokens(tokens)?;
        let weights = &self.model.weights;
        let cache = &mut self.cache;
        let mut logits = self
            .runner
            .run(|| weights.forward(&mut [Step { cache, tokens }]));
        logits
            .pop()
            .ok_or_else(|| LlmError::Engine("the model gave no logits".into()))
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
