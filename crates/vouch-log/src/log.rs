//! The running log: a group-commit appender, checkpoint publishing, and the read side (proofs,
//! tiles, entries, cosignatures) over a [`LogStore`].
//!
//! Appends go through one [`Committer`] task that the caller spawns on its runtime. Each turn it
//! takes every request that queued while the previous commit was in flight (up to
//! `max_batch`), extends the in-memory [`Frontier`], and writes entries, tree hashes and — when
//! due — a signed checkpoint in one transaction. Only after that commit returns does any append
//! in the batch get its answer, so an acknowledged entry is durable. Many appends share one
//! fsync, which is what makes tens of thousands of durable appends per second possible.
//!
//! On a store several nodes share ([`crate::store::SharedWriter`]) each batch is assigned its
//! indexes, and any due checkpoint signed, only inside a transaction holding the store's writer
//! lock, after catching up with what other nodes committed; [`Log::refresh`] follows their
//! commits between batches.
//!
//! Nothing here depends on a particular async runtime: channels are `futures` channels, and
//! time-based checkpoints are driven by the caller calling [`Log::publish_checkpoint`] on a timer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_channel::{mpsc, oneshot};
use futures_util::StreamExt;
use vouch_core::{ChatReceipt, Receipt};

use crate::checkpoint::{LogSigner, NoteSignature, verify_checkpoint};
use crate::cosign::{CosignError, WitnessKey, WitnessedBy};
use crate::entry::{EntryError, EntryKind, LogEntry, receipt_entry_bytes};
use crate::evidence::LogEvidence;
use crate::history::{PointerChange, pointer_history};
use crate::merkle::{
    Frontier, Hash, ProofError, consistency_plan, inclusion_plan, leaf_hash, stored_hash_index,
};
use crate::proof::TlogProof;
use crate::store::{CommitBatch, EntryRow, LockedLog, LogStore, StoreError, StoredCheckpoint};
use crate::tiles::{Tile, TileError, TileKind, encode_entry_bundle, encode_hash_tile};
use crate::witness::AddCheckpoint;

/// How many times the committer yields to the runtime to gather more appends before it
/// commits a batch (see [`Committer::serve`]).
const GATHER_YIELDS: usize = 2;

/// Tuning and trust settings of a running log.
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// Most appends one transaction may carry.
    pub max_batch: usize,
    /// Publish a checkpoint once this many entries are not yet covered by one (0 = timer only).
    pub checkpoint_every_entries: u64,
    /// How often the caller should call [`Log::publish_checkpoint`]; the log itself keeps no
    /// timer. Bounds how long an entry waits for a covering checkpoint.
    pub checkpoint_every_ms: u64,
    /// Witnesses whose cosignatures this log accepts and serves.
    pub witnesses: Vec<WitnessKey>,
    /// Most entries `history` returns.
    pub history_limit: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            max_batch: 8192,
            checkpoint_every_entries: 4096,
            checkpoint_every_ms: 250,
            witnesses: Vec::new(),
            history_limit: 10_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error(transparent)]
    Entry(#[from] EntryError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Proof(#[from] ProofError),
    #[error(transparent)]
    Tile(#[from] TileError),
    #[error(transparent)]
    Cosignature(#[from] CosignError),
    #[error("the log committer is not running (was it spawned?)")]
    Closed,
    #[error("tree size {size} is larger than the log ({committed} entries)")]
    BeyondLog { size: u64, committed: u64 },
    #[error("no checkpoint covers entry {index} yet (latest covers {covered}); retry shortly")]
    NotYetCheckpointed { index: u64, covered: u64 },
    #[error("no checkpoint of size {0} was published")]
    NoSuchCheckpoint(u64),
    #[error("signature line is not by a witness this log trusts")]
    UnknownWitness,
    #[error("stored checkpoint does not match the stored tree: {0}")]
    Inconsistent(String),
}

/// Where an append landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    pub index: u64,
    pub leaf_hash: Hash,
}

/// A published checkpoint and the cosignatures gathered for it so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointView {
    pub size: u64,
    pub root: Hash,
    /// The note as signed by the log alone (what witnesses are sent).
    pub note: Arc<Vec<u8>>,
    /// Verified cosignature lines, each ending in a newline.
    pub cosignatures: Vec<String>,
    pub created_ms: u64,
}

