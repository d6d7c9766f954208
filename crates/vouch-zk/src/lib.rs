//! Vouch's zk tier: quantises an ONNX model to fixed point, compiles it to an R1CS with logUp
//! lookups, proves `output = model(input)` with Spartan2 (Hyrax commitments, transparent setup)
//! and verifies such proofs offline from the model file alone.
//!
//! It owns quantisation, circuits, keys, the prover, the verifier, the admission estimate and the
//! `evidence["zk"]` format. The prover half (cargo feature `prover`, on by default: calibration,
//! analysis, the size estimate and admission, proving) is left out of offline verifiers
//! (`default-features = false`); the verifier half still imports the model and builds its circuit,
//! because it recomputes the verifying key from the model file, and so still needs Spartan2. It must not run engines, touch a network, a database or an async
//! runtime: the verifier half is a plain library any program can embed, and the server drives
//! proving on its own worker threads.
//!
//! Public statement of every proof (see `docs/zk.md`): the verifying-key digest (which fixes the
//! model's weights and quantisation), the quantised input, the quantised output and the receipt
//! hash, so a proof cannot be replayed for another request, model or output.

pub mod circuit;
pub mod error;
#[cfg(feature = "prover")]
pub mod estimate;
pub mod evidence;
pub mod graph;
pub mod limits;
pub mod onnx;
pub mod pb;
#[cfg(feature = "prover")]
pub mod quant;
#[cfg(feature = "prover")]
pub mod size;
mod snark;
pub mod tensor;

#[cfg(feature = "prover")]
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use vouch_core::{DType, Digest, ModelDigest, Receipt, Tensor, TensorData, TensorMap};

pub use circuit::{QuantConfig, Stats};
pub use error::ZkError;
#[cfg(feature = "prover")]
pub use estimate::{Admission, Estimate, NodeCapacity, admit, estimate};
pub use evidence::{EVIDENCE_FORMAT, ZkEvidence};
pub use limits::{Deadline, Limits};
#[cfg(feature = "prover")]
pub use size::{CircuitEstimate, estimate_model};
pub use snark::SYSTEM;

/// Domain tag of the verifying-key digest.
const VK_DOMAIN: &[u8] = b"vouch.zk.vk.v1\0";

/// Everything that, with the model bytes, fixes the circuit: anyone holding the model file and
/// this config recomputes the same verifying key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZkConfig {
    pub quant: QuantConfig,
    /// Largest |proven output − engine float output| a verifier accepts by default: the
    /// calibrated quantisation error with generous headroom.
    pub output_tolerance: f64,
    /// Present for models the tensor system proves (then `quant` only names the activation and
    /// weight scales): its fixed-point choices, which with the model fix the model key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tensor: Option<tensor::builder::Fixed>,
}

impl ZkConfig {
    fn canonical(&self) -> Vec<u8> {
        // serde_json of plain numbers and arrays is deterministic for this struct.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Changes whenever the circuit built for a model (and so its verifying key) changes: 2 is the
/// bit-grouped witness layout with a Hyrax width chosen per circuit.
pub const CIRCUIT_VERSION: u32 = 2;

#[cfg(feature = "prover")]
/// What registration records about a model's zk tier.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ZkModelInfo {
    pub model: ModelDigest,
    pub system: String,
    /// [`CIRCUIT_VERSION`] of the analysis; 0 for analyses recorded before versions existed. A
    /// node re-analyses a model whose recorded version is not its own, since the verifying key
    /// of the same model changes with the circuit.
    #[serde(default)]
    pub circuit_version: u32,
    pub config: ZkConfig,
    /// Digest of the verifying key: record it with the model's registry entry.
    pub vk_digest: Digest,
    pub stats: Stats,
    pub estimate: Estimate,
    /// Calibration accuracy: largest |quantised − float| over the calibration samples.
    pub calibration_max_abs_err: f64,
    pub calibration_samples: usize,
    pub vk_bytes: u64,
    pub keygen_ms: u64,
    /// Parameters (weights + biases) and multiply-accumulates of one inference.
    pub params: u64,
    pub macs: u64,
    /// What the graph alone predicted before anything was built ([`estimate_model`]); absent
    /// in analyses recorded before the estimate existed.
    #[serde(default)]
    pub size_estimate: Option<CircuitEstimate>,
}

#[cfg(feature = "prover")]
/// Calibration choices for [`analyze_with`].
#[derive(Clone, Debug)]
pub struct AnalyzeOptions {
    /// Representative inputs (e.g. the sample shipped with the model); synthetic standard-normal
    /// inputs and an all-zero input are always added.
    pub samples: Vec<TensorMap>,
    /// Output error the scale search aims for.
    pub target_abs_err: f64,
    /// Force a scale (bits) instead of searching.
    pub fixed_scale: Option<u32>,
    /// Force the range-check strategy (0 = bits, t = logUp with t-bit chunks) instead of the
    /// cost model's choice: for measuring alternatives.
    pub table_bits: Option<u32>,
    /// Largest graph and circuit to analyse, checked against [`estimate_model`] before anything
    /// is built (`ZkError::OverLimit` beyond them).
    pub limits: Limits,
    /// When to give up (`ZkError::OverLimit` naming the time limit).
    pub deadline: Deadline,
}

#[cfg(feature = "prover")]
impl Default for AnalyzeOptions {
    fn default() -> Self {
        AnalyzeOptions {
            samples: vec![],
            target_abs_err: 1e-4,
            fixed_scale: None,
            table_bits: None,
            limits: Limits::default(),
            deadline: Deadline::none(),
        }
    }
}

/// Proving and verifying keys for one model and config, plus what is needed to build witnesses.
///
/// Spartan2's proving and verifying keys each carry the constraint matrices and their
/// evaluation tables, so a process that only proves (a node) or only verifies (a verifier) can
/// keep one of them: [`ZkKeys::generate_prover`], [`ZkKeys::generate_verifier`]. The verifying-key
/// digest is the same whichever keys are kept.
pub struct ZkKeys {
    model: ModelDigest,
    graph: graph::Graph,
    config: ZkConfig,
    #[cfg(feature = "prover")]
    pk: Option<snark::ProverKey>,
    vk: Option<snark::VerifierKey>,
    vk_digest: Digest,
    stats: Stats,
    /// The tensor system's keys, for the models it proves (the fields above are then empty).
    tensor: Option<Box<tensor::system::TensorKeys>>,
}

impl std::fmt::Debug for ZkKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZkKeys")
            .field("model", &self.model)
            .field("vk_digest", &self.vk_digest)
            .finish_non_exhaustive()
    }
}

