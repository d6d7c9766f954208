//! The `upto` scheme at the library level, over the real SQLite ledger: a Permit2 payment for a
//! maximum, settled for less, names the amount settled and moves exactly that; every refusal
//! (cap exceeded, wrong spender, recipient, facilitator, token, amount, an expired deadline, a
//! bad signature, a replayed nonce, a short balance) carries the reference reason code and
//! moves nothing.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use common::*;
use vouch_pay::config::Offer;
use vouch_pay::facilitator::{Facilitator, serve_settle};
use vouch_pay::local::system_now;
use vouch_pay::payer::{sign_permit, upto_permit, upto_wire, v2_payment};
use vouch_pay::upto::{PermitWitnessTransferFrom, UPTO_PERMIT2_PROXY};
use vouch_pay::wire::{
    FacilitatorRequest, PaymentRequirements, PaymentRequirementsV2, ResourceInfo, SettleResponse,
    decode_header,
};
use vouch_pay::{Address, Scheme, U256};

const MAXIMUM: u64 = 5000;

fn metered_offer(node: &Node) -> Offer {
    node.terms.offer_metered(
        U256::from(MAXIMUM),
        ResourceInfo {
            url: "http://127.0.0.1:8080/v1/chat/completions?model=sha256:ab&tiers=signed".into(),
            description: Some("chat".into()),
            mime_type: Some("application/json".into()),
        },
    )
}

fn upto_requirement(offer: &Offer) -> PaymentRequirementsV2 {
    offer
        .v2
        .iter()
        .find(|r| r.scheme == "upto")
        .unwrap()
        .clone()
}

/// An upto payment header for `offer`, signed by `signer` after `tamper` edits the permit.
fn upto_header(
    signer: &alloy_signer_local::PrivateKeySigner,
    offer: &Offer,
    tamper: impl FnOnce(&mut PermitWitnessTransferFrom),
) -> String {
    let accepted = upto_requirement(offer);
    let (chain_id, mut permit) =
        upto_permit(&PaymentRequirements::V2(accepted.clone()), system_now()).unwrap();
    tamper(&mut permit);
    let signature = sign_permit(signer, chain_id, &permit).unwrap();
    let payload = serde_json::to_value(upto_wire(signer.address(), &permit, signature)).unwrap();
    v2_payment(&offer.payment_required_v2(None), &accepted, payload).encode_header()
}

#[tokio::test]
async fn upto_is_offered_first_with_the_facilitator_and_exact_at_the_maximum() {
    let node = Node::new("upto-offer").await;
    let offer = metered_offer(&node);
    let v2 = serde_json::to_value(offer.payment_required_v2(None)).unwrap();
    assert_eq!(v2["accepts"][0]["scheme"], "upto");
    assert_eq!(v2["accepts"][0]["amount"], "5000");
    assert_eq!(v2["accepts"][0]["extra"]["assetTransferMethod"], "permit2");
    assert_eq!(
        v2["accepts"][0]["extra"]["facilitatorAddress"],
        node.terms.pay_to.to_string()
    );
    assert_eq!(v2["accepts"][1]["scheme"], "exact");
    assert_eq!(v2["accepts"][1]["amount"], "5000");
    // v1 has no upto: exact at the maximum only.
    let v1 = offer.payment_required_v1("payment_required").unwrap();
    assert_eq!(v1.accepts.len(), 1);
    assert_eq!(v1.accepts[0].scheme, "exact");
    // The facilitator says so in /supported.
    let s = node.facilitator.supported().await.unwrap();
    let upto = s.kinds.iter().find(|k| k.scheme == "upto").unwrap();
    assert_eq!(upto.x402_version, 2);
    assert_eq!(
        upto.extra.as_ref().unwrap()["facilitatorAddress"],
        node.terms.pay_to.to_string()
    );
}

