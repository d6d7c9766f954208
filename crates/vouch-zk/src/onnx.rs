//! ONNX protobuf → [`Graph`]. Reads the raw initializers itself (through the prost types in
//! [`crate::pb`]) because the circuit needs the exact weights, and names the first operator it cannot
//! prove so registration can say "zk: unavailable (operator X)".

use std::collections::HashMap;

use crate::pb;
use prost::Message;

use crate::error::ZkError;
use crate::graph::{Graph, Io, LutFn, Op, Sparse};
use crate::limits::Deadline;

/// Largest tensor (elements), or sparse operator (entries), we build, so a hostile file cannot
/// exhaust memory: checked before each allocation. Analysis refuses anything near it earlier,
/// from the size estimate ([`crate::size`], `Limits::max_tensor_elements`).
const MAX_ELEMENTS: usize = crate::limits::DEFAULT_MAX_TENSOR_ELEMENTS as usize;

/// A tensor known at compile time (initializer or `Constant`).
#[derive(Clone, Debug)]
pub(crate) struct Const {
    pub dims: Vec<usize>,
    pub data: Vec<f64>,
}

/// A runtime value: its id in the graph and its current (batch-1) shape.
#[derive(Clone, Debug)]
pub(crate) struct Val {
    pub id: usize,
    pub shape: Vec<usize>,
}

/// What a tensor name stands for while lowering.
#[derive(Clone, Debug)]
pub(crate) enum Ent {
    Const(Const),
    Val(Val),
}

/// The tensors named so far, looked up with the importer's errors.
pub(crate) trait Names {
    fn ents(&self) -> &HashMap<String, Ent>;

    fn get(&self, name: &str, node: &pb::NodeProto) -> Result<&Ent, ZkError> {
        self.ents()
            .get(name)
            .ok_or_else(|| undefined_tensor(name, node))
    }

    fn val(&self, name: &str, node: &pb::NodeProto) -> Result<Val, ZkError> {
        match self.get(name, node)? {
            Ent::Val(v) => Ok(v.clone()),
            Ent::Const(_) => Err(constant_not_runtime(name, node)),
        }
    }

    fn cnst(&self, name: &str, node: &pb::NodeProto) -> Result<Const, ZkError> {
        match self.get(name, node)? {
            Ent::Const(c) => Ok(c.clone()),
            Ent::Val(_) => Err(runtime_not_constant(name, node)),
        }
    }

    /// The runtime value a graph output names.
    fn output(&self, vi: &pb::ValueInfoProto) -> Result<Val, ZkError> {
        match self.ents().get(&vi.name) {
            Some(Ent::Val(v)) => Ok(v.clone()),
            Some(Ent::Const(_)) => Err(ZkError::unsupported(
                "constant output",
                format!("output {:?}", vi.name),
            )),
            None => Err(ZkError::InvalidModel(format!(
                "output {:?} is never computed",
                vi.name
            ))),
        }
    }
}

/// Element count; saturates, so a hostile shape fails the size checks instead of wrapping past
/// them (or panicking on overflow in debug builds).
fn numel(d: &[usize]) -> usize {
    d.iter().fold(1, |n, &x| n.saturating_mul(x))
}

/// The product of `dims`, refused (before anything that size is allocated) when it overflows or
/// exceeds the importer's cap.
fn checked_len(dims: &[usize], what: impl Fn() -> String) -> Result<usize, ZkError> {
    dims.iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= MAX_ELEMENTS)
        .ok_or_else(|| {
            ZkError::OverLimit(format!(
                "{} exceeds this node's limit of {MAX_ELEMENTS} elements",
                what()
            ))
        })
}

pub(crate) fn attr<'a>(n: &'a pb::NodeProto, name: &str) -> Option<&'a pb::AttributeProto> {
    n.attribute.iter().find(|a| a.name == name)
}

pub(crate) fn attr_i(n: &pb::NodeProto, name: &str, default: i64) -> i64 {
    attr(n, name).map(|a| a.i).unwrap_or(default)
}

