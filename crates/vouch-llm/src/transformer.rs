//! Vouch's own forward pass for the decoder-only transformers it serves (llama, qwen2, qwen3,
//! phi3, gemma3), over the weights of a GGUF file.
//!
//! candle-core reads the file (header, tensor data, dequantization of the types without a
//! kernel here); the arithmetic is this crate's: [`crate::kernels`] for the matrix products
//! and plain loops for the rest, each with one fixed order of float operations per output
//! value. Every step is row-wise — a token's values depend only on that token, its position
//! and its own sequence's KV cache — so a batch of sequences computes exactly what each would
//! alone (docs/llm.md, "Engine").
//!
//! The per-architecture differences follow llama.cpp (the reference the tests compare with):
//! rotary pairs adjacent (llama, GGUF's permuted q/k) or half a head apart (the others);
//! q/k biases (qwen2); per-head q/k RMS norms (qwen3, gemma3); fused qkv and gate/up (phi3);
//! gemma3's scaled embedding, post-attention and post-FFN norms, GELU, and sliding-window
//! layers with their own rotary base.

use std::io::{Read, Seek, SeekFrom};

use candle_core::quantized::{GgmlDType, gguf_file};
use candle_core::{Device, Error, Result};

use crate::gguf::Architecture;
use crate::kernels::{self, WeightData};

/// A weight matrix with its shape and optional bias.
#[derive(Debug)]
pub(crate) struct Linear {
    w: WeightData,
    rows: usize,
    cols: usize,
    bias: Option<Vec<f32>>,
}

impl Linear {
    /// `out = x · Wᵀ (+ bias)` for `x.len() / cols` rows.
    fn forward(&self, x: &[f32], out: &mut Vec<f32>) {
        let batch = x.len() / self.cols;
        out.clear();
        out.resize(batch * self.rows, 0.0);
        kernels::matmul(
            &self.w,
            self.rows,
            self.cols,
            self.bias.as_deref(),
            x,
            batch,
            out,
        );
    }

    /// Rows of `a` then rows of `b`, one matrix, when both have the same type and width: one
    /// pass over the activations instead of two, the same value for every output row.
    /// Gives both back, unchanged, when they cannot be stacked (moved, not copied).
    #[allow(clippy::result_large_err)]
    fn stack(a: Linear, b: Linear) -> std::result::Result<Linear, (Linear, Linear)> {
        if a.cols != b.cols || (a.bias.is_some() != b.bias.is_some()) {
            return Err((a, b));
        }
        let w = match (a.w, b.w) {
            (WeightData::Q4_1(x), WeightData::Q4_1(y)) => WeightData::Q4_1([x, y].concat()),
            (WeightData::Q8_0(x), WeightData::Q8_0(y)) => WeightData::Q8_0([x, y].concat()),
            (WeightData::F32(x), WeightData::F32(y)) => WeightData::F32([x, y].concat()),
            (x, y) => {
                return Err((Linear { w: x, ..a }, Linear { w: y, ..b }));
            }
        };
        let bias = match (a.bias, b.bias) {
            (Some(mut x), Some(y)) => {
                x.extend_from_slice(&y);
                Some(x)
            }
            _ => None,
        };
        Ok(Linear {
            w,
            rows: a.rows + b.rows,
            cols: a.cols,
            bias,
        })
    }

    fn bytes(&self) -> usize {
        self.w.bytes() + self.bias.as_ref().map_or(0, |b| b.len() * 4)
    }
}

/// Projections that may be one fused matrix or several.
#[derive(Debug)]
enum Proj {
    One(Linear),
    Two(Linear, Linear),
    Three(Linear, Linear, Linear),
}

