//! Issue 13, items 7–10, against the real binary: one caller must not lock others out, a full
//! disk under the node's log must not kill it, unknown models must leave nothing behind, and
//! hostile bodies get stable 4xx/503 answers.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Node, input_json};
use serde_json::{Value, json};

fn addr(node: &Node) -> String {
    node.url.trim_start_matches("http://").to_string()
}

/// Reads until the server closes the connection or `limit` passes; the time it took, or
/// `None` if it was still open.
fn closed_within(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let t = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 4096];
    while t.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => return Some(t.elapsed()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(t.elapsed()),
        }
    }
    None
}

/// One HTTP/1.1 response read from a kept-alive connection (headers, then `content-length`
/// bytes): (status, body).
fn read_response(s: &mut TcpStream) -> (u16, String) {
    let (status, _, body) = read_response_with_head(s);
    (status, body)
}

/// As [`read_response`], with the response head: (status, head, body).
fn read_response_with_head(s: &mut TcpStream) -> (u16, String, String) {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "connection closed mid-head");
        raw.push(byte[0]);
    }
    let head = String::from_utf8(raw).unwrap();
    let status = head[9..12].parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    (status, head, String::from_utf8(body).unwrap())
}

#[test]
fn idle_and_half_open_connections_beyond_the_cap_neither_lock_clients_out_nor_stay() {
    let node = Node::start_with_env(
        &[],
        &[
            ("VOUCH_LIMITS__MAX_CONNECTIONS", "16"),
            ("VOUCH_LIMITS__HEADER_TIMEOUT_MS", "1000"),
        ],
    );
    let a = addr(&node);
    // A client already connected, keep-alive.
    let mut existing = TcpStream::connect(&a).unwrap();
    existing
        .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut existing).0, 200);

    // 48 connections (three times the cap) that never complete a request head: half of them
    // silent, half with half a head.
    let mut idle = Vec::new();
    for i in 0..48 {
        let mut s = TcpStream::connect(&a).unwrap();
        if i % 2 == 0 {
            s.write_all(b"POST /v1/infer HTTP/1.1\r\nhost: x\r\ncontent-type: ")
                .unwrap();
        }
        idle.push(s);
    }
    // The existing client is not starved.
    existing
        .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut existing).0, 200);
    // A new client still gets answered: the header deadline frees slots held by idle ones.
    let t = Instant::now();
    let (s, v) = node.get("/health");
    assert_eq!(s, 200, "{v}");
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    // And every idle connection is closed by the server, not kept for ever.
    for (i, s) in idle.iter_mut().enumerate() {
        let took = closed_within(s, Duration::from_secs(10));
        assert!(
            took.is_some(),
            "idle connection {i} was still open after 10 s"
        );
    }
    let (_, metrics) = node.get_text("/metrics");
    assert!(
        metrics.contains("vouch_http_header_timeouts_total"),
        "{metrics}"
    );
}

#[test]
fn a_node_logging_to_a_full_disk_keeps_answering_and_publishing_checkpoints() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let node = Node::start_logging_to(
        &[],
        &[
            // Everything logs, and every log line fails to be written.
            ("VOUCH_LOG", "debug"),
            ("VOUCH_LOG__CHECKPOINT_EVERY_MS", "200"),
            ("VOUCH_LOG__CHECKPOINT_EVERY_ENTRIES", "0"),
        ],
        Stdio::from(full),
    );
    node.register("mlp");
    for i in 0..20 {
        let (s, v) = node.post_json(
            "/v1/infer",
            &json!({"model": "mlp", "inputs": input_json("mlp")}),
        );
        assert_eq!(s, 200, "request {i}: {v}");
        // Error replies arrive whole, with their JSON body (they log on the way out).
        let (s, v) = node.post_json("/v1/infer", &json!({"model": "nope", "inputs": {}}));
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (404, Some("model_not_found"))
        );
        let (s, v) = node.get("/v1/log/entries/999999");
        assert_eq!(s, 404, "{v}");
    }
    // The checkpoint timer still runs: a checkpoint covering every entry appears.
    let (_, info) = node.get("/v1/log");
    let size = info["size"].as_u64().unwrap();
    assert!(size >= 21, "{info}");
    let covered = |node: &Node| {
        let (_, note) = node.get_text("/log/checkpoint");
        note.lines().nth(1).unwrap().parse::<u64>().unwrap()
    };
    let t = Instant::now();
    while covered(&node) < size {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "checkpoint stuck at {} of {size}",
            covered(&node)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, metrics) = node.get_text("/metrics");
    let failed: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("vouch_log_write_errors_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(failed > 0.0, "no failed log write was counted:\n{metrics}");
    for task in ["log-committer", "log-checkpoint"] {
        assert!(
            metrics.contains(&format!("vouch_task_restarts_total{{task=\"{task}\"}} 0")),
            "{task}:\n{metrics}"
        );
    }
}

