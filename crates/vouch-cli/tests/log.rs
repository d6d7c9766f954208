//! The transparency log through the real server and CLI: receipts, registrations, pointer moves
//! and policy changes are logged; bundles prove inclusion offline; the monitor catches a
//! rewritten or forked log; and a SIGKILL under load loses no acknowledged receipt.

#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::{Node, Process, input_json, models, text};
use serde_json::{Value, json};
use vouch_core::Bundle;

fn log_key(node: &Node) -> String {
    let (s, v) = node.get("/v1/log");
    assert_eq!(s, 200, "{v}");
    v["log_key"].as_str().unwrap().to_string()
}

fn entry_kind(node: &Node, index: u64) -> String {
    let (s, v) = node.get(&format!("/v1/log/entries/{index}"));
    assert_eq!(s, 200, "{v}");
    v["kind"].as_str().unwrap().to_string()
}

fn path_str(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

/// `vouch infer MODEL` with the model's shipped input, saving the bundle at `out`.
fn cli_infer(node: &Node, model: &str, out: &std::path::Path) -> std::process::Output {
    let inputs = models().join(format!("{model}.input.json"));
    node.cli(&[
        "infer",
        model,
        "--input",
        path_str(&inputs),
        "--out",
        path_str(out),
    ])
}

#[test]
fn every_change_and_receipt_is_logged_and_proven_offline() {
    let node = Node::start(&[]);
    let key = log_key(&node);
    assert!(key.starts_with("vouch-log/"), "{key}");
    let (_, info) = node.get("/v1/node");
    assert_eq!(info["log"]["log_key"], json!(key));

    // Registration: model-registered, mlp@1 created, mlp (latest) created.
    let digest = node.register("mlp");
    let (_, v) = node.get("/v1/log");
    assert_eq!(v["size"], json!(3), "{v}");
    assert_eq!(entry_kind(&node, 0), "model-registered");
    assert_eq!(entry_kind(&node, 1), "pointer-moved");
    assert_eq!(entry_kind(&node, 2), "pointer-moved");
    let (_, e0) = node.get("/v1/log/entries/0");
    assert!(e0["entry"].as_str().unwrap().contains(&digest), "{e0}");

    // An inference: the bundle names its log entry; verifying against the log needs the proof.
    let dir = node.dir.path();
    let bundle = dir.join("b.json");
    let out = cli_infer(&node, "mlp", &bundle);
    assert!(out.status.success(), "{}", text(&out));
    let b: Bundle = serde_json::from_slice(&std::fs::read(&bundle).unwrap()).unwrap();
    assert_eq!(b.evidence["log"]["index"], json!(3), "{:?}", b.evidence);
    assert!(b.evidence["log"].get("proof").is_none());
    assert_eq!(entry_kind(&node, 3), "receipt");
    let (_, e3) = node.get("/v1/log/entries/3");
    let expected = format!(
        "vouch-log/v1 receipt\n{}",
        String::from_utf8(b.receipt.canonical_bytes()).unwrap()
    );
    assert_eq!(e3["entry"].as_str().unwrap(), expected);

    let out = node.cli(&["verify", path_str(&bundle), "--log-key", &key]);
    assert!(
        !out.status.success(),
        "no proof yet must not pass: {}",
        text(&out)
    );
    assert!(text(&out).contains("vouch log prove"), "{}", text(&out));
    let out = node.cli(&["verify", path_str(&bundle)]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("pass --log-key"), "{}", text(&out));

    let tlog = dir.join("b.tlog-proof");
    let out = node.cli(&[
        "log",
        "prove",
        path_str(&bundle),
        "--tlog-proof",
        path_str(&tlog),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let standalone = std::fs::read_to_string(&tlog).unwrap();
    assert!(
        standalone.starts_with("c2sp.org/tlog-proof@v1\nindex 3\n"),
        "{standalone}"
    );
    let out = node.cli(&["verify", path_str(&bundle), "--log-key", &key]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("entry 3 of log vouch-log/"),
        "{}",
        text(&out)
    );

    // Another log's key, an unknown witness demanded, a flipped proof hash: all refused.
    let other = "vouch-log/other+0badc0de+AYqI4910CfGV/VLbLTy6XXLKZwm/HZQSG/N0iAG0D29c";
    let out = node.cli(&["verify", path_str(&bundle), "--log-key", other]);
    assert!(!out.status.success(), "{}", text(&out));
    let witness = "witness.example/w1+df1c0a35+BIE5dw6ofRdfVqNUZsNMfszLjYqRtO43ol32D1uPybOU";
    let out = node.cli(&[
        "verify",
        path_str(&bundle),
        "--log-key",
        &key,
        "--witness",
        witness,
    ]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("witness"), "{}", text(&out));
    let mut tampered: Value = serde_json::from_slice(&std::fs::read(&bundle).unwrap()).unwrap();
    let proof = tampered["evidence"]["log"]["proof"]
        .as_str()
        .unwrap()
        .to_string();
    let mut lines: Vec<String> = proof.lines().map(str::to_string).collect();
    // Line 2 is the first proof hash: replace it with another valid base64 hash.
    lines[2] = "JwS/dTpDsHNVcFhM8DNMQymNKybXsD1/9vLi67ATrDc=".into();
    tampered["evidence"]["log"]["proof"] = json!(format!("{}\n", lines.join("\n")));
    let bad = dir.join("bad.json");
    std::fs::write(&bad, serde_json::to_vec(&tampered).unwrap()).unwrap();
    let out = node.cli(&["verify", path_str(&bad), "--log-key", &key]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("inclusion"), "{}", text(&out));

    // Asking for the proof in the answer: the bundle verifies against the log at once.
    let (s, b2) = node.post_json(
        "/v1/infer",
        &json!({"model": "mlp", "inputs": input_json("mlp"), "log_proof": true}),
    );
    assert_eq!(s, 200, "{b2}");
    assert!(
        b2["evidence"]["log"]["proof"]
            .as_str()
            .unwrap()
            .starts_with("c2sp.org/tlog-proof@v1\n")
    );
    let b2_path = dir.join("b2.json");
    std::fs::write(&b2_path, serde_json::to_vec(&b2).unwrap()).unwrap();
    let out = node.cli(&["verify", path_str(&b2_path), "--log-key", &key]);
    assert!(out.status.success(), "{}", text(&out));

    // A policy change is logged before it is answered.
    let r = node
        .http()
        .put(format!("{}/v1/models/mlp/policy", node.url))
        .bearer_auth(node.token())
        .json(&json!({"min_tier": "signed"}))
        .send()
        .unwrap();
    let v: Value = r.json().unwrap();
    let idx = v["change"]["log_index"]
        .as_u64()
        .unwrap_or_else(|| panic!("{v}"));
    assert_eq!(entry_kind(&node, idx), "policy-changed");
    let (_, pe) = node.get(&format!("/v1/log/entries/{idx}"));
    assert!(
        pe["entry"]
            .as_str()
            .unwrap()
            .contains(r#""min_tier":"signed""#),
        "{pe}"
    );

    // A configuration (system prompt) change is logged with the configuration itself, and
    // receipts from then on carry its digest; verify checks a configuration file against it.
    let cfg = dir.join("cfg.json");
    std::fs::write(
        &cfg,
        r#"{ "system_prompt": "Answer in French.", "temperature": 0 }"#,
    )
    .unwrap();
    let out = node.cli(&["models", "config", "mlp", "--set", path_str(&cfg)]);
    assert!(out.status.success(), "{}", text(&out));
    let set: Value = serde_json::from_slice(&out.stdout).unwrap();
    let cfg_digest = set["config_digest"].as_str().unwrap().to_string();
    let (_, log) = node.get("/v1/log");
    let last = log["size"].as_u64().unwrap() - 1;
    assert_eq!(entry_kind(&node, last), "config-changed");
    let (_, ce) = node.get(&format!("/v1/log/entries/{last}"));
    let ce = ce["entry"].as_str().unwrap();
    assert!(
        ce.contains(&cfg_digest) && ce.contains("Answer in French."),
        "{ce}"
    );
    let cb = dir.join("cb.json");
    let out = cli_infer(&node, "mlp", &cb);
    assert!(out.status.success(), "{}", text(&out));
    let cbv: Value = serde_json::from_slice(&std::fs::read(&cb).unwrap()).unwrap();
    assert_eq!(cbv["receipt"]["config_digest"], json!(cfg_digest));
    let out = node.cli(&["verify", path_str(&cb)]);
    assert!(text(&out).contains("which configuration"), "{}", text(&out));
    let out = node.cli(&["verify", path_str(&cb), "--config", path_str(&cfg)]);
    assert!(out.status.success(), "{}", text(&out));
    let other = dir.join("other.json");
    std::fs::write(
        &other,
        r#"{"system_prompt": "Answer in German.", "temperature": 0}"#,
    )
    .unwrap();
    let out = node.cli(&["verify", path_str(&cb), "--config", path_str(&other)]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("configuration does not match"),
        "{}",
        text(&out)
    );
    let out = node.cli(&["models", "config", "mlp", "--set", path_str(&cfg)]);
    assert!(text(&out).contains(r#""changed": false"#), "{}", text(&out));
    let (s, v) = node.get("/v1/log");
    assert_eq!(
        v["size"].as_u64().unwrap(),
        last + 2,
        "an unchanged config is not logged: {s}"
    );

    // A new version moves the name: history shows every pointer, from and to, with times.
    let small = std::fs::read(models().join("mlp_small.onnx")).unwrap();
    let r = node
        .http()
        .post(format!("{}/v1/models?name=mlp&version=2", node.url))
        .bearer_auth(node.token())
        .body(small)
        .send()
        .unwrap();
    let v2: Value = r.json().unwrap();
    let digest2 = v2["model"]["digest"].as_str().unwrap().to_string();
    let (_, h) = node.get("/v1/log/history/mlp");
    let changes = h["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 4, "{h}");
    let latest_move = &changes[3];
    assert!(latest_move.get("version").is_none(), "{latest_move}");
    assert_eq!(latest_move["from"], json!(digest));
    assert_eq!(latest_move["to"], json!(digest2));
    assert_eq!(latest_move["unlogged_move_before"], json!(false));
    let out = node.cli(&["log", "history", "mlp"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("(latest)") && text(&out).contains("@2"),
        "{}",
        text(&out)
    );

    // The C2SP read API: checkpoint note and tiles that a tile client mirrors.
    let (s, note) = node.get_text("/log/checkpoint");
    assert_eq!(s, 200);
    assert!(
        note.starts_with(&format!("{}\n", key.split('+').next().unwrap())),
        "{note}"
    );
    let (s, _) = node.get_text("/log/tile/entries/000.p/3");
    assert_eq!(s, 200);
    let (s, v) = node.get("/log/tile/entries/999");
    assert_eq!(s, 404, "{v}");
    assert_eq!(v["error"]["code"], json!("not_found"));
    let (s, v) = node.get("/v1/log/proof/100000");
    assert_eq!(s, 404, "{v}");
    let (s, v) = node.get("/v1/log/consistency?old=100000&new=100000");
    assert_eq!(s, 404, "a tree the log does not have has no proof: {v}");

    // The monitor: first run re-derives everything, the second only what is new.
    let state = dir.join("audit.json");
    let out = node.cli(&[
        "log",
        "audit",
        "--log-key",
        &key,
        "--state",
        path_str(&state),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    node.post_json(
        "/v1/infer",
        &json!({"model": "mlp@1", "inputs": input_json("mlp")}),
    );
    std::thread::sleep(std::time::Duration::from_millis(600)); // one checkpoint period
    let out = node.cli(&["log", "audit", "--state", path_str(&state)]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("consistently"), "{}", text(&out));
}

/// Runs SQL on the node's database with Python's sqlite3 (the server is stopped meanwhile).
fn sql(dir: &std::path::Path, statements: &str) {
    let db = dir.join("vouch.db");
    let script = "import sqlite3,sys\nc=sqlite3.connect(sys.argv[1])\nc.executescript(sys.argv[2])\nc.commit()\n";
    let out = std::process::Command::new("python3")
        .args(["-c", script, db.to_str().unwrap(), statements])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn the_monitor_fails_loudly_on_a_rewritten_or_forked_log() {
    let node = Node::start(&[]);
    let key = log_key(&node);
    node.register("mlp_small");
    for _ in 0..3 {
        let (s, v) = node.post_json(
            "/v1/infer",
            &json!({"model": "mlp_small", "inputs": input_json("mlp_small")}),
        );
        assert_eq!(s, 200, "{v}");
    }
    std::thread::sleep(std::time::Duration::from_millis(600));
    let state = node.dir.path().join("audit.json");
    let state_s = state.to_str().unwrap().to_string();
    let out = node.cli(&["log", "audit", "--log-key", &key, "--state", &state_s]);
    assert!(out.status.success(), "{}", text(&out));
    let url_before = node.url.clone();
    let dir = node.crash();

    // Rewrite: one stored entry changed under the signed tree. A fresh monitor re-deriving the
    // tree from the served entries sees that they do not hash to the signed root.
    sql(
        dir.path(),
        "UPDATE log_entry SET data = CAST(replace(CAST(data AS TEXT), 'mlp_small', 'mlp_evil0') AS BLOB) WHERE idx = 1;",
    );
    let node = Node::start_in(dir, &[]);
    assert_ne!(node.url, "", "{url_before}");
    let fresh = node.dir.path().join("fresh.json");
    let out = node.cli(&[
        "log",
        "audit",
        "--log-key",
        &key,
        "--state",
        fresh.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("REWRITE") || text(&out).contains("TILE MISMATCH"),
        "{}",
        text(&out)
    );

    // Fork: the operator throws the log away and starts again under the same key. The monitor
    // holding the old checkpoint sees a rollback, and after new appends a split view.
    let dir = node.crash();
    sql(
        dir.path(),
        "DELETE FROM log_entry; DELETE FROM log_hash; DELETE FROM log_checkpoint; DELETE FROM log_cosignature;",
    );
    let node = Node::start_in(dir, &[]);
    assert_eq!(log_key(&node), key);
    let out = node.cli(&["log", "audit", "--state", &state_s]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("ROLLBACK"), "{}", text(&out));
    for _ in 0..8 {
        node.post_json(
            "/v1/infer",
            &json!({"model": "mlp_small", "inputs": input_json("mlp_small")}),
        );
    }
    std::thread::sleep(std::time::Duration::from_millis(600));
    let out = node.cli(&["log", "audit", "--state", &state_s]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("SPLIT VIEW"), "{}", text(&out));
}

#[test]
fn sigkill_under_concurrent_load_loses_no_acknowledged_receipt() {
    let node = Node::start(&[]);
    let key = log_key(&node);
    node.register("mlp_small");
    let url = node.url.clone();
    let acked: Arc<Mutex<Vec<Bundle>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let body = json!({"model": "mlp_small", "inputs": input_json("mlp_small")});
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (url, acked, stop, body) = (url.clone(), acked.clone(), stop.clone(), body.clone());
            std::thread::spawn(move || {
                let http = common::http_client();
                // Bounded: the server is killed long before this many requests.
                for _ in 0..5_000 {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let Ok(r) = http.post(format!("{url}/v1/infer")).json(&body).send() else {
                        return;
                    };
                    if r.status().as_u16() != 200 {
                        continue;
                    }
                    let Ok(b) = r.json::<Bundle>() else { return };
                    acked.lock().unwrap().push(b);
                }
            })
        })
        .collect();
    // Let the load run, take a monitor snapshot mid-stream, then kill -9 under load.
    while acked.lock().unwrap().len() < 100 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let state = node.dir.path().join("audit.json");
    let state_s = state.to_str().unwrap().to_string();
    let out = node.cli(&["log", "audit", "--log-key", &key, "--state", &state_s]);
    assert!(out.status.success(), "{}", text(&out));
    while acked.lock().unwrap().len() < 300 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let dir = node.crash();
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 300);

    let node = Node::start_in(dir, &[]);
    // Every acknowledged receipt is in the log at its acknowledged index, byte for byte.
    for b in &acked {
        let index = b.evidence["log"]["index"].as_u64().unwrap();
        let (s, e) = node.get(&format!("/v1/log/entries/{index}"));
        assert_eq!(
            s, 200,
            "acknowledged entry {index} is missing after the crash: {e}"
        );
        let expected = format!(
            "vouch-log/v1 receipt\n{}",
            String::from_utf8(b.receipt.canonical_bytes()).unwrap()
        );
        assert_eq!(e["entry"].as_str().unwrap(), expected, "entry {index}");
    }
    // New appends after the restart; the tree re-derives and is consistent with the checkpoint
    // the monitor saw before the crash.
    node.post_json("/v1/infer", &body);
    std::thread::sleep(std::time::Duration::from_millis(600));
    let out = node.cli(&["log", "audit", "--state", &state_s]);
    assert!(out.status.success(), "{}", text(&out));
    // And the last acknowledged receipt proves its inclusion offline.
    let last = acked.last().unwrap();
    let p = node.dir.path().join("last.json");
    std::fs::write(&p, serde_json::to_vec(last).unwrap()).unwrap();
    let out = node.cli(&["log", "prove", p.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let out = node.cli(&["verify", p.to_str().unwrap(), "--log-key", &key]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn an_independent_witness_cosigns_and_verify_can_demand_it() {
    // First boot fixes the log key; the witness follows that log; the node restarts with the
    // witness configured.
    let node = Node::start(&[]);
    let key = log_key(&node);
    let dir = node.crash();
    let wdir = tempfile::tempdir().unwrap();
    let witness = Process::start(&[
        "witness",
        "--listen",
        "127.0.0.1:0",
        "--dir",
        wdir.path().to_str().unwrap(),
        "--name",
        "witness.test/w1",
        "--log",
        &key,
    ]);
    let wkey = witness
        .banner
        .iter()
        .find_map(|l| l.trim().strip_prefix("witness key: "))
        .unwrap()
        .to_string();
    std::fs::write(
        dir.path().join("vouch.toml"),
        format!(
            "[log]\ncheckpoint_every_ms = 100\n[[log.witnesses]]\nvkey = \"{wkey}\"\nurl = \"{}\"\n",
            witness.url
        ),
    )
    .unwrap();
    let node = Node::start_in(dir, &[]);
    node.register("mlp_small");
    let bundle = node.dir.path().join("w.json");
    let out = cli_infer(&node, "mlp_small", &bundle);
    assert!(out.status.success(), "{}", text(&out));
    // The cosignature arrives after the witness has seen the checkpoint: wait for it, bounded.
    let index = serde_json::from_slice::<Value>(&std::fs::read(&bundle).unwrap()).unwrap()
        ["evidence"]["log"]["index"]
        .as_u64()
        .unwrap();
    let mut cosigned = false;
    for _ in 0..100 {
        let (_, note) = node.get_text("/log/checkpoint");
        // The checkpoint covering the receipt, not an earlier one, must carry the cosignature.
        let size: u64 = note
            .lines()
            .nth(1)
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        if size > index && note.contains("— witness.test/w1 ") {
            cosigned = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(cosigned, "the witness never cosigned");
    // The witness kept its state durably.
    assert!(wdir.path().join("witness-state.json").exists());
    let out = node.cli(&["log", "prove", path_str(&bundle)]);
    assert!(out.status.success(), "{}", text(&out));
    let out = node.cli(&[
        "verify",
        path_str(&bundle),
        "--log-key",
        &key,
        "--witness",
        &wkey,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("cosigned by witness.test/w1"),
        "{}",
        text(&out)
    );
    // A cosignature line from a key the log does not trust is refused.
    let (_, log) = node.get("/v1/log");
    let size = log["size"].as_u64().unwrap();
    let r = node
        .http()
        .post(format!("{}/log/cosignature?size={size}", node.url))
        .body("— witness.example/w1 3xwKNQAAAABpJZpAIo3wn5+g3sXm/Pbin8IiG/gj5Z/Y6j/sl/PPfvr8P1sMNCffjV1lQ7AglRniiYLYbrouE0WT/5qwjr5u2+6RCA==\n")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
}