impl Proj {
    fn fuse(parts: Vec<Linear>) -> Proj {
        let mut it = parts.into_iter();
        let (Some(a), b, c) = (it.next(), it.next(), it.next()) else {
            unreachable!("at least one projection")
        };
        match (b, c) {
            (None, _) => Proj::One(a),
            (Some(b), None) => match Linear::stack(a, b) {
                Ok(ab) => Proj::One(ab),
                Err((a, b)) => Proj::Two(a, b),
            },
            (Some(b), Some(c)) => match Linear::stack(a, b) {
                Ok(ab) => match Linear::stack(ab, c) {
                    Ok(abc) => Proj::One(abc),
                    Err((ab, c)) => Proj::Two(ab, c),
                },
                Err((a, b)) => Proj::Three(a, b, c),
            },
        }
    }

    /// The concatenated outputs, row by row: `x.len() / cols` rows of `Σ rows`.
    fn forward(&self, x: &[f32], out: &mut Vec<f32>) {
        let parts: Vec<&Linear> = match self {
            Proj::One(a) => return a.forward(x, out),
            Proj::Two(a, b) => vec![a, b],
            Proj::Three(a, b, c) => vec![a, b, c],
        };
        let width: usize = parts.iter().map(|p| p.rows).sum();
        let batch = x.len() / parts[0].cols;
        out.clear();
        out.resize(batch * width, 0.0);
        let mut tmp = Vec::new();
        let mut at = 0;
        for p in parts {
            p.forward(x, &mut tmp);
            for b in 0..batch {
                out[b * width + at..b * width + at + p.rows]
                    .copy_from_slice(&tmp[b * p.rows..(b + 1) * p.rows]);
            }
            at += p.rows;
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Proj::One(a) => a.bytes(),
            Proj::Two(a, b) => a.bytes() + b.bytes(),
            Proj::Three(a, b, c) => a.bytes() + b.bytes() + c.bytes(),
        }
    }
}

#[derive(Debug)]
struct Layer {
    attn_norm: Vec<f32>,
    /// q, k, v rows (stacked).
    qkv: Proj,
    q_norm: Option<Vec<f32>>,
    k_norm: Option<Vec<f32>>,
    wo: Linear,
    post_attn_norm: Option<Vec<f32>>,
    ffn_norm: Vec<f32>,
    /// gate then up rows (stacked).
    gate_up: Proj,
    down: Linear,
    post_ffn_norm: Option<Vec<f32>>,
    /// gemma3: attend to the last `window` positions only, with the local rotary base.
    window: Option<usize>,
}

#[derive(Debug, Clone, Copy)]
enum Activation {
    Silu,
    GeluTanh,
}

/// Shapes and constants of a model.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_kv: usize,
    pub head_dim: usize,
    pub n_ff: usize,
    pub vocab: usize,
    n_rot: usize,
    rope_base: f32,
    rope_base_local: f32,
    /// Rotary pairs half a head apart (NEOX) rather than adjacent.
    neox: bool,
    eps: f32,
    embd_scale: Option<f32>,
    activation: Activation,
}

/// The weights of one model, shared by every sequence.
#[derive(Debug)]
pub(crate) struct Transformer {
    pub config: Config,
    embedding: WeightData,
    layers: Vec<Layer>,
    output_norm: Vec<f32>,
    /// `None`: tied to the embedding.
    output: Option<Linear>,
}

/// One sequence's keys and values: per layer, `len` positions × KV heads × head width, f32.
#[derive(Debug, Default)]
pub struct KvCache {
    layers: Vec<(Vec<f32>, Vec<f32>)>,
    len: usize,
}

impl KvCache {
    /// Positions held.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

/// Positions the cache grows by at a time: a sequence's allocation runs at most this far
/// ahead of what it holds.
const KV_GROWTH: usize = 64;

/// One sequence's part of a forward step.
pub(crate) struct Step<'a> {
    pub cache: &'a mut KvCache,
    pub tokens: &'a [u32],
}

fn meta_f32(ct: &gguf_file::Content, key: &str) -> Result<Option<f32>> {
    ct.metadata.get(key).map(|v| v.to_f32()).transpose()
}

fn meta_u32(ct: &gguf_file::Content, key: &str) -> Result<Option<usize>> {
    ct.metadata
        .get(key)
        .map(|v| v.to_u32().map(|n| n as usize))
        .transpose()
}

