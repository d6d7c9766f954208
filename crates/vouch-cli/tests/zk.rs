//! The zk tier through the real server and CLI: analysis at registration, asynchronous proof
//! jobs, completed bundles verified offline from the model file, tampering and grafting
//! rejected, unsupported operators refused by name, durable jobs across a crash, cancellation,
//! and a bounded queue. Uses `models/mlp_small.onnx` (16→32→32→4) so each proof is quick.

// Tests fail loudly on any unexpected error; that is what unwrap is for here.
#![allow(clippy::unwrap_used)]

mod common;
/// vouch-zk's test models (built with its ONNX protobuf types).
#[path = "../../vouch-zk/tests/common/mod.rs"]
mod zk_onnx;

use std::path::{Path, PathBuf};

use base64::Engine as _;
use common::{Node, input_json, models, text};
use serde_json::{Value, json};

/// POST /v1/infer, returning status, body and the job's cancel token (if any).
fn infer(node: &Node, body: &Value) -> (u16, Value, Option<String>) {
    let r = node
        .http()
        .post(format!("{}/v1/infer", node.url))
        .json(body)
        .send()
        .unwrap();
    let token = r
        .headers()
        .get("vouch-zk-cancel-token")
        .map(|v| v.to_str().unwrap().to_string());
    (r.status().as_u16(), r.json().unwrap_or(Value::Null), token)
}

fn zk_request(inputs: Value, tiers: Value) -> Value {
    json!({"model": "mlp_small", "inputs": inputs, "tiers": tiers})
}

fn delete(node: &Node, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = node.http().delete(format!("{}{path}", node.url));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().unwrap();
    (r.status().as_u16(), r.json().unwrap_or(Value::Null))
}

fn save(dir: &Path, name: &str, v: &Value) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_vec_pretty(v).unwrap()).unwrap();
    p
}

fn model_file() -> String {
    models().join("mlp_small.onnx").display().to_string()
}

fn input_file() -> String {
    models().join("mlp_small.input.json").display().to_string()
}

