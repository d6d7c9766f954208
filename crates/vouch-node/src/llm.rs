//! LLMs in the node: registering GGUF files, keeping loaded models in memory (a few, the most
//! recently used), and admitting chats against a bounded number of sequences and a bounded
//! KV-cache memory budget. The engine itself is `vouch-llm`; the chat pipeline is `chat.rs`.

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use vouch_core::{ErrorCode, ModelDigest};
use vouch_llm::{GgufFacts, LlmError, LoadedLlm};
use vouch_store::Store;

use crate::error::NodeError;

/// The registry's `engine` for GGUF models.
pub const LLM_ENGINE: &str = "candle";

/// Whether a registry engine serves chat (GGUF weights, or an upstream endpoint) rather than
/// `/v1/infer`.
pub fn is_chat_engine(engine: &str) -> bool {
    engine == LLM_ENGINE || engine == crate::gateway::UPSTREAM_ENGINE
}

/// `[llm]`: what chats may take from this node.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmSettings {
    /// Most completion tokens one request may ask for (`max_tokens`); more is refused.
    pub max_tokens_limit: u32,
    /// The budget when neither the request nor the model's configuration gives one.
    pub default_max_tokens: u32,
    /// Chats generating at once; one more waits for `queue_wait_ms`, then gets 503.
    pub max_concurrent: usize,
    /// KV-cache memory all running chats may hold together, in MiB. A chat reserves what its
    /// prompt plus `max_tokens` would take before it starts.
    pub kv_budget_mib: u64,
    /// Models kept loaded (least recently used dropped first).
    pub max_loaded: usize,
    /// `deterministic` (one kernel thread per model) or `fast` (all cores). Both replay bit
    /// for bit: the kernels compute every value in one order whatever the threads or the batch.
    pub profile: vouch_llm::Profile,
    /// How long a chat waits for a free slot before 503.
    pub queue_wait_ms: u64,
    /// Gateway mode: bearer keys for upstream endpoints, by the name a descriptor's `api_key`
    /// gives. Never served or printed.
    pub upstream_keys: crate::gateway::UpstreamKeys,
    /// Gateway mode: longest an upstream chat may take, in milliseconds.
    pub upstream_timeout_ms: u64,
    /// Gateway mode: largest upstream answer read (whole body, or a stream's bytes).
    pub upstream_max_response_bytes: usize,
}

impl Default for LlmSettings {
    fn default() -> Self {
        LlmSettings {
            max_tokens_limit: 4096,
            default_max_tokens: 256,
            max_concurrent: 4,
            kv_budget_mib: 1024,
            max_loaded: 2,
            profile: vouch_llm::Profile::Deterministic,
            queue_wait_ms: 2000,
            upstream_keys: Default::default(),
            upstream_timeout_ms: 300_000,
            upstream_max_response_bytes: 16 << 20,
        }
    }
}

/// Maps an engine error to what the caller sees: the file's fault is `invalid_model`, the
/// request's `bad_request`, anything else internal.
pub fn llm_error(e: LlmError) -> NodeError {
    match &e {
        _ if e.is_invalid_model() => NodeError::new(ErrorCode::InvalidModel, e.to_string()),
        LlmError::PromptTooLong { .. } => NodeError::new(ErrorCode::BadRequest, e.to_string())
            .with_reason("context_length_exceeded"),
        LlmError::EmptyPrompt | LlmError::BadParameter { .. } | LlmError::Template(_) => {
            NodeError::new(ErrorCode::BadRequest, e.to_string())
        }
        LlmError::Busy => NodeError::new(ErrorCode::Overloaded, e.to_string()),
        _ => NodeError::new(ErrorCode::ExecutionFailed, e.to_string()),
    }
}

/// True when `bytes` start like a GGUF file (magic `GGUF`).
pub fn is_gguf(bytes: &[u8]) -> bool {
    bytes.starts_with(b"GGUF")
}

/// Checks a GGUF as registration does (header, tensors against it, tokenizer, template) and
/// returns its facts. Runs on a blocking thread: it hashes and walks the whole file.
pub async fn inspect(bytes: bytes::Bytes) -> Result<GgufFacts, NodeError> {
    tokio::task::spawn_blocking(move || vouch_llm::inspect(&mut Cursor::new(&bytes[..])))
        .await
        .map_err(NodeError::internal)?
        .map(|i| i.facts)
        .map_err(|e| {
            NodeError::new(
                ErrorCode::InvalidModel,
                format!("not a GGUF this node can serve: {e}"),
            )
        })
}

/// A slot to generate in: released (with its KV-cache reservation) when dropped.
pub struct ChatSlot {
    _sequence: OwnedSemaphorePermit,
    _kv: OwnedSemaphorePermit,
}

