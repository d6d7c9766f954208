//! The node: its services, built once at boot. Each service owns one concern (the catalog of
//! models and its caches, assurance policies, prices, payments, the transparency log, zk
//! proofs); the request pipelines (`crate::infer`) compose them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use vouch_attest::NodeSigner;
use vouch_attest::tee::{
    EvidenceProducer, Platform, TeeEvidence, TeeOptions, TeePolicy, TeeVerdict, select_producer,
    verify_envelope,
};
use vouch_core::Digest;
use vouch_exec::ort_engine::OrtEngine;
use vouch_exec::{Engines, Executor, ExecutorConfig, ModelCache};
use vouch_store::Store;

use crate::analytics::Analytics;
use crate::catalog::Catalog;
use crate::config::NodeConfig;
use crate::policy::Policy;

pub struct Node {
    pub config: NodeConfig,
    /// Everything the node keeps: registry, blobs, log, ledger, proof jobs.
    pub store: Store,
    /// Models: references → digests → registry facts → compiled models, and their configurations.
    pub catalog: Catalog,
    pub executor: Arc<Executor>,
    pub signer: NodeSigner,
    pub admin_token: String,
    /// What boot found, for the banner and `/v1/node`.
    pub boot: BootInfo,
    /// The `tee` tier, when a producer is configured.
    pub tee: Option<TeeState>,
    /// Per-model minimum tiers.
    pub policy: Policy,
    /// Per-model, per-tier request counts, latencies and revenue for `/status` and the advisor.
    pub analytics: Analytics,
    pub prometheus: metrics_exporter_prometheus::PrometheusHandle,
    /// The transparency log every receipt and registry/policy change is appended to.
    pub log: Arc<crate::transparency::LogState>,
    /// The one price model (`[pay.prices]`), quoted even with payments off.
    pub prices: crate::prices::Prices,
    /// x402 payments, when `[pay] enabled` (the gate, its terms, the built-in ledger).
    pub pay: Option<Arc<crate::payments::PayState>>,
    /// The zk tier: model analyses, proof jobs and the prover threads.
    pub zk: Arc<crate::proofs::ZkState>,
    /// Loaded LLMs and chat admission (sequences, KV-cache budget).
    pub llms: crate::llm::Llms,
    /// Embedding models' tokenizers, built once per model (`POST /v1/embeddings`).
    pub embedders: crate::embeddings::Embedders,
    /// The step a test made fail (feature `fault-injection`).
    #[cfg(feature = "fault-injection")]
    pub(crate) faults: std::sync::Mutex<Option<crate::infer::Step>>,
}

/// The `tee` tier: the producer, and the evidence made at boot binding the node key.
pub struct TeeState {
    pub producer: Arc<dyn EvidenceProducer>,
    pub boot: TeeEvidence,
    /// `boot.to_json()`, attached to every `tee` receipt.
    pub boot_json: serde_json::Value,
    pub boot_digest: Digest,
    /// What the boot self-check established (platform, measurements, trust assumption).
    pub verdict: TeeVerdict,
    pub simulated: bool,
    /// Where envelopes are kept so `GET /v1/attestation/{digest}` outlives restarts.
    pub dir: PathBuf,
    pub limiter: crate::attestation::RateLimiter,
}

