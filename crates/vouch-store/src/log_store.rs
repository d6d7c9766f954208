//! Durable storage for the transparency log: `vouch_log::store::LogStore` on SQLite.
//!
//! One group commit is one `BEGIN IMMEDIATE` transaction holding all entries, all new tree
//! hashes and (when due) the checkpoint of its batch, written by a committer thread with a
//! synchronous connection ([`committer`]); the appender acknowledges nothing before `COMMIT`
//! returns, and with `synchronous = FULL` (as [`crate::Store::open`] and
//! [`SqliteLogStore::open`] configure, and the committer copies) that means the batch is on
//! disk. Reads go through the connection pool. Schema: `migrations/log/`.

use std::path::Path;

use rusqlite::{OptionalExtension, params, params_from_iter};
use vouch_log::merkle::{Hash, stored_hash_count};
use vouch_log::store::{CommitBatch, LogStore, StoreError, StoredCheckpoint};

use crate::db::{Db, DbError, Synchronous};

/// Rows per multi-row hash insert in [`SqliteLogStore::bulk_load_hashes`], at most (2
/// parameters per row: far below SQLite's 32766-variable limit).
const HASH_CHUNK: usize = 1024;
/// Indexes per `IN (...)` read.
const READ_CHUNK: usize = 512;

/// The log's tables in the project database.
#[derive(Clone)]
pub struct SqliteLogStore {
    pool: Db,
    /// Queue of the committer thread ([`committer`]).
    commits: std::sync::mpsc::Sender<CommitJob>,
}

/// One group commit for the committer thread, and where its outcome goes.
struct CommitJob {
    batch: CommitBatch,
    done: tokio::sync::oneshot::Sender<Result<(), StoreError>>,
}

/// The committer: a thread with a connection of its own to the log's file that writes each
/// group commit in one transaction through cached statements. Through an async driver (sqlx,
/// before) the same commit was six round trips to its connection thread (begin, size check,
/// entries, hashes, checkpoint, commit), each a pair of thread wake-ups, on every request's
/// path; here it is one hand-off each way. Ends when the last store handle is dropped.
fn committer(mut conn: rusqlite::Connection, jobs: std::sync::mpsc::Receiver<CommitJob>) {
    while let Ok(job) = jobs.recv() {
        let _ = job.done.send(commit_on(&mut conn, &job.batch));
    }
}

fn sql(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, msg) = &e
        && f.code == rusqlite::ErrorCode::ConstraintViolation
    {
        return StoreError::Conflict(msg.clone().unwrap_or_else(|| e.to_string()));
    }
    StoreError::Backend(e.to_string())
}

fn commit_on(conn: &mut rusqlite::Connection, b: &CommitBatch) -> Result<(), StoreError> {
    use rusqlite::params;
    // IMMEDIATE takes the write lock up front, so the size check below cannot race.
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(sql)?;
    let have: i64 = tx
        .query_row("SELECT COALESCE(MAX(idx) + 1, 0) FROM log_entry", [], |r| {
            r.get(0)
        })
        .map_err(sql)?;
    if to_u64(have)? != b.first_index {
        return Err(StoreError::Conflict(format!(
            "batch starts at entry {} but the log has {have} entries",
            b.first_index
        )));
    }
    {
        let mut insert = tx
            .prepare_cached("INSERT INTO log_entry (idx, kind, name, data) VALUES (?1, ?2, ?3, ?4)")
            .map_err(sql)?;
        for (idx, e) in (to_i64(b.first_index)?..).zip(&b.entries) {
            insert
                .execute(params![
                    idx,
                    e.kind.as_str(),
                    e.name.as_deref(),
                    e.data.as_slice()
                ])
                .map_err(sql)?;
        }
        let mut insert = tx
            .prepare_cached("INSERT INTO log_hash (idx, hash) VALUES (?1, ?2)")
            .map_err(sql)?;
        for (idx, h) in (to_i64(b.first_hash_index)?..).zip(&b.hashes) {
            insert.execute(params![idx, h.0.as_slice()]).map_err(sql)?;
        }
        if let Some(cp) = &b.checkpoint {
            let (size, created_ms) = (to_i64(cp.size)?, to_i64(cp.created_ms)?);
            tx.prepare_cached(CHECKPOINT_UPSERT)
                .and_then(|mut st| {
                    st.execute(params![
                        size,
                        cp.root.0.as_slice(),
                        cp.note.as_slice(),
                        created_ms
                    ])
                })
                .map_err(sql)?;
        }
    }
    tx.commit().map_err(sql)
}

