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
    ChatMessage, ChatReceiptEvent, ChunkChoice, ChunkDelta, Completion, CompletionChoice,
    CompletionRequest, CompletionUsage, CompletionVouch, MessageContent, Prompt, WireFinishReason,
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
use crate::gateway::{Forward, ForwardSampling, UpstreamAnswer, UpstreamFinish};
use crate::llm::{ChatSlot, LLM_ENGINE, llm_error};
use crate::payments::{Admitted, PaymentHeaders, Settled};

/// A chat request, as the transport hands it over.
pub struct ChatCall {
    /// The body as received, parsed once: the receipt commits to its RFC 8785 form, fields
    /// Vouch does not use included.
    pub body: Value,
    pub request: ChatCompletionRequest,
    /// Tiers asked for (the body's `tiers`, an extension the SDKs send as `extra_body`).
    pub tiers: Vec<Tier>,
    /// The x402 payment headers, when payments are on (`docs/payments.md`, "Chat").
    pub payment: PaymentHeaders,
}

/// x402 response headers of a paid answer (`PAYMENT-RESPONSE` or `X-PAYMENT-RESPONSE`).
pub type PaymentResponseHeaders = Vec<(&'static str, String)>;

/// A legacy text completion request (`POST /v1/completions`): the same pipeline and receipt
/// kind, the prompt taken as given (no chat template, no system prompt).
pub struct CompletionCall {
    /// The body as received, parsed once (what the receipt's request digest covers).
    pub body: Value,
    pub request: CompletionRequest,
    pub tiers: Vec<Tier>,
    pub payment: PaymentHeaders,
}

/// A chat's answer.
pub enum ChatAnswer {
    /// The completion, and the x402 settlement headers when it was paid.
    Complete(Box<ChatCompletion>, PaymentResponseHeaders),
    /// A legacy `text_completion`, whole, with its settlement headers.
    Text(Box<Completion>, PaymentResponseHeaders),
    /// The `data:` payloads of a server-sent-event stream, in order: the chunks, then the
    /// receipt event (a paid stream's settlement is in the receipt: its headers went out
    /// before the amount was known). The transport adds the final `[DONE]`. Dropping the
    /// receiver stops generation (the caller left).
    Stream(mpsc::Receiver<Bytes>),
}

/// The OpenAI object family an answer is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// `chat.completion` / `chat.completion.chunk`.
    Chat,
    /// The legacy `text_completion`.
    Text,
}

/// What the prompt is, before the model's tokenizer sees it.
enum PromptInput {
    Messages(Vec<ChatMessage>),
    Text(String),
    Tokens(Vec<u32>),
}

/// Either endpoint's request, normalised for the one pipeline.
struct Ask {
    body: Value,
    model: String,
    tiers: Vec<Tier>,
    shape: Shape,
    prompt: PromptInput,
    max_tokens: Option<u32>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    seed: Option<i64>,
    stop: Option<Vec<String>>,
    stream: bool,
    include_usage: bool,
    payment: PaymentHeaders,
}

impl Ask {
    fn chat(call: ChatCall) -> Result<Ask, NodeError> {
        let ChatCall {
            body,
            request: r,
            tiers,
            payment,
        } = call;
        check_supported(&r)?;
        Ok(Ask {
            max_tokens: r.max_tokens(),
            stream: r.is_stream(),
            include_usage: r
                .stream_options
                .as_ref()
                .is_some_and(|o| o.include_usage == Some(true)),
            temperature: r.temperature.map(|t| t.get()),
            top_p: r.top_p.map(|p| p.get()),
            seed: r.seed,
            stop: r.stop.as_ref().map(|s| s.to_vec()),
            body,
            model: r.model,
            tiers,
            shape: Shape::Chat,
            prompt: PromptInput::Messages(r.messages),
            payment,
        })
    }

