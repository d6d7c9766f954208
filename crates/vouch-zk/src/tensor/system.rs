//! The tensor system behind vouch-zk's public API: `estimate_model`, `analyze_with`,
//! `ZkKeys`, `prove` and `verify` route the models it recognises — BERT-style text encoders as
//! `models/text/export_minilm.py` writes them — here, and everything else to the R1CS tier.
//!
//! Its evidence carries the model key (the program and the weights' commitments) and the public
//! input, so `verify` needs neither the model file nor the weights; given the model file it also
//! recomputes the key and requires the same digest.

use std::sync::Arc;

use vouch_core::{Digest, Tensor, TensorData, TensorMap};

use super::builder::Fixed;
use super::commit::Generators;
use super::minilm::{self, Initializers};
use super::program::{self, MAX_COL_VARS, ModelKey, Proof};
use crate::error::ZkError;
#[cfg(feature = "prover")]
use crate::evidence::EVIDENCE_FORMAT;
use crate::evidence::{self, ZkEvidence};

/// The proof system's name in evidence and registry entries.
pub const SYSTEM: &str = "vouch-tensor-1/sumcheck-logup-gkr/hyrax/pallas";

/// Largest |proven − float| a verifier accepts by default: measured 1.4e-3 on the MiniLM
/// sentences (models/text/minilm_fixed.md), with headroom.
pub const OUTPUT_TOLERANCE: f64 = 1e-2;

/// Whether a model is one the tensor system proves (a text encoder with the export's names).
pub fn recognises(model_bytes: &[u8]) -> bool {
    Initializers::read(model_bytes)
        .map(|i| {
            i.has("embeddings.word_embeddings.weight")
                && i.has("encoder.layer.0.attention.self.query.weight_t")
        })
        .unwrap_or(false)
}

/// The program's size from the model's shapes alone: committed values per proof and weights.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Size {
    pub values: u64,
    pub weights: u64,
    pub layers: u64,
}

/// Counts the program [`minilm::model`] builds from the initializers' shapes (no weight is
/// converted): per layer about 40 committed values per token and hidden unit, 10 per token and
/// inner unit and 28 per head and token pair, quotient pins included (MiniLM: 4.30 M built, this
/// gives 4.70 M).
pub fn size(model_bytes: &[u8]) -> Result<Size, ZkError> {
    let inits = Initializers::read(model_bytes)?;
    let dims = |n: &str| inits.dims(n);
    let word = dims("embeddings.word_embeddings.weight")?;
    let [vocab, hidden] = word[..] else {
        return Err(ZkError::InvalidModel(
            "word embeddings of unexpected shape".into(),
        ));
    };
    let mut layers = 0u64;
    while inits.has(&format!(
        "encoder.layer.{layers}.attention.self.query.weight_t"
    )) {
        layers += 1;
    }
    let inner = dims("encoder.layer.0.intermediate.dense.weight_t")?
        .get(1)
        .copied()
        .unwrap_or(0);
    let p = |x: usize| x.max(1).next_power_of_two() as u64;
    let (s, hp, ip, hh) = (p(minilm::SEQ), p(hidden), p(inner), 16u64);
    let values = layers * (40 * s * hp + 10 * s * ip + 28 * hh * s * s) + 10 * s * hp;
    let per_layer = 4 * hp * hp + 2 * hp * ip + 12 * hp + ip;
    let weights = p(vocab) * hp + s * hp + layers * per_layer;
    Ok(Size {
        values,
        weights,
        layers,
    })
}

#[cfg(feature = "prover")]
/// One proof's predicted cost, fitted to MiniLM-L6 (2.61 M values, 35.7 M padded weights: prove
/// 18.6 s with the integer forward, peak 2.7 GB, verify 0.48 s, key 776 KB) and its first
/// feed-forward block alone (0.11 M values, 2.1 M weights: 1.05 s, 316 MB) on the 2-core machine.
pub fn estimate(s: &Size) -> crate::Estimate {
    let (v, w) = (s.values as f64, s.weights as f64);
    crate::Estimate {
        prove_ms: (0.00066 * v + 0.00049 * w) as u64,
        peak_bytes: (150e6 + 60.0 * w + 300.0 * v) as u64,
        verify_ms: (50.0 + 0.00012 * v + 0.000008 * w) as u64,
        vk_bytes: (100_000.0 + w / 2048.0 * 32.0) as u64,
    }
}

/// The prover's and verifier's state for one model.
pub struct TensorKeys {
    pub key: ModelKey,
    pub digest: Digest,
    pub fixed: Fixed,
    /// The model's initializers, kept by provers: each proof rebuilds the program's values.
    #[cfg_attr(not(feature = "prover"), allow(dead_code))]
    inits: Option<Arc<Initializers>>,
    #[cfg_attr(not(feature = "prover"), allow(dead_code))]
    gens: Generators,
}

impl std::fmt::Debug for TensorKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TensorKeys")
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

