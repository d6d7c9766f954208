//! A model's configuration — the system prompt and generation settings that shape its outputs.
//! Receipts carry its digest (`config_digest`) and every change is a transparency-log entry
//! with the configuration itself, so a swapped prompt is as visible as a swapped model.

use serde_json::Value;
use vouch_core::{Digest, ErrorCode};

use crate::Node;
use crate::catalog::ConfigFacts;
use crate::error::NodeError;

/// Largest configuration, canonical bytes: it travels whole in a log entry (≤ 64 KiB).
pub const MAX_CONFIG_BYTES: usize = 32 << 10;

/// Changes a history answer lists at most.
pub const HISTORY_LIMIT: u32 = 100;

impl Node {
    /// Sets the configuration of the model `reference` names now. It is logged before the
    /// answer; from then on, the model's receipts carry its digest.
    pub async fn set_config(
        &self,
        reference: &str,
        config: Value,
    ) -> Result<vouch_api::ConfigUpdate, NodeError> {
        if !config.is_object() {
            return Err(NodeError::new(
                ErrorCode::BadRequest,
                "the configuration must be a JSON object, e.g. {\"system_prompt\": \"...\"}",
            ));
        }
        // One canonical form, the one verifiers digest too (`vouch verify --config`).
        let canonical = vouch_core::canonical_config(&config)
            .map_err(|m| NodeError::new(ErrorCode::BadRequest, m))?;
        if canonical.len() > MAX_CONFIG_BYTES {
            return Err(NodeError::new(
                ErrorCode::PayloadTooLarge,
                format!(
                    "the configuration is {} bytes in canonical form; the limit is {MAX_CONFIG_BYTES}",
                    canonical.len()
                ),
            ));
        }
        let (_, model) = self.catalog.resolve_str(reference).await?;
        self.catalog.meta(&model).await?;
        let digest = Digest::of(canonical.as_bytes());
        let change = self
            .store
            .set_model_config(&model, &canonical, &digest)
            .await?;
        if change.is_some() {
            crate::transparency::drain_outboxes(&self.log, &self.store)
                .await
                .map_err(NodeError::internal)?;
        }
        self.catalog
            .config_changed(model, ConfigFacts::of(Some(digest), &config));
        Ok(vouch_api::ConfigUpdate {
            model,
            config_digest: digest,
            changed: change.is_some(),
            config: crate::wire::config_object(config)?,
        })
    }

    /// The model's configuration history, newest first (at most [`HISTORY_LIMIT`] changes);
    /// each logged change names its `config-changed` entry, which anyone can check.
    pub async fn config_history(
        &self,
        reference: &str,
    ) -> Result<vouch_api::ConfigHistory, NodeError> {
        let (_, model) = self.catalog.resolve_str(reference).await?;
        let changes = self.store.config_history(&model, HISTORY_LIMIT).await?;
        Ok(vouch_api::ConfigHistory {
            model,
            changes: changes
                .into_iter()
                .map(crate::wire::config_change)
                .collect::<Result<_, _>>()?,
        })
    }

    /// The configuration in force for the model `reference` names, or `null`.
    pub async fn config_of(&self, reference: &str) -> Result<vouch_api::ConfigView, NodeError> {
        let (_, model) = self.catalog.resolve_str(reference).await?;
        let c = self.store.model_config(&model).await?;
        Ok(vouch_api::ConfigView {
            model,
            config: c.map(crate::wire::model_config).transpose()?,
        })
    }
}
