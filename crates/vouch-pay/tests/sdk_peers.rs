//! Independent peers: the official x402 SDKs — Python (`x402[evm]`, eth-account) and JS v2
//! (`@x402/core` + `@x402/evm`, viem) — read Vouch's 402 (v2 header, v1 body) with their own
//! decoders, pick a requirement with their own clients and spend controls, and sign with their
//! own EIP-712 signers; Vouch must verify and settle those payments and refuse their replays.
//! The SDKs are driven by `tests/interop/x402/sign_payment.{py,mjs}`.
//!
//! Python is `$VOUCH_PYTHON`, else `/root/.cache/vouch/venv/bin/python`, else `python3`; the JS
//! packages come from `npm ci --prefix tests/interop/x402`. A missing SDK makes its test print
//! why and pass, unless `VOUCH_REQUIRE_INTEROP=1` (set in CI), where it fails.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use common::*;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use vouch_pay::{Reason, U256};

fn python() -> String {
    if let Ok(p) = std::env::var("VOUCH_PYTHON") {
        return p;
    }
    let venv = "/root/.cache/vouch/venv/bin/python";
    if std::path::Path::new(venv).exists() {
        venv.into()
    } else {
        "python3".into()
    }
}

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/x402")
}

/// Runs an SDK peer on a 402; `None` (after saying why) when the SDK is not installed.
fn sdk_pay(program: &str, script: &str, request: &serde_json::Value) -> Option<serde_json::Value> {
    sdk_pay_scheme(program, script, request, "exact")
}

/// [`sdk_pay`] with the SDK's `scheme` client registered (`exact` or `upto`).
fn sdk_pay_scheme(
    program: &str,
    script: &str,
    request: &serde_json::Value,
    scheme: &str,
) -> Option<serde_json::Value> {
    let mut child = match Command::new(program)
        .arg(interop_dir().join(script))
        .env("VOUCH_X402_SCHEME", scheme)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return skip(&format!("cannot run {program}: {e}")),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(3) {
        return skip(stderr.trim());
    }
    assert!(out.status.success(), "{script} failed: {stderr}");
    Some(serde_json::from_slice(&out.stdout).expect("SDK output is JSON"))
}

fn skip(why: &str) -> Option<serde_json::Value> {
    if std::env::var("VOUCH_REQUIRE_INTEROP").as_deref() == Ok("1") {
        panic!("x402 SDK required (VOUCH_REQUIRE_INTEROP=1) but unavailable: {why}");
    }
    eprintln!("SKIPPED sdk peer: {why}");
    None
}

/// Has `program script` pay Vouch's 402 in both versions; checks each payment settles once.
async fn peer_payments_verify_and_settle(node: Node, program: &str, script: &str) {
    let offer = node.offer("mnist", PRICE);
    let required = node.gate.payment_required(&offer);
    let (_, pr_header) = required
        .headers()
        .into_iter()
        .find(|(n, _)| *n == "PAYMENT-REQUIRED")
        .unwrap();

    // v2: the SDK reads our PAYMENT-REQUIRED header.
    let Some(v2) = sdk_pay(program, script, &serde_json::json!({"header": pr_header})) else {
        return;
    };
    // v1: the SDK reads our JSON body.
    let Some(v1) = sdk_pay(
        program,
        script,
        &serde_json::json!({"body": required.body()}),
    ) else {
        return;
    };

    for (answer, version) in [(v2, 2), (v1, 1)] {
        assert_eq!(answer["version"], version, "{script}");
        let address: vouch_pay::Address = answer["address"].as_str().unwrap().parse().unwrap();
        node.fund(address, 2 * PRICE).await;
        let header = answer["header"].as_str().unwrap();
        let (sig, x) = if version == 2 {
            (Some(header), None)
        } else {
            (None, Some(header))
        };
        assert_eq!(
            answer["header_name"],
            if version == 2 {
                "PAYMENT-SIGNATURE"
            } else {
                "X-PAYMENT"
            }
        );

        let ticket = node
            .gate
            .admit(sig, x, &offer, "peer-1")
            .await
            .unwrap_or_else(|r| panic!("{script} v{version}: {r}"));
        assert_eq!(ticket.payer(), address);
        let settled = node.gate.settle(ticket).await.unwrap();
        assert_eq!(settled.payment.payer, address.to_string());
        assert_eq!(node.balance(address).await, U256::from(PRICE));
        // And its replay is refused.
        let r = node.gate.admit(sig, x, &offer, "peer-2").await.unwrap_err();
        assert_eq!(r.reason, Reason::NonceAlreadyUsed.as_str());
    }
}