#[derive(Clone, Debug)]
pub struct BootInfo {
    pub key_created: bool,
    pub token_created: bool,
    pub token_path: PathBuf,
    pub ort_status: String,
    /// True when the node key lives only in memory (the `tee` tier: made inside the TEE).
    pub key_ephemeral: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("{0}")]
    Key(#[from] vouch_attest::SignerError),
    #[error("{0}")]
    Store(#[from] vouch_store::StoreError),
    #[error("admin token {path}: {source}")]
    Token {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Engine(String),
    #[error("tee: {0}")]
    Tee(String),
    #[error("{0}")]
    Log(#[from] crate::transparency::LogBootError),
    #[error("pay: {0}")]
    Pay(String),
}

impl Node {
    pub async fn boot(config: NodeConfig) -> Result<Arc<Node>, BootError> {
        // First: series registered while booting (the background tasks' restart counters)
        // must reach this recorder, not the no-op one before it.
        let prometheus = crate::analytics::prometheus();
        let dir = config.data_dir.clone();
        let mut store = Store::open_with(&config.store.store_config(&dir)).await?;
        // Every model entered through the upload limit: a blob over it was not written by a
        // node of this configuration, and is refused before it is downloaded.
        store.blobs = store
            .blobs
            .with_max_model_bytes(config.limits.max_model_bytes as u64);
        let producer = select_producer(&config.tee).map_err(|e| BootError::Tee(e.to_string()))?;
        // With a TEE the key is born inside it and never touches disk: a key loaded from a file
        // may have copies elsewhere, and the attestation would prove nothing about who holds it.
        let (signer, key_created) = match &producer {
            Some(_) => (NodeSigner::generate(), true),
            None => NodeSigner::load_or_create(&dir.join("node.key"))?,
        };
        let tee = match producer {
            Some(p) => Some(boot_tee(Arc::from(p), &signer, &config).await?),
            None => None,
        };
        let token_path = dir.join("admin.token");
        let (admin_token, token_created) = load_or_create_token(&token_path)?;
        let (engines, ort_status) = choose_engines(&config)?;
        let log = crate::transparency::boot(&config.log, &dir, &store).await?;
        let pay = crate::payments::PayState::boot(&config.pay, &store).await?;
        let zk = crate::proofs::ZkState::boot(&store, config.zk.clone()).await?;
        if let Some(p) = &pay {
            crate::payments::spawn_zk_refunds(&zk, p, store.clone());
        }
        let exec_cfg = ExecutorConfig {
            workers: config.exec.workers.max(1),
            queue_capacity: config.exec.queue_capacity.max(1),
            max_batch: config.exec.max_batch.max(1),
            max_wait: Duration::from_micros(config.exec.max_wait_us),
            // The answer is cut off at the request timeout; the run stops then too.
            run_timeout: Some(Duration::from_secs(
                config.limits.request_timeout_secs.max(1),
            )),
            run_memory: config.exec.run_memory_bytes(),
            inline_fast_runs: true,
            inline_max_run: vouch_exec::executor::INLINE_MAX_RUN,
        };
        let engines = Arc::new(engines);
        let node = Arc::new(Node {
            catalog: Catalog::new(
                store.clone(),
                engines,
                ModelCache::new(config.exec.cache_mib.saturating_mul(1 << 20)),
            ),
            executor: Arc::new(Executor::new(exec_cfg)),
            policy: Policy::new(store.clone()),
            llms: crate::llm::Llms::new(store.clone(), config.llm.clone())
                .map_err(|e| BootError::Engine(format!("llm: {}", e.message)))?,
            embedders: Default::default(),
            store,
            signer,
            tee,
            analytics: Analytics::default(),
            log,
            zk,
            prometheus,
            prices: crate::prices::Prices::new(&config.pay),
            pay: pay.map(Arc::new),
            admin_token,
            #[cfg(feature = "fault-injection")]
            faults: std::sync::Mutex::new(None),
            boot: BootInfo {
                key_created,
                token_created,
                token_path,
                ort_status,
                key_ephemeral: config.tee.producer != vouch_attest::tee::ProducerKind::None,
            },
            config,
        });
        watch_catalog(&node);
        Ok(node)
    }
}

/// On PostgreSQL, drops this node's catalog caches (configurations, policies) whenever any
/// node changes the catalog (`vouch_store::pg::Pg::watch_catalog`); supervised, so a lost
/// connection is re-established. Holds the node weakly: it ends with the node.
fn watch_catalog(node: &Arc<Node>) {
    let vouch_store::Backend::Postgres(pg) = node.store.backend() else {
        return;
    };
    let (pg, weak) = (pg.clone(), Arc::downgrade(node));
    let poll = Duration::from_millis(node.config.store.catalog_poll_ms.max(10));
    crate::supervise::spawn("catalog-watch", move || {
        let (pg, weak) = (pg.clone(), weak.clone());
        async move {
            let changed = || {
                if let Some(node) = weak.upgrade() {
                    node.catalog.catalog_changed();
                    node.policy.changed();
                    // Models registered and analysed on other nodes.
                    tokio::spawn(async move { node.zk.refresh_from_store().await });
                }
            };
            while weak.strong_count() > 0 {
                match pg
                    .watch_catalog(poll, || weak.strong_count() > 0, changed)
                    .await
                {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "catalog watch failed; retrying in 1 s");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        }
    });
}

/// Makes the boot evidence for the node key and checks it the way a verifier will, so a node
/// never serves evidence that does not verify.
async fn boot_tee(
    producer: Arc<dyn EvidenceProducer>,
    signer: &NodeSigner,
    config: &NodeConfig,
) -> Result<TeeState, BootError> {
    let key = signer.public_key();
    let p = producer.clone();
    let boot = tokio::task::spawn_blocking(move || p.attest(&key, None))
        .await
        .map_err(|e| BootError::Tee(format!("the producer task failed: {e}")))?
        .map_err(|e| BootError::Tee(e.to_string()))?;
    let simulated = boot.platform == Platform::Simulated;
    let options = TeeOptions {
        allow_simulated: simulated,
        ..TeeOptions::at(std::time::SystemTime::now())
    };
    let verdict = verify_envelope(&boot, &key, &TeePolicy::default(), &options).map_err(|e| {
        BootError::Tee(format!(
            "the boot evidence does not verify, refusing to offer the tee tier: {e}"
        ))
    })?;
    let dir = config.data_dir.join("tee");
    let boot_json = boot.to_json();
    let boot_digest = boot.digest();
    std::fs::create_dir_all(&dir)
        .and_then(|_| {
            std::fs::write(
                dir.join(format!("{}.json", boot_digest.hex())),
                serde_json::to_vec(&boot_json).unwrap_or_default(),
            )
        })
        .map_err(|e| BootError::Tee(format!("cannot store evidence in {}: {e}", dir.display())))?;
    Ok(TeeState {
        producer,
        boot,
        boot_json,
        boot_digest,
        verdict,
        simulated,
        dir,
        limiter: crate::attestation::RateLimiter::new(config.limits.attest_per_sec),
    })
}

/// Where ONNX Runtime's library is looked for: config, then `ORT_DYLIB_PATH`, then the cache
/// folder `scripts/setup-ort.sh` fills.
pub fn ort_dylib_path(configured: Option<&Path>) -> Option<PathBuf> {
    configured
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from))
        .or_else(|| {
            let home = std::env::var_os("HOME")?;
            let p = PathBuf::from(home).join(".cache/vouch/ort/libonnxruntime.so");
            p.is_file().then_some(p)
        })
}

fn choose_engines(config: &NodeConfig) -> Result<(Engines, String), BootError> {
    let (engines, status) = choose_engine_set(config)?;
    let exec = &config.exec;
    let limits = vouch_exec::ModelLimits {
        max_graph_nodes: exec.max_graph_nodes,
    };
    let trial = Duration::from_secs(config.limits.request_timeout_secs.max(1));
    Ok((
        engines.with_limits(limits, trial, exec.run_memory_bytes()),
        status,
    ))
}

fn choose_engine_set(config: &NodeConfig) -> Result<(Engines, String), BootError> {
    let want = config.exec.engine.as_str();
    if want == "tract" {
        return Ok((
            Engines::tract_only(),
            "disabled by config (engine = \"tract\")".into(),
        ));
    }
    let found = ort_dylib_path(config.exec.ort_dylib.as_deref());
    // ONNX Runtime's arena is shared by every concurrent run: one budget per worker.
    let arena = config
        .exec
        .run_memory_bytes()
        .saturating_mul(config.exec.workers.max(1));
    let loaded = match &found {
        Some(p) => OrtEngine::load(p, config.exec.intra_threads, arena)
            .map(|e| Some(e.with_sessions(config.exec.workers))),
        None => Ok(None),
    };
    match (want, loaded) {
        ("auto" | "onnxruntime", Ok(Some(ort))) => {
            let status = format!("loaded from {}", found.map(|p| p.display().to_string()).unwrap_or_default());
            Ok((Engines::new(Some(ort)), status))
        }
        ("onnxruntime", Ok(None)) => Err(BootError::Engine(
            "engine = \"onnxruntime\" but no library was found: run scripts/setup-ort.sh or set ORT_DYLIB_PATH".into(),
        )),
        ("onnxruntime", Err(e)) => Err(BootError::Engine(format!("ONNX Runtime failed to load: {e}"))),
        ("auto", Ok(None)) => Ok((Engines::tract_only(), "not found; serving with tract (run scripts/setup-ort.sh)".into())),
        ("auto", Err(e)) => Ok((Engines::tract_only(), format!("failed to load ({e}); serving with tract"))),
        (other, _) => Err(BootError::Engine(format!(
            "unknown engine {other:?} in config: expected auto, onnxruntime or tract"
        ))),
    }
}

/// The admin token: 32 random bytes, base64url, in a 0600 file created on first start.
pub fn load_or_create_token(path: &Path) -> Result<(String, bool), BootError> {
    let err = |source| BootError::Token {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(t) if !t.trim().is_empty() => Ok((t.trim().to_string(), false)),
        Ok(_) => Err(err(std::io::Error::other(
            "file is empty; delete it to create a new token",
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut raw = [0u8; 32];
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut raw);
            let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
            vouch_attest::signer::write_secret_file(path, format!("{token}\n").as_bytes())
                .map_err(err)?;
            Ok((token, true))
        }
        Err(e) => Err(err(e)),
    }
}

impl Node {
    /// Who this node is: its receipt-signing key, engines, tiers, log, prices and limits.
    pub async fn info(&self) -> Result<vouch_api::NodeInfo, crate::NodeError> {
        use vouch_api as api;
        let engines = self
            .catalog
            .engines
            .available()
            .into_iter()
            .map(|(k, v)| api::EngineVersion {
                name: k.as_str().into(),
                version: v,
            })
            .collect();
        let (loaded, bytes) = self.catalog.cache.usage().await;
        let tiers = [
            vouch_core::Tier::Signed,
            vouch_core::Tier::Tee,
            vouch_core::Tier::Zk,
        ]
        .into_iter()
        .filter(|t| crate::policy::unavailable_reason(self, *t).is_none())
        .collect();
        Ok(api::NodeInfo {
            vouch_version: env!("CARGO_PKG_VERSION").into(),
            node_key: self.signer.public_key(),
            engines,
            tiers,
            tee: self.tee.as_ref().map(|t| api::TeeSummary {
                platform: crate::wire::platform(t.verdict.platform),
                trust_assumption: t.verdict.trust_assumption.clone(),
                measurements: t.verdict.measurements.clone(),
                evidence_digest: t.boot_digest,
                simulated: t.simulated,
            }),
            key_ephemeral: self.boot.key_ephemeral,
            log: api::LogSummary {
                origin: self.log.origin.clone(),
                log_key: self.log.vkey.clone(),
                size: self.log.log.size(),
            },
            prices: crate::wire::pricing_config(self.prices.config())?,
            price_unit: self.prices.unit(),
            payments: self.pay.is_some(),
            limits: crate::wire::limits(&self.config.limits),
            cache: api::CacheUsage {
                models_loaded: loaded,
                estimated_bytes: bytes,
                budget_mib: self.config.exec.cache_mib,
            },
            queue: api::QueueUsage {
                waiting: self.executor.queue_len() as u64,
                capacity: self.config.exec.queue_capacity as u64,
            },
            zk: self.zk.queue_json(),
        })
    }
}