/// The ids a key is built on: any input gives the same program; these are `[CLS] [SEP]`.
const KEY_IDS: [i64; 2] = [101, 102];

impl TensorKeys {
    /// Builds the program and commits to the weights (the registration-time work).
    pub fn derive(model_bytes: &[u8], fixed: &Fixed, keep_model: bool) -> Result<Self, ZkError> {
        let inits = Initializers::read(model_bytes)?;
        let m = minilm::model_with(&inits, &KEY_IDS, fixed)?;
        let gens = Generators::new(MAX_COL_VARS);
        let key = ModelKey::commit(m.program, &m.weights, &gens)?;
        let digest = Digest(key.digest());
        Ok(TensorKeys {
            key,
            digest,
            fixed: fixed.clone(),
            inits: keep_model.then(|| Arc::new(inits)),
            gens,
        })
    }

    pub fn key_bytes(&self) -> Result<Vec<u8>, ZkError> {
        bincode::serialize(&self.key).map_err(|e| ZkError::Internal(format!("key: {e}")))
    }
}

/// The token ids of an embedding request: `input_ids` and `attention_mask` (`[1, n]`), the mask
/// ones first; at most [`minilm::SEQ`] tokens.
pub fn token_ids(inputs: &TensorMap) -> Result<Vec<i64>, ZkError> {
    let ints = |name: &str| -> Result<Vec<i64>, ZkError> {
        let t = inputs
            .get(name)
            .ok_or_else(|| ZkError::BadInput(format!("zk embeddings need the input {name:?}")))?;
        match t.data() {
            TensorData::Int64(v) => Ok(v.clone()),
            TensorData::Int32(v) => Ok(v.iter().map(|&x| i64::from(x)).collect()),
            _ => Err(ZkError::BadInput(format!("{name} must be integers"))),
        }
    };
    let ids = ints("input_ids")?;
    let mask = match inputs.get("attention_mask") {
        Some(_) => ints("attention_mask")?,
        None => vec![1; ids.len()],
    };
    if mask.len() != ids.len() {
        return Err(ZkError::BadInput(
            "input_ids and attention_mask differ in length".into(),
        ));
    }
    let n = mask.iter().take_while(|&&m| m == 1).count();
    if mask[n..].iter().any(|&m| m != 0) || n == 0 {
        return Err(ZkError::BadInput(
            "the attention mask must be ones then zeros, with at least one token".into(),
        ));
    }
    if n > minilm::SEQ {
        return Err(ZkError::BadInput(format!(
            "zk embeddings are proven for at most {} tokens; this input has {n}",
            minilm::SEQ
        )));
    }
    Ok(ids[..n].to_vec())
}

/// The public tensors of a proof (one-hot ids, mask, count), padded, from the ids.
fn publics(key: &ModelKey, ids: &[i64]) -> Result<Vec<Vec<i64>>, ZkError> {
    let p = &key.program;
    let ins = p.ids(program::Role::Input);
    let [onehot, mask, count] = ins[..] else {
        return Err(ZkError::Internal(
            "the key's program does not take ids, mask and count".into(),
        ));
    };
    let vocab = p.tensors[onehot].dims.get(1).copied().unwrap_or(0);
    let mut oh = vec![0i64; minilm::SEQ * vocab];
    for i in 0..minilm::SEQ {
        let t = ids.get(i).copied().unwrap_or(0);
        let t = usize::try_from(t)
            .ok()
            .filter(|&t| t < vocab)
            .ok_or_else(|| ZkError::BadInput(format!("token id {t} is outside the vocabulary")))?;
        oh[i * vocab + t] = 1;
    }
    let m: Vec<i64> = (0..minilm::SEQ).map(|i| i64::from(i < ids.len())).collect();
    Ok(vec![
        p.tensors[onehot].pad(&oh)?,
        p.tensors[mask].pad(&m)?,
        p.tensors[count].pad(&[ids.len() as i64])?,
    ])
}

/// What [`prove`] returns: the evidence and the proven embedding (dequantised).
pub struct TensorProof {
    pub evidence: ZkEvidence,
    pub outputs: TensorMap,
}

fn embedding_tensor(
    key: &ModelKey,
    out: &[i64],
    fixed: &Fixed,
) -> Result<(Vec<i64>, TensorMap), ZkError> {
    let o = key.program.ids(program::Role::Output);
    let n = o
        .first()
        .map(|&i| key.program.tensors[i].dims[0])
        .unwrap_or(0);
    let ints = out
        .get(..n)
        .ok_or_else(|| ZkError::Verify("the proven output is too short".into()))?
        .to_vec();
    let scale = (1u64 << fixed.a_bits) as f64;
    let data: Vec<f32> = ints.iter().map(|&x| (x as f64 / scale) as f32).collect();
    let t = Tensor::new(vec![1, n as u64], TensorData::Float32(data))
        .map_err(|e| ZkError::Internal(format!("output: {e}")))?;
    let mut m = TensorMap::new();
    m.insert("embedding".to_string(), t);
    Ok((ints, m))
}