impl CheckpointView {
    /// The note with cosignatures appended: what `GET /checkpoint` serves.
    pub fn signed_note(&self) -> Vec<u8> {
        let mut out = self.note.as_ref().clone();
        for l in &self.cosignatures {
            out.extend_from_slice(l.as_bytes());
        }
        out
    }
}

enum Request {
    Append {
        row: EntryRow,
        leaf: Hash,
        reply: oneshot::Sender<Result<Appended, LogError>>,
    },
    Publish {
        reply: oneshot::Sender<Result<Option<CheckpointView>, LogError>>,
    },
}

struct CpState {
    latest: Option<CheckpointView>,
    waiters: Vec<(u64, oneshot::Sender<CheckpointView>)>,
}

struct Shared<S> {
    store: S,
    signer: LogSigner,
    config: LogConfig,
    committed: AtomicU64,
    cp: Mutex<CpState>,
}

impl<S> Shared<S> {
    fn cp(&self) -> std::sync::MutexGuard<'_, CpState> {
        // Every critical section below only swaps whole values, so a poisoned lock is fine.
        self.cp.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish(&self, view: CheckpointView) {
        let mut st = self.cp();
        // On a shared log another node's checkpoint can be adopted late; never go back.
        if st.latest.as_ref().is_some_and(|l| l.size > view.size) {
            return;
        }
        let mut keep = Vec::new();
        for (need, tx) in st.waiters.drain(..) {
            if need <= view.size {
                let _ = tx.send(view.clone());
            } else if !tx.is_canceled() {
                keep.push((need, tx));
            }
        }
        st.waiters = keep;
        st.latest = Some(view);
    }
}

/// Handle to a running log. Cheap to clone; every clone talks to the same committer.
pub struct Log<S> {
    shared: Arc<Shared<S>>,
    tx: mpsc::UnboundedSender<Request>,
}

impl<S> Clone for Log<S> {
    fn clone(&self) -> Self {
        Log {
            shared: self.shared.clone(),
            tx: self.tx.clone(),
        }
    }
}

/// The append loop. Spawn [`Committer::run`] on the runtime; it ends when every [`Log`] handle
/// is dropped.
pub struct Committer<S> {
    shared: Arc<Shared<S>>,
    rx: mpsc::UnboundedReceiver<Request>,
    frontier: Frontier,
    last_cp_size: u64,
    needs_resync: bool,
    /// Set while a batch is being committed: still set when [`Committer::serve`] is entered
    /// again, it means the last batch was cut short (a panic) and its outcome is unknown.
    in_batch: bool,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Publishes a checkpoint another node signed and stored, with its cosignatures so far.
async fn adopt<S: LogStore>(shared: &Shared<S>, cp: StoredCheckpoint) -> Result<(), LogError> {
    let cosignatures = shared.store.cosignatures(cp.size).await?;
    shared.publish(CheckpointView {
        size: cp.size,
        root: cp.root,
        note: Arc::new(cp.note),
        cosignatures,
        created_ms: cp.created_ms,
    });
    Ok(())
}

async fn load_frontier<S: LogStore>(store: &S, size: u64) -> Result<Frontier, LogError> {
    let idx = Frontier::stored_indexes(size);
    let roots = store.read_hashes(&idx).await?;
    Frontier::from_subtree_roots(size, roots)
        .map_err(|e| LogError::Store(StoreError::Corrupt(e.to_string())))
}

impl<S: LogStore> Log<S> {
    /// Opens the log over `store`: loads the tree's frontier, checks the latest stored
    /// checkpoint against the stored hashes, and signs a fresh checkpoint if none covers the
    /// stored entries (after a crash between commit and checkpoint, or on a new log, where it
    /// publishes the size-0 checkpoint). Returns the handle and the committer to spawn.
    pub async fn open(
        store: S,
        signer: LogSigner,
        config: LogConfig,
    ) -> Result<(Log<S>, Committer<S>), LogError> {
        // The checkpoint first: on a shared store other nodes may commit meanwhile, and a size
        // read after it is never smaller than it.
        let mut latest = store.latest_checkpoint().await?;
        let size = store.size().await?;
        let frontier = load_frontier(&store, size).await?;
        if let Some(cp) = &latest {
            if cp.size > size {
                return Err(LogError::Inconsistent(format!(
                    "checkpoint of size {} but only {size} entries stored",
                    cp.size
                )));
            }
            let root = if cp.size == size {
                frontier.root()
            } else {
                load_frontier(&store, cp.size).await?.root()
            };
            if root != cp.root {
                return Err(LogError::Inconsistent(format!(
                    "checkpoint {} has root {}, stored hashes give {root}",
                    cp.size, cp.root
                )));
            }
        }
        // Sign anew when nothing covers the stored entries, or the key changed since.
        let stale = match &latest {
            None => true,
            Some(cp) => cp.size < size || verify_checkpoint(&cp.note, signer.key()).is_err(),
        };
        if stale {
            let cp = StoredCheckpoint {
                size,
                root: frontier.root(),
                note: signer.sign(size, frontier.root()),
                created_ms: now_ms(),
            };
            store.put_checkpoint(&cp).await?;
            latest = Some(cp);
        }
        let (cosigs, last_cp_size, view) = match latest {
            Some(cp) => {
                let cosigs = store.cosignatures(cp.size).await?;
                let view = CheckpointView {
                    size: cp.size,
                    root: cp.root,
                    note: Arc::new(cp.note),
                    cosignatures: Vec::new(),
                    created_ms: cp.created_ms,
                };
                (cosigs, view.size, Some(view))
            }
            None => (Vec::new(), 0, None),
        };
        let view = view.map(|mut v| {
            v.cosignatures = cosigs;
            v
        });
        let shared = Arc::new(Shared {
            store,
            signer,
            config,
            committed: AtomicU64::new(size),
            cp: Mutex::new(CpState {
                latest: view,
                waiters: Vec::new(),
            }),
        });
        let (tx, rx) = mpsc::unbounded();
        let committer = Committer {
            shared: shared.clone(),
            rx,
            frontier,
            last_cp_size,
            needs_resync: false,
            in_batch: false,
        };
        Ok((Log { shared, tx }, committer))
    }

