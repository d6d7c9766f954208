//! The engines this node has, and the per-model choice between them.

use std::sync::Arc;

use vouch_core::{DType, ModelSignature};
use vouch_core::{Dim, Tensor, TensorData, TensorMap};

use crate::engine::{Engine, EngineKind, ExecError, LoadedModel};
use crate::model_file::{ModelFile, ModelLimits};
use crate::ort_engine::OrtEngine;
use crate::run_control::{DEFAULT_RUN_MEMORY, RunControl};
use crate::tract_engine::TractEngine;

/// The engines available on this node, in order of preference.
pub struct Engines {
    ordered: Vec<Arc<dyn Engine>>,
    limits: ModelLimits,
    /// Bounds on the registration trial run.
    trial_time: std::time::Duration,
    run_memory: usize,
}

/// The outcome of registering a model: which engine serves it, the loaded model (ready to cache),
/// and why other engines were passed over.
pub struct Admission {
    pub engine: EngineKind,
    pub model: Arc<dyn LoadedModel>,
    pub passed_over: Vec<(EngineKind, String)>,
}

impl Engines {
    /// ONNX Runtime first when it is present (speed), tract always (coverage, reproducibility).
    pub fn new(ort: Option<OrtEngine>) -> Self {
        let mut ordered: Vec<Arc<dyn Engine>> = Vec::new();
        if let Some(o) = ort {
            ordered.push(Arc::new(o));
        }
        ordered.push(Arc::new(TractEngine));
        Engines {
            ordered,
            limits: ModelLimits::default(),
            trial_time: std::time::Duration::from_secs(30),
            run_memory: DEFAULT_RUN_MEMORY,
        }
    }

    /// Sets what a model file may ask of the node ([`ModelLimits`]) and the bounds of the
    /// registration trial run (time, memory).
    pub fn with_limits(
        mut self,
        limits: ModelLimits,
        trial_time: std::time::Duration,
        run_memory: usize,
    ) -> Self {
        self.limits = limits;
        self.trial_time = trial_time;
        self.run_memory = run_memory;
        self
    }

    /// The gate every model passes before an engine sees it.
    pub fn parse(&self, model_bytes: &[u8]) -> Result<ModelFile, ExecError> {
        ModelFile::parse(model_bytes, &self.limits)
    }

    /// Only tract: deterministic replay and nodes without ONNX Runtime.
    pub fn tract_only() -> Self {
        Self::new(None)
    }

    pub fn preferred(&self) -> EngineKind {
        self.ordered[0].kind()
    }

    pub fn available(&self) -> Vec<(EngineKind, String)> {
        self.ordered
            .iter()
            .map(|e| (e.kind(), e.version()))
            .collect()
    }

    pub fn get(&self, kind: EngineKind) -> Result<&Arc<dyn Engine>, ExecError> {
        self.ordered
            .iter()
            .find(|e| e.kind() == kind)
            .ok_or(ExecError::EngineUnavailable(kind))
    }

    /// Tries each engine in preference order: load, then one run on zero inputs, so a model that
    /// compiles but cannot execute (a missing kernel) is caught at registration, not at the
    /// first paid request. Fails with every engine's reason when none can serve it.
    pub fn admit(&self, model_bytes: &[u8]) -> Result<Admission, ExecError> {
        let file = self.parse(model_bytes)?;
        let mut passed_over = Vec::new();
        for engine in &self.ordered {
            let kind = engine.kind();
            let attempt =
                crate::executor::catch_panic(kind, || engine.load_file(&file)).and_then(|m| {
                    let probe = zero_inputs(m.signature()).map_err(|reason| ExecError::Load {
                        engine: kind,
                        reason,
                    })?;
                    let control = RunControl::new(Some(self.trial_time), self.run_memory);
                    crate::executor::catch_panic(kind, || m.run_controlled(&probe, &control))
                        .map_err(|e| ExecError::Load {
                            engine: kind,
                            reason: format!("loads but fails a trial run: {e}"),
                        })?;
                    Ok(m)
                });
            match attempt {
                Ok(model) => {
                    return Ok(Admission {
                        engine: kind,
                        model,
                        passed_over,
                    });
                }
                Err(e) => passed_over.push((kind, e.to_string())),
            }
        }
        let reasons: Vec<String> = passed_over.iter().map(|(_, r)| r.clone()).collect();
        Err(ExecError::Load {
            engine: self.preferred(),
            reason: reasons.join("; "),
        })
    }

    /// Loads with the engine the registry recorded for this model.
    pub fn load_with(
        &self,
        kind: EngineKind,
        model_bytes: &[u8],
    ) -> Result<Arc<dyn LoadedModel>, ExecError> {
        let file = self.parse(model_bytes)?;
        let engine = self.get(kind)?;
        crate::executor::catch_panic(kind, || engine.load_file(&file))
    }
}

/// Zeros for every input, free dims set to 1: enough to prove the model executes.
pub fn zero_inputs(sig: &ModelSignature) -> Result<TensorMap, String> {
    const MAX_PROBE_ELEMENTS: u64 = 64 << 20;
    let mut map = TensorMap::new();
    for spec in &sig.inputs {
        let shape: Vec<u64> = spec
            .shape
            .iter()
            .map(|d| match d {
                Dim::Fixed(n) => *n,
                Dim::Free(_) => 1,
            })
            .collect();
        // Checked: a declared shape like [1, 2^32, 2^32] must be refused, not wrap or panic.
        let n = shape
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .unwrap_or(u64::MAX);
        if n > MAX_PROBE_ELEMENTS {
            return Err(format!(
                "input {:?} needs {n} elements, over the probe limit",
                spec.name
            ));
        }
        let n = n as usize;
        let data = match spec.dtype {
            DType::Float32 => TensorData::Float32(vec![0.0; n]),
            DType::Float64 => TensorData::Float64(vec![0.0; n]),
            DType::Int8 => TensorData::Int8(vec![0; n]),
            DType::Int16 => TensorData::Int16(vec![0; n]),
            DType::Int32 => TensorData::Int32(vec![0; n]),
            DType::Int64 => TensorData::Int64(vec![0; n]),
            DType::Uint8 => TensorData::Uint8(vec![0; n]),
            DType::Uint16 => TensorData::Uint16(vec![0; n]),
            DType::Uint32 => TensorData::Uint32(vec![0; n]),
            DType::Uint64 => TensorData::Uint64(vec![0; n]),
            DType::Bool => TensorData::Bool(vec![false; n]),
        };
        map.insert(
            spec.name.clone(),
            Tensor::new(shape, data).map_err(|e| e.to_string())?,
        );
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use vouch_core::{DType, Dim, ModelSignature, TensorSpec};

    #[test]
    fn a_probe_for_dims_past_64_bits_is_refused_not_wrapped() {
        let spec = TensorSpec {
            name: "x".into(),
            dtype: DType::Float32,
            shape: vec![Dim::Fixed(1), Dim::Fixed(1 << 32), Dim::Fixed(1 << 32)],
        };
        let sig = ModelSignature {
            inputs: vec![spec.clone()],
            outputs: vec![spec],
        };
        let err = super::zero_inputs(&sig).unwrap_err();
        assert!(err.contains("over the probe limit"), "{err}");
    }
}
