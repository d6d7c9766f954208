//! tract: pure Rust, single-threaded, bit-for-bit reproducible. The fallback engine and the one
//! `vouch replay` uses to re-derive outputs independently of the node.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use parking_lot::Mutex;
use tract_onnx::pb;
use tract_onnx::prelude::{
    DatumType, Framework, InferenceFact, InferenceModelExt, IntoRunnable, Symbol, SymbolValues,
    TDim, TValue, TVec, Tensor as TractTensor, TypedFact, TypedRunnableModel, tvec,
};
use vouch_core::{
    DType, Dim, ExecProfile, ModelSignature, Tensor, TensorData, TensorMap, TensorSpec,
};

use crate::engine::{Engine, EngineKind, ExecError, LoadedModel};
use crate::model_file::ModelFile;
use crate::run_control::RunControl;

pub struct TractEngine;

/// tract's version, as compiled in (receipts record it so replays know what to reproduce).
pub const TRACT_VERSION: &str = "0.23.9";

impl Engine for TractEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Tract
    }

    fn version(&self) -> String {
        TRACT_VERSION.to_string()
    }

    fn load_file(&self, file: &ModelFile) -> Result<Arc<dyn LoadedModel>, ExecError> {
        let err = |reason: String| ExecError::Load {
            engine: EngineKind::Tract,
            reason,
        };
        let onnx = tract_onnx::onnx();
        let signature = file.signature().clone();
        let mut model = onnx
            .model_for_proto_model(file.proto())
            .map_err(|e| err(format!("{e:#}")))?;
        let mut input_symbols: Vec<Vec<Option<Symbol>>> = Vec::new();
        for (i, spec) in signature.inputs.iter().enumerate() {
            let syms: Vec<Option<Symbol>> = spec
                .shape
                .iter()
                .enumerate()
                .map(|(j, d)| match d {
                    Dim::Fixed(_) => None,
                    Dim::Free(Some(s)) => Some(model.sym(s)),
                    Dim::Free(None) => Some(model.sym(&format!("unk_{i}_{j}"))),
                })
                .collect();
            let dims: TVec<TDim> = spec
                .shape
                .iter()
                .zip(&syms)
                .map(|(d, sym)| match (d, sym) {
                    (Dim::Fixed(n), _) => TDim::from(*n as i64),
                    (_, Some(s)) => s.clone().into(),
                    (_, None) => TDim::from(0),
                })
                .collect();
            input_symbols.push(syms);
            let fact = InferenceFact::dt_shape(datum_type(spec.dtype), dims);
            model
                .set_input_fact(i, fact)
                .map_err(|e| err(format!("{e:#}")))?;
        }
        let plan = model
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(|e| err(format!("{e:#}")))?;
        let known: HashSet<Symbol> = input_symbols.iter().flatten().flatten().cloned().collect();
        let sizes = plan
            .model()
            .nodes
            .iter()
            .map(|n| NodeSize::of(&n.outputs, &known))
            .collect();
        Ok(Arc::new(TractModel {
            plan,
            signature,
            row_independence: file.row_independence().clone(),
            bytes: file.bytes().len(),
            input_symbols,
            sizes,
            checked: Mutex::new(HashMap::new()),
        }))
    }
}

struct TractModel {
    plan: Arc<TypedRunnableModel>,
    signature: ModelSignature,
    row_independence: Result<(), String>,
    bytes: usize,
    /// The symbol each free input dim binds, to size nodes from a request's input shapes.
    input_symbols: Vec<Vec<Option<Symbol>>>,
    /// Per node (by id): how its outputs' size is known.
    sizes: Vec<NodeSize>,
    /// Input shapes already sized against the budget, with the nodes that still need checking
    /// as they run (sizes that depend on values); bounded.
    checked: Mutex<HashMap<InputShapes, Arc<Vec<bool>>>>,
}

/// The shapes of a request's inputs, in signature order.
type InputShapes = Vec<Vec<u64>>;

/// How much a node's outputs take, as far as the compiled plan knows.
enum NodeSize {
    /// Fixed shapes: bytes.
    Fixed(u128),
    /// Shapes in terms of the input dims: (dims, element size) per output.
    FromInputs(Vec<(Vec<TDim>, usize)>),
    /// Shapes that depend on values computed in the graph: known only when the node runs.
    FromValues,
}

