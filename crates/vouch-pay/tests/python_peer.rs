//! An independent peer: the official x402 Python SDK (`pip install "x402[evm]"`) reads Vouch's
//! 402 (v2 header, v1 body) with its own decoder, picks a requirement with its own client and
//! spend controls, and signs with its own EIP-712 signer (eth-account); Vouch must verify and
//! settle that payment, and refuse its replay.
//!
//! Python is found at `$VOUCH_PYTHON`, else `/root/.cache/vouch/venv/bin/python`, else
//! `python3`. Without the SDK the test prints why and passes, unless `VOUCH_REQUIRE_INTEROP=1`
//! (set in CI), where a missing SDK fails it.

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

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/x402/sign_payment.py")
}

/// Runs the SDK on a 402; `None` (after saying why) when the SDK is not installed.
fn sdk_pay(request: serde_json::Value) -> Option<serde_json::Value> {
    let mut child = match Command::new(python())
        .arg(script())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return skip(&format!("cannot run {}: {e}", python())),
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
    assert!(out.status.success(), "python SDK failed: {stderr}");
    Some(serde_json::from_slice(&out.stdout).expect("SDK output is JSON"))
}

fn skip(why: &str) -> Option<serde_json::Value> {
    if std::env::var("VOUCH_REQUIRE_INTEROP").as_deref() == Ok("1") {
        panic!("x402 Python SDK required (VOUCH_REQUIRE_INTEROP=1) but unavailable: {why}");
    }
    eprintln!("SKIPPED python_peer: {why}");
    None
}

#[tokio::test]
async fn payments_signed_by_the_python_sdk_verify_and_settle() {
    let node = Node::new("py").await;
    let offer = node.offer("mnist", PRICE);
    let required = node.gate.payment_required(&offer);
    let (_, pr_header) = required
        .headers()
        .into_iter()
        .find(|(n, _)| *n == "PAYMENT-REQUIRED")
        .unwrap();

    // v2: the SDK reads our PAYMENT-REQUIRED header.
    let Some(v2) = sdk_pay(serde_json::json!({"header": pr_header})) else {
        return;
    };
    // v1: the SDK reads our JSON body.
    let Some(v1) = sdk_pay(serde_json::json!({"body": required.body()})) else {
        return;
    };

    for (answer, version) in [(v2, 2), (v1, 1)] {
        assert_eq!(answer["version"], version);
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
            .admit(sig, x, &offer, "py-1")
            .await
            .unwrap_or_else(|r| panic!("v{version}: {r}"));
        assert_eq!(ticket.payer(), address);
        let settled = node.gate.settle(ticket).await.unwrap();
        assert_eq!(settled.payment.payer, address.to_string());
        assert_eq!(node.balance(address).await, U256::from(PRICE));
        // And its replay is refused.
        let r = node.gate.admit(sig, x, &offer, "py-2").await.unwrap_err();
        assert_eq!(r.reason, Reason::NonceAlreadyUsed.as_str());
    }
}