    fn text(call: CompletionCall) -> Result<Ask, NodeError> {
        let CompletionCall {
            body,
            request: r,
            tiers,
            payment,
        } = call;
        let unsupported = |m: &str| Err(bad(m.to_string()).with_reason("unsupported"));
        if r.n.is_some_and(|n| n != 1) || r.best_of.is_some_and(|n| n != 1) {
            return unsupported("n / best_of: a receipt covers one choice; ask for 1");
        }
        if r.logprobs.is_some_and(|n| n > 0) {
            return unsupported("logprobs are not returned by this node");
        }
        if r.echo == Some(true) {
            return unsupported("echo: the prompt is not repeated in the answer by this node");
        }
        if r.suffix.as_deref().is_some_and(|s| !s.is_empty()) {
            return unsupported("suffix (insertion) is not supported by this node");
        }
        let nonzero = |p: Option<f64>| p.is_some_and(|x| x != 0.0);
        if nonzero(r.frequency_penalty.map(|p| p.get()))
            || nonzero(r.presence_penalty.map(|p| p.get()))
        {
            return unsupported(
                "frequency_penalty / presence_penalty are not implemented by this node's sampler",
            );
        }
        if r.logit_bias.as_ref().is_some_and(|b| !b.is_empty()) {
            return unsupported("logit_bias is not implemented by this node's sampler");
        }
        let prompt = match r.prompt {
            Prompt::Text(t) => PromptInput::Text(t),
            Prompt::Tokens(ids) => PromptInput::Tokens(ids),
            Prompt::Texts(mut t) if t.len() == 1 => PromptInput::Text(t.remove(0)),
            Prompt::TokenLists(mut t) if t.len() == 1 => PromptInput::Tokens(t.remove(0)),
            _ => return unsupported("prompt: one prompt per request (a receipt covers one)"),
        };
        Ok(Ask {
            // OpenAI's default for this endpoint.
            max_tokens: Some(r.max_tokens.unwrap_or(16)),
            stream: r.stream == Some(true),
            include_usage: r
                .stream_options
                .as_ref()
                .is_some_and(|o| o.include_usage == Some(true)),
            temperature: r.temperature.map(|t| t.get()),
            top_p: r.top_p.map(|p| p.get()),
            seed: r.seed,
            stop: r.stop.as_ref().map(|s| s.to_vec()),
            body,
            model: r.model,
            tiers,
            shape: Shape::Text,
            prompt,
            payment,
        })
    }
}

/// Where the answer comes from.
enum Source {
    /// The node runs the committed weights.
    Local {
        llm: Arc<LoadedLlm>,
        generate: GenerateRequest,
    },
    /// Gateway mode: the request is forwarded; the upstream has answered with a success
    /// status (its body, taken once, is read while the answer goes out).
    Upstream {
        forward: Box<Forward>,
        response: Option<reqwest::Response>,
    },
}

/// Everything decided before generation starts.
struct Prepared {
    digest: ModelDigest,
    model_name: String,
    model_ref: Option<String>,
    config_digest: Option<vouch_core::Digest>,
    tiers: Vec<Tier>,
    source: Source,
    max_tokens: u32,
    stop: Vec<String>,
    shape: Shape,
    request_id: String,
    request_digest: vouch_core::Digest,
    include_usage: bool,
    created: u64,
    /// The admitted payment and the quote it pays, when payments are on.
    payment: Option<ChatPayment>,
}

/// A chat's admitted payment, settled for the tokens used once generation is done; dropped
/// (generation failed) it is abandoned and nothing is charged.
struct ChatPayment {
    admitted: Admitted,
    quote: vouch_pay::ChatQuote,
}

/// What a run produced, on this node or upstream.
struct Produced {
    text: String,
    /// How many bytes of `text` already went out as deltas.
    streamed_bytes: usize,
    finish: FinishReason,
    wire: WireFinishReason,
    usage: Usage,
    /// Prompt and completion token ids; unknown in gateway mode.
    tokens: Option<(Vec<u32>, Vec<u32>)>,
    temperature: f64,
    top_p: f64,
    seed: Option<u64>,
    engine: EngineInfo,
}

