//! Persistence: the database (SQLite by default, in WAL mode) and the blob store for model
//! bytes (a local folder by default, any `object_store` backend later).
//!
//! This is the only crate that knows SQL. It stores and returns `vouch-core` types and knows
//! nothing of HTTP, engines or signing. Migrations live in `migrations/`, one folder per owner
//! (core, log, pay) with disjoint version ranges, all applied by [`Store::open`].

pub mod blobs;
pub mod db;
mod migrate;
pub mod model_config;
pub mod pg;
pub mod policy;
pub mod registry;

use std::path::{Path, PathBuf};

pub use blobs::BlobStore;
pub use db::{Db, DbError, Synchronous};
pub use pg::{Pg, PgError};
pub use registry::{ModelRecord, NameChange, NamePointer, NewModel, PointerChangeRow};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] DbError),
    #[error("blob store error: {0}")]
    Blob(String),
    #[error(
        "{name}@{version} already points at {existing}; pass replace to move it to {requested}"
    )]
    VersionConflict {
        name: String,
        version: String,
        existing: String,
        requested: String,
    },
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// Refused before its bytes were downloaded: a blob over the reader's limit.
    #[error(
        "blob {key} is {size} bytes, over the limit of {limit} bytes (max_model_bytes): raise \
         the limit or remove the object"
    )]
    BlobTooLarge { key: String, size: u64, limit: u64 },
    #[error("PostgreSQL: {0}")]
    Pg(#[from] PgError),
    #[error("{0}")]
    Config(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Pg(e.into())
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Db(e.into())
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Where a node keeps its state (`[store] database`): the embedded default, or the PostgreSQL
/// database a cluster of nodes shares.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum Database {
    /// `<data_dir>/vouch.db` and its sidecar files: one node, no other service.
    #[default]
    Sqlite,
    /// `postgres://…` (or `postgresql://…`): every stateful part in one shared database.
    Postgres(String),
}

impl Database {
    /// `sqlite` (or empty) for the embedded default, or a PostgreSQL URL.
    pub fn parse(s: &str) -> Result<Database> {
        let s = s.trim();
        if s.is_empty() || s == "sqlite" {
            return Ok(Database::Sqlite);
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Ok(Database::Postgres(s.to_owned()));
        }
        Err(StoreError::Config(format!(
            "[store] database must be \"sqlite\" or a postgres:// URL, not {:?}",
            redact_url(s)
        )))
    }
}

/// The URL with any password replaced, for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite => f.write_str("sqlite"),
            Database::Postgres(url) => write!(f, "{}", redact_url(url)),
        }
    }
}

impl serde::Serialize for Database {
    /// Redacted: a configuration printed or served never shows the password.
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{self:?}"))
    }
}

impl<'de> serde::Deserialize<'de> for Database {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Database::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// What [`Store::open_with`] opens.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// The node's own files (key, token; SQLite databases and the local blob folder by default).
    pub data_dir: PathBuf,
    pub database: Database,
    /// Connections in the PostgreSQL pool of this process.
    pub pg_connections: u32,
    /// Where model bytes live: `None` is `<data_dir>/blobs`; otherwise an `object_store` URL
    /// (`s3://bucket/prefix`, endpoint and credentials from the environment).
    pub blobs: Option<String>,
}

impl StoreConfig {
    /// The embedded default on `data_dir`.
    pub fn local(data_dir: &Path) -> StoreConfig {
        StoreConfig {
            data_dir: data_dir.to_owned(),
            database: Database::Sqlite,
            pg_connections: 16,
            blobs: None,
        }
    }
}

/// The database a store runs on.
#[derive(Clone, Debug)]
pub enum Backend {
    Sqlite(Db),
    Postgres(Pg),
}

/// The database and the blob store, opened together because every model lives in both.
#[derive(Clone)]
pub struct Store {
    pub(crate) backend: Backend,
    pub blobs: BlobStore,
}

