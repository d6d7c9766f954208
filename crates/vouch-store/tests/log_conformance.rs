//! The transparency log's store on both backends (`tests/common`): the same appends, proofs,
//! tiles and reopen on SQLite and PostgreSQL; then what only a shared PostgreSQL log has — two
//! writers racing cannot fork it, three nodes append through one database and serve the same
//! checkpoints, and when the writer dies another node takes over (docs/log.md, "One log across
//! nodes").
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vouch_core::{
    Digest, EngineInfo, ExecProfile, ModelDigest, NodeKey, RECEIPT_VERSION, Receipt, Tier,
};
use vouch_log::checkpoint::{LogSigner, verify_checkpoint};
use vouch_log::cosign::Cosigner;
use vouch_log::entry::{LogEntry, PointerMoved, receipt_entry_bytes};
use vouch_log::log::{Log, LogConfig, LogError};
use vouch_log::merkle::{Frontier, Hash, leaf_hash, verify_consistency, verify_inclusion};
use vouch_log::store::{
    BoxFuture, CommitBatch, EntryRow, LockedLog, LogStore, StoreError, StoredCheckpoint,
};
use vouch_log::tiles::{Tile, decode_entry_bundle, decode_hash_tile};
use vouch_log::witness::{Witness, parse_add_checkpoint_response};
use vouch_store::pg::log::{LogBackend, PgLogStore};
use vouch_store::{Pg, Store};

const ORIGIN: &str = "vouch.test/log";

