//! The storage the log needs, as a trait, and an in-memory implementation for tests.
//!
//! The durable implementations (SQLite, and PostgreSQL shared by a cluster's nodes through the
//! [`SharedWriter`] capability) live in `vouch-store`; this crate knows no SQL. Futures are `Send` so a multi-threaded runtime can drive them; the log never
//! spawns anything itself.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;

/// The boxed future [`SharedWriter`] and [`LockedLog`] return (object-safe async).
pub use futures_util::future::BoxFuture;

use crate::entry::EntryKind;
use crate::merkle::Hash;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The database failed (I/O, lock, connection). The commit may or may not have happened.
    #[error("log storage failed: {0}")]
    Backend(String),
    /// A write did not start at the stored size: another writer, or a stale in-memory state.
    #[error("log storage conflict: {0}")]
    Conflict(String),
    /// Stored data contradicts itself (missing hashes, wrong counts).
    #[error("log storage is inconsistent: {0}")]
    Corrupt(String),
}

/// One entry row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryRow {
    pub kind: EntryKind,
    /// The entry's lookup key: a pointer entry's model name (history), a receipt's
    /// `request:<id>` (lookup by request id); see `LogEntry::lookup_key`.
    pub name: Option<String>,
    pub data: Vec<u8>,
}

/// A checkpoint as stored: the log-signed note, without cosignatures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCheckpoint {
    pub size: u64,
    pub root: Hash,
    pub note: Vec<u8>,
    /// Milliseconds since the Unix epoch when it was signed.
    pub created_ms: u64,
}

/// Everything one group commit writes, atomically.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitBatch {
    /// Leaf index of `entries[0]`; must equal the stored size.
    pub first_index: u64,
    pub entries: Vec<EntryRow>,
    /// Stored-hash index of `hashes[0]`; equals `stored_hash_index(0, first_index)`.
    pub first_hash_index: u64,
    pub hashes: Vec<Hash>,
    /// A checkpoint for the tree after this batch, if one is due.
    pub checkpoint: Option<StoredCheckpoint>,
}

