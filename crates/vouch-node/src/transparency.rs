//! The node's transparency log, wired in: every receipt, registration, pointer move and policy
//! change becomes a `vouch-log` entry before the client hears about it.
//!
//! This module owns the glue only — which event becomes which entry, the background tasks
//! (group committer, checkpoint timer, witness pushes), the drain of the store's outboxes
//! (pointer moves, policy and configuration changes) and the log's settings. Formats, proofs and the appender live in `vouch-log`; storage in `vouch-store`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use vouch_core::{ErrorCode, ModelDigest};

use crate::error::NodeError;
use vouch_log::checkpoint::{generate_log_key, parse_log_private_key};
use vouch_log::entry::{ConfigChanged, ModelRegistered, PointerMoved, PolicyChanged};
use vouch_log::witness::parse_add_checkpoint_response;
use vouch_log::{Appended, Log, LogConfig, LogEntry, LogError, LogEvidence, LogSigner, WitnessKey};
use vouch_store::pg::log::LogBackend;
use vouch_store::{LogOutbox, Store};

/// The log as the server runs it.
pub type NodeLog = Log<LogBackend>;

/// `[log]` in `vouch.toml`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// The log's name: the first line of every checkpoint and the name of its key. Empty means
    /// `vouch-log/<16 random hex digits>`, fixed when the key is created on first start.
    pub origin: String,
    /// The log's private key in Go `sumdb/note` form; created (0600) on first start. The log key
    /// is not the node key: a `tee` node's key changes every boot, and a log's must not.
    pub key_file: Option<PathBuf>,
    /// Publish a checkpoint once this many entries are uncovered (0: timer only).
    pub checkpoint_every_entries: u64,
    /// Publish a checkpoint this often when entries were added; bounds the wait for a proof.
    pub checkpoint_every_ms: u64,
    /// Most appends one transaction carries.
    pub max_batch: usize,
    /// Witnesses this log trusts: their cosignatures are accepted and served, and, when a URL is
    /// given, each new checkpoint is sent to it (C2SP tlog-witness `add-checkpoint`).
    pub witnesses: Vec<WitnessSettings>,
    /// How long `?wait=true` proof requests and `log_proof` inference requests wait, in ms.
    pub max_proof_wait_ms: u64,
}

