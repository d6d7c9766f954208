//! The zk tier on this node: each model's zk analysis (at registration, in the background),
//! admission of proof jobs, durable jobs on a bounded pool of prover threads, and the job view
//! `GET /v1/proofs/{id}` returns.
//!
//! Proving never runs on the async runtime: the worker threads (`worker.rs`) reach the database
//! through the runtime's handle. The database is the source of truth for jobs; the in-memory
//! queue is rebuilt from it at boot, so queued and interrupted jobs survive a restart.

pub mod settings;
mod slots;
mod worker;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use serde_json::Value;
use vouch_api::ModelZk as ModelZkView;
use vouch_core::{Digest, ErrorCode, ModelDigest, Receipt, TensorMap};
use vouch_store::proof_store::{self, NewZkJob, ZkJobRow};
use vouch_store::{Store, StoreError};
use vouch_zk::{
    Admission, AnalyzeOptions, CircuitEstimate, Deadline, NodeCapacity, ZkError, ZkKeys,
    ZkModelInfo,
};

use crate::error::NodeError;
pub use settings::ZkSettings;

/// What this node knows about one model's zk tier.
#[derive(Clone, Debug)]
pub enum ModelZk {
    Analysing,
    Available(Arc<ZkModelInfo>),
    Unavailable(Arc<Unavailable>),
}

/// Why a model has no zk tier here.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Unavailable {
    /// E.g. "zk: unavailable: operator Softmax is not supported by the zk tier", or
    /// "zk: unavailable (circuit of about 20570321 constraints exceeds this node's limit of
    /// 2097152)".
    pub reason: String,
    /// Set when this node's limits (size, memory, time) refused the model rather than the model
    /// itself: the limits then, so a node started with other limits analyses it again.
    pub limits: Option<AnalysisLimits>,
    /// The circuit the graph predicted, when the estimate got that far.
    pub estimate: Option<CircuitEstimate>,
}

/// The `[zk]` settings an analysis is bounded by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AnalysisLimits {
    pub max_constraints: u64,
    pub max_graph_nodes: u64,
    pub max_peak_mib: u64,
    pub analyze_timeout_secs: u64,
}

impl AnalysisLimits {
    fn of(s: &ZkSettings) -> Self {
        AnalysisLimits {
            max_constraints: s.max_constraints,
            max_graph_nodes: s.max_graph_nodes,
            max_peak_mib: s.max_peak_mib,
            analyze_timeout_secs: s.analyze_timeout_secs,
        }
    }
}

/// Past the analysis deadline, how long the node waits for the analysis thread to notice
/// before it records the model unavailable anyway (Spartan2's key generation cannot be
/// interrupted; the thread keeps its slot until it ends).
const ANALYSIS_GRACE: Duration = Duration::from_secs(5);

/// A job waiting or running, as the queue sees it.
struct Live {
    estimate_ms: u64,
    stage: String,
    progress: f64,
    cancel: Arc<AtomicBool>,
}

#[derive(Default)]
struct Jobs {
    pending: VecDeque<String>,
    running: usize,
    /// Admitted requests whose job row is not written yet (their inference is running).
    reserved: usize,
    reserved_ms: u64,
    live: HashMap<String, Live>,
}

pub struct ZkState {
    pub settings: ZkSettings,
    store: Store,
    rt: tokio::runtime::Handle,
    models: RwLock<HashMap<ModelDigest, ModelZk>>,
    /// Proving keys, least recently used first.
    keys: Mutex<Vec<(ModelDigest, Arc<ZkKeys>)>>,
    jobs: Mutex<Jobs>,
    wake: std::sync::Condvar,
    /// Woken on every job or analysis change; `?wait=` waits on it.
    pub changed: tokio::sync::Notify,
    /// `[zk] analysis_slots` analyses at once, smallest estimated circuit first.
    analyses: Arc<slots::AnalysisSlots>,
    /// Where jobs that end without a proof are reported (set once at boot, by payments).
    pub failures: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<(ZkJobRow, String)>>,
    /// This process's name on the jobs it claims (`<host>-<pid>-<random>`).
    pub worker_id: String,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a process's zk state is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Node,
    Worker,
}

/// Statuses a job can end in.
pub fn is_terminal(status: &str) -> bool {
    matches!(status, "done" | "failed" | "cancelled")
}

