//! A model's configuration — the system prompt and generation settings that shape its outputs.
//! Receipts carry its digest (`config_digest`) and every change is a transparency-log entry
//! with the configuration itself, so a swapped prompt is as visible as a swapped model.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use bytes::Bytes;
use serde_json::{Value, json};
use vouch_core::{Digest, ErrorCode, ModelDigest};

use crate::auth::Admin;
use crate::catalog;
use crate::error::ApiError;
use crate::routes::body_or_error;
use crate::state::AppState;

/// Largest configuration, canonical bytes: it travels whole in a log entry (≤ 64 KiB).
pub const MAX_CONFIG_BYTES: usize = 32 << 10;

/// Sets a model's configuration (a JSON object; applies to the digest the reference names now).
/// From the answer on, its receipts carry the new `config_digest`; the change is logged first.
#[utoipa::path(put, path = "/v1/models/{reference}/config",
    params(("reference" = String, Path, description = "name, name@version or sha256:<hex>")),
    request_body(content = Object, content_type = "application/json"),
    responses((status = 200, description = "the configuration now in force"),
        (status = 400, description = "not a JSON object"), (status = 401, description = "missing or wrong admin token"),
        (status = 404, description = "no such model"), (status = 413, description = "larger than 32 KiB")))]
pub async fn put_config(
    _admin: Admin,
    State(st): State<Arc<AppState>>,
    Path(reference): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body_or_error(body, MAX_CONFIG_BYTES, ErrorCode::PayloadTooLarge)?;
    let config: Value = crate::json::parse(&body, "the configuration is not JSON")?;
    if !config.is_object() {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            "the configuration must be a JSON object, e.g. {\"system_prompt\": \"...\"}",
        ));
    }
    // One canonical form, the one verifiers digest too (`vouch verify --config`).
    let canonical = vouch_core::canonical_config(&config)
        .map_err(|m| ApiError::new(ErrorCode::BadRequest, m))?;
    if canonical.len() > MAX_CONFIG_BYTES {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "the configuration is {} bytes in canonical form; the limit is {MAX_CONFIG_BYTES}",
                canonical.len()
            ),
        ));
    }
    let (_, model) = catalog::resolve_str(&st, &reference).await?;
    catalog::meta(&st, &model).await?;
    let digest = Digest::of(canonical.as_bytes());
    let change = st
        .store
        .set_model_config(&model, &canonical, &digest)
        .await?;
    if change.is_some() {
        crate::transparency::drain_outboxes(&st.log, &st.store)
            .await
            .map_err(ApiError::internal)?;
    }
    st.configs
        .insert(model, ConfigFacts::of(Some(digest), &config));
    Ok(Json(json!({
        "model": model,
        "config_digest": digest,
        "changed": change.is_some(),
        "config": config,
    })))
}

/// A model's configuration in force, or `null`.
#[utoipa::path(get, path = "/v1/models/{reference}/config",
    params(("reference" = String, Path, description = "name, name@version or sha256:<hex>")),
    responses((status = 200, description = "the configuration, or null"), (status = 404, description = "no such model")))]
pub async fn get_config(
    State(st): State<Arc<AppState>>,
    Path(reference): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (_, model) = catalog::resolve_str(&st, &reference).await?;
    let c = st.store.model_config(&model).await?;
    Ok(Json(json!({"model": model, "config": c})))
}

/// What a request needs from its model's configuration.
#[derive(Clone, Copy, Debug)]
pub struct ConfigFacts {
    /// The `config_digest` its receipts carry.
    pub digest: Option<Digest>,
    /// `false` when the configuration says `"batching": false`: requests for the model then
    /// always run alone, whatever the engine could prove. Receipts say so through the
    /// configuration's digest, and `engine.profile.batch` is 1.
    pub batching: bool,
}

impl ConfigFacts {
    fn of(digest: Option<Digest>, config: &Value) -> Self {
        ConfigFacts {
            digest,
            batching: config.get("batching") != Some(&Value::Bool(false)),
        }
    }
}

/// The configuration facts for a model's requests, cached (a change on this node replaces them).
pub async fn facts_for(st: &AppState, model: &ModelDigest) -> Result<ConfigFacts, ApiError> {
    if let Some(f) = st.configs.get(model) {
        return Ok(f);
    }
    let f = match st.store.model_config(model).await? {
        Some(c) => ConfigFacts::of(Some(c.config_digest), &c.config),
        None => ConfigFacts::of(None, &Value::Null),
    };
    st.configs.insert(*model, f);
    Ok(f)
}
