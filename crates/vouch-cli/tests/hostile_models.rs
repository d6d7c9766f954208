//! End to end, the hardening findings (issue 13) against the real binary: a model that points
//! at a file beside the node, runs sized or timed by the caller, and batching that mixed
//! callers' rows. The hostile models are built by the engine tests' builder, included by path.
#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

mod common;
#[path = "../../vouch-exec/tests/support/hostile_models.rs"]
mod hostile_models;

use std::sync::Arc;

use common::Node;
use serde_json::{Value, json};

fn upload(node: &Node, bytes: Vec<u8>, name: &str) -> (u16, Value) {
    node.upload(
        bytes,
        &format!("?name={name}&version=1"),
        Some(&node.token()),
    )
}

fn scalar_i64(v: i64) -> Value {
    json!({"dtype": "int64", "shape": [], "data": [v]})
}

#[test]
fn a_model_pointing_at_files_beside_the_node_is_refused_and_nothing_leaks() {
    let node = Node::start(&[]);
    let token = node.token();
    // The node runs in its data dir, where admin.token and node.key live.
    for location in ["admin.token", "node.key", "./admin.token"] {
        let (status, body) = upload(&node, hostile_models::external_data(location), "leak");
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["error"]["code"], "invalid_model", "{body}");
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("external file") && msg.contains(location),
            "{msg}"
        );
        assert!(!body.to_string().contains(&token));
    }
    let (_, models) = node.get("/v1/models");
    assert!(!models.to_string().contains("leak"), "{models}");
}

#[test]
fn runs_past_their_memory_or_time_fail_with_codes_and_the_node_keeps_serving() {
    let node = Node::start_with_env(
        &[],
        &[
            ("VOUCH_LIMITS__REQUEST_TIMEOUT_SECS", "2"),
            ("VOUCH_EXEC__RUN_MEMORY_MIB", "256"),
        ],
    );
    let (status, body) = upload(&node, hostile_models::range(), "range");
    assert!(status == 201 || status == 200, "{body}");
    let request = |n: i64| json!({"model": "range", "inputs": {"a": scalar_i64(0), "n": scalar_i64(n), "d": scalar_i64(1)}});
    // 2.5e9 int64s: 20 GB asked for by one request.
    let (status, body) = node.post_json("/v1/infer", &request(2_500_000_000));
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "resource_limit", "{body}");
    let (status, body) = node.post_json("/v1/infer", &request(4));
    assert_eq!(status, 200, "{body}");

    let (status, body) = upload(&node, hostile_models::counting_loop(), "spin");
    assert!(status == 201 || status == 200, "{body}");
    let spin = |m: i64| {
        json!({"model": "spin", "inputs": {"m": scalar_i64(m),
            "v": {"dtype": "float32", "shape": [1], "data": [0.5]}}})
    };
    // Two at once so both workers would be taken for good if runs were never stopped.
    let node = Arc::new(node);
    let spinners: Vec<_> = (0..2)
        .map(|_| {
            let node = node.clone();
            let body = spin(1_000_000_000_000_000);
            std::thread::spawn(move || {
                let r = node
                    .http()
                    .post(format!("{}/v1/infer", node.url))
                    .json(&body)
                    .send()
                    .unwrap();
                let retry = r.headers().get("retry-after").is_some();
                (r.status().as_u16(), retry, r.json::<Value>().unwrap())
            })
        })
        .collect();
    for s in spinners {
        let (status, retry, body) = s.join().unwrap();
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"]["code"], "timeout", "{body}");
        assert!(retry, "a timeout carries Retry-After");
    }
    let (status, body) = node.post_json("/v1/infer", &spin(3));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outputs"]["y"]["data"], json!([3.5]), "{body}");
}

/// Sends `n` single-row requests at once; returns each answer's output row and batch size.
fn concurrent_rows(
    node: &Arc<Node>,
    model: &str,
    n: usize,
    row: impl Fn(usize) -> Value,
) -> Vec<(Value, u64)> {
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let node = node.clone();
            let body = json!({"model": model, "inputs": {"x": row(i)}});
            std::thread::spawn(move || {
                let (status, b) = node.post_json("/v1/infer", &body);
                assert_eq!(status, 200, "{b}");
                let batch = b["receipt"]["engine"]["profile"]["batch"].as_u64().unwrap();
                (b["outputs"]["y"]["data"].clone(), batch)
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

#[test]
fn batching_only_for_proven_models_and_a_config_can_turn_it_off() {
    // Every request waits up to 200 ms for company: any model allowed to batch will.
    let node = Arc::new(Node::start_with_env(
        &[],
        &[
            ("VOUCH_EXEC__MAX_WAIT_US", "200000"),
            ("VOUCH_EXEC__WORKERS", "1"),
        ],
    ));
    let (status, body) = upload(&node, hostile_models::minus_batch_mean(), "centre");
    assert!(status == 201 || status == 200, "{body}");
    let answers = concurrent_rows(
        &node,
        "centre",
        12,
        |i| json!({"dtype": "float32", "shape": [1, 4], "data": vec![i as f32; 4]}),
    );
    for (y, batch) in &answers {
        assert_eq!(*batch, 1);
        assert_eq!(
            *y,
            json!([0.0, 0.0, 0.0, 0.0]),
            "another caller's rows leaked in"
        );
    }

    node.register("mlp");
    let mlp_row = |_| common::input_json("mlp")["x"].clone();
    let batched = concurrent_rows(&node, "mlp", 8, mlp_row);
    assert!(
        batched.iter().any(|(_, b)| *b > 1),
        "the MLP is proven row-independent and should have batched: {batched:?}"
    );
    let r = node
        .http()
        .put(format!("{}/v1/models/mlp/config", node.url))
        .bearer_auth(node.token())
        .json(&json!({"batching": false}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let alone = concurrent_rows(&node, "mlp", 8, mlp_row);
    assert!(alone.iter().all(|(_, b)| *b == 1), "{alone:?}");
    // Same inputs, same outputs either way.
    assert!(alone.iter().all(|(y, _)| *y == alone[0].0));
}
