//! vouch-zk's own ONNX reader (prost declarations in `pb.rs`, lowering in `onnx.rs`), which
//! registration runs to analyse a model for the `zk` tier and verifiers run to recompute keys.
//! A graph that imports is well formed: every value is defined before it is read, every index
//! is in range, and lengths agree, before and after affine folding.
//!
//! Inputs are protobuf bytes, or, after the byte [`RECIPE`], a recipe from which [`recipe`]
//! builds a small model of the operators the importer knows with fuzzed shapes, weights and
//! attributes: byte mutations of protobuf rarely reach the operator lowering, recipes always do.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use vouch_fuzz::{shipped_models, write_seeds_if_asked};
use vouch_zk::graph::{Graph, Op, Sparse};
use vouch_zk::pb;

/// First byte of a recipe input (protobuf never starts with it: field 20, fixed32).
const RECIPE: u8 = 0xa5;

const OPS: [&str; 18] = [
    "Gemm",
    "MatMul",
    "Conv",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "BatchNormalization",
    "Relu",
    "Sigmoid",
    "Tanh",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Flatten",
    "Reshape",
    "Identity",
    "Constant",
];

const ATTRS: [&str; 14] = [
    "kernel_shape",
    "strides",
    "pads",
    "dilations",
    "group",
    "axis",
    "transA",
    "transB",
    "alpha",
    "beta",
    "epsilon",
    "ceil_mode",
    "count_include_pad",
    "auto_pad",
];

/// The recipe's bytes, read front to back; zeros once it runs out.
struct Recipe<'a>(&'a [u8]);

impl Recipe<'_> {
    fn byte(&mut self) -> u8 {
        let (&b, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        b
    }

    /// Mostly small; sometimes 0, -1, a power of two up to 2^62, or any i64.
    fn int(&mut self) -> i64 {
        match self.byte() % 10 {
            0 => 0,
            1 => -1,
            2 => 1i64 << (self.byte() % 63),
            3 => i64::from_le_bytes(std::array::from_fn(|_| self.byte())),
            _ => i64::from(self.byte() % 8) + 1,
        }
    }

    fn dims(&mut self) -> Vec<i64> {
        (0..self.byte() % 5).map(|_| self.int()).collect()
    }

    /// A float constant: as many elements as its dims hold when that is small, else a few.
    fn tensor(&mut self, name: String) -> pb::TensorProto {
        let dims = self.dims();
        let n = dims
            .iter()
            .try_fold(1i64, |n, &d| n.checked_mul(d))
            .unwrap_or(-1);
        let len = if (0..=4096).contains(&n) && self.byte() % 8 != 0 {
            n as usize
        } else {
            usize::from(self.byte() % 4)
        };
        let seed = self.byte();
        pb::TensorProto {
            name,
            dims,
            data_type: if self.byte() % 16 == 0 { 7 } else { 1 },
            float_data: (0..len)
                .map(|i| ((i as f32) * 0.37 + f32::from(seed)).sin())
                .collect(),
            int64_data: (0..len).map(|i| i as i64 - 1).collect(),
            ..Default::default()
        }
    }

    fn attribute(&mut self, name: &str) -> pb::AttributeProto {
        let mut a = pb::AttributeProto {
            name: name.into(),
            ..Default::default()
        };
        match name {
            "alpha" | "beta" | "epsilon" => a.f = f32::from(self.byte()) / 16.0 - 4.0,
            "auto_pad" => {
                a.s =
                    [&b"NOTSET"[..], b"VALID", b"SAME_UPPER"][usize::from(self.byte() % 3)].to_vec()
            }
            "group" | "axis" | "transA" | "transB" | "ceil_mode" | "count_include_pad" => {
                a.i = self.int()
            }
            _ => a.ints = (0..self.byte() % 5).map(|_| self.int()).collect(),
        }
        a
    }
}

fn value_info(name: &str, dims: &[i64]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{Dimension, dimension::Value};
    let shape = pb::TensorShapeProto {
        dim: dims
            .iter()
            .map(|&d| Dimension {
                value: Some(Value::DimValue(d)),
            })
            .collect(),
    };
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: 1,
                shape: Some(shape),
            })),
        }),
    }
}

