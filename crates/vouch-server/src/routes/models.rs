//! The model registry over HTTP.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use vouch_core::model::validate_name;
use vouch_core::{ErrorCode, ModelDigest};
use vouch_store::{ModelRecord, NameChange, NewModel};

use crate::auth::Admin;
use crate::catalog;
use crate::error::ApiError;
use crate::routes::body_or_error;
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct RegisterParams {
    /// Name to point at the model (optional: a model can be used by digest alone).
    pub name: Option<String>,
    /// Version of that name; defaults to one more than the number of versions it has.
    pub version: Option<String>,
    /// Move `name@version` if it already points at another model.
    #[serde(default)]
    pub replace: bool,
}

/// Registers an ONNX model (raw bytes as the body). Idempotent: the same bytes give the same
/// digest and a 200 instead of a 201. The answer's `zk` says whether the zk tier can prove it
/// (or names the unsupported operator); analysis that takes longer than `[zk] analyze_wait_ms`
/// answers `analysing` and finishes in the background.
#[utoipa::path(post, path = "/v1/models", params(RegisterParams),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, description = "registered"), (status = 200, description = "already registered"),
        (status = 401, description = "missing or wrong admin token"), (status = 413, description = "model too large"),
        (status = 422, description = "not a loadable model")))]
pub async fn register(
    _admin: Admin,
    State(st): State<Arc<AppState>>,
    Query(params): Query<RegisterParams>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let bytes = body_or_error(
        body,
        st.config.limits.max_model_bytes,
        ErrorCode::ModelTooLarge,
    )?;
    if let Some(n) = &params.name {
        validate_name(n)
            .map_err(|m| ApiError::new(ErrorCode::BadRequest, format!("name {n:?}: {m}")))?;
    }
    if let Some(v) = &params.version {
        validate_name(v)
            .map_err(|m| ApiError::new(ErrorCode::BadRequest, format!("version {v:?}: {m}")))?;
        if params.name.is_none() {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                "a version needs a name",
            ));
        }
    }
    if bytes.is_empty() {
        return Err(ApiError::new(
            ErrorCode::InvalidModel,
            "the body is empty: send the model file's bytes",
        ));
    }
    let digest = ModelDigest::of_model_bytes(&bytes);
    let mut passed_over = Vec::new();
    let created = if st.store.model(&digest).await?.is_some() {
        false
    } else {
        let engines = st.engines.clone();
        let b = bytes.clone();
        let admission = tokio::task::spawn_blocking(move || engines.admit(&b))
            .await
            .map_err(ApiError::internal)?
            .map_err(|e| {
                ApiError::new(
                    ErrorCode::InvalidModel,
                    format!("not a model this node can serve: {e}"),
                )
            })?;
        passed_over = admission
            .passed_over
            .iter()
            .map(|(k, r)| json!({"engine": k.as_str(), "reason": r}))
            .collect();
        // Bytes first, row second: a crash in between leaves only an unreferenced blob.
        st.store.blobs.put_model(&digest, bytes.clone()).await?;
        let created = st
            .store
            .insert_model(&NewModel {
                digest,
                size_bytes: bytes.len() as u64,
                engine: admission.engine.as_str().into(),
                signature: admission.model.signature().clone(),
            })
            .await?;
        st.cache.insert(digest, admission.model).await;
        if created {
            crate::transparency::append_registered(&st.log, digest, bytes.len() as u64).await?;
        }
        created
    };
    let zk = st.zk.on_registered(digest, bytes.clone()).await;
    let mut change = None;
    if let Some(name) = &params.name {
        let version = match &params.version {
            Some(v) => v.clone(),
            None => next_version(&st, name).await?,
        };
        let c = st
            .store
            .set_name(name, &version, &digest, params.replace)
            .await?;
        st.names.invalidate_all();
        // The moves were stored with the pointer; they are in the log before the answer.
        crate::transparency::drain_outboxes(&st.log, &st.store)
            .await
            .map_err(ApiError::internal)?;
        // A name may carry a policy: the digest now answers to it too.
        st.policies.invalidate_all();
        change = Some(match c {
            NameChange::Created => json!({"name": name, "version": version, "change": "created"}),
            NameChange::Unchanged => {
                json!({"name": name, "version": version, "change": "unchanged"})
            }
            NameChange::Moved { from } => {
                json!({"name": name, "version": version, "change": "moved", "from": from})
            }
        });
    }
    let rec = st
        .store
        .model(&digest)
        .await?
        .ok_or_else(|| ApiError::internal("model vanished after insert"))?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(
            json!({"model": rec, "created": created, "name": change, "passed_over": passed_over, "zk": zk}),
        ),
    ))
}

async fn next_version(st: &AppState, name: &str) -> Result<String, ApiError> {
    let latest = st.store.resolve_name(name, None).await?;
    Ok(match latest.and_then(|p| p.version.parse::<u64>().ok()) {
        Some(n) => (n + 1).to_string(),
        None => "1".to_string(),
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListParams {
    #[serde(default = "default_limit")]
    pub limit: u32,
    #[serde(default)]
    pub offset: u32,
}

fn default_limit() -> u32 {
    100
}

/// Registered models, newest first, with their names and signatures.
#[utoipa::path(get, path = "/v1/models", params(ListParams), responses((status = 200, description = "models")))]
pub async fn list(
    State(st): State<Arc<AppState>>,
    Query(p): Query<ListParams>,
) -> Result<Json<Value>, ApiError> {
    let limit = p.limit.clamp(1, 1000);
    let models: Vec<ModelRecord> = st.store.list_models(limit, p.offset).await?;
    let models: Vec<Value> = models
        .into_iter()
        .map(|m| {
            let zk = st.zk.model_json(&m.digest);
            let mut v = json!(m);
            v["zk"] = zk;
            v
        })
        .collect();
    let total = st.store.count_models().await?;
    Ok(Json(
        json!({"models": models, "total": total, "limit": limit, "offset": p.offset}),
    ))
}

/// A model by `name` (latest version) or `name@version`.
#[utoipa::path(get, path = "/v1/models/{reference}", params(("reference" = String, Path, description = "name or name@version")),
    responses((status = 200, description = "the model"), (status = 404, description = "no such model")))]
pub async fn by_name(
    State(st): State<Arc<AppState>>,
    Path(reference): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (_, digest) = catalog::resolve_str(&st, &reference).await?;
    one(&st, &digest).await
}

/// A model by its SHA-256 digest (`sha256:<hex>` or bare hex).
#[utoipa::path(get, path = "/v1/models/by-digest/{digest}", params(("digest" = String, Path, description = "sha256:<hex>")),
    responses((status = 200, description = "the model"), (status = 404, description = "no such model")))]
pub async fn by_digest(
    State(st): State<Arc<AppState>>,
    Path(digest): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let d: ModelDigest = digest
        .parse()
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("{e}")))?;
    one(&st, &d).await
}

async fn one(st: &AppState, digest: &ModelDigest) -> Result<Json<Value>, ApiError> {
    let rec = st.store.model(digest).await?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::ModelNotFound,
            format!("no model with digest {digest}"),
        )
    })?;
    Ok(Json(
        json!({"model": rec, "loaded": st.cache.contains(digest), "zk": st.zk.model_json(digest)}),
    ))
}
