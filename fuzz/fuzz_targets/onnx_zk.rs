//! vouch-zk's own ONNX reader (prost declarations in `pb.rs`, lowering in `onnx.rs`), which
//! registration runs to analyse a model for the `zk` tier and verifiers run to recompute keys.
//! A graph that imports is well formed: every value is defined before it is read, every index
//! is in range, and lengths agree, before and after affine folding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch_zk::graph::{Graph, Op, Sparse};
use vouch_fuzz::{repo_file, write_seeds_if_asked};

fn check_sparse(s: &Sparse, rows: usize, in_len: usize, what: &str) {
    assert_eq!(s.rows(), rows, "{what}: one row per output element");
    assert_eq!(s.ptr.first().copied(), Some(0), "{what}: rows start at 0");
    assert!(s.ptr.windows(2).all(|w| w[0] <= w[1]), "{what}: row pointers ascend");
    assert_eq!(s.ptr.last().map(|&p| p as usize), Some(s.idx.len()), "{what}: last pointer");
    assert_eq!(s.idx.len(), s.w.len(), "{what}: one weight per index");
    assert!(s.idx.iter().all(|&j| (j as usize) < in_len), "{what}: index in range");
}

fn check(g: &Graph) {
    let n = g.value_len.len();
    assert!(!g.inputs.is_empty() && !g.outputs.is_empty());
    let mut defined = vec![false; n];
    for io in &g.inputs {
        assert!(io.value < n);
        let len: u128 = io.shape.iter().map(|&d| u128::from(d)).product();
        assert_eq!(len, g.value_len[io.value] as u128, "input {:?} length", io.name);
        defined[io.value] = true;
    }
    for op in &g.ops {
        for i in op.inputs() {
            assert!(i < n && defined[i], "{op:?} reads a value not yet computed");
        }
        let out = op.output();
        assert!(out < n, "output in range");
        let len = |v: usize| g.value_len[v];
        match op {
            Op::Linear { input, output, rows, bias, .. } => {
                check_sparse(rows, len(*output), len(*input), "Linear");
                assert_eq!(bias.len(), len(*output), "one bias per row");
            }
            Op::Add { a, b, output } => {
                assert_eq!((len(*a), len(*b)), (len(*output), len(*output)), "Add lengths");
            }
            Op::Relu { input, output } | Op::Lut { input, output, .. } => {
                assert_eq!(len(*input), len(*output), "elementwise length");
            }
            Op::MaxPool { input, output, windows } => {
                check_sparse(windows, len(*output), len(*input), "MaxPool");
                assert!(windows.ptr.windows(2).all(|w| w[0] < w[1]), "every window non-empty");
            }
        }
        defined[out] = true;
    }
    for io in &g.outputs {
        assert!(io.value < n && defined[io.value], "output {:?} is computed", io.name);
    }
}

fuzz_target!(
    init: {
        write_seeds_if_asked(|| {
            ["mlp_small", "multi_io", "cnn", "mlp"]
                .iter()
                .map(|m| (format!("{m}.onnx"), repo_file(&format!("models/{m}.onnx"))))
                .collect()
        });
    },
    |data: &[u8]| {
        let Ok(mut g) = vouch_zk::onnx::import(data) else {
            return;
        };
        check(&g);
        vouch_zk::onnx::fold_affine(&mut g);
        check(&g);
    }
);
