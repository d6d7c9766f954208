//! The circuit's size from the ONNX graph's shapes and attributes alone: no weight is converted,
//! no calibration runs and nothing is allocated in proportion to the circuit, so analysis can
//! refuse a model whose circuit is too large before it builds anything (a 180-byte MaxPool
//! model describes a circuit of tens of millions of constraints).
//!
//! [`estimate_model`] lowers the graph the way [`crate::onnx::import`] does, but keeps only
//! shapes and counts (rows, weight entries, pooling windows and their taps, counted per axis in
//! O(outputs)), folds elementwise affine maps and fuses Linear → ReLU → MaxPool the way the
//! circuit builder does, then counts what [`crate::circuit::build`] records for each gadget.
//! The bit widths calibration would pick are not known yet: every range check is counted at a
//! nominal width ([`VALUE_BITS`] for values, the largest scale for rescale remainders) and the
//! range-check strategy is the one `quant::choose_table_bits` picks for those widths. Every count
//! saturates, so absurd shapes come out as "too large", never as an overflow.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::circuit::Stats;
use crate::error::ZkError;
use crate::estimate::{Estimate, estimate};
use crate::limits::Limits;
use crate::onnx::{self, Const, Ent, Names, Val, nchw};
use crate::pb;

/// Rescale remainders are as wide as the weight scale: at most the largest scale calibration
/// tries (`quant::SCALES`).
const REMAINDER_BITS: u32 = 16;
/// Nominal signed width of a quantised value: calibration gives each value
/// `log2(max |x| · 4 · 2^scale)` + 2 bits, 21–23 on the shipped models (|x| up to ~16 at
/// scale 2^16). A model with larger values gets wider checks than counted here.
pub const VALUE_BITS: u32 = 24;
/// Sigmoid/Tanh read their input at 2^10 from values at 2^16 at most: a 6-bit remainder.
const LUT_REMAINDER_BITS: u32 = 6;
/// Sigmoid/Tanh table: 2^(1 + lut_input_bits + lut_domain_bits) entries, at most 2^(1+10+4).
const LUT_TABLE: u64 = 1 << 15;
/// Constants up to this many elements are read (a Reshape's target shape); larger ones only
/// have their dimensions looked at.
const SMALL_CONST: usize = 1024;
/// Work spent finding out whether pooling windows cover their input (for the fused gadget).
const COVER_WORK: u64 = 1 << 24;

/// The circuit a model would compile to, predicted from its graph.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CircuitEstimate {
    /// Operators in the graph.
    pub nodes: u64,
    pub constraints: u64,
    /// Witness variables committed before the challenges and after them.
    pub precommitted: u64,
    pub rest: u64,
    pub public: u64,
    pub lookups: u64,
    /// Entries of the lookup tables (range chunks and Sigmoid/Tanh pairs).
    pub table_entries: u64,
    /// Non-zero entries of A, B and C.
    pub nnz: u64,
    /// Range-check strategy for these widths: 0 bit decomposition, t logUp with t-bit chunks.
    pub table_bits: u32,
    /// Elements of all graph values together (what calibration holds per sample).
    pub values: u64,
    /// Elements of the largest tensor.
    pub largest_tensor: u64,
    /// For models the tensor system proves (`tensor::system`): values a proof commits and the
    /// padded weights; the R1CS figures above are then zero.
    #[serde(default)]
    pub tensor_values: u64,
    #[serde(default)]
    pub tensor_weights: u64,
}

impl CircuitEstimate {
    /// Witness variables.
    pub fn witness(&self) -> u64 {
        self.precommitted.saturating_add(self.rest)
    }

    /// The same figures as a built circuit's [`Stats`] (range widths left empty).
    pub fn stats(&self) -> Stats {
        let u = |x: u64| usize::try_from(x).unwrap_or(usize::MAX);
        Stats {
            constraints: u(self.constraints),
            precommitted: u(self.precommitted),
            rest: u(self.rest),
            public: u(self.public),
            lookups: u(self.lookups),
            table_entries: u(self.table_entries),
            nnz: u(self.nnz),
            range_widths: BTreeMap::new(),
        }
    }

