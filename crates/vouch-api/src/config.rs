//! A model's configuration: `PUT`/`GET /v1/models/{reference}/config`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vouch_core::{Digest, ModelDigest};

/// A configuration object (system prompt, generation settings); receipts carry the digest of
/// its RFC 8785 form.
pub type Config = serde_json::Map<String, serde_json::Value>;

/// `PUT /v1/models/{reference}/config`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ConfigUpdate {
    pub model: ModelDigest,
    pub config_digest: Digest,
    /// False when the configuration already was this.
    pub changed: bool,
    #[schema(value_type = Object)]
    pub config: Config,
}

/// `GET /v1/models/{reference}/config`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ConfigView {
    pub model: ModelDigest,
    /// `null` when the model has none.
    pub config: Option<ModelConfig>,
}

/// A model's configuration in force.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelConfig {
    pub model: ModelDigest,
    #[schema(value_type = Object)]
    pub config: Config,
    pub config_digest: Digest,
    pub updated_at: String,
}

/// `GET /v1/models/{reference}/config/history`: newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ConfigHistory {
    pub model: ModelDigest,
    pub changes: Vec<ConfigChange>,
}

/// One change of a model's configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ConfigChange {
    pub seq: i64,
    pub config_digest: Digest,
    #[schema(value_type = Object)]
    pub config: Config,
    pub changed_at: String,
    /// Leaf index of its `config-changed` entry in the transparency log, once logged.
    pub log_index: Option<i64>,
}
