//! From a caller's model reference to a loaded, runnable model: name resolution, registry
//! metadata and the compiled-model cache, with in-memory caches in front of the database.

use std::sync::Arc;

use vouch_core::{ErrorCode, ModelDigest, ModelRef};
use vouch_exec::{EngineKind, ExecError, LoadedModel};

use crate::error::ApiError;
use crate::state::{AppState, ModelMeta};

/// Parses a caller's reference (`name`, `name@version`, `sha256:<hex>`) and resolves it: a
/// malformed reference is a 400, an unknown one a 404.
pub async fn resolve_str(
    st: &AppState,
    reference: &str,
) -> Result<(ModelRef, ModelDigest), ApiError> {
    let r: ModelRef = reference
        .parse()
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("{e}")))?;
    let digest = resolve(st, &r).await?;
    Ok((r, digest))
}

/// The digest a reference points at now.
pub async fn resolve(st: &AppState, r: &ModelRef) -> Result<ModelDigest, ApiError> {
    match r {
        ModelRef::Digest(d) => Ok(*d),
        ModelRef::Name { name, version } => {
            let key = (name.clone(), version.clone().unwrap_or_default());
            if let Some(d) = st.names.get(&key) {
                return Ok(d);
            }
            let p = st
                .store
                .resolve_name(name, version.as_deref())
                .await?
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::ModelNotFound,
                        format!("no model is registered as {r}"),
                    )
                })?;
            st.names.insert(key, p.digest);
            Ok(p.digest)
        }
    }
}

/// Registry facts about a model (engine, signature), cached: they never change for a digest.
pub async fn meta(st: &AppState, digest: &ModelDigest) -> Result<Arc<ModelMeta>, ApiError> {
    if let Some(m) = st.meta.get(digest) {
        return Ok(m);
    }
    let rec = st.store.model(digest).await?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::ModelNotFound,
            format!("no model with digest {digest}"),
        )
    })?;
    let engine = EngineKind::parse(&rec.engine).ok_or_else(|| {
        ApiError::internal(format!("registry names unknown engine {:?}", rec.engine))
    })?;
    let m = Arc::new(ModelMeta {
        engine,
        signature: rec.signature,
    });
    st.meta.insert(*digest, m.clone());
    Ok(m)
}

/// The compiled model, from the cache or loaded once (concurrent callers share the load).
pub async fn loaded(
    st: &Arc<AppState>,
    digest: ModelDigest,
    meta: &ModelMeta,
) -> Result<Arc<dyn LoadedModel>, ApiError> {
    let engine = meta.engine;
    let state = st.clone();
    st.cache
        .get_or_load(digest, async move {
            let bytes =
                state
                    .store
                    .blobs
                    .get_model(&digest)
                    .await
                    .map_err(|e| ExecError::Load {
                        engine,
                        reason: e.to_string(),
                    })?;
            let engines = state.engines.clone();
            tokio::task::spawn_blocking(move || engines.load_with(engine, &bytes))
                .await
                .map_err(|e| ExecError::Load {
                    engine,
                    reason: e.to_string(),
                })?
        })
        .await
        .map_err(|e| match &*e {
            ExecError::EngineUnavailable(k) => ApiError::new(
                ErrorCode::Internal,
                format!("model {digest} is registered for {k}, which this node has not loaded"),
            ),
            other => ApiError::internal(format!("loading {digest}: {other}")),
        })
}
