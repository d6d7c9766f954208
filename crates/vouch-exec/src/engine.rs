//! The engine abstraction every runtime implements.

use std::fmt;
use std::sync::Arc;
use vouch_core::{ExecProfile, ModelSignature, TensorMap};

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
    /// Inputs do not fit the model.
    #[error("{0}")]
    BadInput(String),
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
    fn load(&self, model_bytes: &[u8]) -> Result<Arc<dyn LoadedModel>, ExecError>;
}

/// A compiled model, shareable across threads.
pub trait LoadedModel: Send + Sync {
    fn engine(&self) -> EngineKind;
    fn signature(&self) -> &ModelSignature;
    /// Runs one (possibly batched) set of inputs. Inputs have been checked against the signature.
    fn run(&self, inputs: &TensorMap) -> Result<TensorMap, ExecError>;
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