#[test]
fn requests_naming_unknown_models_leave_nothing_in_metrics_or_status() {
    let node = Node::start(&[]);
    let digest = node.register("mlp");
    for _ in 0..3 {
        let (s, v) = node.post_json(
            "/v1/infer",
            &json!({"model": "mlp", "inputs": input_json("mlp")}),
        );
        assert_eq!(s, 200, "{v}");
    }
    let (_, metrics_before) = node.get_text("/metrics");
    let (_, status_before) = node.get_text("/status");
    assert!(metrics_before.contains(&digest) && status_before.contains(&digest));

    let unknown: Vec<String> = (0..400u64)
        .map(|i| vouch_core::Digest::of(&i.to_le_bytes()).to_string())
        .collect();
    for (i, d) in unknown.iter().enumerate() {
        let model = if i % 4 == 0 {
            format!("no-such-model-{i}")
        } else {
            d.clone()
        };
        let (s, v) = node.post_json(
            "/v1/infer",
            &json!({"model": model, "inputs": input_json("mlp")}),
        );
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (404, Some("model_not_found"))
        );
    }
    let (_, metrics_after) = node.get_text("/metrics");
    let (_, status_after) = node.get_text("/status");
    for d in &unknown {
        assert!(
            !metrics_after.contains(d.trim_start_matches("sha256:")),
            "{d}"
        );
        assert!(
            !status_after.contains(d.trim_start_matches("sha256:")),
            "{d}"
        );
    }
    assert!(!metrics_after.contains("no-such-model") && !status_after.contains("no-such-model"));
    // Neither grows with them (counter values may gain a digit or two).
    assert!(
        metrics_after.len() < metrics_before.len() + 512,
        "/metrics grew from {} to {} bytes",
        metrics_before.len(),
        metrics_after.len()
    );
    assert!(
        status_after.len() < status_before.len() + 64,
        "/status grew from {} to {} bytes",
        status_before.len(),
        status_after.len()
    );
    // They are counted, once, in one series.
    assert!(
        metrics_after
            .lines()
            .any(|l| l == "vouch_unknown_model_requests_total 400"),
        "{metrics_after}"
    );
}

/// An infer request over 64 KiB: the mlp inputs, padded with whitespace to `size` bytes.
fn large_infer_body(size: usize) -> Vec<u8> {
    let mut body =
        serde_json::to_vec(&json!({"model": "mlp", "inputs": input_json("mlp")})).unwrap();
    body.resize(size, b' ');
    body
}

