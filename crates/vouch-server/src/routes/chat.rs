//! `POST /v1/chat/completions` and the legacy `POST /v1/completions`: OpenAI's APIs, answered
//! with a chat receipt — in the answer's `vouch` field, or, streamed, as the last server-sent
//! event before `[DONE]`.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::Value;
use vouch_api::openai::{ChatCompletionRequest, CompletionRequest};
use vouch_core::{ErrorCode, Tier};
use vouch_node::infer::parse_tiers;
use vouch_node::{ChatAnswer, ChatCall, CompletionCall};

use crate::error::ApiError;
use crate::routes::body_or_error;
use crate::state::AppState;

/// Tiers from the body's `tiers` (the SDKs send it with `extra_body`); `["signed"]` when absent,
/// as for `/v1/infer`.
pub(crate) fn tiers_of(body: &Value) -> Result<Vec<Tier>, ApiError> {
    match body.get("tiers") {
        None => Ok(vec![Tier::Signed]),
        Some(v) => {
            let raw: Vec<String> = serde_json::from_value(v.clone()).map_err(|_| {
                ApiError::new(
                    ErrorCode::BadRequest,
                    "tiers: an array of tier names (signed, tee, zk)",
                )
            })?;
            Ok(parse_tiers(&raw)?)
        }
    }
}

/// A chat completion with a receipt: the whole request as received, the model's digest and
/// configuration, the sampling and seed used, the tokens and the text. `stream: true` answers
/// with server-sent events: `chat.completion.chunk` objects, each carrying its link of the
/// stream's hash chain (`vouch.index`, `vouch.prev`), then one `vouch.receipt` event whose
/// receipt commits to the chain's head, then `[DONE]`.
/// With payments on, send an x402 payment (`upto` the quoted maximum, settled for the tokens
/// used, or `exact` the maximum) in `PAYMENT-SIGNATURE` (v2) or `X-PAYMENT` (v1); a whole
/// answer carries `PAYMENT-RESPONSE` / `X-PAYMENT-RESPONSE`, a stream's settlement is in its
/// receipt's `payment`.
#[utoipa::path(post, path = "/v1/chat/completions", operation_id = "chat_completions", tag = "chat",
    request_body = ChatCompletionRequest,
    responses((status = 200, description = "the completion with its receipt bundle in `vouch` (or, with `stream: true`, an event stream)", body = vouch_api::openai::ChatCompletion),
        (status = 400, description = "bad request: unsupported option, prompt longer than the context (reason context_length_exceeded), max_tokens over the node's limit", body = vouch_api::ErrorBody),
        (status = 402, description = "payment required or refused (x402, when [pay] enabled): PAYMENT-REQUIRED header (v2, offering upto and exact) and the v1 JSON body, `error` = reason code"),
        (status = 404, description = "no such model", body = vouch_api::ErrorBody),
        (status = 422, description = "tier unavailable (zk on an LLM), or below the model's minimum tier", body = vouch_api::ErrorBody),
        (status = 503, description = "every chat slot is busy; retry after the Retry-After delay; or, with payments on, the model has no per-token price (reason token_price_unknown)", body = vouch_api::ErrorBody)))]
pub async fn chat_completions(
    State(st): State<Arc<AppState>>,
    request_headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (value, request, tiers) = read_request(&st, body, "chat request")?;
    let answer = st
        .node
        .chat(ChatCall {
            body: value,
            request,
            tiers,
            payment: crate::routes::payment_headers(&request_headers),
        })
        .await?;
    Ok(respond(answer))
}

/// A legacy text completion with the same receipt kind: the prompt as given (no chat template,
/// no configured system prompt), one prompt per request. Streamed, the events are
/// `text_completion` objects carrying their chain links in `vouch`.
#[utoipa::path(post, path = "/v1/completions", operation_id = "completions", tag = "chat",
    request_body = CompletionRequest,
    responses((status = 200, description = "the completion with its receipt bundle in `vouch` (or, with `stream: true`, an event stream)", body = vouch_api::openai::Completion),
        (status = 400, description = "bad request: unsupported option (echo, suffix, several prompts), prompt longer than the context, max_tokens over the node's limit", body = vouch_api::ErrorBody),
        (status = 404, description = "no such model", body = vouch_api::ErrorBody),
        (status = 422, description = "tier unavailable (zk on an LLM), or below the model's minimum tier", body = vouch_api::ErrorBody),
        (status = 402, description = "payment required or refused (x402, when [pay] enabled), as for chat"),
        (status = 503, description = "every chat slot is busy; retry after the Retry-After delay; or, with payments on, the model has no per-token price (reason token_price_unknown)", body = vouch_api::ErrorBody)))]
pub async fn completions(
    State(st): State<Arc<AppState>>,
    request_headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (value, request, tiers) = read_request(&st, body, "completion request")?;
    let answer = st
        .node
        .complete(CompletionCall {
            body: value,
            request,
            tiers,
            payment: crate::routes::payment_headers(&request_headers),
        })
        .await?;
    Ok(respond(answer))
}

/// The body parsed once, the typed request read from the tree in place (the tree itself is
/// what the receipt commits to), and the tiers it asks for.
pub(crate) fn read_request<T: serde::de::DeserializeOwned>(
    st: &AppState,
    body: Result<Bytes, BytesRejection>,
    what: &str,
) -> Result<(Value, T, Vec<Tier>), ApiError> {
    let limits = &st.node.config.limits;
    let body = body_or_error(body, limits.max_body_bytes, ErrorCode::PayloadTooLarge)?;
    let value: Value = crate::json::parse(&body, "invalid request JSON")?;
    let request = T::deserialize(&value)
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("{what}: {e}")))?;
    let tiers = tiers_of(&value)?;
    Ok((value, request, tiers))
}

/// Settlement headers of a paid answer.
fn paid_headers(paid: &[(&'static str, String)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in paid {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(n, v);
        }
    }
    headers
}

fn respond(answer: ChatAnswer) -> Response {
    match answer {
        ChatAnswer::Complete(c, paid) => (paid_headers(&paid), Json(*c)).into_response(),
        ChatAnswer::Text(c, paid) => (paid_headers(&paid), Json(*c)).into_response(),
        ChatAnswer::Stream(rx) => Sse::new(ChatEvents { rx, done: false }).into_response(),
    }
}

/// The node's `data:` payloads as server-sent events, then `[DONE]`. Dropped when the client
/// leaves, which drops the node's receiver: its next send fails and generation stops.
struct ChatEvents {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    done: bool,
}

impl futures_core::Stream for ChatEvents {
    type Item = Result<Event, Infallible>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        match self.rx.poll_recv(cx) {
            // The node built these bytes with serde_json: valid UTF-8 on one line.
            Poll::Ready(Some(bytes)) => Poll::Ready(Some(Ok(
                Event::default().data(String::from_utf8_lossy(&bytes))
            ))),
            Poll::Ready(None) if !self.done => {
                self.done = true;
                Poll::Ready(Some(Ok(Event::default().data("[DONE]"))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}
