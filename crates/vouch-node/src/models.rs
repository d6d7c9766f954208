//! The model registry: registration (admission on an engine, blob, row, log entries, zk
//! analysis, name pointers) and what the node says about a model.

use bytes::Bytes;
use vouch_api as api;
use vouch_core::model::validate_name;
use vouch_core::{ErrorCode, ModelDigest};
use vouch_store::{ModelRecord, NameChange, NewModel};

use crate::Node;
use crate::error::NodeError;

/// Where a registration points a name, if anywhere.
#[derive(Clone, Debug, Default)]
pub struct Registration {
    /// Name to point at the model (optional: a model can be used by digest alone).
    pub name: Option<String>,
    /// Version of that name; defaults to one more than the number of versions it has.
    pub version: Option<String>,
    /// Move `name@version` if it already points at another model.
    pub replace: bool,
}

/// What a registration did.
pub struct Registered {
    /// `false`: the same bytes were registered before.
    pub created: bool,
    pub view: api::RegisterResponse,
}

/// A model as OpenAI's model list shows it: one entry per name pointing at it, or its digest.
fn openai_entries(m: &ModelRecord) -> Vec<api::openai::OpenAiModel> {
    let created = unix_seconds(&m.created_at);
    let entry = |id: String| api::openai::OpenAiModel {
        id,
        object: "model".into(),
        created,
        owned_by: "vouch".into(),
    };
    if m.names.is_empty() {
        return vec![entry(m.digest.to_string())];
    }
    m.names
        .iter()
        .map(|n| entry(format!("{}@{}", n.name, n.version)))
        .collect()
}

