//! One SQLite database file as the rest of the crate sees it: a small pool of rusqlite
//! connections (`r2d2`) configured alike, used from async code by running each call on Tokio's
//! blocking threads.
//!
//! Why rusqlite and not an async driver: SQLite is a library, not a server, so every "async"
//! SQLite driver runs the same blocking calls on a thread of its own; calling rusqlite on a
//! blocking thread is the same hand-off with one SQLite binding in the build instead of two.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, Row};

/// How long a statement waits for another connection's write lock before failing with
/// "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// SQLite's `synchronous` level: when a commit returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Synchronous {
    /// After the WAL is synced: a commit survives power loss.
    Full,
    /// Before the WAL is synced: a commit survives a process crash, not a power loss.
    Normal,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        }
    }
}

/// What a database call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("no database connection: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("database migration failed: {0}")]
    Migration(String),
    /// The blocking task running the call panicked or was cancelled.
    #[error("database call did not finish: {0}")]
    Task(String),
}

impl DbError {
    /// A UNIQUE, PRIMARY KEY or other constraint refused the write.
    pub fn is_constraint_violation(&self) -> bool {
        matches!(self, DbError::Sqlite(rusqlite::Error::SqliteFailure(f, _))
            if f.code == rusqlite::ErrorCode::ConstraintViolation)
    }
}

/// A pool of connections to one database file (WAL, foreign keys on, 10 s busy timeout, the
/// file's `synchronous` level). Cloning shares the pool.
#[derive(Clone)]
pub struct Db {
    pool: r2d2::Pool<SqliteConnectionManager>,
    path: Arc<PathBuf>,
    sync: Synchronous,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("path", &self.path)
            .field("sync", &self.sync)
            .finish()
    }
}

/// Sets a new connection up the way every connection of this crate runs.
fn configure(conn: &Connection, sync: Synchronous) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", sync.pragma())?;
    conn.pragma_update(None, "foreign_keys", "ON")
}

impl Db {
    /// A pool of at most `connections` connections to `path` (created if missing). Connections
    /// open on first use, so this does no I/O: opening the file first (the switch to WAL) and
    /// migrating it is [`Db::connect`]'s job, under the caller's lock.
    pub fn pool(path: &Path, sync: Synchronous, connections: u32) -> Db {
        let manager = SqliteConnectionManager::file(path).with_init(move |c| configure(c, sync));
        let pool = r2d2::Pool::builder()
            .max_size(connections)
            .min_idle(Some(0))
            // A local file cannot go stale between uses: no probe before handing one out.
            .test_on_check_out(false)
            .build_unchecked(manager);
        Db {
            pool,
            path: Arc::new(path.to_path_buf()),
            sync,
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn synchronous(&self) -> Synchronous {
        self.sync
    }

    /// A connection of its own, outside the pool, configured as the pool's are: for a thread
    /// that writes with cached statements (the log's committer, the ledger's writer).
    pub fn connect(&self) -> Result<Connection, DbError> {
        let conn = Connection::open(self.path.as_path())?;
        configure(&conn, self.sync)?;
        Ok(conn)
    }

    /// Runs `f` with a pooled connection on a blocking thread and returns its result.
    pub async fn call<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().map_err(DbError::from)?;
            f(&mut conn)
        })
        .await
        .map_err(|e| DbError::Task(e.to_string()))?
    }

    /// As [`call`](Self::call), for a closure that can only fail in SQLite.
    pub async fn run<T, F>(&self, f: F) -> Result<T, DbError>
    where
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.call(move |c| f(c).map_err(DbError::from)).await
    }
}

/// A row as the tuple of its columns, in order: rusqlite's own `TryFrom<&Row>` for tuples, as a
/// function to hand to `query_row`/`query_map`.
pub(crate) fn columns<T>(r: &Row<'_>) -> rusqlite::Result<T>
where
    T: for<'a> TryFrom<&'a Row<'a>, Error = rusqlite::Error>,
{
    T::try_from(r)
}
