//! MiniLM (BERT-style encoder) blocks as tensor programs, read from the ONNX file that
//! `models/text/export_minilm.py` writes. So far: the feed-forward block of one layer
//! (`Linear 384→1536 → GELU → Linear 1536→384`), the part of the model with most of its
//! multiply-accumulates; attention, LayerNorm and the embedding follow (docs/zk.md, "Tensor
//! proofs").

use super::builder::{Builder, Fixed, Heads};
use super::commit::Generators;
use super::lookup::TableSpec;
use super::program::{MAX_COL_VARS, ModelKey, Program, Role, Values};
use crate::error::ZkError;
use crate::onnx;

/// A model's initializers by name, decoded once.
pub struct Initializers(std::collections::HashMap<String, super::super::pb::TensorProto>);

impl Initializers {
    pub fn read(model_bytes: &[u8]) -> Result<Self, ZkError> {
        let g = onnx::decode(model_bytes)?;
        Ok(Initializers(
            g.initializer
                .into_iter()
                .map(|t| (t.name.clone(), t))
                .collect(),
        ))
    }

    /// An initializer's dims and values.
    pub fn get(&self, name: &str) -> Result<(Vec<usize>, Vec<f64>), ZkError> {
        let t = self
            .0
            .get(name)
            .ok_or_else(|| ZkError::InvalidModel(format!("no initializer {name:?}")))?;
        let c = onnx::tensor_to_const(t)?;
        Ok((c.dims, c.data))
    }

