//! The OpenAI-compatible API as types: `POST /chat/completions` (and its stream),
//! `POST /completions`, `GET /models`, `POST /embeddings`, and OpenAI's error body. Field names
//! and shapes follow OpenAI's API reference, so the official SDKs work with only the base URL
//! changed.
//!
//! Requests: unknown fields are **accepted and ignored** here (OpenAI adds fields often, and
//! SDKs send them); the receipt's request digest covers the whole body anyway, and a gateway
//! forwards the body as received, not these types. A known field with a bad value is an error
//! that names the field (`temperature: must be a number from 0 to 2, got 3`).
//!
//! Where the receipt goes: the non-streamed answer carries the chat bundle in a field `vouch`
//! (SDKs keep unknown fields: `completion.model_extra["vouch"]` in Python). A stream's chunks
//! each carry `vouch: {index, prev}`, their link in the stream's hash chain, and the stream
//! ends with one more `data:` event, `{"object": "vouch.receipt", "vouch": <bundle>}`, before
//! `data: [DONE]`. Formats: `docs/receipt.md`, "Chat receipts".
//!
//! One path is shared: `GET /v1/models` is already Vouch's registry list ([`crate::ModelList`],
//! `{models, total, limit, offset}`). OpenAI's list is `{object: "list", data}` — no field in
//! common — so one answer can carry both sets of fields and serve both readers; the same holds
//! for `GET /v1/models/{id}` ([`OpenAiModel`] beside [`crate::ModelView`]). Which the server
//! does (merge, or mount the OpenAI routes under their own prefix) is the server's decision.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use vouch_core::chat::CHAT_RECEIPT_EVENT_OBJECT;
use vouch_core::{Bundle, ChatBundle, ChunkLink};

/// Prefixes a known field's deserialisation error with the field's name: serde_json's own
/// messages ("invalid type: string, expected u32") do not say which field.
macro_rules! named_field {
    ($($fn:ident: $ty:ty = $name:literal;)*) => {$(
        fn $fn<'de, D: Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
            <$ty>::deserialize(d).map_err(|e| D::Error::custom(format_args!("{}: {e}", $name)))
        }
    )*};
}