impl Produced {
    fn local(g: Generation, profile: vouch_llm::Profile) -> Self {
        let (finish, wire) = wire_finish(g.finish_reason);
        let id = vouch_llm::EngineId::current();
        Produced {
            streamed_bytes: g.streamed_bytes,
            finish,
            wire,
            usage: Usage {
                prompt_tokens: g.usage.prompt_tokens,
                completion_tokens: g.usage.completion_tokens,
                total_tokens: g.usage.total_tokens,
            },
            temperature: g.sampling.temperature,
            top_p: g.sampling.top_p,
            seed: Some(g.sampling.seed),
            engine: EngineInfo {
                name: id.name.clone(),
                // A replay must match all of it: candle's version, vouch-llm's (sampler,
                // tokenizer and template rules), the compiled kernels and the CPU features the
                // f32 matmul picked (`docs/llm.md`).
                version: id.describe(),
                profile: ExecProfile {
                    threads: u32::try_from(g.threads).unwrap_or(u32::MAX),
                    deterministic: profile == vouch_llm::Profile::Deterministic,
                    batch: u32::try_from(g.batch).unwrap_or(u32::MAX),
                },
            },
            tokens: Some((g.prompt_tokens, g.completion_tokens)),
            text: g.text,
        }
    }

    fn upstream(a: UpstreamAnswer, streamed: bool, f: &Forward) -> Self {
        let (finish, wire) = match a.finish {
            UpstreamFinish::Stop => (FinishReason::Stop, WireFinishReason::Stop),
            UpstreamFinish::Length => (FinishReason::Length, WireFinishReason::Length),
        };
        let num = |k: &str| f.body.get(k).and_then(Value::as_f64).unwrap_or(1.0);
        Produced {
            streamed_bytes: if streamed { a.text.len() } else { 0 },
            finish,
            wire,
            usage: a.usage,
            tokens: None,
            temperature: num("temperature"),
            top_p: num("top_p"),
            seed: f.body.get("seed").and_then(Value::as_u64),
            engine: EngineInfo {
                name: crate::gateway::UPSTREAM_ENGINE.into(),
                // What the upstream says it ran: its word, like everything in gateway mode.
                version: if a.model.is_empty() {
                    f.descriptor.model.clone()
                } else {
                    a.model.chars().take(256).collect()
                },
                profile: ExecProfile {
                    threads: 0,
                    deterministic: false,
                    batch: 1,
                },
            },
            text: a.text,
        }
    }
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

/// A legacy prompt's tokens: the text as given, BOS first when the file asks for it (as
/// llama.cpp's completion endpoint does).
fn text_prompt(llm: &LoadedLlm, text: &str) -> Result<Vec<u32>, NodeError> {
    let tok = llm.tokenizer();
    let mut ids = tok.encode(text).map_err(|e| bad(format!("prompt: {e}")))?;
    if tok.add_bos
        && let Some(bos) = tok.bos_token_id
        && ids.first() != Some(&bos)
    {
        ids.insert(0, bos);
    }
    Ok(ids)
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
        self.answer(Ask::chat(call)?).await
    }

    /// Answers a legacy text completion request, whole or streamed.
    pub async fn complete(self: &Arc<Self>, call: CompletionCall) -> Result<ChatAnswer, NodeError> {
        self.answer(Ask::text(call)?).await
    }

