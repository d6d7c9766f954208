//! Every attack from the payment issue, through the gate a server uses, against the built-in
//! facilitator over a real SQLite ledger: each is refused with the reference reason code, and
//! nothing is charged (balances unchanged) or admitted (no ticket → no inference runs).
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use base64::Engine as _;
use common::*;
use std::sync::Arc;
use vouch_pay::local::system_now;
use vouch_pay::{Reason, Rejection, U256};

const FUNDS: u64 = 10_000;

/// Admits `header` for `offer`, expecting a refusal with `reason`; checks nothing moved.
async fn refused(node: &Node, offer: &vouch_pay::Offer, header: &str, reason: Reason) -> Rejection {
    let pay_to = node.terms.pay_to;
    let before = node.balance(pay_to).await;
    let r = node
        .gate
        .admit(Some(header), None, offer, "req-attack")
        .await
        .expect_err("must be refused");
    assert_eq!(r.reason, reason.as_str(), "{r}");
    assert_eq!(r.status, 402);
    // The 402 carries the offer again, with the reason.
    assert_eq!(r.payment_required.error.as_deref(), Some(reason.as_str()));
    assert_eq!(r.payment_required.accepts, offer.v2);
    assert_eq!(node.balance(pay_to).await, before, "nothing charged");
    r
}

async fn funded() -> (Node, alloy_signer_local::PrivateKeySigner) {
    let node = Node::new("attack").await;
    let who = payer();
    node.fund(who.address(), FUNDS).await;
    (node, who)
}

#[tokio::test]
async fn replayed_header_is_refused_and_charged_once() {
    let (node, who) = funded().await;
    let offer = node.offer("A", PRICE);
    let header = Forge::honest(&who, &offer).header();
    let ticket = node
        .gate
        .admit(Some(&header), None, &offer, "req-1")
        .await
        .unwrap();
    node.gate.settle(ticket).await.unwrap();
    assert_eq!(node.balance(who.address()).await, U256::from(FUNDS - PRICE));
    refused(&node, &offer, &header, Reason::NonceAlreadyUsed).await;
    assert_eq!(node.balance(who.address()).await, U256::from(FUNDS - PRICE));
}

#[tokio::test]
async fn replay_is_refused_even_while_the_first_request_runs() {
    let (node, who) = funded().await;
    let offer = node.offer("A", PRICE);
    let header = Forge::honest(&who, &offer).header();
    let _ticket = node
        .gate
        .admit(Some(&header), None, &offer, "req-1")
        .await
        .unwrap();
    refused(&node, &offer, &header, Reason::NonceAlreadyUsed).await;
}

#[tokio::test]
async fn amount_changed_after_signing_breaks_the_signature() {
    let (node, who) = funded().await;
    let offer = node.offer("A", PRICE);
    // Signed for 1 unit, then edited to the full price so the amount check passes.
    let mut f = Forge::honest(&who, &offer);
    f.auth.value = U256::from(1u64);
    let header =
        f.header_tampered(|v| v["payload"]["authorization"]["value"] = PRICE.to_string().into());
    refused(&node, &offer, &header, Reason::InvalidSignature).await;
    // Edited to something else than the price: caught by the amount check first.
    let f = Forge::honest(&who, &offer);
    let header = f.header_tampered(|v| v["payload"]["authorization"]["value"] = "1".into());
    refused(&node, &offer, &header, Reason::ValueMismatch).await;
    // Editing the accepted terms to a cheaper price matches nothing offered.
    let header =
        Forge::honest(&who, &offer).header_tampered(|v| v["accepted"]["amount"] = "1".into());
    refused(&node, &offer, &header, Reason::InvalidPaymentRequirements).await;
}

#[tokio::test]
async fn wrong_pay_to_is_refused() {
    let (node, who) = funded().await;
    let offer = node.offer("A", PRICE);
    let mut f = Forge::honest(&who, &offer);
    f.auth.to = payer().address();
    refused(&node, &offer, &f.header(), Reason::RecipientMismatch).await;
    // Changing the echoed payTo as well matches no offer.
    let mut f = Forge::honest(&who, &offer);
    let thief = payer().address();
    f.auth.to = thief;
    f.accepted.pay_to = thief.to_string();
    refused(
        &node,
        &offer,
        &f.header(),
        Reason::InvalidPaymentRequirements,
    )
    .await;
}