/// Sends a request head for `POST /v1/infer` with `content-length: body.len()` and the first
/// `sent` bytes of the body.
fn start_post(addr: &str, body: &[u8], sent: usize) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(
        format!(
            "POST /v1/infer HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    s.write_all(&body[..sent]).unwrap();
    s
}

#[test]
fn large_bodies_take_bounded_slots_and_the_overflow_gets_a_quick_503() {
    let node = Node::start_with_env(
        &[],
        &[
            ("VOUCH_LIMITS__MAX_LARGE_BODIES", "1"),
            ("VOUCH_LIMITS__MAX_LARGE_BODY_WAITING", "1"),
            ("VOUCH_LIMITS__LARGE_BODY_WAIT_MS", "20000"),
        ],
    );
    node.register("mlp");
    let a = addr(&node);
    let body = large_infer_body(100_000);
    // The slot: a large body sent slowly. The queue: a second one behind it.
    let mut first = start_post(&a, &body, 1000);
    std::thread::sleep(Duration::from_millis(300));
    let mut second = start_post(&a, &body, 1000);
    std::thread::sleep(Duration::from_millis(300));
    // A third large request is refused at once, before its body is read, with a stable code
    // and a retry hint.
    let t = Instant::now();
    let mut third = start_post(&a, &body, 0);
    let (s, head, text) = read_response_with_head(&mut third);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(s, 503, "{text}");
    assert!(
        head.to_ascii_lowercase().contains("retry-after: 1\r\n"),
        "{head}"
    );
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["error"]["code"], "overloaded", "{v}");
    assert_eq!(v["error"]["reason"], "large_bodies_busy", "{v}");
    // Small requests do not queue behind large ones.
    let (s, v) = node.post_json(
        "/v1/infer",
        &json!({"model": "mlp", "inputs": input_json("mlp")}),
    );
    assert_eq!(s, 200, "{v}");
    // The held slot is served when its body completes, then the waiting one.
    first.write_all(&body[1000..]).unwrap();
    let (s, text) = read_response(&mut first);
    assert_eq!(s, 200, "{text}");
    second.write_all(&body[1000..]).unwrap();
    let (s, text) = read_response(&mut second);
    assert_eq!(s, 200, "{text}");
}

#[test]
fn duplicate_keys_and_out_of_range_floats_are_refused_with_stable_codes() {
    let node = Node::start(&[]);
    node.register("mlp");
    let x = serde_json::to_string(&input_json("mlp")["x"]).unwrap();
    let send = |raw: String| {
        let r = node
            .http()
            .post(format!("{}/v1/infer", node.url))
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().unwrap())
    };
    // The same input twice (last-wins would run a tensor other than the one a reader sees).
    let (s, v) = send(format!(r#"{{"model":"mlp","inputs":{{"x":{x},"x":{x}}}}}"#));
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["code"], "bad_request", "{v}");
    assert_eq!(v["error"]["reason"], "duplicate_key", "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("\"x\"") && msg.contains("inputs"), "{msg}");
    // A request field twice.
    let (s, v) = send(format!(
        r#"{{"model":"nope","inputs":{{"x":{x}}},"model":"mlp"}}"#
    ));
    assert_eq!(
        (s, v["error"]["reason"].as_str()),
        (400, Some("duplicate_key")),
        "{v}"
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"model\""),
        "{v}"
    );
    // The same key in a policy body.
    let r = node
        .http()
        .put(format!("{}/v1/models/mlp/policy", node.url))
        .bearer_auth(node.token())
        .body(r#"{"min_tier":"zk","min_tier":null}"#)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let v: Value = r.json().unwrap();
    assert_eq!(v["error"]["reason"], "duplicate_key", "{v}");

    // float32 cannot hold 1e300: refused, not run as infinity.
    let mut inputs = input_json("mlp");
    inputs["x"]["data"][5] = json!(1e300);
    let (s, v) = node.post_json("/v1/infer", &json!({"model": "mlp", "inputs": inputs}));
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["code"], "bad_input", "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("element 5") && msg.contains("out of range for float32"),
        "{msg}"
    );
}

#[test]
fn sigint_finishes_and_exits_cleanly() {
    let mut node = Node::start(&[]);
    let (s, _) = node.get("/health");
    assert_eq!(s, 200);
    // An idle keep-alive connection does not hold the shutdown up.
    let mut idle = TcpStream::connect(addr(&node)).unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut idle).0, 200);
    let killed = std::process::Command::new("kill")
        .args(["-INT", &node.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = node
        .wait_exit(Duration::from_secs(10))
        .expect("the node did not stop within 10 s of SIGINT");
    assert!(status.success(), "{status:?}");
}