#[cfg(feature = "prover")]
/// Proves the embedding of `inputs` bound to the receipt.
pub fn prove(
    keys: &TensorKeys,
    model: vouch_core::ModelDigest,
    config: &crate::ZkConfig,
    inputs: &TensorMap,
    receipt_hash: &Digest,
) -> Result<TensorProof, ZkError> {
    let inits = keys
        .inits
        .as_ref()
        .ok_or_else(|| ZkError::Internal("these keys were derived for verifying only".into()))?;
    let ids = token_ids(inputs)?;
    let m = minilm::model_with(inits, &ids, &keys.fixed)?;
    if m.program != keys.key.program {
        return Err(ZkError::Internal(
            "the program built for this input differs from the key's".into(),
        ));
    }
    let vals = program::Values::new(&m.program, m.values)?;
    let proof = program::prove(&keys.key, &vals, &receipt_hash.0, &keys.gens)?;
    let (ints, outputs) = embedding_tensor(&keys.key, &vals.tensors[m.output], &keys.fixed)?;
    let proof_bytes =
        bincode::serialize(&proof).map_err(|e| ZkError::Internal(format!("proof: {e}")))?;
    let mut outputs_q = std::collections::BTreeMap::new();
    outputs_q.insert("embedding".to_string(), ints);
    let mut inputs_q = std::collections::BTreeMap::new();
    inputs_q.insert("input_ids".to_string(), ids.clone());
    let evidence = ZkEvidence {
        format: EVIDENCE_FORMAT.to_string(),
        system: SYSTEM.to_string(),
        model,
        vk_digest: keys.digest,
        config: config.clone(),
        receipt: *receipt_hash,
        input_q_digest: ids_digest(&ids),
        outputs_q,
        proof: evidence::b64(&proof_bytes),
        model_key: Some(evidence::b64(&keys.key_bytes()?)),
        inputs_q: Some(inputs_q),
    };
    Ok(TensorProof { evidence, outputs })
}

/// Digest of the proven token ids.
pub fn ids_digest(ids: &[i64]) -> Digest {
    Digest::of_parts([
        b"vouch.zk.tensor.ids.v1\0".as_slice(),
        &ids.iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>(),
    ])
}

/// What verifying checked.
pub struct Checked {
    pub ids: Vec<i64>,
    pub proven: TensorMap,
}

/// Verifies a tensor proof from the key in the evidence (or `own_key`, recomputed from the
/// model file by the caller). Checks the key's digest against the evidence's, the public ids
/// against the evidence's digest, and the proof.
pub fn verify(
    ev: &ZkEvidence,
    own_key: Option<&ModelKey>,
    receipt_hash: &Digest,
) -> Result<Checked, ZkError> {
    let fixed = ev.config.tensor.clone().ok_or_else(|| {
        ZkError::Malformed("tensor evidence without its fixed-point config".into())
    })?;
    let owned;
    let key = match own_key {
        Some(k) => k,
        None => {
            let b = ev.model_key.as_deref().ok_or_else(|| {
                ZkError::Malformed("tensor evidence without its model key".into())
            })?;
            owned = bincode::deserialize::<ModelKey>(&evidence::unb64(b)?)
                .map_err(|e| ZkError::Malformed(format!("model key: {e}")))?;
            &owned
        }
    };
    if Digest(key.digest()) != ev.vk_digest {
        return Err(ZkError::Verify(
            "the model key does not match the evidence's key digest".into(),
        ));
    }
    let ids = ev
        .inputs_q
        .as_ref()
        .and_then(|m| m.get("input_ids"))
        .cloned()
        .ok_or_else(|| ZkError::Malformed("tensor evidence without its input ids".into()))?;
    if ids_digest(&ids) != ev.input_q_digest || ids.is_empty() || ids.len() > minilm::SEQ {
        return Err(ZkError::Verify(
            "the evidence's input ids do not match its input digest".into(),
        ));
    }
    let out = ev
        .outputs_q
        .get("embedding")
        .ok_or_else(|| ZkError::Malformed("tensor evidence without its embedding".into()))?;
    let out_ids = key.program.ids(program::Role::Output);
    let [o] = out_ids[..] else {
        return Err(ZkError::Verify(
            "the key's program has no single output".into(),
        ));
    };
    let padded = key.program.tensors[o]
        .pad(out)
        .map_err(|_| ZkError::Verify("the proven embedding has the wrong length".into()))?;
    let proof: Proof = bincode::deserialize(&evidence::unb64(&ev.proof)?)
        .map_err(|e| ZkError::Malformed(format!("proof: {e}")))?;
    let inputs = publics(key, &ids)?;
    let gens = Generators::new(MAX_COL_VARS);
    program::verify(key, &inputs, &[padded], &receipt_hash.0, &proof, &gens)?;
    let (_, proven) = embedding_tensor(key, out, &fixed)?;
    Ok(Checked { ids, proven })
}
