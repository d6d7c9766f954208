//! `vouch verify --json` through the real binary, on bundles from a real node (simulated TEE,
//! the only producer this machine has) and on real AWS Nitro evidence from vouch-attest's
//! fixtures: the report with `"ok": true` on success; on failure `"ok": false`, a stable code,
//! a readable message and exit status 2 (1 for the verifier's own bad input).

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{Node, models, text};
use serde_json::{Value, json};
use vouch_attest::tee::{BindingInfo, Platform, TeeEvidence};
use vouch_core::NodeKey;

const NITRO_DOC: &[u8] = include_bytes!("../../vouch-attest/fixtures/nitro/attestation.cose");

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs `vouch verify --json BUNDLE ARGS…` on `bundle` written to a file; (exit code, output).
fn verify_json(node: &Node, name: &str, bundle: &Value, args: &[&str]) -> (i32, Value) {
    let p = node.dir.path().join(name);
    std::fs::write(&p, serde_json::to_vec(bundle).unwrap()).unwrap();
    let mut all = vec!["verify", "--json", path_str(&p)];
    all.extend_from_slice(args);
    let out = node.cli(&all);
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", text(&out)));
    (out.status.code().unwrap(), v)
}

/// A failure: exit 2, `ok: false`, the code, and a message that names what went wrong.
fn assert_fails(result: (i32, Value), code: &str, below_policy: bool, says: &str) {
    let (status, v) = result;
    assert_eq!(status, 2, "{code}: {v}");
    assert_eq!(v["ok"], json!(false), "{v}");
    assert_eq!(v["code"], json!(code), "{v}");
    assert_eq!(v["below_policy"], json!(below_policy), "{v}");
    let m = v["message"].as_str().unwrap();
    assert!(m.contains(says), "{code}: {m}");
    assert!(
        !m.contains("Some(") && !m.contains(" { "),
        "debug text: {m}"
    );
}