fn load_graph(model_bytes: &[u8], deadline: &Deadline) -> Result<graph::Graph, ZkError> {
    let mut g = onnx::import_until(model_bytes, deadline)?;
    onnx::fold_affine(&mut g);
    Ok(g)
}

/// An all-zero input: key generation records the constraints on it.
fn zeros(g: &graph::Graph) -> Vec<Vec<i128>> {
    g.inputs
        .iter()
        .map(|io| vec![0; g.value_len[io.value]])
        .collect()
}

fn vk_digest_of(spartan: [u8; 32], cfg: &ZkConfig) -> Digest {
    let c = cfg.canonical();
    Digest::of_parts([VK_DOMAIN, SYSTEM.as_bytes(), b"\0", &spartan[..], &c[..]])
}

impl ZkKeys {
    /// Derives the keys deterministically from the model bytes and the config.
    #[cfg(feature = "prover")]
    pub fn generate(model_bytes: &[u8], config: &ZkConfig) -> Result<Self, ZkError> {
        Self::derive(model_bytes, config, true, true)
    }

    #[cfg(feature = "prover")]
    /// The same keys for proving only: the verifying key is dropped once its digest is taken
    /// (an MLP's keys in memory: about half). [`verify_statement`] refuses these keys.
    pub fn generate_prover(model_bytes: &[u8], config: &ZkConfig) -> Result<Self, ZkError> {
        Self::derive(model_bytes, config, true, false)
    }

    /// The same keys for verifying only (what [`verify`] derives from a model file): the proving
    /// key is dropped at once. [`prove`] refuses these keys.
    pub fn generate_verifier(model_bytes: &[u8], config: &ZkConfig) -> Result<Self, ZkError> {
        Self::derive(model_bytes, config, false, true)
    }

    fn derive(
        model_bytes: &[u8],
        config: &ZkConfig,
        keep_pk: bool,
        keep_vk: bool,
    ) -> Result<Self, ZkError> {
        if let Some(fixed) = &config.tensor {
            let _ = keep_vk;
            let model = ModelDigest::of_model_bytes(model_bytes);
            let keys = tensor::system::TensorKeys::derive(model_bytes, fixed, keep_pk)?;
            return Ok(ZkKeys::of_tensor(model, config, keys));
        }
        let g = load_graph(model_bytes, &Deadline::none())?;
        let model = ModelDigest::of_model_bytes(model_bytes);
        Self::derive_from(g, model, config, (keep_pk, keep_vk), &Deadline::none())
    }

