//! End to end: the real `vouch` binary serving on a free loopback port with a temp data dir,
//! driven over HTTP and through the CLI, with the models shipped in models/.

// Tests fail loudly on any unexpected error; that is what unwrap is for here.
#![allow(clippy::unwrap_used, clippy::type_complexity, clippy::manual_strip)]

mod common;

use std::path::Path;

use common::{Node, input_json, models, text};
use serde_json::{Value, json};

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn register_infer_verify_replay_and_tamper_through_the_cli() {
    let node = Node::start(&[]);
    let mlp = models().join("mlp.onnx");

    let out = node.cli(&[
        "models",
        "add",
        path_str(&mlp),
        "--name",
        "mlp",
        "--version",
        "1",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("registered sha256:"), "{}", text(&out));
    assert!(text(&out).contains("x float32[N, 64]"), "{}", text(&out));
    let again = node.cli(&[
        "models",
        "add",
        path_str(&mlp),
        "--name",
        "mlp",
        "--version",
        "1",
    ]);
    assert!(
        again.status.success() && text(&again).contains("already registered"),
        "{}",
        text(&again)
    );

    let list = node.cli(&["models", "list"]);
    assert!(text(&list).contains("mlp@1"), "{}", text(&list));

    let inputs = models().join("mlp.input.json");
    let bundle = node.dir.path().join("bundle.json");
    let out = node.cli(&[
        "infer",
        "mlp@1",
        "--input",
        path_str(&inputs),
        "--out",
        path_str(&bundle),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("output y float32 [1, 10]"),
        "{}",
        text(&out)
    );

    let (_, info) = node.get("/v1/node");
    let key = info["node_key"].as_str().unwrap().to_string();
    let ok = node.cli(&[
        "verify",
        path_str(&bundle),
        "--model",
        path_str(&mlp),
        "--inputs",
        path_str(&inputs),
        "--trust-key",
        &key,
    ]);
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(
        text(&ok).contains("OK: signature only: trusts the node"),
        "{}",
        text(&ok)
    );
    assert!(text(&ok).contains("model file hashes to"), "{}", text(&ok));

    let replay = node.cli(&[
        "replay",
        path_str(&bundle),
        "--model",
        path_str(&mlp),
        "--inputs",
        path_str(&inputs),
    ]);
    assert!(replay.status.success(), "{}", text(&replay));
    assert!(text(&replay).contains("OK:"), "{}", text(&replay));

    // Wrong model file for the receipt.
    let cnn = models().join("cnn.onnx");
    let wrong = node.cli(&["verify", path_str(&bundle), "--model", path_str(&cnn)]);
    assert_eq!(wrong.status.code(), Some(2), "{}", text(&wrong));
    assert!(
        text(&wrong).contains("model file does not match"),
        "{}",
        text(&wrong)
    );

    // Tampering: an output value, the receipt's output digest, the signature.
    let original: Value = serde_json::from_str(&std::fs::read_to_string(&bundle).unwrap()).unwrap();
    let tampered = node.dir.path().join("tampered.json");
    let cases: Vec<(&str, Box<dyn Fn(&mut Value)>)> = vec![
        (
            "bundled outputs does not match",
            Box::new(|b: &mut Value| {
                let x = b["outputs"]["y"]["data"][0].as_f64().unwrap();
                b["outputs"]["y"]["data"][0] = json!(x + 0.5);
            }),
        ),
        (
            "signature check failed",
            Box::new(|b: &mut Value| b["receipt"]["issued_at"] = json!("2020-01-01T00:00:00.000Z")),
        ),
        (
            "signature check failed",
            Box::new(|b: &mut Value| {
                let s = b["signature"]["sig"].as_str().unwrap().to_string();
                let flipped = if s.starts_with('A') {
                    format!("B{}", &s[1..])
                } else {
                    format!("A{}", &s[1..])
                };
                b["signature"]["sig"] = json!(flipped);
            }),
        ),
    ];
    for (expect, mutate) in cases {
        let mut b = original.clone();
        mutate(&mut b);
        std::fs::write(&tampered, serde_json::to_string(&b).unwrap()).unwrap();
        let out = node.cli(&["verify", path_str(&tampered)]);
        assert_eq!(out.status.code(), Some(2), "{expect}: {}", text(&out));
        assert!(text(&out).contains(expect), "{expect}: {}", text(&out));
    }
    let other_key = format!("ed25519:{}", "11".repeat(32));
    let untrusted = node.cli(&["verify", path_str(&bundle), "--trust-key", &other_key]);
    assert_eq!(untrusted.status.code(), Some(2), "{}", text(&untrusted));
}

#[test]
fn http_errors_are_clear_and_nothing_bad_is_stored() {
    let node = Node::start_with_env(&[], &[("VOUCH_LIMITS__MAX_BODY_BYTES", "65536")]);
    let token = node.token();
    let mlp = std::fs::read(models().join("mlp.onnx")).unwrap();

    let (s, v) = node.upload(mlp.clone(), "?name=mlp", None);
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (401, Some("unauthorized")),
        "{v}"
    );
    let (s, v) = node.upload(mlp.clone(), "?name=mlp", Some("wrong-token"));
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (401, Some("unauthorized")),
        "{v}"
    );

    let garbage = b"this is not an onnx model at all".to_vec();
    let garbage_digest = vouch_core::Digest::of(&garbage).to_string();
    let (s, v) = node.upload(garbage, "?name=junk", Some(&token));
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (422, Some("invalid_model")),
        "{v}"
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not an ONNX protobuf"),
        "{v}"
    );
    assert_eq!(
        node.get(&format!("/v1/models/by-digest/{garbage_digest}"))
            .0,
        404
    );
    assert_eq!(node.get("/v1/models/junk").0, 404);

    let (s, v) = node.upload(mlp.clone(), "?name=mlp&version=1", Some(&token));
    assert_eq!(s, 201, "{v}");
    let digest = v["model"]["digest"].as_str().unwrap().to_string();
    let (s, v) = node.upload(mlp.clone(), "?name=mlp&version=1", Some(&token));
    assert_eq!((s, v["created"].as_bool()), (200, Some(false)), "{v}");
    let cnn = std::fs::read(models().join("cnn.onnx")).unwrap();
    let (s, v) = node.upload(cnn.clone(), "?name=mlp&version=1", Some(&token));
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (409, Some("version_conflict")),
        "{v}"
    );

    let (s, v) = node.get("/v1/models/mlp@1");
    assert_eq!(s, 200);
    assert_eq!(v["model"]["digest"].as_str(), Some(digest.as_str()));
    assert_eq!(
        v["model"]["signature"]["inputs"][0]["shape"],
        json!(["N", 64])
    );
    let (s, _) = node.get(&format!("/v1/models/by-digest/{digest}"));
    assert_eq!(s, 200);

    // Wrong shape: named tensor and expected shape.
    let mut bad = input_json("mlp");
    bad["x"]["shape"] = json!([2, 32]);
    let (s, v) = node.post_json("/v1/infer", &json!({"model": "mlp@1", "inputs": bad}));
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("bad_input")),
        "{v}"
    );
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("\"x\"") && msg.contains("[N, 64]"), "{msg}");

    // Data that does not fill the shape, unknown model, unknown tier, unavailable tier.
    let mut short = input_json("mlp");
    short["x"]["data"] = json!([1.0, 2.0]);
    let (s, v) = node.post_json("/v1/infer", &json!({"model": "mlp", "inputs": short}));
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("bad_input")),
        "{v}"
    );
    let (s, v) = node.post_json(
        "/v1/infer",
        &json!({"model": "nope", "inputs": input_json("mlp")}),
    );
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (404, Some("model_not_found")),
        "{v}"
    );
    let (s, v) = node.post_json(
        "/v1/infer",
        &json!({"model": "mlp", "inputs": input_json("mlp"), "tiers": ["gold"]}),
    );
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("bad_request")),
        "{v}"
    );
    // This node has no TEE producer (zk on mlp is served since the zk tier was wired).
    let (s, v) = node.post_json(
        "/v1/infer",
        &json!({"model": "mlp", "inputs": input_json("mlp"), "tiers": ["tee"]}),
    );
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (422, Some("tier_unavailable")),
        "{v}"
    );
    let r = node
        .http()
        .post(format!("{}/v1/infer", node.url))
        .body("{not json")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);

    // Oversize body: 413 with our JSON error, under the 64 KiB limit set for this node.
    let big = json!({"model": "mlp", "inputs": {"x": {"dtype": "float32", "shape": [1, 20000], "data": vec![0.5f32; 20000]}}});
    let (s, v) = node.post_json("/v1/infer", &big);
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (413, Some("payload_too_large")),
        "{v}"
    );

    // Unsigned on request, signed by default.
    let (s, v) = node.post_json(
        "/v1/infer",
        &json!({"model": "mlp", "inputs": input_json("mlp"), "tiers": []}),
    );
    assert_eq!(s, 200, "{v}");
    assert!(v.get("signature").is_none());
    let (s, v) = node.post_json(
        "/v1/infer",
        &json!({"model": format!("{digest}"), "inputs": input_json("mlp")}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["receipt"]["tiers"], json!(["signed"]));
    assert!(
        v["receipt"].get("model_ref").is_none(),
        "by digest: no pointer to record"
    );

    let (s, doc) = node.get("/openapi.json");
    assert_eq!(s, 200);
    assert!(doc["paths"]["/v1/infer"]["post"].is_object(), "{doc}");
}

