//! From a caller's model reference to a loaded, runnable model: name resolution, registry
//! metadata, model configurations and the compiled-model cache, with in-memory caches in front
//! of the database. The only service that reads the registry on the hot path.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use vouch_core::{Digest, ErrorCode, ModelDigest, ModelRef, ModelSignature};
use vouch_exec::{EngineKind, Engines, ExecError, LoadedModel, ModelCache};
use vouch_store::Store;

use crate::error::NodeError;

/// What the registry says about a model, kept in memory so the hot path skips the database.
#[derive(Clone, Debug)]
pub struct ModelMeta {
    pub engine: EngineKind,
    pub signature: ModelSignature,
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
    pub fn of(digest: Option<Digest>, config: &Value) -> Self {
        ConfigFacts {
            digest,
            batching: config.get("batching") != Some(&Value::Bool(false)),
        }
    }
}

pub struct Catalog {
    store: Store,
    pub engines: Arc<Engines>,
    pub cache: ModelCache,
    meta: moka::sync::Cache<ModelDigest, Arc<ModelMeta>>,
    /// `name@version` (version empty = latest) → digest; short-lived and dropped on every
    /// registration, so a moved pointer is seen at once on this node.
    names: moka::sync::Cache<(String, String), ModelDigest>,
    /// digest → the `config_digest` its receipts carry (`None`: no configuration set).
    configs: moka::sync::Cache<ModelDigest, ConfigFacts>,
    /// The store is shared with other nodes (PostgreSQL): names are resolved in the database
    /// on every request, so a receipt never names a pointer another node had already moved.
    shared: bool,
}

impl Catalog {
    pub fn new(store: Store, engines: Arc<Engines>, cache: ModelCache) -> Self {
        Catalog {
            shared: matches!(store.backend(), vouch_store::Backend::Postgres(_)),
            store,
            engines,
            cache,
            meta: moka::sync::Cache::new(100_000),
            configs: moka::sync::Cache::new(100_000),
            names: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(5))
                .build(),
        }
    }

    /// Parses a caller's reference (`name`, `name@version`, `sha256:<hex>`) and resolves it: a
    /// malformed reference is `bad_request`, an unknown one `model_not_found`.
    pub async fn resolve_str(&self, reference: &str) -> Result<(ModelRef, ModelDigest), NodeError> {
        let r: ModelRef = reference
            .parse()
            .map_err(|e| NodeError::new(ErrorCode::BadRequest, format!("{e}")))?;
        let digest = self.resolve(&r).await?;
        Ok((r, digest))
    }

    /// The digest a reference points at now.
    pub async fn resolve(&self, r: &ModelRef) -> Result<ModelDigest, NodeError> {
        match r {
            ModelRef::Digest(d) => Ok(*d),
            ModelRef::Name { name, version } => {
                let key = (name.clone(), version.clone().unwrap_or_default());
                if !self.shared
                    && let Some(d) = self.names.get(&key)
                {
                    return Ok(d);
                }
                let p = self
                    .store
                    .resolve_name(name, version.as_deref())
                    .await?
                    .ok_or_else(|| {
                        NodeError::new(
                            ErrorCode::ModelNotFound,
                            format!("no model is registered as {r}"),
                        )
                    })?;
                if !self.shared {
                    self.names.insert(key, p.digest);
                }
                Ok(p.digest)
            }
        }
    }

    /// A name moved or was created: forget resolved names.
    pub fn names_changed(&self) {
        self.names.invalidate_all();
    }

    /// Another node changed the catalog: forget names and configurations.
    pub fn catalog_changed(&self) {
        self.names.invalidate_all();
        self.configs.invalidate_all();
    }

    /// Registry facts about a model (engine, signature), cached: they never change for a digest.
    pub async fn meta(&self, digest: &ModelDigest) -> Result<Arc<ModelMeta>, NodeError> {
        if let Some(m) = self.meta.get(digest) {
            return Ok(m);
        }
        let rec = self.store.model(digest).await?.ok_or_else(|| {
            NodeError::new(
                ErrorCode::ModelNotFound,
                format!("no model with digest {digest}"),
            )
        })?;
        if crate::llm::is_chat_engine(&rec.engine) {
            return Err(NodeError::new(
                ErrorCode::BadRequest,
                format!(
                    "model {digest} is an LLM ({}): use POST /v1/chat/completions",
                    if rec.engine == crate::llm::LLM_ENGINE {
                        "GGUF"
                    } else {
                        "upstream endpoint"
                    }
                ),
            )
            .with_reason("not_onnx"));
        }
        let engine = EngineKind::parse(&rec.engine).ok_or_else(|| {
            NodeError::internal(format!("registry names unknown engine {:?}", rec.engine))
        })?;
        let m = Arc::new(ModelMeta {
            engine,
            signature: rec.signature,
        });
        self.meta.insert(*digest, m.clone());
        Ok(m)
    }

    /// The compiled model, from the cache or loaded once (concurrent callers share the load).
    pub async fn loaded(
        &self,
        digest: ModelDigest,
        meta: &ModelMeta,
    ) -> Result<Arc<dyn LoadedModel>, NodeError> {
        let engine = meta.engine;
        let store = self.store.clone();
        let engines = self.engines.clone();
        self.cache
            .get_or_load(digest, async move {
                let bytes = store
                    .blobs
                    .get_model(&digest)
                    .await
                    .map_err(|e| ExecError::Load {
                        engine,
                        reason: e.to_string(),
                    })?;
                tokio::task::spawn_blocking(move || engines.load_with(engine, &bytes))
                    .await
                    .map_err(|e| ExecError::Load {
                        engine,
                        reason: e.to_string(),
                    })?
            })
            .await
            .map_err(|e| match &*e {
                ExecError::EngineUnavailable(k) => NodeError::new(
                    ErrorCode::Internal,
                    format!("model {digest} is registered for {k}, which this node has not loaded"),
                ),
                other => NodeError::internal(format!("loading {digest}: {other}")),
            })
    }

    /// The configuration facts for a model's requests, cached (a change on this node replaces
    /// them).
    pub async fn config_facts(&self, model: &ModelDigest) -> Result<ConfigFacts, NodeError> {
        if let Some(f) = self.configs.get(model) {
            return Ok(f);
        }
        let f = match self.store.model_config(model).await? {
            Some(c) => ConfigFacts::of(Some(c.config_digest), &c.config),
            None => ConfigFacts::of(None, &Value::Null),
        };
        self.configs.insert(*model, f);
        Ok(f)
    }

    /// A configuration was set on this node: its facts replace the cached ones at once.
    pub fn config_changed(&self, model: ModelDigest, facts: ConfigFacts) {
        self.configs.insert(model, facts);
    }
}
