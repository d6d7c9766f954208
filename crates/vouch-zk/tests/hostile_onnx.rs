//! Models whose sizes or attributes are built to overflow or exhaust the importer (found by the
//! `onnx_zk` fuzz target, `docs/fuzzing.md`): each is refused as an invalid model, quickly and
//! without a panic or a huge allocation. Each also sits in `fuzz/corpus/onnx_zk/`.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use common::*;
use vouch_zk::ZkError;

/// The refusal's message: an invalid model, or one over the importer's size limits (which
/// catch the largest shapes first).
fn refused(model: &[u8]) -> String {
    match vouch_zk::onnx::import(model) {
        Err(ZkError::InvalidModel(m)) => m,
        Err(ZkError::OverLimit(m)) => m,
        Err(e) => panic!("refused, but not as an invalid model: {e}"),
        Ok(g) => panic!("imported: {g:?}"),
    }
}

/// A refusal for size: the importer's own check, or the node's element limit before it.
fn too_large(message: &str) -> bool {
    message.contains("too large") || message.contains("exceeds this node's limit")
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
    assert!(too_large(&refused(&m)));
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
    assert!(too_large(&refused(&m)));
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
    assert!(too_large(&refused(&m)));
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
        assert!(too_large(&refused(&m)), "{op}");
    }
}

/// A MatMul to zero outputs (weight 2×0): found by the fuzzer, it made an empty "diagonal"
/// operator that affine folding then indexed out of bounds.
#[test]
fn matmul_to_zero_outputs_is_refused() {
    let w0 = init("w0", &[2, 2], vec![0.5; 4]);
    let w1 = init("w1", &[2, 0], vec![]);
    let nodes = vec![
        node("MatMul", &["x", "w0"], &["h"], vec![]),
        node("MatMul", &["h", "w1"], &["y"], vec![]),
    ];
    let m = model(nodes, vec![w0, w1], &[1, 2], &[1, 0]);
    assert!(refused(&m).contains("empty dimension"));
}

/// Folding merges only a true elementwise map (one diagonal entry per input element) into the
/// operator that feeds it; an empty or narrower diagonal stays where it is.
#[test]
fn fold_affine_merges_only_square_diagonals() {
    use vouch_zk::graph::{Graph, Io, Op, Sparse};
    let linear = |input, output, rows: Sparse| Op::Linear {
        input,
        output,
        bias: vec![0.0; rows.rows()],
        rows,
        onnx_op: "MatMul".into(),
    };
    let dense = Sparse {
        ptr: vec![0, 2, 4],
        idx: vec![0, 1, 0, 1],
        w: vec![1.0; 4],
    };
    for (out_len, diag) in [
        (
            0,
            Sparse {
                ptr: vec![0],
                idx: vec![],
                w: vec![],
            },
        ),
        (
            1,
            Sparse {
                ptr: vec![0, 1],
                idx: vec![0],
                w: vec![2.0],
            },
        ),
    ] {
        let mut g = Graph {
            inputs: vec![Io {
                name: "x".into(),
                shape: vec![2],
                value: 0,
            }],
            outputs: vec![Io {
                name: "y".into(),
                shape: vec![out_len as u64],
                value: 2,
            }],
            value_len: vec![2, 2, out_len],
            ops: vec![linear(0, 1, dense.clone()), linear(1, 2, diag)],
            params: 0,
        };
        vouch_zk::onnx::fold_affine(&mut g);
        assert_eq!(
            g.ops.len(),
            2,
            "a {out_len}-row diagonal over 2 inputs is not elementwise"
        );
    }
}