impl Default for LogSettings {
    fn default() -> Self {
        let d = LogConfig::default();
        LogSettings {
            origin: String::new(),
            key_file: None,
            checkpoint_every_entries: d.checkpoint_every_entries,
            checkpoint_every_ms: d.checkpoint_every_ms,
            max_batch: d.max_batch,
            witnesses: Vec::new(),
            max_proof_wait_ms: 10_000,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessSettings {
    /// The witness's verifier key, `name+keyid+base64(0x04 ‖ key)`.
    pub vkey: String,
    /// Its base URL (`<url>/add-checkpoint` is posted to); without one, cosignatures only arrive
    /// through `POST /log/cosignature`.
    #[serde(default)]
    pub url: Option<String>,
}

/// The running log and what `/v1/node` and the routes say about it.
pub struct LogState {
    pub log: NodeLog,
    /// The C2SP verifier key clients pass to `vouch verify --log-key`.
    pub vkey: String,
    pub origin: String,
    pub max_wait: Duration,
    /// One outbox drain at a time, so no change is appended twice.
    drain: tokio::sync::Mutex<()>,
}

/// Entries a page of `GET /v1/log/entries` holds at most, and by default.
pub const MAX_PAGE: u32 = 100;
pub const DEFAULT_PAGE: u32 = 20;

impl LogState {
    /// Entry `index` as the API shows it: kind, leaf hash and canonical bytes.
    pub async fn entry(&self, index: u64) -> Result<vouch_api::LogEntry, NodeError> {
        let bytes = self.log.entry(index).await?;
        shown(index, &bytes)
    }

    /// A page of entries in log order from `start` (default: the last `limit`).
    pub async fn entries(
        &self,
        start: Option<u64>,
        limit: Option<u32>,
    ) -> Result<vouch_api::LogEntryPage, NodeError> {
        let limit = limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(NodeError::new(
                ErrorCode::BadRequest,
                format!("limit must be 1 to {MAX_PAGE}, not {limit}"),
            ));
        }
        let size = self.log.size();
        let start = start.unwrap_or_else(|| size.saturating_sub(u64::from(limit)));
        let rows = self
            .log
            .entries(start, start.saturating_add(u64::from(limit)))
            .await?;
        let entries = rows
            .iter()
            .zip(start..)
            .map(|(bytes, index)| shown(index, bytes))
            .collect::<Result<_, _>>()?;
        Ok(vouch_api::LogEntryPage { size, entries })
    }

    /// The receipt (or chat receipt) entry of `request_id`.
    pub async fn receipt(&self, request_id: &str) -> Result<vouch_api::LogEntry, NodeError> {
        let not_found = || {
            NodeError::new(
                ErrorCode::NotFound,
                format!("no receipt with request id {request_id:?} in this log"),
            )
        };
        // A request id is a UUID; anything longer is not one, and is not looked up.
        if request_id.len() > 64 {
            return Err(not_found());
        }
        let (index, bytes) = self
            .log
            .receipt_entry(request_id)
            .await?
            .ok_or_else(not_found)?;
        shown(index, &bytes)
    }
}

fn shown(index: u64, bytes: &[u8]) -> Result<vouch_api::LogEntry, NodeError> {
    let decoded = LogEntry::decode(bytes).map_err(NodeError::internal)?;
    Ok(vouch_api::LogEntry {
        index,
        kind: crate::wire::entry_kind(decoded.kind()),
        leaf_hash: vouch_log::merkle::leaf_hash(bytes).to_string(),
        entry: String::from_utf8_lossy(bytes).into_owned(),
    })
}

#[derive(Debug, thiserror::Error)]
pub enum LogBootError {
    #[error("log key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("log: {0}")]
    Log(#[from] LogError),
    #[error("log storage: {0}")]
    Store(#[from] vouch_log::store::StoreError),
    #[error("log witness key {key:?}: {reason}")]
    Witness { key: String, reason: String },
}

/// Opens the log in the node's database, spawns its committer and timers, and appends any change
/// an earlier run stored but did not log (the outboxes: a crash between a change and its log
/// entry delays the entry, never loses it).
pub async fn boot(
    settings: &LogSettings,
    data_dir: &Path,
    store: &Store,
) -> Result<Arc<LogState>, LogBootError> {
    let key_path = settings
        .key_file
        .clone()
        .unwrap_or_else(|| data_dir.join("log.key"));
    let signer = load_or_create_key(&key_path, &settings.origin)?;
    let witnesses = settings
        .witnesses
        .iter()
        .map(|w| {
            WitnessKey::parse(&w.vkey).map_err(|e| LogBootError::Witness {
                key: w.vkey.chars().take(80).collect(),
                reason: e.to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let config = LogConfig {
        max_batch: settings.max_batch.max(1),
        checkpoint_every_entries: settings.checkpoint_every_entries,
        checkpoint_every_ms: settings.checkpoint_every_ms.max(1),
        witnesses: witnesses.clone(),
        ..LogConfig::default()
    };
    let vkey = signer.key().to_vkey();
    let origin = signer.key().origin().to_string();
    let log_store = LogBackend::open(store).await?;
    let shared = matches!(log_store, LogBackend::Postgres(_));
    let (log, committer) = Log::open(log_store, signer, config).await?;
    if shared {
        spawn_follower(log.clone());
    }
    // Supervised: after a panic the committer serves again, re-reading the tree from the store.
    let committer = Arc::new(tokio::sync::Mutex::new(committer));
    crate::supervise::spawn("log-committer", move || {
        let c = committer.clone();
        async move { c.lock().await.serve().await }
    });
    spawn_checkpoint_timer(
        log.clone(),
        Duration::from_millis(settings.checkpoint_every_ms.max(1)),
        settings
            .witnesses
            .iter()
            .zip(witnesses)
            .filter_map(|(s, k)| s.url.clone().map(|u| (k, u)))
            .collect(),
    );
    let state = Arc::new(LogState {
        log,
        vkey,
        origin,
        max_wait: Duration::from_millis(settings.max_proof_wait_ms),
        drain: tokio::sync::Mutex::new(()),
    });
    drain_outboxes(&state, store)
        .await
        .map_err(|e| LogBootError::Log(LogError::Inconsistent(e)))?;
    Ok(state)
}

/// On a log shared by a cluster: follows the other nodes' commits (`NOTIFY vouch_log`, and a
/// re-read every second in case a notification was lost), so this node's size and latest
/// checkpoint — what it serves and what proofs wait for — keep up with the whole log.
fn spawn_follower(log: NodeLog) {
    crate::supervise::spawn("log-follower", move || {
        let log = log.clone();
        async move {
            loop {
                let mut listener = match log.store().listen().await {
                    Ok(Some(l)) => l,
                    Ok(None) => return,
                    Err(e) => {
                        tracing::warn!("log follower: cannot listen: {e}; retrying in 1 s");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                loop {
                    let woke = tokio::time::timeout(Duration::from_secs(1), listener.try_recv());
                    let lost = matches!(woke.await, Ok(Err(_)));
                    if let Err(e) = log.refresh().await {
                        tracing::warn!("log follower: cannot refresh: {e}");
                    }
                    if lost {
                        break;
                    }
                }
            }
        }
    });
}

fn load_or_create_key(path: &Path, origin: &str) -> Result<LogSigner, LogBootError> {
    let err = |reason: String| LogBootError::Key {
        path: path.display().to_string(),
        reason,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let signer = parse_log_private_key(&text).map_err(|e| err(e.to_string()))?;
            if !origin.is_empty() && signer.key().origin() != origin {
                return Err(err(format!(
                    "the key is for log {:?} but [log] origin is {origin:?}; a log cannot be \
                     renamed (its checkpoints name it): restore the origin or start a new data dir",
                    signer.key().origin()
                )));
            }
            Ok(signer)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let origin = if origin.is_empty() {
                // A random name: two nodes never publish under one name by accident.
                let mut raw = [0u8; 8];
                rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut raw);
                format!("vouch-log/{}", hex::encode(raw))
            } else {
                origin.to_string()
            };
            let (skey, _) = generate_log_key(&origin).map_err(|e| err(e.to_string()))?;
            vouch_attest::signer::write_secret_file(path, format!("{skey}\n").as_bytes())
                .map_err(|e| err(e.to_string()))?;
            parse_log_private_key(&skey).map_err(|e| err(e.to_string()))
        }
        Err(e) => Err(err(e.to_string())),
    }
}

/// Signs a checkpoint every period when entries were added, then offers it to each witness.
/// Supervised: restarted after a panic (witness sizes are then re-learnt from scratch).
fn spawn_checkpoint_timer(log: NodeLog, period: Duration, witnesses: Vec<(WitnessKey, String)>) {
    let witnesses = Arc::new(witnesses);
    crate::supervise::spawn("log-checkpoint", move || {
        checkpoint_timer(log.clone(), period, witnesses.clone())
    });
}

async fn checkpoint_timer(
    log: NodeLog,
    period: Duration,
    witnesses: Arc<Vec<(WitnessKey, String)>>,
) {
    let client = vouch_pay::http::client_builder()
        .timeout(Duration::from_secs(10))
        .build()
        .ok();
    // Each witness's last known size for this log (0: unknown, send from scratch).
    let mut sizes = vec![0u64; witnesses.len()];
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_sent = None;
    loop {
        tick.tick().await;
        match log.publish_checkpoint().await {
            Ok(Some(cp)) if Some(cp.size) != last_sent => {
                if let Some(c) = &client {
                    for (i, (key, url)) in witnesses.iter().enumerate() {
                        sizes[i] = push_to_witness(&log, c, key, url, sizes[i]).await;
                    }
                }
                last_sent = Some(cp.size);
            }
            Ok(_) => {}
            // This task holds a log handle, so the committer never ends while it runs: `Closed`
            // means the committer's batch was cut short, and the committer comes back. Retry
            // on the next tick rather than stop publishing for good.
            Err(e) => tracing::warn!("log: publishing a checkpoint failed: {e}"),
        }
    }
}

/// One `add-checkpoint` exchange (retrying once from the witness's size after a 409). Returns
/// the size the witness is now known to hold.
async fn push_to_witness(
    log: &NodeLog,
    client: &reqwest::Client,
    key: &WitnessKey,
    url: &str,
    mut old: u64,
) -> u64 {
    for _ in 0..2 {
        let req = match log.witness_request(old).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(
                    witness = key.name(),
                    "log: cannot build add-checkpoint: {e}"
                );
                return old;
            }
        };
        let resp = client
            .post(format!("{}/add-checkpoint", url.trim_end_matches('/')))
            .body(req.to_body())
            .send()
            .await;
        let (status, body) = match resp {
            Ok(r) => {
                let s = r.status().as_u16();
                (s, r.bytes().await.unwrap_or_default())
            }
            Err(e) => {
                tracing::warn!(witness = key.name(), "log: witness unreachable: {e}");
                return old;
            }
        };
        let size = vouch_log::checkpoint::SignedNote::parse(&req.checkpoint)
            .ok()
            .and_then(|n| vouch_log::Checkpoint::parse_text(&n.text).ok())
            .map_or(old, |c| c.size);
        match parse_add_checkpoint_response(key, &req.checkpoint, status, &body) {
            Ok(cosig) => {
                if let Err(e) = log.add_cosignature(size, &cosig.to_line()).await {
                    tracing::warn!(witness = key.name(), "log: storing cosignature: {e}");
                }
                return size;
            }
            Err(vouch_log::witness::WitnessClientError::Conflict { witness_size, .. }) => {
                old = witness_size;
            }
            Err(e) => {
                tracing::warn!("log: {e}");
                return old;
            }
        }
    }
    old
}

/// Appends an inference receipt (its canonical bytes) and returns once it is durable, with the
/// bundle's `log` evidence: the index alone, or (`with_proof`) the inclusion proof under the
/// covering checkpoint.
pub async fn log_receipt(
    st: &LogState,
    canonical_receipt: &[u8],
    request_id: &str,
    with_proof: bool,
) -> Result<LogEvidence, crate::error::NodeError> {
    let started = std::time::Instant::now();
    let a = st
        .log
        .append_receipt_canonical(canonical_receipt, request_id)
        .await?;
    metrics::histogram!("vouch_log_append_seconds").record(started.elapsed().as_secs_f64());
    if !with_proof {
        return Ok(LogEvidence::pending(a.index));
    }
    // The entry is durable either way; a proof that is not ready in time is fetched later
    // (`vouch log prove`) rather than failing a request whose receipt is already logged.
    Ok(wait_evidence(st, a.index).await.unwrap_or_else(|e| {
        tracing::warn!("log: no proof for entry {} in time: {e}", a.index);
        LogEvidence::pending(a.index)
    }))
}

/// Appends a chat receipt; the answer waits for this durable entry (proof fetched later).
pub async fn log_chat_receipt(
    st: &LogState,
    receipt: &vouch_core::chat::ChatReceipt,
) -> Result<LogEvidence, crate::error::NodeError> {
    let a = st.log.append_chat_receipt(receipt).await?;
    Ok(LogEvidence::pending(a.index))
}

/// The inclusion proof for `index`, waiting (bounded) for a checkpoint that covers it.
pub async fn wait_evidence(st: &LogState, index: u64) -> Result<LogEvidence, LogError> {
    match tokio::time::timeout(st.max_wait, st.log.evidence(index)).await {
        Ok(r) => r,
        Err(_) => Err(LogError::NotYetCheckpointed {
            index,
            covered: st.log.latest_checkpoint().map_or(0, |c| c.size),
        }),
    }
}

/// Logs a newly stored model.
pub async fn append_registered(
    st: &LogState,
    model: ModelDigest,
    size: u64,
) -> Result<Appended, LogError> {
    st.log
        .append(&LogEntry::ModelRegistered(ModelRegistered {
            model,
            size,
            format: "onnx".into(),
            at: vouch_store::now_rfc3339(),
        }))
        .await
}

/// Appends every pointer move, policy and configuration change not yet in the log, oldest
/// first, and records each one's index. Called after each change and at boot (a crash between a
/// change and its entry delays the entry, never loses it). Configurations are logged whole: what
/// a model was told is public.
pub async fn drain_outboxes(st: &LogState, store: &Store) -> Result<u64, String> {
    let _one = st.drain.lock().await;
    // And one node of a cluster at a time: two nodes draining at once would log a change twice.
    let cluster = store.lock_outboxes().await.map_err(|e| e.to_string())?;
    let drained = drain_locked(st, store).await;
    cluster.release().await;
    drained
}

async fn drain_locked(st: &LogState, store: &Store) -> Result<u64, String> {
    let mut logged = 0;
    for outbox in LogOutbox::ALL {
        loop {
            let batch = pending(store, outbox).await?;
            if batch.is_empty() {
                break;
            }
            for (seq, entry) in batch {
                let a = st.log.append(&entry).await.map_err(|e| e.to_string())?;
                store
                    .mark_logged(outbox, seq, a.index as i64)
                    .await
                    .map_err(|e| e.to_string())?;
                logged += 1;
            }
        }
    }
    Ok(logged)
}

/// Up to 256 unlogged rows of `outbox` as (seq, entry).
async fn pending(store: &Store, outbox: LogOutbox) -> Result<Vec<(i64, LogEntry)>, String> {
    let mut out = Vec::new();
    match outbox {
        LogOutbox::Pointer => {
            for c in store
                .unlogged_pointer_changes(256)
                .await
                .map_err(|e| e.to_string())?
            {
                out.push((
                    c.seq,
                    LogEntry::PointerMoved(PointerMoved {
                        name: c.name,
                        version: c.version,
                        from: c.from,
                        to: Some(c.to),
                        at: c.changed_at,
                    }),
                ));
            }
        }
        LogOutbox::Policy => {
            for c in store
                .unlogged_policy_changes(256)
                .await
                .map_err(|e| e.to_string())?
            {
                let model = policy_model(store, &c.subject).await?;
                let policy = json!({
                    "subject": c.subject,
                    "min_tier": c.min_tier.map(|t| t.as_str()),
                    "previous": c.previous.map(|t| t.as_str()),
                    "seq": c.seq,
                });
                out.push((
                    c.seq,
                    LogEntry::PolicyChanged(PolicyChanged {
                        model,
                        policy,
                        at: c.changed_at,
                    }),
                ));
            }
        }
        LogOutbox::Config => {
            for c in store
                .unlogged_config_changes(256)
                .await
                .map_err(|e| e.to_string())?
            {
                out.push((
                    c.seq,
                    LogEntry::ConfigChanged(ConfigChanged {
                        model: c.model,
                        config_digest: c.config_digest,
                        config: Some(c.config),
                        at: c.changed_at,
                    }),
                ));
            }
        }
    }
    Ok(out)
}

/// The digest a policy subject names: itself, or what the name's default pointer points at.
async fn policy_model(store: &Store, subject: &str) -> Result<ModelDigest, String> {
    if let Ok(d) = subject.parse::<ModelDigest>() {
        return Ok(d);
    }
    store
        .resolve_name(subject, None)
        .await
        .map_err(|e| e.to_string())?
        .map(|p| p.digest)
        .ok_or_else(|| format!("policy subject {subject:?} names no model"))
}
