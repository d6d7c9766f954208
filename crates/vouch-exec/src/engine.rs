//! The engine abstraction every runtime implements.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use vouch_core::{ExecProfile, ModelSignature, TensorMap};

use crate::model_file::{ModelFile, ModelLimits};
use crate::run_control::RunControl;

/// Which runtime serves a model. Stored in the registry, so names are stable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EngineKind {
    OnnxRuntime,
    Tract,
}

impl EngineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::OnnxRuntime => "onnxruntime",
            EngineKind::Tract => "tract",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "onnxruntime" | "ort" => Some(EngineKind::OnnxRuntime),
            "tract" => Some(EngineKind::Tract),
            _ => None,
        }
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ExecError {
    /// The bytes are not a model this engine can load (parse, type-check or compile failed).
    #[error("{engine} cannot load the model: {reason}")]
    Load { engine: EngineKind, reason: String },
    /// The model file is refused before any engine sees it (external data, too large a graph).
    #[error("the model is refused: {0}")]
    InvalidModel(String),
    /// Inputs do not fit the model.
    #[error("{0}")]
    BadInput(String),
    /// The run would need more memory than one run may take on this node.
    #[error("the run needs more memory than this node allows one run ({limit_mib} MiB): {detail}")]
    MemoryLimit { limit_mib: usize, detail: String },
    /// The run did not finish within its time limit and was stopped.
    #[error("the run did not finish within {limit:?} and was stopped")]
    TimedOut { limit: Duration },
    /// The caller stopped waiting; the run was dropped or stopped.
    #[error("the request was abandoned before its run finished")]
    Abandoned,
    /// The engine panicked; the worker survived and the model stays loaded.
    #[error("{engine} crashed while running the model: {reason}")]
    Panicked { engine: EngineKind, reason: String },
    /// The engine failed while running.
    #[error("{engine} failed to run the model: {reason}")]
    Run { engine: EngineKind, reason: String },
    /// No engine is available for a kind the registry recorded.
    #[error("engine {0} is not available on this node")]
    EngineUnavailable(EngineKind),
    /// The worker queue is full.
    #[error("the inference queue is full ({capacity} waiting); retry shortly")]
    Overloaded { capacity: usize },
    /// The executor shut down while the request waited.
    #[error("the executor stopped before running the request")]
    Stopped,
}

/// The outputs of one run and how they were computed.
#[derive(Debug, Clone)]
pub struct RunOutput {
    pub outputs: TensorMap,
    pub profile: ExecProfile,
}

/// A runtime that can compile model bytes.
pub trait Engine: Send + Sync {
    fn kind(&self) -> EngineKind;
    /// The runtime's own version string, recorded in receipts.
    fn version(&self) -> String;
    /// Compiles a model that passed the gate ([`ModelFile::parse`]).
    fn load_file(&self, model: &ModelFile) -> Result<Arc<dyn LoadedModel>, ExecError>;
    /// Gate and compile with the default limits (tests, benches, replay).
    fn load(&self, model_bytes: &[u8]) -> Result<Arc<dyn LoadedModel>, ExecError> {
        self.load_file(&ModelFile::parse(model_bytes, &ModelLimits::default())?)
    }
}

/// A compiled model, shareable across threads.
pub trait LoadedModel: Send + Sync {
    fn engine(&self) -> EngineKind;
    fn signature(&self) -> &ModelSignature;
    /// Runs one (possibly batched) set of inputs, within `control`'s deadline and memory budget
    /// and until it is stopped. Inputs have been checked against the signature.
    fn run_controlled(
        &self,
        inputs: &TensorMap,
        control: &RunControl,
    ) -> Result<TensorMap, ExecError>;
    /// Runs without a deadline and with the default memory budget (tests, benches, replay).
    fn run(&self, inputs: &TensorMap) -> Result<TensorMap, ExecError> {
        self.run_controlled(inputs, &RunControl::unbounded())
    }
    /// Whether requests may share a batch: `Ok` only when the graph is proven to keep rows
    /// independent ([`crate::row_independence`]).
    fn row_independence(&self) -> &Result<(), String>;
    /// Threads one run uses and whether runs are bit-reproducible (batch is filled in by the caller).
    fn profile(&self) -> ExecProfile;
    /// How many runs of this model may proceed at once (the executor never exceeds its worker
    /// count either). One for engines whose compiled model takes one run at a time.
    fn max_concurrency(&self) -> usize {
        1
    }
    /// Estimated resident memory, used to weigh the model in the cache.
    fn memory_bytes(&self) -> usize;
}

/// Checks inputs against the signature: every declared input present, no extras, dtypes and
/// shapes fit. Messages name the tensor and the expected shape.
pub fn check_inputs(sig: &ModelSignature, inputs: &TensorMap) -> Result<(), ExecError> {
    for spec in &sig.inputs {
        let t = inputs.get(&spec.name).ok_or_else(|| {
            ExecError::BadInput(format!(
                "missing input {:?} ({} {})",
                spec.name,
                spec.dtype,
                spec.shape_string()
            ))
        })?;
        spec.check(t).map_err(ExecError::BadInput)?;
        check_shape_span(&spec.name, t.shape())?;
    }
    if let Some((extra, _)) = inputs
        .iter()
        .find(|(n, _)| !sig.inputs.iter().any(|s| &s.name == *n))
    {
        let names: Vec<&str> = sig.inputs.iter().map(|s| s.name.as_str()).collect();
        return Err(ExecError::BadInput(format!(
            "unknown input {extra:?}: the model takes {names:?}"
        )));
    }
    Ok(())
}

/// Most elements a shape may describe when its zero-length dims are counted as 1. A tensor with
/// no elements can still carry dims an engine multiplies (`[1, 0, 2^63]` overflowed tract's
/// shape arithmetic and killed a worker), so every shape must stay far inside 64-bit sizes.
pub const MAX_SHAPE_SPAN: u64 = 1 << 40;

fn check_shape_span(name: &str, shape: &[u64]) -> Result<(), ExecError> {
    let span = shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d.max(1)))
        .filter(|&s| s <= MAX_SHAPE_SPAN);
    match span {
        Some(_) => Ok(()),
        None => Err(ExecError::BadInput(format!(
            "input {name:?} has shape {shape:?}, whose dims (zeros counted as 1) multiply past \
             2^40; no model here takes such a shape"
        ))),
    }
}
