//! The model registry over HTTP.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use bytes::Bytes;
use vouch_api::{ListParams, RegisterParams};
use vouch_core::{ErrorCode, ModelDigest};
use vouch_node::models::Registration;

use crate::auth::Admin;
use crate::error::ApiError;
use crate::routes::body_or_error;
use crate::state::AppState;

/// Registers an ONNX model (raw bytes as the body). Idempotent: the same bytes give the same
/// digest and a 200 instead of a 201. The answer's `zk` says whether the zk tier can prove it
/// (or names the unsupported operator); analysis that takes longer than `[zk] analyze_wait_ms`
/// answers `analysing` and finishes in the background.
#[utoipa::path(post, path = "/v1/models", operation_id = "register_model", tag = "models", params(RegisterParams),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "the ONNX file's bytes"),
    responses((status = 201, description = "registered", body = vouch_api::RegisterResponse), (status = 200, description = "already registered", body = vouch_api::RegisterResponse),
        (status = 401, description = "missing or wrong admin token", body = vouch_api::ErrorBody), (status = 413, description = "model too large", body = vouch_api::ErrorBody),
        (status = 422, description = "not a loadable model", body = vouch_api::ErrorBody)))]
pub async fn register(
    _admin: Admin,
    State(st): State<Arc<AppState>>,
    Query(params): Query<RegisterParams>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<vouch_api::RegisterResponse>), ApiError> {
    let bytes = body_or_error(
        body,
        st.node.config.limits.max_model_bytes,
        ErrorCode::ModelTooLarge,
    )?;
    let to = Registration {
        name: params.name,
        version: params.version,
        replace: params.replace,
    };
    let done = st.node.register(bytes, &to).await?;
    let status = if done.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(done.view)))
}

/// Registered models, newest first, with their names and signatures.
#[utoipa::path(get, path = "/v1/models", operation_id = "list_models", tag = "models", params(ListParams), responses((status = 200, description = "models", body = vouch_api::ModelList)))]
pub async fn list(
    State(st): State<Arc<AppState>>,
    Query(p): Query<ListParams>,
) -> Result<Json<vouch_api::ModelList>, ApiError> {
    Ok(Json(st.node.models(p.limit, p.offset).await?))
}

/// A model by `name` (latest version) or `name@version`.
#[utoipa::path(get, path = "/v1/models/{reference}", operation_id = "get_model", tag = "models", params(("reference" = String, Path, description = "name or name@version")),
    responses((status = 200, description = "the model", body = vouch_api::ModelView), (status = 404, description = "no such model", body = vouch_api::ErrorBody)))]
pub async fn by_name(
    State(st): State<Arc<AppState>>,
    Path(reference): Path<String>,
) -> Result<Json<vouch_api::ModelView>, ApiError> {
    let (_, digest) = st.node.catalog.resolve_str(&reference).await?;
    Ok(Json(st.node.model(&digest).await?))
}

/// A model by its SHA-256 digest (`sha256:<hex>` or bare hex).
#[utoipa::path(get, path = "/v1/models/by-digest/{digest}", operation_id = "get_model_by_digest", tag = "models", params(("digest" = String, Path, description = "sha256:<hex>")),
    responses((status = 200, description = "the model", body = vouch_api::ModelView), (status = 404, description = "no such model", body = vouch_api::ErrorBody)))]
pub async fn by_digest(
    State(st): State<Arc<AppState>>,
    Path(digest): Path<String>,
) -> Result<Json<vouch_api::ModelView>, ApiError> {
    let d: ModelDigest = digest
        .parse()
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("{e}")))?;
    Ok(Json(st.node.model(&d).await?))
}
