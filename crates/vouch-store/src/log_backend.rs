//! The transparency log's store on whichever database the node runs: the SQLite file's tables
//! (one writer) or the cluster's PostgreSQL tables (a shared writer lock), behind one type so
//! the node holds one `Log<LogBackend>` either way.

use vouch_log::merkle::Hash;
use vouch_log::store::{CommitBatch, LogStore, SharedWriter, StoreError, StoredCheckpoint};

use crate::log_store::SqliteLogStore;
use crate::pg::log::PgLogStore;
use crate::{Backend, Store};

/// See the module docs.
#[derive(Clone)]
pub enum LogBackend {
    Sqlite(SqliteLogStore),
    Postgres(PgLogStore),
}

impl LogBackend {
    /// Opens (and migrates) the log's tables in `store`'s database.
    pub async fn open(store: &Store) -> Result<LogBackend, StoreError> {
        Ok(match store.backend() {
            Backend::Sqlite(db) => LogBackend::Sqlite(SqliteLogStore::new(db.clone()).await?),
            Backend::Postgres(pg) => LogBackend::Postgres(PgLogStore::new(pg.clone()).await?),
        })
    }
}

/// Forwards each call to the backend's store.
macro_rules! dispatch {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            LogBackend::Sqlite($s) => $call.await,
            LogBackend::Postgres($s) => $call.await,
        }
    };
}

impl LogStore for LogBackend {
    async fn size(&self) -> Result<u64, StoreError> {
        dispatch!(self, s => s.size())
    }

    async fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, StoreError> {
        dispatch!(self, s => s.read_hashes(indexes))
    }

    async fn read_entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        dispatch!(self, s => s.read_entries(start, end))
    }

    async fn commit(&self, batch: &CommitBatch) -> Result<(), StoreError> {
        dispatch!(self, s => s.commit(batch))
    }

    async fn put_checkpoint(&self, cp: &StoredCheckpoint) -> Result<(), StoreError> {
        dispatch!(self, s => s.put_checkpoint(cp))
    }

    async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        dispatch!(self, s => s.latest_checkpoint())
    }

    async fn checkpoint_at(&self, size: u64) -> Result<Option<StoredCheckpoint>, StoreError> {
        dispatch!(self, s => s.checkpoint_at(size))
    }

    async fn put_cosignature(
        &self,
        size: u64,
        witness: &str,
        key_id: u32,
        line: &str,
    ) -> Result<(), StoreError> {
        dispatch!(self, s => s.put_cosignature(size, witness, key_id, line))
    }

    async fn cosignatures(&self, size: u64) -> Result<Vec<String>, StoreError> {
        dispatch!(self, s => s.cosignatures(size))
    }

    async fn entries_by_name(
        &self,
        name: &str,
        limit: u64,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        dispatch!(self, s => s.entries_by_name(name, limit))
    }

    fn shared_writer(&self) -> Option<&dyn SharedWriter> {
        match self {
            LogBackend::Sqlite(s) => s.shared_writer(),
            LogBackend::Postgres(s) => s.shared_writer(),
        }
    }
}
