//! Proof generation and verification up to 10 million entries.
//!
//! Generation reads the stored hashes a proof needs (at most 2·log₂ n) and assembles the proof;
//! measured against an in-memory copy of the stored hashes for sizes 10³…10⁷ (so growth with n
//! is visible) and against real SQLite at 10⁷. The SQLite tree is built once by bulk-loading the
//! 10⁷-entry tree's ~2·10⁷ stored hashes and kept at `$VOUCH_BENCH_DIR/log-10m.db` (default:
//! `vouch-bench` in the system temp dir; ~850 MB) for later runs. Verification is pure CPU.
//!
//! `cargo bench -p vouch-log --bench proofs`

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use ed25519_dalek::SigningKey;
use vouch_log::checkpoint::LogSigner;
use vouch_log::cosign::Cosigner;
use vouch_log::evidence::{TrustPolicy, verify_inclusion_offline};
use vouch_log::merkle::{
    Frontier, Hash, consistency_plan, inclusion_plan, leaf_hash, stored_hash_count,
    verify_consistency, verify_inclusion,
};
use vouch_log::proof::TlogProof;
use vouch_log::store::LogStore;
use vouch_store::log_store::SqliteLogStore;

const BIG: u64 = 10_000_000;

fn entry(i: u64) -> Vec<u8> {
    format!("vouch-log/v1 bench\n{i}").into_bytes()
}

/// Stored hashes of the BIG tree (every smaller size's are a prefix of them).
fn build(n: u64) -> Vec<Hash> {
    let mut f = Frontier::new();
    let mut stored = Vec::with_capacity(stored_hash_count(n) as usize);
    for i in 0..n {
        stored.extend(f.push(leaf_hash(&entry(i))));
    }
    stored
}

fn read(stored: &[Hash], idx: &[u64]) -> Vec<Hash> {
    idx.iter().map(|&i| stored[i as usize]).collect()
}

fn root(stored: &[Hash], size: u64) -> Hash {
    let idx = Frontier::stored_indexes(size);
    Frontier::from_subtree_roots(size, read(stored, &idx))
        .expect("frontier")
        .root()
}

/// A cheap deterministic index sequence spread over `[0, size)`.
fn spread(k: u64, size: u64) -> u64 {
    k.wrapping_mul(0x9E37_79B9_7F4A_7C15) % size
}

