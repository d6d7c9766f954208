//! Paid-request flows end to end at the library level: success (v2 and v1), failed inference,
//! idempotent settlement, refunds, restarts, the remote facilitator client over real sockets,
//! and a settlement whose answer is lost (pending → reconciled → collected once).
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use common::*;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use vouch_pay::facilitator::Facilitator;
use vouch_pay::local::{LEDGER_REFERENCE_PREFIX, system_now};
use vouch_pay::store::RefundOutcome;
use vouch_pay::wire::{PaymentPayload, PaymentRequirements, decode_header};
use vouch_pay::{
    GateConfig, PaymentGate, PaymentRequired, Reason, RemoteFacilitator, SettleResponse, U256,
};

#[tokio::test]
async fn paid_request_v2_settles_and_names_the_payment() {
    let node = Node::new("v2").await;
    let who = payer();
    node.fund(who.address(), 5000).await;
    let offer = node.offer("mnist", PRICE);
    // Exactly what a client sees and does: read PAYMENT-REQUIRED, pay, retry.
    let required = node.gate.payment_required(&offer);
    assert_eq!(required.reason, "payment_required");
    let (_, pr_header) = required
        .headers()
        .into_iter()
        .find(|(n, _)| *n == "PAYMENT-REQUIRED")
        .unwrap();
    let pr = PaymentRequired::from_response(Some(&pr_header), b"{}").unwrap();
    let (name, header) =
        vouch_pay::payer::pay(&who, &pr, Some(U256::from(10_000u64)), system_now()).unwrap();
    assert_eq!(name, "PAYMENT-SIGNATURE");

    let ticket = node
        .gate
        .admit(Some(&header), None, &offer, "req-1")
        .await
        .unwrap();
    assert_eq!(ticket.payer(), who.address());
    let settled = node.gate.settle(ticket).await.unwrap();
    assert_eq!(settled.header_name, "PAYMENT-RESPONSE");
    let resp: SettleResponse = decode_header(&settled.header_value).unwrap();
    assert!(resp.success);
    assert_eq!(resp.network, "eip155:84532");
    assert_eq!(
        resp.payer.as_deref(),
        Some(who.address().to_string().as_str())
    );
    assert_eq!(resp.amount.as_deref(), Some("1500"));
    assert!(resp.transaction.starts_with(LEDGER_REFERENCE_PREFIX));
    // The receipt's payment reference.
    let p = &settled.payment;
    assert_eq!(
        (p.scheme.as_str(), p.network.as_str(), p.amount.as_str()),
        ("exact", "eip155:84532", "1500")
    );
    assert_eq!(p.payer, who.address().to_string());
    assert_eq!(p.asset, node.terms.asset.to_string());
    assert_eq!(p.settlement, resp.transaction);
    assert_eq!(node.balance(who.address()).await, U256::from(3500u64));
    assert_eq!(node.balance(node.terms.pay_to).await, U256::from(PRICE));
}

#[tokio::test]
async fn paid_request_v1_settles_with_legacy_headers() {
    let node = Node::new("v1").await;
    let who = payer();
    node.fund(who.address(), 5000).await;
    let offer = node.offer("mnist", PRICE);
    // A v1 client reads the JSON body of the 402.
    let body = node.gate.payment_required(&offer).body();
    assert_eq!(body["x402Version"], 1);
    assert!(
        body["accepts"][0].get("outputSchema").is_none(),
        "absent, not null"
    );
    let pr = PaymentRequired::from_response(None, body.to_string().as_bytes()).unwrap();
    let (name, header) = vouch_pay::payer::pay(&who, &pr, None, system_now()).unwrap();
    assert_eq!(name, "X-PAYMENT");
    let ticket = node
        .gate
        .admit(None, Some(&header), &offer, "req-1")
        .await
        .unwrap();
    assert_eq!(ticket.version(), 1);
    let settled = node.gate.settle(ticket).await.unwrap();
    assert_eq!(settled.header_name, "X-PAYMENT-RESPONSE");
    let resp: SettleResponse = decode_header(&settled.header_value).unwrap();
    assert_eq!(resp.network, "base-sepolia");
    assert_eq!(
        settled.payment.network, "eip155:84532",
        "receipts use CAIP-2 whatever the version"
    );
    // The same authorization cannot be spent again over v2 semantics either.
    let r = node
        .gate
        .admit(None, Some(&header), &offer, "req-2")
        .await
        .unwrap_err();
    assert_eq!(r.reason, Reason::NonceAlreadyUsed.as_str());
}

