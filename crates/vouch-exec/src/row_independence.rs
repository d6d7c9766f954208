//! Whether a model's rows are independent: row *i* of every output depends only on row *i* of
//! the inputs (axis 0), so that stacking callers' requests into one batch cannot change any
//! caller's answer. Dynamic batching is allowed only for graphs this analysis proves so; a
//! model like `y = x − ReduceMean(x, axis=0)` mixes its rows and always runs alone.
//!
//! The proof is syntactic and conservative: every value is either *constant* (computed from
//! initializers alone) or *row-wise* (its axis 0 is the batch axis and its rows are
//! independent); each operator is admitted only with attributes under which it maps row-wise
//! inputs to row-wise outputs without letting one row see another. Anything unknown — an
//! operator not listed, an axis or shape not constant, a subgraph, a custom domain — refuses,
//! naming the node.

use std::collections::HashMap;

use tract_onnx::pb;
use vouch_core::ModelSignature;

/// What the analysis knows about a value.
#[derive(Clone, Debug, PartialEq)]
enum Value {
    /// Independent of the inputs; the shape when known.
    Const(Option<Vec<i64>>),
    /// Axis 0 is the batch axis and rows are independent; the rank when known.
    Rows(Option<usize>),
}

/// `Ok(())` when the graph is proven row-independent, else the first reason it is not.
pub fn check(model: &pb::ModelProto, sig: &ModelSignature) -> Result<(), String> {
    if !sig.batchable() {
        return Err("not every input and output has a free leading dimension".into());
    }
    let graph = model.graph.as_ref().ok_or("no graph")?;
    let mut a = Analysis {
        values: HashMap::new(),
        consts: HashMap::new(),
    };
    for t in &graph.initializer {
        a.values
            .insert(t.name.clone(), Value::Const(Some(t.dims.clone())));
        a.consts.insert(t.name.clone(), t);
    }
    for spec in &sig.inputs {
        a.values
            .insert(spec.name.clone(), Value::Rows(Some(spec.shape.len())));
    }
    for node in &graph.node {
        let here = || format!("node {:?} ({})", node.name, node.op_type);
        if !node.domain.is_empty() && node.domain != "ai.onnx" {
            return Err(format!(
                "{} is in the custom domain {:?}",
                here(),
                node.domain
            ));
        }
        let outputs = a.node(node).map_err(|why| format!("{} {why}", here()))?;
        for (name, v) in node.output.iter().zip(outputs) {
            if !name.is_empty() {
                a.values.insert(name.clone(), v);
            }
        }
    }
    for out in &sig.outputs {
        match a.values.get(&out.name) {
            Some(Value::Rows(_)) => {}
            _ => {
                return Err(format!(
                    "output {:?} is not computed row by row from the inputs",
                    out.name
                ));
            }
        }
    }
    Ok(())
}

struct Analysis<'m> {
    values: HashMap<String, Value>,
    /// Initializers and `Constant` node values, for axes and shapes given as inputs.
    consts: HashMap<String, &'m pb::TensorProto>,
}

const UNARY: &[&str] = &[
    "Abs",
    "Acos",
    "Acosh",
    "Asin",
    "Asinh",
    "Atan",
    "Atanh",
    "Cast",
    "Ceil",
    "Celu",
    "Cos",
    "Cosh",
    "Dropout",
    "Elu",
    "Erf",
    "Exp",
    "Floor",
    "Gelu",
    "HardSigmoid",
    "HardSwish",
    "Identity",
    "IsInf",
    "IsNaN",
    "LeakyRelu",
    "Log",
    "Mish",
    "Neg",
    "Not",
    "Reciprocal",
    "Relu",
    "Round",
    "Selu",
    "Shrink",
    "Sigmoid",
    "Sign",
    "Sin",
    "Sinh",
    "Softplus",
    "Softsign",
    "Sqrt",
    "Tan",
    "Tanh",
    "ThresholdedRelu",
];

/// Elementwise with multidirectional broadcasting.
const BROADCAST: &[&str] = &[
    "Add",
    "And",
    "BitShift",
    "Clip",
    "Div",
    "Equal",
    "Greater",
    "GreaterOrEqual",
    "Less",
    "LessOrEqual",
    "Max",
    "Mean",
    "Min",
    "Mod",
    "Mul",
    "Or",
    "Pow",
    "PRelu",
    "Sub",
    "Sum",
    "Where",
    "Xor",
];

/// Per-sample operators over `[N, C, ...]`: their parameters (inputs after the first) must be
/// constant.
const PER_SAMPLE: &[&str] = &[
    "AveragePool",
    "BatchNormalization",
    "Conv",
    "ConvTranspose",
    "DepthToSpace",
    "GlobalAveragePool",
    "GlobalLpPool",
    "GlobalMaxPool",
    "InstanceNormalization",
    "LpNormalization",
    "LpPool",
    "LRN",
    "MaxPool",
    "SpaceToDepth",
];