/// A float with OpenAI's documented range, refused outside it with the field named.
macro_rules! bounded_f64 {
    ($(#[$doc:meta])* $t:ident, $name:literal, $min:literal ..= $max:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Serialize)]
        #[serde(transparent)]
        pub struct $t(f64);

        impl $t {
            pub const MIN: f64 = $min;
            pub const MAX: f64 = $max;

            pub fn new(x: f64) -> Result<Self, String> {
                if (Self::MIN..=Self::MAX).contains(&x) {
                    Ok($t(x))
                } else {
                    Err(format!(
                        "{}: must be a number from {} to {}, got {x}",
                        $name, Self::MIN, Self::MAX
                    ))
                }
            }

            pub fn get(self) -> f64 {
                self.0
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let x = f64::deserialize(d).map_err(|e| {
                    D::Error::custom(format_args!(
                        "{}: must be a number from {} to {} ({e})",
                        $name, Self::MIN, Self::MAX
                    ))
                })?;
                $t::new(x).map_err(D::Error::custom)
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

bounded_f64!(
    /// Sampling temperature, 0 to 2.
    Temperature, "temperature", 0.0 ..= 2.0
);
bounded_f64!(
    /// Nucleus sampling mass, 0 to 1.
    TopP, "top_p", 0.0 ..= 1.0
);
bounded_f64!(
    /// `presence_penalty` / `frequency_penalty`, -2 to 2.
    Penalty, "penalty", -2.0 ..= 2.0
);

named_field! {
    de_model: String = "model";
    de_messages: Vec<ChatMessage> = "messages";
    de_max_tokens: Option<u32> = "max_tokens";
    de_max_completion_tokens: Option<u32> = "max_completion_tokens";
    de_seed: Option<i64> = "seed";
    de_stop: Option<Stop> = "stop";
    de_stream: Option<bool> = "stream";
    de_stream_options: Option<StreamOptions> = "stream_options";
    de_response_format: Option<ResponseFormat> = "response_format";
    de_tools: Option<Vec<Tool>> = "tools";
    de_tool_choice: Option<ToolChoice> = "tool_choice";
    de_parallel_tool_calls: Option<bool> = "parallel_tool_calls";
    de_n: Option<u32> = "n";
    de_user: Option<String> = "user";
    de_logit_bias: Option<BTreeMap<String, f64>> = "logit_bias";
    de_logprobs: Option<bool> = "logprobs";
    de_top_logprobs: Option<u32> = "top_logprobs";
    de_metadata: Option<BTreeMap<String, String>> = "metadata";
    de_prompt: Prompt = "prompt";
    de_completion_logprobs: Option<u32> = "logprobs";
    de_echo: Option<bool> = "echo";
    de_best_of: Option<u32> = "best_of";
    de_suffix: Option<String> = "suffix";
    de_embedding_input: EmbeddingInput = "input";
    de_encoding_format: Option<EncodingFormat> = "encoding_format";
    de_dimensions: Option<u32> = "dimensions";
}

fn de_frequency_penalty<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Penalty>, D::Error> {
    Option::<Penalty>::deserialize(d).map_err(|e| D::Error::custom(format_args!("frequency_{e}")))
}

fn de_presence_penalty<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Penalty>, D::Error> {
    Option::<Penalty>::deserialize(d).map_err(|e| D::Error::custom(format_args!("presence_{e}")))
}

/// The body of `POST /chat/completions`. Fields Vouch does not implement (tools, logprobs,
/// penalties…) are still read, so a node can refuse them by name rather than ignore them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatCompletionRequest {
    /// `name`, `name@version` or `sha256:<hex>`.
    #[serde(deserialize_with = "de_model")]
    pub model: String,
    #[serde(deserialize_with = "de_messages")]
    pub messages: Vec<ChatMessage>,
    /// Deprecated by OpenAI in favour of `max_completion_tokens`; either bounds the
    /// completion (the smaller wins when both are given).
    #[serde(
        default,
        deserialize_with = "de_max_tokens",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_tokens: Option<u32>,
    #[serde(
        default,
        deserialize_with = "de_max_completion_tokens",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_completion_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>, minimum = 0, maximum = 2)]
    pub temperature: Option<Temperature>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>, minimum = 0, maximum = 1)]
    pub top_p: Option<TopP>,
    /// The sampler seed; the node picks one when absent, and the receipt records the one used.
    #[serde(
        default,
        deserialize_with = "de_seed",
        skip_serializing_if = "Option::is_none"
    )]
    pub seed: Option<i64>,
    #[serde(
        default,
        deserialize_with = "de_stop",
        skip_serializing_if = "Option::is_none"
    )]
    pub stop: Option<Stop>,
    /// Answer as server-sent events (`chat.completion.chunk` objects, then the receipt event).
    #[serde(
        default,
        deserialize_with = "de_stream",
        skip_serializing_if = "Option::is_none"
    )]
    pub stream: Option<bool>,
    #[serde(
        default,
        deserialize_with = "de_stream_options",
        skip_serializing_if = "Option::is_none"
    )]
    pub stream_options: Option<StreamOptions>,
    #[serde(
        default,
        deserialize_with = "de_response_format",
        skip_serializing_if = "Option::is_none"
    )]
    pub response_format: Option<ResponseFormat>,
    #[serde(
        default,
        deserialize_with = "de_tools",
        skip_serializing_if = "Option::is_none"
    )]
    pub tools: Option<Vec<Tool>>,
    #[serde(
        default,
        deserialize_with = "de_tool_choice",
        skip_serializing_if = "Option::is_none"
    )]
    pub tool_choice: Option<ToolChoice>,
    #[serde(
        default,
        deserialize_with = "de_parallel_tool_calls",
        skip_serializing_if = "Option::is_none"
    )]
    pub parallel_tool_calls: Option<bool>,
    /// How many choices; a chat receipt covers one, so a node refuses more than 1.
    #[serde(
        default,
        deserialize_with = "de_n",
        skip_serializing_if = "Option::is_none"
    )]
    pub n: Option<u32>,
    /// The caller's end-user id (OpenAI's abuse monitoring); covered by the request digest.
    #[serde(
        default,
        deserialize_with = "de_user",
        skip_serializing_if = "Option::is_none"
    )]
    pub user: Option<String>,
    #[serde(
        default,
        deserialize_with = "de_frequency_penalty",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<f64>, minimum = -2, maximum = 2)]
    pub frequency_penalty: Option<Penalty>,
    #[serde(
        default,
        deserialize_with = "de_presence_penalty",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<f64>, minimum = -2, maximum = 2)]
    pub presence_penalty: Option<Penalty>,
    /// Token id (as a string) → bias, -100 to 100.
    #[serde(
        default,
        deserialize_with = "de_logit_bias",
        skip_serializing_if = "Option::is_none"
    )]
    pub logit_bias: Option<BTreeMap<String, f64>>,
    #[serde(
        default,
        deserialize_with = "de_logprobs",
        skip_serializing_if = "Option::is_none"
    )]
    pub logprobs: Option<bool>,
    #[serde(
        default,
        deserialize_with = "de_top_logprobs",
        skip_serializing_if = "Option::is_none"
    )]
    pub top_logprobs: Option<u32>,
    #[serde(
        default,
        deserialize_with = "de_metadata",
        skip_serializing_if = "Option::is_none"
    )]
    pub metadata: Option<BTreeMap<String, String>>,
}

