//! Shared fixtures: a real store (through `vouch-store`, as the server opens it: SQLite, or
//! PostgreSQL on the test server with [`Node::on_postgres`]), the built-in facilitator over it,
//! a gate, payers, a payment forger for attacks, and a tiny HTTP facilitator endpoint for
//! exercising the remote client.
#![allow(dead_code, clippy::unwrap_used)]

use alloy_signer_local::PrivateKeySigner;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vouch_pay::config::Offer;
use vouch_pay::facilitator::{Facilitator, serve_settle, serve_verify};
use vouch_pay::local::system_now;
use vouch_pay::payer::{generate_key, sign_authorization, wire_of};
use vouch_pay::store::{Account, Ledger};
use vouch_pay::verify::{TransferWithAuthorization, parse_address};
use vouch_pay::wire::{
    ExactEvmPayload, FacilitatorRequest, PaymentPayloadV2, PaymentRequirementsV2, ResourceInfo,
    encode_header,
};
use vouch_pay::{
    Address, B256, GateConfig, LocalFacilitator, PayConfig, PayTerms, PaymentGate, U256,
};
use vouch_store::pay_store::{SettleDurability, SqlitePayStore};
use vouch_store::pg::pay::PayBackend;
use vouch_store::{Database, StoreConfig};

pub const PRICE: u64 = 1500;
pub const CHAIN: u64 = 84532;

pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let p = std::env::temp_dir().join(format!("vouch-pay-it-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One node's payment stack over a real database in a temp dir.
pub struct Node {
    pub dir: TempDir,
    pub store: Arc<PayBackend>,
    pub facilitator: Arc<LocalFacilitator>,
    pub gate: Arc<PaymentGate>,
    pub terms: PayTerms,
}

pub fn terms() -> PayTerms {
    let pay_to = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C";
    PayConfig {
        enabled: true,
        pay_to: Some(pay_to.into()),
        ..PayConfig::default()
    }
    .terms()
    .unwrap()
}

pub async fn open_store(dir: &std::path::Path) -> Arc<PayBackend> {
    let store = vouch_store::Store::open(dir).await.expect("open store");
    Arc::new(PayBackend::Sqlite(
        SqlitePayStore::new(store.pool().expect("sqlite").clone())
            .await
            .expect("pay store"),
    ))
}

/// The URL of a new, empty database on the server `tests/services/postgres.sh` started
/// (`VOUCH_TEST_POSTGRES`), or `None` (skipped, saying so) without one, unless
/// `VOUCH_REQUIRE_POSTGRES=1`.
pub async fn fresh_postgres(tag: &str) -> Option<String> {
    let Ok(admin) = std::env::var("VOUCH_TEST_POSTGRES") else {
        assert!(
            std::env::var("VOUCH_REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "VOUCH_REQUIRE_POSTGRES=1 but VOUCH_TEST_POSTGRES is unset (tests/services/postgres.sh)"
        );
        eprintln!("skipping PostgreSQL: VOUCH_TEST_POSTGRES is unset");
        return None;
    };
    static N: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "pay_{tag}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let pool = sqlx::PgPool::connect(&admin).await.expect("test server");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let (base, _) = admin.rsplit_once('/').expect("URL with a database");
    Some(format!("{base}/{name}"))
}

impl Node {
    pub async fn new(tag: &str) -> Node {
        let dir = TempDir::new(tag);
        Self::open(dir).await
    }

    /// (Re)opens the node on an existing data dir — a restart.
    pub async fn open(dir: TempDir) -> Node {
        let store = open_store(&dir.0).await;
        Self::over(dir, store)
    }

    /// A node whose ledger and claims are on PostgreSQL (a fresh database on the test server);
    /// `None` without the server. `tag`: lowercase letters and `_`.
    pub async fn on_postgres(tag: &str) -> Option<Node> {
        let url = fresh_postgres(tag).await?;
        Some(Self::on_database(tag, &url).await)
    }

    /// A node on the PostgreSQL database `url`, shared with every other node opened on it: a
    /// cluster member, with a connection pool of its own.
    pub async fn on_database(tag: &str, url: &str) -> Node {
        let dir = TempDir::new(tag);
        let mut config = StoreConfig::local(&dir.0);
        config.database = Database::Postgres(url.to_owned());
        let store = vouch_store::Store::open_with(&config)
            .await
            .expect("open store");
        let store = Arc::new(
            PayBackend::open(&store, SettleDurability::Own)
                .await
                .expect("pay store"),
        );
        assert!(matches!(*store, PayBackend::Postgres(_)));
        Self::over(dir, store)
    }

    fn over(dir: TempDir, store: Arc<PayBackend>) -> Node {
        let terms = terms();
        let mut local = LocalFacilitator::new(store.clone(), vec![CHAIN]);
        if let Some(f) = terms.upto_facilitator {
            local = local.with_upto_facilitator(f);
        }
        let facilitator = Arc::new(local);
        let gate = Arc::new(PaymentGate::new(
            facilitator.clone(),
            store.clone(),
            GateConfig::default(),
        ));
        Node {
            dir,
            store,
            facilitator,
            gate,
            terms,
        }
    }

    pub fn offer(&self, model: &str, price: u64) -> Offer {
        offer_for(&self.terms, model, price)
    }

    pub fn account(&self, owner: Address) -> Account {
        Account {
            chain_id: CHAIN,
            asset: self.terms.asset,
            owner,
        }
    }

    pub async fn fund(&self, owner: Address, amount: u64) {
        self.store
            .credit(&self.account(owner), U256::from(amount), "test top-up")
            .await
            .unwrap();
    }

    pub async fn balance(&self, owner: Address) -> U256 {
        self.store.balance(&self.account(owner)).await.unwrap()
    }
}

pub fn offer_for(terms: &PayTerms, model: &str, price: u64) -> Offer {
    terms.offer(
        U256::from(price),
        ResourceInfo {
            url: format!("http://127.0.0.1:8080/v1/models/{model}/infer"),
            description: Some(format!("verified inference on {model}")),
            mime_type: Some("application/json".into()),
        },
    )
}

pub fn payer() -> PrivateKeySigner {
    generate_key().0
}

/// Builds a v2 payment field by field, so a test can sign something other than the honest
/// payment, or alter it after signing.
/// Sixteen requests carrying one payment `header` at once, spread over `gates` in turn (one
/// node, or several sharing a database); each admitted one is settled. Returns how many were
/// served, and checks every other was refused as a used nonce.
pub async fn race_one_payment(
    gates: &[Arc<PaymentGate>],
    offer: &Arc<Offer>,
    header: &Arc<String>,
) -> usize {
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (gate, offer, header) = (
                gates[i % gates.len()].clone(),
                offer.clone(),
                header.clone(),
            );
            tokio::spawn(async move {
                match gate
                    .admit(Some(&header), None, &offer, &format!("race-{i}"))
                    .await
                {
                    Ok(ticket) => gate.settle(ticket).await.map(|_| ()).map_err(|r| r.reason),
                    Err(r) => Err(r.reason),
                }
            })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => wins += 1,
            Err(reason) => assert_eq!(reason, vouch_pay::Reason::NonceAlreadyUsed.as_str()),
        }
    }
    wins
}

pub struct Forge {
    pub auth: TransferWithAuthorization,
    pub chain_id: u64,
    pub name: String,
    pub version: String,
    pub asset: Address,
    pub accepted: PaymentRequirementsV2,
    pub resource: Option<ResourceInfo>,
    pub signer: PrivateKeySigner,
}

impl Forge {
    /// The honest payment of the offer's v2 requirement by `payer`.
    pub fn honest(payer: &PrivateKeySigner, offer: &Offer) -> Forge {
        let r = offer.v2[0].clone();
        let now = system_now();
        Forge {
            auth: TransferWithAuthorization {
                from: payer.address(),
                to: parse_address(&r.pay_to).unwrap(),
                value: r.amount.parse().unwrap(),
                validAfter: U256::from(now - 600),
                validBefore: U256::from(now + r.max_timeout_seconds),
                nonce: B256::random(),
            },
            chain_id: CHAIN,
            name: r.extra["name"].as_str().unwrap().into(),
            version: r.extra["version"].as_str().unwrap().into(),
            asset: parse_address(&r.asset).unwrap(),
            resource: Some(offer.resource.clone()),
            accepted: r,
            signer: payer.clone(),
        }
    }

    pub fn payload(&self) -> PaymentPayloadV2 {
        let signature = sign_authorization(
            &self.signer,
            &self.name,
            &self.version,
            self.chain_id,
            self.asset,
            &self.auth,
        )
        .unwrap();
        let payload = ExactEvmPayload {
            signature,
            authorization: wire_of(&self.auth),
        };
        PaymentPayloadV2 {
            x402_version: 2,
            payload: serde_json::to_value(payload).unwrap(),
            accepted: self.accepted.clone(),
            resource: self.resource.clone(),
            extensions: None,
        }
    }

    pub fn header(&self) -> String {
        encode_header(&self.payload())
    }

    /// Signs, then lets `tamper` edit the JSON before encoding.
    pub fn header_tampered(&self, tamper: impl FnOnce(&mut serde_json::Value)) -> String {
        let mut v = serde_json::to_value(self.payload()).unwrap();
        tamper(&mut v);
        encode_header(&v)
    }
}

/// A minimal HTTP/1.1 endpoint serving the facilitator API (`/verify`, `/settle`, `/supported`)
/// from `inner`, so the remote client is tested against real sockets. `settle_delay_ms` delays
/// the `/settle` *answer* after settling — a lost answer, as when a network times out.
pub struct FacilitatorEndpoint {
    pub url: String,
    pub settle_delay_ms: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FacilitatorEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn serve_facilitator(inner: Arc<dyn Facilitator>) -> FacilitatorEndpoint {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let delay = Arc::new(AtomicU64::new(0));
    let d = delay.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let inner = inner.clone();
            let d = d.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head_end, len) = loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| {
                                l.strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        break (i + 4, len);
                    }
                };
                while buf.len() < head_end + len {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let body = &buf[head_end..head_end + len];
                let first = head.lines().next().unwrap_or_default().to_owned();
                let answer = if first.starts_with("GET /supported") {
                    serde_json::to_vec(&inner.supported().await.unwrap()).unwrap()
                } else {
                    let req: FacilitatorRequest = serde_json::from_slice(body).unwrap();
                    if first.starts_with("POST /verify") {
                        serde_json::to_vec(&serve_verify(inner.as_ref(), &req).await.unwrap())
                            .unwrap()
                    } else {
                        let r =
                            serde_json::to_vec(&serve_settle(inner.as_ref(), &req).await.unwrap())
                                .unwrap();
                        tokio::time::sleep(Duration::from_millis(d.load(Ordering::SeqCst))).await;
                        r
                    }
                };
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    answer.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.write_all(&answer).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    FacilitatorEndpoint {
        url,
        settle_delay_ms: delay,
        task,
    }
}