#[test]
fn cnn_and_multi_io_models_serve_correct_outputs() {
    let node = Node::start(&[]);
    let token = node.token();
    for name in ["cnn", "multi_io"] {
        let bytes = std::fs::read(models().join(format!("{name}.onnx"))).unwrap();
        let (s, v) = node.upload(bytes, &format!("?name={name}"), Some(&token));
        assert_eq!(s, 201, "{v}");
        assert_eq!(
            v["name"]["version"],
            json!("1"),
            "first version defaults to 1"
        );
        let (s, v) = node.post_json(
            "/v1/infer",
            &json!({"model": name, "inputs": input_json(name)}),
        );
        assert_eq!(s, 200, "{v}");
        let expected: Value = serde_json::from_str(
            &std::fs::read_to_string(models().join(format!("{name}.output.json"))).unwrap(),
        )
        .unwrap();
        for (out, spec) in expected.as_object().unwrap() {
            let got = &v["outputs"][out];
            assert_eq!(got["shape"], spec["shape"], "{name}/{out}");
            assert_eq!(got["dtype"], spec["dtype"], "{name}/{out}");
            for (a, b) in got["data"]
                .as_array()
                .unwrap()
                .iter()
                .zip(spec["data"].as_array().unwrap())
            {
                assert!(
                    (a.as_f64().unwrap() - b.as_f64().unwrap()).abs() < 1e-4,
                    "{name}/{out}: {a} vs {b}"
                );
            }
        }
    }
}

#[test]
fn tract_only_node_gives_deterministic_receipts_that_replay_bit_exactly() {
    let node = Node::start_with_env(&[], &[("VOUCH_EXEC__ENGINE", "tract")]);
    let cnn = models().join("cnn.onnx");
    let out = node.cli(&[
        "models",
        "add",
        path_str(&cnn),
        "--name",
        "cnn",
        "--version",
        "7",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("engine: tract"), "{}", text(&out));
    let inputs = models().join("cnn.input.json");
    let bundle = node.dir.path().join("b.json");
    let out = node.cli(&[
        "infer",
        "cnn@7",
        "--input",
        path_str(&inputs),
        "--out",
        path_str(&bundle),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let b: Value = serde_json::from_str(&std::fs::read_to_string(&bundle).unwrap()).unwrap();
    assert_eq!(
        b["receipt"]["engine"]["profile"]["deterministic"],
        json!(true)
    );
    let replay = node.cli(&[
        "replay",
        path_str(&bundle),
        "--model",
        path_str(&cnn),
        "--inputs",
        path_str(&inputs),
    ]);
    assert!(replay.status.success(), "{}", text(&replay));
    assert!(text(&replay).contains("bit-exact"), "{}", text(&replay));
}