/// Reads tensors as the kernels want them.
struct Loader<'a, R> {
    ct: &'a gguf_file::Content,
    reader: &'a mut R,
}

impl<R: Read + Seek> Loader<'_, R> {
    fn has(&self, name: &str) -> bool {
        self.ct.tensor_infos.contains_key(name)
    }

    /// A matrix `[rows, cols]`: Q4_1 and Q8_0 kept as the file's blocks, F32 as is, anything
    /// else dequantized to f32 (no kernel here for it; batch-invariant all the same).
    fn matrix(&mut self, name: &str) -> Result<(WeightData, usize, usize)> {
        let info = self
            .ct
            .tensor_infos
            .get(name)
            .ok_or_else(|| Error::Msg(format!("tensor {name} is missing")))?;
        let (rows, cols) = info.shape.dims2()?;
        let block_bytes = match info.ggml_dtype {
            GgmlDType::Q4_1 => Some(kernels::Q4_1_BYTES),
            GgmlDType::Q8_0 => Some(kernels::Q8_0_BYTES),
            _ => None,
        };
        let Some(block_bytes) = block_bytes else {
            let t = self.ct.tensor(self.reader, name, &Device::Cpu)?;
            let w = t.dequantize(&Device::Cpu)?.flatten_all()?.to_vec1()?;
            return Ok((WeightData::F32(w), rows, cols));
        };
        if cols % kernels::BLOCK != 0 {
            return Err(Error::Msg(format!(
                "{name}: {cols} columns is not whole blocks"
            )));
        }
        // Read straight from the file into a buffer of the exact size (the GGUF gate checked
        // the range): no intermediate copy to free, so loading leaves no heap holes behind.
        let bytes = (rows * (cols / kernels::BLOCK))
            .checked_mul(block_bytes)
            .ok_or_else(|| Error::Msg(format!("{name} is too large")))?;
        let mut data = vec![0u8; bytes];
        self.reader
            .seek(SeekFrom::Start(self.ct.tensor_data_offset + info.offset))?;
        self.reader.read_exact(&mut data)?;
        let w = if block_bytes == kernels::Q4_1_BYTES {
            WeightData::Q4_1(data)
        } else {
            WeightData::Q8_0(data)
        };
        Ok((w, rows, cols))
    }

    fn linear(&mut self, name: &str, rows: usize, cols: usize) -> Result<Linear> {
        let weight = format!("{name}.weight");
        let (w, r, c) = self.matrix(&weight)?;
        if (r, c) != (rows, cols) {
            return Err(Error::Msg(format!(
                "{weight} is [{r}, {c}], expected [{rows}, {cols}]"
            )));
        }
        let bias_name = format!("{name}.bias");
        let bias = if self.has(&bias_name) {
            Some(self.vector(&bias_name, rows)?)
        } else {
            None
        };
        Ok(Linear {
            w,
            rows,
            cols,
            bias,
        })
    }

    fn vector(&mut self, name: &str, len: usize) -> Result<Vec<f32>> {
        let t = self.ct.tensor(self.reader, name, &Device::Cpu)?;
        let v: Vec<f32> = t.dequantize(&Device::Cpu)?.flatten_all()?.to_vec1()?;
        if v.len() != len {
            return Err(Error::Msg(format!(
                "{name} has {} values, expected {len}",
                v.len()
            )));
        }
        Ok(v)
    }

    fn optional_vector(&mut self, name: &str, len: usize) -> Result<Option<Vec<f32>>> {
        if self.has(name) {
            self.vector(name, len).map(Some)
        } else {
            Ok(None)
        }
    }
}