/// Re-signing a size (after a key change) replaces the note, never the root: a different root
/// for a stored size would be a fork, and the WHERE makes it a no-op.
const CHECKPOINT_UPSERT: &str = "INSERT INTO log_checkpoint (size, root, note, created_ms) VALUES (?1, ?2, ?3, ?4) \
     ON CONFLICT (size) DO UPDATE SET note = excluded.note, created_ms = excluded.created_ms \
     WHERE log_checkpoint.root = excluded.root";

fn backend(e: DbError) -> StoreError {
    if e.is_constraint_violation() {
        return StoreError::Conflict(e.to_string());
    }
    StoreError::Backend(e.to_string())
}

/// Shared with the PostgreSQL log (`pg/log.rs`): the same columns, the same checks.
pub(crate) fn to_i64(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v)
        .map_err(|_| StoreError::Backend(format!("{v} does not fit a database integer")))
}

pub(crate) fn to_u64(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v)
        .map_err(|_| StoreError::Corrupt(format!("negative number {v} in the log tables")))
}

fn hash_of(b: &[u8]) -> Result<Hash, StoreError> {
    Hash::from_slice(b)
        .ok_or_else(|| StoreError::Corrupt(format!("stored hash of {} bytes", b.len())))
}

/// The stored `(index, hash)` rows put in the order `indexes` asked for; a missing one is
/// corruption (both backends read hashes by index and answer through this).
pub(crate) fn hashes_in_order(
    indexes: &[u64],
    rows: Vec<(i64, Vec<u8>)>,
) -> Result<Vec<Hash>, StoreError> {
    let mut found = std::collections::HashMap::with_capacity(rows.len());
    for (i, h) in rows {
        found.insert(to_u64(i)?, hash_of(&h)?);
    }
    indexes
        .iter()
        .map(|i| {
            found
                .get(i)
                .copied()
                .ok_or_else(|| StoreError::Corrupt(format!("no stored hash at index {i}")))
        })
        .collect()
}

/// Splits `items` into chunks of `max`, then of decreasing powers of two.
fn pow2_chunks<T>(items: &[T], max: usize) -> Vec<&[T]> {
    let mut out = Vec::new();
    let mut rest = items;
    while !rest.is_empty() {
        let n = if rest.len() >= max {
            max
        } else {
            1 << (usize::BITS - 1 - rest.len().leading_zeros())
        };
        let (a, b) = rest.split_at(n);
        out.push(a);
        rest = b;
    }
    out
}

impl SqliteLogStore {
    /// Uses the project's database (`Store::pool()`); applies the log's migrations.
    pub async fn new(pool: Db) -> Result<Self, StoreError> {
        migrate(&pool).await?;
        // The committer's connection gets the pool's file and durability.
        let conn = pool.connect().map_err(backend)?;
        let (commits, jobs) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("vouch-log-commit".into())
            .spawn(move || committer(conn, jobs))
            .map_err(|e| StoreError::Backend(format!("log committer thread: {e}")))?;
        Ok(SqliteLogStore { pool, commits })
    }