/// `vouch verify` on a bundle value with extra arguments: (exit code, output).
fn verify(node: &Node, bundle: &Value, args: &[&str]) -> (i32, String) {
    let p = save(node.dir.path(), "to-verify.json", bundle);
    let mut all = vec!["verify", p.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = node.cli(&all);
    (out.status.code().unwrap(), text(&out))
}

/// `vouch verify` with the model file and the inputs, demanding the zk proof.
fn verify_against_files(node: &Node, bundle: &Value) -> (i32, String) {
    verify(
        node,
        bundle,
        &[
            "--model",
            &model_file(),
            "--inputs",
            &input_file(),
            "--require",
            "zk",
        ],
    )
}

/// Another input of the right shape: the sample with every value halved.
fn other_input() -> Value {
    let mut v = input_json("mlp_small");
    let data: Vec<f64> = v["x"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() / 2.0)
        .collect();
    v["x"]["data"] = json!(data);
    v
}

#[test]
fn a_zk_request_is_proven_asynchronously_and_the_completed_bundle_verifies_offline() {
    let node = Node::start(&[]);
    node.register("mlp_small");

    // Registration analysed the model: zk available, with its verifying-key digest and cost.
    let zk = &node.zk_analysed("mlp_small");
    assert_eq!(zk["status"], json!("available"), "{zk}");
    let vk = zk["vk_digest"].as_str().unwrap().to_string();
    assert!(vk.starts_with("sha256:"), "{zk}");
    assert!(zk["circuit"]["constraints"].as_u64().unwrap() > 0, "{zk}");
    assert!(zk["estimate"]["prove_ms"].is_u64(), "{zk}");
    let out = node.cli(&["models", "list"]);
    assert!(
        text(&out).contains(&format!("zk:      available: vk {vk}")),
        "{}",
        text(&out)
    );
    let (_, a) = node.get("/v1/models/mlp_small/assurance");
    assert_eq!(a["tiers"][2]["available"], json!(true), "{a}");

    // The CLI asks for signed + zk, waits for the proof and saves the completed bundle.
    let done_path = node.dir.path().join("done.json");
    let out = node.cli(&[
        "infer",
        "mlp_small",
        "--input",
        &input_file(),
        "--tiers",
        "signed,zk",
        "--wait-proof",
        "--out",
        done_path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("zk proof done"), "{}", text(&out));
    let done: Value = serde_json::from_str(&std::fs::read_to_string(&done_path).unwrap()).unwrap();
    assert_eq!(done["receipt"]["tiers"], json!(["signed", "zk"]));
    assert!(done["evidence"].get("zk_job").is_none(), "{done}");
    assert_eq!(done["evidence"]["zk"]["vk_digest"], json!(vk));

    let (code, t) = verify(
        &node,
        &done,
        &[
            "--model",
            &model_file(),
            "--inputs",
            &input_file(),
            "--require",
            "zk",
            "--zk-vk-digest",
            &vk,
        ],
    );
    assert_eq!(code, 0, "{t}");
    assert!(t.contains("OK: zk: proven"), "{t}");
    assert!(t.contains("tier zk: Proven (spartan2"), "{t}");
    assert!(
        t.contains("the input you supplied (digest matches the receipt)"),
        "{t}"
    );
    assert!(t.contains("tier signed: node key"), "{t}");
    // Without the model file the proof is not checked: not a pass for who demands zk.
    let (code, t) = verify(&node, &done, &["--require", "zk"]);
    assert_eq!(code, 2, "{t}");
    assert!(t.contains("zk tier is required but not proven"), "{t}");
    assert!(t.contains("pass --model"), "{t}");
    let (code, t) = verify(&node, &done, &[]);
    assert_eq!(code, 0, "{t}");
    assert!(t.contains("not proven: zk: a proof is attached"), "{t}");
    // A registry key that is not the proof's.
    let other_vk = format!("sha256:{}", "ab".repeat(32));
    let (code, t) = verify(
        &node,
        &done,
        &["--model", &model_file(), "--zk-vk-digest", &other_vk],
    );
    assert_eq!(code, 2, "{t}");
    assert!(t.contains("registry's"), "{t}");

    // A flipped proof byte.
    let mut bad = done.clone();
    let proof = bad["evidence"]["zk"]["proof"].as_str().unwrap();
    let mut raw = base64::engine::general_purpose::STANDARD
        .decode(proof)
        .unwrap();
    let mid = raw.len() / 2;
    raw[mid] ^= 0x01;
    bad["evidence"]["zk"]["proof"] = json!(base64::engine::general_purpose::STANDARD.encode(&raw));
    let (code, t) = verify(&node, &bad, &["--model", &model_file()]);
    assert_eq!(code, 2, "{t}");
    assert!(t.contains("FAILED: zk:"), "{t}");
    // A changed proven output in the evidence.
    let mut bad = done.clone();
    let q = bad["evidence"]["zk"]["outputs_q"]["y"][0].as_i64().unwrap();
    bad["evidence"]["zk"]["outputs_q"]["y"][0] = json!(q + 1);
    let (code, t) = verify(&node, &bad, &["--model", &model_file()]);
    assert_eq!(code, 2, "{t}");
    assert!(t.contains("FAILED: zk:"), "{t}");
    // A changed output value in the bundle: it is no longer the receipt's.
    let mut bad = done.clone();
    let y = bad["outputs"]["y"]["data"][0].as_f64().unwrap();
    bad["outputs"]["y"]["data"][0] = json!(y + 0.5);
    let (code, t) = verify(&node, &bad, &["--model", &model_file()]);
    assert_eq!(code, 2, "{t}");

    // A zk-only request: answered at once with a job; the bundle is pending until completed.
    let (s, pending_a, token) = infer(&node, &zk_request(input_json("mlp_small"), json!(["zk"])));
    assert_eq!(s, 200, "{pending_a}");
    assert!(token.is_some(), "the requester gets a cancel token");
    assert_eq!(pending_a["receipt"]["tiers"], json!(["zk"]));
    let job = &pending_a["evidence"]["zk_job"];
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!(job["url"], json!(format!("/v1/proofs/{id}")));
    assert!(job["estimate_ms"].is_u64(), "{job}");
    let (code, t) = verify(
        &node,
        &pending_a,
        &["--model", &model_file(), "--require", "zk"],
    );
    assert_eq!(code, 2, "{t}");
    assert!(
        t.contains(&format!("zk: pending (job {id}), not proven")),
        "{t}"
    );
    let (code, t) = verify(&node, &pending_a, &["--model", &model_file()]);
    assert_eq!(code, 0, "{t}");
    assert!(
        t.contains(&format!("not proven: zk: pending (job {id})")),
        "{t}"
    );

    let pending_path = save(node.dir.path(), "pending-a.json", &pending_a);
    let a_path = node.dir.path().join("a.json");
    let out = node.cli(&[
        "proofs",
        "wait",
        "--bundle",
        pending_path.to_str().unwrap(),
        "--out",
        a_path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let a: Value = serde_json::from_str(&std::fs::read_to_string(&a_path).unwrap()).unwrap();
    let (code, t) = verify_against_files(&node, &a);
    assert_eq!(code, 0, "{t}");
    let (s, job) = node.get(&format!("/v1/proofs/{id}"));
    assert_eq!(s, 200);
    assert_eq!(
        (job["status"].as_str(), job["progress"].as_f64()),
        (Some("done"), Some(1.0)),
        "{job}"
    );
    assert_eq!(job["receipt"], a["evidence"]["zk"]["receipt"]);

    // The unsigned zk receipt is held together by the proof alone: any change to it fails.
    let mut bad = a.clone();
    bad["receipt"]["issued_at"] = json!("2020-01-01T00:00:00.000Z");
    let (code, t) = verify(&node, &bad, &["--model", &model_file()]);
    assert_eq!(code, 2, "{t}");
    assert!(t.contains("bound to a different receipt"), "{t}");

    // Request B on another input; A's proof grafted onto B's bundle fails.
    let (s, pending_b, _) = infer(&node, &zk_request(other_input(), json!(["zk"])));
    assert_eq!(s, 200, "{pending_b}");
    let id_b = pending_b["evidence"]["zk_job"]["id"].as_str().unwrap();
    let job_b = node.finished_job(id_b);
    assert_eq!(job_b["status"], json!("done"), "{job_b}");
    let mut b = pending_b.clone();
    b["evidence"]["zk"] = job_b["evidence"]["zk"].clone();
    b["evidence"].as_object_mut().unwrap().remove("zk_job");
    let (code, t) = verify(&node, &b, &["--model", &model_file(), "--require", "zk"]);
    assert_eq!(code, 0, "{t}");
    let mut grafted = b.clone();
    grafted["evidence"]["zk"] = a["evidence"]["zk"].clone();
    let (code, t) = verify(&node, &grafted, &["--model", &model_file()]);
    assert_eq!(code, 2, "{t}");
    assert!(t.contains("bound to a different receipt"), "{t}");
    // And `proofs wait` refuses to put B's proof into A's bundle.
    let out = node.cli(&[
        "proofs",
        "wait",
        id_b,
        "--bundle",
        pending_path.to_str().unwrap(),
        "--out",
        node.dir.path().join("x.json").to_str().unwrap(),
    ]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("holds receipt"), "{}", text(&out));
}

#[test]
fn unsupported_models_and_inputs_are_refused_before_any_work() {
    let node = Node::start(&[]);
    node.register("multi_io");
    node.register("mlp_small");
    node.zk_analysed("mlp_small");
    let (s, m) = node.get("/v1/models/multi_io");
    assert_eq!(s, 200, "{m}");
    assert_eq!(m["zk"]["status"], json!("unavailable"), "{m}");
    let reason = m["zk"]["reason"].as_str().unwrap().to_string();
    assert!(reason.starts_with("zk: unavailable: operator "), "{reason}");
    let op = reason["zk: unavailable: operator ".len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();

    let (s, v, _) = infer(
        &node,
        &json!({"model": "multi_io", "inputs": input_json("multi_io"), "tiers": ["signed", "zk"]}),
    );
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["error"]["code"], json!("tier_unavailable"));
    assert_eq!(v["error"]["reason"], json!("zk_unavailable"));
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains(&format!("operator {op}")), "{msg}");
    let (_, a) = node.get("/v1/models/multi_io/assurance");
    assert_eq!(a["tiers"][2]["available"], json!(false), "{a}");
    assert!(
        a["tiers"][2]["unavailable_reason"]
            .as_str()
            .unwrap()
            .contains(&op),
        "{a}"
    );
    let out = node.cli(&["models", "assurance", "multi_io"]);
    assert!(
        text(&out).contains(&format!("zk: unavailable: zk: unavailable: operator {op}")),
        "{}",
        text(&out)
    );

    // A batch of two rows: a zk proof covers one.
    let mut two = input_json("mlp_small");
    let mut data = two["x"]["data"].as_array().unwrap().clone();
    data.extend(data.clone());
    two["x"]["data"] = json!(data);
    two["x"]["shape"] = json!([2, 16]);
    let (s, v, _) = infer(&node, &zk_request(two, json!(["zk"])));
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("bad_input")),
        "{v}"
    );
    assert!(
        v["error"]["message"].as_str().unwrap().contains("batch 1"),
        "{v}"
    );

    let (s, v) = node.get("/v1/proofs/0190b3e4-0000-7000-8000-000000000000");
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (404, Some("proof_not_found")),
        "{v}"
    );
    let (s, v) = node.get("/v1/proofs/not-a-job");
    assert_eq!(s, 404, "{v}");
    let (s, v) = node.get("/v1/proofs/0190b3e4-0000-7000-8000-000000000000?wait=soon");
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("bad_request")),
        "{v}"
    );
}