    /// Keys for a graph already imported from the model with digest `model`.
    fn derive_from(
        g: graph::Graph,
        model: ModelDigest,
        config: &ZkConfig,
        (keep_pk, keep_vk): (bool, bool),
        deadline: &Deadline,
    ) -> Result<Self, ZkError> {
        let built = circuit::build(&g, &config.quant, &zeros(&g), [0, 0], true, deadline)?;
        let stats = built.stats.clone();
        let width = snark::hyrax_width(&stats);
        deadline.check()?;
        let circuit = snark::Circuit::with_deadline(built, true, deadline.clone());
        let (pk, vk) = snark::setup(circuit, width).map_err(|e| {
            // Setup stops (as a synthesis error) when the deadline passes mid-way.
            if deadline.expired() {
                deadline.error()
            } else {
                e
            }
        })?;
        let vk_digest = vk_digest_of(snark::vk_digest(&vk)?, config);
        // A verifier-only build has nothing to prove with: the proving key is dropped here.
        #[cfg(not(feature = "prover"))]
        let _ = (pk, keep_pk);
        Ok(ZkKeys {
            model,
            graph: g,
            config: config.clone(),
            #[cfg(feature = "prover")]
            pk: keep_pk.then_some(pk),
            vk: keep_vk.then_some(vk),
            vk_digest,
            stats,
            tensor: None,
        })
    }

    fn of_tensor(model: ModelDigest, config: &ZkConfig, keys: tensor::system::TensorKeys) -> Self {
        ZkKeys {
            model,
            graph: graph::Graph {
                inputs: vec![],
                outputs: vec![],
                value_len: vec![],
                ops: vec![],
                params: 0,
            },
            config: config.clone(),
            #[cfg(feature = "prover")]
            pk: None,
            vk: None,
            vk_digest: keys.digest,
            stats: Stats::default(),
            tensor: Some(Box::new(keys)),
        }
    }

    #[cfg(feature = "prover")]
    fn pk(&self) -> Result<&snark::ProverKey, ZkError> {
        self.pk
            .as_ref()
            .ok_or_else(|| ZkError::Internal("these keys were derived for verifying only".into()))
    }

    fn vk(&self) -> Result<&snark::VerifierKey, ZkError> {
        self.vk.as_ref().ok_or_else(|| {
            ZkError::Internal(
                "these keys were derived for proving only: derive verifying keys from the model file"
                    .into(),
            )
        })
    }

    pub fn vk_digest(&self) -> Digest {
        self.vk_digest
    }
    pub fn model(&self) -> ModelDigest {
        self.model
    }
    pub fn config(&self) -> &ZkConfig {
        &self.config
    }
    pub fn stats(&self) -> &Stats {
        &self.stats
    }
    /// Serialised verifying key (for nodes that publish it next to the model): the model key for
    /// the tensor system.
    pub fn vk_bytes(&self) -> Result<Vec<u8>, ZkError> {
        if let Some(t) = &self.tensor {
            return t.key_bytes();
        }
        snark::vk_to_bytes(self.vk()?)
    }
}

#[cfg(feature = "prover")]
/// Analyses a model with default calibration: supported or not, circuit size, keys' digest.
pub fn analyze(model_bytes: &[u8]) -> Result<ZkModelInfo, ZkError> {
    analyze_with(model_bytes, &AnalyzeOptions::default()).map(|(i, _)| i)
}

#[cfg(feature = "prover")]
/// Analyses a model and returns the keys too (so a node can cache them).
///
/// The graph's circuit size is estimated first ([`estimate_model`]) and checked against
/// `opts.limits`, so a model too large for them is refused (`ZkError::OverLimit`, naming the
/// estimate and the limit) before calibration or key generation allocates anything in
/// proportion to its circuit; `opts.deadline` is polled throughout.
pub fn analyze_with(
    model_bytes: &[u8],
    opts: &AnalyzeOptions,
) -> Result<(ZkModelInfo, ZkKeys), ZkError> {
    if tensor::system::recognises(model_bytes) {
        return analyze_tensor(model_bytes, opts);
    }
    let (size, g, cal) = calibrated(model_bytes, opts)?;
    let config = ZkConfig {
        quant: cal.config,
        output_tolerance: (cal.max_abs_err * 10.0).max(1e-3),
        tensor: None,
    };
    let (params, macs) = (g.params as u64, g.macs() as u64);
    let t = Instant::now();
    let model = ModelDigest::of_model_bytes(model_bytes);
    let keys = ZkKeys::derive_from(g, model, &config, (true, true), &opts.deadline)?;
    let keygen_ms = t.elapsed().as_millis() as u64;
    let vk_bytes = snark::vk_len(keys.vk()?)?;
    let info = ZkModelInfo {
        model: keys.model,
        system: SYSTEM.to_string(),
        circuit_version: CIRCUIT_VERSION,
        config,
        vk_digest: keys.vk_digest,
        estimate: estimate(&keys.stats),
        stats: keys.stats.clone(),
        calibration_max_abs_err: cal.max_abs_err,
        calibration_samples: cal.samples,
        vk_bytes,
        keygen_ms,
        params,
        macs,
        size_estimate: Some(size),
    };
    Ok((info, keys))
}