#[tokio::test]
async fn failed_inference_charges_nothing_and_frees_the_payment() {
    let node = Node::new("abandon").await;
    let who = payer();
    node.fund(who.address(), 5000).await;
    let offer = node.offer("m", PRICE);
    let header = Forge::honest(&who, &offer).header();
    let ticket = node
        .gate
        .admit(Some(&header), None, &offer, "req-1")
        .await
        .unwrap();
    node.gate.abandon(ticket).await;
    assert_eq!(node.balance(who.address()).await, U256::from(5000u64));
    // Retrying with the same payment works, and is charged once.
    let ticket = node
        .gate
        .admit(Some(&header), None, &offer, "req-2")
        .await
        .unwrap();
    node.gate.settle(ticket).await.unwrap();
    assert_eq!(node.balance(who.address()).await, U256::from(5000 - PRICE));
}

#[tokio::test]
async fn facilitator_settle_is_idempotent() {
    let node = Node::new("idem").await;
    let who = payer();
    node.fund(who.address(), 5000).await;
    let offer = node.offer("m", PRICE);
    let payment = PaymentPayload::V2(Forge::honest(&who, &offer).payload());
    let req = PaymentRequirements::V2(offer.v2[0].clone());
    let first = node.facilitator.settle(&payment, &req).await.unwrap();
    let again = node.facilitator.settle(&payment, &req).await.unwrap();
    assert!(first.success);
    assert_eq!(first, again, "the earlier result, not a second charge");
    assert_eq!(node.balance(who.address()).await, U256::from(5000 - PRICE));
    // /verify now reports the nonce as used.
    let v = node.facilitator.verify(&payment, &req).await.unwrap();
    assert_eq!(
        v.invalid_reason.as_deref(),
        Some(Reason::NonceAlreadyUsed.as_str())
    );
}

#[tokio::test]
async fn failed_zk_proof_is_refunded_once() {
    let node = Node::new("refund").await;
    let who = payer();
    node.fund(who.address(), 5000).await;
    let offer = node.offer("m", PRICE);
    let t = node
        .gate
        .admit(
            Some(&Forge::honest(&who, &offer).header()),
            None,
            &offer,
            "r",
        )
        .await
        .unwrap();
    let settled = node.gate.settle(t).await.unwrap();
    let out = node
        .gate
        .refund(&settled.payment.settlement, "zk proof failed")
        .await
        .unwrap();
    assert!(
        matches!(&out, RefundOutcome::Refunded(r) if r.refund.as_ref().unwrap().reason == "zk proof failed")
    );
    assert_eq!(node.balance(who.address()).await, U256::from(5000u64));
    assert_eq!(node.balance(node.terms.pay_to).await, U256::ZERO);
    assert!(matches!(
        node.gate
            .refund(&settled.payment.settlement, "again")
            .await
            .unwrap(),
        RefundOutcome::AlreadyRefunded(_)
    ));
    assert_eq!(node.balance(who.address()).await, U256::from(5000u64));
}