    pub fn signer(&self) -> &LogSigner {
        &self.shared.signer
    }

    pub fn config(&self) -> &LogConfig {
        &self.shared.config
    }

    pub fn store(&self) -> &S {
        &self.shared.store
    }

    /// Entries committed so far.
    pub fn size(&self) -> u64 {
        self.shared.committed.load(Ordering::Acquire)
    }

    /// Appends an entry; returns once it is durably committed. If this future is dropped
    /// early, the entry may or may not be in the log, but the log stays consistent.
    pub async fn append(&self, entry: &LogEntry) -> Result<Appended, LogError> {
        let data = entry.encode()?;
        self.append_row(EntryRow {
            kind: entry.kind(),
            name: entry.lookup_key(),
            data,
        })
        .await
    }

    /// Appends a receipt entry (the hot path: no clone of the receipt).
    pub async fn append_receipt(&self, receipt: &Receipt) -> Result<Appended, LogError> {
        crate::entry::check_time(&receipt.issued_at)?;
        let data = receipt_entry_bytes(receipt);
        self.append_row(EntryRow {
            kind: EntryKind::Receipt,
            name: Some(crate::entry::request_key(&receipt.request_id)),
            data,
        })
        .await
    }

    /// Appends a chat receipt's entry (`chat-receipt`).
    pub async fn append_chat_receipt(&self, receipt: &ChatReceipt) -> Result<Appended, LogError> {
        crate::entry::check_time(&receipt.issued_at)?;
        let data = crate::entry::chat_receipt_entry_bytes(receipt);
        self.append_row(EntryRow {
            kind: EntryKind::ChatReceipt,
            name: Some(crate::entry::request_key(&receipt.request_id)),
            data,
        })
        .await
    }

    /// Appends a receipt entry from the receipt's canonical bytes, which the server has already
    /// computed to sign it: skips a second canonicalisation (the costliest step of an append).
    /// `canonical` must be `Receipt::canonical_bytes()` of the receipt with `request_id`;
    /// anything else makes an entry monitors report as malformed.
    pub async fn append_receipt_canonical(
        &self,
        canonical: &[u8],
        request_id: &str,
    ) -> Result<Appended, LogError> {
        let data = crate::entry::receipt_entry_from_canonical(canonical);
        self.append_row(EntryRow {
            kind: EntryKind::Receipt,
            name: Some(crate::entry::request_key(request_id)),
            data,
        })
        .await
    }

