//! The transparency log on PostgreSQL: one log that every node of a cluster appends to.
//!
//! [`PgLogStore`] is `vouch_log::store::LogStore` over the tables of
//! `migrations/postgres/log/`, and also the log's [`SharedWriter`]: a writer begins a transaction
//! that locks the one `log_head` row (`SELECT … FOR UPDATE`), so whichever node holds it is the
//! log's only sequencer until it commits. Under that lock it reads the stored size, brings its
//! tree up to it, assigns the next indexes, signs the checkpoint when one is due and writes
//! entries, hashes, checkpoint and the new head in the same transaction; the answer to each
//! append waits for `COMMIT`. If the holder dies its connection closes, PostgreSQL rolls the
//! transaction back and the next node waiting gets the row; if it hangs, the session ends after
//! [`WRITER_IDLE_TIMEOUT`] idle inside the transaction. Design and its reasons: `docs/log.md`,
//! "One log across nodes".
//!
//! Nothing here can fork the log: entries and hashes are keyed by index, a checkpoint by size
//! (a second checkpoint of a size with another root is refused), and a batch is written only
//! at the size the locked head row holds.

use sqlx::postgres::PgListener;
use sqlx::{PgConnection, Postgres, Transaction};
use vouch_log::merkle::{Frontier, Hash};
use vouch_log::store::{
    BoxFuture, CommitBatch, LockedLog, LogStore, SharedWriter, StoreError, StoredCheckpoint,
};

use super::{LOG, Pg};
use crate::log_store::{RawCheckpoint, checkpoint_row, hashes_in_order, to_i64, to_u64};

/// Channel a commit or a new cosignature notifies (payload: the stored size) so other nodes
/// refresh at once.
pub const LOG_CHANNEL: &str = "vouch_log";

/// How long a writer may sit idle inside its transaction before PostgreSQL ends its session and
/// frees the lock for the next node: bounds the fail-over of a hung (not dead) sequencer. A
/// live writer is never idle that long: a commit is a handful of statements back to back.
pub const WRITER_IDLE_TIMEOUT: &str = "5s";

/// The log's tables in the cluster's database. Cloning shares the pool.
#[derive(Clone, Debug)]
pub struct PgLogStore {
    pg: Pg,
}

fn backend(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(d) = &e
        && d.code().is_some_and(|c| c.starts_with("23"))
    {
        return StoreError::Conflict(d.message().to_owned());
    }
    StoreError::Backend(e.to_string())
}

async fn read_hashes_on(c: &mut PgConnection, indexes: &[u64]) -> Result<Vec<Hash>, StoreError> {
    let wanted = indexes
        .iter()
        .map(|&i| to_i64(i))
        .collect::<Result<Vec<_>, _>>()?;
    let rows: Vec<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT idx, hash FROM log_hash WHERE idx = ANY($1)")
            .bind(&wanted)
            .fetch_all(&mut *c)
            .await
            .map_err(backend)?;
    hashes_in_order(indexes, rows)
}

/// Stores `cp` unless its size already has one. The same checkpoint again changes nothing; the
/// same tree re-signed (a new log key) replaces the note, as on SQLite; another root for a
/// stored size is a fork and fails with `Conflict`.
async fn put_checkpoint_on(c: &mut PgConnection, cp: &StoredCheckpoint) -> Result<(), StoreError> {
    let (size, created_ms) = (to_i64(cp.size)?, to_i64(cp.created_ms)?);
    let inserted = sqlx::query(
        "INSERT INTO log_checkpoint (size, root, note, created_ms) VALUES ($1, $2, $3, $4)
         ON CONFLICT (size) DO NOTHING",
    )
    .bind(size)
    .bind(cp.root.0.as_slice())
    .bind(cp.note.as_slice())
    .bind(created_ms)
    .execute(&mut *c)
    .await
    .map_err(backend)?
    .rows_affected();
    if inserted == 0 {
        let (root, note): (Vec<u8>, Vec<u8>) =
            sqlx::query_as("SELECT root, note FROM log_checkpoint WHERE size = $1")
                .bind(size)
                .fetch_one(&mut *c)
                .await
                .map_err(backend)?;
        if root != cp.root.0 {
            return Err(StoreError::Conflict(format!(
                "a checkpoint of size {} with another root is stored",
                cp.size
            )));
        }
        if note != cp.note {
            sqlx::query("UPDATE log_checkpoint SET note = $2, created_ms = $3 WHERE size = $1")
                .bind(size)
                .bind(cp.note.as_slice())
                .bind(created_ms)
                .execute(&mut *c)
                .await
                .map_err(backend)?;
        }
    }
    Ok(())
}