#[tokio::test]
async fn payments_signed_by_the_python_sdk_verify_and_settle() {
    peer_payments_verify_and_settle(Node::new("peer").await, &python(), "sign_payment.py").await;
}

/// The same with the ledger and claims on PostgreSQL, as a cluster of nodes runs them.
#[tokio::test]
async fn payments_signed_by_the_python_sdk_verify_and_settle_on_postgres() {
    let Some(node) = Node::on_postgres("peer_pg").await else {
        return;
    };
    peer_payments_verify_and_settle(node, &python(), "sign_payment.py").await;
}

#[tokio::test]
async fn payments_signed_by_the_js_sdk_verify_and_settle() {
    peer_payments_verify_and_settle(Node::new("peer").await, "node", "sign_payment.mjs").await;
}

/// Has `program script` pay a metered 402 with its `upto` scheme (Permit2, the offered maximum);
/// Vouch verifies it, settles less than the maximum, moves exactly that, and refuses the replay.
async fn peer_upto_payments_settle_the_amount_used(program: &str, script: &str) {
    let node = Node::new("peer-upto").await;
    let maximum = 4000u64;
    let offer = node.terms.offer_metered(
        U256::from(maximum),
        vouch_pay::wire::ResourceInfo {
            url: "http://127.0.0.1:8080/v1/chat/completions?model=sha256:ab&tiers=signed".into(),
            description: Some("chat".into()),
            mime_type: Some("application/json".into()),
        },
    );
    let required = node.gate.payment_required(&offer);
    let (_, pr_header) = required
        .headers()
        .into_iter()
        .find(|(n, _)| *n == "PAYMENT-REQUIRED")
        .unwrap();
    let Some(answer) = sdk_pay_scheme(
        program,
        script,
        &serde_json::json!({"header": pr_header}),
        "upto",
    ) else {
        return;
    };
    assert_eq!(answer["version"], 2, "{script}");
    let address: vouch_pay::Address = answer["address"].as_str().unwrap().parse().unwrap();
    node.fund(address, 10_000).await;
    let header = answer["header"].as_str().unwrap();
    let payment = vouch_pay::PaymentPayload::decode_header(header).unwrap();
    assert_eq!(payment.scheme(), "upto", "{script}");
    let ticket = node
        .gate
        .admit(Some(header), None, &offer, "peer-upto-1")
        .await
        .unwrap_or_else(|r| panic!("{script} upto: {r}"));
    assert_eq!(ticket.scheme(), vouch_pay::Scheme::Upto);
    assert_eq!(ticket.amount(), U256::from(maximum));
    let settled = node
        .gate
        .settle_amount(ticket, U256::from(1717u64))
        .await
        .unwrap();
    assert_eq!(settled.payment.scheme, "upto");
    assert_eq!(settled.payment.amount, "1717");
    assert_eq!(node.balance(address).await, U256::from(10_000 - 1717u64));
    let r = node
        .gate
        .admit(Some(header), None, &offer, "peer-upto-2")
        .await
        .unwrap_err();
    assert_eq!(r.reason, Reason::UptoNonceAlreadyUsed.as_str());
}

#[tokio::test]
async fn upto_payments_signed_by_the_python_sdk_settle_the_amount_used() {
    peer_upto_payments_settle_the_amount_used(&python(), "sign_payment.py").await;
}

#[tokio::test]
async fn upto_payments_signed_by_the_js_sdk_settle_the_amount_used() {
    peer_upto_payments_settle_the_amount_used("node", "sign_payment.mjs").await;
}