    /// Every append ends here, so the entry size bound is checked once for all kinds.
    async fn append_row(&self, row: EntryRow) -> Result<Appended, LogError> {
        if row.data.len() > crate::entry::MAX_ENTRY_BYTES {
            return Err(EntryError::TooLarge {
                len: row.data.len(),
            }
            .into());
        }
        // Hash here, on the caller's task, so hashing runs in parallel across requests.
        let leaf = leaf_hash(&row.data);
        let (reply, rx) = oneshot::channel();
        self.tx
            .unbounded_send(Request::Append { row, leaf, reply })
            .map_err(|_| LogError::Closed)?;
        rx.await.map_err(|_| LogError::Closed)?
    }

    /// Signs and stores a checkpoint for everything committed, if it is not covered yet. Call
    /// every `checkpoint_every_ms`. Returns the latest checkpoint.
    pub async fn publish_checkpoint(&self) -> Result<Option<CheckpointView>, LogError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .unbounded_send(Request::Publish { reply })
            .map_err(|_| LogError::Closed)?;
        rx.await.map_err(|_| LogError::Closed)?
    }

    pub fn latest_checkpoint(&self) -> Option<CheckpointView> {
        self.shared.cp().latest.clone()
    }

    /// Catches up with what other nodes committed to a shared store: the size and the latest
    /// checkpoint (waking its waiters). A node calls it when the store signals a commit (and on
    /// a timer as a fallback); on a store with one writer it finds nothing new.
    /// Cosignatures another node stored for the latest checkpoint are taken up too (in the
    /// store's order), so every node serves the same checkpoint bytes.
    pub async fn refresh(&self) -> Result<Option<CheckpointView>, LogError> {
        let size = self.shared.store.size().await?;
        self.shared.committed.fetch_max(size, Ordering::AcqRel);
        let Some(cp) = self.shared.store.latest_checkpoint().await? else {
            return Ok(self.latest_checkpoint());
        };
        match self.latest_checkpoint() {
            Some(l) if l.size == cp.size => {
                let cosignatures = self.shared.store.cosignatures(cp.size).await?;
                let mut st = self.shared.cp();
                if let Some(latest) = &mut st.latest
                    && latest.size == cp.size
                {
                    latest.cosignatures = cosignatures;
                }
            }
            Some(l) if l.size > cp.size => {}
            _ => adopt(&self.shared, cp).await?,
        }
        Ok(self.latest_checkpoint())
    }

    /// Waits until a checkpoint covering entry `index` is published (the caller bounds the wait
    /// with its runtime's timeout).
    pub async fn wait_for_checkpoint(&self, index: u64) -> Result<CheckpointView, LogError> {
        let need = index.saturating_add(1);
        let rx = {
            let mut st = self.shared.cp();
            if let Some(cp) = &st.latest
                && cp.size >= need
            {
                return Ok(cp.clone());
            }
            let (tx, rx) = oneshot::channel();
            st.waiters.push((need, tx));
            rx
        };
        rx.await.map_err(|_| LogError::Closed)
    }

    /// A published checkpoint of exactly `size`, with its cosignatures.
    pub async fn checkpoint_at(&self, size: u64) -> Result<CheckpointView, LogError> {
        if let Some(cp) = self.latest_checkpoint()
            && cp.size == size
        {
            return Ok(cp);
        }
        let cp = self
            .shared
            .store
            .checkpoint_at(size)
            .await?
            .ok_or(LogError::NoSuchCheckpoint(size))?;
        let cosignatures = self.shared.store.cosignatures(size).await?;
        Ok(CheckpointView {
            size,
            root: cp.root,
            note: Arc::new(cp.note),
            cosignatures,
            created_ms: cp.created_ms,
        })
    }

    fn check_size(&self, size: u64) -> Result<(), LogError> {
        let committed = self.size();
        if size > committed {
            return Err(LogError::BeyondLog { size, committed });
        }
        Ok(())
    }

    /// Canonical bytes of entry `index`.
    /// Committed entries `[start, end)`, `end` cut at the log's size; the caller bounds the span.
    pub async fn entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, LogError> {
        let end = end.min(self.size());
        if start >= end {
            return Ok(Vec::new());
        }
        Ok(self.shared.store.read_entries(start, end).await?)
    }