#[tokio::test]
async fn expired_and_not_yet_valid_windows_are_refused() {
    let (node, who) = funded().await;
    let offer = node.offer("A", PRICE);
    let now = system_now();
    let mut f = Forge::honest(&who, &offer);
    f.auth.validBefore = U256::from(now - 1);
    refused(&node, &offer, &f.header(), Reason::ValidBeforeExpired).await;
    // Within the 6-second margin counts as expired too.
    let mut f = Forge::honest(&who, &offer);
    f.auth.validBefore = U256::from(now + 3);
    refused(&node, &offer, &f.header(), Reason::ValidBeforeExpired).await;
    let mut f = Forge::honest(&who, &offer);
    f.auth.validAfter = U256::from(now + 120);
    refused(&node, &offer, &f.header(), Reason::ValidAfterInFuture).await;
}

#[tokio::test]
async fn signature_by_another_key_is_refused() {
    let (node, who) = funded().await;
    let offer = node.offer("A", PRICE);
    let mut f = Forge::honest(&who, &offer);
    f.signer = payer(); // claims to be `who`, signed by someone else
    refused(&node, &offer, &f.header(), Reason::InvalidSignature).await;
    // A garbled signature.
    let header = Forge::honest(&who, &offer)
        .header_tampered(|v| v["payload"]["signature"] = "0x1234".into());
    refused(&node, &offer, &header, Reason::InvalidSignature).await;
}

#[tokio::test]
async fn wrong_chain_id_is_refused() {
    let (node, who) = funded().await;
    let offer = node.offer("A", PRICE);
    // Signed under another chain's domain (replay protection across chains).
    let mut f = Forge::honest(&who, &offer);
    f.chain_id = 8453;
    refused(&node, &offer, &f.header(), Reason::InvalidSignature).await;
    // Claiming another network outright.
    let mut f = Forge::honest(&who, &offer);
    f.chain_id = 8453;
    f.accepted.network = "eip155:8453".into();
    refused(&node, &offer, &f.header(), Reason::NetworkMismatch).await;
    // Signed with another token's domain (name or contract).
    let mut f = Forge::honest(&who, &offer);
    f.name = "USD Coin".into();
    refused(&node, &offer, &f.header(), Reason::InvalidSignature).await;
}

#[tokio::test]
async fn malformed_headers_are_refused() {
    let (node, _who) = funded().await;
    let offer = node.offer("A", PRICE);
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    refused(&node, &offer, "!!!not-base64!!!", Reason::InvalidPayload).await;
    refused(
        &node,
        &offer,
        &b64("{\"x402Version\": 2,"),
        Reason::InvalidPayload,
    )
    .await;
    refused(&node, &offer, &b64("[]"), Reason::InvalidX402Version).await;
    refused(
        &node,
        &offer,
        &b64("{\"x402Version\": 7}"),
        Reason::InvalidX402Version,
    )
    .await;
    refused(
        &node,
        &offer,
        &b64("{\"x402Version\": 2, \"payload\": {}}"),
        Reason::InvalidPayload,
    )
    .await;
    let mut accepted = serde_json::to_value(&offer.v2[0]).unwrap();
    let body = serde_json::json!({"x402Version": 2, "accepted": accepted.take(), "payload": {"signature": "0x00"}});
    refused(
        &node,
        &offer,
        &b64(&body.to_string()),
        Reason::InvalidPayload,
    )
    .await;
    refused(&node, &offer, &"A".repeat(20_000), Reason::InvalidPayload).await;
    refused(&node, &offer, "", Reason::InvalidPayload).await;
    let who = payer();
    let bad_nonce = Forge::honest(&who, &offer)
        .header_tampered(|v| v["payload"]["authorization"]["nonce"] = "0x12".into());
    refused(&node, &offer, &bad_nonce, Reason::InvalidPayload).await;
    let bad_from = Forge::honest(&who, &offer)
        .header_tampered(|v| v["payload"]["authorization"]["from"] = "alice".into());
    refused(&node, &offer, &bad_from, Reason::InvalidPayload).await;
    let unknown_scheme =
        Forge::honest(&who, &offer).header_tampered(|v| v["accepted"]["scheme"] = "upto".into());
    refused(&node, &offer, &unknown_scheme, Reason::UnsupportedScheme).await;
}