/// Unix seconds of an RFC 3339 time as the store writes it; 0 if it does not parse.
fn unix_seconds(t: &str) -> u64 {
    humantime::parse_rfc3339(t)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

impl Node {
    /// Registers a model's bytes. Idempotent: the same bytes give the same digest and
    /// `created = false`.
    pub async fn register(&self, bytes: Bytes, to: &Registration) -> Result<Registered, NodeError> {
        if let Some(n) = &to.name {
            validate_name(n)
                .map_err(|m| NodeError::new(ErrorCode::BadRequest, format!("name {n:?}: {m}")))?;
        }
        if let Some(v) = &to.version {
            validate_name(v).map_err(|m| {
                NodeError::new(ErrorCode::BadRequest, format!("version {v:?}: {m}"))
            })?;
            if to.name.is_none() {
                return Err(NodeError::new(
                    ErrorCode::BadRequest,
                    "a version needs a name",
                ));
            }
        }
        if bytes.is_empty() {
            return Err(NodeError::new(
                ErrorCode::InvalidModel,
                "the body is empty: send the model file's bytes",
            ));
        }
        let digest = ModelDigest::of_model_bytes(&bytes);
        let mut passed_over = Vec::new();
        let is_upstream = crate::gateway::is_descriptor(&bytes);
        let is_llm = is_upstream || crate::llm::is_gguf(&bytes);
        let created = if self.store.model(&digest).await?.is_some() {
            false
        } else {
            // Checked by its engine layer first: nothing is stored unless the model passes.
            let (row, compiled) = if is_llm {
                // An LLM's row: no tensor signature; its facts (the GGUF's, or the upstream
                // descriptor) as JSON.
                let (engine, facts) = if is_upstream {
                    let d = crate::gateway::parse_descriptor(&bytes, self.llms.gateway.keys())?;
                    (crate::gateway::UPSTREAM_ENGINE, serde_json::to_string(&d))
                } else {
                    let facts = crate::llm::inspect(bytes.clone()).await?;
                    (crate::llm::LLM_ENGINE, serde_json::to_string(&facts))
                };
                let row = NewModel {
                    digest,
                    size_bytes: bytes.len() as u64,
                    engine: engine.into(),
                    signature: vouch_core::ModelSignature {
                        inputs: Vec::new(),
                        outputs: Vec::new(),
                    },
                    llm_facts: Some(facts.map_err(NodeError::internal)?),
                };
                (row, None)
            } else {
                let engines = self.catalog.engines.clone();
                let b = bytes.clone();
                let admission = tokio::task::spawn_blocking(move || engines.admit(&b))
                    .await
                    .map_err(NodeError::internal)?
                    .map_err(|e| {
                        NodeError::new(
                            ErrorCode::InvalidModel,
                            format!("not a model this node can serve: {e}"),
                        )
                    })?;
                passed_over = admission
                    .passed_over
                    .iter()
                    .map(|(k, r)| api::PassedOver {
                        engine: k.as_str().into(),
                        reason: r.to_string(),
                    })
                    .collect();
                let row = NewModel {
                    digest,
                    size_bytes: bytes.len() as u64,
                    engine: admission.engine.as_str().into(),
                    signature: admission.model.signature().clone(),
                    llm_facts: None,
                };
                (row, Some(admission.model))
            };
            // Bytes first, row second: a crash in between leaves only an unreferenced blob.
            self.store.blobs.put_model(&digest, bytes.clone()).await?;
            let created = self.store.insert_model(&row).await?;
            if let Some(model) = compiled {
                self.catalog.cache.insert(digest, model).await;
            }
            if created {
                crate::transparency::append_registered(&self.log, digest, bytes.len() as u64)
                    .await?;
            }
            created
        };
        // No proof system here covers LLM generation: such a model is never analysed.
        let zk = if is_llm {
            api::ModelZk::Unavailable {
                reason: "zk: unavailable: no proof system here covers LLM generation".into(),
                circuit_estimate: None,
            }
        } else {
            self.zk.on_registered(digest, bytes.clone()).await
        };
        let mut change = None;
        if let Some(name) = &to.name {
            let version = match &to.version {
                Some(v) => v.clone(),
                None => self.next_version(name).await?,
            };
            let c = self
                .store
                .set_name(name, &version, &digest, to.replace)
                .await?;
            self.catalog.names_changed();
            // The moves were stored with the pointer; they are in the log before the answer.
            crate::transparency::drain_outboxes(&self.log, &self.store)
                .await
                .map_err(NodeError::internal)?;
            // A name may carry a policy: the digest now answers to it too.
            self.policy.changed();
            let (change_kind, from) = match c {
                NameChange::Created => (api::NameChange::Created, None),
                NameChange::Unchanged => (api::NameChange::Unchanged, None),
                NameChange::Moved { from } => (api::NameChange::Moved, Some(from)),
            };
            change = Some(api::NameResult {
                name: name.clone(),
                version,
                change: change_kind,
                from,
            });
        }
        let rec = self
            .store
            .model(&digest)
            .await?
            .ok_or_else(|| NodeError::internal("model vanished after insert"))?;
        Ok(Registered {
            created,
            view: api::RegisterResponse {
                model: crate::wire::model_record(rec),
                created,
                name: change,
                passed_over,
                zk,
            },
        })
    }

    async fn next_version(&self, name: &str) -> Result<String, NodeError> {
        let latest = self.store.resolve_name(name, None).await?;
        Ok(match latest.and_then(|p| p.version.parse::<u64>().ok()) {
            Some(n) => (n + 1).to_string(),
            None => "1".to_string(),
        })
    }

    /// Registered models, newest first (at most 1000 a page), with their names, signatures and
    /// zk status.
    pub async fn models(&self, limit: u32, offset: u32) -> Result<api::ModelList, NodeError> {
        let limit = limit.clamp(1, 1000);
        let models: Vec<ModelRecord> = self.store.list_models(limit, offset).await?;
        let data = models.iter().flat_map(openai_entries).collect();
        let models = models
            .into_iter()
            .map(|m| api::ListedModel {
                zk: self.zk.model_json(&m.digest),
                model: crate::wire::model_record(m),
            })
            .collect();
        let total = self.store.count_models().await?;
        Ok(api::ModelList {
            object: "list".into(),
            data,
            models,
            total,
            limit,
            offset,
        })
    }

    /// One model: its registry record, whether it is loaded here, its zk status.
    pub async fn model(&self, digest: &ModelDigest) -> Result<api::ModelView, NodeError> {
        let rec = self.store.model(digest).await?.ok_or_else(|| {
            NodeError::new(
                ErrorCode::ModelNotFound,
                format!("no model with digest {digest}"),
            )
        })?;
        Ok(api::ModelView {
            model: crate::wire::model_record(rec),
            loaded: self.catalog.cache.contains(digest),
            zk: self.zk.model_json(digest),
        })
    }
}
