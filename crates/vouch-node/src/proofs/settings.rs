//! `[zk]` in `vouch.toml`: the prover pool, its queue and what one proof may cost.

use serde::{Deserialize, Serialize};
use vouch_zk::Limits;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ZkSettings {
    /// Offer the zk tier at all (models are analysed at registration only when true).
    pub enabled: bool,
    /// Prover threads. 0 pauses proving: jobs are accepted and queue durably until a node with
    /// workers starts on this data dir.
    pub workers: usize,
    /// Most open jobs (queued + running); beyond it `zk` requests get 503 `zk_queue_full`.
    pub queue_capacity: usize,
    /// Memory one proof may use, in MiB; a model predicted to need more is refused (422).
    pub max_peak_mib: u64,
    /// Longest predicted proof this node accepts, in seconds (422 beyond it).
    pub max_prove_secs: u64,
    /// Longest predicted wait in the queue before a new job is refused (503), in seconds.
    pub max_queue_wait_secs: u64,
    /// This node's speed relative to the estimator's reference machine (2.0 = twice as fast).
    pub speed: f64,
    /// Cap on `GET /v1/proofs/{id}?wait=`, in seconds (also kept below the request timeout).
    pub max_wait_secs: u64,
    /// How long registration waits for zk analysis before answering `analysing` (it goes on in
    /// the background), in milliseconds.
    pub analyze_wait_ms: u64,
    /// Largest circuit this node analyses, in constraints as estimated from the model's graph
    /// before anything is built; a larger model is zk-unavailable ("circuit of about N
    /// constraints exceeds this node's limit of M"). Analysis is also refused when the estimate
    /// predicts it needs more than `max_peak_mib` of memory.
    pub max_constraints: u64,
    /// Most operators in a model's graph that zk analysis reads (counted before decoding).
    pub max_graph_nodes: u64,
    /// Longest one model's analysis may run, in seconds; a model whose analysis takes longer
    /// is zk-unavailable with that reason.
    pub analyze_timeout_secs: u64,
    /// Analyses running at once; waiting ones start smallest estimated circuit first. Each may
    /// use up to `max_peak_mib`.
    pub analysis_slots: usize,
    /// Models whose proving keys stay in memory.
    pub keys_cached: usize,
    /// Days an ended job (its proof, or why it has none) stays fetchable from
    /// `GET /v1/proofs/{id}`; then it is deleted. 0 keeps jobs forever. The proof lives on in
    /// the bundles clients completed; the node is not their archive.
    pub retain_days: u64,
    /// A prover holds a running job under a lease this long, renewed by each progress report
    /// (ms); a prover that stops reporting (its node or `vouch worker` died) loses the job to
    /// another after it runs out.
    pub lease_ms: u64,
    /// Claims of one job before a lost prover fails it instead of handing it on (its payment
    /// is refunded), so every job ends.
    pub max_attempts: u32,
    /// How often an idle prover looks for jobs submitted on other nodes (ms). Jobs submitted on
    /// its own node wake it at once.
    pub poll_ms: u64,
}

impl Default for ZkSettings {
    fn default() -> Self {
        ZkSettings {
            enabled: true,
            workers: 1,
            queue_capacity: 64,
            max_peak_mib: 4096,
            max_prove_secs: 600,
            max_queue_wait_secs: 1800,
            speed: 1.0,
            max_wait_secs: 50,
            analyze_wait_ms: 3_000,
            max_constraints: vouch_zk::limits::DEFAULT_MAX_CONSTRAINTS,
            max_graph_nodes: vouch_zk::limits::DEFAULT_MAX_NODES,
            analyze_timeout_secs: 300,
            analysis_slots: 2,
            keys_cached: 4,
            retain_days: 30,
            lease_ms: 30_000,
            max_attempts: 3,
            poll_ms: 500,
        }
    }
}

impl ZkSettings {
    /// The size limits analysis checks the graph's estimate against.
    pub fn limits(&self) -> Limits {
        Limits {
            max_nodes: self.max_graph_nodes,
            max_constraints: self.max_constraints,
            max_analysis_bytes: self.max_peak_bytes(),
            ..Limits::default()
        }
    }

    /// Memory one proof (or one analysis) may use.
    pub fn max_peak_bytes(&self) -> u64 {
        self.max_peak_mib.saturating_mul(1 << 20)
    }
}
