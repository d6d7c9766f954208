//! A model's configuration over HTTP (`vouch_node::configs`).

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use bytes::Bytes;
use serde_json::Value;
use vouch_core::ErrorCode;

use crate::auth::Admin;
use crate::error::ApiError;
use crate::routes::body_or_error;
use crate::state::AppState;

use vouch_node::configs::MAX_CONFIG_BYTES;

/// Sets a model's configuration (a JSON object; applies to the digest the reference names now).
/// From the answer on, its receipts carry the new `config_digest`; the change is logged first.
#[utoipa::path(put, path = "/v1/models/{reference}/config", operation_id = "set_config", tag = "config",
    params(("reference" = String, Path, description = "name, name@version or sha256:<hex>")),
    request_body(content = Object, content_type = "application/json",
        description = "the configuration: a JSON object (system prompt, generation settings)"),
    responses((status = 200, description = "the configuration now in force", body = vouch_api::ConfigUpdate),
        (status = 400, description = "not a JSON object", body = vouch_api::ErrorBody), (status = 401, description = "missing or wrong admin token", body = vouch_api::ErrorBody),
        (status = 404, description = "no such model", body = vouch_api::ErrorBody), (status = 413, description = "larger than 32 KiB", body = vouch_api::ErrorBody)))]
pub async fn put_config(
    _admin: Admin,
    State(st): State<Arc<AppState>>,
    Path(reference): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<vouch_api::ConfigUpdate>, ApiError> {
    let body = body_or_error(body, MAX_CONFIG_BYTES, ErrorCode::PayloadTooLarge)?;
    let config: Value = crate::json::parse(&body, "the configuration is not JSON")?;
    Ok(Json(st.node.set_config(&reference, config).await?))
}

/// A model's configuration in force, or `null`.
#[utoipa::path(get, path = "/v1/models/{reference}/config", operation_id = "get_config", tag = "config",
    params(("reference" = String, Path, description = "name, name@version or sha256:<hex>")),
    responses((status = 200, description = "the configuration, or null", body = vouch_api::ConfigView), (status = 404, description = "no such model", body = vouch_api::ErrorBody)))]
pub async fn get_config(
    State(st): State<Arc<AppState>>,
    Path(reference): Path<String>,
) -> Result<Json<vouch_api::ConfigView>, ApiError> {
    Ok(Json(st.node.config_of(&reference).await?))
}

/// Every change of a model's configuration, newest first (at most 100); each logged change
/// names its `config-changed` log entry.
#[utoipa::path(get, path = "/v1/models/{reference}/config/history", operation_id = "config_history", tag = "config",
    params(("reference" = String, Path, description = "name, name@version or sha256:<hex>")),
    responses((status = 200, description = "the changes", body = vouch_api::ConfigHistory), (status = 404, description = "no such model", body = vouch_api::ErrorBody)))]
pub async fn config_history(
    State(st): State<Arc<AppState>>,
    Path(reference): Path<String>,
) -> Result<Json<vouch_api::ConfigHistory>, ApiError> {
    Ok(Json(st.node.config_history(&reference).await?))
}
