//! PostgreSQL: the shared state of a cluster of nodes (`[store] database = "postgres://…"`).
//!
//! Every node of a cluster is stateless over one PostgreSQL database: the registry, the
//! transparency log, the ledger and the proof jobs are rows here, and what must happen once
//! across nodes (one log sequencer, one settlement per authorisation, one prover per job) is
//! decided by PostgreSQL's own locks and constraints, never by a node's memory. The schema is
//! PostgreSQL's own (`migrations/postgres/<owner>`), with the same tables and meanings as the
//! SQLite files, so one conformance suite runs on both backends (`tests/conformance.rs`).
//!
//! sqlx's Postgres driver, queries checked at run time; each owner's migrations are applied by
//! sqlx's migrator under its advisory lock, so nodes booting together migrate once.

use std::borrow::Cow;
use std::time::Duration;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, SqlStr};

pub mod log;
pub(crate) mod model_config;
pub mod pay;
pub(crate) mod policy;
pub(crate) mod proofs;
pub(crate) mod registry;
mod watch;

pub use watch::{CATALOG_CHANNEL, OutboxLock};

/// A pool of connections to the cluster's database. Cloning shares the pool.
#[derive(Clone, Debug)]
pub struct Pg {
    pool: PgPool,
}

/// What a PostgreSQL call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("{0}")]
    Sql(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Url(String),
}

impl PgError {
    /// A UNIQUE, PRIMARY KEY or other constraint refused the write (SQLSTATE class 23).
    pub fn is_constraint_violation(&self) -> bool {
        matches!(self, PgError::Sql(sqlx::Error::Database(e))
            if e.code().is_some_and(|c| c.starts_with("23")))
    }
}

/// How long a caller waits for a free connection before the call fails.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

impl Pg {
    /// Connects a pool of at most `connections` to `url` (`postgres://user[:password]@host[:port]/db`,
    /// libpq's parameters in the query string). Nothing is created or migrated here.
    pub async fn connect(url: &str, connections: u32) -> Result<Pg, PgError> {
        let options: PgConnectOptions = url
            .parse()
            .map_err(|e: sqlx::Error| PgError::Url(format!("bad PostgreSQL URL: {e}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // READ COMMITTED whatever the server's or database's default: the guards in this
            // module (a statement that waited for a row re-checks its condition against the
            // committed row; `ON CONFLICT` waits for the other writer) rely on it, and under a
            // stricter level they would fail with serialization errors instead.
            .connect_with(
                options
                    .application_name("vouch")
                    .options([("default_transaction_isolation", "read committed")]),
            )
            .await?;
        Ok(Pg { pool })
    }

    /// Wraps a pool made elsewhere (tests name each node's connections to tell them apart).
    pub fn from_pool(pool: PgPool) -> Pg {
        Pg { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Applies one owner's migrations (`set`), leaving other owners' versions alone: each
    /// layer migrates its own tables when it opens them, as on SQLite.
    pub(crate) async fn migrate(&self, set: &'static [PgMigration]) -> Result<(), PgError> {
        let migrations = set
            .iter()
            .map(|m| {
                Migration::new(
                    m.version,
                    Cow::Borrowed(m.description),
                    MigrationType::Simple,
                    SqlStr::from_static(m.sql),
                    false,
                )
            })
            .collect::<Vec<_>>();
        let mut migrator = Migrator {
            migrations: Cow::Owned(migrations),
            ..Migrator::DEFAULT
        };
        // Versions owned by another layer are in the same history table.
        migrator.set_ignore_missing(true);
        migrator.run(&self.pool).await?;
        Ok(())
    }
}

/// One PostgreSQL migration script, embedded.
pub(crate) struct PgMigration {
    version: i64,
    description: &'static str,
    sql: &'static str,
}

macro_rules! pg_migrations {
    ($dir:literal: $(($version:literal, $description:literal, $file:literal)),+ $(,)?) => {
        &[$(PgMigration {
            version: $version,
            description: $description,
            sql: include_str!(concat!("../../migrations/postgres/", $dir, "/", $file)),
        }),+]
    };
}

/// The catalog: models, names and their moves, policies, configurations (versions 1–99).
pub(crate) const CORE: &[PgMigration] = pg_migrations!("core": (1, "catalog", "0001_catalog.sql"));

/// The zk tier: analyses and the shared, leased proof-job queue (versions 300–399).
pub(crate) const ZK: &[PgMigration] = pg_migrations!("zk": (300, "zk", "0300_zk.sql"));

/// The transparency log: entries, hashes, checkpoints, cosignatures, head (versions 100–199).
pub(crate) const LOG: &[PgMigration] = pg_migrations!("log": (100, "log", "0100_log.sql"));

/// Payments: the ledger and the payment claims (versions 200–299).
pub(crate) const PAY: &[PgMigration] = pg_migrations!("pay": (200, "pay", "0200_pay.sql"));