impl ChatCompletionRequest {
    pub fn is_stream(&self) -> bool {
        self.stream == Some(true)
    }

    /// The completion-token budget the caller asked for: the smaller of `max_tokens` and
    /// `max_completion_tokens` when both are given.
    pub fn max_tokens(&self) -> Option<u32> {
        match (self.max_tokens, self.max_completion_tokens) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// One message of the conversation, tagged by `role`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum ChatMessage {
    System {
        content: MessageContent,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// OpenAI's newer name for system instructions (o1 onwards); treated as `system`.
    Developer {
        content: MessageContent,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    User {
        content: MessageContent,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    Assistant {
        /// Absent or null when the turn was only tool calls.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<MessageContent>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        refusal: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tool_calls: Option<Vec<ToolCall>>,
    },
    Tool {
        content: MessageContent,
        tool_call_id: String,
    },
}

/// A message's content: a string, or an array of parts.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

impl<'de> Deserialize<'de> for MessageContent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // By hand: an untagged enum's error ("did not match any variant") says nothing useful.
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => Ok(MessageContent::Text(s)),
            v @ serde_json::Value::Array(_) => serde_json::from_value(v)
                .map(MessageContent::Parts)
                .map_err(|e| D::Error::custom(format_args!("content: {e}"))),
            _ => Err(D::Error::custom(
                "content: must be a string or an array of content parts",
            )),
        }
    }
}

impl MessageContent {
    /// The text parts joined (non-text parts are left out; a node that cannot take them
    /// refuses the request before calling this).
    pub fn text(&self) -> String {
        match self {
            MessageContent::Text(s) => s.clone(),
            MessageContent::Parts(parts) => parts
                .iter()
                .filter_map(|p| match p {
                    ContentPart::Text { text } => Some(text.as_str()),
                    _ => None,
                })
                .collect(),
        }
    }
}

/// One part of a message's content, tagged by `type`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    Text {
        text: String,
    },
    ImageUrl {
        image_url: ImageUrl,
    },
    InputAudio {
        input_audio: InputAudio,
    },
    /// A file part (`file_id` or inline `file_data`), kept as sent.
    File {
        file: serde_json::Value,
    },
    Refusal {
        refusal: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ImageUrl {
    /// An `https:` URL or a `data:` URL.
    pub url: String,
    /// `auto`, `low` or `high`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InputAudio {
    /// Base64 audio.
    pub data: String,
    /// `wav` or `mp3`.
    pub format: String,
}

/// A tool call the assistant made (in a message sent back, or in an answer).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ToolCall {
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: String,
    pub function: FunctionCall,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FunctionCall {
    pub name: String,
    /// The arguments as a JSON string, as the model wrote them.
    pub arguments: String,
}

/// `stop`: one sequence or several.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

impl<'de> Deserialize<'de> for Stop {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => Ok(Stop::One(s)),
            serde_json::Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    serde_json::Value::String(s) => Ok(s),
                    _ => Err(D::Error::custom("must be a string or an array of strings")),
                })
                .collect::<Result<_, _>>()
                .map(Stop::Many),
            _ => Err(D::Error::custom("must be a string or an array of strings")),
        }
    }
}