/// Durable storage of entries, tree hashes, checkpoints and cosignatures.
pub trait LogStore: Send + Sync + 'static {
    /// Number of committed entries.
    fn size(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Hashes at the given stored-hash indexes, in the same order. Missing ones are an error.
    fn read_hashes(
        &self,
        indexes: &[u64],
    ) -> impl Future<Output = Result<Vec<Hash>, StoreError>> + Send;

    /// Entries `[start, end)`; all must exist.
    fn read_entries(
        &self,
        start: u64,
        end: u64,
    ) -> impl Future<Output = Result<Vec<Vec<u8>>, StoreError>> + Send;

    /// Writes the batch in one transaction, returning only once it is durable. Fails with
    /// `Conflict` if `first_index` is not the stored size.
    fn commit(&self, batch: &CommitBatch) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Stores a checkpoint outside an append batch (time-based publishing when the batch that
    /// made it due already committed). Idempotent for the same size and note.
    fn put_checkpoint(
        &self,
        cp: &StoredCheckpoint,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn latest_checkpoint(
        &self,
    ) -> impl Future<Output = Result<Option<StoredCheckpoint>, StoreError>> + Send;

    fn checkpoint_at(
        &self,
        size: u64,
    ) -> impl Future<Output = Result<Option<StoredCheckpoint>, StoreError>> + Send;

    /// Records a verified cosignature line for the checkpoint of `size`; one per witness key
    /// (a newer line replaces the older).
    fn put_cosignature(
        &self,
        size: u64,
        witness: &str,
        key_id: u32,
        line: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Cosignature lines stored for the checkpoint of `size`.
    fn cosignatures(
        &self,
        size: u64,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// `(index, data)` of the entries recorded under the lookup key `name`, in log order, at
    /// most `limit`.
    fn entries_by_name(
        &self,
        name: &str,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<(u64, Vec<u8>)>, StoreError>> + Send;

    /// A store that several nodes write at once (PostgreSQL) returns its writer lock here; the
    /// committer then assigns indexes and signs checkpoints only while holding it. A store with
    /// one writer (SQLite, memory) keeps the default `None`.
    fn shared_writer(&self) -> Option<&dyn SharedWriter> {
        None
    }
}

/// The writer lock of a log shared by several nodes: whoever holds it is the log's one
/// sequencer for one transaction (see `docs/log.md`, "One log across nodes").
pub trait SharedWriter: Send + Sync {
    /// Begins a transaction holding the lock, waiting for it while another node holds it.
    fn lock(&self) -> BoxFuture<'_, Result<Box<dyn LockedLog>, StoreError>>;
}

/// An open transaction holding the shared log's writer lock. Dropping it without
/// [`commit`](LockedLog::commit) rolls back and releases the lock.
pub trait LockedLog: Send {
    /// Entries stored when the lock was taken (no other writer can change it while held).
    fn size(&self) -> u64;
    /// Size of the latest stored checkpoint when the lock was taken.
    fn checkpoint_size(&self) -> u64;
    /// Hashes at the given stored-hash indexes, read inside the transaction.
    fn read_hashes<'a>(
        &'a mut self,
        indexes: &'a [u64],
    ) -> BoxFuture<'a, Result<Vec<Hash>, StoreError>>;
    /// Writes the batch (no entries: the checkpoint alone) and commits, releasing the lock.
    /// Fails with `Conflict` if `first_index` is not [`size`](LockedLog::size).
    fn commit<'a>(self: Box<Self>, batch: &'a CommitBatch)
    -> BoxFuture<'a, Result<(), StoreError>>;
}

#[derive(Default)]
struct Mem {
    entries: Vec<EntryRow>,
    hashes: Vec<Hash>,
    checkpoints: BTreeMap<u64, StoredCheckpoint>,
    cosigs: BTreeMap<(u64, String, u32), String>,
    fail_commits: u32,
    panic_commits: u32,
}

/// In-memory [`LogStore`] for tests and for the verifier's own self-checks. Not durable.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Mem>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the next `n` commits fail with a backend error, to exercise error paths.
    pub fn fail_next_commits(&self, n: u32) {
        self.lock().fail_commits = n;
    }

    /// Makes the next `n` commits store their batch and then panic, as a task dies after its
    /// write reached the disk, to exercise recovery.
    pub fn panic_after_next_commits(&self, n: u32) {
        self.lock().panic_commits = n;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Mem> {
        // A panic while holding the lock cannot leave `Mem` half-written (every write below is
        // a single push/insert after all checks), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl LogStore for MemoryStore {
    async fn size(&self) -> Result<u64, StoreError> {
        Ok(self.lock().entries.len() as u64)
    }

    async fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, StoreError> {
        let m = self.lock();
        indexes
            .iter()
            .map(|&i| {
                m.hashes
                    .get(i as usize)
                    .copied()
                    .ok_or_else(|| StoreError::Corrupt(format!("no stored hash at index {i}")))
            })
            .collect()
    }

    async fn read_entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        let m = self.lock();
        if start > end || end > m.entries.len() as u64 {
            return Err(StoreError::Corrupt(format!(
                "entries {start}..{end} not stored"
            )));
        }
        Ok(m.entries[start as usize..end as usize]
            .iter()
            .map(|e| e.data.clone())
            .collect())
    }

    async fn commit(&self, b: &CommitBatch) -> Result<(), StoreError> {
        let mut m = self.lock();
        if m.fail_commits > 0 {
            m.fail_commits -= 1;
            return Err(StoreError::Backend("injected failure".into()));
        }
        if b.first_index != m.entries.len() as u64 || b.first_hash_index != m.hashes.len() as u64 {
            return Err(StoreError::Conflict(format!(
                "batch starts at entry {} / hash {}, store has {} / {}",
                b.first_index,
                b.first_hash_index,
                m.entries.len(),
                m.hashes.len()
            )));
        }
        m.entries.extend(b.entries.iter().cloned());
        m.hashes.extend_from_slice(&b.hashes);
        if let Some(cp) = &b.checkpoint {
            m.checkpoints.insert(cp.size, cp.clone());
        }
        if m.panic_commits > 0 {
            m.panic_commits -= 1;
            drop(m);
            panic!("injected panic after a commit");
        }
        Ok(())
    }

    async fn put_checkpoint(&self, cp: &StoredCheckpoint) -> Result<(), StoreError> {
        self.lock().checkpoints.insert(cp.size, cp.clone());
        Ok(())
    }

    async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        Ok(self.lock().checkpoints.values().next_back().cloned())
    }

    async fn checkpoint_at(&self, size: u64) -> Result<Option<StoredCheckpoint>, StoreError> {
        Ok(self.lock().checkpoints.get(&size).cloned())
    }

    async fn put_cosignature(
        &self,
        size: u64,
        witness: &str,
        key_id: u32,
        line: &str,
    ) -> Result<(), StoreError> {
        self.lock()
            .cosigs
            .insert((size, witness.to_string(), key_id), line.to_string());
        Ok(())
    }

    async fn cosignatures(&self, size: u64) -> Result<Vec<String>, StoreError> {
        let m = self.lock();
        Ok(m.cosigs
            .range((size, String::new(), 0)..)
            .take_while(|(k, _)| k.0 == size)
            .map(|(_, v)| v.clone())
            .collect())
    }

    async fn entries_by_name(
        &self,
        name: &str,
        limit: u64,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let m = self.lock();
        Ok(m.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.name.as_deref() == Some(name))
            .take(limit as usize)
            .map(|(i, e)| (i as u64, e.data.clone()))
            .collect())
    }
}

/// A shared store is a store (the server keeps one `Arc` for the log and its own handlers).
impl<T: LogStore> LogStore for std::sync::Arc<T> {
    fn size(&self) -> impl Future<Output = Result<u64, StoreError>> + Send {
        (**self).size()
    }
    fn read_hashes(
        &self,
        indexes: &[u64],
    ) -> impl Future<Output = Result<Vec<Hash>, StoreError>> + Send {
        (**self).read_hashes(indexes)
    }
    fn read_entries(
        &self,
        start: u64,
        end: u64,
    ) -> impl Future<Output = Result<Vec<Vec<u8>>, StoreError>> + Send {
        (**self).read_entries(start, end)
    }
    fn commit(&self, batch: &CommitBatch) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).commit(batch)
    }
    fn put_checkpoint(
        &self,
        cp: &StoredCheckpoint,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).put_checkpoint(cp)
    }
    fn latest_checkpoint(
        &self,
    ) -> impl Future<Output = Result<Option<StoredCheckpoint>, StoreError>> + Send {
        (**self).latest_checkpoint()
    }
    fn checkpoint_at(
        &self,
        size: u64,
    ) -> impl Future<Output = Result<Option<StoredCheckpoint>, StoreError>> + Send {
        (**self).checkpoint_at(size)
    }
    fn put_cosignature(
        &self,
        size: u64,
        witness: &str,
        key_id: u32,
        line: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).put_cosignature(size, witness, key_id, line)
    }
    fn cosignatures(
        &self,
        size: u64,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send {
        (**self).cosignatures(size)
    }
    fn entries_by_name(
        &self,
        name: &str,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<(u64, Vec<u8>)>, StoreError>> + Send {
        (**self).entries_by_name(name, limit)
    }
    fn shared_writer(&self) -> Option<&dyn SharedWriter> {
        (**self).shared_writer()
    }
}
