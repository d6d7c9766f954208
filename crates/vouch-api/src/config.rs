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