#[tokio::test]
async fn used_nonces_survive_a_restart() {
    let node = Node::new("restart").await;
    let who = payer();
    node.fund(who.address(), 5000).await;
    let offer = node.offer("m", PRICE);
    let header = Forge::honest(&who, &offer).header();
    let t = node
        .gate
        .admit(Some(&header), None, &offer, "r1")
        .await
        .unwrap();
    node.gate.settle(t).await.unwrap();
    // A restart: every handle on the ledger goes, as with the process.
    let Node {
        dir,
        store,
        facilitator,
        gate,
        ..
    } = node;
    drop((gate, facilitator, store));
    let node = Node::open(dir).await;
    let r = node
        .gate
        .admit(Some(&header), None, &offer, "r2")
        .await
        .unwrap_err();
    assert_eq!(r.reason, Reason::NonceAlreadyUsed.as_str());
    assert_eq!(node.balance(who.address()).await, U256::from(5000 - PRICE));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_facilitator_client_speaks_the_standard_api() {
    // The facilitator node (`vouch facilitator`) and a server node using it remotely, each with
    // its own database.
    let facilitator_node = Node::new("fac").await;
    let who = payer();
    facilitator_node.fund(who.address(), 5000).await;
    let endpoint = serve_facilitator(facilitator_node.facilitator.clone()).await;
    let remote = Arc::new(RemoteFacilitator::new(&endpoint.url, Duration::from_secs(5)).unwrap());
    let supported = remote.supported().await.unwrap();
    assert!(
        supported
            .kinds
            .iter()
            .any(|k| k.x402_version == 2 && k.network == "eip155:84532")
    );
    assert!(
        supported
            .kinds
            .iter()
            .any(|k| k.x402_version == 1 && k.network == "base-sepolia")
    );

    let server_dir = TempDir::new("srv");
    let server_store = open_store(&server_dir.0).await;
    let gate = PaymentGate::new(remote.clone(), server_store, GateConfig::default());
    let offer = facilitator_node.offer("m", PRICE);
    let header = Forge::honest(&who, &offer).header();
    let t = gate.admit(Some(&header), None, &offer, "r1").await.unwrap();
    let settled = gate.settle(t).await.unwrap();
    assert!(settled.response.success);
    assert_eq!(
        facilitator_node.balance(who.address()).await,
        U256::from(5000 - PRICE)
    );
    // Refusals travel back with their reason.
    let r = gate
        .admit(Some(&header), None, &offer, "r2")
        .await
        .unwrap_err();
    assert_eq!(r.reason, Reason::NonceAlreadyUsed.as_str());
    let poor = payer();
    let r = gate
        .admit(
            Some(&Forge::honest(&poor, &offer).header()),
            None,
            &offer,
            "r3",
        )
        .await
        .unwrap_err();
    assert_eq!(r.reason, Reason::InsufficientBalance.as_str());
    // A remote facilitator cannot refund a ledger it does not expose.
    assert!(gate.refund(&settled.payment.settlement, "x").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_settlement_answer_is_pending_then_reconciled_and_collected_once() {
    let facilitator_node = Node::new("fac-slow").await;
    let who = payer();
    facilitator_node.fund(who.address(), 5000).await;
    let endpoint = serve_facilitator(facilitator_node.facilitator.clone()).await;
    let remote =
        Arc::new(RemoteFacilitator::new(&endpoint.url, Duration::from_millis(400)).unwrap());
    let server_dir = TempDir::new("srv-slow");
    let server_store = open_store(&server_dir.0).await;
    let config = GateConfig {
        pending_grace_seconds: 0,
        ..GateConfig::default()
    };
    // The reconciler looks one second ahead so "pending since now" counts as overdue.
    let gate = PaymentGate::new(remote.clone(), server_store.clone(), config.clone());
    let later = PaymentGate::new(remote, server_store, config).with_clock(|| system_now() + 1);
    let offer = facilitator_node.offer("m", PRICE);
    let header = Forge::honest(&who, &offer).header();

    // The facilitator settles but its answer arrives after the client gave up.
    endpoint.settle_delay_ms.store(1500, Ordering::SeqCst);
    let t = gate.admit(Some(&header), None, &offer, "r1").await.unwrap();
    let r = gate.settle(t).await.unwrap_err();
    assert_eq!(r.reason, Reason::SettlementPending.as_str());
    assert!(r.headers().iter().any(|(n, _)| *n == "PAYMENT-RESPONSE"));
    assert_eq!(
        facilitator_node.balance(who.address()).await,
        U256::from(5000 - PRICE),
        "the money did move"
    );
    // Meanwhile the payment cannot be used again.
    assert_eq!(
        gate.admit(Some(&header), None, &offer, "r2")
            .await
            .unwrap_err()
            .reason,
        Reason::NonceAlreadyUsed.as_str()
    );

    // Reconcile: the re-settle of the same authorization returns the earlier result.
    endpoint.settle_delay_ms.store(0, Ordering::SeqCst);
    let report = later.reconcile().await.unwrap();
    assert_eq!(
        report,
        vouch_pay::ReconcileReport {
            settled: 1,
            failed: 0,
            still_pending: 0
        }
    );
    assert_eq!(
        facilitator_node.balance(who.address()).await,
        U256::from(5000 - PRICE),
        "not charged twice"
    );

    // The payer retries the identical payment and gets the inference it paid for, once.
    let t = gate.admit(Some(&header), None, &offer, "r3").await.unwrap();
    let settled = gate.settle(t).await.unwrap();
    assert!(settled.response.success);
    assert_eq!(
        gate.admit(Some(&header), None, &offer, "r4")
            .await
            .unwrap_err()
            .reason,
        Reason::NonceAlreadyUsed.as_str()
    );
    assert_eq!(
        facilitator_node.balance(who.address()).await,
        U256::from(5000 - PRICE)
    );
    assert_eq!(
        later.reconcile().await.unwrap(),
        vouch_pay::ReconcileReport::default()
    );
}

#[tokio::test]
async fn unreachable_facilitator_is_a_503_not_a_charge() {
    let dir = TempDir::new("unreach");
    let store = open_store(&dir.0).await;
    // Nothing listens on port 9 of loopback (discard): connection refused at once.
    let remote =
        Arc::new(RemoteFacilitator::new("http://127.0.0.1:9", Duration::from_secs(2)).unwrap());
    let gate = PaymentGate::new(remote, store, GateConfig::default());
    let offer = offer_for(&terms(), "m", PRICE);
    let header = Forge::honest(&payer(), &offer).header();
    let r = gate
        .admit(Some(&header), None, &offer, "r1")
        .await
        .unwrap_err();
    assert_eq!(
        (r.status, r.reason.as_str()),
        (503, Reason::FacilitatorUnavailable.as_str())
    );
    // The claim was released: a retry is not refused as a replay.
    let r2 = gate
        .admit(Some(&header), None, &offer, "r2")
        .await
        .unwrap_err();
    assert_eq!(
        r2.reason,
        Reason::FacilitatorUnavailable.as_str(),
        "not nonce_already_used"
    );
}
