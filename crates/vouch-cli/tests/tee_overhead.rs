//! Benchmark, not a check: p50 latency of `["signed","tee"]` ÷ `["signed"]` through the real
//! server with the simulated producer, requests interleaved so both see the same machine load.
//! Run: `cargo test --release -p vouch --test tee_overhead -- --ignored --nocapture`
//! (`VOUCH_BENCH_ROUNDS` sets the rounds, default 2000). Results: BENCHMARKS.md.

// Tests fail loudly on any unexpected error; that is what unwrap is for here.
#![allow(clippy::unwrap_used, clippy::type_complexity)]

mod common;

use std::time::Instant;

use common::{Node, input_json};
use serde_json::json;

#[test]
#[ignore = "benchmark; run explicitly with --ignored --nocapture"]
fn tee_over_signed_p50_ratio_through_the_server() {
    let rounds: usize = std::env::var("VOUCH_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let node = Node::start(&["--tee", "simulated"]);
    node.register("mlp");
    let client = common::http_client();
    let url = format!("{}/v1/infer", node.url);
    let bodies = [
        serde_json::to_vec(
            &json!({"model": "mlp", "inputs": input_json("mlp"), "tiers": ["signed"]}),
        )
        .unwrap(),
        serde_json::to_vec(
            &json!({"model": "mlp", "inputs": input_json("mlp"), "tiers": ["signed", "tee"]}),
        )
        .unwrap(),
    ];
    let mut times = [Vec::with_capacity(rounds), Vec::with_capacity(rounds)];
    for i in 0..rounds + 100 {
        // Alternate which goes first so neither always follows the other.
        let order = if i % 2 == 0 { [0, 1] } else { [1, 0] };
        for k in order {
            let t = Instant::now();
            let r = client
                .post(&url)
                .header("content-type", "application/json")
                .body(bodies[k].clone())
                .send()
                .unwrap();
            assert_eq!(r.status().as_u16(), 200);
            let _ = r.bytes().unwrap();
            if i >= 100 {
                times[k].push(t.elapsed().as_secs_f64() * 1e6);
            }
        }
    }
    let p = |v: &mut Vec<f64>, q: f64| {
        v.sort_by(f64::total_cmp);
        v[((v.len() - 1) as f64 * q).round() as usize]
    };
    let (s50, s90) = (p(&mut times[0], 0.5), p(&mut times[0], 0.9));
    let (t50, t90) = (p(&mut times[1], 0.5), p(&mut times[1], 0.9));
    println!("rounds {rounds} (after 100 warm-up), client-observed latency, mlp model");
    println!("[\"signed\"]        p50 {s50:.0} µs  p90 {s90:.0} µs");
    println!("[\"signed\",\"tee\"] p50 {t50:.0} µs  p90 {t90:.0} µs");
    println!("p50 ratio tee/signed = {:.3}", t50 / s50);
}