fn proofs(c: &mut Criterion) {
    let t = std::time::Instant::now();
    let stored = build(BIG);
    println!(
        "built {BIG}-entry tree ({} stored hashes) in {:.1?}",
        stored.len(),
        t.elapsed()
    );

    let mut g = c.benchmark_group("proof_generation_memory");
    for size in [1_000u64, 10_000, 100_000, 1_000_000, BIG] {
        let mut k = 0u64;
        g.bench_function(BenchmarkId::new("inclusion", size), |b| {
            b.iter(|| {
                k += 1;
                let plan = inclusion_plan(spread(k, size), size).expect("plan");
                plan.assemble(&read(&stored, &plan.indexes))
                    .expect("assemble")
            })
        });
        let mut k = 0u64;
        g.bench_function(BenchmarkId::new("consistency", size), |b| {
            b.iter(|| {
                k += 1;
                let old = 1 + spread(k, size - 1);
                let plan = consistency_plan(old, size).expect("plan");
                plan.assemble(&read(&stored, &plan.indexes))
                    .expect("assemble")
            })
        });
    }
    g.finish();

    // Verification at 10M: inclusion, consistency, and a whole offline bundle check
    // (checkpoint signature + witness cosignature + inclusion).
    let big_root = root(&stored, BIG);
    let index = 7_654_321;
    let plan = inclusion_plan(index, BIG).expect("plan");
    let ip = plan
        .assemble(&read(&stored, &plan.indexes))
        .expect("assemble");
    let leaf = leaf_hash(&entry(index));
    let old = 3_333_333;
    let old_root = root(&stored, old);
    let cplan = consistency_plan(old, BIG).expect("plan");
    let cp = cplan
        .assemble(&read(&stored, &cplan.indexes))
        .expect("assemble");
    println!(
        "proof lengths at {BIG}: inclusion {} hashes, consistency {} hashes",
        ip.len(),
        cp.len()
    );
    let log = LogSigner::from_signing_key("bench.vouch/log", SigningKey::from_bytes(&[1; 32]))
        .expect("signer");
    let w = Cosigner::from_signing_key("bench.witness", SigningKey::from_bytes(&[2; 32]))
        .expect("cosigner");
    let mut note = log.sign(BIG, big_root);
    let parsed = vouch_log::checkpoint::SignedNote::parse(&note).expect("note");
    note.extend_from_slice(
        w.cosign(&parsed.text, 1_764_072_000)
            .expect("cosign")
            .to_line()
            .as_bytes(),
    );
    let tp = TlogProof {
        extra: None,
        index,
        hashes: ip.clone(),
        checkpoint: note,
    };
    let policy = TrustPolicy {
        log: log.key().clone(),
        witnesses: vec![w.key().clone()],
        threshold: 1,
    };

    let mut g = c.benchmark_group("proof_verification_10m");
    g.bench_function("inclusion", |b| {
        b.iter(|| verify_inclusion(leaf, index, BIG, &ip, big_root).expect("ok"))
    });
    g.bench_function("consistency", |b| {
        b.iter(|| verify_consistency(old, BIG, old_root, big_root, &cp).expect("ok"))
    });
    g.bench_function("offline_bundle_log_check", |b| {
        b.iter(|| verify_inclusion_offline(&tp, &entry(index), &policy).expect("ok"))
    });
    g.finish();

    // SQLite at 10M.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = std::env::var("VOUCH_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir().join("vouch-bench"));
    std::fs::create_dir_all(&dir).expect("bench dir");
    let path = dir.join("log-10m.db");
    let store = rt.block_on(SqliteLogStore::open(&path)).expect("db");
    let have: i64 = rt
        .block_on(store.pool().run(|c| {
            c.query_row("SELECT COALESCE(MAX(idx) + 1, 0) FROM log_hash", [], |r| {
                r.get(0)
            })
        }))
        .expect("count");
    if have as u64 != stored.len() as u64 {
        let t = std::time::Instant::now();
        rt.block_on(store.pool().run(|c| c.execute("DELETE FROM log_hash", [])))
            .expect("reset");
        for (k, chunk) in stored.chunks(1 << 20).enumerate() {
            rt.block_on(store.bulk_load_hashes((k as u64) << 20, chunk))
                .expect("load");
        }
        println!(
            "loaded {} hashes into SQLite in {:.1?}",
            stored.len(),
            t.elapsed()
        );
    }
    let mut g = c.benchmark_group("proof_generation_sqlite_10m");
    g.measurement_time(Duration::from_secs(5));
    let mut k = 0u64;
    g.bench_function("inclusion", |b| {
        b.iter(|| {
            k += 1;
            let plan = inclusion_plan(spread(k, BIG), BIG).expect("plan");
            let h = rt.block_on(store.read_hashes(&plan.indexes)).expect("read");
            plan.assemble(&h).expect("assemble")
        })
    });
    let mut k = 0u64;
    g.bench_function("consistency", |b| {
        b.iter(|| {
            k += 1;
            let plan = consistency_plan(1 + spread(k, BIG - 1), BIG).expect("plan");
            let h = rt.block_on(store.read_hashes(&plan.indexes)).expect("read");
            plan.assemble(&h).expect("assemble")
        })
    });
    let mut k = 0u64;
    g.bench_function("tile_level0", |b| {
        b.iter(|| {
            k += 1;
            let t = vouch_log::tiles::Tile::hashes(0, spread(k, BIG / 256), 256);
            rt.block_on(store.read_hashes(&t.hash_indexes(BIG).expect("in tree")))
                .expect("read")
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3));
    targets = proofs
}
criterion_main!(benches);