    /// One proof's predicted cost, by the model [`crate::estimate()`] applies to built circuits
    /// (or the tensor system's, for its models).
    pub fn proof_cost(&self) -> Estimate {
        if self.tensor_values > 0 {
            return crate::tensor::system::estimate(&crate::tensor::system::Size {
                values: self.tensor_values,
                weights: self.tensor_weights,
                layers: 0,
            });
        }
        estimate(&self.stats())
    }

    /// Peak memory of analysing the model: key generation holds about what a proof holds, and
    /// calibration keeps every value of its six samples as f64 plus the builder's linear
    /// combinations (~64 bytes a value).
    pub fn analysis_peak_bytes(&self) -> u64 {
        self.proof_cost()
            .peak_bytes
            .saturating_add(self.values.saturating_mul(6 * 8 + 64))
    }

    /// `Err(OverLimit)` naming the estimate and the limit it exceeds: constraints, then the
    /// analysis's predicted memory.
    pub fn check(&self, limits: &Limits) -> Result<(), ZkError> {
        if self.tensor_values > limits.max_tensor_values {
            return Err(ZkError::OverLimit(format!(
                "tensor program of about {} committed values exceeds this node's limit of {}",
                self.tensor_values, limits.max_tensor_values
            )));
        }
        if self.constraints > limits.max_constraints {
            return Err(ZkError::OverLimit(format!(
                "circuit of about {} constraints exceeds this node's limit of {}",
                self.constraints, limits.max_constraints
            )));
        }
        let peak = self.analysis_peak_bytes();
        if peak > limits.max_analysis_bytes {
            return Err(ZkError::OverLimit(format!(
                "circuit of about {} constraints over {} values needs about {} MiB to analyse; this node allows {} MiB",
                self.constraints,
                self.values,
                peak >> 20,
                limits.max_analysis_bytes >> 20
            )));
        }
        Ok(())
    }
}

/// Predicts the circuit of `model_bytes` from its graph and refuses, before decoding, a graph
/// with more operators than `limits.max_nodes`, and any tensor over `limits.max_tensor_elements`.
/// Constraint limits are checked by the caller ([`CircuitEstimate::check`]) so the estimate
/// can be shown either way. Unsupported operators are named as the importer names them.
pub fn estimate_model(model_bytes: &[u8], limits: &Limits) -> Result<CircuitEstimate, ZkError> {
    let nodes = pb::count_nodes(model_bytes)?;
    if nodes > limits.max_nodes {
        return Err(ZkError::OverLimit(format!(
            "graph of {nodes} operators exceeds this node's limit of {}",
            limits.max_nodes
        )));
    }
    if crate::tensor::system::recognises(model_bytes) {
        let size = crate::tensor::system::size(model_bytes)?;
        return Ok(CircuitEstimate {
            nodes,
            values: size.values,
            tensor_values: size.values,
            tensor_weights: size.weights,
            ..Default::default()
        });
    }
    let graph = onnx::decode(model_bytes)?;
    let mut sk = Skeleton {
        ents: HashMap::new(),
        value_len: vec![],
        ops: vec![],
        max_elements: limits.max_tensor_elements,
    };
    for t in &graph.initializer {
        let c = sk.constant(t)?;
        sk.ents.insert(t.name.clone(), c);
    }
    let mut inputs = vec![];
    for vi in &graph.input {
        if sk.ents.contains_key(&vi.name) {
            continue;
        }
        let shape = onnx::input_shape(vi)?;
        let v = sk.new_val(shape, || format!("input {:?}", vi.name))?;
        inputs.push(v.id);
        sk.ents.insert(vi.name.clone(), Ent::Val(v));
    }
    if inputs.is_empty() {
        return Err(ZkError::InvalidModel("model has no runtime inputs".into()));
    }
    for node in &graph.node {
        onnx::check_node(node)?;
        sk.lower(node)?;
    }
    let mut outputs = vec![];
    for vi in &graph.output {
        outputs.push(sk.output(vi)?.id);
    }
    if outputs.is_empty() {
        return Err(ZkError::InvalidModel("model has no outputs".into()));
    }
    sk.fold_affine(&outputs);
    let mut est = sk.count(&inputs, &outputs);
    est.nodes = nodes;
    Ok(est)
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    /// `rows` outputs, `nnz` weight entries at most; `diagonal` for elementwise affine maps.
    Linear {
        rows: u64,
        nnz: u64,
        diagonal: bool,
    },
    Add,
    Relu,
    /// `windows` outputs reading `taps` inputs in all, `singles` of them one input each;
    /// `covers`: every input is read (`None`: not worked out, treated as not).
    MaxPool {
        windows: u64,
        taps: u64,
        singles: u64,
        covers: Option<bool>,
    },
    Lut,
}