    pub async fn entry(&self, index: u64) -> Result<Vec<u8>, LogError> {
        let committed = self.size();
        if index >= committed {
            return Err(ProofError::IndexOutOfRange {
                index,
                size: committed,
            }
            .into());
        }
        let mut v = self.shared.store.read_entries(index, index + 1).await?;
        v.pop()
            .ok_or_else(|| StoreError::Corrupt(format!("entry {index} missing")).into())
    }

    /// RFC 6962 inclusion proof of entry `index` in the tree of `size` (O(log n) hash reads).
    pub async fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, LogError> {
        self.check_size(size)?;
        let plan = inclusion_plan(index, size)?;
        let hashes = self.shared.store.read_hashes(&plan.indexes).await?;
        plan.assemble(&hashes)
            .map_err(|e| StoreError::Corrupt(e.to_string()).into())
    }

    /// RFC 6962 consistency proof from the tree of `old` to the tree of `new` entries.
    pub async fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, LogError> {
        self.check_size(new)?;
        let plan = consistency_plan(old, new)?;
        let hashes = self.shared.store.read_hashes(&plan.indexes).await?;
        plan.assemble(&hashes)
            .map_err(|e| StoreError::Corrupt(e.to_string()).into())
    }

    /// The bytes of a tlog-tiles resource (hash tile or entry bundle).
    pub async fn tile(&self, tile: Tile) -> Result<Vec<u8>, LogError> {
        let size = self.size();
        match tile.kind {
            TileKind::Hashes { .. } => {
                let idx = tile.hash_indexes(size)?;
                Ok(encode_hash_tile(
                    &self.shared.store.read_hashes(&idx).await?,
                ))
            }
            TileKind::Entries => {
                let (start, end) = tile.entry_range(size)?;
                let entries = self.shared.store.read_entries(start, end).await?;
                Ok(encode_entry_bundle(entries.iter().map(Vec::as_slice))?)
            }
        }
    }

    /// The tlog-proof@v1 for entry `index` under the latest checkpoint, with cosignatures.
    pub async fn proof_for(&self, index: u64) -> Result<TlogProof, LogError> {
        let cp = self
            .latest_checkpoint()
            .ok_or(LogError::NotYetCheckpointed { index, covered: 0 })?;
        if index >= cp.size {
            return Err(LogError::NotYetCheckpointed {
                index,
                covered: cp.size,
            });
        }
        let hashes = self.inclusion_proof(index, cp.size).await?;
        Ok(TlogProof {
            extra: None,
            index,
            hashes,
            checkpoint: cp.signed_note(),
        })
    }

    /// `Bundle.evidence["log"]` for entry `index`; waits for a covering checkpoint first.
    pub async fn evidence(&self, index: u64) -> Result<LogEvidence, LogError> {
        self.wait_for_checkpoint(index).await?;
        Ok(LogEvidence::new(&self.proof_for(index).await?))
    }

    /// The receipt (or chat receipt) entry of `request_id`: its index and bytes. Receipts
    /// logged before lookup keys were recorded (2026-12) are not found.
    pub async fn receipt_entry(
        &self,
        request_id: &str,
    ) -> Result<Option<(u64, Vec<u8>)>, LogError> {
        let key = crate::entry::request_key(request_id);
        let rows = self.shared.store.entries_by_name(&key, 1).await?;
        Ok(rows.into_iter().next())
    }

    /// Logged pointer changes of `name`, oldest first.
    pub async fn history(&self, name: &str) -> Result<Vec<PointerChange>, LogError> {
        let rows = self
            .shared
            .store
            .entries_by_name(name, self.shared.config.history_limit)
            .await?;
        pointer_history(rows.iter().map(|(i, d)| (*i, d.as_slice())), name)
            .map_err(|(index, e)| LogError::Inconsistent(format!("stored entry {index}: {e}")))
    }

    /// The `add-checkpoint` request for the latest checkpoint, for a witness last at `old_size`.
    pub async fn witness_request(&self, old_size: u64) -> Result<AddCheckpoint, LogError> {
        let cp = self
            .latest_checkpoint()
            .ok_or(LogError::NoSuchCheckpoint(0))?;
        if old_size > cp.size {
            return Err(ProofError::SizeDecreased {
                old: old_size,
                new: cp.size,
            }
            .into());
        }
        let proof = if old_size == 0 || old_size == cp.size {
            Vec::new()
        } else {
            self.consistency_proof(old_size, cp.size).await?
        };
        Ok(AddCheckpoint {
            old_size,
            proof,
            checkpoint: cp.note.as_ref().clone(),
        })
    }