    /// An initializer's dims, without converting its values.
    pub fn dims(&self, name: &str) -> Result<Vec<usize>, ZkError> {
        let t = self
            .0
            .get(name)
            .ok_or_else(|| ZkError::InvalidModel(format!("no initializer {name:?}")))?;
        t.dims
            .iter()
            .map(|&d| {
                usize::try_from(d)
                    .map_err(|_| ZkError::InvalidModel(format!("{name} has a negative dim")))
            })
            .collect()
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
}

/// `round(v · 2^bits)`, half up, checked against 2^40.
pub fn quantise(v: &[f64], bits: u32) -> Result<Vec<i64>, ZkError> {
    let s = (1u64 << bits) as f64;
    v.iter()
        .map(|&x| {
            let q = (x * s + 0.5).floor();
            if q.is_finite() && q.abs() < (1u64 << 40) as f64 {
                Ok(q as i64)
            } else {
                Err(ZkError::OutOfRange(format!(
                    "{x} does not quantise at 2^{bits}"
                )))
            }
        })
        .collect()
}

/// One feed-forward block ready to prove: its key, its values (for the given input) and the
/// generators.
pub struct Block {
    pub key: ModelKey,
    pub values: Values,
    pub gens: Generators,
    pub input: usize,
    pub output: usize,
}

/// Layer `layer`'s feed-forward block on `x` (`[seq, 384]` at `2^a_bits`): weights at
/// `2^w_bits`, GELU over `2^gelu_bits` inputs.
pub fn ffn_block(
    model_bytes: &[u8],
    layer: usize,
    x: &[i64],
    seq: usize,
    a_bits: u32,
    w_bits: u32,
    gelu_bits: u32,
) -> Result<Block, ZkError> {
    let p = format!("encoder.layer.{layer}");
    let inits = Initializers::read(model_bytes)?;
    let (d1, w1) = inits.get(&format!("{p}.intermediate.dense.weight_t"))?;
    let (_, b1) = inits.get(&format!("{p}.intermediate.dense.bias"))?;
    let (d2, w2) = inits.get(&format!("{p}.output.dense.weight_t"))?;
    let (_, b2) = inits.get(&format!("{p}.output.dense.bias"))?;
    let (hidden, inner) = match (d1.as_slice(), d2.as_slice()) {
        ([h, i], [i2, h2]) if i == i2 && h == h2 => (*h, *i),
        _ => {
            return Err(ZkError::InvalidModel(
                "feed-forward weights of unexpected shapes".into(),
            ));
        }
    };
    let mut b = Builder::new();
    let xi = b.tensor_real("x", &[seq, hidden], Role::Input, x)?;
    let w1 = b.tensor_real(
        "w1",
        &[hidden, inner],
        Role::Weight,
        &quantise(&w1, w_bits)?,
    )?;
    let b1 = b.tensor_real(
        "b1",
        &[inner],
        Role::Weight,
        &quantise(&b1, a_bits + w_bits)?,
    )?;
    let w2 = b.tensor_real(
        "w2",
        &[inner, hidden],
        Role::Weight,
        &quantise(&w2, w_bits)?,
    )?;
    let b2 = b.tensor_real(
        "b2",
        &[hidden],
        Role::Weight,
        &quantise(&b2, a_bits + w_bits)?,
    )?;
    let h = b.linear("h", xi, w1, Some(b1), w_bits)?;
    let g = b.function("gelu", h, TableSpec::gelu(a_bits, a_bits, gelu_bits))?;
    let y = b.linear("y", g, w2, Some(b2), w_bits)?;
    b.set_role(y, Role::Output);
    let weights = b.weights();
    let (program, values) = b.finish();
    let gens = Generators::new(MAX_COL_VARS);
    let values = Values::new(&program, values)?;
    let key = ModelKey::commit(program, &weights, &gens)?;
    Ok(Block {
        key,
        values,
        gens,
        input: xi,
        output: y,
    })
}

/// The fixed-point choices measured in models/text/minilm_fixed.md: activations at 2^12, weights
/// at 2^12, inverse standard deviations at 2^26, exp over 2^16 inputs to 2^16, GELU over 2^16
/// inputs at 2^9.
pub fn fixed() -> Fixed {
    Fixed {
        a_bits: 12,
        w_bits: 12,
        g_bits: 12,
        isd_bits: 26,
        isd_range_bits: 32,
        slack_bits: 60,
        gelu_in_bits: 9,
        gelu_domain_bits: 16,
        exp_out_bits: 16,
        exp_domain_bits: 16,
        sat_bits: 6,
        quotient_bits: 24,
    }
}

pub const SEQ: usize = 16;
const HEADS: usize = 12;
const HEAD_DIM: usize = 32;
const LAYERS: usize = 6;

/// The whole MiniLM-L6 as a tensor program on one input of [`SEQ`] tokens.
pub struct Model {
    pub program: Program,
    pub values: Vec<Vec<i64>>,
    pub weights: Vec<Vec<i64>>,
    /// The public tensors, in program order: one-hot ids, mask, token count; then the embedding.
    pub inputs: Vec<usize>,
    pub output: usize,
}

/// Builds the program for `ids` (at most [`SEQ`], padded with id 0 and mask 0). The program's
/// shape is the same for every input; only the values differ.
pub fn model(model_bytes: &[u8], ids: &[i64], p: &Fixed) -> Result<Model, ZkError> {
    model_with(&Initializers::read(model_bytes)?, ids, p)
}

/// [`model`] from initializers already decoded (a prover keeps them between proofs).
pub fn model_with(inits: &Initializers, ids: &[i64], p: &Fixed) -> Result<Model, ZkError> {
    if ids.is_empty() || ids.len() > SEQ {
        return Err(ZkError::BadInput(format!(
            "zk embeddings take 1 to {SEQ} tokens, not {}",
            ids.len()
        )));
    }
    let (a, w) = (p.a_bits, p.w_bits);
    let get = |n: &str| inits.get(n);
    let (wd, word) = get("embeddings.word_embeddings.weight")?;
    let [vocab, hidden] = wd[..] else {
        return Err(ZkError::InvalidModel(
            "word embeddings of unexpected shape".into(),
        ));
    };
    if hidden != HEADS * HEAD_DIM {
        return Err(ZkError::InvalidModel("hidden size is not 12 × 32".into()));
    }
    let mut b = Builder::new();
    b.quotient_bits = p.quotient_bits;
    let mut onehot = vec![0i64; SEQ * vocab];
    for (i, &t) in ids.iter().enumerate() {
        let t = usize::try_from(t)
            .ok()
            .filter(|&t| t < vocab)
            .ok_or_else(|| ZkError::BadInput(format!("token id {t} is outside the vocabulary")))?;
        onehot[i * vocab + t] = 1;
    }
    for i in ids.len()..SEQ {
        onehot[i * vocab] = 1;
    }
    let mask: Vec<i64> = (0..SEQ).map(|i| i64::from(i < ids.len())).collect();
    let onehot = b.tensor_real("ids.onehot", &[SEQ, vocab], Role::Input, &onehot)?;
    let mask = b.tensor_real("mask", &[SEQ], Role::Input, &mask)?;
    let count = b.tensor_real("count", &[], Role::Input, &[ids.len() as i64])?;

    let q = |v: &[f64], bits: u32| quantise(v, bits);
    let word = b.tensor_real(
        "embeddings.word",
        &[vocab, hidden],
        Role::Weight,
        &q(&word, a)?,
    )?;
    let (_, pos) = get("embeddings.position_embeddings.weight")?;
    let (_, typ) = get("embeddings.token_type_embeddings.row0")?;
    let (pos, typ) = (q(&pos[..SEQ * hidden], a)?, q(&typ, a)?);
    let pt: Vec<i64> = (0..SEQ * hidden)
        .map(|i| pos[i] + typ[i % hidden])
        .collect();
    let pt = b.tensor_real(
        "embeddings.position_type",
        &[SEQ, hidden],
        Role::Weight,
        &pt,
    )?;
    let ln_params = |b: &mut Builder, pre: &str| -> Result<(usize, usize), ZkError> {
        let g = b.tensor_real(
            &format!("{pre}.weight"),
            &[hidden],
            Role::Weight,
            &q(&get(&format!("{pre}.weight"))?.1, p.g_bits)?,
        )?;
        let be = b.tensor_real(
            &format!("{pre}.bias"),
            &[hidden],
            Role::Weight,
            &q(&get(&format!("{pre}.bias"))?.1, a)?,
        )?;
        Ok((g, be))
    };
    let e = b.embedding("embeddings", onehot, word, pt)?;
    let (g, be) = ln_params(&mut b, "embeddings.LayerNorm")?;
    let mut h = b.layer_norm("embeddings.out", e, g, be, p)?;
    let score = 1.0 / (HEAD_DIM as f64).sqrt();
    for l in 0..LAYERS {
        let pre = format!("encoder.layer.{l}");
        let lin =
            |b: &mut Builder, x: usize, name: &str, out: &str, s: f64| -> Result<usize, ZkError> {
                let (d, wv) = get(&format!("{pre}.{name}.weight_t"))?;
                let (_, bv) = get(&format!("{pre}.{name}.bias"))?;
                let wq = quantise_scaled(&wv, (1u64 << w) as f64 * s)?;
                let bq = quantise_scaled(&bv, (1u64 << (a + w)) as f64 * s)?;
                let wt = b.tensor_real(&format!("{pre}.{name}.weight"), &d, Role::Weight, &wq)?;
                let bt =
                    b.tensor_real(&format!("{pre}.{name}.bias"), &[d[1]], Role::Weight, &bq)?;
                b.linear(&format!("l{l}.{out}"), x, wt, Some(bt), w)
            };
        let qh = lin(&mut b, h, "attention.self.query", "q", score)?;
        let kh = lin(&mut b, h, "attention.self.key", "k", 1.0)?;
        let vh = lin(&mut b, h, "attention.self.value", "v", 1.0)?;
        let ctx = b.attention(
            &format!("l{l}.attn"),
            [qh, kh, vh],
            mask,
            Heads {
                count: HEADS,
                dim: HEAD_DIM,
            },
            p,
        )?;
        let ao = lin(&mut b, ctx, "attention.output.dense", "attn_out", 1.0)?;
        let r1 = b.add(&format!("l{l}.attn_res"), ao, h)?;
        let (g1, b1) = ln_params(&mut b, &format!("{pre}.attention.output.LayerNorm"))?;
        let h1 = b.layer_norm(&format!("l{l}.h1"), r1, g1, b1, p)?;
        let f1 = lin(&mut b, h1, "intermediate.dense", "ff1", 1.0)?;
        let gl = b.gelu(&format!("l{l}.gelu"), f1, p)?;
        let f2 = lin(&mut b, gl, "output.dense", "ff2", 1.0)?;
        let r2 = b.add(&format!("l{l}.ff_res"), f2, h1)?;
        let (g2, b2) = ln_params(&mut b, &format!("{pre}.output.LayerNorm"))?;
        h = b.layer_norm(&format!("l{l}.out"), r2, g2, b2, p)?;
    }
    let pooled = b.mean_pool("pool", h, mask, count)?;
    let out = b.l2_normalize("embedding", pooled, p)?;
    b.set_role(out, Role::Output);
    let weights = b.weights();
    let (program, values) = b.finish();
    Ok(Model {
        program,
        values,
        weights,
        inputs: vec![onehot, mask, count],
        output: out,
    })
}

/// `round(v · scale)` half up, for scales that are not powers of two (the folded 1/√32).
fn quantise_scaled(v: &[f64], scale: f64) -> Result<Vec<i64>, ZkError> {
    v.iter()
        .map(|&x| {
            let q = (x * scale + 0.5).floor();
            if q.is_finite() && q.abs() < (1u64 << 40) as f64 {
                Ok(q as i64)
            } else {
                Err(ZkError::OutOfRange(format!("{x} does not quantise")))
            }
        })
        .collect()
}
