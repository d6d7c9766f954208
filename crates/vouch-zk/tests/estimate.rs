//! The circuit-size estimate made from the graph alone: an upper bound of the real circuit on
//! the shipped models and on models exercising every gadget, the refusal of models whose
//! circuit or graph is too large before anything is built (the ONNX backend test model
//! `MaxPool2d_stride_padding_dilation`, a million-node graph, absurd shapes), and analysis
//! deadlines.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use common::*;
use prost::Message;
use vouch_zk::{AnalyzeOptions, Deadline, Limits, ZkError, estimate_model, pb};

/// The estimate is at least the built circuit's constraint (and witness) count, and its gadget
/// part — all but the lookup tables, whose widths calibration picks and the estimate takes at
/// their worst — is at most this many times it.
const FACTOR: f64 = 2.0;

/// Estimate vs the circuit analysis builds (calibration and all), for one model.
fn compare(name: &str, model: &[u8]) -> (u64, u64) {
    let est = estimate_model(model, &Limits::default()).unwrap();
    let real = vouch_zk::circuit_stats(model, &AnalyzeOptions::default()).unwrap();
    eprintln!(
        "{name}: estimate {} constraints / {} witness / {} nnz / table bits {}; built {} / {} / {} (range widths {:?})",
        est.constraints,
        est.witness(),
        est.nnz,
        est.table_bits,
        real.constraints,
        real.precommitted + real.rest,
        real.nnz,
        real.range_widths,
    );
    let (e, r) = (est.constraints, real.constraints as u64);
    assert!(e >= r, "{name}: estimate {e} below the built {r}");
    let gadgets = e - est.table_entries;
    assert!(
        gadgets as f64 <= FACTOR * r as f64,
        "{name}: estimate {e} ({gadgets} without tables) more than {FACTOR}× the built {r}"
    );
    let (ew, rw) = (est.witness(), (real.precommitted + real.rest) as u64);
    assert!(
        ew >= rw,
        "{name}: witness estimate {ew} below the built {rw}"
    );
    assert!(
        (ew - 2 * est.table_entries) as f64 <= FACTOR * rw as f64,
        "{name}: witness estimate {ew} vs built {rw}"
    );
    (e, r)
}

#[test]
fn the_estimate_bounds_every_shipped_models_circuit() {
    for name in ["mlp_small", "mlp", "cnn", "zk/dense"] {
        let m = read_model(name);
        let (e, r) = compare(name, &m);
        // Measured: 1.06, 1.05, 1.007 and 1.02 times the built circuit.
        assert!(e as f64 <= 1.1 * r as f64, "{name}: {e} vs {r}");
        // Each is well inside the default limits.
        let est = estimate_model(&m, &Limits::default()).unwrap();
        est.check(&Limits::default()).unwrap();
        eprintln!(
            "{name}: analysis predicted to peak at {} MiB",
            est.analysis_peak_bytes() >> 20
        );
    }
}

#[test]
fn the_estimate_bounds_the_operator_test_models_circuits() {
    // Conv → BatchNorm (folded) → Relu → MaxPool (fused), AveragePool, Gemm; Sigmoid and Tanh
    // lookups; a residual Add, a standalone Relu, Mul and Sub by constants.
    compare("conv", &conv_model());
    compare("sigmoid", &lookup_model("Sigmoid").0);
    compare("tanh", &lookup_model("Tanh").0);
    compare("residual", &residual_model().0);
    // The estimate names an unsupported operator as the importer does.
    let bad = model(
        vec![node("Softmax", &["x"], &["y"], vec![])],
        vec![],
        &[1, 4],
        &[1, 4],
    );
    match estimate_model(&bad, &Limits::default()) {
        Err(ZkError::Unsupported { op, .. }) => assert_eq!(op, "Softmax"),
        other => panic!("expected Unsupported, got {other:?}"),
    }
    let real = vouch_zk::analyze(&read_model("multi_io")).unwrap_err();
    let est = estimate_model(&read_model("multi_io"), &Limits::default()).unwrap_err();
    assert_eq!(est, real);
}