#[tokio::test]
async fn upto_settles_the_amount_used_and_the_receipt_names_it() {
    let node = Node::new("upto-ok").await;
    let who = payer();
    node.fund(who.address(), 20_000).await;
    let offer = metered_offer(&node);
    let header = upto_header(&who, &offer, |_| {});
    let ticket = node
        .gate
        .admit(Some(&header), None, &offer, "chat-1")
        .await
        .unwrap();
    assert_eq!(ticket.scheme(), Scheme::Upto);
    assert_eq!(ticket.amount(), U256::from(MAXIMUM));
    let settled = node
        .gate
        .settle_amount(ticket, U256::from(1234u64))
        .await
        .unwrap();
    let resp: SettleResponse = decode_header(&settled.header_value).unwrap();
    assert!(resp.success, "{resp:?}");
    assert_eq!(resp.amount.as_deref(), Some("1234"));
    let p = &settled.payment;
    assert_eq!((p.scheme.as_str(), p.amount.as_str()), ("upto", "1234"));
    assert_eq!(p.payer, who.address().to_string());
    assert_eq!(p.settlement, resp.transaction);
    assert_eq!(
        node.balance(who.address()).await,
        U256::from(20_000 - 1234u64)
    );
    assert_eq!(node.balance(node.terms.pay_to).await, U256::from(1234u64));

    // The same payment again: its nonce is spent.
    let again = node
        .gate
        .admit(Some(&header), None, &offer, "chat-2")
        .await
        .unwrap_err();
    assert_eq!(again.reason, "invalid_upto_evm_nonce_already_used");
    assert_eq!(
        node.balance(who.address()).await,
        U256::from(20_000 - 1234u64)
    );
}

#[tokio::test]
async fn upto_settles_at_most_the_maximum_and_zero_spends_the_nonce() {
    let node = Node::new("upto-cap").await;
    let who = payer();
    node.fund(who.address(), 20_000).await;
    let offer = metered_offer(&node);

    // The gate refuses to settle above the maximum, and the payment stays unspent.
    let header = upto_header(&who, &offer, |_| {});
    let ticket = node
        .gate
        .admit(Some(&header), None, &offer, "over")
        .await
        .unwrap();
    let e = node
        .gate
        .settle_amount(ticket, U256::from(MAXIMUM + 1))
        .await
        .unwrap_err();
    assert_eq!(e.status, 500);
    assert_eq!(node.balance(who.address()).await, U256::from(20_000u64));

    // The facilitator's own `/settle` (as `vouch facilitator` serves it) refuses the same.
    let accepted = upto_requirement(&offer);
    let payment = vouch_pay::PaymentPayload::decode_header(&header).unwrap();
    let over = PaymentRequirements::V2(accepted.clone()).with_amount("5001");
    let resp = serve_settle(
        node.facilitator.as_ref(),
        &FacilitatorRequest::new(&payment, &over),
    )
    .await
    .unwrap();
    assert!(!resp.success);
    assert_eq!(
        resp.error_reason.as_deref(),
        Some("invalid_upto_evm_payload_settlement_exceeds_amount")
    );
    assert_eq!(node.balance(who.address()).await, U256::from(20_000u64));
    // …and settles an amount within it, once: a second settle returns the first result.
    let under = PaymentRequirements::V2(accepted).with_amount("4999");
    for _ in 0..2 {
        let resp = node.facilitator.settle(&payment, &under).await.unwrap();
        assert!(resp.success, "{resp:?}");
        assert_eq!(resp.amount.as_deref(), Some("4999"));
    }
    assert_eq!(
        node.balance(who.address()).await,
        U256::from(20_000 - 4999u64)
    );

    // Zero is a settlement too: nothing moves and the nonce is spent.
    let header = upto_header(&who, &offer, |_| {});
    let ticket = node
        .gate
        .admit(Some(&header), None, &offer, "zero")
        .await
        .unwrap();
    let settled = node.gate.settle_amount(ticket, U256::ZERO).await.unwrap();
    assert_eq!(settled.payment.amount, "0");
    assert_eq!(
        node.balance(who.address()).await,
        U256::from(20_000 - 4999u64)
    );
    let e = node
        .gate
        .admit(Some(&header), None, &offer, "zero-again")
        .await
        .unwrap_err();
    assert_eq!(e.reason, "invalid_upto_evm_nonce_already_used");
}