#[test]
fn verify_json_reports_success_and_each_failure_with_a_stable_code() {
    let node = Node::start(&["--tee", "simulated"]);
    node.register("mlp");
    let (_, info) = node.get("/v1/node");
    let key = info["node_key"].as_str().unwrap().to_string();
    let measurement = info["tee"]["measurements"]["MEASUREMENT"]
        .as_str()
        .unwrap()
        .to_string();

    let mlp = models().join("mlp.onnx");
    let inputs = models().join("mlp.input.json");
    let bundle_path = node.dir.path().join("bundle.json");
    let out = node.cli(&[
        "infer",
        "mlp@1",
        "--input",
        path_str(&inputs),
        "--tiers",
        "signed,tee",
        "--out",
        path_str(&bundle_path),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let good: Value = serde_json::from_slice(&std::fs::read(&bundle_path).unwrap()).unwrap();

    // A good bundle: the report, with what each tier proved and what it trusts.
    let (status, v) = verify_json(
        &node,
        "good.json",
        &good,
        &[
            "--allow-simulated",
            "--trust-key",
            &key,
            "--model",
            path_str(&mlp),
            "--inputs",
            path_str(&inputs),
        ],
    );
    assert_eq!(status, 0, "{v}");
    assert_eq!(v["ok"], json!(true), "{v}");
    let tiers: Vec<&str> = v["tiers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tier"].as_str().unwrap())
        .collect();
    assert_eq!(tiers, ["signed", "tee"], "{v}");
    assert_eq!(v["tiers"][1]["simulated"], json!(true), "{v}");
    assert!(
        v["proven"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["check"] == json!("model file")),
        "{v}"
    );
    assert!(v["summary"].as_str().unwrap().starts_with("tee: simulated"));

    // A flipped signature byte.
    let mut b = good.clone();
    let sig = b["signature"]["sig"].as_str().unwrap().to_string();
    let first = if sig.starts_with('A') { "B" } else { "A" };
    b["signature"]["sig"] = json!(format!("{first}{}", &sig[1..]));
    assert_fails(
        verify_json(&node, "sig.json", &b, &["--allow-simulated"]),
        "signature_invalid",
        false,
        "signature does not match the receipt",
    );

    // Another node's key pinned.
    let other = format!("ed25519:{}", "11".repeat(32));
    assert_fails(
        verify_json(
            &node,
            "untrusted.json",
            &good,
            &["--allow-simulated", "--trust-key", &other],
        ),
        "signer_untrusted",
        false,
        "not the trusted key",
    );

    // The wrong model file.
    let cnn = models().join("cnn.onnx");
    assert_fails(
        verify_json(
            &node,
            "model.json",
            &good,
            &["--allow-simulated", "--model", path_str(&cnn)],
        ),
        "model_mismatch",
        false,
        "model file does not match the receipt",
    );

    // A forged TEE envelope: one byte of the signed statement changed.
    let mut b = good.clone();
    let ev = b["evidence"]["tee"]["evidence"]
        .as_str()
        .unwrap()
        .to_string();
    let flipped = if ev.as_bytes()[40] == b'A' { 'B' } else { 'A' };
    b["evidence"]["tee"]["evidence"] = json!(format!("{}{flipped}{}", &ev[..40], &ev[41..]));
    assert_fails(
        verify_json(&node, "forged.json", &b, &["--allow-simulated"]),
        "tee_not_authentic",
        false,
        "not authentic",
    );

    // Genuine evidence below the verifier's policy: another measurement, or simulated refused.
    assert_fails(
        verify_json(
            &node,
            "policy.json",
            &good,
            &[
                "--allow-simulated",
                "--tee-expect",
                &format!("MEASUREMENT={}", "00".repeat(48)),
            ],
        ),
        "tee_measurement_mismatch",
        true,
        &format!("measurement MEASUREMENT is {measurement}"),
    );
    assert_fails(
        verify_json(&node, "simulated.json", &good, &[]),
        "tee_simulated_not_allowed",
        true,
        "--allow-simulated",
    );

    // Real AWS Nitro evidence in the bundle, one byte of its COSE signature flipped: forged.
    let receipt_key: NodeKey = key.parse().unwrap();
    let mut doc = NITRO_DOC.to_vec();
    let last = doc.len() - 1;
    doc[last] ^= 1;
    let nitro = |doc: &[u8]| {
        TeeEvidence::new(
            Platform::AwsNitro,
            doc,
            BindingInfo::new(receipt_key, None),
            "2025-01-06T00:00:00Z".into(),
        )
        .to_json()
    };
    let mut b = good.clone();
    b["evidence"]["tee"] = nitro(&doc);
    assert_fails(
        verify_json(&node, "nitro-forged.json", &b, &[]),
        "tee_not_authentic",
        false,
        "COSE ES384 signature does not verify",
    );
    // The genuine document gets past authenticity and stops at the binding: it was made for
    // another key than this node's.
    b["evidence"]["tee"] = nitro(NITRO_DOC);
    assert_fails(
        verify_json(&node, "nitro-genuine.json", &b, &[]),
        "tee_binding",
        false,
        "user_data",
    );

    // The verifier's own bad input: not a bundle at all.
    let (status, v) = verify_json(&node, "not-a-bundle.json", &json!({"hello": 1}), &[]);
    assert_eq!(status, 1, "{v}");
    assert_eq!(v["ok"], json!(false), "{v}");
    assert_eq!(v["code"], json!("invalid_argument"), "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("receipt bundle"),
        "{v}"
    );
    let missing: PathBuf = node.dir.path().join("absent.onnx");
    let (status, v) = verify_json(&node, "good2.json", &good, &["--model", path_str(&missing)]);
    assert_eq!(
        (status, v["code"].clone()),
        (1, json!("invalid_argument")),
        "{v}"
    );
}
