//! Models whose sizes or attributes are built to overflow or exhaust the importer (found by the
//! `onnx_zk` fuzz target, `docs/fuzzing.md`): each is refused as an invalid model, quickly and
//! without a panic or a huge allocation. Each also sits in `fuzz/corpus/onnx_zk/`.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use common::*;
use vouch_zk::ZkError;

fn refused(model: &[u8]) -> String {
    match vouch_zk::onnx::import(model) {
        Err(ZkError::InvalidModel(m)) => m,
        Err(e) => panic!("refused, but not as an invalid model: {e}"),
        Ok(g) => panic!("imported: {g:?}"),
    }
}

/// An input whose dims multiply past `usize::MAX`: the size check must see the overflow.
#[test]
fn input_shape_overflowing_usize_is_too_large() {
    let m = model(
        vec![node("Relu", &["x"], &["y"], vec![])],
        vec![],
        &[1, 1 << 32, 1 << 32],
        &[1],
    );
    assert!(refused(&m).contains("too large"));
}

/// An initializer whose declared dims overflow when counting the model's parameters.
#[test]
fn initializer_dims_overflowing_usize_are_too_large() {
    let w = init("w", &[1 << 32, 1 << 32], vec![]);
    let m = model(
        vec![node("Relu", &["x"], &["y"], vec![])],
        vec![w],
        &[1, 4],
        &[1, 4],
    );
    assert!(refused(&m).contains("too large"));
}

/// A Reshape target whose known dims multiply past `i64::MAX`.
#[test]
fn reshape_to_an_overflowing_shape_is_refused() {
    let shape = init("s", &[2], vec![4294967296.0, 4294967296.0]);
    let m = model(
        vec![node("Reshape", &["x", "s"], &["y"], vec![])],
        vec![shape],
        &[1, 16],
        &[1, 16],
    );
    assert!(refused(&m).contains("Reshape"));
}

/// A Conv weight with an empty kernel (0 rows): its element count is 0, so it passes the size
/// check, and the kernel extent `k - 1` underflowed.
#[test]
fn conv_with_an_empty_kernel_is_refused() {
    let w = init("w", &[1, 1, 0, 3], vec![]);
    let m = model(
        vec![node("Conv", &["x", "w"], &["y"], vec![])],
        vec![w],
        &[1, 1, 4, 4],
        &[1, 1, 4, 2],
    );
    assert!(refused(&m).contains("Conv"));
}

/// A Conv whose `group` overflows when multiplied by the weight's channels.
#[test]
fn conv_with_an_overflowing_group_is_refused() {
    let w = init("w", &[1, 4, 1, 1], vec![1.0; 4]);
    let group = int_attr("group", 1 << 62);
    let m = model(
        vec![node("Conv", &["x", "w"], &["y"], vec![group])],
        vec![w],
        &[1, 4, 4, 4],
        &[1, 0, 4, 4],
    );
    assert!(refused(&m).contains("Conv"));
}

/// A 1×1 Conv with 1024 output channels over a 4096×4096 input: a few KiB of model asking for
/// 2^34 outputs. Refused before anything of that size is allocated.
#[test]
fn conv_with_a_huge_output_is_refused_before_allocating() {
    let w = init("w", &[1024, 1, 1, 1], vec![1.0; 1024]);
    let m = model(
        vec![node("Conv", &["x", "w"], &["y"], vec![])],
        vec![w],
        &[1, 1, 4096, 4096],
        &[1, 1024, 4096, 4096],
    );
    assert!(refused(&m).contains("too large"));
}

/// Pools over 2^22 channels with a large kernel and padding: 2^22 × 4095² windows.
#[test]
fn pool_with_a_huge_output_is_refused_before_allocating() {
    let attrs = || {
        vec![
            ints("kernel_shape", &[2048, 2048]),
            ints("pads", &[2047, 2047, 2047, 2047]),
        ]
    };
    for op in ["MaxPool", "AveragePool"] {
        let m = model(
            vec![node(op, &["x"], &["y"], attrs())],
            vec![],
            &[1, 1 << 22, 1, 1],
            &[1, 1 << 22, 2048, 2048],
        );
        assert!(refused(&m).contains("too large"), "{op}");
    }
}
