//! MiniLM (BERT-style encoder) blocks as tensor programs, read from the ONNX file that
//! `models/text/export_minilm.py` writes. So far: the feed-forward block of one layer
//! (`Linear 384→1536 → GELU → Linear 1536→384`), the part of the model with most of its
//! multiply-accumulates; attention, LayerNorm and the embedding follow (docs/zk.md, "Tensor
//! proofs").

use super::commit::Generators;
use super::lookup::TableSpec;
use super::program::{MAX_COL_VARS, ModelKey, Op, Program, Role, TensorSpec};
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

/// One feed-forward block ready to prove: its key, its weights and the generators.
pub struct Block {
    pub key: ModelKey,
    pub weights: Vec<Vec<i64>>,
    pub gens: Generators,
}

/// Layer `layer`'s feed-forward block at sequence length `seq`: activations at `2^a_bits`,
/// weights at `2^w_bits`, GELU over `2^gelu_bits` inputs.
pub fn ffn_block(
    model_bytes: &[u8],
    layer: usize,
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
    let t = |name: &str, dims: &[usize], role| TensorSpec {
        name: name.into(),
        dims: dims.to_vec(),
        role,
    };
    let tensors = vec![
        t("x", &[seq, hidden], Role::Input),
        t("w1", &[hidden, inner], Role::Weight),
        t("b1", &[inner], Role::Weight),
        t("h", &[seq, inner], Role::Hidden),
        t("h.rem", &[seq, inner], Role::Hidden),
        t("gelu", &[seq, inner], Role::Hidden),
        t("w2", &[inner, hidden], Role::Weight),
        t("b2", &[hidden], Role::Weight),
        t("y", &[seq, hidden], Role::Output),
        t("y.rem", &[seq, hidden], Role::Hidden),
    ];
    let ops = vec![
        Op::Linear {
            x: 0,
            w: 1,
            b: Some(2),
            y: 3,
            rem: 4,
            shift: w_bits,
        },
        Op::Lookup {
            columns: vec![4],
            table: TableSpec::Range {
                bits: w_bits as usize,
            },
        },
        Op::Lookup {
            columns: vec![3, 5],
            table: TableSpec::gelu(a_bits, gelu_bits),
        },
        Op::Linear {
            x: 5,
            w: 6,
            b: Some(7),
            y: 8,
            rem: 9,
            shift: w_bits,
        },
        Op::Lookup {
            columns: vec![9],
            table: TableSpec::Range {
                bits: w_bits as usize,
            },
        },
    ];
    let program = Program { tensors, ops };
    let pad = |i: usize, v: Vec<i64>| program.tensors[i].pad(&v);
    let weights = vec![
        pad(1, quantise(&w1, w_bits)?)?,
        pad(2, quantise(&b1, a_bits + w_bits)?)?,
        pad(6, quantise(&w2, w_bits)?)?,
        pad(7, quantise(&b2, a_bits + w_bits)?)?,
    ];
    let gens = Generators::new(MAX_COL_VARS);
    let key = ModelKey::commit(program, &weights, &gens)?;
    Ok(Block { key, weights, gens })
}
