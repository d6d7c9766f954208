//! A bounded soak: the real node under mixed traffic from a few loopback clients for
//! `VOUCH_SOAK_SECS` seconds (default 60; CI sets 300). It must answer throughout, and its
//! resident memory must stay flat once warm: the last third's peak at most the first third's
//! × 1.25 + 32 MiB.
//!
//! Traffic: inference on every shipped model (signed, unsigned, with a log proof), bad inputs
//! (wrong shape, duplicate keys, float32 overflow, not JSON, unknown tier), large bodies,
//! random `sha256:` and unknown names, `/status` and `/metrics`, log reads (info, checkpoint,
//! entries, proofs). Only to 127.0.0.1.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Node, input_json};
use serde_json::{Value, json};

const CLIENTS: usize = 4;
const MODELS: [&str; 4] = ["mlp", "cnn", "mlp_small", "multi_io"];

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// xorshift: reproducible traffic without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One request of the mix: (what, status, answer). Statuses outside what each kind may answer
/// fail the soak.
fn one(node: &Node, http: &reqwest::blocking::Client, rng: &mut Rng, seq: u64) -> (String, bool) {
    let url = |p: &str| format!("{}{p}", node.url);
    let model = MODELS[rng.below(MODELS.len() as u64) as usize];
    let post = |body: String| {
        http.post(url("/v1/infer"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let (what, result, ok_statuses): (String, _, &[u16]) = match rng.below(20) {
        0..=6 => {
            let tiers = match rng.below(4) {
                0 => json!([]),
                _ => json!(["signed"]),
            };
            let log_proof = rng.below(10) == 0;
            let body = json!({"model": model, "inputs": input_json(model), "tiers": tiers, "log_proof": log_proof});
            (format!("infer {model}"), post(body.to_string()), &[200])
        }
        7 => {
            let mut inputs = input_json(model);
            let first = inputs.as_object().unwrap().keys().next().unwrap().clone();
            inputs[&first]["shape"] = json!([3, 3]);
            let body = json!({"model": model, "inputs": inputs});
            ("wrong shape".into(), post(body.to_string()), &[400])
        }
        8 => {
            let x = serde_json::to_string(&input_json("mlp")["x"]).unwrap();
            let body = format!(r#"{{"model":"mlp","inputs":{{"x":{x},"x":{x}}}}}"#);
            ("duplicate key".into(), post(body), &[400])
        }
        9 => {
            let mut inputs = input_json("mlp");
            inputs["x"]["data"][0] = json!(1e300);
            let body = json!({"model": "mlp", "inputs": inputs});
            ("float32 overflow".into(), post(body.to_string()), &[400])
        }
        10 => ("not json".into(), post("{\"model\": ".into()), &[400]),
        11 => {
            let body = json!({"model": model, "inputs": input_json(model), "tiers": ["gold"]});
            ("unknown tier".into(), post(body.to_string()), &[400])
        }
        12 => {
            let d = vouch_core::Digest::of(&[seq.to_le_bytes(), rng.next().to_le_bytes()].concat());
            let body = json!({"model": d.to_string(), "inputs": input_json("mlp")});
            ("random digest".into(), post(body.to_string()), &[404])
        }
        13 => {
            let body =
                json!({"model": format!("nobody-{}", rng.next()), "inputs": input_json("mlp")});
            ("unknown name".into(), post(body.to_string()), &[404])
        }
        14 => {
            // Over 64 KiB: through the large-body slots (or refused for now when all are busy).
            let mut body =
                serde_json::to_vec(&json!({"model": "mlp", "inputs": input_json("mlp")})).unwrap();
            body.resize(80_000, b' ');
            (
                "large body".into(),
                http.post(url("/v1/infer"))
                    .header("content-type", "application/json")
                    .body(body)
                    .send(),
                &[200, 503],
            )
        }
        15 => ("status".into(), http.get(url("/status")).send(), &[200]),
        16 => ("metrics".into(), http.get(url("/metrics")).send(), &[200]),
        17 => ("log info".into(), http.get(url("/v1/log")).send(), &[200]),
        18 => (
            "checkpoint".into(),
            http.get(url("/log/checkpoint")).send(),
            &[200],
        ),
        _ => {
            let i = rng.below(64);
            let path = if rng.below(2) == 0 {
                format!("/v1/log/entries/{i}")
            } else {
                format!("/v1/log/proof/{i}")
            };
            (
                format!("GET {path}"),
                http.get(url(&path)).send(),
                &[200, 404],
            )
        }
    };
    match result {
        Ok(r) => {
            let status = r.status().as_u16();
            let body = r.text().unwrap_or_default();
            let good = ok_statuses.contains(&status)
                && (status == 200
                    || serde_json::from_str::<Value>(&body)
                        .is_ok_and(|v| v["error"]["code"].is_string()));
            (format!("{what}: {status} {}", cut(&body)), good)
        }
        Err(e) => (format!("{what}: no answer: {e}"), false),
    }
}

fn cut(s: &str) -> String {
    s.chars().take(200).collect()
}

#[test]
fn the_node_answers_throughout_and_its_memory_stays_flat() {
    let secs: u64 = std::env::var("VOUCH_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let node = Arc::new(Node::start_with_env(
        &[],
        &[
            ("VOUCH_LOG", "warn"),
            ("VOUCH_LIMITS__MAX_LARGE_BODY_WAITING", "2"),
        ],
    ));
    for m in MODELS {
        node.register(m);
    }
    let pid = node.pid();
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let last_ok = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (node, stop, done, last_ok) =
                (node.clone(), stop.clone(), done.clone(), last_ok.clone());
            std::thread::spawn(move || {
                vouch_pay::http::install_tls_provider();
                let http = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .build()
                    .unwrap();
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (c as u64 + 1).wrapping_mul(0x2545_f491));
                let mut failures = Vec::new();
                let mut seq = 0;
                while !stop.load(Ordering::Relaxed) {
                    let (what, good) = one(&node, &http, &mut rng, seq);
                    seq += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                    if good {
                        last_ok.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
                    } else if failures.len() < 20 {
                        failures.push(what);
                    }
                }
                failures
            })
        })
        .collect();

    // Memory and liveness, sampled every half second.
    let mut samples = Vec::new();
    let mut longest_silence = Duration::ZERO;
    while started.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_millis(500));
        samples.push(rss_kib(pid));
        let since_ok = started
            .elapsed()
            .saturating_sub(Duration::from_millis(last_ok.load(Ordering::Relaxed)));
        longest_silence = longest_silence.max(since_ok);
    }
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for c in clients {
        failures.extend(c.join().unwrap());
    }
    let total = done.load(Ordering::Relaxed);
    let third = samples.len() / 3;
    let warm = *samples[..third].iter().max().unwrap();
    let last = *samples[samples.len() - third..].iter().max().unwrap();
    let limit = warm + warm / 4 + 32 * 1024;
    eprintln!(
        "soak: {secs} s, {total} requests from {CLIENTS} clients, RSS warm-up max {} MiB, last third max {} MiB (limit {} MiB), longest wait for a good answer {longest_silence:?}",
        warm / 1024,
        last / 1024,
        limit / 1024
    );
    assert!(failures.is_empty(), "bad answers:\n{}", failures.join("\n"));
    assert!(
        longest_silence < Duration::from_secs(10),
        "the node gave no good answer for {longest_silence:?}"
    );
    assert!(
        total > secs * 10,
        "only {total} requests in {secs} s: the node is stalling"
    );
    assert!(
        last <= limit,
        "RSS grew: warm-up max {warm} KiB, last third max {last} KiB (limit {limit} KiB); samples: {samples:?}"
    );
    // Still answering after the soak.
    let (s, _) = node.get("/health");
    assert_eq!(s, 200);
}