#[cfg(feature = "prover")]
/// [`analyze_with`] for the tensor system: the shape estimate checked against the limits, then
/// the program built and the weights committed (the model key).
fn analyze_tensor(
    model_bytes: &[u8],
    opts: &AnalyzeOptions,
) -> Result<(ZkModelInfo, ZkKeys), ZkError> {
    let size = estimate_model(model_bytes, &opts.limits)?;
    size.check(&opts.limits)?;
    opts.deadline.check()?;
    let fixed = tensor::minilm::fixed();
    let config = ZkConfig {
        quant: QuantConfig {
            act_bits: fixed.a_bits,
            weight_bits: fixed.w_bits,
            table_bits: 16,
            lut_input_bits: fixed.gelu_in_bits,
            lut_domain_bits: fixed.gelu_domain_bits,
            value_bits: vec![],
        },
        output_tolerance: tensor::system::OUTPUT_TOLERANCE,
        tensor: Some(fixed.clone()),
    };
    let t = Instant::now();
    let model = ModelDigest::of_model_bytes(model_bytes);
    let keys = tensor::system::TensorKeys::derive(model_bytes, &fixed, true)?;
    let keygen_ms = t.elapsed().as_millis() as u64;
    opts.deadline.check()?;
    let vk_bytes = keys.key_bytes()?.len() as u64;
    let shape = tensor::system::size(model_bytes)?;
    let keys = ZkKeys::of_tensor(model, &config, keys);
    let info = ZkModelInfo {
        model,
        system: tensor::system::SYSTEM.to_string(),
        circuit_version: CIRCUIT_VERSION,
        config,
        vk_digest: keys.vk_digest,
        estimate: size.proof_cost(),
        stats: Stats::default(),
        calibration_max_abs_err: 1.4e-3,
        calibration_samples: 12,
        vk_bytes,
        keygen_ms,
        params: shape.weights,
        macs: 0,
        size_estimate: Some(size),
    };
    Ok((info, keys))
}

#[cfg(feature = "prover")]
/// The size estimate, checked against `opts.limits`, then the graph and its calibration.
fn calibrated(
    model_bytes: &[u8],
    opts: &AnalyzeOptions,
) -> Result<(CircuitEstimate, graph::Graph, quant::Calibrated), ZkError> {
    let size = estimate_model(model_bytes, &opts.limits)?;
    size.check(&opts.limits)?;
    let deadline = &opts.deadline;
    deadline.check()?;
    let g = load_graph(model_bytes, deadline)?;
    let mut samples = vec![];
    for s in &opts.samples {
        samples.push(inputs_f64(&g, s)?);
    }
    samples.extend(quant::synthetic_inputs(&g, 4, 0x766f_7563_685f_7a6b));
    samples.push(
        g.inputs
            .iter()
            .map(|io| vec![0.0; g.value_len[io.value]])
            .collect(),
    );
    let mut cal = quant::calibrate(
        &g,
        &samples,
        opts.target_abs_err,
        opts.fixed_scale,
        deadline,
    )?;
    if let Some(t) = opts.table_bits {
        cal.config.table_bits = t;
    }
    Ok((size, g, cal))
}

#[cfg(feature = "prover")]
/// The sizes of the circuit [`analyze_with`] builds for the model (calibration included, key
/// generation left out): what [`estimate_model`]'s prediction is measured against.
pub fn circuit_stats(model_bytes: &[u8], opts: &AnalyzeOptions) -> Result<Stats, ZkError> {
    let (_, g, cal) = calibrated(model_bytes, opts)?;
    let built = circuit::build(&g, &cal.config, &zeros(&g), [0, 0], true, &opts.deadline)?;
    Ok(built.stats)
}

/// Converts a request's tensors to the graph's inputs (by name, float, exact shape).
fn inputs_f64(g: &graph::Graph, inputs: &TensorMap) -> Result<Vec<Vec<f64>>, ZkError> {
    if inputs.len() != g.inputs.len() {
        return Err(ZkError::BadInput(format!(
            "{} input tensors given, the model takes {}",
            inputs.len(),
            g.inputs.len()
        )));
    }
    g.inputs
        .iter()
        .map(|io| {
            let t = inputs
                .get(&io.name)
                .ok_or_else(|| ZkError::BadInput(format!("missing input {:?}", io.name)))?;
            if !matches!(t.dtype(), DType::Float32 | DType::Float64) {
                return Err(ZkError::BadInput(format!(
                    "input {:?} must be float32",
                    io.name
                )));
            }
            if t.shape() != io.shape.as_slice() {
                return Err(ZkError::BadInput(format!(
                    "input {:?} has shape {:?}; zk proofs take batch-1 shape {:?}",
                    io.name,
                    t.shape(),
                    io.shape
                )));
            }
            Ok(t.data().to_f64_vec())
        })
        .collect()
}