const REDUCE: &[&str] = &[
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceMax",
    "ReduceMean",
    "ReduceMin",
    "ReduceProd",
    "ReduceSum",
    "ReduceSumSquare",
];

impl<'m> Analysis<'m> {
    fn input(&self, node: &pb::NodeProto, i: usize) -> Result<Option<&Value>, String> {
        match node.input.get(i) {
            None => Ok(None),
            Some(n) if n.is_empty() => Ok(None),
            Some(n) => self
                .values
                .get(n)
                .map(Some)
                .ok_or_else(|| format!("reads {n:?}, which no earlier node computes")),
        }
    }

    fn inputs(&self, node: &pb::NodeProto) -> Result<Vec<&Value>, String> {
        let mut v = Vec::new();
        for i in 0..node.input.len() {
            if let Some(x) = self.input(node, i)? {
                v.push(x);
            }
        }
        Ok(v)
    }

    /// The integer values of a constant input.
    fn const_ints(&self, node: &pb::NodeProto, i: usize) -> Option<Vec<i64>> {
        let name = node.input.get(i).filter(|n| !n.is_empty())?;
        ints_of(self.consts.get(name)?)
    }

    fn node(&mut self, node: &'m pb::NodeProto) -> Result<Vec<Value>, String> {
        let op = node.op_type.as_str();
        let ins = self.inputs(node)?;
        let n_out = node.output.len();
        // A subgraph could read row-wise values from the outer scope; random operators give
        // every row of a batch the same draw.
        let has_subgraph = node
            .attribute
            .iter()
            .any(|a| a.g.is_some() || !a.graphs.is_empty());
        if has_subgraph {
            return Err(
                "holds a subgraph (If, Loop, Scan), which this analysis does not enter".into(),
            );
        }
        if op.starts_with("Random") || op == "Bernoulli" || op == "Multinomial" {
            return Err("draws random numbers, which a batch would share".into());
        }
        // Anything else computed from constants alone stays constant.
        if ins.iter().all(|v| matches!(v, Value::Const(_))) {
            let shape = (op == "Constant").then(|| constant_shape(node)).flatten();
            if op == "Constant"
                && let Some(t) = attr(node, "value").and_then(|a| a.t.as_ref())
                && let Some(out) = node.output.first()
            {
                // Kept for axes and shapes that later nodes read as inputs.
                self.consts.insert(out.clone(), t);
            }
            return Ok(vec![Value::Const(shape); n_out]);
        }
        let rows_rank = |v: &Value| match v {
            Value::Rows(r) => *r,
            Value::Const(_) => None,
        };
        let x = ins.first().copied().cloned().ok_or("has no inputs")?;
        let x_rank = rows_rank(&x);
        let out = |v: Value| Ok(vec![v; n_out.max(1)]);
        match op {
            _ if UNARY.contains(&op) => {
                row_wise_first(&x)?;
                all_const_after_first(&ins)?;
                out(Value::Rows(x_rank))
            }
            _ if BROADCAST.contains(&op) => broadcast(&ins).map(|v| vec![v; n_out.max(1)]),
            _ if PER_SAMPLE.contains(&op) => {
                let training = int_attr(node, "training_mode").unwrap_or(0) != 0
                    || (op == "BatchNormalization" && n_out > 1);
                if training {
                    return Err(
                        "normalises with statistics of the whole batch (training mode)".into(),
                    );
                }
                if op == "LpNormalization" {
                    not_batch_axis(&[int_attr(node, "axis").unwrap_or(-1)], x_rank)?;
                }
                all_const_after_first(&ins)?;
                row_wise_first(&x)?;
                out(Value::Rows(x_rank))
            }
            "Gemm" => {
                if int_attr(node, "transA").unwrap_or(0) != 0 {
                    return Err("transposes its row-wise input (transA)".into());
                }
                row_wise_first(&x)?;
                all_const_after_first(&ins)?;
                if let Some(Value::Const(Some(c))) = self.input(node, 2)?
                    && c.len() == 2
                    && c[0] != 1
                {
                    return Err("adds a bias with one row per batch position".into());
                }
                out(Value::Rows(Some(2)))
            }
            "MatMul" | "MatMulInteger" => {
                let b = self.input(node, 1)?.ok_or("has one input")?;
                match (&x, b) {
                    (Value::Rows(Some(ra)), Value::Const(Some(sb)))
                        if *ra >= 2 && sb.len() <= 2 =>
                    {
                        out(Value::Rows(Some(*ra)))
                    }
                    (Value::Rows(Some(ra)), Value::Rows(Some(rb))) if ra == rb && *ra >= 3 => {
                        out(Value::Rows(Some(*ra)))
                    }
                    (Value::Const(Some(sa)), Value::Rows(Some(rb)))
                        if *rb >= 3 && sa.len() <= 2 =>
                    {
                        out(Value::Rows(Some(*rb)))
                    }
                    _ => Err("multiplies along the batch axis".into()),
                }
            }
            "Softmax" | "LogSoftmax" | "Hardmax" | "LayerNormalization" => {
                row_wise_first(&x)?;
                all_const_after_first(&ins)?;
                let axis = int_attr(node, "axis").unwrap_or(-1);
                not_batch_axis(&[axis], x_rank)?;
                out(Value::Rows(x_rank))
            }
            "Flatten" => {
                row_wise_first(&x)?;
                let axis = int_attr(node, "axis").unwrap_or(1);
                let r = x_rank.ok_or("flattens a value of unknown rank")? as i64;
                if axis == 0 || axis == -r {
                    return Err("flattens the batch axis into the rows".into());
                }
                out(Value::Rows(Some(2)))
            }
            _ if REDUCE.contains(&op) || op == "ArgMax" || op == "ArgMin" => {
                row_wise_first(&x)?;
                let r = x_rank.ok_or("reduces a value of unknown rank")?;
                let axes = if op.starts_with("Arg") {
                    vec![int_attr(node, "axis").unwrap_or(0)]
                } else if let Some(a) = ints_attr(node, "axes") {
                    a
                } else if node.input.get(1).is_some_and(|n| !n.is_empty()) {
                    self.const_ints(node, 1)
                        .ok_or("reduces over axes that are not a constant")?
                } else {
                    Vec::new()
                };
                if axes.is_empty() {
                    return Err("reduces over every axis, the batch axis included".into());
                }
                not_batch_axis(&axes, Some(r))?;
                let keep = int_attr(node, "keepdims").unwrap_or(1) != 0;
                out(Value::Rows(Some(if keep { r } else { r - axes.len() })))
            }
            "Transpose" => {
                row_wise_first(&x)?;
                match ints_attr(node, "perm") {
                    Some(p) if p.first() == Some(&0) => out(Value::Rows(x_rank)),
                    _ => Err("moves the batch axis".into()),
                }
            }
            "Reshape" => {
                row_wise_first(&x)?;
                let shape = self
                    .const_ints(node, 1)
                    .ok_or("reshapes to a shape that is not a constant")?;
                if int_attr(node, "allowzero").unwrap_or(0) == 0 && shape.first() == Some(&0) {
                    out(Value::Rows(Some(shape.len())))
                } else {
                    Err(
                        "reshapes without keeping the batch axis (its shape must start with 0)"
                            .into(),
                    )
                }
            }
            "Squeeze" | "Unsqueeze" => {
                row_wise_first(&x)?;
                let axes = ints_attr(node, "axes")
                    .or_else(|| self.const_ints(node, 1))
                    .ok_or("has no constant axes")?;
                let r = x_rank.ok_or("reshapes a value of unknown rank")?;
                let out_rank = if op == "Squeeze" {
                    r.checked_sub(axes.len())
                        .ok_or("squeezes more axes than it has")?
                } else {
                    r + axes.len()
                };
                let in_rank = if op == "Squeeze" { r } else { out_rank };
                not_batch_axis(&axes, Some(in_rank))?;
                out(Value::Rows(Some(out_rank)))
            }
            "Concat" => {
                let axis = int_attr(node, "axis").ok_or("has no axis")?;
                if ins.iter().any(|v| matches!(v, Value::Const(_))) {
                    return Err("joins a constant to row-wise values".into());
                }
                not_batch_axis(&[axis], x_rank)?;
                same_rank(&ins)?;
                out(Value::Rows(x_rank))
            }
            "Split" => {
                row_wise_first(&x)?;
                not_batch_axis(&[int_attr(node, "axis").unwrap_or(0)], x_rank)?;
                out(Value::Rows(x_rank))
            }
            "Slice" => {
                row_wise_first(&x)?;
                let r = x_rank.ok_or("slices a value of unknown rank")?;
                // Before opset 10 the parameters are attributes, after it constant inputs.
                let (starts, axes) = match ints_attr(node, "starts") {
                    Some(s) => (s, ints_attr(node, "axes")),
                    None => {
                        for i in 1..node.input.len() {
                            if self.input(node, i)?.is_some() && self.const_ints(node, i).is_none()
                            {
                                return Err("has slice parameters that are not constant".into());
                            }
                        }
                        let s = self.const_ints(node, 1).ok_or("has no constant starts")?;
                        (s, self.const_ints(node, 3))
                    }
                };
                let axes = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
                not_batch_axis(&axes, Some(r))?;
                out(Value::Rows(Some(r)))
            }
            "Gather" => {
                let axis = int_attr(node, "axis").unwrap_or(0);
                let idx = self.input(node, 1)?.ok_or("has no indices")?;
                match (&x, idx) {
                    (Value::Rows(Some(r)), Value::Const(Some(s))) => {
                        not_batch_axis(&[axis], Some(*r))?;
                        out(Value::Rows(Some(r - 1 + s.len())))
                    }
                    (Value::Const(Some(s)), Value::Rows(Some(ri))) if axis == 0 => {
                        out(Value::Rows(Some(ri + s.len() - 1)))
                    }
                    _ => Err("gathers across the batch axis".into()),
                }
            }
            _ => Err("is not an operator known to keep rows independent".into()),
        }
    }
}