/// A model of up to eight operators chained from input `x`, each with its constants and a
/// fuzzed choice of attributes.
fn recipe(data: &[u8]) -> Vec<u8> {
    let mut r = Recipe(data);
    let x_dims = r.dims();
    // The importer accepts inputs up to 2^26 elements by design, and lowering one operator on
    // such an input takes GiBs (reported in docs/fuzzing.md): recipes stay below that, or far
    // above (overflowing shapes, which must be refused at once).
    let n = x_dims
        .iter()
        .try_fold(1i64, |n, &d| n.checked_mul(d.max(1)));
    if n.is_some_and(|n| n > 1 << 16 && n <= 1 << 26) {
        return vec![];
    }
    let (mut nodes, mut inits) = (vec![], vec![]);
    let mut cur = "x".to_string();
    for k in 0..r.byte() % 8 + 1 {
        let op = OPS[usize::from(r.byte()) % OPS.len()];
        let consts = match op {
            "Gemm" | "Conv" => 1 + usize::from(r.byte() % 2),
            "MatMul" | "Reshape" => 1,
            "BatchNormalization" => 4,
            "Add" | "Sub" | "Mul" | "Div" => usize::from(r.byte() % 2),
            _ => 0,
        };
        let mut input = if op == "Constant" {
            vec![]
        } else {
            vec![cur.clone()]
        };
        if matches!(op, "Add" | "Sub" | "Mul" | "Div") && consts == 0 {
            input.push(cur.clone());
        }
        for i in 0..consts {
            let name = format!("c{k}_{i}");
            inits.push(r.tensor(name.clone()));
            input.push(name);
        }
        let mut attribute = vec![];
        for a in ATTRS {
            if r.byte() % 4 == 0 {
                attribute.push(r.attribute(a));
            }
        }
        if op == "Constant" {
            let t = r.tensor(format!("k{k}"));
            attribute.push(pb::AttributeProto {
                name: "value".into(),
                t: Some(t),
                ..Default::default()
            });
        }
        let out = format!("v{k}");
        nodes.push(pb::NodeProto {
            op_type: op.into(),
            name: format!("{op}_{k}"),
            input,
            output: vec![out.clone()],
            attribute,
            ..Default::default()
        });
        if op != "Constant" {
            cur = out;
        }
    }
    pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        graph: Some(pb::GraphProto {
            node: nodes,
            initializer: inits,
            input: vec![value_info("x", &x_dims)],
            output: vec![value_info(&cur, &[])],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

fn check_sparse(s: &Sparse, rows: usize, in_len: usize, what: &str) {
    assert_eq!(s.rows(), rows, "{what}: one row per output element");
    assert_eq!(s.ptr.first().copied(), Some(0), "{what}: rows start at 0");
    assert!(
        s.ptr.windows(2).all(|w| w[0] <= w[1]),
        "{what}: row pointers ascend"
    );
    assert_eq!(
        s.ptr.last().map(|&p| p as usize),
        Some(s.idx.len()),
        "{what}: last pointer"
    );
    assert_eq!(s.idx.len(), s.w.len(), "{what}: one weight per index");
    assert!(
        s.idx.iter().all(|&j| (j as usize) < in_len),
        "{what}: index in range"
    );
}

fn check(g: &Graph) {
    let n = g.value_len.len();
    assert!(!g.inputs.is_empty() && !g.outputs.is_empty());
    let mut defined = vec![false; n];
    for io in &g.inputs {
        assert!(io.value < n);
        let len: u128 = io.shape.iter().map(|&d| u128::from(d)).product();
        assert_eq!(
            len, g.value_len[io.value] as u128,
            "input {:?} length",
            io.name
        );
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
            Op::Linear {
                input,
                output,
                rows,
                bias,
                ..
            } => {
                check_sparse(rows, len(*output), len(*input), "Linear");
                assert_eq!(bias.len(), len(*output), "one bias per row");
            }
            Op::Add { a, b, output } => {
                assert_eq!(
                    (len(*a), len(*b)),
                    (len(*output), len(*output)),
                    "Add lengths"
                );
            }
            Op::Relu { input, output } | Op::Lut { input, output, .. } => {
                assert_eq!(len(*input), len(*output), "elementwise length");
            }
            Op::MaxPool {
                input,
                output,
                windows,
            } => {
                check_sparse(windows, len(*output), len(*input), "MaxPool");
                assert!(
                    windows.ptr.windows(2).all(|w| w[0] < w[1]),
                    "every window non-empty"
                );
            }
        }
        defined[out] = true;
    }
    for io in &g.outputs {
        assert!(
            io.value < n && defined[io.value],
            "output {:?} is computed",
            io.name
        );
    }
}

fuzz_target!(
    init: {
        write_seeds_if_asked(|| {
            shipped_models()
                .into_iter()
                .chain((0u8..8).map(|i| {
                    let mut r = vec![RECIPE];
                    r.extend((0..64).map(|j: u8| j.wrapping_mul(37).wrapping_add(i.wrapping_mul(101))));
                    (format!("recipe-{i}"), r)
                }))
                .collect()
        });
    },
    |data: &[u8]| {
        let built;
        let model = match data.split_first() {
            Some((&RECIPE, rest)) => {
                built = recipe(rest);
                &built[..]
            }
            _ => data,
        };
        let Ok(mut g) = vouch_zk::onnx::import(model) else {
            return;
        };
        check(&g);
        vouch_zk::onnx::fold_affine(&mut g);
        check(&g);
    }
);
