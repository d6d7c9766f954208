//! Node settings. Loaded by the CLI from `vouch.toml` plus `VOUCH_*` environment overrides;
//! every default serves a newcomer on one machine.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Address to listen on. Loopback by default: exposing a node is a decision, not an accident.
    pub listen: SocketAddr,
    /// Database, blobs, node key and admin token live here.
    pub data_dir: PathBuf,
    pub limits: Limits,
    pub exec: ExecConfig,
    /// The `tee` tier's evidence producer (`[tee]`): `none` (default), `auto`, `aws-nitro`,
    /// `configfs-tsm` or `simulated`. With any producer but `none`, the node key is generated
    /// at boot inside the TEE and never written to disk.
    pub tee: vouch_attest::tee::ProducerConfig,
    /// Payments (x402) and the one price model (`[pay.prices]`): what each tier costs per model;
    /// a request's price is the sum over its tiers. Prices are quoted even with payments off.
    pub pay: vouch_pay::PayConfig,
    /// The transparency log (`[log]`): origin, key, checkpoint cadence, witnesses.
    pub log: crate::transparency::LogSettings,
    /// The zk tier's prover pool and limits (`[zk]`).
    pub zk: crate::proofs::ZkSettings,
    /// LLM chat: token limits, concurrent chats, KV-cache budget, profile (`[llm]`).
    pub llm: crate::llm::LlmSettings,
    /// Where state and model bytes live (`[store]`): SQLite and a local folder in `data_dir` by
    /// default; PostgreSQL and S3 for a cluster of nodes (docs/scale.md).
    pub store: StoreSettings,
}

/// `[store]`: the database and the blob store.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSettings {
    /// `"sqlite"` (the embedded default, in `data_dir`) or `"postgres://user@host/db"`: every
    /// node given the same URL shares one registry, log, ledger and proof-job queue.
    pub database: vouch_store::Database,
    /// Model bytes: `None` for `data_dir/blobs`, or `"s3://bucket/prefix"` (endpoint and
    /// credentials from the `AWS_*` environment).
    pub blobs: Option<String>,
    /// Connections this node keeps open to PostgreSQL.
    pub pg_connections: u32,
    /// On PostgreSQL, the longest a catalog change made on another node (a policy or a
    /// configuration) goes unnoticed here when its notification is lost, in milliseconds.
    /// Names are never cached on PostgreSQL: each request resolves them in the database.
    pub catalog_poll_ms: u64,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            database: vouch_store::Database::Sqlite,
            blobs: None,
            pg_connections: 16,
            catalog_poll_ms: 1000,
        }
    }
}

impl StoreSettings {
    /// What `vouch_store::Store::open_with` takes, for a node on `data_dir`.
    pub fn store_config(&self, data_dir: &std::path::Path) -> vouch_store::StoreConfig {
        vouch_store::StoreConfig {
            data_dir: data_dir.to_owned(),
            database: self.database.clone(),
            pg_connections: self.pg_connections.max(1),
            blobs: self.blobs.clone(),
        }
    }
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./vouch-data"),
            limits: Limits::default(),
            exec: ExecConfig::default(),
            tee: Default::default(),
            pay: vouch_pay::PayConfig::default(),
            log: Default::default(),
            zk: Default::default(),
            llm: Default::default(),
            store: Default::default(),
        }
    }
}

/// Every size a caller controls, bounded.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest request body for inference (JSON), in bytes.
    pub max_body_bytes: usize,
    /// Largest model upload, in bytes.
    pub max_model_bytes: usize,
    /// Most tensor elements across all inputs of one request.
    pub max_input_elements: usize,
    /// Most rows (leading dimension) in one request's inputs.
    pub max_request_batch: u64,
    /// Requests slower than this are cut off with 503, in seconds.
    pub request_timeout_secs: u64,
    /// Fresh attestations (`GET /v1/attestation?nonce=`) per second; each one makes the
    /// platform sign, which is slow on real hardware. Excess requests get 503 + Retry-After.
    pub attest_per_sec: u32,
    /// Most HTTP connections open at once. At the cap, new connections wait to be accepted
    /// (in the kernel's backlog) while open ones are served; lowered at start, with a warning,
    /// if the open-file limit cannot hold it.
    pub max_connections: usize,
    /// A connection that has not sent a whole request head this long after it started waiting
    /// for one is closed, in milliseconds: bounds slow or half-sent headers and idle keep-alive
    /// connections alike.
    pub header_timeout_ms: u64,
    /// Inference requests with a large body (over 64 KiB, or of unknown length) read, parsed
    /// and run at once. Each holds its body and decoded tensors in memory — up to about 12× the
    /// body while it is parsed — so this bounds what large requests in flight can take.
    pub max_large_bodies: usize,
    /// Callers waiting for one of those slots; beyond this they get 503 + Retry-After at once.
    pub max_large_body_waiting: usize,
    /// Longest a caller waits for a slot before 503 + Retry-After, in milliseconds.
    pub large_body_wait_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 16 << 20,
            max_model_bytes: 512 << 20,
            max_input_elements: 4 << 20,
            max_request_batch: 256,
            request_timeout_secs: 60,
            attest_per_sec: 10,
            max_connections: 1024,
            header_timeout_ms: 10_000,
            max_large_bodies: 4,
            max_large_body_waiting: 32,
            large_body_wait_ms: 10_000,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExecConfig {
    /// `auto` (ONNX Runtime when its library is found, else tract), `onnxruntime` or `tract`.
    pub engine: String,
    /// ONNX Runtime shared library; else `ORT_DYLIB_PATH`, else `~/.cache/vouch/ort/libonnxruntime.so`.
    pub ort_dylib: Option<PathBuf>,
    /// Threads ONNX Runtime uses inside one run.
    pub intra_threads: usize,
    /// Worker threads running models (each runs one batch at a time; up to this many batches of
    /// one model run at once, so ONNX Runtime keeps up to this many sessions per loaded model).
    pub workers: usize,
    /// Requests waiting for a worker before new ones get 503.
    pub queue_capacity: usize,
    /// Most rows in one dynamic batch; 1 disables batching.
    pub max_batch: usize,
    /// Longest a request waits for others to join its batch, in microseconds.
    pub max_wait_us: u64,
    /// Memory budget for compiled models kept loaded, in MiB.
    pub cache_mib: u64,
    /// Most memory one run's tensors may take, in MiB. A run that would need more (its output
    /// shapes chosen by its input) fails with 422 `resource_limit`; ONNX Runtime's arena is
    /// capped at this times `workers`.
    pub run_memory_mib: usize,
    /// Most nodes a model's graph (subgraphs and functions included) may have: compilation
    /// memory grows with it, so larger models are refused at registration.
    pub max_graph_nodes: usize,
}

impl ExecConfig {
    pub fn run_memory_bytes(&self) -> usize {
        self.run_memory_mib.max(1).saturating_mul(1 << 20)
    }
}

impl Default for ExecConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        ExecConfig {
            engine: "auto".into(),
            ort_dylib: None,
            intra_threads: 1,
            workers: cores,
            queue_capacity: 1024,
            max_batch: 32,
            max_wait_us: 0,
            cache_mib: 2048,
            run_memory_mib: 2048,
            max_graph_nodes: 100_000,
        }
    }
}