impl Stop {
    /// The sequences in the order given (what a receipt's `sampling.stop` records).
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s.clone()],
            Stop::Many(v) => v.clone(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StreamOptions {
    /// Send one more chunk before the receipt event, with `usage` and empty `choices`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_usage: Option<bool>,
}

/// `response_format`, tagged by `type`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema { json_schema: JsonSchemaFormat },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JsonSchemaFormat {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The JSON Schema the answer must follow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// A tool the model may call, tagged by `type` (only `function` exists in chat completions).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Tool {
    Function { function: FunctionDefinition },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FunctionDefinition {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// `tool_choice`: `none`, `auto`, `required`, or one named function.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ToolChoice {
    /// `none`, `auto` or `required`.
    Mode(String),
    Function {
        /// Always `function`.
        #[serde(rename = "type")]
        kind: String,
        function: NamedFunction,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NamedFunction {
    pub name: String,
}

impl<'de> Deserialize<'de> for ToolChoice {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Named {
            #[serde(rename = "type")]
            kind: String,
            function: NamedFunction,
        }
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) if matches!(s.as_str(), "none" | "auto" | "required") => {
                Ok(ToolChoice::Mode(s))
            }
            v @ serde_json::Value::Object(_) => match serde_json::from_value::<Named>(v) {
                Ok(n) if n.kind == "function" => Ok(ToolChoice::Function {
                    kind: n.kind,
                    function: n.function,
                }),
                _ => Err(D::Error::custom(
                    "must be {\"type\": \"function\", \"function\": {\"name\": ...}}",
                )),
            },
            _ => Err(D::Error::custom(
                "must be \"none\", \"auto\", \"required\" or a named function",
            )),
        }
    }
}

/// Why a choice ended, as OpenAI names it. (A receipt's `cancelled` never reaches a client.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WireFinishReason {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
    FunctionCall,
}

/// OpenAI's `usage`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CompletionUsage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
}

impl From<vouch_core::Usage> for CompletionUsage {
    fn from(u: vouch_core::Usage) -> Self {
        CompletionUsage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            total_tokens: u.total_tokens,
        }
    }
}

/// `chat.completion`: the non-streamed answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatCompletion {
    /// `chatcmpl-<request_id>`.
    pub id: String,
    /// Always `chat.completion` ([`ChatCompletion::OBJECT`]).
    pub object: String,
    /// Unix seconds.
    pub created: u64,
    /// The receipt's `model_ref`, or its model digest when called by digest.
    pub model: String,
    pub choices: Vec<ChatChoice>,
    pub usage: CompletionUsage,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_fingerprint: Option<String>,
    /// The receipt bundle (`vouch.chat-bundle.v1`); absent only when the caller asked for no
    /// receipt at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vouch: Option<ChatBundle>,
}

impl ChatCompletion {
    pub const OBJECT: &'static str = "chat.completion";
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatChoice {
    pub index: u32,
    pub message: AssistantMessage,
    /// Always null: Vouch does not return log probabilities.
    pub logprobs: Option<serde_json::Value>,
    pub finish_reason: WireFinishReason,
}

/// The answer's message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AssistantMessage {
    /// Always `assistant`.
    pub role: String,
    pub content: Option<String>,
    pub refusal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
}

/// Keeps `null` apart from absent (`Some(None)` against `None`), so a chunk reads back as sent.
fn null_or_value<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// `chat.completion.chunk`: one `data:` event of a stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatCompletionChunk {
    pub id: String,
    /// Always `chat.completion.chunk` ([`ChatCompletionChunk::OBJECT`]).
    pub object: String,
    pub created: u64,
    pub model: String,
    /// Empty in the usage chunk (`stream_options.include_usage`).
    pub choices: Vec<ChunkChoice>,
    /// With `include_usage`: null, except in the usage chunk. Without: absent.
    #[serde(
        default,
        deserialize_with = "null_or_value",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<CompletionUsage>)]
    pub usage: Option<Option<CompletionUsage>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_fingerprint: Option<String>,
    /// This chunk's place in the stream's hash chain: what `StreamVerifier` checks.
    pub vouch: ChunkLink,
}

