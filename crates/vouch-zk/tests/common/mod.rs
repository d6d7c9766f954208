//! Helpers shared by the integration tests: small ONNX models built in memory with the same
//! protobuf types the importer reads, receipts, and the repository's sample models.
#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error
#![allow(dead_code)]

use prost::Message;
use vouch_core::{
    Digest, EngineInfo, ExecProfile, ModelDigest, NodeKey, Receipt, Tensor, TensorData, TensorMap,
    Tier,
};
use vouch_zk::pb;

pub fn models_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

pub fn read_model(name: &str) -> Vec<u8> {
    std::fs::read(models_dir().join(format!("{name}.onnx"))).expect("sample model present")
}

pub fn read_tensors(name: &str, kind: &str) -> TensorMap {
    let s = std::fs::read_to_string(models_dir().join(format!("{name}.{kind}.json")))
        .expect("sample tensors present");
    serde_json::from_str(&s).expect("valid tensor json")
}

pub fn receipt(model: &[u8], inputs: &TensorMap, outputs: &TensorMap, request_id: &str) -> Receipt {
    Receipt {
        version: vouch_core::RECEIPT_VERSION,
        request_id: request_id.into(),
        model: ModelDigest::of_model_bytes(model),
        model_ref: None,
        input_digest: inputs.digest(),
        output_digest: outputs.digest(),
        engine: EngineInfo {
            name: "onnxruntime".into(),
            version: "1.22".into(),
            profile: ExecProfile {
                threads: 1,
                deterministic: true,
                batch: 1,
            },
        },
        config_digest: None,
        tiers: vec![Tier::Zk],
        node_key: NodeKey([3; 32]),
        issued_at: "2026-11-25T12:00:00.000Z".into(),
        payment: None,
    }
}

pub fn tensor(shape: &[u64], data: Vec<f32>) -> Tensor {
    Tensor::new(shape.to_vec(), TensorData::Float32(data)).expect("shape matches")
}

pub fn one(name: &str, t: Tensor) -> TensorMap {
    let mut m = TensorMap::new();
    m.insert(name, t);
    m
}

pub fn init(name: &str, dims: &[i64], data: Vec<f32>) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: 1,
        float_data: data,
        ..Default::default()
    }
}

pub fn node(
    op: &str,
    inputs: &[&str],
    outputs: &[&str],
    attrs: Vec<pb::AttributeProto>,
) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        name: format!("{op}_{}", outputs[0]),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute: attrs,
        ..Default::default()
    }
}

pub fn ints(name: &str, v: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: 7,
        ints: v.to_vec(),
        ..Default::default()
    }
}

pub fn int_attr(name: &str, v: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: 2,
        i: v,
        ..Default::default()
    }
}

pub fn float_attr(name: &str, v: f32) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: 1,
        f: v,
        ..Default::default()
    }
}

fn value_info(name: &str, dims: &[i64]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{Dimension, dimension::Value};
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: 1,
                shape: Some(pb::TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|&d| Dimension {
                            value: Some(Value::DimValue(d)),
                        })
                        .collect(),
                }),
            })),
        }),
    }
}

/// An opset-17 model with one input `x` and one output `y`.
pub fn model(
    nodes: Vec<pb::NodeProto>,
    inits: Vec<pb::TensorProto>,
    x: &[i64],
    y: &[i64],
) -> Vec<u8> {
    let g = pb::GraphProto {
        name: "t".into(),
        node: nodes,
        initializer: inits,
        input: vec![value_info("x", x)],
        output: vec![value_info("y", y)],
        ..Default::default()
    };
    let m = pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        graph: Some(g),
        ..Default::default()
    };
    m.encode_to_vec()
}