#[test]
fn jobs_are_durable_cancellable_and_bounded() {
    let conf = tempfile::tempdir().unwrap();
    let paused = conf.path().join("paused.toml");
    std::fs::write(&paused, "[zk]\nworkers = 0\nqueue_capacity = 2\n").unwrap();
    let node = Node::start(&["--config", paused.to_str().unwrap()]);
    node.register("mlp_small");
    node.zk_analysed("mlp_small");

    // No prover threads: jobs queue (durably) and the queue holds two.
    let (s, pending_a, _) = infer(
        &node,
        &zk_request(input_json("mlp_small"), json!(["signed", "zk"])),
    );
    assert_eq!(s, 200, "{pending_a}");
    let id_a = pending_a["evidence"]["zk_job"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, pending_b, token_b) = infer(&node, &zk_request(other_input(), json!(["zk"])));
    assert_eq!(s, 200, "{pending_b}");
    let id_b = pending_b["evidence"]["zk_job"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        pending_b["evidence"]["zk_job"]["wait_ms"].as_u64().unwrap() > 0,
        "{pending_b}"
    );
    let (s, v, _) = infer(&node, &zk_request(input_json("mlp_small"), json!(["zk"])));
    assert_eq!(s, 503, "{v}");
    assert_eq!(v["error"]["code"], json!("overloaded"));
    assert_eq!(v["error"]["reason"], json!("zk_queue_full"));
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("queue is full"),
        "{v}"
    );
    // Signed-only requests are not held up by the proof queue.
    let (s, v, _) = infer(
        &node,
        &zk_request(input_json("mlp_small"), json!(["signed"])),
    );
    assert_eq!(s, 200, "{v}");

    let (s, job) = node.get(&format!("/v1/proofs/{id_a}?wait=200ms"));
    assert_eq!(s, 200);
    assert_eq!(
        (job["status"].as_str(), job["queue_position"].as_u64()),
        (Some("queued"), Some(0)),
        "{job}"
    );

    // Cancelling needs the job's own token or the admin's.
    let path_b = format!("/v1/proofs/{id_b}");
    assert_eq!(delete(&node, &path_b, None).0, 401);
    assert_eq!(delete(&node, &path_b, Some("not-the-token")).0, 401);
    let token_a_is_not_b = delete(&node, &format!("/v1/proofs/{id_a}"), token_b.as_deref());
    assert_eq!(token_a_is_not_b.0, 401, "B's token cannot cancel A");
    let (s, v) = delete(&node, &path_b, token_b.as_deref());
    assert_eq!((s, v["cancelled"].as_bool()), (200, Some(true)), "{v}");
    assert_eq!(v["job"]["status"], json!("cancelled"));
    let (s, v) = delete(&node, &path_b, token_b.as_deref());
    assert_eq!((s, v["cancelled"].as_bool()), (200, Some(false)), "{v}");
    let out = node.cli(&["proofs", "wait", &id_b]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("cancelled by the requester"),
        "{}",
        text(&out)
    );

    // The cancelled job freed its slot; the admin cancels the next one through the CLI.
    let (s, pending_c, _) = infer(&node, &zk_request(input_json("mlp_small"), json!(["zk"])));
    assert_eq!(s, 200, "{pending_c}");
    let id_c = pending_c["evidence"]["zk_job"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = node.cli(&["proofs", "cancel", &id_c]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("cancelled proof job"), "{}", text(&out));

    // A crash and a restart with a prover: the queued job runs and its bundle completes —
    // even though the model's recorded analysis is made to look like an older circuit's (no
    // circuit version, another verifying key): the node re-analyses it at boot instead of
    // failing every job on a verifying key that no longer matches.
    let dir = node.crash();
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys,json; c=sqlite3.connect(sys.argv[1]); \
             [d,i]=c.execute(\"SELECT digest, info FROM zk_models WHERE status='available'\").fetchone(); \
             i=json.loads(i); i.pop('circuit_version'); old=i['vk_digest']; \
             i['vk_digest']=old.split(':')[0]+':'+'0'*64; \
             c.execute('UPDATE zk_models SET info=?, vk_digest=? WHERE digest=?', (json.dumps(i), i['vk_digest'], d)); c.commit(); print(old)",
            dir.path().join("vouch.db").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let node = Node::start_in(dir, &[]);
    let pending_path = save(node.dir.path(), "pending-a.json", &pending_a);
    let out = node.cli(&["proofs", "wait", "--bundle", pending_path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let a: Value = serde_json::from_str(&std::fs::read_to_string(&pending_path).unwrap()).unwrap();
    let (code, t) = verify_against_files(&node, &a);
    assert_eq!(code, 0, "{t}");
    let (_, b) = node.get(&path_b);
    assert_eq!(
        b["status"],
        json!("cancelled"),
        "cancelled jobs stay cancelled: {b}"
    );
    assert_eq!(node.finished_job(&id_c)["status"], json!("cancelled"));

    // A node that cannot afford the proof refuses it up front, naming the limit.
    let tight = conf.path().join("tight.toml");
    std::fs::write(&tight, "[zk]\nmax_peak_mib = 1\n").unwrap();
    let node = node.restart(&["--config", tight.to_str().unwrap()]);
    let (s, v, _) = infer(&node, &zk_request(input_json("mlp_small"), json!(["zk"])));
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["error"]["reason"], json!("zk_over_capacity"));
    assert!(
        v["error"]["message"].as_str().unwrap().contains("MiB"),
        "{v}"
    );
}

#[test]
fn a_model_too_large_to_prove_is_refused_at_registration_and_holds_up_no_other_analysis() {
    let node = Node::start(&[]);
    // The ONNX backend test model `MaxPool2d_stride_padding_dilation`, built with vouch-zk's
    // ONNX protobuf types: under 200 bytes, a circuit of about 20 M constraints.
    let model = zk_onnx::maxpool_backend_test();
    // Registration answers with the outcome (no "analysing"): the estimate refused the circuit
    // before anything was built.
    let (s, v) = node.upload(model, "?name=maxpool&version=1", Some(&node.token()));
    assert_eq!(s, 201, "{v}");
    let zk = &v["zk"];
    assert_eq!(zk["status"], json!("unavailable"), "{v}");
    let constraints = zk["circuit_estimate"]["constraints"].as_u64().unwrap();
    assert!(constraints > 2_097_152, "{zk}");
    let reason = zk["reason"].as_str().unwrap();
    assert_eq!(
        reason,
        format!(
            "zk: unavailable (circuit of about {constraints} constraints exceeds this node's limit of 2097152)"
        )
    );

    // A small model registered right after is analysed, not queued behind it.
    node.register("mlp_small");
    assert_eq!(node.zk_analysed("mlp_small")["status"], json!("available"));

    // Wherever zk status is shown: the model, the advisor, the CLI, and a zk request.
    let (_, m) = node.get("/v1/models/maxpool");
    assert_eq!(m["zk"]["reason"], json!(reason), "{m}");
    let (_, a) = node.get("/v1/models/maxpool/assurance");
    assert_eq!(a["tiers"][2]["available"], json!(false), "{a}");
    assert_eq!(a["tiers"][2]["unavailable_reason"], json!(reason), "{a}");
    let out = node.cli(&["models", "assurance", "maxpool"]);
    assert!(
        text(&out).contains(&format!("zk: unavailable: {reason}")),
        "{}",
        text(&out)
    );
    let zeros = json!({"x": {"dtype": "float32", "shape": [1, 1, 1000, 1000],
                             "data": vec![0.0; 1_000_000]}});
    let (s, v, _) = infer(
        &node,
        &json!({"model": "maxpool", "inputs": zeros, "tiers": ["zk"]}),
    );
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["error"]["code"], json!("tier_unavailable"));
    assert_eq!(v["error"]["reason"], json!("zk_over_capacity"));
    assert_eq!(
        v["error"]["message"],
        json!(format!(
            "the zk tier is not available for this model: {reason}"
        ))
    );
}

#[test]
fn an_analysis_over_the_time_limit_is_unavailable_and_retried_under_new_limits() {
    let conf = tempfile::tempdir().unwrap();
    let hasty = conf.path().join("hasty.toml");
    std::fs::write(&hasty, "[zk]\nanalyze_timeout_secs = 0\n").unwrap();
    let node = Node::start(&["--config", hasty.to_str().unwrap()]);
    node.register("mlp_small");
    let zk = node.zk_analysed("mlp_small");
    assert_eq!(zk["status"], json!("unavailable"), "{zk}");
    assert_eq!(
        zk["reason"],
        json!("zk: unavailable (analysis exceeded this node's time limit of 0 s)")
    );
    assert!(
        zk["circuit_estimate"]["constraints"].as_u64().unwrap() > 0,
        "{zk}"
    );
    let (s, v, _) = infer(&node, &zk_request(input_json("mlp_small"), json!(["zk"])));
    assert_eq!(
        (s, v["error"]["reason"].as_str()),
        (422, Some("zk_over_capacity")),
        "{v}"
    );
    // A node with other limits analyses it again at boot.
    let node = node.restart(&[]);
    assert_eq!(node.zk_analysed("mlp_small")["status"], json!("available"));
}
