//! `POST /v1/embeddings`: OpenAI's embeddings API on an ONNX embedding model, answered with the
//! ONNX receipt bundle of the run in `vouch` (its inputs are the token ids the model ran on).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use bytes::Bytes;
use vouch_api::openai::{EmbeddingRequest, EmbeddingResponse};
use vouch_node::embeddings::EmbeddingCall;

use crate::error::ApiError;
use crate::state::AppState;

/// Embeds text (with the tokenizer the model's file carries) or token ids in one ONNX run.
/// Inputs longer than the model's limit are refused (reason `context_length_exceeded`), never
/// truncated. Tiers, policy, prices and x402 payment are those of `POST /v1/infer`.
#[utoipa::path(post, path = "/v1/embeddings", operation_id = "embeddings", tag = "chat",
    request_body = EmbeddingRequest,
    responses((status = 200, description = "the embeddings, with the run's receipt bundle in `vouch`", body = EmbeddingResponse),
        (status = 400, description = "bad input: not an embedding model (reason not_embedding), an input over the model's token limit, dimensions it cannot give", body = vouch_api::ErrorBody),
        (status = 402, description = "payment required or refused (x402, when [pay] enabled)"),
        (status = 404, description = "no such model", body = vouch_api::ErrorBody),
        (status = 422, description = "tier unavailable, or below the model's minimum tier", body = vouch_api::ErrorBody),
        (status = 503, description = "queue full; retry after the Retry-After delay", body = vouch_api::ErrorBody)))]
pub async fn embeddings(
    State(st): State<Arc<AppState>>,
    request_headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(HeaderMap, Json<EmbeddingResponse>), ApiError> {
    let (_, request, tiers): (_, EmbeddingRequest, _) =
        crate::routes::chat::read_request(&st, body, "embeddings request")?;
    let done = st
        .node
        .embed(EmbeddingCall {
            request,
            tiers,
            payment: crate::routes::payment_headers(&request_headers),
        })
        .await?;
    Ok((
        crate::routes::infer::response_headers(&done.inferred),
        Json(done.response),
    ))
}