#[derive(Clone, Debug)]
struct SkOp {
    kind: Kind,
    inputs: Vec<usize>,
    output: usize,
}

struct Skeleton {
    ents: HashMap<String, Ent>,
    value_len: Vec<u64>,
    ops: Vec<SkOp>,
    max_elements: u64,
}

/// The product of `dims`, saturating.
fn product(dims: &[usize]) -> u64 {
    dims.iter().fold(1u64, |a, &d| a.saturating_mul(d as u64))
}

impl Names for Skeleton {
    fn ents(&self) -> &HashMap<String, Ent> {
        &self.ents
    }
}

impl Skeleton {
    fn over(&self, what: String, n: u64) -> ZkError {
        ZkError::OverLimit(format!(
            "{what} of {n} elements exceeds this node's limit of {}",
            self.max_elements
        ))
    }

    fn constant(&self, t: &pb::TensorProto) -> Result<Ent, ZkError> {
        let dims: Vec<usize> = t
            .dims
            .iter()
            .map(|&d| {
                usize::try_from(d).map_err(|_| {
                    ZkError::InvalidModel(format!("tensor {:?} has negative dim", t.name))
                })
            })
            .collect::<Result<_, _>>()?;
        let n = product(&dims);
        if n > self.max_elements {
            return Err(self.over(format!("constant {:?}", t.name), n));
        }
        // Large constants keep their dimensions only (`data` left empty).
        let data = if n <= SMALL_CONST as u64 {
            onnx::tensor_to_const(t)?.data
        } else {
            vec![]
        };
        Ok(Ent::Const(Const { dims, data }))
    }

    fn new_val(&mut self, shape: Vec<usize>, what: impl Fn() -> String) -> Result<Val, ZkError> {
        let n = product(&shape);
        if n > self.max_elements {
            return Err(self.over(format!("{} of shape {shape:?}", what()), n));
        }
        self.value_len.push(n);
        Ok(Val {
            id: self.value_len.len() - 1,
            shape,
        })
    }

    fn push(
        &mut self,
        node: &pb::NodeProto,
        kind: Kind,
        inputs: Vec<usize>,
        shape: Vec<usize>,
    ) -> Result<(), ZkError> {
        let out = self.new_val(shape, || format!("{} {:?} output", node.op_type, node.name))?;
        self.ops.push(SkOp {
            kind,
            inputs,
            output: out.id,
        });
        self.ents.insert(node.output[0].clone(), Ent::Val(out));
        Ok(())
    }

    /// An elementwise affine map of `x` (BatchNorm, a constant Add/Sub/Mul/Div).
    fn diagonal(&mut self, node: &pb::NodeProto, x: &Val) -> Result<(), ZkError> {
        let n = product(&x.shape);
        let kind = Kind::Linear {
            rows: n,
            nnz: n,
            diagonal: true,
        };
        self.push(node, kind, vec![x.id], x.shape.clone())
    }