fn quantise_inputs(
    g: &graph::Graph,
    cfg: &QuantConfig,
    inputs: &TensorMap,
) -> Result<Vec<Vec<i128>>, ZkError> {
    inputs_f64(g, inputs)?
        .iter()
        .map(|x| {
            x.iter()
                .map(|&v| circuit::quantise(v, cfg.act_bits))
                .collect()
        })
        .collect()
}

/// The receipt hash as two 128-bit public values (little-endian halves).
fn receipt_limbs(h: &Digest) -> [u128; 2] {
    let b = h.as_bytes();
    let mut lo = [0u8; 16];
    let mut hi = [0u8; 16];
    lo.copy_from_slice(&b[..16]);
    hi.copy_from_slice(&b[16..]);
    [u128::from_le_bytes(lo), u128::from_le_bytes(hi)]
}

#[cfg(feature = "prover")]
/// Where a proof job is; the server relays it (`GET /v1/proofs/{id}`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Progress {
    pub stage: &'static str,
    /// 0.0 ..= 1.0
    pub fraction: f64,
}

#[cfg(feature = "prover")]
/// A finished proof: the evidence to put in `Bundle.evidence["zk"]`, and the proven output.
#[derive(Clone, Debug)]
pub struct ZkProof {
    pub evidence: ZkEvidence,
    /// The proven (quantised) outputs, dequantised to float32.
    pub outputs: TensorMap,
    pub prove_ms: u64,
}

#[cfg(feature = "prover")]
/// Proves that the model behind `keys` maps `inputs` to its quantised output, bound to the
/// receipt. `cancel` is polled between stages; returning true aborts with `Prover("cancelled")`.
pub fn prove(
    keys: &ZkKeys,
    inputs: &TensorMap,
    receipt_hash: &Digest,
    progress: &mut dyn FnMut(Progress) -> bool,
) -> Result<ZkProof, ZkError> {
    let t = Instant::now();
    if let Some(tk) = &keys.tensor {
        if progress(Progress {
            stage: "prove",
            fraction: 0.05,
        }) {
            return Err(ZkError::Prover("cancelled".into()));
        }
        let p = tensor::system::prove(tk, keys.model, &keys.config, inputs, receipt_hash)?;
        progress(Progress {
            stage: "done",
            fraction: 1.0,
        });
        return Ok(ZkProof {
            evidence: p.evidence,
            outputs: p.outputs,
            prove_ms: t.elapsed().as_millis() as u64,
        });
    }
    let pk = keys.pk()?;
    let mut step = |stage: &'static str, fraction: f64| -> Result<(), ZkError> {
        if progress(Progress { stage, fraction }) {
            Err(ZkError::Prover("cancelled".into()))
        } else {
            Ok(())
        }
    };
    step("quantise", 0.0)?;
    let q = quantise_inputs(&keys.graph, &keys.config.quant, inputs)?;
    step("witness", 0.05)?;
    let built = circuit::build(
        &keys.graph,
        &keys.config.quant,
        &q,
        receipt_limbs(receipt_hash),
        false,
        &Deadline::none(),
    )?;
    let q_out = built.outputs.clone();
    step("prove", 0.15)?;
    let proof = snark::prove(pk, snark::Circuit::new(built, false))?;
    step("encode", 0.95)?;
    let bytes = snark::proof_to_bytes(&proof)?;
    let scale = (1u64 << keys.config.quant.act_bits) as f64;
    let mut outputs = TensorMap::new();
    let mut out_q = std::collections::BTreeMap::new();
    for (io, v) in keys.graph.outputs.iter().zip(&q_out) {
        let data: Vec<f32> = v.iter().map(|&x| (x as f64 / scale) as f32).collect();
        let tensor = Tensor::new(io.shape.clone(), TensorData::Float32(data))
            .map_err(|e| ZkError::Internal(format!("output tensor: {e}")))?;
        outputs.insert(io.name.clone(), tensor);
        out_q.insert(io.name.clone(), v.clone());
    }
    let evidence = ZkEvidence {
        format: EVIDENCE_FORMAT.to_string(),
        system: SYSTEM.to_string(),
        model: keys.model,
        vk_digest: keys.vk_digest,
        config: keys.config.clone(),
        receipt: *receipt_hash,
        input_q_digest: q_digest(&q),
        outputs_q: out_q,
        proof: evidence::b64(&bytes),
        model_key: None,
        inputs_q: None,
    };
    step("done", 1.0)?;
    Ok(ZkProof {
        evidence,
        outputs,
        prove_ms: t.elapsed().as_millis() as u64,
    })
}

/// Digest of quantised integer tensors (so evidence names the exact proven input).
fn q_digest(q: &[Vec<i128>]) -> Digest {
    let mut h = sha2::Sha256::new();
    h.update(b"vouch.zk.qinput.v1\0");
    for v in q {
        h.update((v.len() as u64).to_le_bytes());
        for x in v {
            h.update((*x as i64).to_le_bytes());
        }
    }
    Digest(h.finalize().into())
}

