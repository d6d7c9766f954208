//! `[zk]` in `vouch.toml`: the prover pool, its queue and what one proof may cost.

use serde::{Deserialize, Serialize};

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
    /// Models whose proving keys stay in memory.
    pub keys_cached: usize,
    /// Days an ended job (its proof, or why it has none) stays fetchable from
    /// `GET /v1/proofs/{id}`; then it is deleted. 0 keeps jobs forever. The proof lives on in
    /// the bundles clients completed; the node is not their archive.
    pub retain_days: u64,
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
            keys_cached: 4,
            retain_days: 30,
        }
    }
}
