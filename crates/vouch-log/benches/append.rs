//! Durable append throughput and the latency an append adds, through the real group-commit
//! appender on real SQLite (temp file, WAL), side by side with `synchronous = NORMAL` and the
//! in-memory store so the cost of durability is visible as a ratio.
//!
//! `cargo bench -p vouch-log --bench append`. Prints p50/p99/max append latency per
//! configuration after criterion's throughput lines.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ed25519_dalek::SigningKey;
use vouch_core::{
    Digest, EngineInfo, ExecProfile, ModelDigest, NodeKey, RECEIPT_VERSION, Receipt, Tier,
};
use vouch_log::checkpoint::LogSigner;
use vouch_log::log::{Log, LogConfig};
use vouch_log::store::{LogStore, MemoryStore};
use vouch_store::Synchronous;
use vouch_store::log_store::SqliteLogStore;

/// Appends per measured iteration.
const PER_ITER: u64 = 20_000;

/// A receipt as the node hands it to the log: its canonical bytes and its request id (the
/// entry's lookup key).
struct Logged {
    request_id: String,
    canonical: Vec<u8>,
}

impl Logged {
    fn of(r: &Receipt) -> Self {
        Logged {
            request_id: r.request_id.clone(),
            canonical: r.canonical_bytes(),
        }
    }
}

fn receipt(i: u64) -> Receipt {
    Receipt {
        version: RECEIPT_VERSION,
        request_id: format!("0190e5d2-{i:012}"),
        model: ModelDigest(Digest::of(b"model")),
        model_ref: Some("mnist-cnn@1".into()),
        input_digest: Digest::of(&i.to_be_bytes()),
        output_digest: Digest::of(&(i ^ 1).to_be_bytes()),
        engine: EngineInfo {
            name: "onnxruntime".into(),
            version: "1.22.0".into(),
            profile: ExecProfile {
                threads: 1,
                deterministic: true,
                batch: 8,
            },
        },
        config_digest: None,
        tiers: vec![Tier::Signed],
        node_key: NodeKey([7; 32]),
        issued_at: "2026-11-25T12:00:00.000Z".into(),
        payment: None,
    }
}

/// Runs `n` appends from `conc` concurrent clients; returns wall time and every latency. Each
/// append logs one of `receipts` (canonical bytes computed beforehand, as the server has them
/// from signing), so the time measured is the log's alone.
async fn run<S: LogStore>(
    log: &Log<S>,
    n: u64,
    conc: u64,
    receipts: &Arc<Vec<Logged>>,
) -> (Duration, Vec<Duration>) {
    let start = Instant::now();
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (log, done, receipts) = (log.clone(), done.clone(), receipts.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let k = done.fetch_add(1, Ordering::Relaxed);
                if k >= n {
                    break;
                }
                let r = &receipts[(k as usize) % receipts.len()];
                let t = Instant::now();
                log.append_receipt_canonical(&r.canonical, &r.request_id)
                    .await
                    .expect("append");
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    (start.elapsed(), all)
}

/// Process CPU time (user + system) in seconds, from /proc (Linux): the load-independent cost.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // After the ")" field 3 is state; utime and stime are stat fields 14 and 15.
    (ticks(11) + ticks(12)) / 100.0
}

fn report(name: &str, lat: &mut [Duration], cpu: f64) {
    if lat.is_empty() {
        return;
    }
    lat.sort();
    let p = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    let cpu_us = cpu * 1e6 / lat.len() as f64;
    println!(
        "latency {name}: n={} p50={:.2?} p99={:.2?} max={:.2?}; cpu {cpu_us:.1} µs/append \
         (=> {:.0} appends/s on 2 idle cores)",
        lat.len(),
        p(0.50),
        p(0.99),
        lat[lat.len() - 1],
        2e6 / cpu_us,
    );
}

fn signer() -> LogSigner {
    LogSigner::from_signing_key("bench.vouch/log", SigningKey::from_bytes(&[1; 32]))
        .expect("signer")
}

fn config() -> LogConfig {
    // Defaults: checkpoints every 4096 entries, batches up to 8192.
    LogConfig::default()
}

fn bench_store<S: LogStore>(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    label: &str,
    store: S,
) {
    let log = rt.block_on(async {
        let (log, committer) = Log::open(store, signer(), config()).await.expect("open");
        tokio::spawn(committer.run());
        log
    });
    let receipts: Arc<Vec<Logged>> = Arc::new((0..4096).map(|i| Logged::of(&receipt(i))).collect());
    let mut group = c.benchmark_group("log_append");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));
    for conc in [8u64, 256, 1024] {
        // Few clients cannot fill a batch: fewer appends per iteration keep the run short.
        let per_iter = if conc < 64 { PER_ITER / 10 } else { PER_ITER };
        group.throughput(Throughput::Elements(per_iter));
        let lat = Arc::new(Mutex::new(Vec::new()));
        let cpu = Arc::new(Mutex::new(0.0f64));
        group.bench_function(BenchmarkId::new(label, conc), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let c0 = cpu_seconds();
                    let (d, l) = rt.block_on(run(&log, per_iter, conc, &receipts));
                    *cpu.lock().expect("lock") += cpu_seconds() - c0;
                    total += d;
                    lat.lock().expect("lock").extend(l);
                }
                total
            })
        });
        let cpu = *cpu.lock().expect("lock");
        report(
            &format!("{label}/{conc}"),
            &mut lat.lock().expect("lock"),
            cpu,
        );
    }
    group.finish();
}

/// The per-append work done outside the committer (on the request's task).
fn parts(c: &mut Criterion) {
    let mut g = c.benchmark_group("log_append_parts");
    let r = receipt(42);
    g.bench_function("receipt_entry_bytes", |b| {
        b.iter(|| vouch_log::entry::receipt_entry_bytes(&r))
    });
    let e = vouch_log::entry::receipt_entry_bytes(&r);
    println!("receipt entry: {} bytes", e.len());
    g.bench_function("leaf_hash", |b| b.iter(|| vouch_log::merkle::leaf_hash(&e)));
    let mut f = vouch_log::merkle::Frontier::new();
    let h = vouch_log::merkle::leaf_hash(&e);
    g.bench_function("frontier_push", |b| b.iter(|| f.push(h)));
    let signer = signer();
    g.bench_function("sign_checkpoint", |b| b.iter(|| signer.sign(1_000_000, h)));
    g.finish();
}

fn append(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = std::env::temp_dir().join(format!("vouch-log-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let full = rt
        .block_on(SqliteLogStore::open_with(
            &dir.join("full.db"),
            Synchronous::Full,
        ))
        .expect("db");
    bench_store(c, &rt, "sqlite_full", full);
    let normal = rt
        .block_on(SqliteLogStore::open_with(
            &dir.join("normal.db"),
            Synchronous::Normal,
        ))
        .expect("db");
    bench_store(c, &rt, "sqlite_normal", normal);
    bench_store(c, &rt, "memory", MemoryStore::new());
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, parts, append);
criterion_main!(benches);