#[test]
fn the_maxpool_backend_test_model_is_refused_before_anything_is_built() {
    let m = maxpool_backend_test();
    assert!(m.len() < 200, "a {} byte model", m.len());
    let est = estimate_model(&m, &Limits::default()).unwrap();
    eprintln!("MaxPool2d_stride_padding_dilation: {est:?}");
    // 5.1 M max-pool differences, each a range check: far over the default limit.
    assert!(
        est.constraints > 4 * Limits::default().max_constraints,
        "{est:?}"
    );
    let e = vouch_zk::analyze(&m).unwrap_err();
    assert_eq!(e.code(), vouch_core::ErrorCode::TierUnavailable);
    let msg = e.to_string();
    assert!(
        msg.contains(&format!(
            "circuit of about {} constraints exceeds this node's limit of {}",
            est.constraints,
            Limits::default().max_constraints
        )),
        "{msg}"
    );
    assert!(msg.starts_with("zk: unavailable ("), "{msg}");
}

#[test]
fn a_million_operator_graph_is_refused_before_it_is_decoded() {
    // One Relu node's bytes, repeated a million times as GraphProto.node (field 1).
    let one = node("Relu", &["x"], &["x"], vec![]).encode_to_vec();
    let mut graph = Vec::with_capacity((one.len() + 2) * 1_000_000);
    for _ in 0..1_000_000 {
        graph.push(0x0a); // field 1, length-delimited
        prost::encoding::encode_varint(one.len() as u64, &mut graph);
        graph.extend_from_slice(&one);
    }
    let mut bytes = vec![0x3a]; // ModelProto.graph: field 7, length-delimited
    prost::encoding::encode_varint(graph.len() as u64, &mut bytes);
    bytes.extend_from_slice(&graph);
    assert_eq!(pb::count_nodes(&bytes).unwrap(), 1_000_000);
    let e = estimate_model(&bytes, &Limits::default()).unwrap_err();
    assert_eq!(
        e,
        ZkError::OverLimit(format!(
            "graph of 1000000 operators exceeds this node's limit of {}",
            Limits::default().max_nodes
        ))
    );
    // Truncated bytes are an invalid model, not a panic.
    let cut = &bytes[..bytes.len() / 2];
    assert!(matches!(
        pb::count_nodes(cut),
        Err(ZkError::InvalidModel(_))
    ));
}

#[test]
fn absurd_shapes_are_too_large_not_a_panic_or_an_allocation() {
    let over = |m: &[u8]| {
        let e = estimate_model(m, &Limits::default())
            .and_then(|est| est.check(&Limits::default()))
            .unwrap_err();
        assert!(matches!(e, ZkError::OverLimit(_)), "{e}");
        // The importer refuses them too (before allocating), should anything call it first.
        let e = vouch_zk::onnx::import(m).unwrap_err();
        assert!(matches!(e, ZkError::OverLimit(_)), "{e}");
    };
    // An input of 2^80 elements.
    over(&model(
        vec![node("Relu", &["x"], &["y"], vec![])],
        vec![],
        &[1, 1 << 40, 1 << 40],
        &[1, 1 << 40, 1 << 40],
    ));
    // A 1×1 convolution to 2^20 channels of a 4096×4096 image (2^44 outputs).
    let conv = model(
        vec![node("Conv", &["x", "w"], &["y"], vec![])],
        vec![pb::TensorProto {
            name: "w".into(),
            dims: vec![1 << 20, 1, 1, 1],
            data_type: 1,
            raw_data: vec![0; 4 << 20],
            ..Default::default()
        }],
        &[1, 1, 4096, 4096],
        &[1, 1 << 20, 4096, 4096],
    );
    over(&conv);
    // A max pool whose windows read 2^44 inputs in all.
    let pool = model(
        vec![node(
            "MaxPool",
            &["x"],
            &["y"],
            vec![
                ints("kernel_shape", &[2048, 2048]),
                ints("pads", &[1024, 1024, 1024, 1024]),
            ],
        )],
        vec![],
        &[1, 1, 2048, 2048],
        &[1, 1, 2049, 2049],
    );
    over(&pool);
    // A constant declared with 2^62 elements (and none stored).
    let big_const = model(
        vec![node("MatMul", &["x", "w"], &["y"], vec![])],
        vec![pb::TensorProto {
            name: "w".into(),
            dims: vec![1 << 31, 1 << 31],
            data_type: 1,
            ..Default::default()
        }],
        &[1, 4],
        &[1, 4],
    );
    let e = estimate_model(&big_const, &Limits::default()).unwrap_err();
    assert!(matches!(e, ZkError::OverLimit(_)), "{e}");
    // A Reshape to a shape whose product overflows.
    let reshape = model(
        vec![node("Reshape", &["x", "s"], &["y"], vec![])],
        vec![pb::TensorProto {
            name: "s".into(),
            dims: vec![3],
            data_type: 7,
            int64_data: vec![1 << 40, 1 << 40, -1],
            ..Default::default()
        }],
        &[1, 4],
        &[1, 4],
    );
    for e in [
        estimate_model(&reshape, &Limits::default()).unwrap_err(),
        vouch_zk::onnx::import(&reshape).unwrap_err(),
    ] {
        assert!(matches!(e, ZkError::InvalidModel(_)), "{e}");
    }
}