impl Transformer {
    /// Loads the weights of a GGUF already checked by [`crate::gguf::GgufFile::parse`].
    pub fn from_gguf<R: Read + Seek>(
        arch: Architecture,
        ct: &gguf_file::Content,
        reader: &mut R,
    ) -> Result<Self> {
        let prefix = match arch {
            Architecture::Llama => "llama",
            Architecture::Qwen2 => "qwen2",
            Architecture::Qwen3 => "qwen3",
            Architecture::Phi3 => "phi3",
            Architecture::Gemma3 => "gemma3",
        };
        let need = |key: &str| -> Result<usize> {
            meta_u32(ct, &format!("{prefix}.{key}"))?
                .ok_or_else(|| Error::Msg(format!("{prefix}.{key} is missing")))
        };
        let n_embd = need("embedding_length")?;
        let n_layer = need("block_count")?;
        let n_head = need("attention.head_count")?;
        let n_kv = meta_u32(ct, &format!("{prefix}.attention.head_count_kv"))?.unwrap_or(n_head);
        let n_ff = need("feed_forward_length")?;
        if n_head == 0 || n_kv == 0 || n_head % n_kv != 0 {
            return Err(Error::Msg(format!(
                "{n_head} heads do not share {n_kv} KV heads evenly"
            )));
        }
        let head_dim =
            meta_u32(ct, &format!("{prefix}.attention.key_length"))?.unwrap_or(n_embd / n_head);
        let n_rot = meta_u32(ct, &format!("{prefix}.rope.dimension_count"))?.unwrap_or(head_dim);
        if n_rot > head_dim || n_rot % 2 != 0 {
            return Err(Error::Msg(format!(
                "rope.dimension_count {n_rot} does not fit a head of {head_dim}"
            )));
        }
        let eps =
            meta_f32(ct, &format!("{prefix}.attention.layer_norm_rms_epsilon"))?.unwrap_or(1e-6);
        let rope_base = meta_f32(ct, &format!("{prefix}.rope.freq_base"))?.unwrap_or(10_000.0);
        let gemma = arch == Architecture::Gemma3;
        let rope_base_local = if gemma {
            meta_f32(ct, "gemma3.rope.local_freq_base")?.unwrap_or(10_000.0)
        } else {
            rope_base
        };
        let (window, window_pattern) = if gemma {
            (
                meta_u32(ct, "gemma3.attention.sliding_window")?,
                meta_u32(ct, "gemma3.attention.sliding_window_type")?
                    .unwrap_or(6)
                    .max(1),
            )
        } else {
            (None, 1)
        };

        let mut load = Loader { ct, reader };
        let (embedding, vocab, cols) = load.matrix("token_embd.weight")?;
        if cols != n_embd {
            return Err(Error::Msg(format!(
                "token_embd.weight has {cols} columns, expected {n_embd}"
            )));
        }
        let output_norm = load.vector("output_norm.weight", n_embd)?;
        let output = if load.has("output.weight") {
            Some(load.linear("output", vocab, n_embd)?)
        } else {
            None
        };
        let q_dim = n_head * head_dim;
        let kv_dim = n_kv * head_dim;
        let mut layers = Vec::with_capacity(n_layer);
        for i in 0..n_layer {
            let p = |s: &str| format!("blk.{i}.{s}");
            let qkv = if load.has(&p("attn_qkv.weight")) {
                Proj::One(load.linear(&p("attn_qkv"), q_dim + 2 * kv_dim, n_embd)?)
            } else {
                Proj::fuse(vec![
                    load.linear(&p("attn_q"), q_dim, n_embd)?,
                    load.linear(&p("attn_k"), kv_dim, n_embd)?,
                    load.linear(&p("attn_v"), kv_dim, n_embd)?,
                ])
            };
            let gate_up = if load.has(&p("ffn_gate.weight")) {
                Proj::fuse(vec![
                    load.linear(&p("ffn_gate"), n_ff, n_embd)?,
                    load.linear(&p("ffn_up"), n_ff, n_embd)?,
                ])
            } else {
                // phi3: ffn_up holds the gate rows, then the up rows.
                Proj::One(load.linear(&p("ffn_up"), 2 * n_ff, n_embd)?)
            };
            let sliding = gemma && (i + 1) % window_pattern != 0;
            layers.push(Layer {
                attn_norm: load.vector(&p("attn_norm.weight"), n_embd)?,
                qkv,
                q_norm: load.optional_vector(&p("attn_q_norm.weight"), head_dim)?,
                k_norm: load.optional_vector(&p("attn_k_norm.weight"), head_dim)?,
                wo: load.linear(&p("attn_output"), n_embd, q_dim)?,
                post_attn_norm: load.optional_vector(&p("post_attention_norm.weight"), n_embd)?,
                ffn_norm: load.vector(&p("ffn_norm.weight"), n_embd)?,
                gate_up,
                down: load.linear(&p("ffn_down"), n_embd, n_ff)?,
                post_ffn_norm: load.optional_vector(&p("post_ffw_norm.weight"), n_embd)?,
                window: if sliding { window } else { None },
            });
        }
        Ok(Self {
            config: Config {
                n_embd,
                n_layer,
                n_head,
                n_kv,
                head_dim,
                n_ff,
                vocab,
                n_rot,
                rope_base,
                rope_base_local,
                neox: arch != Architecture::Llama,
                eps,
                embd_scale: gemma.then(|| (n_embd as f32).sqrt()),
                activation: if gemma {
                    Activation::GeluTanh
                } else {
                    Activation::Silu
                },
            },
            embedding,
            layers,
            output_norm,
            output,
        })
    }