/// Deterministic pseudo-random floats in [-1, 1).
pub fn floats(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

pub fn digest(s: &str) -> Digest {
    Digest::of(s.as_bytes())
}

/// 1×8 → MatMul(8→4) → `op` (Sigmoid or Tanh): the model and its weight.
pub fn lookup_model(op: &str) -> (Vec<u8>, Vec<f32>) {
    let w = floats(8 * 4, 7);
    let m = model(
        vec![
            node("MatMul", &["x", "w"], &["h"], vec![]),
            node(op, &["h"], &["y"], vec![]),
        ],
        vec![init("w", &[8, 4], w.clone())],
        &[1, 8],
        &[1, 4],
    );
    (m, w)
}

/// 1×2×6×6 → Conv(2→3, 3×3, pad 1) → BatchNorm → Relu → MaxPool 2 → AveragePool 3 → Flatten →
/// Gemm(3→2).
pub fn conv_model() -> Vec<u8> {
    let cw = floats(3 * 2 * 9, 11);
    let nodes = vec![
        node(
            "Conv",
            &["x", "cw", "cb"],
            &["c"],
            vec![ints("kernel_shape", &[3, 3]), ints("pads", &[1, 1, 1, 1])],
        ),
        node(
            "BatchNormalization",
            &["c", "s", "b", "m", "v"],
            &["n"],
            vec![float_attr("epsilon", 1e-5)],
        ),
        node("Relu", &["n"], &["r"], vec![]),
        node(
            "MaxPool",
            &["r"],
            &["p"],
            vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])],
        ),
        node(
            "AveragePool",
            &["p"],
            &["a"],
            vec![ints("kernel_shape", &[3, 3]), ints("strides", &[3, 3])],
        ),
        node("Flatten", &["a"], &["f"], vec![]),
        node(
            "Gemm",
            &["f", "gw", "gb"],
            &["y"],
            vec![int_attr("transB", 1)],
        ),
    ];
    let inits = vec![
        init("cw", &[3, 2, 3, 3], cw),
        init("cb", &[3], vec![0.1, -0.1, 0.05]),
        init("s", &[3], vec![1.5, 0.5, 1.0]),
        init("b", &[3], vec![0.1, 0.2, -0.3]),
        init("m", &[3], vec![0.05, -0.02, 0.1]),
        init("v", &[3], vec![0.9, 1.1, 0.5]),
        init("gw", &[2, 3], floats(6, 13)),
        init("gb", &[2], vec![0.01, -0.02]),
    ];
    model(nodes, inits, &[1, 2, 6, 6], &[1, 2])
}

/// y = Relu(x·W + x) * 0.5 - 0.25 on 1×4: the model and W.
pub fn residual_model() -> (Vec<u8>, Vec<f32>) {
    let w = floats(16, 21);
    let nodes = vec![
        node("MatMul", &["x", "w"], &["h"], vec![]),
        node("Add", &["h", "x"], &["s"], vec![]),
        node("Relu", &["s"], &["r"], vec![]),
        node("Mul", &["r", "half"], &["m"], vec![]),
        node("Sub", &["m", "quarter"], &["y"], vec![]),
    ];
    let inits = vec![
        init("w", &[4, 4], w.clone()),
        init("half", &[], vec![0.5]),
        init("quarter", &[1], vec![0.25]),
    ];
    (model(nodes, inits, &[1, 4], &[1, 4]), w)
}

/// `MaxPool2d_stride_padding_dilation` from the ONNX backend tests (pytorch-converted), as its
/// `model.onnx` declares it: a 1000×1000 input, a 60×80 kernel dilated by 10, strides 10,
/// pads 10/20: 1 075 windows of up to 4 800 inputs each, in under 200 bytes.
pub fn maxpool_backend_test() -> Vec<u8> {
    model(
        vec![node(
            "MaxPool",
            &["x"],
            &["y"],
            vec![
                ints("dilations", &[10, 10]),
                ints("kernel_shape", &[60, 80]),
                ints("pads", &[10, 20, 10, 20]),
                ints("strides", &[10, 10]),
            ],
        )],
        vec![],
        &[1, 1, 1000, 1000],
        &[1, 1, 43, 25],
    )
}