impl NodeSize {
    fn of(outputs: &[tract_onnx::prelude::Outlet<TypedFact>], known: &HashSet<Symbol>) -> Self {
        let mut fixed = 0u128;
        let mut symbolic = Vec::new();
        for o in outputs {
            let size = o.fact.datum_type.size_of();
            if let Some(dims) = o.fact.shape.as_concrete() {
                let n = dims.iter().fold(1u128, |a, &d| a.saturating_mul(d as u128));
                fixed = fixed.saturating_add(n.saturating_mul(size as u128));
            } else if o
                .fact
                .shape
                .iter()
                .all(|d| d.symbols().iter().all(|s| known.contains(s)))
            {
                symbolic.push((o.fact.shape.iter().cloned().collect(), size));
            } else {
                return NodeSize::FromValues;
            }
        }
        if symbolic.is_empty() {
            NodeSize::Fixed(fixed)
        } else {
            NodeSize::FromInputs(symbolic)
        }
    }
}

/// Most input-shape verdicts a model remembers.
const CHECKED_SHAPES: usize = 256;

impl TractModel {
    /// Sizes every node whose outputs follow from the input shapes; fails when one exceeds
    /// `budget`. Returns which nodes must still be checked as they run. Remembered per shape,
    /// so a model served at steady shapes pays this once.
    fn size_for(&self, inputs: &TensorMap, budget: u128) -> Result<Arc<Vec<bool>>, ExecError> {
        let shapes: Vec<Vec<u64>> = self
            .signature
            .inputs
            .iter()
            .map(|s| {
                inputs
                    .get(&s.name)
                    .map(|t| t.shape().to_vec())
                    .unwrap_or_default()
            })
            .collect();
        if let Some(v) = self.checked.lock().get(&shapes) {
            return Ok(v.clone());
        }
        let mut values = SymbolValues::default();
        for (syms, shape) in self.input_symbols.iter().zip(&shapes) {
            for (sym, &d) in syms.iter().zip(shape) {
                if let Some(sym) = sym {
                    values.set(sym, d as i64);
                }
            }
        }
        let mut check_live = vec![false; self.sizes.len()];
        for (id, size) in self.sizes.iter().enumerate() {
            let bytes = match size {
                NodeSize::Fixed(b) => Some(*b),
                NodeSize::FromValues => None,
                NodeSize::FromInputs(outs) => outs.iter().try_fold(0u128, |acc, (dims, size)| {
                    let n = dims.iter().try_fold(1u128, |a, d| {
                        let v = d.eval(&values).to_i64().ok()?;
                        a.checked_mul(u128::try_from(v).ok()?)
                    })?;
                    acc.checked_add(n.checked_mul(*size as u128)?)
                }),
            };
            match bytes {
                Some(b) if b > budget => {
                    return Err(over_budget(&self.plan.model().nodes[id], b, budget));
                }
                Some(_) => {}
                None => check_live[id] = true,
            }
        }
        let verdict = Arc::new(check_live);
        let mut cache = self.checked.lock();
        if cache.len() >= CHECKED_SHAPES {
            cache.clear();
        }
        cache.insert(shapes, verdict.clone());
        Ok(verdict)
    }
}

/// Inputs up to this many elements are given to shape inference with their values, so that
/// shapes computed from values (`ConstantOfShape`, `Range`, `Expand`, `Reshape`) are known
/// before the node allocates them; larger ones only by shape.
const VALUE_FACT_MAX_ELEMENTS: usize = 64;

/// Bytes a node's inputs already hold plus what its outputs will take, when shape inference on
/// the actual inputs (values of small ones included) can tell; `None` when it cannot.
fn node_bytes(
    node: &tract_onnx::prelude::Node<TypedFact, Box<dyn tract_onnx::prelude::TypedOp>>,
    inputs: &[TValue],
) -> Option<u128> {
    let facts: Vec<TypedFact> = inputs
        .iter()
        .map(|v| {
            if v.len() <= VALUE_FACT_MAX_ELEMENTS {
                TypedFact::try_from(tract_onnx::prelude::IntoArcTensor::into_arc_tensor(
                    v.clone(),
                ))
                .unwrap_or_else(|_| TypedFact::shape_and_dt_of(v))
            } else {
                TypedFact::shape_and_dt_of(v)
            }
        })
        .collect();
    let refs: Vec<&TypedFact> = facts.iter().collect();
    let held: u128 = inputs
        .iter()
        .map(|v| (v.len() as u128) * (v.datum_type().size_of() as u128))
        .sum();
    let outs = node.op.output_facts(&refs).ok()?;
    let mut total = held;
    for f in &outs {
        let dims = f.shape.as_concrete()?;
        let n = dims
            .iter()
            .try_fold(1u128, |acc, &d| acc.checked_mul(d as u128))?;
        total = total.checked_add(n.checked_mul(f.datum_type.size_of() as u128)?)?;
    }
    Some(total)
}

