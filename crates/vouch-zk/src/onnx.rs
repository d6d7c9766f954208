//! ONNX protobuf → [`Graph`]. Reads the raw initializers itself (through the prost types in
//! [`crate::pb`]) because the circuit needs the exact weights, and names the first operator it cannot
//! prove so registration can say "zk: unavailable (operator X)".

use std::collections::HashMap;

use crate::pb;
use prost::Message;

use crate::error::ZkError;
use crate::graph::{Graph, Io, LutFn, Op, Sparse};

/// Largest tensor (elements) or model size we accept, so a hostile file cannot exhaust memory.
const MAX_ELEMENTS: usize = 1 << 26;

/// A tensor known at compile time (initializer or `Constant`).
#[derive(Clone, Debug)]
struct Const {
    dims: Vec<usize>,
    data: Vec<f64>,
}

/// A runtime value: its id in the graph and its current (batch-1) shape.
#[derive(Clone, Debug)]
struct Val {
    id: usize,
    shape: Vec<usize>,
}

#[derive(Clone, Debug)]
enum Ent {
    Const(Const),
    Val(Val),
}

/// Element count; saturates, so a hostile shape fails the size checks instead of wrapping past
/// them (or panicking on overflow in debug builds).
fn numel(d: &[usize]) -> usize {
    d.iter().fold(1, |n, &x| n.saturating_mul(x))
}

fn attr<'a>(n: &'a pb::NodeProto, name: &str) -> Option<&'a pb::AttributeProto> {
    n.attribute.iter().find(|a| a.name == name)
}

fn attr_i(n: &pb::NodeProto, name: &str, default: i64) -> i64 {
    attr(n, name).map(|a| a.i).unwrap_or(default)
}

fn attr_f(n: &pb::NodeProto, name: &str, default: f32) -> f32 {
    attr(n, name).map(|a| a.f).unwrap_or(default)
}

fn attr_ints(n: &pb::NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(n, name).map(|a| a.ints.clone())
}

fn tensor_to_const(t: &pb::TensorProto) -> Result<Const, ZkError> {
    let dims: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| {
            usize::try_from(d)
                .map_err(|_| ZkError::InvalidModel(format!("tensor {:?} has negative dim", t.name)))
        })
        .collect::<Result<_, _>>()?;
    let n = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= MAX_ELEMENTS);
    let n = n.ok_or_else(|| ZkError::InvalidModel(format!("tensor {:?} is too large", t.name)))?;
    if !t.external_data.is_empty() || t.data_location == Some(1) {
        return Err(ZkError::unsupported(
            "external data",
            format!("initializer {:?} is stored outside the model file", t.name),
        ));
    }
    let raw = &t.raw_data;
    let data: Vec<f64> = match t.data_type {
        1 => {
            if !raw.is_empty() {
                raw.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
                    .collect()
            } else {
                t.float_data.iter().map(|&x| x as f64).collect()
            }
        }
        11 => {
            if !raw.is_empty() {
                raw.chunks_exact(8)
                    .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect()
            } else {
                t.double_data.clone()
            }
        }
        7 => {
            if !raw.is_empty() {
                raw.chunks_exact(8)
                    .map(|c| {
                        i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f64
                    })
                    .collect()
            } else {
                t.int64_data.iter().map(|&x| x as f64).collect()
            }
        }
        6 => {
            if !raw.is_empty() {
                raw.chunks_exact(4)
                    .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
                    .collect()
            } else {
                t.int32_data.iter().map(|&x| x as f64).collect()
            }
        }
        other => {
            return Err(ZkError::unsupported(
                format!("tensor type {other}"),
                format!(
                    "initializer {:?}: only float32/float64/int32/int64 constants are supported",
                    t.name
                ),
            ));
        }
    };
    if data.len() != n {
        return Err(ZkError::InvalidModel(format!(
            "tensor {:?} declares {} elements but holds {}",
            t.name,
            n,
            data.len()
        )));
    }
    if data.iter().any(|x| !x.is_finite()) {
        return Err(ZkError::unsupported(
            "non-finite weight",
            format!("tensor {:?}", t.name),
        ));
    }
    Ok(Const { dims, data })
}