    /// A standalone database file (tools, benchmarks, crash tests), configured for durable
    /// appends: WAL, `synchronous = FULL`.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, Synchronous::Full).await
    }

    /// As [`open`](Self::open) with another `synchronous` level (benchmarks compare them;
    /// `Normal` survives a process crash but not a power loss).
    pub async fn open_with(path: &Path, sync: Synchronous) -> Result<Self, StoreError> {
        crate::create_private_file(path).map_err(|e| StoreError::Backend(e.to_string()))?;
        Self::new(Db::pool(path, sync, 4)).await
    }

    pub fn pool(&self) -> &Db {
        &self.pool
    }

    /// Writes stored hashes `[first, first + hashes.len())` with no entries (benchmarks build a
    /// 10-million-entry tree this way). Not for a live log.
    pub async fn bulk_load_hashes(&self, first: u64, hashes: &[Hash]) -> Result<(), StoreError> {
        let first = to_i64(first)?;
        let hashes = hashes.to_vec();
        self.pool
            .run(move |c| {
                let tx = c.transaction()?;
                let mut idx = first;
                for chunk in pow2_chunks(&hashes, HASH_CHUNK) {
                    let values = vec!["(?, ?)"; chunk.len()].join(", ");
                    let mut insert = tx.prepare_cached(&format!(
                        "INSERT INTO log_hash (idx, hash) VALUES {values}"
                    ))?;
                    let mut args: Vec<rusqlite::types::Value> = Vec::with_capacity(2 * chunk.len());
                    for h in chunk {
                        args.push(idx.into());
                        args.push(h.0.to_vec().into());
                        idx += 1;
                    }
                    insert.execute(params_from_iter(args))?;
                }
                tx.commit()
            })
            .await
            .map_err(backend)
    }
}

/// Applies the log's migrations (versions 100-199), leaving other owners' versions alone.
pub async fn migrate(pool: &Db) -> Result<(), StoreError> {
    crate::migrate_locked(pool, crate::migrate::LOG)
        .await
        .map_err(|e| StoreError::Backend(format!("log migration: {e}")))
}

/// `sql`'s single integer, as a count or size.
fn count(c: &rusqlite::Connection, sql: &'static str) -> rusqlite::Result<i64> {
    c.prepare_cached(sql)?.query_row([], |r| r.get(0))
}

const CHECKPOINT_COLUMNS: &str = "size, root, note, created_ms";

/// A `log_checkpoint` row as stored.
/// A `log_checkpoint` row as both backends store it (`pg/log.rs` reads it too).
pub(crate) type RawCheckpoint = (i64, Vec<u8>, Vec<u8>, i64);

pub(crate) fn checkpoint_row(
    (size, root, note, created_ms): RawCheckpoint,
) -> Result<StoredCheckpoint, StoreError> {
    Ok(StoredCheckpoint {
        size: to_u64(size)?,
        root: hash_of(&root)?,
        note,
        created_ms: to_u64(created_ms)?,
    })
}

impl LogStore for SqliteLogStore {
    /// Entry count, checked against the hash count so a half-written tree is never served.
    async fn size(&self) -> Result<u64, StoreError> {
        let (entries, hashes) = self
            .pool
            .run(|c| {
                // One read transaction: both counts from the same commit.
                let tx = c.transaction()?;
                let entries = count(&tx, "SELECT COALESCE(MAX(idx) + 1, 0) FROM log_entry")?;
                let hashes = count(&tx, "SELECT COALESCE(MAX(idx) + 1, 0) FROM log_hash")?;
                Ok((entries, hashes))
            })
            .await
            .map_err(backend)?;
        let (entries, hashes) = (to_u64(entries)?, to_u64(hashes)?);
        if hashes != stored_hash_count(entries) {
            return Err(StoreError::Corrupt(format!(
                "{entries} entries need {} stored hashes, found {hashes}",
                stored_hash_count(entries)
            )));
        }
        Ok(entries)
    }

