//! zk proof jobs: `GET /v1/proofs/{id}` and `DELETE /v1/proofs/{id}`.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use vouch_core::{Digest, ModelDigest};

/// Query of `GET /v1/proofs/{id}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WaitParams {
    /// Wait up to this long for the job to end (`30s`, `1500ms`, `2m` or seconds); capped by
    /// the node (`[zk] max_wait_secs`, and below the request timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Queued,
    Running,
    Done,
    Failed,
    Cancelled,
}

impl JobStatus {
    /// The job has ended and will not change again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Done | JobStatus::Failed | JobStatus::Cancelled
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Done => "done",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A proof job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProofJob {
    pub id: String,
    pub url: String,
    pub model: ModelDigest,
    /// The receipt hash the proof binds.
    pub receipt: Digest,
    pub status: JobStatus,
    /// What the prover is doing (`queued`, `witness`, `proving`, …).
    pub stage: String,
    /// 0 to 1.
    pub progress: f64,
    pub estimate_ms: u64,
    /// Jobs ahead of this one, while queued.
    pub queue_position: Option<u64>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub prove_ms: Option<u64>,
    /// Why it failed or who cancelled it.
    pub error: Option<JobError>,
    /// Once done: add `evidence.zk` to the bundle (and drop `evidence.zk_job`).
    pub evidence: Option<ProofEvidence>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobError {
    /// A stable code (`cancelled`, an error code of the prover).
    pub code: Option<String>,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProofEvidence {
    /// The `evidence.zk` object of the completed bundle (`vouch-zk`'s evidence format,
    /// checked by `vouch verify --model`).
    #[schema(value_type = Object)]
    pub zk: serde_json::Value,
}

/// `DELETE /v1/proofs/{id}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CancelResponse {
    /// False when the job had already ended.
    pub cancelled: bool,
    pub job: ProofJob,
}