    /// Bytes of weights held.
    pub fn weight_bytes(&self) -> usize {
        let layers: usize = self
            .layers
            .iter()
            .map(|l| {
                l.qkv.bytes()
                    + l.wo.bytes()
                    + l.gate_up.bytes()
                    + l.down.bytes()
                    + 4 * (l.attn_norm.len() + l.ffn_norm.len())
            })
            .sum();
        layers + self.embedding.bytes() + self.output.as_ref().map_or(0, Linear::bytes)
    }

    /// KV-cache bytes per position: layers × (K + V) × KV heads × head width × 4.
    pub fn kv_bytes_per_token(&self) -> u64 {
        let c = &self.config;
        (c.n_layer * 2 * c.n_kv * c.head_dim * 4) as u64
    }

    /// Runs `steps` (each sequence's new tokens after what its cache holds) as one batch and
    /// returns each sequence's next-token logits. Callers check positions and token ids.
    pub fn forward(&self, steps: &mut [Step<'_>]) -> Vec<Vec<f32>> {
        let c = &self.config;
        let d = c.n_embd;
        let (q_dim, kv_dim) = (c.n_head * c.head_dim, c.n_kv * c.head_dim);
        // Row r: which step, which position.
        let mut owner = Vec::new();
        let mut position = Vec::new();
        for (s, step) in steps.iter_mut().enumerate() {
            if step.cache.layers.is_empty() {
                step.cache.layers = (0..c.n_layer).map(|_| Default::default()).collect();
            }
            for i in 0..step.tokens.len() {
                owner.push(s);
                position.push(step.cache.len + i);
            }
        }
        let n = owner.len();
        let mut x = vec![0f32; n * d];
        let mut r = 0;
        for step in steps.iter() {
            for &t in step.tokens {
                let row = &mut x[r * d..(r + 1) * d];
                self.embedding.dequantize_row(t as usize, d, row);
                if let Some(scale) = c.embd_scale {
                    row.iter_mut().for_each(|v| *v *= scale);
                }
                r += 1;
            }
        }
        let rope_global = rope_tables(&position, c.n_rot, c.rope_base);
        let rope_local = (c.rope_base_local != c.rope_base)
            .then(|| rope_tables(&position, c.n_rot, c.rope_base_local));
        let (mut h, mut qkv, mut attn, mut o, mut gu, mut ff) = (
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
        );
        for (li, layer) in self.layers.iter().enumerate() {
            rms_norm_rows(&x, &layer.attn_norm, c.eps, d, &mut h);
            layer.qkv.forward(&h, &mut qkv);
            let width = q_dim + 2 * kv_dim;
            let rope = match (layer.window, &rope_local) {
                (Some(_), Some(local)) => local,
                _ => &rope_global,
            };
            for (r, row) in qkv.chunks_exact_mut(width).enumerate() {
                let (q, kv) = row.split_at_mut(q_dim);
                let k = &mut kv[..kv_dim];
                if let Some(w) = &layer.q_norm {
                    q.chunks_exact_mut(c.head_dim)
                        .for_each(|head| rms_norm_in_place(head, w, c.eps));
                }
                if let Some(w) = &layer.k_norm {
                    k.chunks_exact_mut(c.head_dim)
                        .for_each(|head| rms_norm_in_place(head, w, c.eps));
                }
                let table = &rope[r];
                q.chunks_exact_mut(c.head_dim)
                    .for_each(|head| rotate(head, table, c.neox));
                k.chunks_exact_mut(c.head_dim)
                    .for_each(|head| rotate(head, table, c.neox));
            }
            // New keys and values go into each sequence's cache before anyone attends: a row
            // at position p reads positions ≤ p only.
            for (r, row) in qkv.chunks_exact(width).enumerate() {
                let cache = &mut steps[owner[r]].cache.layers[li];
                reserve_positions(&mut cache.0, kv_dim);
                reserve_positions(&mut cache.1, kv_dim);
                cache.0.extend_from_slice(&row[q_dim..q_dim + kv_dim]);
                cache.1.extend_from_slice(&row[q_dim + kv_dim..]);
            }
            attn.clear();
            attn.resize(n * q_dim, 0.0);
            {
                let caches: Vec<&(Vec<f32>, Vec<f32>)> =
                    steps.iter().map(|s| &s.cache.layers[li]).collect();
                attend(
                    c,
                    &qkv,
                    width,
                    &owner,
                    &position,
                    &caches,
                    layer.window,
                    &mut attn,
                );
            }
            layer.wo.forward(&attn, &mut o);
            if let Some(w) = &layer.post_attn_norm {
                o.chunks_exact_mut(d)
                    .for_each(|row| rms_norm_in_place(row, w, c.eps));
            }
            x.iter_mut().zip(&o).for_each(|(a, b)| *a += b);
            rms_norm_rows(&x, &layer.ffn_norm, c.eps, d, &mut h);
            layer.gate_up.forward(&h, &mut gu);
            ff.clear();
            ff.reserve(n * c.n_ff);
            for row in gu.chunks_exact(2 * c.n_ff) {
                let (gate, up) = row.split_at(c.n_ff);
                ff.extend(gate.iter().zip(up).map(|(&g, &u)| {
                    let a = match c.activation {
                        Activation::Silu => silu(g),
                        Activation::GeluTanh => gelu_tanh(g),
                    };
                    a * u
                }));
            }
            layer.down.forward(&ff, &mut o);
            if let Some(w) = &layer.post_ffn_norm {
                o.chunks_exact_mut(d)
                    .for_each(|row| rms_norm_in_place(row, w, c.eps));
            }
            x.iter_mut().zip(&o).for_each(|(a, b)| *a += b);
        }
        for step in steps.iter_mut() {
            step.cache.len += step.tokens.len();
        }
        // Logits for each sequence's last row only.
        let mut last = Vec::with_capacity(steps.len() * d);
        let mut end = 0;
        for step in steps.iter() {
            end += step.tokens.len();
            last.extend_from_slice(&x[(end - 1) * d..end * d]);
        }
        rms_norm_rows(&last.clone(), &self.output_norm, c.eps, d, &mut last);
        let mut logits = Vec::new();
        match &self.output {
            Some(out) => out.forward(&last, &mut logits),
            None => {
                logits.resize(steps.len() * c.vocab, 0.0);
                kernels::matmul(
                    &self.embedding,
                    c.vocab,
                    d,
                    None,
                    &last,
                    steps.len(),
                    &mut logits,
                );
            }
        }
        logits.chunks_exact(c.vocab).map(<[f32]>::to_vec).collect()
    }
}

fn reserve_positions(v: &mut Vec<f32>, per_position: usize) {
    if v.capacity() - v.len() < per_position {
        v.reserve_exact(KV_GROWTH * per_position);
    }
}

/// cos/sin of each rotary pair for each row's position, computed as llama.cpp does:
/// `θ₀ = p`, `θᵢ₊₁ = θᵢ × base^(−2/n_rot)` in f32.
fn rope_tables(positions: &[usize], n_rot: usize, base: f32) -> Vec<Vec<(f32, f32)>> {
    let scale = base.powf(-2.0 / n_rot as f32);
    positions
        .iter()
        .map(|&p| {
            let mut theta = p as f32;
            (0..n_rot / 2)
                .map(|_| {
                    let cs = (theta.cos(), theta.sin());
                    theta *= scale;
                    cs
                })
                .collect()
        })
        .collect()
}

fn rotate(head: &mut [f32], table: &[(f32, f32)], neox: bool) {
    let half = table.len();
    for (i, &(cos, sin)) in table.iter().enumerate() {
        let (a, b) = if neox {
            (i, i + half)
        } else {
            (2 * i, 2 * i + 1)
        };
        let (x0, x1) = (head[a], head[b]);
        head[a] = x0 * cos - x1 * sin;
        head[b] = x0 * sin + x1 * cos;
    }
}

/// RMS norm as ggml: the mean of squares summed in f64, `1/√(mean + ε)` in f32, then × weight.
fn rms_norm_in_place(x: &mut [f32], w: &[f32], eps: f32) {
    let mut sum = 0f64;
    for v in x.iter() {
        sum += f64::from(v * v);
    }
    let mean = (sum / x.len() as f64) as f32;
    let scale = 1.0 / (mean + eps).sqrt();
    for (v, w) in x.iter_mut().zip(w) {
        *v = (*v * scale) * w;
    }
}

fn rms_norm_rows(x: &[f32], w: &[f32], eps: f32, d: usize, out: &mut Vec<f32>) {
    out.clear();
    out.extend_from_slice(x);
    out.chunks_exact_mut(d)
        .for_each(|row| rms_norm_in_place(row, w, eps));
}

fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    const COEF_A: f32 = 0.044_715;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + COEF_A * x * x)).tanh())
}

