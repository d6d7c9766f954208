//! Hostile ONNX models, built byte for byte with ONNX's own protobuf schema (tract's copy of
//! `onnx.proto`). Shared by the engine tests (`crates/vouch-exec/tests/hostile.rs`) and the
//! end-to-end tests (`crates/vouch-cli/tests/hostile_models.rs`, which include this file by path).
#![allow(dead_code)] // each including test uses a subset

use prost::Message;
use tract_onnx::pb;

pub const FLOAT: i32 = 1;
pub const INT64: i32 = 7;
pub const BOOL: i32 = 9;

/// A value's declared type; `None` dims are free.
pub fn vi(name: &str, elem: i32, dims: &[Option<i64>]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{Dimension, dimension::Value as D};
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: elem,
                shape: Some(pb::TensorShapeProto {
                    dim: dims
                        .iter()
                        .enumerate()
                        .map(|(i, d)| Dimension {
                            value: Some(match d {
                                Some(n) => D::DimValue(*n),
                                None => D::DimParam(format!("{name}_{i}")),
                            }),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn node(
    op: &str,
    ins: &[&str],
    outs: &[&str],
    attrs: Vec<pb::AttributeProto>,
) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        name: format!("{op}_{}", outs.join("_")),
        input: ins.iter().map(|s| s.to_string()).collect(),
        output: outs.iter().map(|s| s.to_string()).collect(),
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

pub fn int(name: &str, v: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: 2,
        i: v,
        ..Default::default()
    }
}

pub fn tensor_attr(name: &str, t: pb::TensorProto) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: 4,
        t: Some(t),
        ..Default::default()
    }
}

pub fn graph_attr(name: &str, g: pb::GraphProto) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: 5,
        g: Some(g),
        ..Default::default()
    }
}

pub fn f32_tensor(name: &str, dims: &[i64], v: &[f32]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: FLOAT,
        float_data: v.to_vec(),
        ..Default::default()
    }
}

pub fn model(
    nodes: Vec<pb::NodeProto>,
    inputs: Vec<pb::ValueInfoProto>,
    outputs: Vec<pb::ValueInfoProto>,
    initializer: Vec<pb::TensorProto>,
) -> Vec<u8> {
    pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        graph: Some(pb::GraphProto {
            name: "hostile".into(),
            node: nodes,
            initializer,
            input: inputs,
            output: outputs,
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

/// `y = ConstantOfShape(s)`: the caller's `s` says how much to allocate.
pub fn constant_of_shape() -> Vec<u8> {
    model(
        vec![node(
            "ConstantOfShape",
            &["s"],
            &["y"],
            vec![tensor_attr("value", f32_tensor("v", &[1], &[1.0]))],
        )],
        vec![vi("s", INT64, &[Some(3)])],
        vec![vi("y", FLOAT, &[None, None, None])],
        vec![],
    )
}

/// `y = Range(0, n, 1)`.
pub fn range() -> Vec<u8> {
    model(
        vec![node("Range", &["a", "n", "d"], &["y"], vec![])],
        vec![
            vi("a", INT64, &[]),
            vi("n", INT64, &[]),
            vi("d", INT64, &[]),
        ],
        vec![vi("y", INT64, &[None])],
        vec![],
    )
}

/// `y = v + m` computed as a Loop of `m` iterations adding 1: the caller picks the trip count.
pub fn counting_loop() -> Vec<u8> {
    let body = pb::GraphProto {
        name: "body".into(),
        node: vec![
            node("Identity", &["cond_in"], &["cond_out"], vec![]),
            node(
                "Constant",
                &[],
                &["one"],
                vec![tensor_attr("value", f32_tensor("one", &[1], &[1.0]))],
            ),
            node("Add", &["v_in", "one"], &["v_out"], vec![]),
        ],
        input: vec![
            vi("i", INT64, &[]),
            vi("cond_in", BOOL, &[]),
            vi("v_in", FLOAT, &[Some(1)]),
        ],
        output: vec![vi("cond_out", BOOL, &[]), vi("v_out", FLOAT, &[Some(1)])],
        ..Default::default()
    };
    model(
        vec![node(
            "Loop",
            &["m", "keep_going", "v"],
            &["y"],
            vec![graph_attr("body", body)],
        )],
        vec![vi("m", INT64, &[]), vi("v", FLOAT, &[Some(1)])],
        vec![vi("y", FLOAT, &[Some(1)])],
        vec![pb::TensorProto {
            name: "keep_going".into(),
            data_type: BOOL,
            int32_data: vec![1],
            ..Default::default()
        }],
    )
}

/// `y = x − ReduceMean(x, axis 0)`: every row's answer depends on every other row.
pub fn minus_batch_mean() -> Vec<u8> {
    model(
        vec![
            node(
                "ReduceMean",
                &["x"],
                &["m"],
                vec![ints("axes", &[0]), int("keepdims", 1)],
            ),
            node("Sub", &["x", "m"], &["y"], vec![]),
        ],
        vec![vi("x", FLOAT, &[None, Some(4)])],
        vec![vi("y", FLOAT, &[None, Some(4)])],
        vec![],
    )
}

/// `y = Relu(x)` over a rank-3 input with every dim free.
pub fn relu3() -> Vec<u8> {
    model(
        vec![node("Relu", &["x"], &["y"], vec![])],
        vec![vi("x", FLOAT, &[None, None, None])],
        vec![vi("y", FLOAT, &[None, None, None])],
        vec![],
    )
}

/// `y = x + w` whose initializer `w` keeps its data in the external file `location`: an
/// engine that honoured it would read that file on the node (`admin.token`, `node.key`).
pub fn external_data(location: &str) -> Vec<u8> {
    let mut w = f32_tensor("w", &[1], &[]);
    w.float_data.clear();
    let mut bytes = model(
        vec![node("Add", &["x", "w"], &["y"], vec![])],
        vec![vi("x", FLOAT, &[Some(1)])],
        vec![vi("y", FLOAT, &[Some(1)])],
        vec![w],
    );
    // tract's schema leaves out `external_data` (13) and `data_location` (14): append them by
    // hand. Protobuf merges concatenated messages, so this adds them to initializer `w`.
    let entry = |field: u8, v: &[u8]| {
        let mut e = vec![(field << 3) | 2, v.len() as u8];
        e.extend_from_slice(v);
        e
    };
    let mut kv = entry(1, b"location");
    kv.extend(entry(2, location.as_bytes()));
    let mut tensor = entry(8, b"w");
    tensor.extend(entry(13, &kv));
    tensor.extend([14 << 3, 1]); // data_location = EXTERNAL
    let graph = entry(5, &tensor);
    bytes.extend(entry(7, &graph));
    bytes
}