/// Locks the head row for the rest of `c`'s transaction, in one round trip that also bounds
/// how long the transaction may then sit idle: `(size, checkpoint_size, backend pid)`.
async fn lock_head(c: &mut PgConnection) -> Result<(u64, u64, i32), StoreError> {
    let (size, cp_size, pid, _): (i64, i64, i32, String) = sqlx::query_as(
        "SELECT size, checkpoint_size, pg_backend_pid(),
                set_config('idle_in_transaction_session_timeout', $1, true)
         FROM log_head WHERE id = 1 FOR UPDATE",
    )
    .bind(WRITER_IDLE_TIMEOUT)
    .fetch_one(&mut *c)
    .await
    .map_err(backend)?;
    Ok((to_u64(size)?, to_u64(cp_size)?, pid))
}

/// Writes `b` in `c`'s transaction, whose head row lock says the log has `size` entries.
async fn write_batch(c: &mut PgConnection, size: u64, b: &CommitBatch) -> Result<(), StoreError> {
    if b.first_index != size {
        return Err(StoreError::Conflict(format!(
            "batch starts at entry {} but the log has {size} entries",
            b.first_index
        )));
    }
    let end = size + b.entries.len() as u64;
    if let Some(cp) = &b.checkpoint {
        if cp.size != end {
            return Err(StoreError::Conflict(format!(
                "checkpoint of size {} in a batch ending at {end}",
                cp.size
            )));
        }
        put_checkpoint_on(c, cp).await?;
    }
    let first = to_i64(b.first_index)?;
    let idx: Vec<i64> = (first..).take(b.entries.len()).collect();
    let kinds: Vec<&str> = b.entries.iter().map(|e| e.kind.as_str()).collect();
    let names: Vec<Option<&str>> = b.entries.iter().map(|e| e.name.as_deref()).collect();
    let data: Vec<&[u8]> = b.entries.iter().map(|e| e.data.as_slice()).collect();
    let first_hash = to_i64(b.first_hash_index)?;
    let hidx: Vec<i64> = (first_hash..).take(b.hashes.len()).collect();
    let hashes: Vec<&[u8]> = b.hashes.iter().map(|h| h.0.as_slice()).collect();
    let cp_size = b.checkpoint.as_ref().map_or(0, |cp| cp.size);
    // One statement: entries, hashes, the new head, and the notification other nodes wait for
    // (delivered at COMMIT, never for a rolled-back batch).
    sqlx::query(
        "WITH e AS (
             INSERT INTO log_entry (idx, kind, name, data)
             SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::bytea[])
         ), h AS (
             INSERT INTO log_hash (idx, hash) SELECT * FROM UNNEST($5::bigint[], $6::bytea[])
         )
         UPDATE log_head SET size = $7, checkpoint_size = GREATEST(checkpoint_size, $8)
         WHERE id = 1 RETURNING pg_notify('vouch_log', size::text)",
    )
    .bind(&idx)
    .bind(&kinds)
    .bind(&names)
    .bind(&data)
    .bind(&hidx)
    .bind(&hashes)
    .bind(to_i64(end)?)
    .bind(to_i64(cp_size)?)
    .execute(&mut *c)
    .await
    .map_err(backend)?;
    Ok(())
}

impl PgLogStore {
    /// Uses the cluster's database; applies the log's migrations (versions 100–199).
    pub async fn new(pg: Pg) -> Result<Self, StoreError> {
        pg.migrate(LOG)
            .await
            .map_err(|e| StoreError::Backend(format!("log migration: {e}")))?;
        Ok(PgLogStore { pg })
    }

    pub fn pg(&self) -> &Pg {
        &self.pg
    }

    /// Takes the writer lock (the concrete [`SharedWriter::lock`]; tests hold it to stand for
    /// a sequencer that stalls or dies).
    pub async fn lock_writer(&self) -> Result<PgLockedLog, StoreError> {
        let mut tx = self.pg.pool().begin().await.map_err(backend)?;
        let (size, checkpoint_size, backend_pid) = lock_head(&mut tx).await?;
        Ok(PgLockedLog {
            tx,
            size,
            checkpoint_size,
            backend_pid,
        })
    }

    /// Listens for commits of any node (`NOTIFY vouch_log`); a node calls `Log::refresh` on
    /// each, so its size and checkpoint follow the sequencer's within a round trip.
    pub async fn listen(&self) -> Result<PgListener, StoreError> {
        let mut l = PgListener::connect_with(self.pg.pool())
            .await
            .map_err(backend)?;
        l.listen(LOG_CHANNEL).await.map_err(backend)?;
        Ok(l)
    }
}

