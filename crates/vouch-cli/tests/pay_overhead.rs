//! Benchmark, not a check: paid (x402, built-in ledger) vs unpaid `["signed"]` inference of the
//! MLP through two real servers on this machine, one with payments on and one without, requests
//! interleaved so both see the same load. Reports client-observed p50/p90 one request at a time,
//! then throughput with `VOUCH_BENCH_CLIENTS` concurrent clients (default 8), alternating
//! blocks. Payments are signed before timing (signing is the client's cost, not the server's).
//! Run: `cargo test --release -p vouch --test pay_overhead -- --ignored --nocapture`
//! (`VOUCH_BENCH_ROUNDS`, default 1000). Results: BENCHMARKS.md.

// Tests fail loudly on any unexpected error; that is what unwrap is for here.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Instant;

use common::{Node, input_json};
use serde_json::json;
use vouch_pay::PaymentRequired;

const PAY_TO: &str = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C";

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
#[ignore = "benchmark; run explicitly with --ignored --nocapture"]
fn paid_over_unpaid_latency_and_throughput_through_the_server() {
    let rounds = env("VOUCH_BENCH_ROUNDS", 1000);
    let clients = env("VOUCH_BENCH_CLIENTS", 8).max(1);
    let warmup = 50;
    let cfg = tempfile::tempdir().unwrap();
    let path = cfg.path().join("vouch.toml");
    std::fs::write(
        &path,
        format!("[pay]\nenabled = true\npay_to = \"{PAY_TO}\"\n"),
    )
    .unwrap();
    let paid = Node::start(&["--config", path.to_str().unwrap()]);
    let free = Node::start(&[]);
    paid.register("mlp");
    free.register("mlp");
    let body = serde_json::to_vec(
        &json!({"model": "mlp", "inputs": input_json("mlp"), "tiers": ["signed"]}),
    )
    .unwrap();
    let client = common::http_client();
    let urls = [
        format!("{}/v1/infer", free.url),
        format!("{}/v1/infer", paid.url),
    ];

    // One funded payer and every payment signed up front.
    let (signer, text) = vouch_pay::payer::generate_key();
    let key = cfg.path().join("payer.key");
    std::fs::write(&key, text).unwrap();
    let total = warmup + rounds + 2 * rounds;
    let out = paid.cli(&[
        "pay",
        "credit",
        &signer.address().to_string(),
        &(100 * total as u64).to_string(),
    ]);
    assert!(out.status.success(), "{}", common::text(&out));
    let r = client
        .post(&urls[1])
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 402);
    let required = PaymentRequired::from_response(
        r.headers()
            .get("PAYMENT-REQUIRED")
            .and_then(|v| v.to_str().ok()),
        b"",
    )
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut payments: Vec<(&str, String)> = (0..total)
        .map(|_| vouch_pay::payer::pay(&signer, &required, None, now).unwrap())
        .collect();

    let send = |k: usize, payment: Option<&(&str, String)>| {
        let mut req = client
            .post(&urls[k])
            .header("content-type", "application/json")
            .body(body.clone());
        if let Some((n, v)) = payment {
            req = req.header(*n, v);
        }
        let r = req.send().unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let _ = r.bytes().unwrap();
    };

    // One at a time, interleaved.
    let mut times = [Vec::with_capacity(rounds), Vec::with_capacity(rounds)];
    for i in 0..rounds + warmup {
        let order = if i % 2 == 0 { [0, 1] } else { [1, 0] };
        for k in order {
            let p = (k == 1).then(|| payments.pop().unwrap());
            let t = Instant::now();
            send(k, p.as_ref());
            if i >= warmup {
                times[k].push(t.elapsed().as_secs_f64() * 1e6);
            }
        }
    }
    let p = |v: &mut Vec<f64>, q: f64| {
        v.sort_by(f64::total_cmp);
        v[((v.len() - 1) as f64 * q).round() as usize]
    };
    let (u50, u90) = (p(&mut times[0], 0.5), p(&mut times[0], 0.9));
    let (p50, p90) = (p(&mut times[1], 0.5), p(&mut times[1], 0.9));

    // Throughput: `clients` concurrent clients, blocks of 100 requests alternating servers.
    let block = 100.min(rounds).max(1);
    let mut elapsed = [0f64; 2];
    let mut done = [0usize; 2];
    for b in 0..(2 * rounds / block) {
        let k = b % 2;
        let mine: Vec<Option<(&str, String)>> = (0..block)
            .map(|_| (k == 1).then(|| payments.pop().unwrap()))
            .collect();
        let t = Instant::now();
        std::thread::scope(|s| {
            for chunk in mine.chunks(block.div_ceil(clients)) {
                let send = &send;
                s.spawn(move || {
                    for p in chunk {
                        send(k, p.as_ref());
                    }
                });
            }
        });
        elapsed[k] += t.elapsed().as_secs_f64();
        done[k] += block;
    }
    let (ut, pt) = (done[0] as f64 / elapsed[0], done[1] as f64 / elapsed[1]);
    println!("rounds {rounds} (after {warmup} warm-up), client-observed, mlp, [\"signed\"]");
    println!("unpaid  p50 {u50:.0} µs  p90 {u90:.0} µs");
    println!(
        "paid    p50 {p50:.0} µs  p90 {p90:.0} µs   (p50 +{:.0} µs)",
        p50 - u50
    );
    println!("p50 ratio paid/unpaid = {:.3}", p50 / u50);
    println!("sequential throughput ratio paid/unpaid = {:.3}", u50 / p50);
    println!(
        "{clients} clients: unpaid {ut:.0} req/s, paid {pt:.0} req/s, ratio {:.3}",
        pt / ut
    );
}