    /// What [`crate::onnx`]'s `lower_node` makes of `node`, as shapes and counts (the shape
    /// rules and their errors are the importer's own functions).
    fn lower(&mut self, node: &pb::NodeProto) -> Result<(), ZkError> {
        let op = node.op_type.as_str();
        let inp = |i: usize| onnx::input_name(node, i);
        let out = node.output[0].clone();
        match op {
            "Constant" => {
                let c = self.constant(onnx::constant_value(node)?)?;
                self.ents.insert(out, c);
            }
            "Identity" | "Dropout" => {
                let e = self.get(inp(0)?, node)?.clone();
                self.ents.insert(out, e);
            }
            "Flatten" => {
                let v = self.val(inp(0)?, node)?;
                let shape = onnx::flatten_shape(node, &v.shape)?;
                self.ents.insert(out, Ent::Val(Val { id: v.id, shape }));
            }
            "Reshape" => {
                let v = self.val(inp(0)?, node)?;
                let target = self.cnst(inp(1)?, node)?;
                if target.data.len() as u64 != product(&target.dims) {
                    return Err(ZkError::InvalidModel(format!(
                        "Reshape {:?}: target shape too long",
                        node.name
                    )));
                }
                let shape = onnx::reshape_shape(&target.data, &v.shape)?;
                self.ents.insert(out, Ent::Val(Val { id: v.id, shape }));
            }
            "Gemm" | "MatMul" => {
                let x = self.val(inp(0)?, node)?;
                let wd = self.cnst(inp(1)?, node)?.dims;
                let (k, n, _) = onnx::dense_dims(node, &x.shape, &wd)?;
                let mut shape = x.shape.clone();
                if let Some(l) = shape.last_mut() {
                    *l = n;
                }
                let kind = Kind::Linear {
                    rows: n as u64,
                    nnz: product(&[k, n]),
                    diagonal: false,
                };
                self.push(node, kind, vec![x.id], shape)?;
            }
            "Conv" => {
                let x = self.val(inp(0)?, node)?;
                let wd = self.cnst(inp(1)?, node)?.dims;
                let g = onnx::conv_geometry(node, &x.shape, &wd)?;
                let (ty, tx) = (g.win.axis_taps(0, g.h, g.oh), g.win.axis_taps(1, g.w, g.ow));
                let kind = Kind::Linear {
                    rows: product(&[g.m, g.oh, g.ow]),
                    nnz: product(&[g.m, g.cg])
                        .saturating_mul(ty.total)
                        .saturating_mul(tx.total),
                    diagonal: false,
                };
                self.push(node, kind, vec![x.id], vec![1, g.m, g.oh, g.ow])?;
            }
            "MaxPool" | "AveragePool" => {
                let x = self.val(inp(0)?, node)?;
                let (c, h, w, win, oh, ow) = onnx::pool_geometry(node, &x.shape)?;
                let (ty, tx) = (win.axis_taps(0, h, oh), win.axis_taps(1, w, ow));
                if ty.empty > 0 || tx.empty > 0 {
                    return Err(ZkError::unsupported(
                        op,
                        "a window lying entirely in the padding",
                    ));
                }
                let windows = product(&[c, oh, ow]);
                let taps = (c as u64).saturating_mul(ty.total).saturating_mul(tx.total);
                let kind = if op == "MaxPool" {
                    let covers = match (
                        win.axis_covers(0, h, oh, COVER_WORK),
                        win.axis_covers(1, w, ow, COVER_WORK),
                    ) {
                        (Some(a), Some(b)) => Some(a && b),
                        _ => None,
                    };
                    Kind::MaxPool {
                        windows,
                        taps,
                        singles: (c as u64)
                            .saturating_mul(ty.single)
                            .saturating_mul(tx.single),
                        covers,
                    }
                } else {
                    Kind::Linear {
                        rows: windows,
                        nnz: taps,
                        diagonal: taps == windows && (oh, ow) == (h, w),
                    }
                };
                self.push(node, kind, vec![x.id], vec![1, c, oh, ow])?;
            }
            "GlobalAveragePool" => {
                let x = self.val(inp(0)?, node)?;
                let (c, h, w) = nchw(&x.shape, op)?;
                let kind = Kind::Linear {
                    rows: c as u64,
                    nnz: product(&[c, h, w]),
                    diagonal: h * w == 1,
                };
                self.push(node, kind, vec![x.id], vec![1, c, 1, 1])?;
            }
            "BatchNormalization" => {
                let x = self.val(inp(0)?, node)?;
                onnx::check_batchnorm(node, &x.shape)?;
                for i in 1..=4 {
                    self.cnst(inp(i)?, node)?;
                }
                self.diagonal(node, &x)?;
            }
            "Add" | "Sub" | "Mul" | "Div" => {
                let e0 = self.get(inp(0)?, node)?.clone();
                let e1 = self.get(inp(1)?, node)?.clone();
                let shape = |e: &Ent| match e {
                    Ent::Val(v) => Some(v.shape.clone()),
                    Ent::Const(_) => None,
                };
                let kind = onnx::arith_kind(op, shape(&e0).as_deref(), shape(&e1).as_deref())?;
                match (kind, e0, e1) {
                    (onnx::Arith::Sum, Ent::Val(x), Ent::Val(y)) => {
                        self.push(node, Kind::Add, vec![x.id, y.id], x.shape)?
                    }
                    (onnx::Arith::Affine, Ent::Val(x), _)
                    | (onnx::Arith::Affine, _, Ent::Val(x)) => self.diagonal(node, &x)?,
                    _ => return Err(ZkError::Internal(format!("{op}: operands misclassified"))),
                }
            }
            "Relu" | "Sigmoid" | "Tanh" => {
                let x = self.val(inp(0)?, node)?;
                let kind = if op == "Relu" { Kind::Relu } else { Kind::Lut };
                self.push(node, kind, vec![x.id], x.shape.clone())?;
            }
            other => return Err(ZkError::unsupported(other, "")),
        }
        Ok(())
    }