struct Builder {
    ents: HashMap<String, Ent>,
    value_len: Vec<usize>,
    ops: Vec<Op>,
}

impl Builder {
    fn new_val(&mut self, shape: Vec<usize>) -> Val {
        self.value_len.push(numel(&shape));
        Val {
            id: self.value_len.len() - 1,
            shape,
        }
    }

    fn get(&self, name: &str, node: &pb::NodeProto) -> Result<&Ent, ZkError> {
        self.ents.get(name).ok_or_else(|| {
            ZkError::InvalidModel(format!(
                "node {:?} ({}) reads undefined tensor {name:?}",
                node.name, node.op_type
            ))
        })
    }

    fn val(&self, name: &str, node: &pb::NodeProto) -> Result<Val, ZkError> {
        match self.get(name, node)? {
            Ent::Val(v) => Ok(v.clone()),
            Ent::Const(_) => Err(ZkError::unsupported(
                node.op_type.clone(),
                format!("input {name:?} is a constant where a runtime tensor is expected"),
            )),
        }
    }

    fn cnst(&self, name: &str, node: &pb::NodeProto) -> Result<Const, ZkError> {
        match self.get(name, node)? {
            Ent::Const(c) => Ok(c.clone()),
            Ent::Val(_) => Err(ZkError::unsupported(
                node.op_type.clone(),
                format!(
                    "input {name:?} must be a constant (weights computed at run time are not supported)"
                ),
            )),
        }
    }

    fn set(&mut self, name: &str, e: Ent) {
        self.ents.insert(name.to_string(), e);
    }

    fn push_linear(
        &mut self,
        node: &pb::NodeProto,
        input: &Val,
        out_shape: Vec<usize>,
        rows: Sparse,
        bias: Vec<f64>,
    ) {
        let out = self.new_val(out_shape);
        self.ops.push(Op::Linear {
            input: input.id,
            output: out.id,
            rows,
            bias,
            onnx_op: node.op_type.clone(),
        });
        self.set(&node.output[0], Ent::Val(out));
    }
}

/// Parses an ONNX model into the zk graph, or names the unsupported operator.
pub fn import(model_bytes: &[u8]) -> Result<Graph, ZkError> {
    let model = pb::ModelProto::decode(model_bytes)
        .map_err(|e| ZkError::InvalidModel(format!("not an ONNX protobuf: {e}")))?;
    let graph = model
        .graph
        .ok_or_else(|| ZkError::InvalidModel("model has no graph".into()))?;
    for o in &model.opset_import {
        if !(o.domain.is_empty() || o.domain == "ai.onnx") {
            return Err(ZkError::unsupported(
                format!("opset domain {}", o.domain),
                "",
            ));
        }
    }
    let params: usize = graph
        .initializer
        .iter()
        .filter(|t| t.data_type == 1 || t.data_type == 11)
        .map(|t| {
            t.dims
                .iter()
                .fold(1usize, |n, &d| n.saturating_mul(d.max(0) as usize))
        })
        .fold(0, usize::saturating_add);
    let mut b = Builder {
        ents: HashMap::new(),
        value_len: vec![],
        ops: vec![],
    };
    for t in &graph.initializer {
        let c = tensor_to_const(t)?;
        b.set(&t.name, Ent::Const(c));
    }
    let mut inputs = vec![];
    for vi in &graph.input {
        if b.ents.contains_key(&vi.name) {
            continue; // an initializer also listed as input (older exporters)
        }
        let Some(pb::type_proto::Value::TensorType(tt)) =
            vi.r#type.as_ref().and_then(|t| t.value.clone())
        else {
            return Err(ZkError::unsupported(
                "non-tensor input",
                format!("input {:?}", vi.name),
            ));
        };
        if tt.elem_type != 1 {
            return Err(ZkError::unsupported(
                format!("input type {}", tt.elem_type),
                format!("input {:?}: the zk tier proves float32 inputs", vi.name),
            ));
        }
        let dims = tt.shape.map(|s| s.dim).unwrap_or_default();
        let mut shape = vec![];
        for (i, d) in dims.iter().enumerate() {
            match &d.value {
                Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) if *v > 0 => {
                    shape.push(*v as usize)
                }
                _ if i == 0 => shape.push(1), // free batch dimension: proofs are per request, batch 1
                _ => {
                    return Err(ZkError::unsupported(
                        "dynamic shape",
                        format!("input {:?} dimension {i} is not fixed", vi.name),
                    ));
                }
            }
        }
        if numel(&shape) > MAX_ELEMENTS {
            return Err(ZkError::InvalidModel(format!(
                "input {:?} is too large",
                vi.name
            )));
        }
        let v = b.new_val(shape.clone());
        inputs.push(Io {
            name: vi.name.clone(),
            shape: shape.iter().map(|&d| d as u64).collect(),
            value: v.id,
        });
        b.set(&vi.name, Ent::Val(v));
    }
    if inputs.is_empty() {
        return Err(ZkError::InvalidModel("model has no runtime inputs".into()));
    }
    for node in &graph.node {
        if !(node.domain.is_empty() || node.domain == "ai.onnx") {
            return Err(ZkError::unsupported(
                format!("{}:{}", node.domain, node.op_type),
                "",
            ));
        }
        if node.output.is_empty() {
            return Err(ZkError::InvalidModel(format!(
                "node {:?} has no output",
                node.name
            )));
        }
        lower_node(&mut b, node)?;
    }
    let mut outputs = vec![];
    for vi in &graph.output {
        let v = match b.ents.get(&vi.name) {
            Some(Ent::Val(v)) => v.clone(),
            Some(Ent::Const(_)) => {
                return Err(ZkError::unsupported(
                    "constant output",
                    format!("output {:?}", vi.name),
                ));
            }
            None => {
                return Err(ZkError::InvalidModel(format!(
                    "output {:?} is never computed",
                    vi.name
                )));
            }
        };
        outputs.push(Io {
            name: vi.name.clone(),
            shape: v.shape.iter().map(|&d| d as u64).collect(),
            value: v.id,
        });
    }
    if outputs.is_empty() {
        return Err(ZkError::InvalidModel("model has no outputs".into()));
    }
    Ok(Graph {
        inputs,
        outputs,
        value_len: b.value_len,
        ops: b.ops,
        params,
    })
}