impl ZkState {
    /// Opens the zk tables, loads every model's analysis, re-queues open jobs (a job that was
    /// running when the node stopped starts over) and starts the prover threads. Models never
    /// analysed (registered before, or interrupted) are analysed in the background.
    pub async fn boot(store: &Store, settings: ZkSettings) -> Result<Arc<ZkState>, StoreError> {
        ZkState::start(store, settings, Role::Node).await
    }

    /// A `vouch worker`: prover threads over the shared job queue, nothing else — no analysis
    /// (nodes analyse at registration), no re-queueing (leases hand on the jobs of dead
    /// provers), no payments (a node refunds what a worker fails).
    pub async fn boot_worker(
        store: &Store,
        settings: ZkSettings,
    ) -> Result<Arc<ZkState>, StoreError> {
        ZkState::start(store, settings, Role::Worker).await
    }

    async fn start(
        store: &Store,
        settings: ZkSettings,
        role: Role,
    ) -> Result<Arc<ZkState>, StoreError> {
        proof_store::migrate(store).await?;
        let zk = Arc::new(ZkState {
            settings: settings.clone(),
            store: store.clone(),
            rt: tokio::runtime::Handle::current(),
            models: RwLock::new(HashMap::new()),
            keys: Mutex::new(Vec::new()),
            jobs: Mutex::new(Jobs::default()),
            wake: std::sync::Condvar::new(),
            changed: tokio::sync::Notify::new(),
            analyses: slots::AnalysisSlots::new(settings.analysis_slots),
            failures: std::sync::OnceLock::new(),
            worker_id: worker_id(),
        });
        if !settings.enabled {
            return Ok(zk);
        }
        if role == Role::Worker {
            worker::spawn(&zk, settings.workers);
            spawn_sweeper(&zk);
            return Ok(zk);
        }
        let mut todo = store.models_without_zk().await?;
        let rows = store.zk_models().await?;
        {
            let mut models = zk.models.write().unwrap_or_else(|e| e.into_inner());
            for row in rows {
                let state = match (row.status.as_str(), &row.info) {
                    ("available", Some(info)) => match serde_json::from_str::<ZkModelInfo>(info) {
                        Ok(i) if i.circuit_version != vouch_zk::CIRCUIT_VERSION => {
                            tracing::info!(
                                "zk analysis of {} was made for circuit version {}, this node builds {}: re-analysing",
                                row.digest,
                                i.circuit_version,
                                vouch_zk::CIRCUIT_VERSION
                            );
                            todo.push(row.digest);
                            continue;
                        }
                        Ok(i) => ModelZk::Available(Arc::new(i)),
                        Err(e) => {
                            tracing::warn!(
                                "zk info of {} unreadable ({e}): re-analysing",
                                row.digest
                            );
                            todo.push(row.digest);
                            continue;
                        }
                    },
                    ("unavailable", info) => {
                        let recorded = info
                            .as_deref()
                            .and_then(|i| serde_json::from_str::<Unavailable>(i).ok());
                        match recorded {
                            // Refused by limits other than this node's: analyse it again.
                            Some(u)
                                if u.limits.is_some_and(|l| l != AnalysisLimits::of(&settings)) =>
                            {
                                todo.push(row.digest);
                                continue;
                            }
                            Some(u) => ModelZk::Unavailable(Arc::new(u)),
                            None => ModelZk::Unavailable(Arc::new(Unavailable {
                                reason: row.reason.unwrap_or_default(),
                                limits: None,
                                estimate: None,
                            })),
                        }
                    }
                    _ => {
                        todo.push(row.digest);
                        continue;
                    }
                };
                models.insert(row.digest, state);
            }
        }
        for d in todo {
            zk.spawn_analysis(d, None);
        }
        let open = store.requeue_open_zk_jobs().await?;
        {
            let mut jobs = lock(&zk.jobs);
            for j in open {
                jobs.live.insert(j.id.clone(), Live::queued(j.estimate_ms));
                jobs.pending.push_back(j.id);
            }
        }
        worker::spawn(&zk, settings.workers);
        spawn_retention(store.clone(), settings.retain_days);
        spawn_sweeper(&zk);
        Ok(zk)
    }