    /// `onnx::fold_affine`: an elementwise affine map whose input is a linear operator's output
    /// read by nothing else (and not a graph input) merges into that operator. One pass in
    /// order finds what the importer's repeated scan finds: a fold never makes an earlier
    /// operator foldable.
    fn fold_affine(&mut self, outputs: &[usize]) {
        let mut readers = vec![0u32; self.value_len.len()];
        for op in &self.ops {
            for &i in &op.inputs {
                readers[i] += 1;
            }
        }
        for &o in outputs {
            readers[o] += 1;
        }
        let mut producer: HashMap<usize, usize> = HashMap::new();
        let mut folded = Vec::with_capacity(self.ops.len());
        for k in 0..self.ops.len() {
            let (kind, input, output) = {
                let op = &self.ops[k];
                (op.kind, op.inputs[0], op.output)
            };
            let into = match kind {
                Kind::Linear { diagonal: true, .. } if readers[input] == 1 => {
                    producer.get(&input).copied()
                }
                _ => None,
            };
            match into {
                Some(p) => {
                    self.ops[p].output = output;
                    producer.insert(output, p);
                }
                None if matches!(kind, Kind::Linear { .. }) => {
                    producer.insert(output, k);
                }
                None => {}
            }
            folded.push(into.is_some());
        }
        let mut folded = folded.into_iter();
        self.ops.retain(|_| !folded.next().unwrap_or(false));
    }