#[tokio::test]
async fn upto_refusals_carry_the_reference_codes_and_charge_nothing() {
    let node = Node::new("upto-refuse").await;
    let who = payer();
    node.fund(who.address(), 20_000).await;
    let offer = metered_offer(&node);
    let stranger = Address::repeat_byte(0x42);
    let now = system_now();
    type Tamper = Box<dyn FnOnce(&mut PermitWitnessTransferFrom)>;
    let cases: Vec<(&str, Tamper)> = vec![
        (
            "invalid_permit2_spender",
            Box::new(move |p| p.spender = stranger),
        ),
        (
            "invalid_permit2_recipient_mismatch",
            Box::new(move |p| p.witness.to = stranger),
        ),
        (
            "upto_facilitator_mismatch",
            Box::new(move |p| p.witness.facilitator = stranger),
        ),
        (
            "permit2_deadline_expired",
            Box::new(move |p| p.deadline = U256::from(now - 1)),
        ),
        (
            "permit2_not_yet_valid",
            Box::new(move |p| p.witness.validAfter = U256::from(now + 3600)),
        ),
        (
            "permit2_amount_mismatch",
            Box::new(|p| p.permitted.amount = U256::from(MAXIMUM * 2)),
        ),
        (
            "permit2_token_mismatch",
            Box::new(move |p| p.permitted.token = stranger),
        ),
    ];
    for (reason, tamper) in cases {
        let header = upto_header(&who, &offer, tamper);
        let e = node
            .gate
            .admit(Some(&header), None, &offer, reason)
            .await
            .unwrap_err();
        assert_eq!(e.status, 402, "{reason}: {e}");
        assert_eq!(e.reason, reason, "{e}");
        assert_eq!(e.payer.as_deref(), Some(who.address().to_string().as_str()));
    }

    // Signed by someone else than `from`.
    let other = payer();
    let accepted = upto_requirement(&offer);
    let (chain_id, permit) = upto_permit(&PaymentRequirements::V2(accepted.clone()), now).unwrap();
    let forged = sign_permit(&other, chain_id, &permit).unwrap();
    let payload = serde_json::to_value(upto_wire(who.address(), &permit, forged)).unwrap();
    let header = v2_payment(&offer.payment_required_v2(None), &accepted, payload).encode_header();
    let e = node
        .gate
        .admit(Some(&header), None, &offer, "forged")
        .await
        .unwrap_err();
    assert_eq!(e.reason, "invalid_permit2_signature");
    // Signed for another chain.
    let sig = sign_permit(&who, 8453, &permit).unwrap();
    let payload = serde_json::to_value(upto_wire(who.address(), &permit, sig)).unwrap();
    let header = v2_payment(&offer.payment_required_v2(None), &accepted, payload).encode_header();
    let e = node
        .gate
        .admit(Some(&header), None, &offer, "chain")
        .await
        .unwrap_err();
    assert_eq!(e.reason, "invalid_permit2_signature");
    // The spender must be the proxy even when everything else is right.
    assert_ne!(UPTO_PERMIT2_PROXY, stranger);

    // A balance below the maximum.
    let poor = payer();
    node.fund(poor.address(), MAXIMUM - 1).await;
    let header = upto_header(&poor, &offer, |_| {});
    let e = node
        .gate
        .admit(Some(&header), None, &offer, "poor")
        .await
        .unwrap_err();
    assert_eq!(e.reason, "permit2_insufficient_balance");
    assert_eq!(node.balance(poor.address()).await, U256::from(MAXIMUM - 1));
    assert_eq!(node.balance(who.address()).await, U256::from(20_000u64));
    assert_eq!(node.balance(node.terms.pay_to).await, U256::ZERO);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upto_settles_over_the_standard_facilitator_api() {
    // `vouch facilitator`'s wire: `/verify` with the maximum, `/settle` with the amount used in
    // the requirements' `amount`, through the remote client over real sockets.
    let facilitator_node = Node::new("upto-fac").await;
    let who = payer();
    facilitator_node.fund(who.address(), 9000).await;
    let endpoint = serve_facilitator(facilitator_node.facilitator.clone()).await;
    let remote =
        vouch_pay::RemoteFacilitator::new(&endpoint.url, std::time::Duration::from_secs(5))
            .unwrap();
    let supported = remote.supported().await.unwrap();
    assert!(supported.kinds.iter().any(|k| k.scheme == "upto"));
    let offer = metered_offer(&facilitator_node);
    let header = upto_header(&who, &offer, |_| {});
    let payment = vouch_pay::PaymentPayload::decode_header(&header).unwrap();
    let maximum = PaymentRequirements::V2(upto_requirement(&offer));
    let v = remote.verify(&payment, &maximum).await.unwrap();
    assert!(v.is_valid, "{v:?}");
    let over = remote
        .settle(&payment, &maximum.with_amount("5001"))
        .await
        .unwrap();
    assert_eq!(
        over.error_reason.as_deref(),
        Some("invalid_upto_evm_payload_settlement_exceeds_amount")
    );
    let used = remote
        .settle(&payment, &maximum.with_amount("321"))
        .await
        .unwrap();
    assert!(used.success, "{used:?}");
    assert_eq!(used.amount.as_deref(), Some("321"));
    assert_eq!(
        facilitator_node.balance(who.address()).await,
        U256::from(9000 - 321u64)
    );
    let again = remote.verify(&payment, &maximum).await.unwrap();
    assert_eq!(
        again.invalid_reason.as_deref(),
        Some("invalid_upto_evm_nonce_already_used")
    );
}