fn attr_f(n: &pb::NodeProto, name: &str, default: f32) -> f32 {
    attr(n, name).map(|a| a.f).unwrap_or(default)
}

pub(crate) fn attr_ints(n: &pb::NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(n, name).map(|a| a.ints.clone())
}

pub(crate) fn tensor_to_const(t: &pb::TensorProto) -> Result<Const, ZkError> {
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

impl Names for Builder {
    fn ents(&self) -> &HashMap<String, Ent> {
        &self.ents
    }
}

impl Builder {
    fn new_val(&mut self, shape: Vec<usize>) -> Result<Val, ZkError> {
        let n = checked_len(&shape, || format!("a tensor of shape {shape:?}"))?;
        self.value_len.push(n);
        Ok(Val {
            id: self.value_len.len() - 1,
            shape,
        })
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
    ) -> Result<(), ZkError> {
        let out = self.new_val(out_shape)?;
        self.ops.push(Op::Linear {
            input: input.id,
            output: out.id,
            rows,
            bias,
            onnx_op: node.op_type.clone(),
        });
        self.set(&node.output[0], Ent::Val(out));
        Ok(())
    }
}

/// The model's graph, from a protobuf in an opset domain the zk tier reads.
pub(crate) fn decode(model_bytes: &[u8]) -> Result<pb::GraphProto, ZkError> {
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
    Ok(graph)
}

/// A graph input's batch-1 shape: float32, every dimension fixed but the first.
pub(crate) fn input_shape(vi: &pb::ValueInfoProto) -> Result<Vec<usize>, ZkError> {
    let Some(pb::type_proto::Value::TensorType(tt)) =
        vi.r#type.as_ref().and_then(|t| t.value.as_ref())
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
    let dims = tt
        .shape
        .as_ref()
        .map(|s| s.dim.as_slice())
        .unwrap_or_default();
    let mut shape = vec![];
    for (i, d) in dims.iter().enumerate() {
        match &d.value {
            Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) if *v > 0 => {
                shape.push(usize::try_from(*v).unwrap_or(usize::MAX))
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
    Ok(shape)
}

/// A node in a domain the zk tier reads, with an output.
pub(crate) fn check_node(node: &pb::NodeProto) -> Result<(), ZkError> {
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
    Ok(())
}

/// Parses an ONNX model into the zk graph, or names the unsupported operator.
pub fn import(model_bytes: &[u8]) -> Result<Graph, ZkError> {
    import_until(model_bytes, &Deadline::none())
}

/// [`import`], giving up between operators once `deadline` has passed.
pub fn import_until(model_bytes: &[u8], deadline: &Deadline) -> Result<Graph, ZkError> {
    let graph = decode(model_bytes)?;
    let params: usize = graph
        .initializer
        .iter()
        .filter(|t| t.data_type == 1 || t.data_type == 11)
        .map(|t| {
            t.dims
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d.max(0) as usize))
                .unwrap_or(usize::MAX)
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
        let shape = input_shape(vi)?;
        checked_len(&shape, || format!("input {:?} of shape {shape:?}", vi.name))?;
        let v = b.new_val(shape.clone())?;
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
        check_node(node)?;
        deadline.check()?;
        lower_node(&mut b, node)?;
    }
    let mut outputs = vec![];
    for vi in &graph.output {
        let v = b.output(vi)?;
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
pub(crate) struct Window {
    pub k: [usize; 2],
    pub stride: [usize; 2],
    pub pad: [usize; 4], // top, left, bottom, right
    pub dil: [usize; 2],
}

/// Along one spatial axis: how many kernel taps of the output positions fall inside the input
/// (padding skipped), counted in O(outputs) without listing them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct AxisTaps {
    /// Taps summed over the output positions.
    pub total: u64,
    /// Output positions with no tap inside the input.
    pub empty: u64,
    /// Output positions with exactly one.
    pub single: u64,
}

pub(crate) fn window(node: &pb::NodeProto, kernel: Option<[usize; 2]>) -> Result<Window, ZkError> {
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
        (None, Some(k)) if k.contains(&0) => {
            return Err(ZkError::InvalidModel(format!(
                "{op} weight has an empty kernel dimension {k:?}"
            )));
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
    pub(crate) fn out_hw(&self, h: usize, w: usize, op: &str) -> Result<(usize, usize), ZkError> {
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

    /// Taps along axis `a` (0 rows, 1 columns) of an input `size` long with `out` output
    /// positions: what the windows of [`Window::taps`] hold, counted without building them.
    pub(crate) fn axis_taps(&self, a: usize, size: usize, out: usize) -> AxisTaps {
        let (k, s, d, p) = (
            self.k[a] as i128,
            self.stride[a] as i128,
            self.dil[a] as i128,
            self.pad[a] as i128,
        );
        let mut t = AxisTaps::default();
        for o in 0..out as i128 {
            // Taps ky with 0 <= o·s + ky·d - p < size.
            let base = o * s - p;
            let lo = if base >= 0 { 0 } else { (-base + d - 1) / d };
            let hi = if size as i128 > base {
                (size as i128 - base + d - 1) / d
            } else {
                0
            };
            let n = (hi.min(k) - lo).max(0) as u64;
            t.total = t.total.saturating_add(n);
            t.empty += u64::from(n == 0);
            t.single += u64::from(n == 1);
        }
        t
    }

    /// Whether the windows along axis `a` read every input position; `None` when finding out
    /// would take more than `max_work` steps.
    #[cfg(feature = "prover")]
    pub(crate) fn axis_covers(
        &self,
        a: usize,
        size: usize,
        out: usize,
        max_work: u64,
    ) -> Option<bool> {
        if (out as u64).saturating_mul(self.k[a] as u64) > max_work || size as u64 > max_work {
            return None;
        }
        let mut seen = vec![false; size];
        for o in 0..out {
            for ky in 0..self.k[a] {
                let i = (o * self.stride[a] + ky * self.dil[a]) as isize - self.pad[a] as isize;
                if i >= 0 && (i as usize) < size {
                    seen[i as usize] = true;
                }
            }
        }
        Some(seen.into_iter().all(|s| s))
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

pub(crate) fn nchw(shape: &[usize], op: &str) -> Result<(usize, usize, usize), ZkError> {
    match shape {
        [1, c, h, w] => Ok((*c, *h, *w)),
        s => Err(ZkError::unsupported(
            op,
            format!("expects a 1×C×H×W tensor, got shape {s:?}"),
        )),
    }
}

/// Input `i` of `node`, by name.
pub(crate) fn input_name(node: &pb::NodeProto, i: usize) -> Result<&str, ZkError> {
    node.input
        .get(i)
        .map(|s| s.as_str())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ZkError::InvalidModel(format!(
                "{} node {:?} lacks input {i}",
                node.op_type, node.name
            ))
        })
}

fn undefined_tensor(name: &str, node: &pb::NodeProto) -> ZkError {
    ZkError::InvalidModel(format!(
        "node {:?} ({}) reads undefined tensor {name:?}",
        node.name, node.op_type
    ))
}

fn constant_not_runtime(name: &str, node: &pb::NodeProto) -> ZkError {
    ZkError::unsupported(
        node.op_type.clone(),
        format!("input {name:?} is a constant where a runtime tensor is expected"),
    )
}

fn runtime_not_constant(name: &str, node: &pb::NodeProto) -> ZkError {
    ZkError::unsupported(
        node.op_type.clone(),
        format!(
            "input {name:?} must be a constant (weights computed at run time are not supported)"
        ),
    )
}

/// `Constant`'s tensor.
pub(crate) fn constant_value(node: &pb::NodeProto) -> Result<&pb::TensorProto, ZkError> {
    attr(node, "value")
        .and_then(|a| a.t.as_ref())
        .ok_or_else(|| {
            ZkError::unsupported("Constant", "only tensor-valued constants are supported")
        })
}

/// `Flatten`'s output shape.
pub(crate) fn flatten_shape(node: &pb::NodeProto, shape: &[usize]) -> Result<Vec<usize>, ZkError> {
    let r = shape.len() as i64;
    let mut axis = attr_i(node, "axis", 1);
    if axis < 0 {
        axis = axis.saturating_add(r);
    }
    if !(0..=r).contains(&axis) {
        return Err(ZkError::InvalidModel(format!(
            "Flatten axis {axis} out of range"
        )));
    }
    let a = axis as usize;
    Ok(vec![numel(&shape[..a]), numel(&shape[a..])])
}

/// `Reshape`'s output shape for the target `target` (0 copies a dimension, one -1 is inferred).
pub(crate) fn reshape_shape(target: &[f64], shape: &[usize]) -> Result<Vec<usize>, ZkError> {
    let mut to: Vec<i64> = target.iter().map(|&x| x as i64).collect();
    let n = numel(shape) as i64;
    for (i, d) in to.iter_mut().enumerate() {
        if *d == 0 {
            *d = *shape
                .get(i)
                .ok_or_else(|| ZkError::InvalidModel("Reshape 0 out of range".into()))?
                as i64;
        }
    }
    let known: i64 = to
        .iter()
        .filter(|&&d| d != -1)
        .try_fold(1i64, |a, &d| a.checked_mul(d))
        .unwrap_or(0);
    let free = to.iter().filter(|&&d| d == -1).count();
    if free > 1 || known <= 0 || to.iter().any(|&d| d < -1) {
        return Err(ZkError::InvalidModel(format!("Reshape to {to:?}")));
    }
    let to: Vec<usize> = to
        .iter()
        .map(|&d| if d == -1 { n / known } else { d } as usize)
        .collect();
    if to.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) != Some(numel(shape)) {
        return Err(ZkError::InvalidModel(format!(
            "Reshape {shape:?} → {to:?} changes the size"
        )));
    }
    Ok(to)
}

/// Gemm/MatMul of a batch-1 vector `x` by a 2-D constant `w`: (inputs, outputs, transB).
pub(crate) fn dense_dims(
    node: &pb::NodeProto,
    x: &[usize],
    w: &[usize],
) -> Result<(usize, usize, bool), ZkError> {
    let op = node.op_type.as_str();
    if op == "Gemm" && attr_i(node, "transA", 0) != 0 {
        return Err(ZkError::unsupported("Gemm", "transA=1"));
    }
    let trans_b = op == "Gemm" && attr_i(node, "transB", 0) != 0;
    if w.len() != 2 {
        return Err(ZkError::unsupported(
            op,
            format!("weight of rank {} (2-D weights only)", w.len()),
        ));
    }
    if w.contains(&0) {
        return Err(ZkError::InvalidModel(format!(
            "{op} weight {w:?} has an empty dimension"
        )));
    }
    let (k, n) = if trans_b { (w[1], w[0]) } else { (w[0], w[1]) };
    let rows_in = numel(x) / k.max(1);
    if x.last() != Some(&k) || rows_in != 1 {
        return Err(ZkError::unsupported(
            op,
            format!("input shape {x:?} with weight {w:?} (batch-1 vectors only)"),
        ));
    }
    Ok((k, n, trans_b))
}

/// A 2-D convolution's geometry.
pub(crate) struct ConvGeometry {
    pub h: usize,
    pub w: usize,
    pub m: usize,
    pub cg: usize,
    pub group: usize,
    pub win: Window,
    pub oh: usize,
    pub ow: usize,
}

/// Conv of the 1×C×H×W `x` by the constant weight of dimensions `wd`.
pub(crate) fn conv_geometry(
    node: &pb::NodeProto,
    x: &[usize],
    wd: &[usize],
) -> Result<ConvGeometry, ZkError> {
    let op = node.op_type.as_str();
    let (c, h, w) = nchw(x, op)?;
    if wd.len() != 4 {
        return Err(ZkError::unsupported(op, "2-D convolutions only"));
    }
    let (m, cg, kh, kw) = (wd[0], wd[1], wd[2], wd[3]);
    let group = attr_i(node, "group", 1).max(1) as usize;
    if cg.checked_mul(group) != Some(c) || m % group != 0 {
        return Err(ZkError::InvalidModel(format!(
            "Conv channels: input {c}, weight {wd:?}, group {group}"
        )));
    }
    let win = window(node, Some([kh, kw]))?;
    if win.k != [kh, kw] {
        return Err(ZkError::InvalidModel(
            "Conv kernel_shape disagrees with the weight".into(),
        ));
    }
    let (oh, ow) = win.out_hw(h, w, op)?;
    Ok(ConvGeometry {
        h,
        w,
        m,
        cg,
        group,
        win,
        oh,
        ow,
    })
}

/// MaxPool/AveragePool of the 1×C×H×W `x`: (C, H, W, window, output H, output W).
pub(crate) fn pool_geometry(
    node: &pb::NodeProto,
    x: &[usize],
) -> Result<(usize, usize, usize, Window, usize, usize), ZkError> {
    let op = node.op_type.as_str();
    let (c, h, w) = nchw(x, op)?;
    if node.output.len() > 1 && !node.output[1].is_empty() {
        return Err(ZkError::unsupported(op, "the Indices output"));
    }
    if attr_i(node, "storage_order", 0) != 0 {
        return Err(ZkError::unsupported(op, "storage_order=1"));
    }
    let win = window(node, None)?;
    let (oh, ow) = win.out_hw(h, w, op)?;
    Ok((c, h, w, win, oh, ow))
}

/// What BatchNormalization needs of its input and outputs.
pub(crate) fn check_batchnorm(node: &pb::NodeProto, x: &[usize]) -> Result<(), ZkError> {
    let op = node.op_type.as_str();
    if x.len() < 2 || x[0] != 1 {
        return Err(ZkError::unsupported(op, format!("input shape {x:?}")));
    }
    if node.output.len() > 1 && node.output[1..].iter().any(|s| !s.is_empty()) {
        return Err(ZkError::unsupported(op, "training mode outputs"));
    }
    Ok(())
}

/// How Add/Sub/Mul/Div combine their operands.
pub(crate) enum Arith {
    /// Add of two runtime tensors of the same shape.
    Sum,
    /// An elementwise affine map of the runtime operand (the other is a constant).
    Affine,
}

/// Classifies an Add/Sub/Mul/Div by whether each operand is a runtime tensor (`shape`) or a
/// constant (`None`).
pub(crate) fn arith_kind(
    op: &str,
    a: Option<&[usize]>,
    b: Option<&[usize]>,
) -> Result<Arith, ZkError> {
    match (a, b) {
        (Some(x), Some(y)) if op == "Add" => {
            if x != y {
                return Err(ZkError::unsupported(
                    op,
                    format!("broadcasting two runtime tensors {x:?} + {y:?}"),
                ));
            }
            Ok(Arith::Sum)
        }
        (Some(_), None) => Ok(Arith::Affine),
        (None, Some(_)) if op == "Add" || op == "Mul" => Ok(Arith::Affine),
        (None, None) => Err(ZkError::unsupported(
            op,
            "constant folding of two constants",
        )),
        _ => Err(ZkError::unsupported(op, "this operand combination")),
    }
}

fn lower_node(b: &mut Builder, node: &pb::NodeProto) -> Result<(), ZkError> {
    let op = node.op_type.as_str();
    let inp = |i: usize| input_name(node, i);
    let out = node.output[0].clone();
    match op {
        "Constant" => {
            let c = tensor_to_const(constant_value(node)?)?;
            b.set(&out, Ent::Const(c));
        }
        "Identity" | "Dropout" => {
            let e = b.get(inp(0)?, node)?.clone();
            b.set(&out, e);
        }
        "Flatten" => {
            let v = b.val(inp(0)?, node)?;
            let shape = flatten_shape(node, &v.shape)?;
            b.set(&out, Ent::Val(Val { id: v.id, shape }));
        }
        "Reshape" => {
            let v = b.val(inp(0)?, node)?;
            let target = b.cnst(inp(1)?, node)?;
            let shape = reshape_shape(&target.data, &v.shape)?;
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
            let (k, n, trans_b) = dense_dims(node, &x.shape, &wc.dims)?;
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
            b.push_linear(node, &x, shape, rows, bias)?;
        }
        "Conv" => {
            let x = b.val(inp(0)?, node)?;
            let wc = b.cnst(inp(1)?, node)?;
            let ConvGeometry {
                h,
                w,
                m,
                cg,
                group,
                win,
                oh,
                ow,
                ..
            } = conv_geometry(node, &x.shape, &wc.dims)?;
            let [kh, kw] = win.k;
            // Sizes first: the output (and its bias) and the weight matrix's entries, so nothing
            // too large is allocated.
            checked_len(&[m, oh, ow], || format!("Conv output 1×{m}×{oh}×{ow}"))?;
            let taps = [win.axis_taps(0, h, oh).total, win.axis_taps(1, w, ow).total];
            checked_len(&[m, cg, taps[0] as usize, taps[1] as usize], || {
                format!("Conv {:?}'s weight matrix", node.name)
            })?;
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
            sort_rows(&mut rows);
            b.push_linear(node, &x, vec![1, m, oh, ow], rows, bias)?;
        }
        "MaxPool" | "AveragePool" => {
            let x = b.val(inp(0)?, node)?;
            let (c, h, w, win, oh, ow) = pool_geometry(node, &x.shape)?;
            checked_len(&[c, oh, ow], || format!("{op} output 1×{c}×{oh}×{ow}"))?;
            let taps = [win.axis_taps(0, h, oh).total, win.axis_taps(1, w, ow).total];
            checked_len(&[c, taps[0] as usize, taps[1] as usize], || {
                format!("{op} {:?}'s windows", node.name)
            })?;
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
                let o = b.new_val(shape)?;
                b.ops.push(Op::MaxPool {
                    input: x.id,
                    output: o.id,
                    windows: rows,
                });
                b.set(&out, Ent::Val(o));
            } else {
                b.push_linear(node, &x, shape, rows, vec![0.0; c * oh * ow])?;
            }
        }
        "GlobalAveragePool" => {
            let x = b.val(inp(0)?, node)?;
            let (c, h, w) = nchw(&x.shape, op)?;
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
            b.push_linear(node, &x, vec![1, c, 1, 1], rows, vec![0.0; c])?;
        }
        "BatchNormalization" => {
            let x = b.val(inp(0)?, node)?;
            check_batchnorm(node, &x.shape)?;
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
            b.push_linear(node, &x, x.shape.clone(), diag(n, &a), bb)?;
        }
        "Add" | "Sub" | "Mul" | "Div" => {
            let e0 = b.get(inp(0)?, node)?.clone();
            let e1 = b.get(inp(1)?, node)?.clone();
            let shape = |e: &Ent| match e {
                Ent::Val(v) => Some(v.shape.clone()),
                Ent::Const(_) => None,
            };
            let kind = arith_kind(op, shape(&e0).as_deref(), shape(&e1).as_deref())?;
            match (kind, e0, e1) {
                (Arith::Sum, Ent::Val(x), Ent::Val(y)) => {
                    let o = b.new_val(x.shape.clone())?;
                    b.ops.push(Op::Add {
                        a: x.id,
                        b: y.id,
                        output: o.id,
                    });
                    b.set(&out, Ent::Val(o));
                }
                (Arith::Affine, Ent::Val(x), Ent::Const(k))
                | (Arith::Affine, Ent::Const(k), Ent::Val(x)) => {
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
                    b.push_linear(node, &x, x.shape.clone(), diag(n, &a), bias)?;
                }
                _ => return Err(ZkError::Internal(format!("{op}: operands misclassified"))),
            }
        }
        "Relu" | "Sigmoid" | "Tanh" => {
            let x = b.val(inp(0)?, node)?;
            let o = b.new_val(x.shape.clone())?;
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
