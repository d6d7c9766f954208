//! Verifiable chat, the node's second pipeline: an OpenAI chat request → the model's
//! configuration applied → the GGUF's own template and tokenizer → seeded generation on
//! candle → a chat receipt (`docs/receipt.md`, "Chat receipts") committing to the whole request
//! as received, the tokens, the text and the sampling actually used → signature, evidence and
//! the durable log entry → the answer, whole or streamed.
//!
//! A stream's chunks are built here, byte for byte: each carries its place in the stream's
//! hash chain, and the receipt (the last event) commits to the chain's head, so the server
//! only frames these bytes as server-sent events. Generation runs on a blocking thread and
//! stops when the caller goes away; what was generated is still receipted and logged, with
//! finish reason `cancelled`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use vouch_api::openai::{
    AssistantMessage, ChatChoice, ChatCompletion, ChatCompletionChunk, ChatCompletionRequest,
    ChatMessage, ChatReceiptEvent, ChunkChoice, ChunkDelta, CompletionUsage, MessageContent,
    WireFinishReason,
};
use vouch_core::chat::{
    CHAT_BUNDLE_FORMAT, CHAT_RECEIPT_VERSION, ChatBundle, ChatKind, ChatReceipt, FinishReason,
    FiniteF64, Sampling, Seed, StreamChain, StreamCommitment, Usage, completion_digest,
    request_digest, tokens_digest,
};
use vouch_core::{EngineInfo, ErrorCode, ExecProfile, ModelDigest, ModelRef, Tier};
use vouch_llm::{GenerateRequest, Generation, LoadedLlm, Message, Role, SamplingParams};

use crate::Node;
use crate::error::NodeError;
use crate::llm::{ChatSlot, LLM_ENGINE, llm_error};

/// A chat request, as the transport hands it over.
pub struct ChatCall {
    /// The body as received, parsed once: the receipt commits to its RFC 8785 form, fields
    /// Vouch does not use included.
    pub body: Value,
    pub request: ChatCompletionRequest,
    /// Tiers asked for (the body's `tiers`, an extension the SDKs send as `extra_body`).
    pub tiers: Vec<Tier>,
}

/// A chat's answer.
pub enum ChatAnswer {
    Complete(Box<ChatCompletion>),
    /// The `data:` payloads of a server-sent-event stream, in order: the chunks, then the
    /// receipt event. The transport adds the final `[DONE]`. Dropping the receiver stops
    /// generation (the caller left).
    Stream(mpsc::Receiver<Bytes>),
}

/// Everything decided before generation starts.
struct Prepared {
    digest: ModelDigest,
    model_name: String,
    model_ref: Option<String>,
    config_digest: Option<vouch_core::Digest>,
    tiers: Vec<Tier>,
    llm: Arc<LoadedLlm>,
    generate: GenerateRequest,
    request_id: String,
    request_digest: vouch_core::Digest,
    include_usage: bool,
    created: u64,
}

/// Sets the flag when dropped unless disarmed: a caller that stops waiting stops generation.
struct CancelOnDrop(Arc<AtomicBool>, bool);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.1 {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}

fn bad(message: impl Into<String>) -> NodeError {
    NodeError::new(ErrorCode::BadRequest, message)
}

/// Refuses what Vouch would otherwise silently ignore: a receipt must not claim a request was
/// honoured in full when a part of it had no effect.
fn check_supported(r: &ChatCompletionRequest) -> Result<(), NodeError> {
    if r.n.is_some_and(|n| n != 1) {
        return Err(
            bad("n: a chat receipt covers one choice; ask for n = 1").with_reason("unsupported")
        );
    }
    if r.logprobs == Some(true) || r.top_logprobs.is_some_and(|n| n > 0) {
        return Err(bad("logprobs are not returned by this node").with_reason("unsupported"));
    }
    let nonzero = |p: Option<f64>| p.is_some_and(|x| x != 0.0);
    if nonzero(r.frequency_penalty.map(|p| p.get())) || nonzero(r.presence_penalty.map(|p| p.get()))
    {
        return Err(bad(
            "frequency_penalty / presence_penalty are not implemented by this node's sampler",
        )
        .with_reason("unsupported"));
    }
    if r.logit_bias.as_ref().is_some_and(|b| !b.is_empty()) {
        return Err(
            bad("logit_bias is not implemented by this node's sampler").with_reason("unsupported")
        );
    }
    Ok(())
}

