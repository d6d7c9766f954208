//! The node's HTTP API as types: every request body, query and answer of every route, with its
//! OpenAPI schema. The server answers with these types and the CLI reads them, so the wire
//! format has one definition and `/openapi.json` describes what is really sent.
//!
//! Types only: no HTTP, no runtime, and no dependency but `vouch-core` (whose receipts and
//! bundles the answers carry). Statuses are enums, not strings; fields other layers own (a
//! zk evidence object, a model's configuration) stay JSON values, described where they live.

pub mod analytics;
pub mod attestation;
pub mod config;
pub mod error;
pub mod facilitator;
pub mod infer;
pub mod log;
pub mod models;
pub mod node;
pub mod openai;
pub mod pay;
pub mod policy;
pub mod proofs;
pub mod zk;

pub use analytics::{AnalyticsParams, TierAnalytics, TierBucket, TierSeries, TierTotal};
pub use attestation::{AttestParams, Binding, Platform, TeeEvidence};
pub use config::{ConfigChange, ConfigHistory, ConfigUpdate, ConfigView, ModelConfig};
pub use error::{ErrorBody, ErrorDetail};
pub use infer::{InferRequest, ZkJobRef};
pub use log::{
    ConsistencyParams, ConsistencyProof, CosignParams, CosignatureAccepted, EntryKind,
    EntryPageParams, InclusionProof, LogEntry, LogEntryPage, LogEvidence, LogInfo, NameHistory,
    PointerChange, ProofParams,
};
pub use models::{
    ListParams, ListedModel, LlmFacts, ModelList, ModelRecord, ModelView, NameChange, NamePointer,
    NameResult, PassedOver, RegisterParams, RegisterResponse, UpstreamFacts,
};
pub use node::{
    CacheUsage, EngineVersion, Health, HealthStatus, Limits, LogSummary, NodeInfo, QueueUsage,
    TeeSummary, ZkQueue,
};
pub use pay::{
    Amount, Balance, CreditRequest, CreditResponse, ModelPrices, Pricing, PricingConfig,
    PricingQuery, Quote, QuoteLine, TierPrices, TokenPrices,
};
pub use policy::{
    Assurance, EffectivePolicy, Measured, ModelPolicy, PolicyChange, PolicyList, PolicyRequest,
    PolicyUpdate, PolicyView, TierAssurance,
};
pub use proofs::{CancelResponse, JobError, JobStatus, ProofEvidence, ProofJob, WaitParams};
pub use zk::{CircuitEstimate, CircuitStats, ModelZk, ProofEstimate};