    /// A prover's lease on a job it claimed.
    fn lease(&self) -> Duration {
        Duration::from_millis(self.settings.lease_ms.max(1000))
    }

    /// Hands jobs that ended without a proof to the failure hook (`id`: that one only), each
    /// exactly once across every node; a process without the hook (`vouch worker`, which takes
    /// no payments) leaves them to a node that has one.
    async fn hand_over_failures(&self, id: Option<&str>) {
        if self.failures.get().is_none() {
            return;
        }
        match self.store.take_zk_failures(id, 100).await {
            Ok(rows) => {
                for row in rows {
                    let reason = row.error.clone().unwrap_or_else(|| row.status.clone());
                    on_job_failed(self, &row, &reason);
                }
            }
            Err(e) => tracing::warn!("zk: cannot read jobs that ended without a proof: {e}"),
        }
    }

    pub fn model(&self, digest: &ModelDigest) -> Option<ModelZk> {
        self.models
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(digest)
            .cloned()
    }

    /// What proving this model costs, in the unit zk prices are stated in: its circuit's
    /// constraint count. `None` until the analysis found the model provable.
    pub fn proving_cost(&self, digest: &ModelDigest) -> Option<u64> {
        match self.model(digest)? {
            ModelZk::Available(info) => Some(info.stats.constraints as u64),
            _ => None,
        }
    }

    fn set_model(&self, digest: ModelDigest, state: ModelZk) {
        self.models
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(digest, state);
    }

