//! MiniLM (BERT-style encoder) blocks as tensor programs, read from the ONNX file that
//! `models/text/export_minilm.py` writes. So far: the feed-forward block of one layer
//! (`Linear 384→1536 → GELU → Linear 1536→384`), the part of the model with most of its
//! multiply-accumulates; attention, LayerNorm and the embedding follow (docs/zk.md, "Tensor
//! proofs").

use super::builder::Builder;
use super::commit::Generators;
use super::lookup::TableSpec;
use super::program::{MAX_COL_VARS, ModelKey, Role, Values};
use crate::error::ZkError;
use crate::onnx;

/// An initializer's dims and values, by name.
pub fn initializer(model_bytes: &[u8], name: &str) -> Result<(Vec<usize>, Vec<f64>), ZkError> {
    let g = onnx::decode(model_bytes)?;
    let t = g
        .initializer
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| ZkError::InvalidModel(format!("no initializer {name:?}")))?;
    let c = onnx::tensor_to_const(t)?;
    Ok((c.dims, c.data))
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
    let (d1, w1) = initializer(model_bytes, &format!("{p}.intermediate.dense.weight_t"))?;
    let (_, b1) = initializer(model_bytes, &format!("{p}.intermediate.dense.bias"))?;
    let (d2, w2) = initializer(model_bytes, &format!("{p}.output.dense.weight_t"))?;
    let (_, b2) = initializer(model_bytes, &format!("{p}.output.dense.bias"))?;
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
    let g = b.function("gelu", h, TableSpec::gelu(a_bits, gelu_bits))?;
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
