//! The inference pipeline in process, without a socket: a real node (SQLite, tract, the
//! built-in x402 ledger, the simulated TEE, the zk tier) driven through `Node::infer`.
//!
//! The settlement guard: a failure injected at each step after settlement (and a call dropped
//! by its deadline) must refund the payment exactly once; the ledger's journal shows one
//! `settle` and one `refund` for it, and the payer's balance is whole again.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy_primitives::U256;
use bytes::Bytes;
use serde_json::json;
use vouch_api::ModelZk;
use vouch_core::{ErrorCode, ModelRef, TensorMap, Tier};
use vouch_node::infer::Step;
use vouch_node::models::Registration;
use vouch_node::payments::PaymentHeaders;
use vouch_node::{InferCall, Node, NodeConfig};
use vouch_pay::PaymentRequired;
use vouch_pay::store::{Account, Ledger};
use vouch_pay::wire::PAYMENT_SIGNATURE_HEADER;

const PAY_TO: &str = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn inputs(model: &str) -> TensorMap {
    let text = std::fs::read_to_string(repo().join(format!("models/{model}.input.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A node with payments on (built-in ledger), the simulated `tee` tier and `mlp` registered.
async fn paid_node(dir: &tempfile::TempDir) -> Arc<Node> {
    let config: NodeConfig = serde_json::from_value(json!({
        "data_dir": dir.path().join("data"),
        "exec": {"engine": "tract"},
        "tee": {"producer": "simulated"},
        "pay": {"enabled": true, "pay_to": PAY_TO},
    }))
    .unwrap();
    let node = Node::boot(config).await.unwrap();
    let bytes = std::fs::read(repo().join("models/mlp.onnx")).unwrap();
    let to = Registration {
        name: Some("mlp".into()),
        ..Registration::default()
    };
    node.register(Bytes::from(bytes), &to).await.unwrap();
    node
}

fn call(tiers: &[Tier], payment: PaymentHeaders) -> InferCall {
    InferCall {
        model: "mlp".parse::<ModelRef>().unwrap(),
        inputs: inputs("mlp"),
        tiers: tiers.to_vec(),
        allow_upgrade: false,
        log_proof: false,
        payment,
    }
}

struct Payer {
    signer: alloy_signer_local::PrivateKeySigner,
    account: Account,
}

async fn funded_payer(node: &Node, amount: u64) -> Payer {
    let (signer, _) = vouch_pay::payer::generate_key();
    let pay = node.pay.as_ref().unwrap();
    let account = pay.account(signer.address());
    let ledger = pay.ledger.as_ref().unwrap();
    ledger
        .credit(&account, U256::from(amount), "test credit")
        .await
        .unwrap();
    Payer { signer, account }
}

/// Asks without paying, reads the 402's `PAYMENT-REQUIRED`, and signs a payment for it.
async fn pay_for(node: &Node, payer: &Payer, tiers: &[Tier]) -> PaymentHeaders {
    let refused = node
        .infer(call(tiers, PaymentHeaders::default()))
        .await
        .err()
        .expect("an unpaid request is refused");
    assert_eq!(refused.code, ErrorCode::PaymentRequired, "{refused}");
    let answer = refused.protocol.expect("a 402 carries the x402 answer");
    let (_, header) = answer
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("PAYMENT-REQUIRED"))
        .expect("PAYMENT-REQUIRED header");
    let required = PaymentRequired::from_response(Some(header), b"").unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (name, value) = vouch_pay::payer::pay(&payer.signer, &required, None, now).unwrap();
    assert_eq!(name, PAYMENT_SIGNATURE_HEADER);
    PaymentHeaders {
        signature: Some(value),
        ..PaymentHeaders::default()
    }
}

async fn balance(node: &Node, payer: &Payer) -> U256 {
    let ledger = node.pay.as_ref().unwrap().ledger.as_ref().unwrap();
    ledger.balance(&payer.account).await.unwrap()
}

/// The payer's journal (kind, reference), oldest first, without the opening credit.
async fn journal(node: &Node, payer: &Payer) -> Vec<(String, String)> {
    let ledger = node.pay.as_ref().unwrap().ledger.as_ref().unwrap();
    // The ledger writes its journal behind its in-memory book: wait for what it decided.
    ledger.sync().await.unwrap();
    let mut rows = ledger.entries(&payer.account, 100).await.unwrap();
    rows.reverse();
    rows.into_iter()
        .filter(|r| r.3 != "credit")
        .map(|r| (r.3, r.4.unwrap_or_default()))
        .collect()
}

/// Waits (bounded) for a refund made in the background by a dropped guard.
async fn balance_back_to(node: &Node, payer: &Payer, want: U256) -> U256 {
    for _ in 0..200 {
        let b = balance(node, payer).await;
        if b == want {
            return b;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    balance(node, payer).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_answers_in_process_and_a_delivered_answer_keeps_its_payment() {
    let dir = tempfile::tempdir().unwrap();
    let node = paid_node(&dir).await;
    let payer = funded_payer(&node, 1_000_000).await;
    let before = balance(&node, &payer).await;
    let payment = pay_for(&node, &payer, &[Tier::Signed]).await;
    let done = node.infer(call(&[Tier::Signed], payment)).await.unwrap();
    let receipt = &done.bundle.receipt;
    assert_eq!(receipt.tiers, vec![Tier::Signed]);
    assert!(
        done.bundle.signature.is_some(),
        "a signed receipt is signed"
    );
    let paid = receipt
        .payment
        .as_ref()
        .expect("the receipt names the payment");
    assert!(
        done.payment_headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("PAYMENT-RESPONSE")),
        "{:?}",
        done.payment_headers
    );
    let price = U256::from(vouch_node::prices::as_u64(done.price));
    assert!(price > U256::ZERO);
    assert_eq!(balance(&node, &payer).await, before - price);
    let kinds: Vec<String> = journal(&node, &payer)
        .await
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(kinds, ["settle"], "paid {}", paid.settlement);
    // The outputs are the model's: the reference outputs the repo ships.
    let want: TensorMap = serde_json::from_str(
        &std::fs::read_to_string(repo().join("models/mlp.output.json")).unwrap(),
    )
    .unwrap();
    let got = done.bundle.outputs.as_ref().unwrap();
    for (name, t) in want.iter() {
        let g = got.get(name).expect("output present");
        assert_eq!(g.shape(), t.shape(), "{name}");
    }
    assert_eq!(got.digest(), receipt.output_digest);
    // `tee` alone gets a signed receipt: the attested key signs it.
    let payment = pay_for(&node, &payer, &[Tier::Tee]).await;
    let done = node.infer(call(&[Tier::Tee], payment)).await.unwrap();
    assert!(done.bundle.signature.is_some());
    assert!(done.bundle.evidence.contains_key("tee"));
}

/// Every step after settlement: a failure there refunds the payment once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_after_settlement_refunds_the_payment_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let node = paid_node(&dir).await;
    let digest = node.catalog.resolve(&"mlp".parse().unwrap()).await.unwrap();
    for _ in 0..600 {
        if matches!(node.zk.model_json(&digest), ModelZk::Available { .. }) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let zk = node.zk.model_json(&digest);
    assert!(matches!(zk, ModelZk::Available { .. }), "{zk:?}");
    let cases: [(Step, &[Tier]); 6] = [
        (Step::Settled, &[Tier::Signed]),
        (Step::Log, &[Tier::Signed]),
        (Step::Durable, &[Tier::Signed]),
        (Step::Evidence, &[Tier::Signed, Tier::Tee]),
        (Step::ZkSubmit, &[Tier::Signed, Tier::Zk]),
        (Step::Stall, &[Tier::Signed]),
    ];
    for (step, tiers) in cases {
        let payer = funded_payer(&node, 100_000_000).await;
        let credited = balance(&node, &payer).await;
        let payment = pay_for(&node, &payer, tiers).await;
        node.inject_fault(Some(step));
        let outcome =
            tokio::time::timeout(Duration::from_secs(5), node.infer(call(tiers, payment))).await;
        node.inject_fault(None);
        match (step, outcome) {
            // The caller's deadline drops the call with the settled payment in it.
            (Step::Stall, Err(_elapsed)) => {}
            (Step::Stall, Ok(r)) => panic!("a stalled call finished: {:?}", r.err()),
            (_, Ok(Err(e))) => assert_eq!(e.code, ErrorCode::Internal, "{step:?}: {e}"),
            (_, other) => panic!(
                "{step:?}: expected an injected failure, got {:?}",
                other.is_ok()
            ),
        }
        assert_eq!(
            balance_back_to(&node, &payer, credited).await,
            credited,
            "{step:?}: the payer is whole again"
        );
        let kinds: Vec<String> = journal(&node, &payer)
            .await
            .into_iter()
            .map(|e| e.0)
            .collect();
        assert_eq!(kinds, ["settle", "refund"], "{step:?}");
        let j = journal(&node, &payer).await;
        assert_eq!(j[0].1, j[1].1, "{step:?}: the refund names the settlement");
        // Nothing more happens later (a second refund, a second charge).
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(journal(&node, &payer).await.len(), 2, "{step:?}");
        assert_eq!(balance(&node, &payer).await, credited, "{step:?}");
    }
    // A failure before settlement charges nothing at all: no journal entry.
    let payer = funded_payer(&node, 1_000_000).await;
    let payment = pay_for(&node, &payer, &[Tier::Signed]).await;
    let mut bad = call(&[Tier::Signed], payment);
    bad.inputs = inputs("cnn");
    let e = node
        .infer(bad)
        .await
        .err()
        .expect("wrong inputs are refused");
    assert_eq!(e.code, ErrorCode::BadInput, "{e}");
    assert!(journal(&node, &payer).await.is_empty());
}