fn text_of(content: &MessageContent, index: usize) -> Result<String, NodeError> {
    if let MessageContent::Parts(parts) = content
        && parts
            .iter()
            .any(|p| !matches!(p, vouch_api::openai::ContentPart::Text { .. }))
    {
        return Err(bad(format!(
            "messages[{index}]: only text content parts are supported by this node's models"
        )));
    }
    Ok(content.text())
}

/// The conversation as the template sees it: the configuration's system prompt first.
fn messages(config: &Value, request: &[ChatMessage]) -> Result<Vec<Message>, NodeError> {
    let mut out = Vec::with_capacity(request.len() + 1);
    if let Some(prompt) = config.get("system_prompt").and_then(Value::as_str) {
        out.push(Message::new(Role::System, prompt));
    }
    for (i, m) in request.iter().enumerate() {
        out.push(match m {
            ChatMessage::System { content, .. } | ChatMessage::Developer { content, .. } => {
                Message::new(Role::System, text_of(content, i)?)
            }
            ChatMessage::User { content, .. } => Message::new(Role::User, text_of(content, i)?),
            ChatMessage::Assistant { content, .. } => Message::new(
                Role::Assistant,
                match content {
                    Some(c) => text_of(c, i)?,
                    None => String::new(),
                },
            ),
            ChatMessage::Tool { content, .. } => Message::new(Role::Tool, text_of(content, i)?),
        });
    }
    Ok(out)
}