    /// Accepts a cosignature line for the checkpoint of `size` from a configured witness,
    /// verifying it first; it is then served with that checkpoint.
    pub async fn add_cosignature(&self, size: u64, line: &str) -> Result<WitnessedBy, LogError> {
        let sig =
            NoteSignature::parse_line(line.trim_end_matches('\n')).map_err(CosignError::from)?;
        let witness = self
            .shared
            .config
            .witnesses
            .iter()
            .find(|w| w.claims(&sig))
            .ok_or(LogError::UnknownWitness)?;
        let cp = self.checkpoint_at(size).await?;
        let text = crate::checkpoint::SignedNote::parse(&cp.note)
            .map_err(CosignError::from)?
            .text;
        let c = witness.verify(&text, &sig)?;
        let canonical = c.to_line();
        self.shared
            .store
            .put_cosignature(size, witness.name(), witness.key_id(), &canonical)
            .await?;
        let mut st = self.shared.cp();
        if let Some(latest) = &mut st.latest
            && latest.size == size
        {
            latest.cosignatures.retain(|l| {
                NoteSignature::parse_line(l.trim_end_matches('\n'))
                    .map_or(true, |s| !witness.claims(&s))
            });
            latest.cosignatures.push(canonical);
        }
        Ok(WitnessedBy {
            witness: witness.name().to_string(),
            timestamp: c.timestamp,
        })
    }
}

/// Answers every request of a batch that could not be committed with `e`.
fn fail_all(batch: Vec<Request>, e: &LogError) {
    let msg = e.to_string();
    for r in batch {
        match r {
            Request::Append { reply, .. } => {
                let _ = reply.send(Err(StoreError::Backend(msg.clone()).into()));
            }
            Request::Publish { reply } => {
                let _ = reply.send(Err(StoreError::Backend(msg.clone()).into()));
            }
        }
    }
}

impl<S: LogStore> Committer<S> {
    /// Runs until every `Log` handle is dropped.
    pub async fn run(mut self) {
        self.serve().await
    }

    /// As [`run`](Self::run), borrowing the committer, so that a supervisor can call it again
    /// after the future panicked: appends queued meanwhile are kept, the interrupted batch's
    /// callers see the log as closed, and the tree is re-read from the store before the next
    /// commit (the interrupted one may or may not have reached it).
    pub async fn serve(&mut self) {
        if self.in_batch {
            self.needs_resync = true;
            self.in_batch = false;
        }
        let max = self.shared.config.max_batch.max(1);
        while let Some(first) = self.rx.next().await {
            let mut batch = vec![first];
            // A commit's cost is mostly fixed (a transaction and an fsync), so each one should
            // carry as many entries as are about to arrive: before committing, yield to the
            // runtime a few times, letting requests that are finishing on other tasks append
            // too. Yields cost microseconds; a timer (millisecond resolution) would add latency.
            for round in 0..=GATHER_YIELDS {
                if round > 0 {
                    tokio::task::yield_now().await;
                }
                while batch.len() < max {
                    match self.rx.try_recv() {
                        Ok(r) => batch.push(r),
                        Err(_) => break,
                    }
                }
                if batch.len() >= max {
                    break;
                }
            }
            self.in_batch = true;
            self.process(batch).await;
            self.in_batch = false;
        }
    }

    /// Re-reads size, frontier and latest checkpoint after a failed commit, whose outcome is
    /// unknown (it may have reached the disk before the error).
    async fn resync(&mut self) -> Result<(), LogError> {
        let store = &self.shared.store;
        let size = store.size().await?;
        self.frontier = load_frontier(store, size).await?;
        self.last_cp_size = store.latest_checkpoint().await?.map_or(0, |c| c.size);
        self.shared.committed.fetch_max(size, Ordering::AcqRel);
        self.needs_resync = false;
        Ok(())
    }