    /// Analyses a model in the background; the receiver fires when the result is recorded.
    pub fn spawn_analysis(
        self: &Arc<Self>,
        digest: ModelDigest,
        bytes: Option<Bytes>,
    ) -> tokio::sync::oneshot::Receiver<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.set_model(digest, ModelZk::Analysing);
        let zk = self.clone();
        self.rt.spawn(async move {
            zk.analyse(digest, bytes).await;
            zk.changed.notify_waiters();
            let _ = tx.send(());
        });
        rx
    }

    /// Estimates the model's circuit from its graph, refuses it at once when that is over this
    /// node's limits, and otherwise analyses it in a slot (smallest first) on a blocking thread
    /// with a deadline; records the outcome.
    async fn analyse(self: &Arc<Self>, digest: ModelDigest, bytes: Option<Bytes>) {
        if let Err(e) = self
            .store
            .put_zk_model(&digest, "analysing", None, None, None)
            .await
        {
            tracing::error!("zk: cannot record analysis of {digest}: {e}");
        }
        let bytes = match bytes {
            Some(b) => b,
            None => match self.store.blobs.get_model(&digest).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!("zk: cannot read {digest} for analysis: {e}");
                    return;
                }
            },
        };
        let started = std::time::Instant::now();
        let outcome = self.estimate_and_analyse(bytes).await;
        let (state, row) = match outcome {
            Ok((info, keys)) => {
                let info = Arc::new(info);
                self.cache_keys(digest, Arc::new(keys));
                let json = serde_json::to_string(&*info).unwrap_or_default();
                let vk = info.vk_digest.to_string();
                (
                    ModelZk::Available(info),
                    ("available", None, Some(vk), Some(json)),
                )
            }
            Err(u) => {
                let json = serde_json::to_string(&u).unwrap_or_default();
                let why = u.reason.clone();
                (
                    ModelZk::Unavailable(Arc::new(u)),
                    ("unavailable", Some(why), None, Some(json)),
                )
            }
        };
        tracing::info!(
            "zk analysis of {digest}: {} in {} ms",
            row.0,
            started.elapsed().as_millis()
        );
        if let Err(e) = self
            .store
            .put_zk_model(
                &digest,
                row.0,
                row.1.as_deref(),
                row.2.as_deref(),
                row.3.as_deref(),
            )
            .await
        {
            tracing::error!("zk: cannot record analysis of {digest}: {e}");
        }
        self.set_model(digest, state);
    }

    async fn estimate_and_analyse(
        self: &Arc<Self>,
        bytes: Bytes,
    ) -> Result<(ZkModelInfo, ZkKeys), Unavailable> {
        let s = &self.settings;
        let limits = s.limits();
        let refused = |e: ZkError, estimate: Option<CircuitEstimate>| Unavailable {
            limits: matches!(e, ZkError::OverLimit(_)).then(|| AnalysisLimits::of(s)),
            reason: e.to_string(),
            estimate,
        };
        // The estimate allocates nothing in proportion to the circuit, but decodes the model:
        // a blocking thread, not the runtime, and no slot.
        let b = bytes.clone();
        let estimated = tokio::task::spawn_blocking(move || vouch_zk::estimate_model(&b, &limits))
            .await
            .unwrap_or_else(|e| Err(ZkError::Internal(format!("the estimate crashed ({e})"))));
        let estimate = estimated.map_err(|e| refused(e, None))?;
        estimate
            .check(&limits)
            .map_err(|e| refused(e, Some(estimate.clone())))?;
        let slot = self.analyses.acquire(estimate.analysis_peak_bytes()).await;
        let timeout = Duration::from_secs(s.analyze_timeout_secs);
        let cancel = Arc::new(AtomicBool::new(false));
        let deadline = Deadline::after(timeout).with_cancel(cancel.clone());
        let opts = AnalyzeOptions {
            limits,
            deadline: deadline.clone(),
            ..Default::default()
        };
        let analysis = tokio::task::spawn_blocking(move || {
            let _slot = slot; // freed when the analysis ends, whoever stopped waiting for it
            vouch_zk::analyze_with(&bytes, &opts)
        });
        let result = match tokio::time::timeout(timeout + ANALYSIS_GRACE, analysis).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(ZkError::Internal(format!("the analysis crashed ({e})"))),
            Err(_) => {
                cancel.store(true, Ordering::SeqCst);
                Err(deadline.error())
            }
        };
        result.map_err(|e| refused(e, Some(estimate)))
    }

    /// Called by registration: analyses a new model and waits a bounded time for the result.
    pub async fn on_registered(self: &Arc<Self>, digest: ModelDigest, bytes: Bytes) -> ModelZkView {
        if self.settings.enabled && self.model(&digest).is_none() {
            let done = self.spawn_analysis(digest, Some(bytes));
            let wait = Duration::from_millis(self.settings.analyze_wait_ms);
            let _ = tokio::time::timeout(wait, done).await;
        }
        self.model_json(&digest)
    }

    /// The zk part of a model's registry view.
    pub fn model_json(&self, digest: &ModelDigest) -> ModelZkView {
        use crate::wire::{circuit_estimate, circuit_stats, proof_estimate};
        if !self.settings.enabled {
            return ModelZkView::Disabled;
        }
        match self.model(digest) {
            None => ModelZkView::Unknown,
            Some(ModelZk::Analysing) => ModelZkView::Analysing,
            Some(ModelZk::Unavailable(u)) => ModelZkView::Unavailable {
                reason: u.reason.clone(),
                circuit_estimate: u.estimate.as_ref().map(circuit_estimate),
            },
            Some(ModelZk::Available(i)) => ModelZkView::Available {
                system: i.system.clone(),
                vk_digest: i.vk_digest,
                vk_bytes: i.vk_bytes,
                keygen_ms: i.keygen_ms,
                scale_bits: i.config.quant.act_bits,
                output_tolerance: i.config.output_tolerance,
                calibration_max_abs_err: i.calibration_max_abs_err,
                params: i.params,
                macs: i.macs,
                circuit: circuit_stats(&i.stats),
                circuit_estimate: i.size_estimate.as_ref().map(circuit_estimate),
                estimate: proof_estimate(&i.estimate),
            },
        }
    }

    /// Why this model cannot get the zk tier here, if it cannot (checked before any work).
    pub fn unavailable_reason(&self, digest: &ModelDigest) -> Option<String> {
        if !self.settings.enabled {
            return Some("zk is disabled on this node ([zk] enabled = false)".into());
        }
        match self.model(digest) {
            Some(ModelZk::Available(_) | ModelZk::Analysing) => None,
            Some(ModelZk::Unavailable(u)) => Some(u.reason.clone()),
            None => Some("this model has not been analysed for zk on this node".into()),
        }
    }

    /// The stable reason code of [`ZkState::unavailable_reason`]: `zk_over_capacity` when this
    /// node's limits (circuit size, memory, analysis time) refused the model, else
    /// `zk_unavailable`.
    pub fn unavailable_code(&self, digest: &ModelDigest) -> &'static str {
        match self.model(digest) {
            Some(ModelZk::Unavailable(u)) if u.limits.is_some() => "zk_over_capacity",
            _ => "zk_unavailable",
        }
    }

    fn cache_keys(&self, digest: ModelDigest, keys: Arc<ZkKeys>) {
        let mut cache = lock(&self.keys);
        cache.retain(|(d, _)| *d != digest);
        cache.push((digest, keys));
        let max = self.settings.keys_cached.max(1);
        while cache.len() > max {
            cache.remove(0);
        }
    }

    /// The proving keys of an available model: cached, or derived again from the model file;
    /// either way their verifying-key digest must be the registry's.
    fn keys_for(&self, digest: &ModelDigest) -> Result<Arc<ZkKeys>, JobError> {
        {
            let mut cache = lock(&self.keys);
            if let Some(i) = cache.iter().position(|(d, _)| d == digest) {
                let entry = cache.remove(i);
                let keys = entry.1.clone();
                cache.push(entry);
                return Ok(keys);
            }
        }
        // A model being (re-)analysed — at boot after a circuit change — is waited for: its
        // queued jobs run once the analysis is recorded.
        // On a shared database the model may have been analysed by another node after this
        // process loaded the table: read its row once before giving up.
        if self.model(digest).is_none() {
            self.rt.block_on(self.refresh_from_store());
        }
        let info = loop {
            match self.model(digest) {
                Some(ModelZk::Available(i)) => break i,
                Some(ModelZk::Analysing) => self.rt.block_on(async {
                    let _ =
                        tokio::time::timeout(Duration::from_secs(1), self.changed.notified()).await;
                }),
                _ => {
                    return Err(JobError::new(
                        ErrorCode::TierUnavailable,
                        "the model is no longer available for zk on this node",
                    ));
                }
            }
        };
        let bytes = self
            .rt
            .block_on(self.store.blobs.get_model(digest))
            .map_err(JobError::internal)?;
        let keys = ZkKeys::generate_prover(&bytes, &info.config).map_err(JobError::from)?;
        if keys.vk_digest() != info.vk_digest {
            return Err(JobError::internal(format!(
                "the verifying key recomputed for {digest} ({}) differs from the registry's ({})",
                keys.vk_digest(),
                info.vk_digest
            )));
        }
        let keys = Arc::new(keys);
        self.cache_keys(*digest, keys.clone());
        Ok(keys)
    }

    /// Takes in the analyses other nodes recorded (a shared database): models this node has
    /// no outcome for, or whose recorded outcome changed. Models being analysed here are left
    /// to that analysis.
    pub async fn refresh_from_store(&self) {
        if !self.settings.enabled {
            return;
        }
        let rows = match self.store.zk_models().await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!("zk: cannot read the analyses: {e}");
                return;
            }
        };
        for row in rows {
            if matches!(self.model(&row.digest), Some(ModelZk::Analysing)) {
                continue;
            }
            let state = match (row.status.as_str(), &row.info) {
                ("available", Some(info)) => match serde_json::from_str::<ZkModelInfo>(info) {
                    Ok(i) if i.circuit_version == vouch_zk::CIRCUIT_VERSION => {
                        ModelZk::Available(Arc::new(i))
                    }
                    _ => continue,
                },
                ("unavailable", info) => ModelZk::Unavailable(Arc::new(
                    info.as_deref()
                        .and_then(|i| serde_json::from_str::<Unavailable>(i).ok())
                        .unwrap_or(Unavailable {
                            reason: row.reason.clone().unwrap_or_default(),
                            limits: None,
                            estimate: None,
                        }),
                )),
                _ => continue,
            };
            self.set_model(row.digest, state);
        }
    }

    /// Admission, before any work: the model is provable here, the inputs fit a zk proof, the
    /// node can afford the proof and the queue has room. The ticket holds a queue slot until
    /// [`Ticket::submit`] or drop.
    pub fn admit(
        self: &Arc<Self>,
        digest: &ModelDigest,
        inputs: &TensorMap,
    ) -> Result<Ticket, NodeError> {
        let info = match self.model(digest) {
            Some(ModelZk::Available(i)) => i,
            Some(ModelZk::Analysing) => {
                return Err(NodeError::new(
                    ErrorCode::Overloaded,
                    "this model's zk analysis is still running; retry in a few seconds",
                )
                .with_reason("zk_analysing"));
            }
            _ => {
                return Err(NodeError::new(
                    ErrorCode::TierUnavailable,
                    self.unavailable_reason(digest).unwrap_or_default(),
                )
                .with_reason(self.unavailable_code(digest)));
            }
        };
        if let Some((name, t)) = inputs.iter().find(|(_, t)| t.shape().first() != Some(&1)) {
            return Err(NodeError::new(
                ErrorCode::BadInput,
                format!(
                    "zk proofs cover one row: input {name:?} has shape {:?}; send batch 1",
                    t.shape()
                ),
            ));
        }
        let s = &self.settings;
        let cap = NodeCapacity {
            max_peak_bytes: s.max_peak_bytes(),
            max_prove_ms: s.max_prove_secs.saturating_mul(1000),
            speed: s.speed,
        };
        let mut jobs = lock(&self.jobs);
        let open = jobs.pending.len() + jobs.running + jobs.reserved;
        if open >= s.queue_capacity {
            return Err(NodeError::new(
                ErrorCode::Overloaded,
                format!(
                    "the zk proof queue is full ({open} open jobs, this node's limit is {}); retry later",
                    s.queue_capacity
                ),
            )
            .with_reason("zk_queue_full"));
        }
        let queued_ms = jobs
            .live
            .values()
            .map(|l| l.estimate_ms)
            .fold(jobs.reserved_ms, u64::saturating_add);
        let free = s.workers.saturating_sub(jobs.running);
        let (prove_ms, wait_ms) =
            match vouch_zk::admit(&info.estimate, &cap, queued_ms, s.workers, free) {
                Admission::Refuse { reason } => {
                    return Err(NodeError::new(
                        ErrorCode::TierUnavailable,
                        format!("this node cannot prove this model: it {reason}"),
                    )
                    .with_reason("zk_over_capacity"));
                }
                Admission::Accept { prove_ms } => (prove_ms, 0),
                Admission::Queue { wait_ms, prove_ms } => (prove_ms, wait_ms),
            };
        if wait_ms > s.max_queue_wait_secs.saturating_mul(1000) {
            return Err(NodeError::new(
                ErrorCode::Overloaded,
                format!(
                    "the zk proof queue holds about {} s of work, more than this node's limit of {} s; retry later",
                    wait_ms / 1000,
                    s.max_queue_wait_secs
                ),
            )
            .with_reason("zk_queue_full"));
        }
        jobs.reserved += 1;
        jobs.reserved_ms = jobs.reserved_ms.saturating_add(prove_ms);
        Ok(Ticket {
            zk: self.clone(),
            model: *digest,
            estimate_ms: prove_ms,
            wait_ms,
            held: true,
        })
    }

    fn release(&self, estimate_ms: u64) {
        let mut jobs = lock(&self.jobs);
        jobs.reserved = jobs.reserved.saturating_sub(1);
        jobs.reserved_ms = jobs.reserved_ms.saturating_sub(estimate_ms);
    }

    /// A job as `GET /v1/proofs/{id}` shows it; `None` if there is no such job.
    pub async fn view(&self, id: &str) -> Result<Option<vouch_api::ProofJob>, NodeError> {
        if !valid_id(id) {
            return Ok(None);
        }
        let Some(row) = self.store.zk_job(id).await? else {
            return Ok(None);
        };
        let (mut stage, mut progress, mut position) = (row.stage.clone(), row.progress, None);
        {
            let jobs = lock(&self.jobs);
            if row.status == "running"
                && let Some(l) = jobs.live.get(id)
            {
                stage = l.stage.clone();
                progress = l.progress;
            }
            if row.status == "queued" {
                position = jobs.pending.iter().position(|p| p == id);
            }
        }
        let evidence = match &row.evidence {
            Some(e) => Some(vouch_api::ProofEvidence {
                zk: serde_json::from_str::<Value>(e).map_err(NodeError::internal)?,
            }),
            None => None,
        };
        Ok(Some(vouch_api::ProofJob {
            url: job_url(&row.id),
            status: job_status(&row.status)?,
            id: row.id,
            model: row.model,
            receipt: row.receipt_hash,
            stage,
            progress,
            estimate_ms: row.estimate_ms,
            queue_position: position.map(|p| p as u64),
            created_at: row.created_at,
            started_at: row.started_at,
            finished_at: row.finished_at,
            prove_ms: row.prove_ms,
            error: row.error.map(|message| vouch_api::JobError {
                code: row.error_code,
                message,
            }),
            evidence,
        }))
    }

    /// The stored job, for authorisation checks.
    pub async fn job(&self, id: &str) -> Result<Option<ZkJobRow>, NodeError> {
        if !valid_id(id) {
            return Ok(None);
        }
        Ok(self.store.zk_job(id).await?)
    }

    /// Cancels an open job (queued: it never starts; running: the prover stops at its next
    /// stage and its result is discarded). False when the job had already ended.
    pub async fn cancel(&self, row: &ZkJobRow, by: &str) -> Result<bool, NodeError> {
        if let Some(l) = lock(&self.jobs).live.get(&row.id) {
            l.cancel.store(true, Ordering::SeqCst);
        }
        let ended = self
            .store
            .end_zk_job(
                &row.id,
                "cancelled",
                "cancelled",
                &format!("cancelled by {by}"),
                None,
            )
            .await?;
        if ended {
            {
                let mut jobs = lock(&self.jobs);
                let was_queued = jobs.pending.contains(&row.id);
                jobs.pending.retain(|p| *p != row.id);
                if was_queued {
                    jobs.live.remove(&row.id);
                } else if let Some(l) = jobs.live.get_mut(&row.id) {
                    // Running: its worker removes it when the prover stops.
                    l.estimate_ms = 0;
                }
            }
            self.hand_over_failures(Some(&row.id)).await;
            self.changed.notify_waiters();
        }
        Ok(ended)
    }

    /// Jobs this process is proving now.
    pub fn running(&self) -> usize {
        lock(&self.jobs).running
    }

    /// Open jobs (queued, running) and the queue's capacity, for `/v1/node`.
    pub fn queue_json(&self) -> vouch_api::ZkQueue {
        let jobs = lock(&self.jobs);
        vouch_api::ZkQueue {
            queued: jobs.pending.len() as u64,
            running: jobs.running as u64,
            capacity: self.settings.queue_capacity as u64,
            workers: self.settings.workers as u64,
        }
    }
}