/// Largest |a − b| over matching tensors, or an error naming the mismatch.
pub fn max_abs_diff(a: &TensorMap, b: &TensorMap) -> Result<f64, ZkError> {
    if a.len() != b.len() {
        return Err(ZkError::Verify("output tensors differ in number".into()));
    }
    let mut m = 0f64;
    for (name, t) in a.iter() {
        let u = b
            .get(name)
            .ok_or_else(|| ZkError::Verify(format!("output {name:?} missing")))?;
        if t.shape() != u.shape() {
            return Err(ZkError::Verify(format!("output {name:?} shapes differ")));
        }
        for (x, y) in t.data().to_f64_vec().iter().zip(u.data().to_f64_vec()) {
            let d = (x - y).abs();
            m = if d.is_nan() { f64::INFINITY } else { m.max(d) };
        }
    }
    Ok(m)
}

/// What a proof establishes by itself: the proven quantised input and output.
#[derive(Clone, Debug)]
pub struct Proven {
    pub inputs_q: Vec<Vec<i128>>,
    /// Proven outputs, dequantised.
    pub outputs: TensorMap,
}

/// Verifies the SNARK against keys and checks its public statement: the receipt limbs equal
/// `receipt_hash`, the input digest and outputs equal the evidence's. No receipt object needed.
pub fn verify_statement(
    ev: &ZkEvidence,
    keys: &ZkKeys,
    receipt_hash: &Digest,
) -> Result<Proven, ZkError> {
    if keys.vk_digest != ev.vk_digest || keys.config != ev.config {
        return Err(ZkError::Verify(
            "the evidence was made with another verifying key".into(),
        ));
    }
    if ev.receipt != *receipt_hash {
        return Err(ZkError::Verify(
            "the proof is bound to a different receipt".into(),
        ));
    }
    let vk = keys.vk()?;
    let proof = snark::proof_from_bytes(&evidence::unb64(&ev.proof)?, vk)?;
    let public = snark::verify(&proof, vk)?;
    // The proven statement: inputs, outputs, receipt limbs — as the circuit lays them out.
    let g = &keys.graph;
    let n_in: usize = g.inputs.iter().map(|io| g.value_len[io.value]).sum();
    let n_out: usize = g.outputs.iter().map(|io| g.value_len[io.value]).sum();
    if public.len() != n_in + n_out + 2 {
        return Err(ZkError::Verify(
            "the proof's public statement has the wrong length".into(),
        ));
    }
    let ints: Vec<i128> = public[..n_in + n_out]
        .iter()
        .map(|f| {
            snark::small_int(f)
                .ok_or_else(|| ZkError::Verify("a public value is not a small integer".into()))
        })
        .collect::<Result<_, _>>()?;
    let limbs = receipt_limbs(receipt_hash);
    if public[n_in + n_out] != snark::field(limbs[0] as i128)
        || public[n_in + n_out + 1] != snark::field(limbs[1] as i128)
    {
        return Err(ZkError::Verify(
            "the proof is bound to a different receipt".into(),
        ));
    }
    let mut q_in = vec![];
    let mut off = 0;
    for io in &g.inputs {
        let n = g.value_len[io.value];
        q_in.push(ints[off..off + n].to_vec());
        off += n;
    }
    if q_digest(&q_in) != ev.input_q_digest {
        return Err(ZkError::Verify(
            "the evidence's input digest does not match the proven input".into(),
        ));
    }
    let scale = (1u64 << keys.config.quant.act_bits) as f64;
    let mut outputs = TensorMap::new();
    for io in &g.outputs {
        let n = g.value_len[io.value];
        let v: Vec<i64> = ints[off..off + n].iter().map(|&x| x as i64).collect();
        off += n;
        if ev.outputs_q.get(&io.name) != Some(&v) {
            return Err(ZkError::Verify(format!(
                "output {:?} in the evidence differs from the proven output",
                io.name
            )));
        }
        let data: Vec<f32> = v.iter().map(|&x| (x as f64 / scale) as f32).collect();
        let t = Tensor::new(io.shape.clone(), TensorData::Float32(data))
            .map_err(|e| ZkError::Internal(e.to_string()))?;
        outputs.insert(io.name.clone(), t);
    }
    Ok(Proven {
        inputs_q: q_in,
        outputs,
    })
}

/// Which key the verifier uses.
pub enum VerifyKey<'a> {
    /// Recompute the verifying key from the model file (trusts nothing but the file).
    Model(&'a [u8]),
    /// Keys already derived (from the model file) by this process.
    Keys(&'a ZkKeys),
    /// No model file: the tensor system's evidence carries its model key, checked against the
    /// evidence's (and the registry's, when given) key digest. R1CS evidence refuses this.
    Evidence,
}

/// What a successful verification established, in words and fields.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verified {
    /// The proof system that checked it ([`SYSTEM`] or `tensor::system::SYSTEM`).
    pub system: &'static str,
    pub model: ModelDigest,
    pub vk_digest: Digest,
    pub receipt: Digest,
    /// True when the caller supplied the input tensors and they quantise to the proven input.
    pub input_checked: bool,
    /// Largest |proven output − engine output| (when the engine outputs were given).
    pub max_abs_output_diff: Option<f64>,
    pub output_tolerance: f64,
    pub statement: String,
}

