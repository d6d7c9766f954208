//! Schema migrations, embedded in the binary, one list per owner folder of `migrations/` with
//! disjoint versions (core 1–99, log 100–199, pay 200–299, zk 300–399; the claims sidecar has
//! its own file and its own 1). Each list is applied by the layer that owns it, when it first
//! opens the file, so one file holds several owners' versions in no fixed order.
//!
//! Bookkeeping is the `_sqlx_migrations` table that data dirs made by earlier versions (which
//! migrated with sqlx) already carry, with the same columns and the same checksum (SHA-384 of
//! the script), so those dirs open without conversion. Written here, not taken from a crate:
//! the migration crates for rusqlite keep one linear version per file (`user_version`) or a
//! table of their own, and neither reads the history already on disk.

use std::collections::HashMap;
use std::time::Instant;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use sha2::{Digest, Sha384};

use crate::db::DbError;

/// One migration script, named as its file is (`<version>_<description>.sql`).
pub(crate) struct Migration {
    file: &'static str,
    sql: &'static str,
}

macro_rules! migrations {
    ($dir:literal: $($file:literal),+ $(,)?) => {
        &[$(Migration {
            file: $file,
            sql: include_str!(concat!("../migrations/", $dir, "/", $file)),
        }),+]
    };
}

pub(crate) const CORE: &[Migration] = migrations!("core":
    "0001_registry.sql",
    "0002_policy.sql",
    "0003_model_config.sql",
    "0004_pointer_changes.sql",
    "0005_llm_facts.sql",
);
pub(crate) const LOG: &[Migration] = migrations!("log": "0100_log.sql");
pub(crate) const PAY: &[Migration] = migrations!("pay": "0200_pay_ledger.sql");
pub(crate) const PAY_CLAIMS: &[Migration] = migrations!("pay/claims": "0001_pay_claims.sql");
pub(crate) const ZK: &[Migration] = migrations!("zk": "0300_zk.sql", "0301_zk_leases.sql");

impl Migration {
    /// Version and description from the file name, as sqlx derived them (`_` → space).
    fn name(&self) -> Result<(i64, String), DbError> {
        let bad = || DbError::Migration(format!("migration file {:?} is misnamed", self.file));
        let stem = self.file.strip_suffix(".sql").ok_or_else(bad)?;
        let (version, description) = stem.split_once('_').ok_or_else(bad)?;
        let version = version.parse().map_err(|_| bad())?;
        Ok((version, description.replace('_', " ")))
    }
}

const HISTORY: &str = "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    success BOOLEAN NOT NULL,
    checksum BLOB NOT NULL,
    execution_time BIGINT NOT NULL
)";

/// Applies the migrations of `set` that `conn`'s file has not had yet, each in one transaction
/// with its history row, and checks that those it had are unchanged. Versions of other owners
/// in the history are left alone. The caller holds the file's lock ([`crate::lock_beside`]).
pub(crate) fn run(conn: &mut Connection, set: &[Migration]) -> Result<(), DbError> {
    conn.execute_batch(HISTORY)?;
    let dirty: Option<i64> = conn
        .query_row(
            "SELECT version FROM _sqlx_migrations WHERE success = FALSE ORDER BY version LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(v) = dirty {
        return Err(DbError::Migration(format!(
            "migration {v} of {} was left partly applied; restore the database from a backup",
            conn.path().unwrap_or("the database")
        )));
    }
    let applied: HashMap<i64, Vec<u8>> = conn
        .prepare("SELECT version, checksum FROM _sqlx_migrations")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for m in set {
        let (version, description) = m.name()?;
        let checksum = Sha384::digest(m.sql.as_bytes()).to_vec();
        match applied.get(&version) {
            Some(had) if *had == checksum => continue,
            Some(_) => {
                return Err(DbError::Migration(format!(
                    "migration {} was changed after this database applied it; restore the \
                     file as released",
                    m.file
                )));
            }
            None => {}
        }
        let started = Instant::now();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(m.sql)
            .map_err(|e| DbError::Migration(format!("{}: {e}", m.file)))?;
        let nanos = i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX);
        tx.execute(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
             VALUES (?1, ?2, TRUE, ?3, ?4)",
            params![version, description, checksum, nanos],
        )?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Every file under `migrations/` is in exactly one list, with a well-formed name, so a
    /// script added to a folder cannot be forgotten.
    #[test]
    fn the_lists_name_every_migration_file() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let lists: [(&str, &[Migration]); 5] = [
            ("core", CORE),
            ("log", LOG),
            ("pay", PAY),
            ("pay/claims", PAY_CLAIMS),
            ("zk", ZK),
        ];
        for (dir, list) in lists {
            let mut on_disk: Vec<String> = std::fs::read_dir(root.join(dir))
                .unwrap()
                .map(|e| e.unwrap())
                .filter(|e| e.file_type().unwrap().is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            on_disk.sort();
            let listed: Vec<String> = list.iter().map(|m| m.file.to_owned()).collect();
            assert_eq!(listed, on_disk, "migrations/{dir}");
            for m in list {
                m.name().unwrap();
            }
        }
        assert_eq!(
            CORE[2].name().unwrap(),
            (3, "model config".to_owned()),
            "sqlx's description"
        );
    }

    #[test]
    fn a_changed_or_half_applied_migration_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        run(&mut conn, CORE).unwrap();
        run(&mut conn, CORE).unwrap(); // already applied: nothing to do
        conn.execute(
            "UPDATE _sqlx_migrations SET checksum = x'00' WHERE version = 2",
            [],
        )
        .unwrap();
        let e = run(&mut conn, CORE).unwrap_err().to_string();
        assert!(e.contains("0002_policy.sql was changed"), "{e}");
        conn.execute("DELETE FROM _sqlx_migrations WHERE version = 2", [])
            .unwrap();
        conn.execute(
            "UPDATE _sqlx_migrations SET success = FALSE WHERE version = 3",
            [],
        )
        .unwrap();
        let e = run(&mut conn, CORE).unwrap_err().to_string();
        assert!(e.contains("migration 3 of"), "{e}");
    }
}