impl LoadedModel for TractModel {
    fn engine(&self) -> EngineKind {
        EngineKind::Tract
    }

    fn signature(&self) -> &ModelSignature {
        &self.signature
    }

    fn row_independence(&self) -> &Result<(), String> {
        &self.row_independence
    }

    fn run_controlled(
        &self,
        inputs: &TensorMap,
        control: &RunControl,
    ) -> Result<TensorMap, ExecError> {
        let run_err = |reason: String| ExecError::Run {
            engine: EngineKind::Tract,
            reason,
        };
        let mut values: TVec<TValue> = tvec![];
        for spec in &self.signature.inputs {
            let t = inputs
                .get(&spec.name)
                .ok_or_else(|| ExecError::BadInput(format!("missing input {:?}", spec.name)))?;
            values.push(to_tract(t).map_err(run_err)?.into());
        }
        let budget = control.memory_bytes() as u128;
        control.check()?;
        let check_live = self.size_for(inputs, budget)?;
        // Set by the evaluation hook, which can only return an opaque error to tract.
        let mut refused: Option<ExecError> = None;
        let mut state = self.plan.spawn().map_err(|e| run_err(format!("{e:#}")))?;
        let mut step = 0usize;
        let result = state.run_plan_with_eval(values, |ctx, op_state, node, inputs| {
            // Between nodes: stop when the caller went away or the deadline passed (the clock
            // is read every 8th node), and refuse a node whose tensors, sized from the values
            // it is given, would exceed the run's budget before it allocates them.
            step += 1;
            if step.is_multiple_of(8)
                && let Err(e) = control.check()
            {
                refused = Some(e);
                anyhow_stop()?;
            }
            if check_live.get(node.id).copied().unwrap_or(true)
                && let Some(bytes) = node_bytes(node, &inputs)
                && bytes > budget
            {
                refused = Some(over_budget(node, bytes, budget));
                anyhow_stop()?;
            }
            tract_onnx::tract_core::plan::eval(ctx, op_state, node, inputs)
        });
        let outs = match (result, refused) {
            (_, Some(e)) => return Err(e),
            (r, None) => r.map_err(|e| run_err(format!("{e:#}")))?,
        };
        let mut map = TensorMap::new();
        for (spec, v) in self.signature.outputs.iter().zip(outs.iter()) {
            map.insert(spec.name.clone(), from_tract(v).map_err(run_err)?);
        }
        Ok(map)
    }

    fn profile(&self) -> ExecProfile {
        ExecProfile {
            threads: 1,
            deterministic: true,
            batch: 1,
        }
    }

    fn max_concurrency(&self) -> usize {
        // The plan is immutable; every run gets its own state.
        usize::MAX
    }

    fn memory_bytes(&self) -> usize {
        // Weights plus packed copies and activations: about twice the file, plus fixed overhead.
        self.bytes * 2 + (1 << 20)
    }
}

/// The refusal of a node whose tensors would take `bytes`, over `budget`.
fn over_budget(
    node: &tract_onnx::prelude::Node<TypedFact, Box<dyn tract_onnx::prelude::TypedOp>>,
    bytes: u128,
    budget: u128,
) -> ExecError {
    ExecError::MemoryLimit {
        limit_mib: (budget >> 20) as usize,
        detail: format!(
            "node {:?} ({}) would hold {} MiB of tensors",
            node.name,
            node.op.name(),
            bytes >> 20
        ),
    }
}

/// The error a hook returns to make tract stop; the reason travels beside it.
fn anyhow_stop() -> tract_onnx::prelude::TractResult<()> {
    Err(tract_onnx::tract_core::internal::anyhow!(
        "stopped by vouch"
    ))
}