/// A transaction holding the log's writer lock (the `log_head` row).
pub struct PgLockedLog {
    tx: Transaction<'static, Postgres>,
    size: u64,
    checkpoint_size: u64,
    backend_pid: i32,
}

impl PgLockedLog {
    /// The PostgreSQL backend serving this transaction (`pg_terminate_backend` kills it).
    pub fn backend_pid(&self) -> i32 {
        self.backend_pid
    }
}

impl LockedLog for PgLockedLog {
    fn size(&self) -> u64 {
        self.size
    }

    fn checkpoint_size(&self) -> u64 {
        self.checkpoint_size
    }

    fn read_hashes<'a>(
        &'a mut self,
        indexes: &'a [u64],
    ) -> BoxFuture<'a, Result<Vec<Hash>, StoreError>> {
        Box::pin(async move { read_hashes_on(&mut self.tx, indexes).await })
    }

    fn commit<'a>(
        self: Box<Self>,
        batch: &'a CommitBatch,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut me = *self;
            if !batch.entries.is_empty() || batch.checkpoint.is_some() {
                write_batch(&mut me.tx, me.size, batch).await?;
            }
            me.tx.commit().await.map_err(backend)
        })
    }
}

impl SharedWriter for PgLogStore {
    fn lock(&self) -> BoxFuture<'_, Result<Box<dyn LockedLog>, StoreError>> {
        Box::pin(async move {
            let l: Box<dyn LockedLog> = Box::new(self.lock_writer().await?);
            Ok(l)
        })
    }
}

impl LogStore for PgLogStore {
    async fn size(&self) -> Result<u64, StoreError> {
        let size: i64 = sqlx::query_scalar("SELECT size FROM log_head WHERE id = 1")
            .fetch_one(self.pg.pool())
            .await
            .map_err(backend)?;
        to_u64(size)
    }

    async fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, StoreError> {
        let mut c = self.pg.pool().acquire().await.map_err(backend)?;
        read_hashes_on(&mut c, indexes).await
    }

    async fn read_entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        let rows: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT data FROM log_entry WHERE idx >= $1 AND idx < $2 ORDER BY idx",
        )
        .bind(to_i64(start)?)
        .bind(to_i64(end)?)
        .fetch_all(self.pg.pool())
        .await
        .map_err(backend)?;
        if rows.len() as u64 != end.saturating_sub(start) {
            return Err(StoreError::Corrupt(format!(
                "entries {start}..{end}: found {}",
                rows.len()
            )));
        }
        Ok(rows)
    }

    /// The batch under the writer lock: `Conflict` unless it starts at the size the locked
    /// head row holds, so a writer with a stale tree can never overwrite or fork.
    async fn commit(&self, b: &CommitBatch) -> Result<(), StoreError> {
        Box::new(self.lock_writer().await?).commit(b).await
    }

    /// Under the writer lock, and only for a stored size whose tree has exactly this root.
    async fn put_checkpoint(&self, cp: &StoredCheckpoint) -> Result<(), StoreError> {
        let mut tx = self.pg.pool().begin().await.map_err(backend)?;
        let (size, _, _) = lock_head(&mut tx).await?;
        if cp.size > size {
            return Err(StoreError::Conflict(format!(
                "checkpoint of size {} but the log has {size} entries",
                cp.size
            )));
        }
        let roots = read_hashes_on(&mut tx, &Frontier::stored_indexes(cp.size)).await?;
        let root = Frontier::from_subtree_roots(cp.size, roots)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?
            .root();
        if root != cp.root {
            return Err(StoreError::Conflict(format!(
                "checkpoint of size {} has root {}, the stored tree {root}",
                cp.size, cp.root
            )));
        }
        put_checkpoint_on(&mut tx, cp).await?;
        sqlx::query(
            "UPDATE log_head SET checkpoint_size = GREATEST(checkpoint_size, $1) WHERE id = 1
             RETURNING pg_notify('vouch_log', size::text)",
        )
        .bind(to_i64(cp.size)?)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        sqlx::query_as::<_, RawCheckpoint>(
            "SELECT size, root, note, created_ms FROM log_checkpoint ORDER BY size DESC LIMIT 1",
        )
        .fetch_optional(self.pg.pool())
        .await
        .map_err(backend)?
        .map(checkpoint_row)
        .transpose()
    }

    async fn checkpoint_at(&self, size: u64) -> Result<Option<StoredCheckpoint>, StoreError> {
        sqlx::query_as::<_, RawCheckpoint>(
            "SELECT size, root, note, created_ms FROM log_checkpoint WHERE size = $1",
        )
        .bind(to_i64(size)?)
        .fetch_optional(self.pg.pool())
        .await
        .map_err(backend)?
        .map(checkpoint_row)
        .transpose()
    }

    async fn put_cosignature(
        &self,
        size: u64,
        witness: &str,
        key_id: u32,
        line: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "WITH c AS (
                 INSERT INTO log_cosignature (size, witness, key_id, line) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (size, witness, key_id) DO UPDATE SET line = excluded.line
             )
             SELECT pg_notify('vouch_log', size::text) FROM log_head WHERE id = 1",
        )
        .bind(to_i64(size)?)
        .bind(witness)
        .bind(i64::from(key_id))
        .bind(line)
        .execute(self.pg.pool())
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn cosignatures(&self, size: u64) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(
            "SELECT line FROM log_cosignature WHERE size = $1 ORDER BY witness, key_id",
        )
        .bind(to_i64(size)?)
        .fetch_all(self.pg.pool())
        .await
        .map_err(backend)
    }

    async fn entries_by_name(
        &self,
        name: &str,
        limit: u64,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let rows: Vec<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT idx, data FROM log_entry WHERE name = $1 ORDER BY idx LIMIT $2")
                .bind(name)
                .bind(to_i64(limit)?)
                .fetch_all(self.pg.pool())
                .await
                .map_err(backend)?;
        rows.into_iter()
            .map(|(i, data)| Ok((to_u64(i)?, data)))
            .collect()
    }

    fn shared_writer(&self) -> Option<&dyn SharedWriter> {
        Some(self)
    }
}