    async fn answer(self: &Arc<Self>, ask: Ask) -> Result<ChatAnswer, NodeError> {
        let stream = ask.stream;
        let (prepared, slot) = self.prepare_chat(ask).await?;
        let cancel = Arc::new(AtomicBool::new(false));
        if stream {
            let (tx, rx) = mpsc::channel(64);
            let node = self.clone();
            tokio::spawn(async move {
                if let Err(e) = node
                    .run_chat_recorded(prepared, slot, cancel, Some(tx))
                    .await
                {
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
            let _ = done_tx.send(node.run_chat_recorded(prepared, slot, flag, None).await);
        });
        let mut guard = CancelOnDrop(cancel, true);
        let answer = done_rx
            .await
            .map_err(|_| NodeError::internal("the chat task ended without an answer"))?;
        guard.1 = false;
        answer?.ok_or_else(|| NodeError::internal("a chat that is not streamed returned no answer"))
    }

    async fn prepare_chat(&self, ask: Ask) -> Result<(Prepared, ChatSlot), NodeError> {
        let Ask {
            body,
            model,
            tiers,
            shape,
            prompt,
            max_tokens: asked_max_tokens,
            temperature,
            top_p,
            seed,
            stop: asked_stop,
            stream,
            include_usage,
            payment,
        } = ask;
        if tiers.contains(&Tier::Zk) {
            return Err(NodeError::new(
                ErrorCode::TierUnavailable,
                "zk: no proof system here covers LLM generation (a transformer's matmuls, attention and sampling); ask for signed or tee",
            )
            .with_reason("zk_llm"));
        }
        let (model_ref, digest) = self.catalog.resolve_str(&model).await?;
        let rec = self.store.model(&digest).await?.ok_or_else(|| {
            NodeError::new(
                ErrorCode::ModelNotFound,
                format!("no model with digest {digest}"),
            )
        })?;
        if !crate::llm::is_chat_engine(&rec.engine) {
            return Err(bad(format!(
                "model {model} is an ONNX model: use POST /v1/infer; chat needs a GGUF model"
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
        let max_tokens = asked_max_tokens
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
        let requested_seed = match seed {
            Some(s) => Some(u64::try_from(s).map_err(|_| bad("seed: must be 0 or more"))?),
            None => None,
        };
        let sampling = SamplingParams {
            temperature: temperature
                .or_else(|| config_f64(&config, "temperature"))
                .unwrap_or(1.0),
            top_p: top_p
                .or_else(|| config_f64(&config, "top_p"))
                .unwrap_or(1.0),
            top_k: 0,
            // Any value will do, and the receipt records it: replay needs no more.
            seed: requested_seed.unwrap_or_else(rand_seed),
        };
        let stop = match asked_stop {
            Some(s) => s,
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
        let request_digest =
            request_digest(&body).map_err(|e| bad(format!("request body: {e}")))?;
        let request_id = uuid::Uuid::now_v7().to_string();
        let (source, slot, payment) = if rec.engine == LLM_ENGINE {
            let llm = self.llms.get(digest).await?;
            let prompt_tokens = match &prompt {
                PromptInput::Messages(m) => {
                    let conversation = messages(&config, m)?;
                    llm.chat_prompt(&conversation, true).map_err(llm_error)?.1
                }
                PromptInput::Text(t) => text_prompt(&llm, t)?,
                PromptInput::Tokens(ids) => {
                    let vocab = llm.tokenizer().vocab_size();
                    if let Some(bad_id) = ids.iter().find(|&&i| i as usize >= vocab) {
                        return Err(bad(format!(
                            "prompt: token id {bad_id} is outside this model's vocabulary of {vocab}"
                        )));
                    }
                    ids.clone()
                }
            };
            let generate = GenerateRequest {
                prompt_tokens,
                max_tokens,
                sampling,
                stop: stop.clone(),
            };
            generate.validate(llm.context_length()).map_err(llm_error)?;
            // Paid before a slot is taken or anything generated: a 402 costs the node nothing
            // more.
            let payment = self
                .admit_chat_payment(&payment, &digest, &decision.tiers, &generate, &request_id)
                .await?;
            let positions =
                (generate.prompt_tokens.len() + max_tokens as usize).min(llm.context_length());
            let slot = self.llms.admit(llm.kv_bytes_for(positions)).await?;
            (Source::Local { llm, generate }, slot, payment)
        } else {
            if self.pay.is_some() {
                return Err(NodeError::new(
                    ErrorCode::PaymentUnavailable,
                    "gateway models are not served with payments on: a chat's price needs its prompt's token count, which only the upstream knows",
                )
                .with_reason("gateway_unpriced"));
            }
            let PromptInput::Messages(m) = &prompt else {
                return Err(bad(format!(
                    "model {model} is an upstream endpoint (gateway mode), which serves chat only: use POST /v1/chat/completions"
                ))
                .with_reason("unsupported"));
            };
            // Every message must be one the node could template, as for local models.
            messages(&config, m)?;
            let bytes = self.store.blobs.get_model(&digest).await.map_err(|e| {
                NodeError::internal(format!("reading upstream descriptor {digest}: {e}"))
            })?;
            let descriptor = crate::gateway::parse_descriptor(&bytes, self.llms.gateway.keys())?;
            let body = crate::gateway::forward_body(
                &body,
                &descriptor,
                config.get("system_prompt").and_then(Value::as_str),
                &ForwardSampling {
                    temperature: sampling.temperature,
                    top_p: sampling.top_p,
                    max_tokens,
                    stop: &stop,
                    seed: requested_seed,
                },
                stream,
            )?;
            // A slot bounds concurrent forwards; there is no KV cache here to reserve.
            let slot = self.llms.admit(0).await?;
            let forward = Forward {
                descriptor,
                body,
                stream,
            };
            // Connected and answered with a success status before the caller is answered, so
            // a failing upstream is a 502, not a stream that stops.
            let response = self.llms.gateway.open(&forward).await?;
            (
                Source::Upstream {
                    forward: Box::new(forward),
                    response: Some(response),
                },
                slot,
                None,
            )
        };
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
                source,
                max_tokens,
                stop,
                shape,
                request_id,
                request_digest,
                include_usage,
                created: unix_now(),
                payment,
            },
            slot,
        ))
    }

    /// With payments on: the chat's maximum price (tiers, prompt, `max_tokens`) and the
    /// admitted payment for it; a model without token prices is refused, never served free.
    async fn admit_chat_payment(
        &self,
        headers: &PaymentHeaders,
        digest: &ModelDigest,
        tiers: &[Tier],
        generate: &GenerateRequest,
        request_id: &str,
    ) -> Result<Option<ChatPayment>, NodeError> {
        let Some(pay) = &self.pay else {
            return Ok(None);
        };
        let quote = self
            .prices
            .chat_quote(
                self,
                digest,
                tiers,
                generate.prompt_tokens.len() as u64,
                u64::from(generate.max_tokens),
            )
            .await?;
        let admitted = pay
            .admit_chat(
                headers,
                self.config.listen,
                digest,
                tiers,
                &quote,
                request_id,
            )
            .await?;
        Ok(Some(ChatPayment { admitted, quote }))
    }

    /// Settles a chat's payment for the tokens it used (prompt and completion, a cancelled
    /// generation's included), before its receipt is made so the receipt names the amount. A
    /// caller that left before the first completion token got nothing and pays nothing: the
    /// payment is abandoned.
    async fn settle_chat_payment(
        &self,
        payment: Option<ChatPayment>,
        g: &Produced,
    ) -> Result<Settled, NodeError> {
        let Some(ChatPayment { admitted, quote }) = payment else {
            return Ok(Settled::free());
        };
        if g.finish == FinishReason::Cancelled && g.usage.completion_tokens == 0 {
            drop(admitted);
            return Ok(Settled::free());
        }
        let used = quote
            .charge(
                u64::from(g.usage.prompt_tokens),
                u64::from(g.usage.completion_tokens),
            )
            .map_err(NodeError::internal)?;
        admitted.settle_used(used.0).await
    }

    /// [`Self::run_chat`], recorded in the analytics as an inference is: per model and tier
    /// set, its time from admission to the logged receipt, and the amount settled.
    async fn run_chat_recorded(
        &self,
        p: Prepared,
        slot: ChatSlot,
        cancel: Arc<AtomicBool>,
        out: Option<mpsc::Sender<Bytes>>,
    ) -> Result<Option<ChatAnswer>, NodeError> {
        let started = std::time::Instant::now();
        let (model, label, tiers) = (p.digest, p.model_name.clone(), p.tiers.clone());
        let result = self.run_chat(p, slot, cancel, out).await;
        self.analytics.record(&crate::analytics::Outcome {
            model,
            label: &label,
            tiers: &tiers,
            ok: result.is_ok(),
            latency: started.elapsed(),
            price: result.as_ref().map_or(0, |(_, price)| *price),
        });
        result.map(|(answer, _)| answer)
    }

    /// Generates (or forwards), streams (when `out` is given), receipts and logs. Returns the
    /// whole answer when not streaming, and the amount settled.
    async fn run_chat(
        &self,
        mut p: Prepared,
        slot: ChatSlot,
        cancel: Arc<AtomicBool>,
        out: Option<mpsc::Sender<Bytes>>,
    ) -> Result<(Option<ChatAnswer>, u64), NodeError> {
        let streaming = out.is_some();
        let (deltas_tx, mut deltas) = mpsc::channel::<String>(256);
        let produce = self.produce(&mut p.source, slot, &cancel, streaming, deltas_tx);
        let id = match p.shape {
            Shape::Chat => format!("chatcmpl-{}", p.request_id),
            Shape::Text => format!("cmpl-{}", p.request_id),
        };
        let mut chain = StreamChain::new(&p.request_digest, &p.request_id);
        let mut sink = Sink {
            streaming,
            out,
            cancel: &cancel,
        };
        let head = ChunkHead {
            id: &id,
            model: &p.model_name,
            created: p.created,
            shape: p.shape,
            include_usage: p.include_usage,
        };
        let chunk = |chain: &StreamChain, part: Part| head.chunk(chain, part);
        let relay = async {
            if sink.is_streaming() {
                // Chat streams open with the role; legacy completion streams have none.
                if p.shape == Shape::Chat {
                    let first = chunk(&chain, Part::Role)?;
                    sink.send_chunk(&mut chain, first).await?;
                }
                while let Some(text) = deltas.recv().await {
                    let c = chunk(&chain, Part::Text(text))?;
                    sink.send_chunk(&mut chain, c).await?;
                }
            }
            Ok::<_, NodeError>(())
        };
        let (relayed, produced) = tokio::join!(relay, produce);
        relayed?;
        let g = produced?;
        let usage = CompletionUsage {
            prompt_tokens: g.usage.prompt_tokens,
            completion_tokens: g.usage.completion_tokens,
            total_tokens: g.usage.total_tokens,
        };
        if sink.is_streaming() {
            let rest = g.text.get(g.streamed_bytes..).unwrap_or("");
            if !rest.is_empty() {
                let c = chunk(&chain, Part::Text(rest.to_owned()))?;
                sink.send_chunk(&mut chain, c).await?;
            }
            let last = chunk(&chain, Part::Finish(g.wire))?;
            sink.send_chunk(&mut chain, last).await?;
            if p.include_usage {
                let u = chunk(&chain, Part::Usage(usage))?;
                sink.send_chunk(&mut chain, u).await?;
            }
        }
        let stream = if sink.is_streaming() {
            chain.commitment()
        } else {
            None
        };
        let settled = self.settle_chat_payment(p.payment.take(), &g).await?;
        let bundle = self
            .chat_bundle(&p, &g, stream, settled.payment().cloned())
            .await?;
        settled.make_durable().await?;
        // Receipted and logged: the payment is kept even if the caller has left (a cancelled
        // generation pays for the tokens it made).
        let paid = settled.delivered();
        let amount = bundle
            .receipt
            .payment
            .as_ref()
            .map_or(0, |pay| pay.amount.parse().unwrap_or(u64::MAX));
        if sink.is_streaming() {
            let event = ChatReceiptEvent::new(bundle);
            let bytes = serde_json::to_vec(&event).map_err(NodeError::internal)?;
            sink.send(Bytes::from(bytes)).await;
            return Ok((None, amount));
        }
        let answer = match p.shape {
            Shape::Chat => ChatAnswer::Complete(
                Box::new(ChatCompletion {
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
                        finish_reason: g.wire,
                    }],
                    usage,
                    system_fingerprint: None,
                    vouch: Some(bundle),
                }),
                paid,
            ),
            Shape::Text => ChatAnswer::Text(
                Box::new(Completion {
                    id,
                    object: TEXT_COMPLETION.into(),
                    created: p.created,
                    model: p.model_name.clone(),
                    choices: vec![CompletionChoice {
                        text: g.text.clone(),
                        index: 0,
                        logprobs: None,
                        finish_reason: Some(g.wire),
                    }],
                    usage: Some(usage),
                    system_fingerprint: None,
                    vouch: Some(CompletionVouch::Bundle(Box::new(bundle))),
                }),
                paid,
            ),
        };
        Ok((Some(answer), amount))
    }

    /// Runs the model (on a blocking thread) or reads the upstream's answer; text goes to
    /// `deltas` as it becomes final when streaming. The slot is held until the run ends.
    async fn produce(
        &self,
        source: &mut Source,
        slot: ChatSlot,
        cancel: &Arc<AtomicBool>,
        streaming: bool,
        deltas: mpsc::Sender<String>,
    ) -> Result<Produced, NodeError> {
        match source {
            Source::Local { llm, generate } => {
                let llm = llm.clone();
                let request = generate.clone();
                let profile = self.llms.settings.profile;
                let flag = cancel.clone();
                let g = tokio::task::spawn_blocking(move || {
                    let _slot = slot;
                    // Through the model's batcher: this chat's decode steps share one pass over
                    // the weights with the other chats on the model, and give the tokens it
                    // would alone.
                    vouch_llm::generate_batched(
                        &llm,
                        profile,
                        &request,
                        &|| flag.load(Ordering::Relaxed),
                        &mut |ev| {
                            if streaming
                                && !ev.text.is_empty()
                                && deltas.blocking_send(ev.text.to_owned()).is_err()
                            {
                                flag.store(true, Ordering::Relaxed);
                            }
                        },
                    )
                })
                .await
                .map_err(NodeError::internal)?
                .map_err(llm_error)?;
                Ok(Produced::local(g, profile))
            }
            Source::Upstream { forward, response } => {
                let _slot = slot;
                let response = response
                    .take()
                    .ok_or_else(|| NodeError::internal("the upstream's answer was read twice"))?;
                let answer = self
                    .llms
                    .gateway
                    .read(response, forward.stream, streaming.then_some(deltas))
                    .await?;
                Ok(Produced::upstream(answer, streaming, forward))
            }
        }
    }

    /// The receipt for a finished generation, signed, with its evidence and durable log entry.
    async fn chat_bundle(
        &self,
        p: &Prepared,
        g: &Produced,
        stream: Option<StreamCommitment>,
        payment: Option<vouch_core::PaymentRef>,
    ) -> Result<ChatBundle, NodeError> {
        let finite = |x: f64, what: &str| {
            FiniteF64::new(x).ok_or_else(|| NodeError::internal(format!("{what} is not finite")))
        };
        let (prompt_tokens_digest, completion_tokens_digest) = match &g.tokens {
            Some((prompt, completion)) => (
                Some(tokens_digest(prompt).map_err(NodeError::internal)?),
                Some(tokens_digest(completion).map_err(NodeError::internal)?),
            ),
            None => (None, None),
        };
        let receipt = ChatReceipt {
            kind: ChatKind,
            version: CHAT_RECEIPT_VERSION,
            request_id: p.request_id.clone(),
            request_digest: p.request_digest,
            model: p.digest,
            model_ref: p.model_ref.clone(),
            config_digest: p.config_digest,
            executed_by: match &p.source {
                Source::Local { .. } => None,
                Source::Upstream { forward, .. } => Some(forward.descriptor.executed_by()),
            },
            sampling: Sampling {
                temperature: finite(g.temperature, "temperature")?,
                top_p: finite(g.top_p, "top_p")?,
                max_tokens: p.max_tokens,
                stop: p.stop.clone(),
                seed: g.seed.map(Seed),
            },
            prompt_tokens_digest,
            completion_tokens_digest,
            completion_digest: completion_digest(&g.text),
            finish_reason: g.finish,
            usage: g.usage,
            stream,
            engine: g.engine.clone(),
            tiers: p.tiers.clone(),
            node_key: self.signer.public_key(),
            issued_at: vouch_store::now_rfc3339(),
            payment,
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
        let (prompt_tokens, completion_tokens) = match &g.tokens {
            Some((p, c)) => (Some(p.clone()), Some(c.clone())),
            None => (None, None),
        };
        Ok(ChatBundle {
            format: CHAT_BUNDLE_FORMAT.into(),
            receipt,
            signature,
            prompt_tokens,
            completion_tokens,
            evidence,
        })
    }
}

/// The legacy completion object's `object`.
const TEXT_COMPLETION: &str = "text_completion";

/// What one stream chunk carries.
enum Part {
    /// The opening chunk of a chat stream: the assistant's role, empty content.
    Role,
    Text(String),
    Finish(WireFinishReason),
    /// The usage-only chunk (`stream_options.include_usage`): no choices.
    Usage(CompletionUsage),
}

/// What every chunk of one answer repeats.
struct ChunkHead<'a> {
    id: &'a str,
    model: &'a str,
    created: u64,
    shape: Shape,
    include_usage: bool,
}

impl ChunkHead<'_> {
    /// One chunk's exact bytes in the answer's shape, with its link of the chain.
    fn chunk(&self, chain: &StreamChain, part: Part) -> Result<Vec<u8>, NodeError> {
        let (usage, finish, text, role) = match part {
            Part::Role => (None, None, Some(String::new()), true),
            Part::Text(t) => (None, None, Some(t), false),
            Part::Finish(f) => (None, Some(f), None, false),
            Part::Usage(u) => (Some(u), None, None, false),
        };
        let only_usage = usage.is_some();
        let bytes = match self.shape {
            Shape::Chat => serde_json::to_vec(&ChatCompletionChunk {
                id: self.id.to_owned(),
                object: ChatCompletionChunk::OBJECT.into(),
                created: self.created,
                model: self.model.to_owned(),
                choices: if only_usage {
                    Vec::new()
                } else {
                    vec![ChunkChoice {
                        index: 0,
                        delta: ChunkDelta {
                            role: role.then(|| "assistant".into()),
                            content: text,
                            ..Default::default()
                        },
                        logprobs: None,
                        finish_reason: finish,
                    }]
                },
                // With `include_usage`, every chunk has `usage`: null until the usage chunk,
                // as OpenAI streams do.
                usage: self.include_usage.then_some(usage),
                system_fingerprint: None,
                vouch: chain.next(),
            }),
            Shape::Text => serde_json::to_vec(&Completion {
                id: self.id.to_owned(),
                object: TEXT_COMPLETION.into(),
                created: self.created,
                model: self.model.to_owned(),
                choices: if only_usage {
                    Vec::new()
                } else {
                    vec![CompletionChoice {
                        text: text.unwrap_or_default(),
                        index: 0,
                        logprobs: None,
                        finish_reason: finish,
                    }]
                },
                usage,
                system_fingerprint: None,
                vouch: Some(CompletionVouch::Link(chain.next())),
            }),
        };
        bytes.map_err(NodeError::internal)
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

    /// Sends exactly these chunk bytes and extends the chain with them. The
    /// chain grows even when the caller has left, so the receipt covers what was generated.
    async fn send_chunk(
        &mut self,
        chain: &mut StreamChain,
        bytes: Vec<u8>,
    ) -> Result<(), NodeError> {
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
