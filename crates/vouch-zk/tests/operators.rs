//! Operator coverage: each supported operator proves and verifies and tracks the float model;
//! an unsupported one is named at analysis time.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use common::*;
use vouch_zk::{AnalyzeOptions, VerifyKey, VerifyOptions, ZkError};

/// Analyses, proves and verifies `model` on input `x`, returning the proven output.
fn round_trip(model: &[u8], x: vouch_core::Tensor) -> Vec<f64> {
    let inputs = one("x", x);
    // One fixed scale keeps the debug-build test fast (the scale search has its own tests).
    let opts = AnalyzeOptions {
        samples: vec![inputs.clone()],
        fixed_scale: Some(14),
        ..Default::default()
    };
    let (info, keys) = vouch_zk::analyze_with(model, &opts).expect("supported");
    assert!(info.stats.constraints > 0);
    // The receipt's outputs are the proven ones here (the float engine is not in this crate).
    let r0 = receipt(model, &inputs, &Default::default(), "op-test");
    let proof = vouch_zk::prove(&keys, &inputs, &r0.hash(), &mut |_| false).expect("proves");
    let v = vouch_zk::verify(
        &proof.evidence,
        VerifyKey::Keys(&keys),
        &r0,
        None,
        Some(&inputs),
        &VerifyOptions::default(),
    )
    .expect("verifies");
    assert!(v.input_checked);
    proof.outputs.get("y").unwrap().data().to_f64_vec()
}

#[test]
fn unsupported_operator_is_named() {
    let m = model(
        vec![node("Softmax", &["x"], &["y"], vec![])],
        vec![],
        &[1, 4],
        &[1, 4],
    );
    match vouch_zk::analyze(&m) {
        Err(ZkError::Unsupported { op, .. }) => assert_eq!(op, "Softmax"),
        other => panic!("expected Unsupported, got {other:?}"),
    }
    let e = vouch_zk::analyze(&m).unwrap_err();
    assert_eq!(e.code(), vouch_core::ErrorCode::TierUnavailable);
    assert!(
        e.to_string().contains("zk: unavailable") && e.to_string().contains("Softmax"),
        "{e}"
    );
}

#[test]
fn garbage_is_an_invalid_model_not_a_panic() {
    let e = vouch_zk::analyze(b"definitely not onnx").unwrap_err();
    assert_eq!(e.code(), vouch_core::ErrorCode::InvalidModel, "{e}");
}

#[test]
fn runtime_weights_are_unsupported() {
    // MatMul of two runtime tensors (a weight computed at run time).
    let m = model(
        vec![node("MatMul", &["x", "x"], &["y"], vec![])],
        vec![],
        &[4, 4],
        &[4, 4],
    );
    assert!(matches!(
        vouch_zk::analyze(&m),
        Err(ZkError::Unsupported { .. })
    ));
}

#[test]
fn sigmoid_and_tanh_by_lookup() {
    for (op, f) in [
        (
            "Sigmoid",
            (|v: f64| 1.0 / (1.0 + (-v).exp())) as fn(f64) -> f64,
        ),
        ("Tanh", f64::tanh),
    ] {
        let (m, w) = lookup_model(op);
        let x = floats(8, 9);
        let got = round_trip(&m, tensor(&[1, 8], x.clone()));
        for j in 0..4 {
            let h: f64 = (0..8).map(|i| x[i] as f64 * w[i * 4 + j] as f64).sum();
            assert!((got[j] - f(h)).abs() < 2e-3, "{op}: {} vs {}", got[j], f(h));
        }
    }
}

#[test]
fn conv_batchnorm_relu_pools_flatten_gemm() {
    let m = conv_model();
    let x = floats(72, 17);
    let got = round_trip(&m, tensor(&[1, 2, 6, 6], x.clone()));
    // Float reference through the crate's own importer and evaluator.
    let mut g = vouch_zk::onnx::import(&m).unwrap();
    vouch_zk::onnx::fold_affine(&mut g);
    // BatchNorm folded into the Conv: one linear operator fewer than nodes suggest.
    let linears = g
        .ops
        .iter()
        .filter(|o| matches!(o, vouch_zk::graph::Op::Linear { .. }))
        .count();
    assert_eq!(linears, 3, "Conv+BN folded, AveragePool and Gemm remain");
    let xf: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let vals = vouch_zk::quant::eval_all(&g, &[xf]).unwrap();
    let want = &vals[g.outputs[0].value];
    for (a, b) in got.iter().zip(want) {
        assert!((a - b).abs() < 1e-3, "{a} vs {b}");
    }
}

#[test]
fn residual_add_and_constant_ops() {
    // y = Relu(x·W + x) * 0.5 - 0.25 : Add of two runtime tensors, Mul and Sub by constants.
    let (m, w) = residual_model();
    let x = floats(4, 23);
    let got = round_trip(&m, tensor(&[1, 4], x.clone()));
    for j in 0..4 {
        let h: f64 = (0..4)
            .map(|i| x[i] as f64 * w[i * 4 + j] as f64)
            .sum::<f64>()
            + x[j] as f64;
        let want = h.max(0.0) * 0.5 - 0.25;
        assert!((got[j] - want).abs() < 1e-3, "{} vs {want}", got[j]);
    }
}