impl Live {
    fn queued(estimate_ms: u64) -> Live {
        Live {
            estimate_ms,
            stage: "queued".into(),
            progress: 0.0,
            cancel: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// A stored job status as the API's closed set; another value means a corrupt row.
fn job_status(s: &str) -> Result<vouch_api::JobStatus, NodeError> {
    use vouch_api::JobStatus as S;
    Ok(match s {
        "queued" => S::Queued,
        "running" => S::Running,
        "done" => S::Done,
        "failed" => S::Failed,
        "cancelled" => S::Cancelled,
        other => {
            return Err(NodeError::internal(format!(
                "a stored proof job has status {other:?}"
            )));
        }
    })
}

/// Job ids are UUIDs; anything else is not looked up.
fn valid_id(id: &str) -> bool {
    id.len() == 36 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

pub fn job_url(id: &str) -> String {
    format!("/v1/proofs/{id}")
}

/// An admitted zk request's place in the queue, held while its inference runs.
pub struct Ticket {
    zk: Arc<ZkState>,
    model: ModelDigest,
    estimate_ms: u64,
    wait_ms: u64,
    held: bool,
}

/// A queued job, as the infer route reports it.
pub struct Submitted {
    /// `evidence.zk_job` of the bundle.
    pub reference: vouch_api::ZkJobRef,
    /// Lets the requester cancel the job (`DELETE /v1/proofs/{id}` with `Bearer <token>`).
    pub cancel_token: String,
}

impl Ticket {
    /// Writes the job (durable before the caller sees its id) and queues it. The proof will
    /// bind `receipt.hash()`.
    pub async fn submit(
        mut self,
        receipt: &Receipt,
        inputs: &TensorMap,
    ) -> Result<Submitted, NodeError> {
        let id = uuid::Uuid::new_v4().to_string();
        let mut raw = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut raw);
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let receipt_json = serde_json::to_string(receipt).map_err(NodeError::internal)?;
        let inputs_json = serde_json::to_string(inputs).map_err(NodeError::internal)?;
        let receipt_hash = receipt.hash();
        let zk = self.zk.clone();
        zk.store
            .insert_zk_job(&NewZkJob {
                id: &id,
                model: self.model,
                receipt_hash,
                receipt: &receipt_json,
                inputs: &inputs_json,
                cancel_hash: Digest::of(token.as_bytes()),
                estimate_ms: self.estimate_ms,
            })
            .await?;
        {
            let mut jobs = lock(&zk.jobs);
            jobs.reserved = jobs.reserved.saturating_sub(1);
            jobs.reserved_ms = jobs.reserved_ms.saturating_sub(self.estimate_ms);
            jobs.live.insert(id.clone(), Live::queued(self.estimate_ms));
            jobs.pending.push_back(id.clone());
            self.held = false;
        }
        zk.wake.notify_one();
        Ok(Submitted {
            reference: vouch_api::ZkJobRef {
                url: job_url(&id),
                id,
                status: vouch_api::JobStatus::Queued,
                receipt: receipt_hash,
                estimate_ms: self.estimate_ms,
                wait_ms: self.wait_ms,
            },
            cancel_token: token,
        })
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.held {
            self.zk.release(self.estimate_ms);
        }
    }
}

/// Why a job failed: a stable code and a message for the job's `error`.
#[derive(Debug)]
pub(crate) struct JobError {
    code: ErrorCode,
    message: String,
}

impl JobError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        JobError {
            code,
            message: message.into(),
        }
    }
    fn internal(e: impl std::fmt::Display) -> Self {
        JobError::new(ErrorCode::Internal, e.to_string())
    }
}

impl From<vouch_zk::ZkError> for JobError {
    fn from(e: vouch_zk::ZkError) -> Self {
        JobError::new(e.code(), e.to_string())
    }
}

/// Called once for every job that ends without a proof (failed, or cancelled), after its row
/// says so.
///
/// A job that ended without a proof: logged, and handed to the failure hook (the payment layer
/// refunds a paid request's payment through it; see `crate::payment::spawn_zk_refunds`).
pub(crate) fn on_job_failed(zk: &ZkState, job: &ZkJobRow, reason: &str) {
    tracing::warn!(
        job = %job.id,
        model = %job.model,
        "zk proof job ended without a proof: {reason}"
    );
    if let Some(tx) = zk.failures.get() {
        let _ = tx.send((job.clone(), reason.to_string()));
    }
}

/// `<host>-<pid>-<random>`: unique per process, readable in the jobs table.
fn worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".into());
    let tag = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &tag[..8])
}