fn witness(name: &str, seed: u8) -> Witness {
    let c = Cosigner::from_signing_key(name, ed25519_dalek::SigningKey::from_bytes(&[seed; 32]))
        .unwrap();
    Witness::new(c, vec![signer().key().clone()])
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

/// The cluster's log key: every node is configured with the same one.
fn signer() -> LogSigner {
    LogSigner::from_signing_key(ORIGIN, ed25519_dalek::SigningKey::from_bytes(&[1; 32])).unwrap()
}

async fn open_log<S: LogStore>(store: S, config: LogConfig) -> Log<S> {
    let (log, committer) = Log::open(store, signer(), config).await.unwrap();
    tokio::spawn(committer.run());
    log
}

/// Checkpoints stored, by size, read straight from the backend's table.
async fn stored_checkpoints(store: &Store) -> Vec<StoredCheckpoint> {
    type Raw = (i64, Vec<u8>, Vec<u8>, i64);
    let rows: Vec<Raw> = match store.backend() {
        vouch_store::Backend::Sqlite(db) => db
            .run(|c| {
                c.prepare("SELECT size, root, note, created_ms FROM log_checkpoint ORDER BY size")?
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await
            .unwrap(),
        vouch_store::Backend::Postgres(pg) => {
            sqlx::query_as("SELECT size, root, note, created_ms FROM log_checkpoint ORDER BY size")
                .fetch_all(pg.pool())
                .await
                .unwrap()
        }
    };
    rows.into_iter()
        .map(|(size, root, note, ms)| StoredCheckpoint {
            size: size as u64,
            root: Hash::from_slice(&root).unwrap(),
            note,
            created_ms: ms as u64,
        })
        .collect()
}

/// The body both backends run: concurrent appends, proofs, tiles, history, reopen, and a second
/// writer on the same database.
async fn appends_proves_serves_tiles_and_survives_reopen<S: LogStore>(
    name: &str,
    store: &Store,
    open: impl Fn() -> BoxFuture<'static, S>,
) {
    let log = open_log(
        open().await,
        LogConfig {
            checkpoint_every_entries: 500,
            ..Default::default()
        },
    )
    .await;
    let mut tasks = Vec::new();
    for i in 0..1500u64 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            (i, log.append_receipt(&receipt(i)).await.unwrap())
        }));
    }
    let mut by_index = vec![0u64; 1500];
    for t in tasks {
        let (i, a) = t.await.unwrap();
        by_index[a.index as usize] = i;
    }
    log.append(&LogEntry::PointerMoved(PointerMoved {
        name: "mnist-cnn".into(),
        version: Some("1".into()),
        from: None,
        to: Some(ModelDigest(Digest::of(b"model"))),
        at: "2026-11-25T12:00:00.000Z".into(),
    }))
    .await
    .unwrap();
    let cp = log.publish_checkpoint().await.unwrap().unwrap();
    assert_eq!(cp.size, 1501, "{name}");
    for idx in [0u64, 700, 1499] {
        let p = log.inclusion_proof(idx, cp.size).await.unwrap();
        let leaf = leaf_hash(&receipt_entry_bytes(&receipt(by_index[idx as usize])));
        verify_inclusion(leaf, idx, cp.size, &p, cp.root).unwrap();
    }
    // Tiles agree with the entries they cover.
    let bundle = decode_entry_bundle(&log.tile(Tile::entries(1, 256)).await.unwrap()).unwrap();
    let tile0 = decode_hash_tile(&log.tile(Tile::hashes(0, 1, 256)).await.unwrap(), 256).unwrap();
    assert!(bundle.iter().zip(&tile0).all(|(e, h)| leaf_hash(e) == *h));
    let tile1 = log.tile(Tile::hashes(1, 0, 5)).await.unwrap();
    assert_eq!(tile1.len(), 5 * 32);
    assert_eq!(log.history("mnist-cnn").await.unwrap().len(), 1);
    drop(log);

    // Reopen: same tree, and new checkpoints extend the old one.
    let log = open_log(open().await, LogConfig::default()).await;
    assert_eq!(log.size(), 1501, "{name}");
    assert_eq!(log.latest_checkpoint().unwrap().root, cp.root);
    log.append_receipt(&receipt(9999)).await.unwrap();
    let cp2 = log.publish_checkpoint().await.unwrap().unwrap();
    let proof = log.consistency_proof(cp.size, cp2.size).await.unwrap();
    verify_consistency(cp.size, cp2.size, cp.root, cp2.root, &proof).unwrap();
    // Size-triggered checkpoints were published along the way (every >= 500 entries).
    let n = stored_checkpoints(store).await.len();
    assert!(n >= 4, "{name}: only {n} checkpoints stored");
    assert!(log.store().checkpoint_at(cp.size).await.unwrap().is_some());

    // A second writer on the same database.
    let other = open_log(open().await, LogConfig::default()).await;
    log.append_receipt(&receipt(10_000)).await.unwrap();
    if other.store().shared_writer().is_some() {
        // Shared (PostgreSQL): it takes the writer lock, catches up and appends after.
        assert_eq!(
            other.append_receipt(&receipt(10_001)).await.unwrap().index,
            1503
        );
    } else {
        // One writer (SQLite): its stale commit conflicts; then it re-reads and appends after.
        let err = other.append_receipt(&receipt(10_001)).await.unwrap_err();
        assert!(
            matches!(err, LogError::Store(StoreError::Conflict(_))),
            "{err}"
        );
        assert_eq!(
            other.append_receipt(&receipt(10_002)).await.unwrap().index,
            1503
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_appends_proves_serves_tiles_and_survives_reopen() {
    for b in common::backends("log_basic").await {
        let store = b.open().await;
        // The node's one store type, opened on whichever database the store runs.
        let shared = Arc::new(store.clone());
        appends_proves_serves_tiles_and_survives_reopen(b.name, &store, move || {
            let store = shared.clone();
            Box::pin(async move { LogBackend::open(&store).await.unwrap() })
        })
        .await;
    }
}

/// A pool of its own for one "node", its connections named so a test can find and kill them.
async fn node_pg(url: &str, node: &str, connections: u32) -> Pg {
    let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(connections)
        .connect_with(options.application_name(node))
        .await
        .unwrap();
    Pg::from_pool(pool)
}

fn batch(first_index: u64, frontier: &mut Frontier, data: &[&[u8]]) -> CommitBatch {
    let first_hash_index = vouch_log::merkle::stored_hash_index(0, first_index);
    let mut hashes = Vec::new();
    let mut entries = Vec::new();
    for d in data {
        hashes.extend(frontier.push(leaf_hash(d)));
        entries.push(EntryRow {
            kind: vouch_log::entry::EntryKind::Receipt,
            name: None,
            data: d.to_vec(),
        });
    }
    CommitBatch {
        first_index,
        entries,
        first_hash_index,
        hashes,
        checkpoint: None,
    }
}

/// Two writers on one database cannot fork the log: of two batches racing for the same
/// index exactly one commits, a batch at a stale index is refused, and a second checkpoint of
/// a stored size with another root is refused while the same checkpoint again is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_cannot_fork_the_postgres_log() {
    let Some(url) = common::fresh_postgres("log_fork").await else {
        return;
    };
    let a = PgLogStore::new(node_pg(&url, "a", 4).await).await.unwrap();
    let b = PgLogStore::new(node_pg(&url, "b", 4).await).await.unwrap();
    for round in 0..20u64 {
        let size = a.size().await.unwrap();
        let frontier = Frontier::from_subtree_roots(
            size,
            a.read_hashes(&Frontier::stored_indexes(size))
                .await
                .unwrap(),
        )
        .unwrap();
        let (mut fa, mut fb) = (frontier.clone(), frontier);
        let da = format!("a{round}").into_bytes();
        let db = format!("b{round}").into_bytes();
        let (ba, bb) = (
            batch(size, &mut fa, &[&da]),
            batch(size, &mut fb, &[&db, &db]),
        );
        let (ra, rb) = tokio::join!(a.commit(&ba), b.commit(&bb));
        assert!(
            ra.is_ok() != rb.is_ok(),
            "round {round}: exactly one commit wins: {ra:?} {rb:?}"
        );
        let loser = if ra.is_ok() { rb } else { ra };
        assert!(matches!(loser, Err(StoreError::Conflict(_))), "{loser:?}");
        // The loser retrying at its stale index is refused too.
        let stale = if a.size().await.unwrap() == size + 1 {
            &bb
        } else {
            &ba
        };
        assert!(matches!(
            b.commit(stale).await,
            Err(StoreError::Conflict(_))
        ));
    }
    let size = a.size().await.unwrap();
    assert!((20..=40).contains(&size), "{size}");
    let entries = a.read_entries(0, size).await.unwrap();
    let mut f = Frontier::new();
    for e in &entries {
        f.push(leaf_hash(e));
    }
    let root = Frontier::from_subtree_roots(
        size,
        a.read_hashes(&Frontier::stored_indexes(size))
            .await
            .unwrap(),
    )
    .unwrap()
    .root();
    assert_eq!(root, f.root(), "stored hashes are the entries' tree");

    let s = signer();
    let good = StoredCheckpoint {
        size,
        root,
        note: s.sign(size, root),
        created_ms: 1,
    };
    a.put_checkpoint(&good).await.unwrap();
    // The same checkpoint again, from the other node: accepted, nothing changes.
    b.put_checkpoint(&good).await.unwrap();
    assert_eq!(
        b.checkpoint_at(size).await.unwrap().unwrap().note,
        good.note
    );
    // Another root for the same size: refused, the stored one stays.
    let forged = Hash([9; 32]);
    let fork = StoredCheckpoint {
        size,
        root: forged,
        note: s.sign(size, forged),
        created_ms: 2,
    };
    assert!(matches!(
        b.put_checkpoint(&fork).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(a.checkpoint_at(size).await.unwrap().unwrap(), good);
    // A checkpoint of a size not stored yet, or with a root the stored tree does not have.
    let beyond = StoredCheckpoint {
        size: size + 1,
        root,
        note: s.sign(size + 1, root),
        created_ms: 3,
    };
    assert!(matches!(
        b.put_checkpoint(&beyond).await,
        Err(StoreError::Conflict(_))
    ));
    let wrong_root = StoredCheckpoint {
        size: size - 1,
        root,
        note: s.sign(size - 1, root),
        created_ms: 4,
    };
    assert!(matches!(
        a.put_checkpoint(&wrong_root).await,
        Err(StoreError::Conflict(_))
    ));
    // A batch carrying a checkpoint for another root at a new size is rolled back whole.
    let mut fa = f.clone();
    let mut bad = batch(size, &mut fa, &[b"x"]);
    bad.checkpoint = Some(StoredCheckpoint {
        size: size + 5,
        root: fa.root(),
        note: s.sign(size + 5, fa.root()),
        created_ms: 5,
    });
    assert!(matches!(a.commit(&bad).await, Err(StoreError::Conflict(_))));
    assert_eq!(a.size().await.unwrap(), size);
}

/// One node: its log and a task that follows other nodes' commits (`NOTIFY vouch_log`).
async fn node(url: &str, name: &str, config: LogConfig) -> Log<PgLogStore> {
    let store = PgLogStore::new(node_pg(url, name, 8).await).await.unwrap();
    let mut listener = store.listen().await.unwrap();
    let log = open_log(store, config).await;
    let follower = log.clone();
    tokio::spawn(async move {
        loop {
            // A lost connection is an error once; the next `recv` reconnects.
            if listener.recv().await.is_err() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let _ = follower.refresh().await;
        }
    });
    log
}

/// Every entry of the log, its tree checked against the stored hashes; `(data → index)`.
async fn audit(log: &Log<PgLogStore>) -> (u64, BTreeMap<Vec<u8>, u64>, Vec<Hash>) {
    let store = log.store();
    let size = store.size().await.unwrap();
    let entries = store.read_entries(0, size).await.unwrap();
    let mut f = Frontier::new();
    let mut roots = vec![f.root()];
    let mut at = BTreeMap::new();
    for (i, e) in entries.into_iter().enumerate() {
        f.push(leaf_hash(&e));
        roots.push(f.root());
        assert!(at.insert(e, i as u64).is_none(), "entry {i} is a duplicate");
    }
    let stored = Frontier::from_subtree_roots(
        size,
        store
            .read_hashes(&Frontier::stored_indexes(size))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(stored.root(), f.root());
    (size, at, roots)
}

/// Three nodes, each with its own pool, append concurrently through one database: every
/// acknowledged entry is at the index it was told, once; the nodes serve the same checkpoints
/// and tiles; every checkpoint is signed, matches the entries and is consistent with the next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_append_through_one_postgres_log() {
    let Some(url) = common::fresh_postgres("log_cluster").await else {
        return;
    };
    let w1 = witness("w1.test/witness", 11);
    let w2 = witness("w2.test/witness", 12);
    let config = LogConfig {
        checkpoint_every_entries: 200,
        witnesses: vec![w1.key().clone(), w2.key().clone()],
        ..Default::default()
    };
    let mut nodes = Vec::new();
    for n in 0..3 {
        nodes.push(node(&url, &format!("node{n}"), config.clone()).await);
    }
    let mut tasks = Vec::new();
    for (n, log) in nodes.iter().enumerate() {
        for w in 0..16u64 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                let mut acks = Vec::new();
                for k in 0..40u64 {
                    let i = (n as u64) * 1_000_000 + w * 1000 + k;
                    let a = log.append_receipt(&receipt(i)).await.unwrap();
                    acks.push((a.index, i));
                }
                acks
            }));
        }
    }
    let mut acks = Vec::new();
    for t in tasks {
        acks.extend(t.await.unwrap());
    }
    assert_eq!(acks.len(), 3 * 16 * 40);
    let (size, at, roots) = audit(&nodes[0]).await;
    assert_eq!(size, acks.len() as u64, "nothing lost, nothing extra");
    for &(index, i) in &acks {
        assert_eq!(at.get(&receipt_entry_bytes(&receipt(i))), Some(&index));
    }
    // A checkpoint for everything, published by one node, reaches the others.
    let cp = nodes[1].publish_checkpoint().await.unwrap().unwrap();
    assert_eq!(cp.size, size);
    for log in &nodes {
        let seen = log.wait_for_checkpoint(size - 1).await.unwrap();
        assert_eq!(seen, log.checkpoint_at(size).await.unwrap());
        assert_eq!(
            (seen.size, seen.root, &seen.note),
            (cp.size, cp.root, &cp.note)
        );
        assert_eq!(log.size(), size);
    }
    // Two witnesses cosign it, each through another node: every node serves both cosignatures,
    // in the same order, so the same checkpoint bytes.
    for (w, via) in [(w1, 0), (w2, 2)] {
        let mut w = w;
        let req = nodes[via].witness_request(0).await.unwrap();
        let resp = w.add_checkpoint(&req.to_body(), 1_700_000_000).unwrap();
        let cosig = parse_add_checkpoint_response(w.key(), &req.checkpoint, 200, &resp).unwrap();
        nodes[via]
            .add_cosignature(cp.size, &cosig.to_line())
            .await
            .unwrap();
    }
    let lines = nodes[1].store().cosignatures(size).await.unwrap();
    assert_eq!(lines.len(), 2);
    let mut served = cp.note.as_ref().clone();
    for l in &lines {
        served.extend_from_slice(l.as_bytes());
    }
    for log in &nodes {
        let deadline = Instant::now() + Duration::from_secs(30);
        while log.latest_checkpoint().unwrap().signed_note() != served {
            assert!(
                Instant::now() < deadline,
                "a node never took up the cosignatures"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(log.latest_checkpoint().unwrap().cosignatures.len(), 2);
    }
    // The same tiles from every node.
    let tile = Tile::hashes(0, 2, 256);
    let want = nodes[0].tile(tile).await.unwrap();
    for log in &nodes[1..] {
        assert_eq!(log.tile(tile).await.unwrap(), want);
    }
    // Every stored checkpoint: signed by the cluster's key, the entries' root, served alike
    // by every node, and consistent with the next (proof from a different node each time).
    let cps = stored_checkpoints(&Store::open_with(&pg_config(&url)).await.unwrap()).await;
    assert!(cps.len() >= 5, "{} checkpoints", cps.len());
    for (k, w) in cps.windows(2).enumerate() {
        let (old, new) = (&w[0], &w[1]);
        verify_checkpoint(&new.note, signer().key()).unwrap();
        assert_eq!(roots[new.size as usize], new.root);
        for log in &nodes {
            let v = log.checkpoint_at(new.size).await.unwrap();
            assert_eq!((v.root, v.note.as_ref()), (new.root, &new.note));
        }
        if old.size > 0 {
            let p = nodes[k % 3]
                .consistency_proof(old.size, new.size)
                .await
                .unwrap();
            verify_consistency(old.size, new.size, old.root, new.root, &p).unwrap();
        }
    }
}

fn pg_config(url: &str) -> vouch_store::StoreConfig {
    let dir = std::env::temp_dir().join(format!("vouch-log-conf-{}", std::process::id()));
    let mut c = vouch_store::StoreConfig::local(&dir);
    c.database = vouch_store::Database::Postgres(url.to_owned());
    c
}

async fn terminate(url: &str, sql: &str, arg: &str) -> i64 {
    let admin = sqlx::PgPool::connect(url).await.unwrap();
    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .bind(arg)
        .fetch_one(&admin)
        .await
        .unwrap();
    admin.close().await;
    n
}

/// The writer dies while holding the lock (its backend is terminated, as when its node is
/// killed): the next node's append, which was waiting for the lock, goes through at once. Then
/// the same mid-load: one node's connections are killed repeatedly while three nodes append;
/// no acknowledged entry is lost or duplicated, and entries whose append failed are in the log
/// at most once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_writer_is_replaced_and_loses_nothing() {
    let Some(url) = common::fresh_postgres("log_failover").await else {
        return;
    };
    let a = node(&url, "a", LogConfig::default()).await;
    let b = node(&url, "b", LogConfig::default()).await;
    a.append_receipt(&receipt(1)).await.unwrap();

    // a's sequencer stalls holding the lock; b's append waits behind it.
    let held = a.store().lock_writer().await.unwrap();
    let waiting = {
        let b = b.clone();
        tokio::spawn(async move { b.append_receipt(&receipt(2)).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "appended while another held the lock"
    );
    let killed = Instant::now();
    let n = terminate(
        &url,
        "SELECT count(*) FROM (SELECT pg_terminate_backend($1::int)) t",
        &held.backend_pid().to_string(),
    )
    .await;
    assert_eq!(n, 1);
    let appended = waiting.await.unwrap().unwrap();
    let takeover = killed.elapsed();
    eprintln!("fail-over: the waiting node appended {takeover:?} after the writer was killed");
    assert_eq!(appended.index, 1);
    drop(held);

    // a's sequencer hangs holding the lock (no kill): PostgreSQL ends its session once it has
    // sat idle in its transaction for WRITER_IDLE_TIMEOUT, and b's append goes through.
    let held = a.store().lock_writer().await.unwrap();
    let hung = Instant::now();
    let appended = tokio::time::timeout(Duration::from_secs(60), b.append_receipt(&receipt(3)))
        .await
        .expect("the hung writer's lock was never released")
        .unwrap();
    eprintln!(
        "fail-over: the waiting node appended {:?} after the writer hung (idle timeout {})",
        hung.elapsed(),
        vouch_store::pg::log::WRITER_IDLE_TIMEOUT
    );
    assert_eq!(appended.index, 2);
    assert!(
        Box::new(held)
            .commit(&batch(2, &mut Frontier::new(), &[b"late"]))
            .await
            .is_err(),
        "the hung writer's transaction was ended"
    );

    // Mid-load: three nodes append, node "c0"'s connections are killed five times.
    let nodes = [
        node(&url, "c0", LogConfig::default()).await,
        node(&url, "c1", LogConfig::default()).await,
        node(&url, "c2", LogConfig::default()).await,
    ];
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for (n, log) in nodes.iter().enumerate() {
        for w in 0..8u64 {
            let (log, stop) = (log.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let (mut ok, mut failed) = (Vec::new(), Vec::new());
                let mut k = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let i = 10_000_000 + (n as u64) * 1_000_000 + w * 10_000 + k;
                    k += 1;
                    match log.append_receipt(&receipt(i)).await {
                        Ok(a) => ok.push((a.index, i)),
                        Err(_) => failed.push(i),
                    }
                }
                (n, ok, failed)
            }));
        }
    }
    let mut kills = 0;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        kills += terminate(
            &url,
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE application_name = $1) t",
            "c0",
        )
        .await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut ok, mut failed) = (Vec::new(), Vec::new());
    let mut ok_by_node = [0usize; 3];
    for t in tasks {
        let (n, o, f) = t.await.unwrap();
        ok_by_node[n] += o.len();
        ok.extend(o);
        failed.extend(f);
    }
    assert!(kills > 0, "no connection of c0 was killed");
    assert!(ok_by_node.iter().all(|&n| n > 0), "{ok_by_node:?}");
    // c0 itself recovers: after the kills its appends go through again.
    nodes[0]
        .append_receipt(&receipt(u64::MAX / 3))
        .await
        .unwrap();
    let (size, at, _) = audit(&nodes[1]).await;
    for &(index, i) in &ok {
        assert_eq!(
            at.get(&receipt_entry_bytes(&receipt(i))),
            Some(&index),
            "acknowledged entry {i} lost or moved"
        );
    }
    let failed_in_log = failed
        .iter()
        .filter(|&&i| at.contains_key(&receipt_entry_bytes(&receipt(i))))
        .count();
    // 3 entries before the load, one after; every other entry is an acknowledged append or a
    // failed one whose commit reached the database before its answer was lost.
    assert_eq!(size as usize, 4 + ok.len() + failed_in_log);
    let unique: HashSet<u64> = ok.iter().map(|&(index, _)| index).collect();
    assert_eq!(unique.len(), ok.len());
    eprintln!(
        "fail-over under load: {kills} connections of one node killed, {} appends acknowledged \
         {ok_by_node:?}, {} failed ({failed_in_log} of them committed anyway), log size {size}",
        ok.len(),
        failed.len()
    );
}

