//! `GET /health` and `GET /v1/node`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vouch_core::{Digest, NodeKey, Tier};

use crate::attestation::Platform;
use crate::pay::PricingConfig;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Ok,
}

/// `GET /health`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: HealthStatus,
}

/// `GET /v1/node`: who this node is, what it offers, and how loaded it is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NodeInfo {
    pub vouch_version: String,
    /// The receipt-signing key.
    pub node_key: NodeKey,
    pub engines: Vec<EngineVersion>,
    /// Tiers this node can give now (a model may still be refused one, e.g. zk).
    pub tiers: Vec<Tier>,
    /// The boot attestation's verdict, when the node offers the tee tier.
    pub tee: Option<TeeSummary>,
    /// The key lives only in memory (it changes at every start).
    pub key_ephemeral: bool,
    pub log: LogSummary,
    pub prices: PricingConfig,
    pub price_unit: String,
    pub payments: bool,
    pub limits: Limits,
    pub cache: CacheUsage,
    pub queue: QueueUsage,
    pub zk: ZkQueue,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EngineVersion {
    /// `onnxruntime` or `tract`.
    pub name: String,
    pub version: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TeeSummary {
    pub platform: Platform,
    pub trust_assumption: String,
    pub measurements: BTreeMap<String, String>,
    /// Digest of the boot evidence envelope (`GET /v1/attestation/{digest}`).
    pub evidence_digest: Digest,
    pub simulated: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LogSummary {
    pub origin: String,
    /// The log's verifier key (`vouch verify --log-key`).
    pub log_key: String,
    pub size: u64,
}

/// Every size a caller controls, bounded (`[limits]` in `vouch.toml`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Limits {
    pub max_body_bytes: u64,
    pub max_model_bytes: u64,
    pub max_input_elements: u64,
    pub max_request_batch: u64,
    pub request_timeout_secs: u64,
    pub attest_per_sec: u32,
    pub max_connections: u64,
    pub header_timeout_ms: u64,
    pub max_large_bodies: u64,
    pub max_large_body_waiting: u64,
    pub large_body_wait_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CacheUsage {
    pub models_loaded: u64,
    pub estimated_bytes: u64,
    pub budget_mib: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct QueueUsage {
    pub waiting: u64,
    pub capacity: u64,
}

/// zk proof jobs open now and the queue's bounds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ZkQueue {
    pub queued: u64,
    pub running: u64,
    pub capacity: u64,
    pub workers: u64,
}