    /// What `circuit::build` records for this graph, at the nominal widths.
    fn count(&self, inputs: &[usize], outputs: &[usize]) -> CircuitEstimate {
        let mut readers: Vec<Vec<usize>> = vec![vec![]; self.value_len.len()];
        for (k, op) in self.ops.iter().enumerate() {
            for &i in &op.inputs {
                readers[i].push(k);
            }
        }
        let is_output = |v: usize| outputs.contains(&v);
        let len = |v: usize| self.value_len[v];
        let mut c = Counter::default();
        let mut skip = vec![false; self.ops.len()];
        // Outputs a linear operator writes straight into their public slots need no binding.
        let mut bound: BTreeSet<usize> = BTreeSet::new();
        let b = VALUE_BITS;
        for (k, op) in self.ops.iter().enumerate() {
            if skip[k] {
                continue;
            }
            let out = op.output;
            match op.kind {
                Kind::Linear { rows, nnz, .. } => {
                    let mut relu = false;
                    let mut pool = None;
                    let mut final_v = out;
                    if !is_output(out) && readers[out].len() == 1 {
                        let n1 = readers[out][0];
                        match self.ops[n1].kind {
                            Kind::Relu => {
                                relu = true;
                                skip[n1] = true;
                                final_v = self.ops[n1].output;
                                let r = final_v;
                                if !is_output(r) && readers[r].len() == 1 {
                                    let n2 = readers[r][0];
                                    if let Kind::MaxPool {
                                        covers: Some(true), ..
                                    } = self.ops[n2].kind
                                    {
                                        skip[n2] = true;
                                        pool = Some(self.ops[n2].kind);
                                        final_v = self.ops[n2].output;
                                    }
                                }
                            }
                            Kind::MaxPool {
                                covers: Some(true), ..
                            } => {
                                skip[n1] = true;
                                pool = Some(self.ops[n1].kind);
                                final_v = self.ops[n1].output;
                            }
                            _ => {}
                        }
                    }
                    let public = final_v == out && is_output(out);
                    // Rescale of every row: a quotient (unless it is the public output) and
                    // the remainder's range check over the row's terms.
                    if !public {
                        c.pre = c.pre.saturating_add(rows);
                    }
                    c.range(
                        REMAINDER_BITS,
                        rows,
                        nnz.saturating_add(rows.saturating_mul(2)),
                    );
                    match pool {
                        Some(Kind::MaxPool {
                            windows,
                            taps,
                            singles,
                            ..
                        }) => c.max(windows, taps, singles, relu, b),
                        _ if relu => c.relu(rows, b),
                        _ if !public => c.range(b, rows, rows.saturating_mul(2)),
                        _ => {}
                    }
                    if public {
                        bound.insert(out);
                    }
                }
                Kind::Add => {}
                Kind::Relu => c.relu(len(out), b),
                Kind::MaxPool {
                    windows,
                    taps,
                    singles,
                    ..
                } => c.max(windows, taps, singles, false, b),
                Kind::Lut => c.lut(len(out)),
            }
        }
        for &o in outputs {
            if !bound.contains(&o) {
                c.cons = c.cons.saturating_add(len(o));
                c.nnz = c.nnz.saturating_add(len(o).saturating_mul(4));
            }
        }
        // The receipt limbs.
        c.cons = c.cons.saturating_add(2);
        c.nnz = c.nnz.saturating_add(6);
        let public = inputs
            .iter()
            .chain(outputs)
            .fold(2u64, |a, &v| a.saturating_add(len(v)));
        let mut est = c.finish();
        est.public = public;
        est.values = self.value_len.iter().fold(0, |a, &n| a.saturating_add(n));
        est.largest_tensor = self.value_len.iter().copied().max().unwrap_or(0);
        est
    }
}

/// Gadget counts; range checks are collected by width and priced once the strategy is known.
#[derive(Default)]
struct Counter {
    cons: u64,
    pre: u64,
    rest: u64,
    nnz: u64,
    /// Width → (checks, terms of their linear combinations).
    ranges: BTreeMap<u32, (u64, u64)>,
    luts: u64,
}

impl Counter {
    fn range(&mut self, w: u32, count: u64, terms: u64) {
        let e = self.ranges.entry(w).or_default();
        e.0 = e.0.saturating_add(count);
        e.1 = e.1.saturating_add(terms);
    }

    /// `circuit::Builder::relu` on `n` values of `bits` bits.
    fn relu(&mut self, n: u64, bits: u32) {
        self.pre = self.pre.saturating_add(n.saturating_mul(2));
        self.cons = self.cons.saturating_add(n.saturating_mul(2));
        self.nnz = self.nnz.saturating_add(n.saturating_mul(7));
        self.range(bits - 1, n, n.saturating_mul(3));
    }

    /// `circuit::Builder::max` over `windows` windows of `taps` items in all (`singles` windows
    /// of one item), with zero among the items for a fused ReLU.
    fn max(&mut self, windows: u64, taps: u64, singles: u64, with_zero: bool, bits: u32) {
        let diffs = if with_zero {
            taps.saturating_add(windows)
        } else {
            taps
        };
        let ones = if with_zero { 0 } else { singles };
        self.pre = self.pre.saturating_add(windows);
        self.range(bits, diffs, diffs.saturating_mul(3));
        // Σ(d−1) products for windows of d ≥ 2 differences, one constraint for d = 1.
        let products = diffs.saturating_sub(windows).saturating_add(ones);
        self.cons = self.cons.saturating_add(products);
        self.nnz = self.nnz.saturating_add(products.saturating_mul(7));
        self.rest = self.rest.saturating_add(
            diffs
                .saturating_add(ones)
                .saturating_sub(windows.saturating_mul(2)),
        );
    }