/// Causal attention of every row's query heads over its own sequence's cache, rows and heads
/// in parallel (each output value is computed by one task, in one order).
#[allow(clippy::too_many_arguments)]
fn attend(
    c: &Config,
    qkv: &[f32],
    width: usize,
    owner: &[usize],
    position: &[usize],
    caches: &[&(Vec<f32>, Vec<f32>)],
    window: Option<usize>,
    out: &mut [f32],
) {
    use rayon::prelude::*;
    let hd = c.head_dim;
    let group = c.n_head / c.n_kv;
    let kv_dim = c.n_kv * hd;
    let scale = 1.0 / (hd as f32).sqrt();
    out.par_chunks_mut(hd).enumerate().for_each(|(task, o)| {
        let (r, h) = (task / c.n_head, task % c.n_head);
        let q = &qkv[r * width + h * hd..r * width + (h + 1) * hd];
        let (keys, values) = caches[owner[r]];
        let g = h / group;
        let p = position[r];
        let first = window.map_or(0, |w| (p + 1).saturating_sub(w));
        let mut scores: Vec<f32> = (first..=p)
            .map(|t| {
                kernels::dot_f32(q, &keys[t * kv_dim + g * hd..t * kv_dim + (g + 1) * hd]) * scale
            })
            .collect();
        let max = scores.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
        let mut sum = 0f64;
        for s in scores.iter_mut() {
            *s = (*s - max).exp();
            sum += f64::from(*s);
        }
        let inv = (1.0 / sum) as f32;
        o.fill(0.0);
        for (i, t) in (first..=p).enumerate() {
            let weight = scores[i] * inv;
            let v = &values[t * kv_dim + g * hd..t * kv_dim + (g + 1) * hd];
            for (acc, &vv) in o.iter_mut().zip(v) {
                *acc += weight * vv;
            }
        }
    });
}