    /// Takes the shared store's writer lock and brings the frontier and the checkpoint count up
    /// to what is stored under it: other nodes may have appended since this one last held it.
    async fn lock_shared(&mut self) -> Result<Option<Box<dyn LockedLog>>, LogError> {
        let shared = self.shared.clone();
        let Some(writer) = shared.store.shared_writer() else {
            return Ok(None);
        };
        let mut locked = writer.lock().await?;
        let size = locked.size();
        if size < self.frontier.size() && !self.needs_resync {
            return Err(LogError::Inconsistent(format!(
                "the shared log has {size} entries, this node committed {}",
                self.frontier.size()
            )));
        }
        if size != self.frontier.size() || self.needs_resync {
            let idx = Frontier::stored_indexes(size);
            let roots = locked.read_hashes(&idx).await?;
            self.frontier = Frontier::from_subtree_roots(size, roots)
                .map_err(|e| LogError::Store(StoreError::Corrupt(e.to_string())))?;
            self.shared.committed.fetch_max(size, Ordering::AcqRel);
        }
        self.last_cp_size = locked.checkpoint_size();
        self.needs_resync = false;
        Ok(Some(locked))
    }

    async fn process(&mut self, batch: Vec<Request>) {
        let locked = match self.lock_shared().await {
            Ok(l) => l,
            Err(e) => return fail_all(batch, &e),
        };
        if locked.is_none()
            && self.needs_resync
            && let Err(e) = self.resync().await
        {
            return fail_all(batch, &e);
        }
        let mut frontier = self.frontier.clone();
        let first_index = frontier.size();
        let mut entries = Vec::new();
        let mut hashes = Vec::new();
        let mut acks = Vec::new();
        let mut publishes = Vec::new();
        for r in batch {
            match r {
                Request::Append { row, leaf, reply } => {
                    let index = frontier.size();
                    hashes.extend(frontier.push(leaf));
                    entries.push(row);
                    acks.push((
                        reply,
                        Appended {
                            index,
                            leaf_hash: leaf,
                        },
                    ));
                }
                Request::Publish { reply } => publishes.push(reply),
            }
        }
        let size = frontier.size();
        let every = self.shared.config.checkpoint_every_entries;
        let due = size > self.last_cp_size
            && (!publishes.is_empty() || (every > 0 && size - self.last_cp_size >= every));
        let checkpoint = due.then(|| {
            let root = frontier.root();
            StoredCheckpoint {
                size,
                root,
                note: self.shared.signer.sign(size, root),
                created_ms: now_ms(),
            }
        });
        let stored_cp_size = self.last_cp_size;
        let result = if let Some(locked) = locked {
            let b = CommitBatch {
                first_index,
                entries,
                first_hash_index: stored_hash_index(0, first_index),
                hashes,
                checkpoint: checkpoint.clone(),
            };
            locked.commit(&b).await
        } else if entries.is_empty() {
            match &checkpoint {
                Some(cp) => self.shared.store.put_checkpoint(cp).await,
                None => Ok(()),
            }
        } else {
            let b = CommitBatch {
                first_index,
                entries,
                first_hash_index: stored_hash_index(0, first_index),
                hashes,
                checkpoint: checkpoint.clone(),
            };
            self.shared.store.commit(&b).await
        };
        match result {
            Ok(()) => {
                self.frontier = frontier;
                self.shared.committed.fetch_max(size, Ordering::AcqRel);
                // Another node published a checkpoint this one has not served yet.
                if checkpoint.is_none()
                    && self
                        .shared
                        .cp()
                        .latest
                        .as_ref()
                        .is_none_or(|l| l.size < stored_cp_size)
                    && let Ok(Some(cp)) = self.shared.store.checkpoint_at(stored_cp_size).await
                {
                    let _ = adopt(&self.shared, cp).await;
                }
                if let Some(cp) = checkpoint {
                    self.last_cp_size = cp.size;
                    self.shared.publish(CheckpointView {
                        size: cp.size,
                        root: cp.root,
                        note: Arc::new(cp.note),
                        cosignatures: Vec::new(),
                        created_ms: cp.created_ms,
                    });
                }
                for (reply, a) in acks {
                    let _ = reply.send(Ok(a));
                }
                let latest = self.shared.cp().latest.clone();
                for reply in publishes {
                    let _ = reply.send(Ok(latest.clone()));
                }
            }
            Err(e) => {
                self.needs_resync = true;
                for (reply, _) in acks {
                    let _ = reply.send(Err(e.clone().into()));
                }
                for reply in publishes {
                    let _ = reply.send(Err(e.clone().into()));
                }
            }
        }
    }
}