impl ChatCompletionChunk {
    pub const OBJECT: &'static str = "chat.completion.chunk";
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChunkChoice {
    pub index: u32,
    pub delta: ChunkDelta,
    pub logprobs: Option<serde_json::Value>,
    /// Null until the last content chunk.
    pub finish_reason: Option<WireFinishReason>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChunkDelta {
    /// `assistant`, in the first chunk only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<serde_json::Value>>,
}

/// The last `data:` event before `[DONE]`: the stream's receipt bundle. Not a chunk, so not
/// in the hash chain; its receipt commits to the chain's head and length instead. SDKs pass it
/// through as a chunk with unknown fields (Python: `chunk.model_extra["vouch"]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatReceiptEvent {
    /// Always `vouch.receipt`.
    pub object: String,
    pub vouch: ChatBundle,
}

impl ChatReceiptEvent {
    pub fn new(bundle: ChatBundle) -> Self {
        ChatReceiptEvent {
            object: CHAT_RECEIPT_EVENT_OBJECT.into(),
            vouch: bundle,
        }
    }
}

/// The legacy `POST /completions` body. Answered with the same chat receipt kind (text in,
/// text out; the request digest says which body it was).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CompletionRequest {
    #[serde(deserialize_with = "de_model")]
    pub model: String,
    #[serde(deserialize_with = "de_prompt")]
    pub prompt: Prompt,
    /// OpenAI's default is 16.
    #[serde(
        default,
        deserialize_with = "de_max_tokens",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>, minimum = 0, maximum = 2)]
    pub temperature: Option<Temperature>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>, minimum = 0, maximum = 1)]
    pub top_p: Option<TopP>,
    #[serde(
        default,
        deserialize_with = "de_seed",
        skip_serializing_if = "Option::is_none"
    )]
    pub seed: Option<i64>,
    #[serde(
        default,
        deserialize_with = "de_stop",
        skip_serializing_if = "Option::is_none"
    )]
    pub stop: Option<Stop>,
    #[serde(
        default,
        deserialize_with = "de_stream",
        skip_serializing_if = "Option::is_none"
    )]
    pub stream: Option<bool>,
    #[serde(
        default,
        deserialize_with = "de_stream_options",
        skip_serializing_if = "Option::is_none"
    )]
    pub stream_options: Option<StreamOptions>,
    #[serde(
        default,
        deserialize_with = "de_n",
        skip_serializing_if = "Option::is_none"
    )]
    pub n: Option<u32>,
    #[serde(
        default,
        deserialize_with = "de_best_of",
        skip_serializing_if = "Option::is_none"
    )]
    pub best_of: Option<u32>,
    /// Legacy: the number of log probabilities to return per token (0–5).
    #[serde(
        default,
        deserialize_with = "de_completion_logprobs",
        skip_serializing_if = "Option::is_none"
    )]
    pub logprobs: Option<u32>,
    #[serde(
        default,
        deserialize_with = "de_echo",
        skip_serializing_if = "Option::is_none"
    )]
    pub echo: Option<bool>,
    #[serde(
        default,
        deserialize_with = "de_suffix",
        skip_serializing_if = "Option::is_none"
    )]
    pub suffix: Option<String>,
    #[serde(
        default,
        deserialize_with = "de_frequency_penalty",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<f64>, minimum = -2, maximum = 2)]
    pub frequency_penalty: Option<Penalty>,
    #[serde(
        default,
        deserialize_with = "de_presence_penalty",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<f64>, minimum = -2, maximum = 2)]
    pub presence_penalty: Option<Penalty>,
    #[serde(
        default,
        deserialize_with = "de_logit_bias",
        skip_serializing_if = "Option::is_none"
    )]
    pub logit_bias: Option<BTreeMap<String, f64>>,
    #[serde(
        default,
        deserialize_with = "de_user",
        skip_serializing_if = "Option::is_none"
    )]
    pub user: Option<String>,
}

/// A legacy prompt: text, several texts, token ids, or several token-id lists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Prompt {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
    TokenLists(Vec<Vec<u32>>),
}

impl<'de> Deserialize<'de> for Prompt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        texts_or_tokens(serde_json::Value::deserialize(d)?).map_err(D::Error::custom)
    }
}

/// The four shapes OpenAI accepts for `prompt` and `input`, with one message for anything else.
fn texts_or_tokens(v: serde_json::Value) -> Result<Prompt, String> {
    use serde_json::Value;
    const SHAPES: &str = "must be a string, an array of strings, an array of token ids, or an array of arrays of token ids";
    let items = match v {
        Value::String(s) => return Ok(Prompt::Text(s)),
        Value::Array(items) => items,
        _ => return Err(SHAPES.into()),
    };
    match items.first() {
        None => Err(format!("{SHAPES}, not empty")),
        Some(Value::String(_)) => serde_json::from_value(Value::Array(items))
            .map(Prompt::Texts)
            .map_err(|_| SHAPES.into()),
        Some(Value::Number(_)) => serde_json::from_value(Value::Array(items))
            .map(Prompt::Tokens)
            .map_err(|_| SHAPES.into()),
        Some(Value::Array(_)) => serde_json::from_value(Value::Array(items))
            .map(Prompt::TokenLists)
            .map_err(|_| SHAPES.into()),
        Some(_) => Err(SHAPES.into()),
    }
}