    async fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, StoreError> {
        let wanted = indexes
            .iter()
            .map(|&i| to_i64(i))
            .collect::<Result<Vec<_>, _>>()?;
        let rows: Vec<(i64, Vec<u8>)> = self
            .pool
            .run(move |c| {
                let mut rows = Vec::with_capacity(wanted.len());
                for chunk in pow2_chunks(&wanted, READ_CHUNK) {
                    let marks = vec!["?"; chunk.len()].join(", ");
                    let mut q = c.prepare_cached(&format!(
                        "SELECT idx, hash FROM log_hash WHERE idx IN ({marks})"
                    ))?;
                    let found =
                        q.query_map(params_from_iter(chunk), |r| Ok((r.get(0)?, r.get(1)?)))?;
                    for row in found {
                        rows.push(row?);
                    }
                }
                Ok(rows)
            })
            .await
            .map_err(backend)?;
        hashes_in_order(indexes, rows)
    }

    async fn read_entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        let (from, to) = (to_i64(start)?, to_i64(end)?);
        let rows: Vec<Vec<u8>> = self
            .pool
            .run(move |c| {
                c.prepare_cached(
                    "SELECT data FROM log_entry WHERE idx >= ? AND idx < ? ORDER BY idx",
                )?
                .query_map([from, to], |r| r.get(0))?
                .collect()
            })
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

    async fn commit(&self, b: &CommitBatch) -> Result<(), StoreError> {
        let (done, outcome) = tokio::sync::oneshot::channel();
        self.commits
            .send(CommitJob {
                batch: b.clone(),
                done,
            })
            .map_err(|_| StoreError::Backend("the log committer stopped".into()))?;
        outcome
            .await
            .map_err(|_| StoreError::Backend("the log committer stopped".into()))?
    }

    async fn put_checkpoint(&self, cp: &StoredCheckpoint) -> Result<(), StoreError> {
        let (size, created_ms) = (to_i64(cp.size)?, to_i64(cp.created_ms)?);
        let (root, note) = (cp.root.0.to_vec(), cp.note.clone());
        self.pool
            .run(move |c| {
                c.prepare_cached(CHECKPOINT_UPSERT)?
                    .execute(params![size, root, note, created_ms])
            })
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.pool
            .run(|c| {
                c.prepare_cached(&format!(
                    "SELECT {CHECKPOINT_COLUMNS} FROM log_checkpoint ORDER BY size DESC LIMIT 1"
                ))?
                .query_row([], crate::db::columns::<RawCheckpoint>)
                .optional()
            })
            .await
            .map_err(backend)?
            .map(checkpoint_row)
            .transpose()
    }