/// Child half of the kill -9 test: a node appending from 32 clients, printing
/// `ack <index> <i>` for each acknowledged append. Runs only when the parent sets the URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of a_node_killed_by_sigkill_loses_no_acknowledged_entry"]
async fn pg_node_child() {
    let Ok(url) = std::env::var("VOUCH_LOG_PG_CHILD_URL") else {
        return;
    };
    let log = node(
        &url,
        "child",
        LogConfig {
            checkpoint_every_entries: 300,
            ..Default::default()
        },
    )
    .await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, u64)>();
    for w in 0..32u64 {
        let (log, tx) = (log.clone(), tx.clone());
        tokio::spawn(async move {
            for k in 0.. {
                let i = 50_000_000 + w * 1_000_000 + k;
                let a = log.append_receipt(&receipt(i)).await.unwrap();
                let _ = tx.send((a.index, i));
            }
        });
    }
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    while let Some((index, i)) = rx.recv().await {
        writeln!(out, "ack {index} {i}").unwrap();
        out.flush().unwrap();
    }
}

/// kill -9 of a node (another process) while it and this process's node append through one
/// database: this node keeps appending with no stall beyond a commit or two, every entry either
/// node acknowledged is in the log at its index exactly once, and the checkpoints both signed
/// are consistent with each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_by_sigkill_loses_no_acknowledged_entry() {
    use std::io::{BufRead, BufReader};
    let Some(url) = common::fresh_postgres("log_sigkill").await else {
        return;
    };
    let config = LogConfig {
        checkpoint_every_entries: 300,
        ..Default::default()
    };
    let here = node(&url, "here", config).await;
    here.append_receipt(&receipt(0)).await.unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "pg_node_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("VOUCH_LOG_PG_CHILD_URL", &url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // This node appends throughout, recording when each append was acknowledged.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for w in 0..16u64 {
        let (log, stop) = (here.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut acks = Vec::new();
            let mut k = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let i = 1 + w * 1_000_000 + k;
                k += 1;
                let a = log.append_receipt(&receipt(i)).await.unwrap();
                acks.push((a.index, i, Instant::now()));
            }
            acks
        }));
    }
    let reader = tokio::task::spawn_blocking(move || {
        let mut acks = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let mut parts = line.split(' ');
            if parts.next() == Some("ack") {
                let index: u64 = parts.next().unwrap().parse().unwrap();
                let i: u64 = parts.next().unwrap().parse().unwrap();
                acks.push((index, i));
            }
            if acks.len() >= 3000 {
                break;
            }
        }
        (acks, child)
    });
    let (child_acks, mut child) = reader.await.unwrap();
    // SIGKILL mid-flight: the child's committer is likely inside a transaction holding the lock.
    child.kill().unwrap();
    let killed = Instant::now();
    child.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut here_acks = Vec::new();
    for t in tasks {
        here_acks.extend(t.await.unwrap());
    }
    assert!(
        child_acks.len() >= 100,
        "child acknowledged {}",
        child_acks.len()
    );
    let after: Vec<Instant> = here_acks
        .iter()
        .map(|a| a.2)
        .filter(|t| *t > killed)
        .collect();
    let first_after = after.iter().min().expect("no append after the kill");
    eprintln!(
        "sigkill: {} acknowledged by the killed node, {} by this one; this node's first append \
         after the kill {:?} later, {} in the 500 ms after",
        child_acks.len(),
        here_acks.len(),
        first_after.duration_since(killed),
        after.len()
    );
    let (size, at, roots) = audit(&here).await;
    for (index, i) in child_acks
        .iter()
        .copied()
        .chain(here_acks.iter().map(|a| (a.0, a.1)))
    {
        assert_eq!(
            at.get(&receipt_entry_bytes(&receipt(i))),
            Some(&index),
            "acknowledged entry {i} lost or moved"
        );
    }
    assert!(size as usize >= 1 + child_acks.len() + here_acks.len());
    let cp = here.publish_checkpoint().await.unwrap().unwrap();
    let cps = stored_checkpoints(&Store::open_with(&pg_config(&url)).await.unwrap()).await;
    assert!(cps.len() >= 3, "{} checkpoints", cps.len());
    for old in cps.iter().filter(|c| c.size > 0) {
        verify_checkpoint(&old.note, signer().key()).unwrap();
        assert_eq!(roots[old.size as usize], old.root);
        let p = here.consistency_proof(old.size, cp.size).await.unwrap();
        verify_consistency(old.size, cp.size, old.root, cp.root, &p).unwrap();
    }
}