#[test]
fn free_operators_over_large_tensors_are_refused_by_predicted_memory() {
    // Adds cost no constraints, but calibration holds every value of every sample: 64 Adds
    // of a 4096×4096 image, then one average.
    let mut nodes = vec![];
    let mut prev = "x".to_string();
    for i in 0..64 {
        let next = format!("a{i}");
        nodes.push(node("Add", &[&prev, &prev], &[&next], vec![]));
        prev = next;
    }
    nodes.push(node("GlobalAveragePool", &[&prev], &["y"], vec![]));
    let m = model(nodes, vec![], &[1, 1, 4096, 4096], &[1, 1, 1, 1]);
    let est = estimate_model(&m, &Limits::default()).unwrap();
    assert!(
        est.constraints < Limits::default().max_constraints,
        "{est:?}"
    );
    assert_eq!(est.values, 65 * (1 << 24) + 1);
    let e = vouch_zk::analyze(&m).unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(e, ZkError::OverLimit(_))
            && msg.contains("MiB to analyse; this node allows 4096 MiB"),
        "{msg}"
    );
}

#[test]
fn node_and_constraint_limits_are_the_callers() {
    let m = read_model("mlp_small");
    let est = estimate_model(&m, &Limits::default()).unwrap();
    let tight = Limits {
        max_constraints: est.constraints - 1,
        ..Default::default()
    };
    let e = vouch_zk::analyze_with(
        &m,
        &AnalyzeOptions {
            limits: tight,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "zk: unavailable (circuit of about {} constraints exceeds this node's limit of {})",
            est.constraints,
            est.constraints - 1
        )
    );
    let few = Limits {
        max_nodes: est.nodes - 1,
        ..Default::default()
    };
    assert!(matches!(
        estimate_model(&m, &few),
        Err(ZkError::OverLimit(_))
    ));
    // The analysis records what the graph predicted.
    let info = vouch_zk::analyze(&m).unwrap();
    assert_eq!(info.size_estimate, Some(est));
}

#[test]
fn an_analysis_past_its_deadline_or_cancelled_stops_with_the_time_limit() {
    let m = read_model("mlp_small");
    let expired = AnalyzeOptions {
        deadline: Deadline::after(Duration::ZERO),
        ..Default::default()
    };
    let e = vouch_zk::analyze_with(&m, &expired).unwrap_err();
    assert_eq!(
        e,
        ZkError::OverLimit("analysis exceeded this node's time limit of 0 s".into())
    );
    let flag = Arc::new(AtomicBool::new(true));
    let cancelled = AnalyzeOptions {
        deadline: Deadline::after(Duration::from_secs(600)).with_cancel(flag),
        ..Default::default()
    };
    let e = vouch_zk::analyze_with(&m, &cancelled).unwrap_err();
    assert!(e.to_string().contains("time limit of 600 s"), "{e}");
}
