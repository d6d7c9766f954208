//! The backends a conformance test runs on: SQLite in a temporary data dir, and PostgreSQL in a
//! database of its own on the server `tests/services/postgres.sh` started
//! (`VOUCH_TEST_POSTGRES`). Without that server the PostgreSQL half is skipped with a message,
//! unless `VOUCH_REQUIRE_POSTGRES=1` (as `scripts/test.sh` sets), which fails the test instead.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU32, Ordering};

use vouch_store::{Database, Store, StoreConfig};

/// One backend under test, with what keeps it alive.
pub struct Backend {
    pub name: &'static str,
    pub config: StoreConfig,
    _dir: tempfile::TempDir,
}

impl Backend {
    pub async fn open(&self) -> Store {
        Store::open_with(&self.config).await.expect("open store")
    }
}

/// The URL of a new, empty database on the test server, or `None` when there is no server.
pub async fn fresh_postgres(tag: &str) -> Option<String> {
    let Ok(admin) = std::env::var("VOUCH_TEST_POSTGRES") else {
        assert!(
            std::env::var("VOUCH_REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "VOUCH_REQUIRE_POSTGRES=1 but VOUCH_TEST_POSTGRES is unset (tests/services/postgres.sh)"
        );
        eprintln!("skipping PostgreSQL: VOUCH_TEST_POSTGRES is unset");
        return None;
    };
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "t_{}_{}_{}",
        tag.to_lowercase()
            .replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let pool = sqlx::PgPool::connect(&admin).await.expect("test server");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name}"
    )))
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let (base, _) = admin.rsplit_once('/').expect("URL with a database");
    Some(format!("{base}/{name}"))
}

/// SQLite, then PostgreSQL when the test server is there.
pub async fn backends(tag: &str) -> Vec<Backend> {
    let sqlite_dir = tempfile::tempdir().unwrap();
    let mut out = vec![Backend {
        name: "sqlite",
        config: StoreConfig::local(sqlite_dir.path()),
        _dir: sqlite_dir,
    }];
    if let Some(url) = fresh_postgres(tag).await {
        let dir = tempfile::tempdir().unwrap();
        let mut config = StoreConfig::local(dir.path());
        config.database = Database::Postgres(url);
        out.push(Backend {
            name: "postgres",
            config,
            _dir: dir,
        });
    }
    out
}