/// Options of [`verify`].
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// The verifying-key digest from the model's registry entry, if known: must match.
    pub expected_vk_digest: Option<Digest>,
    /// Overrides the evidence's output tolerance.
    pub output_tolerance: Option<f64>,
}

/// Verifies zk evidence offline against the receipt it claims to back.
///
/// `outputs` are the engine outputs in the bundle (checked against the receipt's output digest
/// and, within the tolerance, against the proven output); `inputs`, when the verifier has them,
/// are checked against the receipt's input digest and the proven quantised input.
pub fn verify(
    ev: &ZkEvidence,
    key: VerifyKey<'_>,
    receipt: &Receipt,
    outputs: Option<&TensorMap>,
    inputs: Option<&TensorMap>,
    opts: &VerifyOptions,
) -> Result<Verified, ZkError> {
    if ev.format != EVIDENCE_FORMAT {
        return Err(ZkError::Malformed(format!(
            "unknown evidence format {:?}",
            ev.format
        )));
    }
    if ev.system == tensor::system::SYSTEM {
        return verify_tensor(ev, key, receipt, outputs, inputs, opts);
    }
    if ev.system != SYSTEM {
        return Err(ZkError::Verify(format!(
            "proof system {:?} is not {SYSTEM:?}",
            ev.system
        )));
    }
    let receipt_hash = bound_receipt(ev, receipt)?;
    let owned;
    let keys = match key {
        VerifyKey::Keys(k) => {
            if k.config != ev.config {
                return Err(ZkError::Verify(
                    "the evidence's quantisation config differs from the keys'".into(),
                ));
            }
            k
        }
        VerifyKey::Evidence => {
            return Err(ZkError::Verify(
                "this proof system needs the model file to recompute its verifying key".into(),
            ));
        }
        VerifyKey::Model(bytes) => {
            if ModelDigest::of_model_bytes(bytes) != receipt.model {
                return Err(ZkError::Verify(
                    "the model file is not the model named in the receipt".into(),
                ));
            }
            owned = ZkKeys::generate_verifier(bytes, &ev.config)?;
            &owned
        }
    };
    if keys.model != receipt.model {
        return Err(ZkError::Verify(
            "the keys belong to a different model".into(),
        ));
    }
    if keys.vk_digest != ev.vk_digest {
        return Err(ZkError::Verify(
            "the verifying key recomputed from the model does not match the evidence".into(),
        ));
    }
    if opts.expected_vk_digest.is_some_and(|d| d != keys.vk_digest) {
        return Err(ZkError::Verify(
            "the verifying key does not match the registry's".into(),
        ));
    }
    let proven = verify_statement(ev, keys, &receipt_hash)?;
    let (q_in, proven) = (proven.inputs_q, proven.outputs);
    let g = &keys.graph;
    let tol = opts.output_tolerance.unwrap_or(ev.config.output_tolerance);
    let max_diff = check_outputs(&proven, outputs, receipt, tol)?;
    let input_checked = check_inputs(
        inputs,
        receipt,
        |inp| Ok(quantise_inputs(g, &keys.config.quant, inp)? == q_in),
        "the inputs do not quantise to the proven input",
    )?;
    let statement = format!(
        "Proven ({SYSTEM}): the model {} (verifying key {}), run in fixed point at scale 2^{}, maps {} to the output in this bundle{}; the proof is bound to receipt {}.",
        keys.model,
        keys.vk_digest,
        keys.config.quant.act_bits,
        if input_checked {
            "the input you supplied (digest matches the receipt)".to_string()
        } else {
            format!(
                "the quantised input with digest {} (supply the input to check it against the receipt)",
                ev.input_q_digest
            )
        },
        match max_diff {
            Some(d) =>
                format!(" (within {d:.2e} of the engine's float output, tolerance {tol:.1e})"),
            None => String::new(),
        },
        receipt_hash
    );
    Ok(Verified {
        system: SYSTEM,
        model: keys.model,
        vk_digest: keys.vk_digest,
        receipt: receipt_hash,
        input_checked,
        max_abs_output_diff: max_diff,
        output_tolerance: tol,
        statement,
    })
}