/// Broadcasts constant `c` (numpy rules) to `shape`, returning one value per output element.
fn broadcast(c: &Const, shape: &[usize], op: &str) -> Result<Vec<f64>, ZkError> {
    if c.dims.len() > shape.len() {
        return Err(ZkError::unsupported(
            op,
            "constant has more dimensions than the tensor",
        ));
    }
    let pad = shape.len() - c.dims.len();
    let cd: Vec<usize> = std::iter::repeat_n(1, pad)
        .chain(c.dims.iter().copied())
        .collect();
    for (a, b) in cd.iter().zip(shape) {
        if *a != 1 && a != b {
            return Err(ZkError::unsupported(
                op,
                format!(
                    "constant of shape {:?} does not broadcast to {shape:?}",
                    c.dims
                ),
            ));
        }
    }
    let n = numel(shape);
    let mut out = Vec::with_capacity(n);
    let mut idx = vec![0usize; shape.len()];
    for _ in 0..n {
        let mut off = 0;
        for (k, &i) in idx.iter().enumerate() {
            off = off * cd[k] + if cd[k] == 1 { 0 } else { i };
        }
        out.push(c.data[off]);
        for k in (0..shape.len()).rev() {
            idx[k] += 1;
            if idx[k] < shape[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    Ok(out)
}

fn diag(n: usize, a: &[f64]) -> Sparse {
    Sparse {
        ptr: (0..=n as u32).collect(),
        idx: (0..n as u32).collect(),
        w: a.to_vec(),
    }
}

/// Spatial attributes shared by Conv and the pools, for 2-D NCHW tensors.
struct Window {
    k: [usize; 2],
    stride: [usize; 2],
    pad: [usize; 4], // top, left, bottom, right
    dil: [usize; 2],
}

fn window(node: &pb::NodeProto, kernel: Option<[usize; 2]>) -> Result<Window, ZkError> {
    let op = node.op_type.as_str();
    if let Some(a) = attr(node, "auto_pad") {
        let s = String::from_utf8_lossy(&a.s);
        if !(s.is_empty() || s == "NOTSET" || s == "VALID") {
            return Err(ZkError::unsupported(op, format!("auto_pad={s}")));
        }
    }
    if attr_i(node, "ceil_mode", 0) != 0 {
        return Err(ZkError::unsupported(op, "ceil_mode=1"));
    }
    let two = |name: &str, d: usize| -> Result<[usize; 2], ZkError> {
        match attr_ints(node, name) {
            None => Ok([d, d]),
            Some(v) if v.len() == 2 && v.iter().all(|&x| (1..=1 << 16).contains(&x)) => {
                Ok([v[0] as usize, v[1] as usize])
            }
            Some(v) => Err(ZkError::unsupported(op, format!("{name}={v:?} (2-D only)"))),
        }
    };
    let k = match (attr_ints(node, "kernel_shape"), kernel) {
        (Some(v), _) if v.len() == 2 && v.iter().all(|&x| (1..=1 << 12).contains(&x)) => {
            [v[0] as usize, v[1] as usize]
        }
        (None, Some(k)) => k,
        (v, _) => {
            return Err(ZkError::unsupported(
                op,
                format!("kernel_shape={v:?} (2-D only)"),
            ));
        }
    };
    let pad = match attr_ints(node, "pads") {
        None => [0; 4],
        Some(v) if v.len() == 4 && v.iter().all(|&x| (0..=1 << 12).contains(&x)) => {
            [v[0] as usize, v[1] as usize, v[2] as usize, v[3] as usize]
        }
        Some(v) => return Err(ZkError::unsupported(op, format!("pads={v:?}"))),
    };
    Ok(Window {
        k,
        stride: two("strides", 1)?,
        pad,
        dil: two("dilations", 1)?,
    })
}

impl Window {
    fn out_hw(&self, h: usize, w: usize, op: &str) -> Result<(usize, usize), ZkError> {
        let eh = (self.k[0] - 1) * self.dil[0] + 1;
        let ew = (self.k[1] - 1) * self.dil[1] + 1;
        let (ph, pw) = (h + self.pad[0] + self.pad[2], w + self.pad[1] + self.pad[3]);
        if ph < eh || pw < ew {
            return Err(ZkError::InvalidModel(format!(
                "{op}: kernel larger than the padded input"
            )));
        }
        Ok((
            (ph - eh) / self.stride[0] + 1,
            (pw - ew) / self.stride[1] + 1,
        ))
    }

    /// Input positions (row, col) under output (oy, ox), with their kernel offsets; padding skipped.
    fn taps(&self, oy: usize, ox: usize, h: usize, w: usize) -> Vec<(usize, usize, usize, usize)> {
        let mut v = vec![];
        for ky in 0..self.k[0] {
            for kx in 0..self.k[1] {
                let iy = (oy * self.stride[0] + ky * self.dil[0]) as isize - self.pad[0] as isize;
                let ix = (ox * self.stride[1] + kx * self.dil[1]) as isize - self.pad[1] as isize;
                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                    v.push((iy as usize, ix as usize, ky, kx));
                }
            }
        }
        v
    }
}

/// Refuses an operator whose output × window would visit more than [`MAX_ELEMENTS`] taps, before
/// anything of that size is allocated or looped over.
fn check_work(op: &str, dims: &[usize]) -> Result<(), ZkError> {
    if numel(dims) > MAX_ELEMENTS {
        return Err(ZkError::InvalidModel(format!(
            "{op} is too large: {} output elements × window taps",
            dims.iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(" × ")
        )));
    }
    Ok(())
}

fn nchw(v: &Val, op: &str) -> Result<(usize, usize, usize), ZkError> {
    match v.shape.as_slice() {
        [1, c, h, w] => Ok((*c, *h, *w)),
        s => Err(ZkError::unsupported(
            op,
            format!("expects a 1×C×H×W tensor, got shape {s:?}"),
        )),
    }
}

fn lower_node(b: &mut Builder, node: &pb::NodeProto) -> Result<(), ZkError> {
    let op = node.op_type.as_str();
    let inp = |i: usize| -> Result<&str, ZkError> {
        node.input
            .get(i)
            .map(|s| s.as_str())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                ZkError::InvalidModel(format!("{op} node {:?} lacks input {i}", node.name))
            })
    };
    let out = node.output[0].clone();
    match op {
        "Constant" => {
            let t = attr(node, "value")
                .and_then(|a| a.t.as_ref())
                .ok_or_else(|| {
                    ZkError::unsupported("Constant", "only tensor-valued constants are supported")
                })?;
            let c = tensor_to_const(t)?;
            b.set(&out, Ent::Const(c));
        }
        "Identity" | "Dropout" => {
            let e = b.get(inp(0)?, node)?.clone();
            b.set(&out, e);
        }
        "Flatten" => {
            let v = b.val(inp(0)?, node)?;
            let r = v.shape.len() as i64;
            let mut axis = attr_i(node, "axis", 1);
            if axis < 0 {
                axis += r;
            }
            if !(0..=r).contains(&axis) {
                return Err(ZkError::InvalidModel(format!(
                    "Flatten axis {axis} out of range"
                )));
            }
            let a = axis as usize;
            let shape = vec![numel(&v.shape[..a]), numel(&v.shape[a..])];
            b.set(&out, Ent::Val(Val { id: v.id, shape }));
        }
        "Reshape" => {
            let v = b.val(inp(0)?, node)?;
            let s = b.cnst(inp(1)?, node)?;
            let mut shape: Vec<i64> = s.data.iter().map(|&x| x as i64).collect();
            let n = numel(&v.shape) as i64;
            for (i, d) in shape.iter_mut().enumerate() {
                if *d == 0 {
                    *d = *v
                        .shape
                        .get(i)
                        .ok_or_else(|| ZkError::InvalidModel("Reshape 0 out of range".into()))?
                        as i64;
                }
            }
            let known = shape
                .iter()
                .filter(|&&d| d != -1)
                .try_fold(1i64, |n, &d| n.checked_mul(d))
                .unwrap_or(0);
            let free = shape.iter().filter(|&&d| d == -1).count();
            if free > 1 || known <= 0 || shape.iter().any(|&d| d < -1) {
                return Err(ZkError::InvalidModel(format!("Reshape to {shape:?}")));
            }
            for d in shape.iter_mut() {
                if *d == -1 {
                    *d = n / known;
                }
            }
            let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
            if numel(&shape) != numel(&v.shape) {
                return Err(ZkError::InvalidModel(format!(
                    "Reshape {:?} → {shape:?} changes the size",
                    v.shape
                )));
            }
            b.set(&out, Ent::Val(Val { id: v.id, shape }));
        }
        "Gemm" | "MatMul" => {
            let x = b.val(inp(0)?, node)?;
            let wc = b.cnst(inp(1)?, node)?;
            let (alpha, beta) = if op == "Gemm" {
                (
                    attr_f(node, "alpha", 1.0) as f64,
                    attr_f(node, "beta", 1.0) as f64,
                )
            } else {
                (1.0, 1.0)
            };
            if op == "Gemm" && attr_i(node, "transA", 0) != 0 {
                return Err(ZkError::unsupported("Gemm", "transA=1"));
            }
            let trans_b = op == "Gemm" && attr_i(node, "transB", 0) != 0;
            if wc.dims.len() != 2 {
                return Err(ZkError::unsupported(
                    op,
                    format!("weight of rank {} (2-D weights only)", wc.dims.len()),
                ));
            }
            if wc.dims.contains(&0) {
                return Err(ZkError::InvalidModel(format!(
                    "{op} weight {:?} has an empty dimension",
                    wc.dims
                )));
            }
            let (k, n) = if trans_b {
                (wc.dims[1], wc.dims[0])
            } else {
                (wc.dims[0], wc.dims[1])
            };
            let rows_in = numel(&x.shape) / k.max(1);
            if x.shape.last() != Some(&k) || rows_in != 1 {
                return Err(ZkError::unsupported(
                    op,
                    format!(
                        "input shape {:?} with weight {:?} (batch-1 vectors only)",
                        x.shape, wc.dims
                    ),
                ));
            }
            let mut rows = Sparse {
                ptr: vec![0],
                idx: vec![],
                w: vec![],
            };
            for i in 0..n {
                for j in 0..k {
                    let w = if trans_b {
                        wc.data[i * k + j]
                    } else {
                        wc.data[j * n + i]
                    } * alpha;
                    if w != 0.0 {
                        rows.idx.push(j as u32);
                        rows.w.push(w);
                    }
                }
                rows.ptr.push(rows.idx.len() as u32);
            }
            let bias = match node.input.get(2).filter(|s| !s.is_empty()) {
                Some(name) if op == "Gemm" => broadcast(&b.cnst(name, node)?, &[1, n], op)?
                    .iter()
                    .map(|x| x * beta)
                    .collect(),
                _ => vec![0.0; n],
            };
            let mut shape = x.shape.clone();
            if let Some(l) = shape.last_mut() {
                *l = n;
            }
            b.push_linear(node, &x, shape, rows, bias);
        }
        "Conv" => {
            let x = b.val(inp(0)?, node)?;
            let (c, h, w) = nchw(&x, op)?;
            let wc = b.cnst(inp(1)?, node)?;
            if wc.dims.len() != 4 {
                return Err(ZkError::unsupported(op, "2-D convolutions only"));
            }
            let (m, cg, kh, kw) = (wc.dims[0], wc.dims[1], wc.dims[2], wc.dims[3]);
            if wc.dims.contains(&0) {
                return Err(ZkError::InvalidModel(format!(
                    "Conv weight {:?} has an empty dimension",
                    wc.dims
                )));
            }
            let group = attr_i(node, "group", 1).max(1) as usize;
            if cg.checked_mul(group) != Some(c) || m % group != 0 {
                return Err(ZkError::InvalidModel(format!(
                    "Conv channels: input {c}, weight {:?}, group {group}",
                    wc.dims
                )));
            }
            let win = window(node, Some([kh, kw]))?;
            if win.k != [kh, kw] {
                return Err(ZkError::InvalidModel(
                    "Conv kernel_shape disagrees with the weight".into(),
                ));
            }
            let (oh, ow) = win.out_hw(h, w, op)?;
            // Every tap is visited (padding too) before the sparse rows' size is known.
            check_work(op, &[m, oh, ow, cg, kh, kw])?;
            let bias = match node.input.get(2).filter(|s| !s.is_empty()) {
                Some(name) => {
                    let bc = b.cnst(name, node)?;
                    if bc.data.len() != m {
                        return Err(ZkError::InvalidModel("Conv bias length".into()));
                    }
                    bc.data
                        .iter()
                        .flat_map(|&v| std::iter::repeat_n(v, oh * ow))
                        .collect()
                }
                None => vec![0.0; m * oh * ow],
            };
            let mg = m / group;
            let mut rows = Sparse {
                ptr: vec![0],
                idx: vec![],
                w: vec![],
            };
            for o in 0..m {
                let g = o / mg;
                for oy in 0..oh {
                    for ox in 0..ow {
                        let taps = win.taps(oy, ox, h, w);
                        for ci in 0..cg {
                            let cin = g * cg + ci;
                            for &(iy, ix, ky, kx) in &taps {
                                let wv = wc.data[((o * cg + ci) * kh + ky) * kw + kx];
                                if wv != 0.0 {
                                    rows.idx.push(((cin * h + iy) * w + ix) as u32);
                                    rows.w.push(wv);
                                }
                            }
                        }
                        rows.ptr.push(rows.idx.len() as u32);
                    }
                }
            }
            if rows.idx.len() > MAX_ELEMENTS {
                return Err(ZkError::InvalidModel("Conv too large".into()));
            }
            sort_rows(&mut rows);
            b.push_linear(node, &x, vec![1, m, oh, ow], rows, bias);
        }
        "MaxPool" | "AveragePool" => {
            let x = b.val(inp(0)?, node)?;
            let (c, h, w) = nchw(&x, op)?;
            if node.output.len() > 1 && !node.output[1].is_empty() {
                return Err(ZkError::unsupported(op, "the Indices output"));
            }
            if attr_i(node, "storage_order", 0) != 0 {
                return Err(ZkError::unsupported(op, "storage_order=1"));
            }
            let win = window(node, None)?;
            let (oh, ow) = win.out_hw(h, w, op)?;
            check_work(op, &[c, oh, ow, win.k[0], win.k[1]])?;
            let include_pad = attr_i(node, "count_include_pad", 0) != 0;
            let mut rows = Sparse {
                ptr: vec![0],
                idx: vec![],
                w: vec![],
            };
            for ch in 0..c {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let taps = win.taps(oy, ox, h, w);
                        if taps.is_empty() {
                            return Err(ZkError::unsupported(
                                op,
                                "a window lying entirely in the padding",
                            ));
                        }
                        let denom = if include_pad {
                            (win.k[0] * win.k[1]) as f64
                        } else {
                            taps.len() as f64
                        };
                        for &(iy, ix, _, _) in &taps {
                            rows.idx.push(((ch * h + iy) * w + ix) as u32);
                            rows.w.push(1.0 / denom);
                        }
                        rows.ptr.push(rows.idx.len() as u32);
                    }
                }
            }
            sort_rows(&mut rows);
            let shape = vec![1, c, oh, ow];
            if op == "MaxPool" {
                let o = b.new_val(shape);
                b.ops.push(Op::MaxPool {
                    input: x.id,
                    output: o.id,
                    windows: rows,
                });
                b.set(&out, Ent::Val(o));
            } else {
                b.push_linear(node, &x, shape, rows, vec![0.0; c * oh * ow]);
            }
        }
        "GlobalAveragePool" => {
            let x = b.val(inp(0)?, node)?;
            let (c, h, w) = nchw(&x, op)?;
            let mut rows = Sparse {
                ptr: vec![0],
                idx: vec![],
                w: vec![],
            };
            for ch in 0..c {
                for i in 0..h * w {
                    rows.idx.push((ch * h * w + i) as u32);
                    rows.w.push(1.0 / (h * w) as f64);
                }
                rows.ptr.push(rows.idx.len() as u32);
            }
            b.push_linear(node, &x, vec![1, c, 1, 1], rows, vec![0.0; c]);
        }
        "BatchNormalization" => {
            let x = b.val(inp(0)?, node)?;
            if x.shape.len() < 2 || x.shape[0] != 1 {
                return Err(ZkError::unsupported(
                    op,
                    format!("input shape {:?}", x.shape),
                ));
            }
            if node.output.len() > 1 && node.output[1..].iter().any(|s| !s.is_empty()) {
                return Err(ZkError::unsupported(op, "training mode outputs"));
            }
            let c = x.shape[1];
            let [scale, bias, mean, var] =
                [1, 2, 3, 4].map(|i| inp(i).and_then(|n| b.cnst(n, node)).map(|k| k.data));
            let (scale, bias, mean, var) = (scale?, bias?, mean?, var?);
            if [&scale, &bias, &mean, &var].iter().any(|v| v.len() != c) {
                return Err(ZkError::InvalidModel(
                    "BatchNormalization parameter lengths".into(),
                ));
            }
            let eps = attr_f(node, "epsilon", 1e-5) as f64;
            let per = numel(&x.shape[2..]);
            let mut a = Vec::with_capacity(c * per);
            let mut bb = Vec::with_capacity(c * per);
            for ch in 0..c {
                let s = scale[ch] / (var[ch] + eps).sqrt();
                for _ in 0..per {
                    a.push(s);
                    bb.push(bias[ch] - mean[ch] * s);
                }
            }
            let n = numel(&x.shape);
            b.push_linear(node, &x, x.shape.clone(), diag(n, &a), bb);
        }
        "Add" | "Sub" | "Mul" | "Div" => {
            let e0 = b.get(inp(0)?, node)?.clone();
            let e1 = b.get(inp(1)?, node)?.clone();
            match (e0, e1) {
                (Ent::Val(x), Ent::Val(y)) if op == "Add" => {
                    if x.shape != y.shape {
                        return Err(ZkError::unsupported(
                            op,
                            format!(
                                "broadcasting two runtime tensors {:?} + {:?}",
                                x.shape, y.shape
                            ),
                        ));
                    }
                    let o = b.new_val(x.shape.clone());
                    b.ops.push(Op::Add {
                        a: x.id,
                        b: y.id,
                        output: o.id,
                    });
                    b.set(&out, Ent::Val(o));
                }
                (Ent::Val(x), Ent::Const(k)) | (Ent::Const(k), Ent::Val(x))
                    if op == "Add"
                        || op == "Mul"
                        || matches!(b.get(inp(0)?, node)?, Ent::Val(_)) =>
                {
                    let kb = broadcast(&k, &x.shape, op)?;
                    let n = numel(&x.shape);
                    let (a, bias): (Vec<f64>, Vec<f64>) = match op {
                        "Add" => (vec![1.0; n], kb),
                        "Sub" => (vec![1.0; n], kb.iter().map(|v| -v).collect()),
                        "Mul" => (kb, vec![0.0; n]),
                        _ => {
                            if kb.contains(&0.0) {
                                return Err(ZkError::InvalidModel("Div by zero constant".into()));
                            }
                            (kb.iter().map(|v| 1.0 / v).collect(), vec![0.0; n])
                        }
                    };
                    b.push_linear(node, &x, x.shape.clone(), diag(n, &a), bias);
                }
                (Ent::Const(_), Ent::Const(_)) => {
                    return Err(ZkError::unsupported(
                        op,
                        "constant folding of two constants",
                    ));
                }
                _ => return Err(ZkError::unsupported(op, "this operand combination")),
            }
        }
        "Relu" | "Sigmoid" | "Tanh" => {
            let x = b.val(inp(0)?, node)?;
            let o = b.new_val(x.shape.clone());
            b.ops.push(match op {
                "Relu" => Op::Relu {
                    input: x.id,
                    output: o.id,
                },
                "Sigmoid" => Op::Lut {
                    input: x.id,
                    output: o.id,
                    f: LutFn::Sigmoid,
                },
                _ => Op::Lut {
                    input: x.id,
                    output: o.id,
                    f: LutFn::Tanh,
                },
            });
            b.set(&out, Ent::Val(o));
        }
        other => return Err(ZkError::unsupported(other, "")),
    }
    Ok(())
}