/// Every few seconds: fails jobs every prover of which died (`[zk] max_attempts`), and hands
/// jobs that ended without a proof elsewhere (on a `vouch worker`, or on a node that died
/// before refunding) to the failure hook. Holds the state weakly: it ends with it.
fn spawn_sweeper(zk: &Arc<ZkState>) {
    let weak = Arc::downgrade(zk);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(2));
        loop {
            every.tick().await;
            let Some(zk) = weak.upgrade() else { return };
            match zk
                .store
                .fail_exhausted_zk_jobs(zk.settings.max_attempts.max(1))
                .await
            {
                Ok(0) => {}
                Ok(n) => {
                    tracing::warn!(
                        "zk: {n} proof jobs failed: every prover that took them was lost"
                    );
                    zk.changed.notify_waiters();
                }
                Err(e) => tracing::warn!("zk: cannot check for lost provers: {e}"),
            }
            zk.hand_over_failures(None).await;
        }
    });
}

/// Deletes ended jobs older than `retain_days` (0: never), at boot and then hourly, so proofs
/// do not pile up in the database for ever.
fn spawn_retention(store: Store, retain_days: u64) {
    if retain_days == 0 {
        return;
    }
    let keep = Duration::from_secs(retain_days.saturating_mul(86_400));
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(3600));
        loop {
            every.tick().await;
            let Some(cutoff) = std::time::SystemTime::now().checked_sub(keep) else {
                continue;
            };
            match store.purge_ended_zk_jobs(cutoff).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!("zk: purged {n} proof jobs ended over {retain_days} days ago")
                }
                Err(e) => tracing::warn!("zk: purging old proof jobs failed: {e}"),
            }
        }
    });
}