/// Multidirectional broadcasting keeps rows independent when every row-wise operand has the
/// output's rank (its axis 0 is the output's axis 0) and no constant spans axis 0 with more
/// than one entry (which would give each batch position its own constant row).
fn broadcast(ins: &[&Value]) -> Result<Value, String> {
    let rank = same_rank(ins)?;
    let r = rank.ok_or("broadcasts a value of unknown rank")?;
    for v in ins {
        if let Value::Const(shape) = v {
            let s = shape
                .as_ref()
                .ok_or("broadcasts a constant of unknown shape")?;
            if s.len() > r {
                return Err("broadcasts a constant of higher rank than its row-wise input".into());
            }
            if s.len() == r && s.first().is_some_and(|&d| d != 1) {
                return Err("broadcasts a constant along the batch axis".into());
            }
        }
    }
    Ok(Value::Rows(Some(r)))
}

/// The common rank of the row-wise operands (all must agree).
fn same_rank(ins: &[&Value]) -> Result<Option<usize>, String> {
    let mut rank = None;
    for v in ins {
        if let Value::Rows(r) = v {
            let r = r.ok_or("combines values of unknown rank")?;
            match rank {
                None => rank = Some(r),
                Some(prev) if prev != r => {
                    return Err("combines row-wise values of different ranks".into());
                }
                _ => {}
            }
        }
    }
    Ok(rank)
}

