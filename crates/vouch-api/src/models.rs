//! The model registry: `POST /v1/models`, `GET /v1/models`, `GET /v1/models/{reference}`,
//! `GET /v1/models/by-digest/{digest}`.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use vouch_core::{ModelDigest, ModelSignature};

use crate::zk::ModelZk;

/// Query of `POST /v1/models` (the body is the ONNX file's bytes).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RegisterParams {
    /// Name to point at the model (optional: a model can be used by digest alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Version of that name; defaults to one more than the number of versions it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Move `name@version` if it already points at another model.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replace: bool,
}

/// Query of `GET /v1/models`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// At most this many (1–1000; default 100).
    #[serde(default = "default_limit")]
    #[param(default = 100, minimum = 1, maximum = 1000)]
    pub limit: u32,
    #[serde(default)]
    #[param(default = 0)]
    pub offset: u32,
}

fn default_limit() -> u32 {
    100
}

impl Default for ListParams {
    fn default() -> Self {
        ListParams {
            limit: default_limit(),
            offset: 0,
        }
    }
}

/// A registered model as the registry holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ModelRecord {
    pub digest: ModelDigest,
    pub size_bytes: u64,
    /// The engine chosen at registration: `onnxruntime` or `tract` (ONNX), `candle` (GGUF),
    /// `upstream` (gateway mode).
    pub engine: String,
    pub signature: ModelSignature,
    /// An LLM's facts, read from its GGUF at registration (absent for ONNX models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<LlmFacts>,
    /// Gateway mode: the endpoint chats are forwarded to. Its answers are receipted with
    /// `executed_by`; nothing proves which model the endpoint ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<UpstreamFacts>,
    pub created_at: String,
    /// Every name@version currently pointing here.
    pub names: Vec<NamePointer>,
}

/// A gateway model's descriptor, as registered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UpstreamFacts {
    /// The OpenAI-compatible base URL.
    pub url: String,
    /// The model asked for upstream.
    pub model: String,
    /// The name of the node's configured bearer key, if any (never the key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
}

/// What registration read from a GGUF and checked against its tensors.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LlmFacts {
    /// `llama`, `qwen2`, `qwen3`, `phi3` or `gemma3`.
    pub architecture: String,
    /// `general.name`, when the file has one.
    pub name: Option<String>,
    /// The file type, e.g. `Q4_1`.
    pub quantization: String,
    pub context_length: u64,
    pub vocab_size: u64,
    pub embedding_length: u64,
    pub block_count: u64,
    pub parameter_count: u64,
    pub tensor_count: u64,
    /// `gpt2` (byte-level BPE) or `llama` (SentencePiece).
    pub tokenizer_model: String,
    /// The Jinja chat template from the file (`null`: none, ChatML is used).
    pub chat_template: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NamePointer {
    pub name: String,
    pub version: String,
    pub digest: ModelDigest,
    pub updated_at: String,
}

/// What registering under a name did to `name@version`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NameChange {
    Created,
    Unchanged,
    /// It pointed at another model (`from`) and now points here (needs `replace`).
    Moved,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NameResult {
    pub name: String,
    pub version: String,
    pub change: NameChange,
    /// The model the pointer left, when `change` is `moved`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<ModelDigest>,
}

/// An engine that could not serve the model, and why (another one does).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PassedOver {
    pub engine: String,
    pub reason: String,
}

/// `POST /v1/models`: 201 when new, 200 when these bytes were registered before.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RegisterResponse {
    pub model: ModelRecord,
    pub created: bool,
    /// What happened to the name, when one was given.
    pub name: Option<NameResult>,
    pub passed_over: Vec<PassedOver>,
    pub zk: ModelZk,
}

/// One model of `GET /v1/models`: the record and its zk tier.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ListedModel {
    #[serde(flatten)]
    pub model: ModelRecord,
    pub zk: ModelZk,
}

/// `GET /v1/models`: newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelList {
    /// Always `list`: with `data`, OpenAI's shape of `GET /models`, so the official SDKs list
    /// the same models (`client.models.list()`) from the same route.
    pub object: String,
    /// This page's models as OpenAI names them: one entry per `name@version` (and one by
    /// digest for a model without a name).
    pub data: Vec<crate::openai::OpenAiModel>,
    pub models: Vec<ListedModel>,
    pub total: u64,
    pub limit: u32,
    pub offset: u32,
}

/// `GET /v1/models/{reference}` and `/v1/models/by-digest/{digest}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelView {
    pub model: ModelRecord,
    /// Compiled and in this node's cache now.
    pub loaded: bool,
    pub zk: ModelZk,
}