fn config_f64(config: &Value, key: &str) -> Option<f64> {
    config.get(key).and_then(Value::as_f64)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn wire_finish(f: vouch_llm::FinishReason) -> (FinishReason, WireFinishReason) {
    match f {
        vouch_llm::FinishReason::Stop => (FinishReason::Stop, WireFinishReason::Stop),
        vouch_llm::FinishReason::Length => (FinishReason::Length, WireFinishReason::Length),
        // Only a caller that left sees no answer: the receipt says `cancelled`.
        vouch_llm::FinishReason::Cancelled => (FinishReason::Cancelled, WireFinishReason::Stop),
    }
}

impl Node {
    /// Answers a chat completion request, whole or streamed (`stream: true`).
    pub async fn chat(self: &Arc<Self>, call: ChatCall) -> Result<ChatAnswer, NodeError> {
        let stream = call.request.is_stream();
        let (prepared, slot) = self.prepare_chat(call).await?;
        let cancel = Arc::new(AtomicBool::new(false));
        if stream {
            let (tx, rx) = mpsc::channel(64);
            let node = self.clone();
            tokio::spawn(async move {
                if let Err(e) = node.run_chat(prepared, slot, cancel, Some(tx)).await {
                    tracing::warn!("chat stream ended with an error: {}", e.message);
                }
            });
            return Ok(ChatAnswer::Stream(rx));
        }
        // Run apart from the caller's future, so a caller that leaves still gets its partial
        // generation receipted and logged; the guard tells the run it left.
        let (done_tx, done_rx) = oneshot::channel();
        let node = self.clone();
        let flag = cancel.clone();
        tokio::spawn(async move {
            let _ = done_tx.send(node.run_chat(prepared, slot, flag, None).await);
        });
        let mut guard = CancelOnDrop(cancel, true);
        let answer = done_rx
            .await
            .map_err(|_| NodeError::internal("the chat task ended without an answer"))?;
        guard.1 = false;
        match answer? {
            Some(c) => Ok(ChatAnswer::Complete(Box::new(c))),
            None => Err(NodeError::internal(
                "a chat that is not streamed returned no completion",
            )),
        }
    }

    async fn prepare_chat(&self, call: ChatCall) -> Result<(Prepared, ChatSlot), NodeError> {
        let ChatCall {
            body,
            request,
            tiers,
        } = call;
        check_supported(&request)?;
        if self.pay.is_some() {
            return Err(NodeError::new(
                ErrorCode::PaymentUnavailable,
                "this node takes x402 payments, and chat has no per-token price yet: it is not served rather than served free",
            ));
        }
        if tiers.contains(&Tier::Zk) {
            return Err(NodeError::new(
                ErrorCode::TierUnavailable,
                "zk: no proof system here covers LLM generation (a transformer's matmuls, attention and sampling); ask for signed or tee",
            )
            .with_reason("zk_llm"));
        }
        let (model_ref, digest) = self.catalog.resolve_str(&request.model).await?;
        let rec = self.store.model(&digest).await?.ok_or_else(|| {
            NodeError::new(
                ErrorCode::ModelNotFound,
                format!("no model with digest {digest}"),
            )
        })?;
        if rec.engine != LLM_ENGINE {
            return Err(bad(format!(
                "model {} is an ONNX model: use POST /v1/infer; chat needs a GGUF model",
                request.model
            ))
            .with_reason("not_an_llm"));
        }
        let decision = crate::policy::decide(self, &digest, tiers, false).await?;
        let config = self.store.model_config(&digest).await?;
        let (config_digest, config) = match config {
            Some(c) => (Some(c.config_digest), c.config),
            None => (None, Value::Null),
        };
        let settings = &self.llms.settings;
        let max_tokens = request
            .max_tokens()
            .or_else(|| {
                config
                    .get("max_tokens")
                    .and_then(Value::as_u64)
                    .and_then(|n| u32::try_from(n).ok())
            })
            .unwrap_or(settings.default_max_tokens);
        if max_tokens == 0 || max_tokens > settings.max_tokens_limit {
            return Err(bad(format!(
                "max_tokens {max_tokens}: this node generates 1 to {} tokens per request",
                settings.max_tokens_limit
            ))
            .with_reason("max_tokens"));
        }
        let seed = match request.seed {
            Some(s) => u64::try_from(s).map_err(|_| bad("seed: must be 0 or more"))?,
            // Any value will do, and the receipt records it: replay needs no more.
            None => rand_seed(),
        };
        let sampling = SamplingParams {
            temperature: request
                .temperature
                .map(|t| t.get())
                .or_else(|| config_f64(&config, "temperature"))
                .unwrap_or(1.0),
            top_p: request
                .top_p
                .map(|p| p.get())
                .or_else(|| config_f64(&config, "top_p"))
                .unwrap_or(1.0),
            top_k: 0,
            seed,
        };
        let stop = match &request.stop {
            Some(s) => s.to_vec(),
            None => config
                .get("stop")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
        };
        let conversation = messages(&config, &request.messages)?;
        let llm = self.llms.get(digest).await?;
        let (_, prompt_tokens) = llm.chat_prompt(&conversation, true).map_err(llm_error)?;
        let generate = GenerateRequest {
            prompt_tokens,
            max_tokens,
            sampling,
            stop,
        };
        generate.validate(llm.context_length()).map_err(llm_error)?;
        let positions =
            (generate.prompt_tokens.len() + max_tokens as usize).min(llm.context_length());
        let slot = self.llms.admit(llm.kv_bytes_for(positions)).await?;
        let request_digest =
            request_digest(&body).map_err(|e| bad(format!("request body: {e}")))?;
        Ok((
            Prepared {
                digest,
                // What the answer's `model` says: the receipt's `model_ref`, else the digest.
                model_name: match &model_ref {
                    ModelRef::Digest(d) => d.to_string(),
                    named => named.to_string(),
                },
                model_ref: match &model_ref {
                    ModelRef::Digest(_) => None,
                    named => Some(named.to_string()),
                },
                config_digest,
                tiers: decision.tiers,
                llm,
                generate,
                request_id: uuid::Uuid::now_v7().to_string(),
                request_digest,
                include_usage: request
                    .stream_options
                    .as_ref()
                    .is_some_and(|o| o.include_usage == Some(true)),
                created: unix_now(),
            },
            slot,
        ))
    }

    /// Generates, streams (when `out` is given), receipts and logs. Returns the whole answer
    /// when not streaming.
    async fn run_chat(
        &self,
        p: Prepared,
        slot: ChatSlot,
        cancel: Arc<AtomicBool>,
        out: Option<mpsc::Sender<Bytes>>,
    ) -> Result<Option<ChatCompletion>, NodeError> {
        let streaming = out.is_some();
        let (deltas_tx, mut deltas) = mpsc::channel::<String>(256);
        let llm = p.llm.clone();
        let request = p.generate.clone();
        let profile = self.llms.settings.profile;
        let flag = cancel.clone();
        let generation = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            // Through the model's batcher: this chat's decode steps share one pass over the
            // weights with the other chats on the model, and give the tokens it would alone.
            vouch_llm::generate_batched(
                &llm,
                profile,
                &request,
                &|| flag.load(Ordering::Relaxed),
                &mut |ev| {
                    if streaming
                        && !ev.text.is_empty()
                        && deltas_tx.blocking_send(ev.text.to_owned()).is_err()
                    {
                        flag.store(true, Ordering::Relaxed);
                    }
                },
            )
        });
        let id = format!("chatcmpl-{}", p.request_id);
        let mut chain = StreamChain::new(&p.request_digest, &p.request_id);
        let mut sink = Sink {
            streaming,
            out,
            cancel: &cancel,
        };
        let chunk = |chain: &StreamChain, delta: ChunkDelta, finish, usage| ChatCompletionChunk {
            id: id.clone(),
            object: ChatCompletionChunk::OBJECT.into(),
            created: p.created,
            model: p.model_name.clone(),
            choices: match usage {
                Some(Some(_)) => Vec::new(),
                _ => vec![ChunkChoice {
                    index: 0,
                    delta,
                    logprobs: None,
                    finish_reason: finish,
                }],
            },
            usage: if p.include_usage {
                Some(usage.flatten())
            } else {
                None
            },
            system_fingerprint: None,
            vouch: chain.next(),
        };
        if sink.is_streaming() {
            let first = chunk(
                &chain,
                ChunkDelta {
                    role: Some("assistant".into()),
                    content: Some(String::new()),
                    ..Default::default()
                },
                None,
                None,
            );
            sink.send_chunk(&mut chain, &first).await?;
            while let Some(text) = deltas.recv().await {
                let c = chunk(
                    &chain,
                    ChunkDelta {
                        content: Some(text),
                        ..Default::default()
                    },
                    None,
                    None,
                );
                sink.send_chunk(&mut chain, &c).await?;
            }
        }
        let g: Generation = generation
            .await
            .map_err(NodeError::internal)?
            .map_err(llm_error)?;
        let (finish, wire) = wire_finish(g.finish_reason);
        let usage = CompletionUsage {
            prompt_tokens: g.usage.prompt_tokens,
            completion_tokens: g.usage.completion_tokens,
            total_tokens: g.usage.total_tokens,
        };
        if sink.is_streaming() {
            let rest = g.text.get(g.streamed_bytes..).unwrap_or("");
            if !rest.is_empty() {
                let c = chunk(
                    &chain,
                    ChunkDelta {
                        content: Some(rest.to_owned()),
                        ..Default::default()
                    },
                    None,
                    None,
                );
                sink.send_chunk(&mut chain, &c).await?;
            }
            let last = chunk(&chain, ChunkDelta::default(), Some(wire), None);
            sink.send_chunk(&mut chain, &last).await?;
            if p.include_usage {
                let u = chunk(&chain, ChunkDelta::default(), None, Some(Some(usage)));
                sink.send_chunk(&mut chain, &u).await?;
            }
        }
        let stream = if sink.is_streaming() {
            chain.commitment()
        } else {
            None
        };
        let bundle = self.chat_bundle(&p, &g, finish, stream, profile).await?;
        if sink.is_streaming() {
            let event = ChatReceiptEvent::new(bundle);
            let bytes = serde_json::to_vec(&event).map_err(NodeError::internal)?;
            sink.send(Bytes::from(bytes)).await;
            return Ok(None);
        }
        Ok(Some(ChatCompletion {
            id,
            object: ChatCompletion::OBJECT.into(),
            created: p.created,
            model: p.model_name.clone(),
            choices: vec![ChatChoice {
                index: 0,
                message: AssistantMessage {
                    role: "assistant".into(),
                    content: Some(g.text.clone()),
                    refusal: None,
                    tool_calls: None,
                },
                logprobs: None,
                finish_reason: wire,
            }],
            usage,
            system_fingerprint: None,
            vouch: Some(bundle),
        }))
    }

    /// The receipt for a finished generation, signed, with its evidence and durable log entry.
    async fn chat_bundle(
        &self,
        p: &Prepared,
        g: &Generation,
        finish: FinishReason,
        stream: Option<StreamCommitment>,
        profile: vouch_llm::Profile,
    ) -> Result<ChatBundle, NodeError> {
        let finite = |x: f64, what: &str| {
            FiniteF64::new(x).ok_or_else(|| NodeError::internal(format!("{what} is not finite")))
        };
        let id = vouch_llm::EngineId::current();
        let receipt = ChatReceipt {
            kind: ChatKind,
            version: CHAT_RECEIPT_VERSION,
            request_id: p.request_id.clone(),
            request_digest: p.request_digest,
            model: p.digest,
            model_ref: p.model_ref.clone(),
            config_digest: p.config_digest,
            executed_by: None,
            sampling: Sampling {
                temperature: finite(g.sampling.temperature, "temperature")?,
                top_p: finite(g.sampling.top_p, "top_p")?,
                max_tokens: p.generate.max_tokens,
                stop: p.generate.stop.clone(),
                seed: Some(Seed(g.sampling.seed)),
            },
            prompt_tokens_digest: Some(
                tokens_digest(&g.prompt_tokens).map_err(NodeError::internal)?,
            ),
            completion_tokens_digest: Some(
                tokens_digest(&g.completion_tokens).map_err(NodeError::internal)?,
            ),
            completion_digest: completion_digest(&g.text),
            finish_reason: finish,
            usage: Usage {
                prompt_tokens: g.usage.prompt_tokens,
                completion_tokens: g.usage.completion_tokens,
                total_tokens: g.usage.total_tokens,
            },
            stream,
            engine: EngineInfo {
                name: id.name.clone(),
                // A replay must match all of it: candle's version, vouch-llm's (sampler,
                // tokenizer and template rules), the compiled kernels and the CPU features the
                // f32 matmul picked (`docs/llm.md`).
                version: id.describe(),
                profile: ExecProfile {
                    threads: u32::try_from(g.threads).unwrap_or(u32::MAX),
                    deterministic: profile == vouch_llm::Profile::Deterministic,
                    batch: 1,
                },
            },
            tiers: p.tiers.clone(),
            node_key: self.signer.public_key(),
            issued_at: vouch_store::now_rfc3339(),
            payment: None,
        };
        receipt.check_consistency().map_err(NodeError::internal)?;
        let mut evidence = BTreeMap::new();
        if p.tiers.contains(&Tier::Tee) {
            evidence.insert("tee".to_string(), self.tee_evidence()?);
        }
        let signature =
            crate::policy::signs(&p.tiers).then(|| self.signer.sign_chat_receipt(&receipt));
        let logged = crate::transparency::log_chat_receipt(&self.log, &receipt).await?;
        evidence.insert(
            vouch_log::evidence::BUNDLE_EVIDENCE_KEY.to_string(),
            logged.to_json(),
        );
        Ok(ChatBundle {
            format: CHAT_BUNDLE_FORMAT.into(),
            receipt,
            signature,
            prompt_tokens: Some(g.prompt_tokens.clone()),
            completion_tokens: Some(g.completion_tokens.clone()),
            evidence,
        })
    }
}

/// Where a streamed chat's chunks go; a send that fails means the caller left.
struct Sink<'a> {
    streaming: bool,
    out: Option<mpsc::Sender<Bytes>>,
    cancel: &'a AtomicBool,
}

impl Sink<'_> {
    fn is_streaming(&self) -> bool {
        self.streaming
    }

    /// Serialises the chunk, sends exactly those bytes and extends the chain with them. The
    /// chain grows even when the caller has left, so the receipt covers what was generated.
    async fn send_chunk(
        &mut self,
        chain: &mut StreamChain,
        chunk: &ChatCompletionChunk,
    ) -> Result<(), NodeError> {
        let bytes = serde_json::to_vec(chunk).map_err(NodeError::internal)?;
        chain.append(&bytes).map_err(NodeError::internal)?;
        self.send(Bytes::from(bytes)).await;
        Ok(())
    }

    async fn send(&mut self, bytes: Bytes) {
        if let Some(out) = &self.out
            && out.send(bytes).await.is_err()
        {
            self.cancel.store(true, Ordering::Relaxed);
            self.out = None;
        }
    }
}

/// A seed nobody chose: the receipt records it.
fn rand_seed() -> u64 {
    use rand_core::RngCore;
    rand_core::OsRng.next_u64()
}
