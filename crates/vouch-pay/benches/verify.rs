//! Cost of payment per request: decoding the header, the stateless check (EIP-712 hash +
//! secp256k1 recovery), and the whole paid path through the gate with the built-in facilitator
//! on SQLite (claim, verify, settle, finish — four durable writes). Run:
//! `cargo bench -p vouch-pay --bench verify`.

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::sync::Arc;
use vouch_pay::local::system_now;
use vouch_pay::payer::{generate_key, pay};
use vouch_pay::store::{Account, Ledger};
use vouch_pay::wire::{PaymentPayload, ResourceInfo};
use vouch_pay::{
    GateConfig, LocalFacilitator, PayConfig, PaymentGate, PaymentRequired, U256, verify_exact,
};
use vouch_store::pay_store::SqlitePayStore;

fn bench(c: &mut Criterion) {
    let cfg = PayConfig {
        enabled: true,
        pay_to: Some("0x209693Bc6afc0C5328bA36FaF03C514EF312287C".into()),
        ..PayConfig::default()
    };
    let terms = cfg.terms().expect("config");
    let offer = terms.offer(
        U256::from(1500u64),
        ResourceInfo {
            url: "http://127.0.0.1:8080/v1/models/mlp/infer".into(),
            description: None,
            mime_type: None,
        },
    );
    let (signer, _) = generate_key();
    let required = PaymentRequired::V2(offer.payment_required_v2(None));
    let header = || pay(&signer, &required, None, system_now()).expect("sign").1;
    let h = header();
    let payment = PaymentPayload::decode_header(&h).expect("decode");
    let req = offer.select(&payment).expect("select");

    let mut g = c.benchmark_group("x402_payment");
    g.bench_function("decode_header", |b| {
        b.iter(|| PaymentPayload::decode_header(black_box(&h)).expect("decode"))
    });
    g.bench_function("verify_stateless", |b| {
        b.iter(|| verify_exact(black_box(&payment), &req, Some(system_now())).expect("valid"))
    });
    // upto: Permit2 typed data (nested structs) + recovery, for a metered offer.
    let metered = terms.offer_metered(
        U256::from(5000u64),
        ResourceInfo {
            url: "http://127.0.0.1:8080/v1/chat/completions".into(),
            description: None,
            mime_type: None,
        },
    );
    let pr = metered.payment_required_v2(None);
    let upto_payment =
        vouch_pay::payer::sign_upto_payment(&signer, &pr, &metered.v2[0], system_now())
            .expect("sign upto");
    let upto_req = metered.select(&upto_payment).expect("select upto");
    g.bench_function("verify_upto_stateless", |b| {
        b.iter(|| {
            vouch_pay::upto::verify_upto(black_box(&upto_payment), &upto_req, Some(system_now()))
                .expect("valid")
        })
    });
    g.bench_function("decode_select_verify", |b| {
        b.iter(|| {
            let p = PaymentPayload::decode_header(black_box(&h)).expect("decode");
            let r = offer.select(&p).expect("select");
            verify_exact(&p, &r, Some(system_now())).expect("valid")
        })
    });

    // The full paid path on a real database (FULL fsync, as the server opens it).
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = std::env::temp_dir().join(format!("vouch-pay-bench-{}", std::process::id()));
    let gate = rt.block_on(async {
        let store = vouch_store::Store::open(&dir).await.expect("store");
        let pay = Arc::new(
            SqlitePayStore::new(store.pool().expect("sqlite").clone())
                .await
                .expect("pay store"),
        );
        let acct = Account {
            chain_id: terms.chain_id,
            asset: terms.asset,
            owner: signer.address(),
        };
        pay.credit(&acct, U256::from(u64::MAX), "bench")
            .await
            .expect("credit");
        let fac = Arc::new(LocalFacilitator::new(pay.clone(), vec![terms.chain_id]));
        Arc::new(PaymentGate::new(fac, pay, GateConfig::default()))
    });
    let offer = Arc::new(offer);
    let mut n = 0u64;
    // Components of the paid path, for attribution.
    let store = rt.block_on(async {
        let store = vouch_store::Store::open(&dir.join("parts"))
            .await
            .expect("store");
        Arc::new(
            SqlitePayStore::new(store.pool().expect("sqlite").clone())
                .await
                .expect("pay store"),
        )
    });
    let acct = Account {
        chain_id: terms.chain_id,
        asset: terms.asset,
        owner: signer.address(),
    };
    rt.block_on(store.credit(&acct, U256::from(u64::MAX), "bench"))
        .expect("credit");
    let mut k = 0u64;
    let key = |k: u64| vouch_pay::store::AuthorizationKey {
        chain_id: terms.chain_id,
        asset: terms.asset,
        payer: signer.address(),
        nonce: vouch_pay::B256::from(U256::from(k)),
    };
    g.bench_function("part_claim_begin_finish_sqlite", |b| {
        b.iter(|| {
            k += 1;
            rt.block_on(async {
                use vouch_pay::store::{ClaimEnd, NonceClaim, NonceStore};
                let c = NonceClaim {
                    key: key(k),
                    digest: vouch_pay::B256::ZERO,
                    request_id: "r".into(),
                    payment_json: "{}".into(),
                    requirements_json: "{}".into(),
                    now: 1,
                    lease_until: 2,
                };
                store.claim(&c).await.expect("claim");
                store.begin_settle(&c.key, "r", 1).await.expect("begin");
                store
                    .finish(&c.key, "r", ClaimEnd::Served, "{}", 1)
                    .await
                    .expect("finish");
            })
        })
    });
    g.bench_function("part_ledger_settle_sqlite", |b| {
        b.iter(|| {
            k += 1;
            let rec = vouch_pay::store::SettlementRecord {
                key: key(k),
                digest: vouch_pay::B256::ZERO,
                pay_to: terms.pay_to,
                amount: U256::from(1u64),
                reference: format!("r{k}"),
                settled_at: 1,
                refund: None,
            };
            rt.block_on(store.settle(&rec)).expect("settle")
        })
    });
    g.bench_function("gate_admit_settle_sqlite", |b| {
        b.iter_batched(
            header,
            |h| {
                n += 1;
                rt.block_on(async {
                    let t = gate
                        .admit(Some(&h), None, &offer, &format!("bench-{n}"))
                        .await
                        .expect("admit");
                    gate.settle(t).await.expect("settle")
                })
            },
            BatchSize::SmallInput,
        )
    });
    // 32 paid requests at once: claims and settlements contend, the ledger group-commits.
    const CONCURRENT: usize = 32;
    g.throughput(criterion::Throughput::Elements(CONCURRENT as u64));
    g.bench_function("gate_admit_settle_sqlite_32_concurrent", |b| {
        b.iter_batched(
            || (0..CONCURRENT).map(|_| header()).collect::<Vec<_>>(),
            |headers| {
                n += 1;
                let round = n;
                rt.block_on(async {
                    let tasks: Vec<_> = headers
                        .into_iter()
                        .enumerate()
                        .map(|(i, h)| {
                            let (gate, offer) = (gate.clone(), offer.clone());
                            tokio::spawn(async move {
                                let t = gate
                                    .admit(Some(&h), None, &offer, &format!("bench-{round}-{i}"))
                                    .await
                                    .expect("admit");
                                gate.settle(t).await.expect("settle")
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.expect("task");
                    }
                })
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