/// Sorts each row's entries by input index (the circuit emits linear combinations in order).
fn sort_rows(s: &mut Sparse) {
    for i in 0..s.rows() {
        let (a, b) = (s.ptr[i] as usize, s.ptr[i + 1] as usize);
        let mut pairs: Vec<(u32, f64)> = s.idx[a..b]
            .iter()
            .copied()
            .zip(s.w[a..b].iter().copied())
            .collect();
        pairs.sort_by_key(|p| p.0);
        for (k, (j, w)) in pairs.into_iter().enumerate() {
            s.idx[a + k] = j;
            s.w[a + k] = w;
        }
    }
}

/// Folds elementwise affine maps into the linear operator that feeds them, when that operator's
/// output has no other reader (BatchNorm after Conv, a Mul/Add after Gemm): one rescale fewer.
pub fn fold_affine(g: &mut Graph) {
    loop {
        let mut readers = vec![0usize; g.value_len.len()];
        for op in &g.ops {
            for i in op.inputs() {
                readers[i] += 1;
            }
        }
        for io in &g.outputs {
            readers[io.value] += 1;
        }
        let mut done = true;
        for k in 0..g.ops.len() {
            let Op::Linear { input, rows, .. } = &g.ops[k] else {
                continue;
            };
            // Elementwise: one entry per row on its own index, as many rows as inputs.
            if !rows.is_diagonal() || rows.rows() != g.value_len[*input] || readers[*input] != 1 {
                continue;
            }
            let src = *input;
            let Some(p) = g
                .ops
                .iter()
                .position(|o| matches!(o, Op::Linear { output, .. } if *output == src))
            else {
                continue;
            };
            if g.inputs.iter().any(|io| io.value == src) {
                continue;
            }
            let Op::Linear {
                rows: d,
                bias: db,
                output: dout,
                ..
            } = g.ops[k].clone()
            else {
                continue;
            };
            if let Op::Linear {
                rows, bias, output, ..
            } = &mut g.ops[p]
            {
                for i in 0..rows.rows() {
                    let s = d.w[i];
                    let (a, e) = (rows.ptr[i] as usize, rows.ptr[i + 1] as usize);
                    for w in &mut rows.w[a..e] {
                        *w *= s;
                    }
                    bias[i] = bias[i] * s + db[i];
                }
                *output = dout;
            }
            g.ops.remove(k);
            done = false;
            break;
        }
        if done {
            return;
        }
    }
}