#[tokio::test]
async fn payment_for_model_a_is_refused_on_model_b() {
    let (node, who) = funded().await;
    let a = node.offer("A", PRICE);
    // Same price, different resource: the echoed resource gives it away.
    let b_same_price = node.offer("B", PRICE);
    let header = Forge::honest(&who, &a).header();
    refused(
        &node,
        &b_same_price,
        &header,
        Reason::InvalidPaymentRequirements,
    )
    .await;
    // Different price (e.g. a bigger model, or an extra tier): the accepted terms differ.
    let b_dearer = node.offer("B", PRICE * 3);
    refused(
        &node,
        &b_dearer,
        &header,
        Reason::InvalidPaymentRequirements,
    )
    .await;
    // The payment is still good for A afterwards: refusals did not burn it.
    let t = node
        .gate
        .admit(Some(&header), None, &a, "req-a")
        .await
        .unwrap();
    node.gate.settle(t).await.unwrap();
}

#[tokio::test]
async fn insufficient_balance_is_refused() {
    let node = Node::new("poor").await;
    let who = payer();
    node.fund(who.address(), PRICE - 1).await;
    let offer = node.offer("A", PRICE);
    let header = Forge::honest(&who, &offer).header();
    refused(&node, &offer, &header, Reason::InsufficientBalance).await;
    assert_eq!(node.balance(who.address()).await, U256::from(PRICE - 1));
    // A refused payment does not burn its nonce: topped up, the same header works.
    node.fund(who.address(), 1).await;
    let t = node
        .gate
        .admit(Some(&header), None, &offer, "req-2")
        .await
        .unwrap();
    node.gate.settle(t).await.unwrap();
    assert_eq!(node.balance(who.address()).await, U256::ZERO);
}

#[tokio::test]
async fn balance_spent_during_inference_fails_settlement_with_402_and_header() {
    let node = Node::new("drained").await;
    let who = payer();
    node.fund(who.address(), PRICE).await;
    let offer = node.offer("A", PRICE);
    let first = Forge::honest(&who, &offer).header();
    let second = Forge::honest(&who, &offer).header();
    // Both admitted (each alone is affordable); only one can be paid.
    let t1 = node
        .gate
        .admit(Some(&first), None, &offer, "r1")
        .await
        .unwrap();
    let t2 = node
        .gate
        .admit(Some(&second), None, &offer, "r2")
        .await
        .unwrap();
    node.gate.settle(t1).await.unwrap();
    let r = node
        .gate
        .settle(t2)
        .await
        .expect_err("second settlement cannot be paid");
    assert_eq!(r.status, 402);
    assert_eq!(r.reason, Reason::InsufficientBalance.as_str());
    let headers = r.headers();
    let (_, value) = headers
        .iter()
        .find(|(n, _)| *n == "PAYMENT-RESPONSE")
        .expect("settlement header");
    let resp: vouch_pay::SettleResponse = vouch_pay::wire::decode_header(value).unwrap();
    assert!(!resp.success);
    assert_eq!(
        resp.error_reason.as_deref(),
        Some(Reason::InsufficientBalance.as_str())
    );
    assert_eq!(node.balance(who.address()).await, U256::ZERO);
    assert_eq!(node.balance(node.terms.pay_to).await, U256::from(PRICE));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_concurrent_requests_with_one_nonce_exactly_one_wins() {
    let (node, who) = funded().await;
    let offer = Arc::new(node.offer("A", PRICE));
    let header = Arc::new(Forge::honest(&who, &offer).header());
    let wins = race_one_payment(std::slice::from_ref(&node.gate), &offer, &header).await;
    assert_eq!(wins, 1);
    assert_eq!(node.balance(who.address()).await, U256::from(FUNDS - PRICE));
    assert_eq!(node.balance(node.terms.pay_to).await, U256::from(PRICE));
}

#[tokio::test]
async fn v1_payment_is_refused_when_v1_is_off() {
    let (node, who) = funded().await;
    let mut offer = node.offer("A", PRICE);
    let required = vouch_pay::PaymentRequired::V1(offer.payment_required_v1("x").unwrap());
    let (_, header) = vouch_pay::payer::pay(&who, &required, None, system_now()).unwrap();
    offer.v1.clear();
    let r = node
        .gate
        .admit(None, Some(&header), &offer, "r")
        .await
        .unwrap_err();
    assert_eq!(r.reason, Reason::InvalidX402Version.as_str());
}
