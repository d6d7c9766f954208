//! `POST /v1/embeddings` end to end: the MiniLM text model (exported by
//! scripts/setup-minilm.sh with its tokenizer inside the file), registered through the CLI,
//! asked over raw HTTP and through the official OpenAI Python SDK (which asks for base64). The
//! embedding of the export's reference sentence matches ONNX Runtime's output recorded at
//! export, and its receipt verifies against the token ids the export's tokenizer produced.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{Node, minilm, text};
use serde_json::{Value, json};
use vouch_core::{Bundle, TensorMap};
use vouch_verify::{Evidence, verify_bundle};

const SENTENCE: &str = "Vouch proves which model produced this answer.";

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn text_is_embedded_by_the_model_with_its_own_tokenizer_and_receipted() {
    let Some(model) = minilm() else { return };
    let dir = model.parent().unwrap().to_path_buf();
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
    let (_, info) = node.get("/v1/node");
    let key = info["node_key"].as_str().unwrap().parse().unwrap();

    // One sentence: ONNX Runtime's embedding from the export, and a receipt over exactly the
    // token ids the export's tokenizer (Python `tokenizers`) produced.
    let (status, one) = node.post_json(
        "/v1/embeddings",
        &json!({"model": "minilm@1", "input": SENTENCE}),
    );
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["object"], "list");
    assert_eq!(one["usage"]["prompt_tokens"], 11);
    let got = floats(&one["data"][0]["embedding"]);
    let reference: TensorMap =
        serde_json::from_str(&std::fs::read_to_string(dir.join("minilm.output.json")).unwrap())
            .unwrap();
    let want: Vec<f32> = match reference.0.values().next().unwrap().data() {
        vouch_core::TensorData::Float32(v) => v.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(got.len(), 384);
    let worst = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst < 1e-5, "max abs difference {worst}");
    let bundle: Bundle = serde_json::from_value(one["vouch"].clone()).unwrap();
    let inputs: TensorMap =
        serde_json::from_str(&std::fs::read_to_string(dir.join("minilm.input.json")).unwrap())
            .unwrap();
    let report = verify_bundle(
        &bundle,
        &Evidence {
            trusted_key: Some(key),
            inputs: Some(&inputs),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(!report.proven.is_empty());

    // Several texts in one run: similar sentences are closer; base64 is the same floats.
    let texts = [
        SENTENCE,
        "A cat sat on the mat.",
        "A kitten was sitting on the rug.",
    ];
    let (status, many) = node.post_json(
        "/v1/embeddings",
        &json!({"model": "minilm@1", "input": texts}),
    );
    assert_eq!(status, 200, "{many}");
    let e: Vec<Vec<f32>> = (0..3)
        .map(|i| floats(&many["data"][i]["embedding"]))
        .collect();
    assert!(cosine(&e[1], &e[2]) > cosine(&e[0], &e[1]) + 0.2);
    let (status, b64) = node.post_json(
        "/v1/embeddings",
        &json!({"model": "minilm@1", "input": texts, "encoding_format": "base64"}),
    );
    assert_eq!(status, 200, "{b64}");
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64["data"][2]["embedding"].as_str().unwrap())
        .unwrap();
    let decoded: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(decoded, e[2]);

    // Refused, not truncated or guessed.
    let long = "word ".repeat(400);
    for (body, reason) in [
        (
            json!({"model": "minilm@1", "input": long}),
            "context_length_exceeded",
        ),
        (
            json!({"model": "minilm@1", "input": "x", "dimensions": 64}),
            "unsupported",
        ),
    ] {
        let (status, err) = node.post_json("/v1/embeddings", &body);
        assert_eq!(status, 400, "{err}");
        assert_eq!(err["error"]["reason"], reason, "{err}");
    }
    let mlp = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/mlp.onnx");
    let out = node.cli(&["models", "add", mlp.to_str().unwrap(), "--name", "mlp"]);
    assert!(out.status.success(), "{}", text(&out));
    let (status, err) = node.post_json("/v1/embeddings", &json!({"model": "mlp", "input": "x"}));
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["reason"], "not_embedding", "{err}");

    // The official Python SDK, base URL changed only (it asks for base64 and decodes it).
    let python = common::python();
    let script = r#"
import json, sys, openai
c = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="not-needed", max_retries=0)
r = c.embeddings.create(model="minilm@1", input=json.loads(sys.argv[2]))
print(json.dumps({"vectors": [d.embedding for d in r.data], "usage": r.usage.prompt_tokens,
                  "has_vouch": "vouch" in (r.model_extra or {})}))
"#;
    let probe = Command::new(&python).args(["-c", "import openai"]).output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        assert!(
            std::env::var("VOUCH_REQUIRE_INTEROP").as_deref() != Ok("1"),
            "the openai SDK is required: run tests/setup/openai.sh"
        );
        eprintln!("SKIPPED: the openai Python SDK is missing");
        return;
    }
    let out = Command::new(&python)
        .args([
            "-c",
            script,
            &node.url,
            &serde_json::to_string(&texts).unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let sdk: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(sdk["has_vouch"], true);
    for (i, want) in e.iter().enumerate() {
        assert_eq!(&floats(&sdk["vectors"][i]), want, "vector {i}");
    }

    // The official JS SDK, likewise (tests/setup/openai.sh installs it).
    let js = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/llm/js");
    if !js.join("node_modules/openai/package.json").exists() {
        assert!(
            std::env::var("VOUCH_REQUIRE_INTEROP").as_deref() != Ok("1"),
            "the npm openai SDK is required: run tests/setup/openai.sh"
        );
        eprintln!("SKIPPED: the npm openai SDK is missing");
        return;
    }
    let script = r#"
import OpenAI from "openai";
const [base, input] = process.argv.slice(1);
const c = new OpenAI({ baseURL: base + "/v1", apiKey: "not-needed", maxRetries: 0 });
const r = await c.embeddings.create({ model: "minilm@1", input: JSON.parse(input) });
console.log(JSON.stringify({ vectors: r.data.map((d) => d.embedding), has_vouch: typeof r.vouch === "object" }));
"#;
    let out = Command::new("node")
        .args(["--input-type=module", "-e", script, &node.url])
        .arg(serde_json::to_string(&texts).unwrap())
        .current_dir(&js)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let sdk: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(sdk["has_vouch"], true);
    for (i, want) in e.iter().enumerate() {
        assert_eq!(&floats(&sdk["vectors"][i]), want, "npm vector {i}");
    }
}
