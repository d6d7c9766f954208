//! Settlements/s through the ledger, side by side in one run: the SQLite ledger (one owning
//! process, settlements decided in memory and written behind, each synced before it returns)
//! and the PostgreSQL ledger with one and three "nodes" (pools of their own) settling at once.
//! Every settlement moves money between two balance rows and takes two journal numbers from
//! the one head row, so this is the cluster's ledger ceiling on this machine (docs/scale.md).
//!
//! `VOUCH_TEST_POSTGRES=postgres://… cargo bench -p vouch-store --bench ledger_cluster`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use vouch_pay::store::{AuthorizationKey, Ledger, SettleOutcome, SettlementRecord};
use vouch_pay::{Address, B256, U256};
use vouch_store::pay_store::SettleDurability;
use vouch_store::pg::pay::PayBackend;
use vouch_store::{Database, Store, StoreConfig};

/// Concurrent settlements in flight.
const IN_FLIGHT: u64 = 64;
const WINDOW: Duration = Duration::from_secs(5);

fn settlement(payer: u64, nonce: u64) -> SettlementRecord {
    let mut p = [0u8; 20];
    p[12..].copy_from_slice(&payer.to_be_bytes());
    let mut n = [0u8; 32];
    n[24..].copy_from_slice(&nonce.to_be_bytes());
    SettlementRecord {
        key: AuthorizationKey {
            chain_id: 84532,
            asset: Address::repeat_byte(0xaa),
            payer: Address::from(p),
            nonce: B256::from(n),
        },
        digest: B256::repeat_byte(7),
        pay_to: Address::repeat_byte(0xee),
        amount: U256::from(1u64),
        reference: format!("bench-{payer}-{nonce}"),
        settled_at: 1_700_000_000,
        refund: None,
    }
}

/// Settlements/s over [`WINDOW`] with [`IN_FLIGHT`] at once spread over `nodes`.
async fn measure(nodes: &[PayBackend]) -> f64 {
    for payer in 0..IN_FLIGHT {
        let a = settlement(payer, 0).accounts().0;
        nodes[0]
            .credit(&a, U256::from(1_000_000u64), "bench")
            .await
            .unwrap();
    }
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..IN_FLIGHT)
        .map(|payer| {
            let (node, done) = (nodes[payer as usize % nodes.len()].clone(), done.clone());
            tokio::spawn(async move {
                let mut nonce = 1;
                while start.elapsed() < WINDOW {
                    let out = node.settle(&settlement(payer, nonce)).await.unwrap();
                    assert!(matches!(out, SettleOutcome::Settled(_)));
                    nonce += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

async fn open(config: &StoreConfig) -> PayBackend {
    let store = Store::open_with(config).await.unwrap();
    PayBackend::open(&store, SettleDurability::Own)
        .await
        .unwrap()
}

async fn fresh_database(admin: &str, name: &str) -> String {
    let pool = sqlx::PgPool::connect(admin).await.unwrap();
    for q in [
        format!("DROP DATABASE IF EXISTS {name}"),
        format!("CREATE DATABASE {name}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(q))
            .execute(&pool)
            .await
            .unwrap();
    }
    let (base, _) = admin.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = measure(&[open(&StoreConfig::local(dir.path())).await]).await;
        println!("ledger, {IN_FLIGHT} settlements in flight, {WINDOW:?} windows");
        println!("  SQLite (one owner, synced)      {sqlite:>8.0} settlements/s");
        let Ok(admin) = std::env::var("VOUCH_TEST_POSTGRES") else {
            println!("  (VOUCH_TEST_POSTGRES unset: PostgreSQL not measured)");
            return;
        };
        for nodes in [1usize, 3] {
            let url = fresh_database(&admin, &format!("ledger_bench_{nodes}")).await;
            let d = tempfile::tempdir().unwrap();
            let mut config = StoreConfig::local(d.path());
            config.database = Database::Postgres(url);
            let mut handles = Vec::new();
            for _ in 0..nodes {
                handles.push(open(&config).await);
            }
            let pg = measure(&handles).await;
            println!(
                "  PostgreSQL, {nodes} node{}            {pg:>8.0} settlements/s  ({:.2} × SQLite)",
                if nodes > 1 { "s" } else { " " },
                pg / sqlite
            );
        }
    });
}