/// Loaded LLMs and chat admission.
pub struct Llms {
    store: Store,
    pub settings: LlmSettings,
    /// Gateway mode's HTTP client.
    pub gateway: crate::gateway::Gateway,
    /// digest → the model, loaded once however many chats wait for it.
    loaded: std::sync::Mutex<HashMap<ModelDigest, Arc<tokio::sync::OnceCell<Arc<LoadedLlm>>>>>,
    /// Use order, most recent last, for eviction.
    recency: std::sync::Mutex<Vec<ModelDigest>>,
    sequences: Arc<Semaphore>,
    /// One permit per MiB of KV cache.
    kv_mib: Arc<Semaphore>,
}

impl Llms {
    pub fn new(store: Store, settings: LlmSettings) -> Result<Self, NodeError> {
        let kv = usize::try_from(settings.kv_budget_mib.max(1)).unwrap_or(usize::MAX >> 4);
        let gateway = crate::gateway::Gateway::new(
            settings.upstream_keys.clone(),
            std::time::Duration::from_millis(settings.upstream_timeout_ms),
            settings.upstream_max_response_bytes,
        )?;
        Ok(Llms {
            store,
            gateway,
            sequences: Arc::new(Semaphore::new(settings.max_concurrent.max(1))),
            kv_mib: Arc::new(Semaphore::new(kv.min(Semaphore::MAX_PERMITS))),
            settings,
            loaded: Default::default(),
            recency: Default::default(),
        })
    }

    /// The loaded model, loading it from the blob folder on first use (concurrent callers
    /// share one load).
    pub async fn get(&self, digest: ModelDigest) -> Result<Arc<LoadedLlm>, NodeError> {
        let cell = {
            let mut loaded = self.loaded.lock().map_err(NodeError::internal)?;
            loaded.entry(digest).or_default().clone()
        };
        let store = self.store.clone();
        let model = cell
            .get_or_try_init(|| async move {
                let bytes = store
                    .blobs
                    .get_model(&digest)
                    .await
                    .map_err(|e| NodeError::internal(format!("reading {digest}: {e}")))?;
                let llm = tokio::task::spawn_blocking(move || {
                    LoadedLlm::from_reader(&mut Cursor::new(&bytes[..]))
                })
                .await
                .map_err(NodeError::internal)?
                .map_err(llm_error)?;
                if llm.digest() != digest {
                    return Err(NodeError::internal(format!(
                        "blob {digest} hashes to {}",
                        llm.digest()
                    )));
                }
                Ok::<_, NodeError>(Arc::new(llm))
            })
            .await?
            .clone();
        self.touch(digest);
        Ok(model)
    }

    /// Marks `digest` used and drops the least recently used models beyond `max_loaded`
    /// (chats still running keep theirs through their `Arc`).
    fn touch(&self, digest: ModelDigest) {
        let (Ok(mut recency), Ok(mut loaded)) = (self.recency.lock(), self.loaded.lock()) else {
            return;
        };
        recency.retain(|d| *d != digest);
        recency.push(digest);
        while recency.len() > self.settings.max_loaded.max(1) {
            let old = recency.remove(0);
            loaded.remove(&old);
        }
    }

    /// Waits (bounded) for a sequence slot and `kv_bytes` of KV-cache budget; 503 when the node
    /// is full, 400 when one chat alone would exceed the whole budget.
    pub async fn admit(&self, kv_bytes: u64) -> Result<ChatSlot, NodeError> {
        let mib = kv_bytes.div_ceil(1 << 20).max(1);
        if mib > self.settings.kv_budget_mib {
            return Err(NodeError::new(
                ErrorCode::BadRequest,
                format!(
                    "this prompt plus max_tokens needs {mib} MiB of KV cache; this node's budget is {} MiB: ask for fewer tokens",
                    self.settings.kv_budget_mib
                ),
            )
            .with_reason("kv_budget"));
        }
        let wait = std::time::Duration::from_millis(self.settings.queue_wait_ms);
        let full = || {
            NodeError::new(
                ErrorCode::Overloaded,
                "every chat slot of this node is busy; retry shortly",
            )
        };
        let take = async {
            let sequence = self.sequences.clone().acquire_owned().await;
            let kv = self
                .kv_mib
                .clone()
                .acquire_many_owned(u32::try_from(mib).unwrap_or(u32::MAX))
                .await;
            (sequence, kv)
        };
        match tokio::time::timeout(wait, take).await {
            Ok((Ok(s), Ok(k))) => Ok(ChatSlot {
                _sequence: s,
                _kv: k,
            }),
            _ => Err(full()),
        }
    }
}
