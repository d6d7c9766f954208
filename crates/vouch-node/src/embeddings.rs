//! `POST /v1/embeddings`: OpenAI's embeddings API on an ONNX embedding model, through the ONNX
//! pipeline, so the answer carries an ordinary ONNX receipt over the token ids the model ran on.
//!
//! Text needs a tokenizer, and the node serves only what a model's digest covers: an embedding
//! model carries its tokenizer in its own file (`metadata_props` `vouch.tokenizer`, a
//! `tokenizer.json`), with `vouch.task = embedding` and `vouch.max_tokens` (the longest input it
//! was trained for; longer is refused, never truncated). The graph takes `input_ids` and
//! `attention_mask` (int64 `[N, S]`) and gives one float32 `[N, D]` output. Token-id inputs
//! need no tokenizer but the same graph.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use vouch_api::openai::{
    Embedding, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage, EmbeddingVector,
    EncodingFormat, Prompt,
};
use vouch_core::{DType, ErrorCode, ModelDigest, ModelRef, Tensor, TensorData, TensorMap, Tier};

use crate::Node;
use crate::error::NodeError;
use crate::infer::{InferCall, Inferred};
use crate::payments::PaymentHeaders;

/// The `metadata_props` keys an embedding model carries.
pub const TASK_KEY: &str = "vouch.task";
pub const TOKENIZER_KEY: &str = "vouch.tokenizer";
pub const MAX_TOKENS_KEY: &str = "vouch.max_tokens";
/// Most inputs in one request (OpenAI allows 2048).
const MAX_INPUTS: usize = 2048;
/// Tokenizers kept built; the oldest is dropped past this.
const MAX_CACHED: usize = 8;

/// An embeddings request, as the transport hands it over.
pub struct EmbeddingCall {
    pub request: EmbeddingRequest,
    pub tiers: Vec<Tier>,
    pub payment: PaymentHeaders,
}

/// The answer and what the transport tells beside it (the ONNX pipeline's headers).
pub struct Embedded {
    pub response: EmbeddingResponse,
    pub inferred: Inferred,
}

/// What serving text on one embedding model needs, built once per digest.
pub struct Embedder {
    tokenizer: Option<tokenizers::Tokenizer>,
    max_tokens: usize,
}

/// Built embedders by model digest.
#[derive(Default)]
pub struct Embedders(Mutex<HashMap<ModelDigest, Arc<Embedder>>>);

fn bad(m: impl Into<String>) -> NodeError {
    NodeError::new(ErrorCode::BadRequest, m)
}

fn not_embedding(model: &str, why: &str) -> NodeError {
    bad(format!("model {model} is not an embedding model: {why}")).with_reason("not_embedding")
}

impl Embedder {
    /// Reads the model's own metadata: task, tokenizer, length limit.
    fn from_model(model: &str, bytes: &[u8]) -> Result<Embedder, NodeError> {
        let meta = vouch_exec::model_file::metadata_props(bytes)
            .map_err(|e| NodeError::internal(format!("a registered model does not parse: {e}")))?;
        if meta.get(TASK_KEY).map(String::as_str) != Some("embedding") {
            return Err(not_embedding(
                model,
                "its file does not say metadata_props vouch.task = embedding",
            ));
        }
        let max_tokens = meta
            .get(MAX_TOKENS_KEY)
            .and_then(|m| m.parse::<usize>().ok())
            .filter(|&m| m > 0)
            .ok_or_else(|| {
                not_embedding(
                    model,
                    "metadata_props vouch.max_tokens is not a positive count",
                )
            })?;
        let tokenizer = match meta.get(TOKENIZER_KEY) {
            None => None,
            Some(json) => {
                let mut t: tokenizers::Tokenizer = json.parse().map_err(|e| {
                    not_embedding(model, &format!("its vouch.tokenizer does not load: {e}"))
                })?;
                // The node pads per batch and refuses over-long inputs itself: a tokenizer that
                // truncated would embed less than was sent, silently.
                t.with_padding(None);
                t.with_truncation(None)
                    .map_err(|e| NodeError::internal(format!("tokenizer: {e}")))?;
                Some(t)
            }
        };
        Ok(Embedder {
            tokenizer,
            max_tokens,
        })
    }

    /// Every input's token ids, each checked against the length limit.
    fn ids(&self, input: Prompt) -> Result<Vec<Vec<u32>>, NodeError> {
        let lists = match input {
            Prompt::Tokens(ids) => vec![ids],
            Prompt::TokenLists(lists) => lists,
            Prompt::Text(t) => vec![self.encode(&t)?],
            Prompt::Texts(texts) => {
                if texts.len() > MAX_INPUTS {
                    return Err(bad(format!(
                        "input: at most {MAX_INPUTS} inputs per request"
                    )));
                }
                texts
                    .iter()
                    .map(|t| self.encode(t))
                    .collect::<Result<_, _>>()?
            }
        };
        if lists.len() > MAX_INPUTS {
            return Err(bad(format!(
                "input: at most {MAX_INPUTS} inputs per request"
            )));
        }
        for (i, ids) in lists.iter().enumerate() {
            if ids.is_empty() {
                return Err(bad(format!("input[{i}]: empty")));
            }
            if ids.len() > self.max_tokens {
                return Err(bad(format!(
                    "input[{i}] is {} tokens; this model takes at most {} (longer inputs are refused, not truncated)",
                    ids.len(),
                    self.max_tokens
                ))
                .with_reason("context_length_exceeded"));
            }
        }
        Ok(lists)
    }

