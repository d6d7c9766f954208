//! zk for a transformer through the real server and CLI (issue 18): the MiniLM text model
//! registered with zk available (its weights committed once into a model key), an embedding
//! request proven asynchronously, and the completed bundle verified offline without the model
//! file (the registry's key digest pinned), with it, and refused when tampered or unpinned.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use base64::Engine as _;
use common::{Node, minilm, text};
use serde_json::{Value, json};

fn verify(node: &Node, bundle: &Value, args: &[&str]) -> (i32, String) {
    let p = node.dir.path().join("to-verify.json");
    std::fs::write(&p, serde_json::to_vec_pretty(bundle).unwrap()).unwrap();
    let mut all = vec!["verify", p.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = node.cli(&all);
    (out.status.code().unwrap(), text(&out))
}

#[test]
fn a_minilm_embedding_is_proven_and_verifies_without_the_model_file() {
    let Some(model) = minilm() else { return };
    let inputs = model.parent().unwrap().join("minilm.input.json");
    let node = Node::start(&[]);
    let out = node.cli(&[
        "models",
        "add",
        model.to_str().unwrap(),
        "--name",
        "minilm",
        "--version",
        "1",
    ]);
    assert!(out.status.success(), "{}", text(&out));

    // Registration committed the weights: zk available, with the model key's digest.
    let zk = node.zk_analysed("minilm@1");
    assert_eq!(zk["status"], json!("available"), "{zk}");
    let vk = zk["vk_digest"].as_str().unwrap().to_string();
    assert!(zk["estimate"]["prove_ms"].as_u64().unwrap() > 0, "{zk}");

    let done_path = node.dir.path().join("done.json");
    let started = std::time::Instant::now();
    let out = node.cli(&[
        "infer",
        "minilm@1",
        "--input",
        inputs.to_str().unwrap(),
        "--tiers",
        "signed,zk",
        "--wait-proof",
        "--out",
        done_path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    eprintln!(
        "MiniLM zk request to proof: {} ms (estimate {} ms)",
        started.elapsed().as_millis(),
        zk["estimate"]["prove_ms"]
    );
    let done: Value = serde_json::from_str(&std::fs::read_to_string(&done_path).unwrap()).unwrap();
    assert_eq!(done["receipt"]["tiers"], json!(["signed", "zk"]));
    let ev = &done["evidence"]["zk"];
    assert_eq!(ev["vk_digest"], json!(vk));
    assert_eq!(
        ev["system"],
        json!("vouch-tensor-1/sumcheck-logup-gkr/hyrax/pallas")
    );
    let proof_bytes = base64::engine::general_purpose::STANDARD
        .decode(ev["proof"].as_str().unwrap())
        .unwrap()
        .len();
    let key_bytes = base64::engine::general_purpose::STANDARD
        .decode(ev["model_key"].as_str().unwrap())
        .unwrap()
        .len();
    eprintln!("MiniLM proof {proof_bytes} B, model key {key_bytes} B");
    assert!(
        proof_bytes < 2 << 20 && key_bytes < 1 << 20,
        "proof {proof_bytes} B, key {key_bytes} B"
    );

    // Without the model file, the registry's key digest pinned: proven.
    let (code, t) = verify(
        &node,
        &done,
        &[
            "--inputs",
            inputs.to_str().unwrap(),
            "--require",
            "zk",
            "--zk-vk-digest",
            &vk,
        ],
    );
    assert_eq!(code, 0, "{t}");
    assert!(t.contains("tier zk: Proven (vouch-tensor-1"), "{t}");
    assert!(t.contains("carried by the bundle"), "{t}");
    assert!(
        t.contains("the input you supplied (digest matches the receipt)"),
        "{t}"
    );
    // Nothing pinned and no model file: the key is not tied to the model, so not proven.
    let (code, t) = verify(&node, &done, &["--require", "zk"]);
    assert_eq!(code, 2, "{t}");
    assert!(t.contains("--zk-vk-digest"), "{t}");
    // With the model file the key is recomputed from it.
    let (code, t) = verify(
        &node,
        &done,
        &["--model", model.to_str().unwrap(), "--require", "zk"],
    );
    assert_eq!(code, 0, "{t}");
    assert!(t.contains("recomputed from the model file"), "{t}");

    // Tampering: a proof byte, the proven embedding, another key's digest.
    let mut bad = done.clone();
    let mut raw = base64::engine::general_purpose::STANDARD
        .decode(ev["proof"].as_str().unwrap())
        .unwrap();
    let mid = raw.len() / 2;
    raw[mid] ^= 1;
    bad["evidence"]["zk"]["proof"] = json!(base64::engine::general_purpose::STANDARD.encode(&raw));
    let (code, t) = verify(&node, &bad, &["--zk-vk-digest", &vk]);
    assert_eq!(code, 2, "{t}");
    assert!(t.contains("FAILED: zk:"), "{t}");
    let mut bad = done.clone();
    let q = bad["evidence"]["zk"]["outputs_q"]["embedding"][0]
        .as_i64()
        .unwrap();
    bad["evidence"]["zk"]["outputs_q"]["embedding"][0] = json!(q + 1);
    let (code, t) = verify(&node, &bad, &["--zk-vk-digest", &vk]);
    assert_eq!(code, 2, "{t}");
    assert!(t.contains("FAILED: zk:"), "{t}");
    let other = format!("sha256:{}", "ab".repeat(32));
    let (code, t) = verify(&node, &done, &["--zk-vk-digest", &other]);
    assert_eq!(code, 2, "{t}");
    assert!(t.contains("registry's"), "{t}");
}