    /// `circuit::Builder::lut` on `n` values.
    fn lut(&mut self, n: u64) {
        self.pre = self.pre.saturating_add(n.saturating_mul(2));
        self.rest = self.rest.saturating_add(n.saturating_mul(2));
        self.cons = self.cons.saturating_add(n.saturating_mul(2));
        self.nnz = self.nnz.saturating_add(n.saturating_mul(8));
        self.range(LUT_REMAINDER_BITS, n, n.saturating_mul(4));
        self.luts = self.luts.saturating_add(n);
    }

    /// Prices the range checks with the strategy calibration would choose for these widths,
    /// and adds the lookup tables.
    fn finish(mut self) -> CircuitEstimate {
        let widths = Stats {
            range_widths: self
                .ranges
                .iter()
                .map(|(&w, &(n, _))| (w, usize::try_from(n).unwrap_or(usize::MAX)))
                .collect(),
            ..Default::default()
        };
        let t = crate::quant::choose_table_bits(&widths);
        let mut lookups = 0u64;
        let mut tables: BTreeSet<u32> = BTreeSet::new();
        for (&w, &(n, terms)) in &self.ranges {
            let w64 = u64::from(w);
            if t == 0 {
                // w booleans (3 entries each) and the recombination.
                self.cons = self.cons.saturating_add(n.saturating_mul(w64 + 1));
                self.pre = self.pre.saturating_add(n.saturating_mul(w64));
                self.nnz = self
                    .nnz
                    .saturating_add(n.saturating_mul(4 * w64 + 1))
                    .saturating_add(terms);
            } else if w <= t {
                self.cons = self.cons.saturating_add(n);
                self.rest = self.rest.saturating_add(n);
                lookups = lookups.saturating_add(n);
                self.nnz = self
                    .nnz
                    .saturating_add(n.saturating_mul(4))
                    .saturating_add(terms);
                tables.insert(w);
            } else {
                let chunks = u64::from(w.div_ceil(t));
                let each = n.saturating_mul(chunks);
                self.cons = self.cons.saturating_add(each).saturating_add(n);
                self.pre = self.pre.saturating_add(each);
                self.rest = self.rest.saturating_add(each);
                lookups = lookups.saturating_add(each);
                self.nnz = self
                    .nnz
                    .saturating_add(each.saturating_mul(6))
                    .saturating_add(n)
                    .saturating_add(terms);
                tables.insert(t);
                // The last chunk's table is as wide as the calibrated width modulo t: the
                // widths are not known yet, so every narrower table may be needed.
                tables.extend(1..t);
            }
        }
        let mut entries = 0u64;
        if lookups > 0 {
            let range_entries = tables
                .iter()
                .filter(|&&w| w > 0)
                .fold(0u64, |a, &w| a.saturating_add(1u64 << w.min(62)));
            entries = range_entries;
            self.cons = self.cons.saturating_add(range_entries).saturating_add(1);
            self.nnz = self
                .nnz
                .saturating_add(range_entries.saturating_mul(6))
                .saturating_add(lookups);
        }
        if self.luts > 0 {
            entries = entries.saturating_add(LUT_TABLE);
            self.cons = self.cons.saturating_add(LUT_TABLE + 1);
            self.nnz = self
                .nnz
                .saturating_add(LUT_TABLE * 7)
                .saturating_add(self.luts);
        }
        self.pre = self.pre.saturating_add(entries);
        self.rest = self.rest.saturating_add(entries);
        CircuitEstimate {
            constraints: self.cons,
            precommitted: self.pre,
            rest: self.rest,
            lookups: lookups.saturating_add(self.luts),
            table_entries: entries,
            nnz: self.nnz,
            table_bits: t,
            ..Default::default()
        }
    }
}