/// The model's declared interface, read from the ONNX graph (initializers excluded: old exporters
/// list weights as inputs too).
pub fn signature_from_proto(proto: &pb::ModelProto) -> Result<ModelSignature, String> {
    let graph = proto.graph.as_ref().ok_or("the ONNX file has no graph")?;
    let initializers: std::collections::HashSet<&str> =
        graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let spec = |vi: &pb::ValueInfoProto| -> Result<TensorSpec, String> {
        let tensor_type = match vi.r#type.as_ref().and_then(|t| t.value.as_ref()) {
            Some(pb::type_proto::Value::TensorType(t)) => t,
            None => {
                return Err(format!(
                    "{:?} is not a tensor (sequence/map inputs are not supported)",
                    vi.name
                ));
            }
        };
        let dtype = dtype_from_onnx(tensor_type.elem_type).ok_or_else(|| {
            format!(
                "{:?} has ONNX element type {}, which Vouch does not accept yet",
                vi.name, tensor_type.elem_type
            )
        })?;
        let shape = tensor_type
            .shape
            .as_ref()
            .ok_or_else(|| format!("{:?} has no declared shape", vi.name))?
            .dim
            .iter()
            .map(|d| match &d.value {
                Some(pb::tensor_shape_proto::dimension::Value::DimValue(n)) if *n >= 0 => {
                    Dim::Fixed(*n as u64)
                }
                Some(pb::tensor_shape_proto::dimension::Value::DimParam(s)) if !s.is_empty() => {
                    Dim::Free(Some(s.clone()))
                }
                _ => Dim::Free(None),
            })
            .collect();
        Ok(TensorSpec {
            name: vi.name.clone(),
            dtype,
            shape,
        })
    };
    let inputs = graph
        .input
        .iter()
        .filter(|vi| !initializers.contains(vi.name.as_str()))
        .map(spec)
        .collect::<Result<Vec<_>, _>>()?;
    let outputs = graph
        .output
        .iter()
        .map(spec)
        .collect::<Result<Vec<_>, _>>()?;
    if outputs.is_empty() {
        return Err("the graph declares no outputs".into());
    }
    Ok(ModelSignature { inputs, outputs })
}

/// ONNX `TensorProto.DataType` codes, which [`DType::code`] mirrors.
pub fn dtype_from_onnx(code: i32) -> Option<DType> {
    DType::ALL.into_iter().find(|d| d.code() as i32 == code)
}

fn datum_type(d: DType) -> DatumType {
    match d {
        DType::Float32 => DatumType::F32,
        DType::Float64 => DatumType::F64,
        DType::Int8 => DatumType::I8,
        DType::Int16 => DatumType::I16,
        DType::Int32 => DatumType::I32,
        DType::Int64 => DatumType::I64,
        DType::Uint8 => DatumType::U8,
        DType::Uint16 => DatumType::U16,
        DType::Uint32 => DatumType::U32,
        DType::Uint64 => DatumType::U64,
        DType::Bool => DatumType::Bool,
    }
}

fn to_tract(t: &Tensor) -> Result<TractTensor, String> {
    let shape: Vec<usize> = t.shape().iter().map(|&d| d as usize).collect();
    let r = match t.data() {
        TensorData::Float32(v) => TractTensor::from_shape(&shape, v),
        TensorData::Float64(v) => TractTensor::from_shape(&shape, v),
        TensorData::Int8(v) => TractTensor::from_shape(&shape, v),
        TensorData::Int16(v) => TractTensor::from_shape(&shape, v),
        TensorData::Int32(v) => TractTensor::from_shape(&shape, v),
        TensorData::Int64(v) => TractTensor::from_shape(&shape, v),
        TensorData::Uint8(v) => TractTensor::from_shape(&shape, v),
        TensorData::Uint16(v) => TractTensor::from_shape(&shape, v),
        TensorData::Uint32(v) => TractTensor::from_shape(&shape, v),
        TensorData::Uint64(v) => TractTensor::from_shape(&shape, v),
        TensorData::Bool(v) => TractTensor::from_shape(&shape, v),
    };
    r.map_err(|e| format!("{e:#}"))
}

fn from_tract(t: &TractTensor) -> Result<Tensor, String> {
    let shape: Vec<u64> = t.shape().iter().map(|&d| d as u64).collect();
    macro_rules! take {
        ($ty:ty, $variant:ident) => {
            TensorData::$variant(
                t.try_as_plain_ram()
                    .and_then(|p| p.as_slice::<$ty>().map(|s| s.to_vec()))
                    .map_err(|e| format!("{e:#}"))?,
            )
        };
    }
    let data = match t.datum_type() {
        DatumType::F32 => take!(f32, Float32),
        DatumType::F64 => take!(f64, Float64),
        DatumType::I8 => take!(i8, Int8),
        DatumType::I16 => take!(i16, Int16),
        DatumType::I32 => take!(i32, Int32),
        DatumType::I64 => take!(i64, Int64),
        DatumType::U8 => take!(u8, Uint8),
        DatumType::U16 => take!(u16, Uint16),
        DatumType::U32 => take!(u32, Uint32),
        DatumType::U64 => take!(u64, Uint64),
        DatumType::Bool => take!(bool, Bool),
        other => return Err(format!("output type {other:?} is not supported yet")),
    };
    Tensor::new(shape, data).map_err(|e| e.to_string())
}