impl Store {
    /// Opens (creating if needed) `<data_dir>/vouch.db` and `<data_dir>/blobs/`, and migrates.
    /// A data dir created here is readable by this user only (0700) and so are the database
    /// files (0600); an existing dir or file keeps its mode.
    pub async fn open(data_dir: &Path) -> Result<Store> {
        Store::open_with(&StoreConfig::local(data_dir)).await
    }

    /// Opens the configured database and blob store, and migrates the catalog's tables.
    pub async fn open_with(config: &StoreConfig) -> Result<Store> {
        let data_dir = &config.data_dir;
        create_private_dir(data_dir)
            .map_err(|e| StoreError::Blob(format!("{}: {e}", data_dir.display())))?;
        let backend = match &config.database {
            Database::Sqlite => {
                let db_path = data_dir.join("vouch.db");
                let _lock = lock_beside(&db_path).await.map_err(DbError::from)?;
                create_private_file(&db_path).map_err(DbError::from)?;
                // FULL: a commit the server acknowledged survives power loss, not only a crash.
                let pool = Db::pool(&db_path, Synchronous::Full, 8);
                // Each owner's versions in their own range (core 1-99, log 100-199, pay
                // 200-299), in one history table; the log and zk layers apply theirs when they
                // start.
                pool.call(|c| migrate::run(c, migrate::CORE)).await?;
                Backend::Sqlite(pool)
            }
            Database::Postgres(url) => {
                let pg = Pg::connect(url, config.pg_connections).await?;
                pg.migrate(pg::CORE).await?;
                Backend::Postgres(pg)
            }
        };
        let blobs = BlobStore::open(data_dir, config.blobs.as_deref()).await?;
        Ok(Store { backend, blobs })
    }

    /// The database this store runs on, for sibling layers (log, pay, zk) that keep their own
    /// tables in it.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// The SQLite database, for sibling modules (log, pay) that keep their own tables in it;
    /// `None` on PostgreSQL.
    pub fn pool(&self) -> Option<&Db> {
        match &self.backend {
            Backend::Sqlite(db) => Some(db),
            Backend::Postgres(_) => None,
        }
    }
}

/// The tables whose rows wait for the transparency log: each row is written in the same
/// transaction as the change it records and marked with its leaf index once appended, so a crash
/// between the change and its log entry delays the entry and never loses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogOutbox {
    Pointer,
    Policy,
    Config,
}

impl LogOutbox {
    /// In the order the server drains them.
    pub const ALL: [LogOutbox; 3] = [LogOutbox::Pointer, LogOutbox::Policy, LogOutbox::Config];

    fn table(self) -> &'static str {
        match self {
            LogOutbox::Pointer => "pointer_changes",
            LogOutbox::Policy => "policy_changes",
            LogOutbox::Config => "config_changes",
        }
    }
}

impl Store {
    /// Taken around draining the outboxes into the log: one node of a cluster at a time.
    pub async fn lock_outboxes(&self) -> Result<pg::OutboxLock> {
        match &self.backend {
            Backend::Sqlite(_) => Ok(pg::OutboxLock::none()),
            Backend::Postgres(pg) => Ok(pg::OutboxLock::acquire(pg).await?),
        }
    }

    /// Records that outbox row `seq` is leaf `log_index` of the transparency log (once: a row
    /// already marked keeps its index).
    pub async fn mark_logged(&self, outbox: LogOutbox, seq: i64, log_index: i64) -> Result<()> {
        let sql = format!(
            "UPDATE {} SET log_index = ? WHERE seq = ? AND log_index IS NULL",
            outbox.table()
        );
        match &self.backend {
            Backend::Sqlite(db) => {
                db.run(move |c| c.execute(&sql, rusqlite::params![log_index, seq]))
                    .await?;
            }
            Backend::Postgres(pg) => {
                let sql = sql.replacen("= ?", "= $1", 1).replacen("= ?", "= $2", 1);
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(log_index)
                    .bind(seq)
                    .execute(pg.pool())
                    .await?;
            }
        }
        Ok(())
    }
}

