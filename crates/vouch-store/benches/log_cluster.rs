//! Durable appends/s through the PostgreSQL log (one node, and three nodes sharing it) beside
//! the SQLite log, in one run, and the time another node takes over when the writer dies or
//! hangs. Every append returns only after the `COMMIT` holding it (group commit per node).
//!
//! `VOUCH_TEST_POSTGRES=postgres://… cargo bench -p vouch-store --bench log_cluster`
//! (`tests/services/postgres.sh start` prints the variable). Without it only SQLite runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use vouch_core::{
    Digest, EngineInfo, ExecProfile, ModelDigest, NodeKey, RECEIPT_VERSION, Receipt, Tier,
};
use vouch_log::checkpoint::LogSigner;
use vouch_log::log::{Log, LogConfig};
use vouch_log::store::LogStore;
use vouch_store::Pg;
use vouch_store::log_store::SqliteLogStore;
use vouch_store::pg::log::PgLogStore;

/// Appends per measurement.
const N: u64 = 30_000;

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

fn signer() -> LogSigner {
    LogSigner::from_signing_key(
        "bench.vouch/log",
        ed25519_dalek::SigningKey::from_bytes(&[1; 32]),
    )
    .unwrap()
}

async fn open<S: LogStore>(store: S) -> Log<S> {
    let (log, committer) = Log::open(store, signer(), LogConfig::default())
        .await
        .unwrap();
    tokio::spawn(committer.run());
    log
}

/// `n` appends from `conc` clients spread over `nodes`; appends/s and p50/p99 latency.
async fn run<S: LogStore>(
    nodes: &[Log<S>],
    n: u64,
    conc: u64,
    receipts: &Arc<Vec<Logged>>,
) -> (f64, Duration, Duration) {
    let start = Instant::now();
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..conc {
        let log = nodes[(c as usize) % nodes.len()].clone();
        let (done, receipts) = (done.clone(), receipts.clone());
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
                    .unwrap();
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort();
    let p = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    (n as f64 / secs, p(0.5), p(0.99))
}

/// A new empty database on the server at `admin`; its URL.
async fn fresh_db(admin: &str, name: &str) -> String {
    let pool = sqlx::PgPool::connect(admin).await.unwrap();
    for sql in [
        format!("DROP DATABASE IF EXISTS {name}"),
        format!("CREATE DATABASE {name}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;
    let (base, _) = admin.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

async fn pg_nodes(url: &str, n: usize) -> Vec<Log<PgLogStore>> {
    let mut out = Vec::new();
    for _ in 0..n {
        let store = PgLogStore::new(Pg::connect(url, 8).await.unwrap())
            .await
            .unwrap();
        out.push(open(store).await);
    }
    out
}

fn line(label: &str, conc: u64, (rate, p50, p99): (f64, Duration, Duration)) -> f64 {
    println!(
        "{label:<22} {conc:>5} clients: {rate:>8.0} appends/s  p50 {p50:>9.2?}  p99 {p99:>9.2?}"
    );
    rate
}

/// Time from the writer's death (backend terminated) or hang (idle timeout) to the next append
/// another node completes, while `nodes` append under load.
async fn failover(
    url: &str,
    nodes: &[Log<PgLogStore>],
    receipts: &Arc<Vec<Logged>>,
    kill: bool,
) -> Duration {
    let stop = Arc::new(AtomicU64::new(0));
    let last_ok = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let held = nodes[0].store().lock_writer().await.unwrap();
    // A hung writer's clock starts when it stops (its transaction goes idle here).
    let hung_at = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..64u64 {
        let log = nodes[1 + (c as usize) % (nodes.len() - 1)].clone();
        let (stop, last_ok, receipts) = (stop.clone(), last_ok.clone(), receipts.clone());
        tasks.push(tokio::spawn(async move {
            let mut k = c;
            while stop.load(Ordering::Relaxed) == 0 {
                let r = &receipts[(k as usize) % receipts.len()];
                if log
                    .append_receipt_canonical(&r.canonical, &r.request_id)
                    .await
                    .is_ok()
                {
                    let mut l = last_ok.lock().unwrap();
                    l.get_or_insert_with(Instant::now);
                }
                k += 64;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        last_ok.lock().unwrap().is_none(),
        "appended past a held lock"
    );
    let t0 = if kill { Instant::now() } else { hung_at };
    if kill {
        let admin = sqlx::PgPool::connect(url).await.unwrap();
        sqlx::query("SELECT pg_terminate_backend($1)")
            .bind(held.backend_pid())
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
    }
    let took = loop {
        if let Some(t) = *last_ok.lock().unwrap() {
            break t.duration_since(t0);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    stop.store(1, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    drop(held);
    took
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let receipts: Arc<Vec<Logged>> =
            Arc::new((0..4096).map(|i| Logged::of(&receipt(i))).collect());
        let admin = std::env::var("VOUCH_TEST_POSTGRES").ok();
        let dir = tempfile::tempdir().unwrap();
        for conc in [64u64, 512] {
            let sqlite = open(
                SqliteLogStore::open(&dir.path().join(format!("log-{conc}.db")))
                    .await
                    .unwrap(),
            )
            .await;
            run(std::slice::from_ref(&sqlite), 2_000, conc, &receipts).await;
            let s = line("sqlite (full sync)", conc, run(&[sqlite], N, conc, &receipts).await);
            let Some(admin) = &admin else {
                println!("VOUCH_TEST_POSTGRES unset: PostgreSQL skipped");
                continue;
            };
            for n in [1usize, 3] {
                let url = fresh_db(admin, &format!("bench_log_{conc}_{n}")).await;
                let nodes = pg_nodes(&url, n).await;
                run(&nodes, 2_000, conc, &receipts).await;
                let label = format!("postgres, {n} node(s)");
                let r = line(&label, conc, run(&nodes, N, conc, &receipts).await);
                println!("{:<22} ratio postgres / sqlite: {:.2}", "", r / s);
            }
        }
        if let Some(admin) = &admin {
            let url = fresh_db(admin, "bench_log_failover").await;
            let nodes = pg_nodes(&url, 3).await;
            let mut kills: Vec<Duration> = Vec::new();
            for _ in 0..5 {
                kills.push(failover(&url, &nodes, &receipts, true).await);
            }
            kills.sort();
            println!(
                "fail-over, writer killed: median {:.1?}, max {:.1?} (5 runs, 64 clients on two other nodes)",
                kills[2], kills[4]
            );
            let hang = failover(&url, &nodes, &receipts, false).await;
            println!(
                "fail-over, writer hung: {hang:.2?} (idle timeout {})",
                vouch_store::pg::log::WRITER_IDLE_TIMEOUT
            );
        }
    });
}