/// `text_completion`: the legacy non-streamed answer (streamed: the same object per event,
/// with `vouch` the chunk's [`ChunkLink`] instead of the bundle, then the receipt event).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Completion {
    pub id: String,
    /// Always `text_completion`.
    pub object: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<CompletionChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<CompletionUsage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_fingerprint: Option<String>,
    /// The bundle (non-streamed) or the chunk's chain link (streamed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vouch: Option<CompletionVouch>,
}

/// What `vouch` holds on a legacy completion object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum CompletionVouch {
    Link(ChunkLink),
    Bundle(Box<ChatBundle>),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CompletionChoice {
    pub text: String,
    pub index: u32,
    pub logprobs: Option<serde_json::Value>,
    /// Null in stream events before the last.
    pub finish_reason: Option<WireFinishReason>,
}

/// `GET /models` in OpenAI's shape.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OpenAiModelList {
    /// Always `list`.
    pub object: String,
    pub data: Vec<OpenAiModel>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OpenAiModel {
    /// What to pass as `model`: `name@version` (or `sha256:<hex>` for a model without a name).
    pub id: String,
    /// Always `model`.
    pub object: String,
    /// Unix seconds of registration.
    pub created: u64,
    pub owned_by: String,
}

/// The body of `POST /embeddings`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EmbeddingRequest {
    #[serde(deserialize_with = "de_model")]
    pub model: String,
    #[serde(deserialize_with = "de_embedding_input")]
    pub input: EmbeddingInput,
    #[serde(
        default,
        deserialize_with = "de_encoding_format",
        skip_serializing_if = "Option::is_none"
    )]
    pub encoding_format: Option<EncodingFormat>,
    #[serde(
        default,
        deserialize_with = "de_dimensions",
        skip_serializing_if = "Option::is_none"
    )]
    pub dimensions: Option<u32>,
    #[serde(
        default,
        deserialize_with = "de_user",
        skip_serializing_if = "Option::is_none"
    )]
    pub user: Option<String>,
}

/// `input` of an embeddings request: the same four shapes as a legacy prompt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(transparent)]
pub struct EmbeddingInput(pub Prompt);

impl<'de> Deserialize<'de> for EmbeddingInput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Prompt::deserialize(d).map(EmbeddingInput)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EncodingFormat {
    /// An array of numbers (the default).
    Float,
    /// Standard base64 of the little-endian float32 values.
    Base64,
}

/// The embeddings answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EmbeddingResponse {
    /// Always `list`.
    pub object: String,
    pub data: Vec<Embedding>,
    pub model: String,
    pub usage: EmbeddingUsage,
    /// The receipt bundle of the embedding model's run: an ONNX receipt (`vouch.bundle.v1`),
    /// since embedding models run through the ONNX pipeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vouch: Option<Bundle>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Embedding {
    /// Always `embedding`.
    pub object: String,
    pub embedding: EmbeddingVector,
    pub index: u32,
}

/// Numbers (`encoding_format: float`) or base64 (`base64`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum EmbeddingVector {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EmbeddingUsage {
    pub prompt_tokens: u32,
    pub total_tokens: u32,
}

/// OpenAI's error body, `{"error": {"message", "type", "param", "code"}}`: what the
/// OpenAI-compatible routes answer instead of Vouch's own [`crate::ErrorBody`], so the SDKs
/// raise their usual exceptions with the message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OpenAiError {
    pub error: OpenAiErrorDetail,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OpenAiErrorDetail {
    pub message: String,
    /// `invalid_request_error`, `authentication_error`, `permission_error`, `not_found_error`,
    /// `rate_limit_error`, `server_error`… (OpenAI's classes; SDKs pick the exception by status).
    #[serde(rename = "type")]
    pub kind: String,
    /// The request field at fault, when one is.
    pub param: Option<String>,
    /// A stable code: Vouch's `ErrorCode` name (or its finer `reason`).
    pub code: Option<String>,
}

impl OpenAiError {
    /// A caller's mistake in field `param`.
    pub fn invalid_request(message: impl Into<String>, param: Option<&str>) -> Self {
        OpenAiError {
            error: OpenAiErrorDetail {
                message: message.into(),
                kind: "invalid_request_error".into(),
                param: param.map(str::to_string),
                code: None,
            },
        }
    }
}