    fn encode(&self, text: &str) -> Result<Vec<u32>, NodeError> {
        let t = self.tokenizer.as_ref().ok_or_else(|| {
            bad("input: this model carries no tokenizer (metadata_props vouch.tokenizer); send token ids")
        })?;
        if text.is_empty() {
            return Err(bad("input: an empty string has no embedding"));
        }
        // Far past any limit before tokenizing (a token is at least one byte of text here).
        if text.len() > self.max_tokens.saturating_mul(64) {
            return Err(bad(format!(
                "input is {} bytes; this model takes at most {} tokens",
                text.len(),
                self.max_tokens
            ))
            .with_reason("context_length_exceeded"));
        }
        t.encode(text, true)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| bad(format!("input: {e}")))
    }
}

/// The batch as the graph takes it: ids and mask, padded with 0 to the longest input.
fn batch(lists: &[Vec<u32>]) -> Result<TensorMap, NodeError> {
    let s = lists.iter().map(Vec::len).max().unwrap_or(0);
    let mut ids = Vec::with_capacity(lists.len() * s);
    let mut mask = Vec::with_capacity(lists.len() * s);
    for l in lists {
        ids.extend(l.iter().map(|&i| i64::from(i)));
        mask.extend(std::iter::repeat_n(1i64, l.len()));
        ids.extend(std::iter::repeat_n(0i64, s - l.len()));
        mask.extend(std::iter::repeat_n(0i64, s - l.len()));
    }
    let shape = vec![lists.len() as u64, s as u64];
    let tensor =
        |data| Tensor::new(shape.clone(), TensorData::Int64(data)).map_err(NodeError::internal);
    Ok(TensorMap(
        [
            ("input_ids".to_string(), tensor(ids)?),
            ("attention_mask".to_string(), tensor(mask)?),
        ]
        .into(),
    ))
}

impl Node {
    /// Embeds the inputs with one ONNX run, receipted like any inference.
    pub async fn embed(&self, call: EmbeddingCall) -> Result<Embedded, NodeError> {
        let EmbeddingRequest {
            model,
            input,
            encoding_format,
            dimensions,
            ..
        } = call.request;
        let model_ref: ModelRef = model.parse().map_err(|e| bad(format!("model: {e}")))?;
        let digest = self.catalog.resolve(&model_ref).await?;
        let meta = self.catalog.meta(&digest).await?;
        let sig = &meta.signature;
        let takes = |name: &str| {
            sig.inputs
                .iter()
                .any(|i| i.name == name && i.dtype == DType::Int64 && i.shape.len() == 2)
        };
        if sig.inputs.len() != 2
            || !takes("input_ids")
            || !takes("attention_mask")
            || sig.outputs.len() != 1
            || sig.outputs[0].dtype != DType::Float32
            || sig.outputs[0].shape.len() != 2
        {
            return Err(not_embedding(
                &model,
                "it must take input_ids and attention_mask (int64 [N, S]) and give one float32 [N, D] output",
            ));
        }
        let embedder = self.embedders.get(self, digest, &model).await?;
        let lists = embedder.ids(input.0)?;
        let prompt_tokens: usize = lists.iter().map(Vec::len).sum();
        let inferred = self
            .infer(InferCall {
                model: model_ref,
                inputs: batch(&lists)?,
                tiers: call.tiers,
                allow_upgrade: false,
                log_proof: false,
                payment: call.payment,
            })
            .await?;
        let out = inferred
            .bundle
            .outputs
            .as_ref()
            .and_then(|o| o.0.values().next())
            .ok_or_else(|| NodeError::internal("the embedding run returned no output"))?;
        let (rows, dim) = match out.shape() {
            [r, d] if *r as usize == lists.len() => (*r as usize, *d as usize),
            other => {
                return Err(NodeError::new(
                    ErrorCode::ExecutionFailed,
                    format!("the model gave shape {other:?} for {} inputs", lists.len()),
                ));
            }
        };
        if dimensions.is_some_and(|d| d as usize != dim) {
            return Err(bad(format!(
                "dimensions: this model's embeddings have {dim}; it cannot shorten them"
            ))
            .with_reason("unsupported"));
        }
        let TensorData::Float32(values) = out.data() else {
            return Err(NodeError::internal("the embedding output is not float32"));
        };
        let data = (0..rows)
            .map(|r| {
                let v = &values[r * dim..(r + 1) * dim];
                Embedding {
                    object: "embedding".into(),
                    embedding: match encoding_format {
                        Some(EncodingFormat::Base64) => EmbeddingVector::Base64(
                            base64::engine::general_purpose::STANDARD.encode(
                                v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>(),
                            ),
                        ),
                        _ => EmbeddingVector::Float(v.to_vec()),
                    },
                    index: r as u32,
                }
            })
            .collect();
        let tokens = u32::try_from(prompt_tokens).unwrap_or(u32::MAX);
        Ok(Embedded {
            response: EmbeddingResponse {
                object: "list".into(),
                data,
                model,
                usage: EmbeddingUsage {
                    prompt_tokens: tokens,
                    total_tokens: tokens,
                },
                vouch: Some(inferred.bundle.clone()),
            },
            inferred,
        })
    }
}

impl Embedders {
    async fn get(
        &self,
        node: &Node,
        digest: ModelDigest,
        model: &str,
    ) -> Result<Arc<Embedder>, NodeError> {
        if let Some(e) = self.0.lock().map_err(NodeError::internal)?.get(&digest) {
            return Ok(e.clone());
        }
        let bytes = node
            .store
            .blobs
            .get_model(&digest)
            .await
            .map_err(|e| NodeError::internal(format!("reading {digest}: {e}")))?;
        let name = model.to_owned();
        let e = tokio::task::spawn_blocking(move || Embedder::from_model(&name, &bytes))
            .await
            .map_err(NodeError::internal)??;
        let e = Arc::new(e);
        let mut cache = self.0.lock().map_err(NodeError::internal)?;
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(digest, e.clone());
        Ok(e)
    }
}