/// Opens (creating it, 0600) the lock file `<db_file>.<suffix>`; locking it is the caller's
/// move.
pub(crate) fn lock_file_beside(db_file: &Path, suffix: &str) -> std::io::Result<std::fs::File> {
    private_options().open(format!("{}.{suffix}", db_file.display()))
}

/// Creates `dir` and any missing parent readable by this user only (0700 on Unix); an existing
/// directory keeps its mode. Node data (database, keys, payments) is nobody else's to read.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

/// Creates database file `file` empty with mode 0600 unless it exists, before SQLite opens it:
/// SQLite would create it 0644, and gives its `-wal` and `-shm` files the database's mode.
pub(crate) fn create_private_file(file: &Path) -> std::io::Result<()> {
    private_options().open(file).map(drop)
}

/// Opens for writing, creating with mode 0600 (Unix), never truncating.
fn private_options() -> std::fs::OpenOptions {
    let mut o = std::fs::OpenOptions::new();
    o.create(true).truncate(false).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o
}

/// An exclusive lock on a file beside database `db_file`, held until the returned file is
/// dropped. Taken around opening a database file (the first connection switches it to WAL) and
/// migrating it: SQLite answers a second process doing either at the same moment with "database
/// is locked" or "table already exists", so a node and
/// `vouch facilitator` starting together on a new data dir failed to boot.
pub(crate) async fn lock_beside(db_file: &Path) -> std::io::Result<std::fs::File> {
    let f = lock_file_beside(db_file, "open-lock")?;
    tokio::task::spawn_blocking(move || {
        f.lock()?;
        Ok(f)
    })
    .await
    .map_err(std::io::Error::other)?
}

/// Applies `set` to `db`'s file under [`lock_beside`] it.
pub(crate) async fn migrate_locked(
    db: &Db,
    set: &'static [migrate::Migration],
) -> std::result::Result<(), DbError> {
    let _lock = lock_beside(db.path()).await?;
    db.call(move |c| migrate::run(c, set)).await
}

/// Current time as RFC 3339 UTC with millisecond precision, the one timestamp format Vouch stores.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

pub mod log_store;
pub mod pay_store;
pub mod proof_store;

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_new_data_dir_and_its_database_files_are_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("new/data");
        let store = Store::open(&dir).await.unwrap();
        // Writes, so the WAL and shared-memory files exist; the payment sidecars and lock files
        // are made by opening the ledger.
        let d = vouch_core::Digest::of(b"cfg");
        let m = vouch_core::ModelDigest(vouch_core::Digest::of(b"model"));
        store.set_model_config(&m, "{}", &d).await.unwrap();
        let _ledger = pay_store::SqlitePayStore::new(store.pool().unwrap().clone())
            .await
            .unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&tmp.path().join("new")), 0o700);
        assert_eq!(mode(&dir.join("blobs")), 0o700);
        let mut files = Vec::new();
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                files.push((
                    e.file_name().to_string_lossy().into_owned(),
                    mode(&e.path()),
                ));
            }
        }
        for name in [
            "vouch.db",
            "vouch.db-wal",
            "vouch.db-shm",
            "vouch.db-ledger",
            "vouch.db-pay-claims",
            "vouch.db.open-lock",
        ] {
            assert!(
                files.iter().any(|(n, _)| n == name),
                "{name} missing: {files:?}"
            );
        }
        for (name, m) in &files {
            assert_eq!(m & 0o077, 0, "{name} is {m:o}");
        }
    }

    #[tokio::test]
    async fn an_existing_data_dir_keeps_the_mode_its_owner_chose() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("shared");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)).unwrap();
        Store::open(&dir).await.unwrap();
        assert_eq!(mode(&dir), 0o750);
        assert_eq!(mode(&dir.join("vouch.db")) & 0o077, 0);
    }
}
