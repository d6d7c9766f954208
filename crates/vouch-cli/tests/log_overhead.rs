//! Benchmark, not a check: what the transparency log adds to an inference request through the
//! real server. N keep-alive clients (default 16) run the `mlp` model; the server times its log
//! step (the durable group-committed append, `vouch_log_append_seconds`), read back from
//! `/metrics`, and the clients time each request.
//! Run: `cargo test --release -p vouch --test log_overhead -- --ignored --nocapture`
//! (`VOUCH_BENCH_CLIENTS`, default 16; `VOUCH_BENCH_REQUESTS` per client, default 1000).
//! Results: BENCHMARKS.md.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Instant;

use common::{Node, input_json};
use serde_json::json;

/// `name{quantile="q"} value` from the Prometheus text.
fn quantile(metrics: &str, name: &str, q: &str) -> f64 {
    let prefix = format!("{name}{{quantile=\"{q}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("{prefix} not in /metrics"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
#[ignore = "benchmark; run explicitly with --ignored --nocapture"]
fn log_step_latency_and_throughput_through_the_server() {
    let per_client: usize = std::env::var("VOUCH_BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let clients_n: usize = std::env::var("VOUCH_BENCH_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    let node = Node::start(&[]);
    node.register("mlp");
    let body = serde_json::to_vec(&json!({"model": "mlp", "inputs": input_json("mlp")})).unwrap();
    let url = format!("{}/v1/infer", node.url);
    let (_, before) = node.get("/v1/log");
    let started = Instant::now();
    let clients: Vec<_> = (0..clients_n)
        .map(|_| {
            let (url, body) = (url.clone(), body.clone());
            std::thread::spawn(move || {
                let http = common::http_client();
                let mut lat = Vec::with_capacity(per_client);
                for _ in 0..per_client {
                    let t = Instant::now();
                    let r = http
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .unwrap();
                    assert_eq!(r.status().as_u16(), 200);
                    let _ = r.bytes().unwrap();
                    lat.push(t.elapsed().as_secs_f64() * 1e6);
                }
                lat
            })
        })
        .collect();
    let mut lat: Vec<f64> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    let secs = started.elapsed().as_secs_f64();
    let (_, after) = node.get("/v1/log");
    let appended = after["size"].as_u64().unwrap() - before["size"].as_u64().unwrap();
    lat.sort_by(f64::total_cmp);
    let p = |q: f64| lat[((lat.len() - 1) as f64 * q).round() as usize];
    let (_, metrics) = node.get_text("/metrics");
    let log50 = quantile(&metrics, "vouch_log_append_seconds", "0.5") * 1e6;
    let log99 = quantile(&metrics, "vouch_log_append_seconds", "0.99") * 1e6;
    println!(
        "requests: {} in {secs:.2} s = {:.0} req/s; log entries appended: {appended} ({:.0}/s)",
        lat.len(),
        lat.len() as f64 / secs,
        appended as f64 / secs
    );
    println!(
        "client latency: p50 {:.0} µs, p99 {:.0} µs",
        p(0.5),
        p(0.99)
    );
    println!(
        "log step (server-side append incl. group-commit fsync): p50 {log50:.0} µs, p99 {log99:.0} µs"
    );
    println!("log step ÷ client latency at p50: {:.3}", log50 / p(0.5));
}