fn row_wise_first(x: &Value) -> Result<(), String> {
    match x {
        Value::Rows(_) => Ok(()),
        Value::Const(_) => Err("takes its row-wise value in a parameter position".into()),
    }
}

fn all_const_after_first(ins: &[&Value]) -> Result<(), String> {
    if ins.iter().skip(1).any(|v| matches!(v, Value::Rows(_))) {
        return Err("takes a row-wise value as a parameter".into());
    }
    Ok(())
}

/// Refuses when any of `axes` (negative ones counted from the end of `rank`) is axis 0.
fn not_batch_axis(axes: &[i64], rank: Option<usize>) -> Result<(), String> {
    for &a in axes {
        let is_zero = match (a, rank) {
            (0, _) => true,
            (a, Some(r)) if a < 0 => a + r as i64 == 0,
            (a, None) if a < 0 => {
                return Err("uses a negative axis on a value of unknown rank".into());
            }
            _ => false,
        };
        if is_zero {
            return Err("works across the batch axis (axis 0)".into());
        }
    }
    Ok(())
}

fn attr<'a>(node: &'a pb::NodeProto, name: &str) -> Option<&'a pb::AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

fn int_attr(node: &pb::NodeProto, name: &str) -> Option<i64> {
    attr(node, name).map(|a| a.i)
}

fn ints_attr(node: &pb::NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(node, name).map(|a| a.ints.clone())
}

/// The shape a `Constant` node produces, when its attribute says.
fn constant_shape(node: &pb::NodeProto) -> Option<Vec<i64>> {
    let a = node.attribute.first()?;
    match a.name.as_str() {
        "value" => a.t.as_ref().map(|t| t.dims.clone()),
        "value_float" | "value_int" | "value_string" => Some(vec![]),
        "value_floats" => Some(vec![a.floats.len() as i64]),
        "value_ints" => Some(vec![a.ints.len() as i64]),
        _ => None,
    }
}

/// Integer contents of a small constant tensor (int64 or int32), from its typed field or raw
/// little-endian bytes.
fn ints_of(t: &pb::TensorProto) -> Option<Vec<i64>> {
    const INT32: i32 = 6;
    const INT64: i32 = 7;
    match t.data_type {
        INT64 if !t.int64_data.is_empty() => Some(t.int64_data.clone()),
        INT64 => Some(
            t.raw_data
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect(),
        ),
        INT32 if !t.int32_data.is_empty() => Some(t.int32_data.iter().map(|&v| v as i64).collect()),
        INT32 => Some(
            t.raw_data
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().unwrap_or([0; 4])) as i64)
                .collect(),
        ),
        _ => None,
    }
}
