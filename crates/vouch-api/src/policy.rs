//! Per-model assurance: `PUT`/`GET /v1/models/{reference}/policy` and
//! `GET /v1/models/{reference}/assurance`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vouch_core::{ModelDigest, Tier};

use crate::pay::Amount;
use crate::zk::ModelZk;

/// The body of `PUT /v1/models/{reference}/policy`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyRequest {
    /// Requests must carry this tier or a stronger one (signed < tee < zk); `null` removes
    /// the policy.
    pub min_tier: Option<Tier>,
}

/// A subject's policy in force.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ModelPolicy {
    /// A model name (all its versions) or `sha256:<hex>`.
    pub subject: String,
    pub min_tier: Tier,
    pub updated_at: String,
}

/// One entry of the policy history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PolicyChange {
    pub seq: i64,
    pub subject: String,
    /// `null`: the policy was removed.
    pub min_tier: Option<Tier>,
    pub previous: Option<Tier>,
    pub changed_at: String,
    /// Leaf index in the transparency log, once logged.
    pub log_index: Option<i64>,
}

/// `GET /v1/models/{reference}/policy`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PolicyView {
    pub subject: String,
    pub policy: Option<ModelPolicy>,
}

/// `PUT /v1/models/{reference}/policy`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PolicyUpdate {
    pub subject: String,
    pub policy: Option<ModelPolicy>,
    /// The change recorded, or `null` when the policy already was this.
    pub change: Option<PolicyChange>,
}

/// `GET /v1/policies`: every policy in force and the latest changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PolicyList {
    /// By subject.
    pub policies: Vec<ModelPolicy>,
    /// Newest first, at most 100.
    pub changes: Vec<PolicyChange>,
}

/// `GET /v1/models/{reference}/assurance`: what each tier gives for this model here.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Assurance {
    /// The reference as asked.
    pub model: String,
    pub digest: ModelDigest,
    pub policy: Option<EffectivePolicy>,
    /// The unit prices are counted in.
    pub asset: String,
    pub tiers: Vec<TierAssurance>,
}

/// The policy that applies to the model and where it is set (its name or its digest).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EffectivePolicy {
    pub min_tier: Tier,
    pub subject: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TierAssurance {
    pub tier: Tier,
    pub available: bool,
    pub unavailable_reason: Option<String>,
    pub meets_policy: bool,
    pub proves: String,
    /// The model's zk tier (on the `zk` row only).
    pub zk: Option<ModelZk>,
    pub trusts: String,
    /// This tier's own price.
    pub price: Option<Amount>,
    /// The tiers a request for this one carries (`tee` implies `signed`).
    pub request: Vec<Tier>,
    pub request_price: Option<Amount>,
    pub measured: Measured,
}

/// This model's recent requests at this tier, on this node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Measured {
    pub requests: u64,
    pub errors: u64,
    pub samples: u64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
}