    async fn checkpoint_at(&self, size: u64) -> Result<Option<StoredCheckpoint>, StoreError> {
        let size = to_i64(size)?;
        self.pool
            .run(move |c| {
                c.prepare_cached(&format!(
                    "SELECT {CHECKPOINT_COLUMNS} FROM log_checkpoint WHERE size = ?"
                ))?
                .query_row([size], crate::db::columns::<RawCheckpoint>)
                .optional()
            })
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
        let size = to_i64(size)?;
        let (witness, line) = (witness.to_owned(), line.to_owned());
        self.pool
            .run(move |c| {
                c.prepare_cached(
                    "INSERT INTO log_cosignature (size, witness, key_id, line) VALUES (?, ?, ?, ?) \
                     ON CONFLICT (size, witness, key_id) DO UPDATE SET line = excluded.line",
                )?
                .execute(params![size, witness, i64::from(key_id), line])
            })
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn cosignatures(&self, size: u64) -> Result<Vec<String>, StoreError> {
        let size = to_i64(size)?;
        self.pool
            .run(move |c| {
                c.prepare_cached(
                    "SELECT line FROM log_cosignature WHERE size = ? ORDER BY witness, key_id",
                )?
                .query_map([size], |r| r.get(0))?
                .collect()
            })
            .await
            .map_err(backend)
    }

    async fn entries_by_name(
        &self,
        name: &str,
        limit: u64,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let (name, limit) = (name.to_owned(), to_i64(limit)?);
        let rows: Vec<(i64, Vec<u8>)> = self
            .pool
            .run(move |c| {
                c.prepare_cached(
                    "SELECT idx, data FROM log_entry WHERE name = ? ORDER BY idx LIMIT ?",
                )?
                .query_map(params![name, limit], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
            })
            .await
            .map_err(backend)?;
        rows.into_iter()
            .map(|(i, data)| Ok((to_u64(i)?, data)))
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::time::Duration;
    use vouch_core::{
        Digest, EngineInfo, ExecProfile, ModelDigest, NodeKey, RECEIPT_VERSION, Receipt, Tier,
    };
    use vouch_log::checkpoint::LogSigner;
    use vouch_log::entry::receipt_entry_bytes;
    use vouch_log::log::{Log, LogConfig};
    use vouch_log::merkle::{Frontier, leaf_hash, verify_consistency};

    const ORIGIN: &str = "vouch.test/log";

    fn temp_db(tag: &str) -> std::path::PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("vouch-log-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("log.db")
    }

    fn receipt(i: u64) -> Receipt {
        Receipt {
            version: RECEIPT_VERSION,
            request_id: format!("req-{i}"),
            model: ModelDigest(Digest::of(b"model")),
            model_ref: None,
            input_digest: Digest::of(&i.to_be_bytes()),
            output_digest: Digest::of(b"out"),
            engine: EngineInfo {
                name: "tract".into(),
                version: "0.23.9".into(),
                profile: ExecProfile {
                    threads: 1,
                    deterministic: true,
                    batch: 1,
                },
            },
            config_digest: None,
            tiers: vec![Tier::Signed],
            node_key: NodeKey([7; 32]),
            issued_at: "2026-11-25T12:00:00.000Z".into(),
            payment: None,
        }
    }

    fn signer() -> LogSigner {
        LogSigner::from_signing_key(ORIGIN, ed25519_dalek::SigningKey::from_bytes(&[1; 32]))
            .unwrap()
    }

    async fn open_log(path: &Path, config: LogConfig) -> Log<SqliteLogStore> {
        let store = SqliteLogStore::open(path).await.unwrap();
        let (log, committer) = Log::open(store, signer(), config).await.unwrap();
        tokio::spawn(committer.run());
        log
    }

    #[test]
    fn chunks_are_capped_then_powers_of_two() {
        let v: Vec<u32> = (0..1300).collect();
        let sizes: Vec<usize> = pow2_chunks(&v, 512).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, vec![512, 512, 256, 16, 4]);
        assert!(pow2_chunks::<u32>(&[], 512).is_empty());
    }

    // The store-level append / proof / tile / reopen test runs on SQLite and PostgreSQL in
    // `tests/log_conformance.rs`.

    /// Child half of the crash test: appends concurrently and prints `ack <index> <i>` for each
    /// acknowledged append. Only runs when the parent sets VOUCH_LOG_CRASH_DB.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "child process of kill9_during_concurrent_appends_loses_no_acknowledged_entry"]
    async fn crash_child() {
        let Ok(path) = std::env::var("VOUCH_LOG_CRASH_DB") else {
            return;
        };
        let log = open_log(
            Path::new(&path),
            LogConfig {
                checkpoint_every_entries: 300,
                ..Default::default()
            },
        )
        .await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, u64)>();
        let base: u64 = std::env::var("VOUCH_LOG_CRASH_BASE")
            .unwrap()
            .parse()
            .unwrap();
        for w in 0..32u64 {
            let (log, tx) = (log.clone(), tx.clone());
            tokio::spawn(async move {
                for k in 0.. {
                    let i = base + w * 1_000_000 + k;
                    let a = log.append_receipt(&receipt(i)).await.unwrap();
                    let _ = tx.send((a.index, i));
                }
            });
        }
        let ticker = log.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let _ = ticker.publish_checkpoint().await;
            }
        });
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        while let Some((index, i)) = rx.recv().await {
            writeln!(out, "ack {index} {i}").unwrap();
            out.flush().unwrap();
        }
    }

    fn run_child_until_killed(path: &Path, base: u64, acks_wanted: usize) -> Vec<(u64, u64)> {
        let exe = std::env::current_exe().unwrap();
        let mut child = std::process::Command::new(exe)
            .args([
                "--exact",
                "log_store::tests::crash_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("VOUCH_LOG_CRASH_DB", path)
            .env("VOUCH_LOG_CRASH_BASE", base.to_string())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut acks = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let mut parts = line.split(' ');
            if parts.next() == Some("ack") {
                let index: u64 = parts.next().unwrap().parse().unwrap();
                let i: u64 = parts.next().unwrap().parse().unwrap();
                acks.push((index, i));
            }
            if acks.len() >= acks_wanted || std::time::Instant::now() > deadline {
                break;
            }
        }
        // SIGKILL, mid-flight: appends are queued and a commit is likely in progress.
        child.kill().unwrap();
        child.wait().unwrap();
        acks
    }

    /// kill -9 while 32 clients append: every acknowledged entry is in the log at the index it
    /// was acknowledged with, the tree re-derived from the entries matches the stored hashes and
    /// every stored checkpoint, and checkpoints after restart are consistent with those before.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kill9_during_concurrent_appends_loses_no_acknowledged_entry() {
        let path = temp_db("crash");
        let mut all_acks = Vec::new();
        let mut checkpoints_before = Vec::new();
        for round in 0..2u64 {
            let acks = run_child_until_killed(&path, round * 100_000_000, 2000);
            assert!(
                acks.len() >= 100,
                "child acknowledged only {} appends",
                acks.len()
            );
            all_acks.extend(acks);

            let store = SqliteLogStore::open(&path).await.unwrap();
            let size = store.size().await.unwrap();
            let entries = store.read_entries(0, size).await.unwrap();
            for &(index, i) in &all_acks {
                assert!(
                    index < size,
                    "acknowledged entry {index} lost (log has {size})"
                );
                assert_eq!(
                    entries[index as usize],
                    receipt_entry_bytes(&receipt(i)),
                    "entry {index} differs"
                );
            }
            // Re-derive the tree and compare with the stored hashes and every checkpoint.
            let mut f = Frontier::new();
            let mut roots = vec![f.root()];
            for e in &entries {
                f.push(leaf_hash(e));
                roots.push(f.root());
            }
            let stored_root = Frontier::from_subtree_roots(
                size,
                store
                    .read_hashes(&Frontier::stored_indexes(size))
                    .await
                    .unwrap(),
            )
            .unwrap()
            .root();
            assert_eq!(stored_root, f.root());
            let cps: Vec<StoredCheckpoint> = store
                .pool()
                .run(|c| {
                    c.prepare(
                        "SELECT size, root, note, created_ms FROM log_checkpoint ORDER BY size",
                    )?
                    .query_map([], crate::db::columns::<RawCheckpoint>)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                })
                .await
                .unwrap()
                .into_iter()
                .map(|r| checkpoint_row(r).unwrap())
                .collect();
            assert!(
                cps.len() >= 2,
                "no checkpoints were published before the kill"
            );
            for cp in &cps {
                assert_eq!(
                    roots[cp.size as usize], cp.root,
                    "checkpoint {} does not match the entries",
                    cp.size
                );
                vouch_log::checkpoint::verify_checkpoint(&cp.note, signer().key()).unwrap();
            }
            eprintln!(
                "crash round {round}: {} acknowledged so far, log has {size} entries, {} checkpoints",
                all_acks.len(),
                cps.len()
            );
            checkpoints_before = cps;
        }

        // Restart: the log serves a checkpoint consistent with every one published before.
        let log = open_log(&path, LogConfig::default()).await;
        log.append_receipt(&receipt(u64::MAX / 2)).await.unwrap();
        let now = log.publish_checkpoint().await.unwrap().unwrap();
        for old in checkpoints_before.iter().filter(|c| c.size > 0) {
            let p = log.consistency_proof(old.size, now.size).await.unwrap();
            verify_consistency(old.size, now.size, old.root, now.root, &p).unwrap();
        }
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}