/// [`verify`] for the tensor system: the proof is checked against the model key the evidence
/// carries (or the one recomputed from the model file, when given), whose digest must be the
/// evidence's and, when known, the registry's.
fn verify_tensor(
    ev: &ZkEvidence,
    key: VerifyKey<'_>,
    receipt: &Receipt,
    outputs: Option<&TensorMap>,
    inputs: Option<&TensorMap>,
    opts: &VerifyOptions,
) -> Result<Verified, ZkError> {
    let receipt_hash = bound_receipt(ev, receipt)?;
    if opts.expected_vk_digest.is_some_and(|d| d != ev.vk_digest) {
        return Err(ZkError::Verify(
            "the model key does not match the registry's".into(),
        ));
    }
    let fixed = ev.config.tensor.clone().ok_or_else(|| {
        ZkError::Malformed("tensor evidence without its fixed-point config".into())
    })?;
    let derived;
    let (own_key, from_model) = match key {
        VerifyKey::Evidence => (None, false),
        VerifyKey::Keys(k) => match &k.tensor {
            Some(t) => (Some(&t.key), false),
            None => {
                return Err(ZkError::Verify(
                    "these keys are not the tensor system's".into(),
                ));
            }
        },
        VerifyKey::Model(bytes) => {
            if ModelDigest::of_model_bytes(bytes) != receipt.model {
                return Err(ZkError::Verify(
                    "the model file is not the model named in the receipt".into(),
                ));
            }
            derived = tensor::system::TensorKeys::derive(bytes, &fixed, false)?;
            (Some(&derived.key), true)
        }
    };
    let checked = tensor::system::verify(ev, own_key, &receipt_hash)?;
    let tol = opts.output_tolerance.unwrap_or(ev.config.output_tolerance);
    let max_diff = check_outputs(&checked.proven, outputs, receipt, tol)?;
    let input_checked = check_inputs(
        inputs,
        receipt,
        |inp| Ok(tensor::system::token_ids(inp)? == checked.ids),
        "the inputs are not the proven token ids",
    )?;
    let statement = format!(
        "Proven ({}): the model {} (model key {}, {}), run in fixed point at scale 2^{}, maps {} to the embedding in this bundle{}; the proof is bound to receipt {}.",
        tensor::system::SYSTEM,
        ev.model,
        ev.vk_digest,
        if from_model {
            "recomputed from the model file"
        } else {
            "from the evidence: its weights commitments are trusted to be the model's as far as the key digest is"
        },
        fixed.a_bits,
        if input_checked {
            "the input you supplied (digest matches the receipt)".to_string()
        } else {
            format!("the {} token ids in the evidence", checked.ids.len())
        },
        match max_diff {
            Some(d) =>
                format!(" (within {d:.2e} of the engine's float output, tolerance {tol:.1e})"),
            None => String::new(),
        },
        receipt_hash
    );
    Ok(Verified {
        system: tensor::system::SYSTEM,
        model: ev.model,
        vk_digest: ev.vk_digest,
        receipt: receipt_hash,
        input_checked,
        max_abs_output_diff: max_diff,
        output_tolerance: tol,
        statement,
    })
}

/// The receipt the evidence is bound to, if it is this receipt and names its model.
fn bound_receipt(ev: &ZkEvidence, receipt: &Receipt) -> Result<Digest, ZkError> {
    let receipt_hash = receipt.hash();
    if ev.receipt != receipt_hash {
        return Err(ZkError::Verify(
            "the proof is bound to a different receipt".into(),
        ));
    }
    if ev.model != receipt.model {
        return Err(ZkError::Verify(
            "the proof is for a different model than the receipt's".into(),
        ));
    }
    Ok(receipt_hash)
}

/// The engine outputs, if given: the receipt's, and within `tol` of the proven ones.
fn check_outputs(
    proven: &TensorMap,
    outputs: Option<&TensorMap>,
    receipt: &Receipt,
    tol: f64,
) -> Result<Option<f64>, ZkError> {
    let Some(out) = outputs else { return Ok(None) };
    if out.digest() != receipt.output_digest {
        return Err(ZkError::Verify(
            "the outputs are not the ones the receipt commits to".into(),
        ));
    }
    let d = max_abs_diff(proven, out)?;
    if d > tol {
        return Err(ZkError::Verify(format!(
            "the proven output differs from the engine output by {d:.3e}, more than the tolerance {tol:.1e}"
        )));
    }
    Ok(Some(d))
}

/// The caller's inputs, if given: the receipt's, and (by `proven`) the proof's.
fn check_inputs(
    inputs: Option<&TensorMap>,
    receipt: &Receipt,
    proven: impl FnOnce(&TensorMap) -> Result<bool, ZkError>,
    why: &str,
) -> Result<bool, ZkError> {
    let Some(inp) = inputs else { return Ok(false) };
    if inp.digest() != receipt.input_digest {
        return Err(ZkError::Verify(
            "the inputs are not the ones the receipt commits to".into(),
        ));
    }
    if !proven(inp)? {
        return Err(ZkError::Verify(why.into()));
    }
    Ok(true)
}