/// The log's store on whichever database the node's [`crate::Store`] runs: one concrete type
/// for the node (`Log<LogBackend>`), each call going to SQLite or PostgreSQL.
#[derive(Clone)]
pub enum LogBackend {
    Sqlite(crate::log_store::SqliteLogStore),
    Postgres(PgLogStore),
}

impl LogBackend {
    /// The log's tables in `store`'s database, migrated.
    pub async fn open(store: &crate::Store) -> Result<Self, StoreError> {
        Ok(match store.backend() {
            crate::Backend::Sqlite(db) => {
                LogBackend::Sqlite(crate::log_store::SqliteLogStore::new(db.clone()).await?)
            }
            crate::Backend::Postgres(pg) => {
                LogBackend::Postgres(PgLogStore::new(pg.clone()).await?)
            }
        })
    }

    /// Commits by other nodes, on PostgreSQL (`None` on SQLite: this node is the only writer).
    pub async fn listen(&self) -> Result<Option<PgListener>, StoreError> {
        match self {
            LogBackend::Sqlite(_) => Ok(None),
            LogBackend::Postgres(p) => p.listen().await.map(Some),
        }
    }
}

macro_rules! both {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            LogBackend::Sqlite($s) => $e,
            LogBackend::Postgres($s) => $e,
        }
    };
}

impl LogStore for LogBackend {
    async fn size(&self) -> Result<u64, StoreError> {
        both!(self, s => s.size().await)
    }
    async fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, StoreError> {
        both!(self, s => s.read_hashes(indexes).await)
    }
    async fn read_entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        both!(self, s => s.read_entries(start, end).await)
    }
    async fn commit(&self, batch: &CommitBatch) -> Result<(), StoreError> {
        both!(self, s => s.commit(batch).await)
    }
    async fn put_checkpoint(&self, cp: &StoredCheckpoint) -> Result<(), StoreError> {
        both!(self, s => s.put_checkpoint(cp).await)
    }
    async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        both!(self, s => s.latest_checkpoint().await)
    }
    async fn checkpoint_at(&self, size: u64) -> Result<Option<StoredCheckpoint>, StoreError> {
        both!(self, s => s.checkpoint_at(size).await)
    }
    async fn put_cosignature(
        &self,
        size: u64,
        witness: &str,
        key_id: u32,
        line: &str,
    ) -> Result<(), StoreError> {
        both!(self, s => s.put_cosignature(size, witness, key_id, line).await)
    }
    async fn cosignatures(&self, size: u64) -> Result<Vec<String>, StoreError> {
        both!(self, s => s.cosignatures(size).await)
    }
    async fn entries_by_name(
        &self,
        name: &str,
        limit: u64,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        both!(self, s => s.entries_by_name(name, limit).await)
    }
    fn shared_writer(&self) -> Option<&dyn SharedWriter> {
        both!(self, s => s.shared_writer())
    }
}
