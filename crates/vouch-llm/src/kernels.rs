//! Vouch's matrix-vector kernels for the quantized weights: Q4_1 and Q8_0 weights, activations
//! quantized as llama.cpp does (Q8_1 for Q4_1, Q8_0 for Q8_0), and f32.
//!
//! **Batch invariance.** Each output element `W[r] · x[b]` is one dot product computed by
//! exactly the same sequence of float operations whatever the batch size, the row range a
//! thread was given, or the number of threads: the batch only decides which dot products run,
//! never how. That is what makes batched decoding and multi-threading replay-safe.
//!
//! **The canonical order** (the AVX2 code's, and the scalar fallback's, bit for bit): a block
//! of 32 weights is split into 8 lanes of 4 consecutive elements. A lane's integer products
//! are summed exactly (i32), converted to f32 (exact: |sum| < 2²⁴) and accumulated with one
//! fused multiply-add per block into that lane's f32 accumulator, scaled by `d_w × d_x`. The
//! eight lanes are then added as `((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7))`. Q4_1's offset term
//! `Σ m_w × s_x` is a separate f32 sum in block order, added last. f32 rows use the same eight
//! lanes over consecutive groups of 8 elements, then the tail element by element with fused
//! multiply-adds. The scalar fallback uses `f32::mul_add`, which is the same fused operation.

// The AVX2 kernels are `unsafe` (intrinsics, unchecked loads inside bounds computed once);
// everything else in the crate stays under the workspace's `deny(unsafe_code)`.
#![allow(unsafe_code)]

use half::f16;
use rayon::prelude::*;

/// Elements per quantization block (Q4_1, Q8_0, Q8_1).
pub const BLOCK: usize = 32;
/// Bytes of one Q4_1 block: f16 scale, f16 minimum, 16 bytes of nibbles.
pub const Q4_1_BYTES: usize = 20;
/// Bytes of one Q8_0 block: f16 scale, 32 signed bytes.
pub const Q8_0_BYTES: usize = 34;

/// Whether the AVX2 + FMA + F16C kernels run on this CPU (checked once, at run time).
pub fn simd() -> &'static str {
    if has_avx2() { "avx2" } else { "scalar" }
}

#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
    use std::sync::OnceLock;
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
    })
}

#[cfg(not(target_arch = "x86_64"))]
fn has_avx2() -> bool {
    false
}

fn f16_at(bytes: &[u8], at: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([bytes[at], bytes[at + 1]])).to_f32()
}

/// `((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7))`: the AVX2 horizontal sum's order.
fn hsum8(l: &[f32; 8]) -> f32 {
    let r = [l[0] + l[4], l[1] + l[5], l[2] + l[6], l[3] + l[7]];
    (r[0] + r[2]) + (r[1] + r[3])
}

/// A weight matrix: `rows` outputs of `cols` inputs each, in the file's block layout.
#[derive(Debug)]
pub enum WeightData {
    Q4_1(Vec<u8>),
    Q8_0(Vec<u8>),
    F32(Vec<f32>),
}

/// Activations quantized for one weight type: `rows` rows of `cols` values.
pub enum Activations<'a> {
    /// 32 signed bytes per block, the block's scale, and (Q8_1) scale × Σ q.
    Q8 {
        q: Vec<i8>,
        d: Vec<f32>,
        s: Vec<f32>,
    },
    F32(&'a [f32]),
}

/// Quantizes `x` (rows of `cols`, `cols` a multiple of 32) to 8 bits per block as llama.cpp's
/// AVX2 path does: `d = max|x| / 127` (stored as f16), `q = round_ties_even(x × 127 / max|x|)`,
/// and for Q8_1 `s = f16(d × Σ q)` with the f32 `d`.
pub fn quantize_q8(x: &[f32], with_sum: bool) -> Activations<'static> {
    let blocks = x.len() / BLOCK;
    let mut q = vec![0i8; blocks * BLOCK];
    let mut d = Vec::with_capacity(blocks);
    let mut s = Vec::with_capacity(if with_sum { blocks } else { 0 });
    for (b, chunk) in x.chunks_exact(BLOCK).enumerate() {
        let amax = chunk.iter().fold(0f32, |m, v| m.max(v.abs()));
        let scale = amax / 127.0;
        let inv = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        let mut sum = 0i32;
        for (k, v) in chunk.iter().enumerate() {
            let qv = round_ties_even_small(v * inv) as i8;
            q[b * BLOCK + k] = qv;
            sum += i32::from(qv);
        }
        d.push(f16::from_f32(scale).to_f32());
        if with_sum {
            s.push(f16::from_f32(scale * sum as f32).to_f32());
        }
    }
    Activations::Q8 { q, d, s }
}

/// `x.round_ties_even()` for |x| ≤ 2²², without a libm call: adding and subtracting 1.5 × 2²³
/// leaves no fraction bits, and IEEE addition rounds ties to even. NaN stays NaN.
fn round_ties_even_small(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    (x + MAGIC) - MAGIC
}

impl WeightData {
    /// Dequantizes row `r` (of `cols` values) into `out`: the embedding lookup.
    pub fn dequantize_row(&self, r: usize, cols: usize, out: &mut [f32]) {
        let nb = cols / BLOCK;
        match self {
            WeightData::F32(w) => out.copy_from_slice(&w[r * cols..(r + 1) * cols]),
            WeightData::Q8_0(w) => {
                let row = &w[r * nb * Q8_0_BYTES..(r + 1) * nb * Q8_0_BYTES];
                for (b, blk) in row.chunks_exact(Q8_0_BYTES).enumerate() {
                    let d = f16_at(blk, 0);
                    for k in 0..BLOCK {
                        out[b * BLOCK + k] = f32::from(blk[2 + k] as i8) * d;
                    }
                }
            }
            WeightData::Q4_1(w) => {
                let row = &w[r * nb * Q4_1_BYTES..(r + 1) * nb * Q4_1_BYTES];
                for (b, blk) in row.chunks_exact(Q4_1_BYTES).enumerate() {
                    let (d, m) = (f16_at(blk, 0), f16_at(blk, 2));
                    for k in 0..16 {
                        out[b * BLOCK + k] = f32::from(blk[4 + k] & 0x0F) * d + m;
                        out[b * BLOCK + 16 + k] = f32::from(blk[4 + k] >> 4) * d + m;
                    }
                }
            }
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        match self {
            WeightData::Q4_1(w) | WeightData::Q8_0(w) => w.len(),
            WeightData::F32(w) => w.len() * 4,
        }
    }

    /// The activations this weight type multiplies with.
    pub fn prepare<'a>(&self, x: &'a [f32]) -> Activations<'a> {
        match self {
            WeightData::Q4_1(_) => quantize_q8(x, true),
            WeightData::Q8_0(_) => quantize_q8(x, false),
            WeightData::F32(_) => Activations::F32(x),
        }
    }

    /// `W[r] · x[b]` for the `b`-th activation row.
    fn dot(&self, r: usize, cols: usize, act: &Activations<'_>, b: usize) -> f32 {
        let nb = cols / BLOCK;
        match (self, act) {
            (WeightData::Q4_1(w), Activations::Q8 { q, d, s }) => {
                let row = &w[r * nb * Q4_1_BYTES..(r + 1) * nb * Q4_1_BYTES];
                let ys = b * nb..(b + 1) * nb;
                dot_q4_1_q8_1(row, &q[b * cols..(b + 1) * cols], &d[ys.clone()], &s[ys])
            }
            (WeightData::Q8_0(w), Activations::Q8 { q, d, .. }) => {
                let row = &w[r * nb * Q8_0_BYTES..(r + 1) * nb * Q8_0_BYTES];
                dot_q8_0_q8_0(row, &q[b * cols..(b + 1) * cols], &d[b * nb..(b + 1) * nb])
            }
            (WeightData::F32(w), Activations::F32(x)) => {
                dot_f32(&w[r * cols..(r + 1) * cols], &x[b * cols..(b + 1) * cols])
            }
            // `prepare` pairs them; a mismatch is a bug, and gives NaN rather than a panic.
            _ => f32::NAN,
        }
    }

    /// `W[r] · x[b + k]` for k in 0..4: the weight row's blocks unpacked once for four
    /// activation rows, each value computed exactly as [`WeightData::dot`] does. `d4`/`s4`
    /// are the four rows' block scales (and sums) interleaved: `[block][k]`.
    fn dot4(
        &self,
        r: usize,
        cols: usize,
        act: &Activations<'_>,
        b: usize,
        (d4, s4): (&[f32], &[f32]),
    ) -> [f32; 4] {
        let nb = cols / BLOCK;
        #[cfg(target_arch = "x86_64")]
        if has_avx2() {
            let qs = |k: usize| (b + k) * cols..(b + k + 1) * cols;
            match (self, act) {
                (WeightData::Q4_1(w), Activations::Q8 { q, .. }) => {
                    let row = &w[r * nb * Q4_1_BYTES..(r + 1) * nb * Q4_1_BYTES];
                    let ys = [0, 1, 2, 3].map(|k| &q[qs(k)]);
                    // SAFETY: the CPU has AVX2, FMA and F16C (checked above).
                    return unsafe { avx2::dot_q4_1_q8_1_x4(row, ys, d4, s4) };
                }
                (WeightData::Q8_0(w), Activations::Q8 { q, .. }) => {
                    let row = &w[r * nb * Q8_0_BYTES..(r + 1) * nb * Q8_0_BYTES];
                    let ys = [0, 1, 2, 3].map(|k| &q[qs(k)]);
                    // SAFETY: as above.
                    return unsafe { avx2::dot_q8_0_q8_0_x4(row, ys, d4) };
                }
                _ => {}
            }
        }
        let _ = (d4, s4);
        [0, 1, 2, 3].map(|k| self.dot(r, cols, act, b + k))
    }
}

/// Group `g`'s slice of an [`interleave4`] array (empty if the array is).
fn group4(v: &[f32], g: usize, nb: usize) -> &[f32] {
    v.get(g * nb * 4..(g + 1) * nb * 4).unwrap_or(&[])
}

/// Per-block values of rows `4g..4g+4` side by side (`[g][block][k]`), for the four-row
/// kernels' vector loads. Empty in, empty out.
fn interleave4(v: &[f32], nb: usize, batch: usize) -> Vec<f32> {
    if v.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(batch / 4 * nb * 4);
    for g in 0..batch / 4 {
        for i in 0..nb {
            for k in 0..4 {
                out.push(v[(4 * g + k) * nb + i]);
            }
        }
    }
    out
}

/// Output rows per task: a task reads its weight rows once for every activation row.
const ROWS_PER_TASK: usize = 64;

/// `out[b][r] = W[r] · x[b] (+ bias[r])` for `batch` activation rows, split over the current
/// rayon pool by output rows. `out` has `batch × rows` values.
pub fn matmul(
    w: &WeightData,
    rows: usize,
    cols: usize,
    bias: Option<&[f32]>,
    x: &[f32],
    batch: usize,
    out: &mut [f32],
) {
    let act = w.prepare(x);
    let nb = cols / BLOCK;
    let (d4, s4) = match &act {
        Activations::Q8 { d, s, .. } if batch >= 4 => {
            (interleave4(d, nb, batch), interleave4(s, nb, batch))
        }
        _ => (Vec::new(), Vec::new()),
    };
    let tasks = rows.div_ceil(ROWS_PER_TASK);
    let parts: Vec<Vec<f32>> = (0..tasks)
        .into_par_iter()
        .map(|t| {
            let r0 = t * ROWS_PER_TASK;
            let r1 = (r0 + ROWS_PER_TASK).min(rows);
            let mut part = vec![0f32; (r1 - r0) * batch];
            // Four activation rows at a time over the task's weight rows (which stay in
            // cache), then the rest one by one.
            let mut b = 0;
            while b + 4 <= batch {
                let scales = (group4(&d4, b / 4, nb), group4(&s4, b / 4, nb));
                for r in r0..r1 {
                    let v = w.dot4(r, cols, &act, b, scales);
                    part[(r - r0) * batch + b..(r - r0) * batch + b + 4].copy_from_slice(&v);
                }
                b += 4;
            }
            for b in b..batch {
                for r in r0..r1 {
                    part[(r - r0) * batch + b] = w.dot(r, cols, &act, b);
                }
            }
            part
        })
        .collect();
    for (t, part) in parts.iter().enumerate() {
        let r0 = t * ROWS_PER_TASK;
        let n = part.len() / batch.max(1);
        for i in 0..n {
            for b in 0..batch {
                out[b * rows + r0 + i] = part[i * batch + b];
            }
        }
    }
    if let Some(bias) = bias {
        for row in out.chunks_exact_mut(rows) {
            for (o, b) in row.iter_mut().zip(bias) {
                *o += b;
            }
        }
    }
}

/// Q4_1 weights · Q8_1 activations, one row (see the module doc for the order).
pub fn dot_q4_1_q8_1(w: &[u8], q: &[i8], d: &[f32], s: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU has AVX2, FMA and F16C (checked above); slices are sized by the caller.
        return unsafe { avx2::dot_q4_1_q8_1(w, q, d, s) };
    }
    dot_q4_1_q8_1_scalar(w, q, d, s)
}

pub fn dot_q4_1_q8_1_scalar(w: &[u8], q: &[i8], d: &[f32], s: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let mut summs = 0f32;
    for (i, blk) in w.chunks_exact(Q4_1_BYTES).enumerate() {
        let (dw, mw) = (f16_at(blk, 0), f16_at(blk, 2));
        let y = &q[i * BLOCK..(i + 1) * BLOCK];
        let scale = dw * d[i];
        for (lane, a) in acc.iter_mut().enumerate() {
            let mut sum = 0i32;
            for e in lane * 4..lane * 4 + 4 {
                let nibble = if e < 16 {
                    blk[4 + e] & 0x0F
                } else {
                    blk[4 + e - 16] >> 4
                };
                sum += i32::from(nibble) * i32::from(y[e]);
            }
            *a = scale.mul_add(sum as f32, *a);
        }
        summs += mw * s[i];
    }
    hsum8(&acc) + summs
}

/// Q8_0 weights · Q8_0 activations, one row.
pub fn dot_q8_0_q8_0(w: &[u8], q: &[i8], d: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: as in `dot_q4_1_q8_1`.
        return unsafe { avx2::dot_q8_0_q8_0(w, q, d) };
    }
    dot_q8_0_q8_0_scalar(w, q, d)
}

pub fn dot_q8_0_q8_0_scalar(w: &[u8], q: &[i8], d: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    for (i, blk) in w.chunks_exact(Q8_0_BYTES).enumerate() {
        let scale = f16_at(blk, 0) * d[i];
        let y = &q[i * BLOCK..(i + 1) * BLOCK];
        for (lane, a) in acc.iter_mut().enumerate() {
            let mut sum = 0i32;
            for e in lane * 4..lane * 4 + 4 {
                sum += i32::from(blk[2 + e] as i8) * i32::from(y[e]);
            }
            *a = scale.mul_add(sum as f32, *a);
        }
    }
    hsum8(&acc)
}

/// f32 · f32, one row.
pub fn dot_f32(w: &[f32], x: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: as in `dot_q4_1_q8_1`.
        return unsafe { avx2::dot_f32(w, x) };
    }
    dot_f32_scalar(w, x)
}

pub fn dot_f32_scalar(w: &[f32], x: &[f32]) -> f32 {
    let n = w.len().min(x.len());
    let full = n / 8 * 8;
    let mut acc = [0f32; 8];
    for (wc, xc) in w[..full].chunks_exact(8).zip(x[..full].chunks_exact(8)) {
        for lane in 0..8 {
            acc[lane] = wc[lane].mul_add(xc[lane], acc[lane]);
        }
    }
    let mut r = hsum8(&acc);
    for k in full..n {
        r = w[k].mul_add(x[k], r);
    }
    r
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{BLOCK, Q4_1_BYTES, Q8_0_BYTES};
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn hsum(v: __m256) -> f32 {
        let r = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let r = _mm_add_ps(r, _mm_movehl_ps(r, r));
        let r = _mm_add_ss(r, _mm_movehdup_ps(r));
        _mm_cvtss_f32(r)
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn f16(p: *const u8) -> f32 {
        let bits = unsafe { std::ptr::read_unaligned(p as *const u16) };
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits))))
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_q4_1_q8_1(w: &[u8], q: &[i8], d: &[f32], s: &[f32]) -> f32 {
        let nb = (w.len() / Q4_1_BYTES)
            .min(q.len() / BLOCK)
            .min(d.len())
            .min(s.len());
        let mask = _mm256_set1_epi8(0x0F);
        let ones = _mm256_set1_epi16(1);
        let mut acc = _mm256_setzero_ps();
        let mut summs = 0f32;
        for i in 0..nb {
            // SAFETY: i < nb keeps every read inside the slices.
            unsafe {
                let blk = w.as_ptr().add(i * Q4_1_BYTES);
                let (dw, mw) = (f16(blk), f16(blk.add(2)));
                let packed = _mm_loadu_si128(blk.add(4) as *const __m128i);
                let nibbles =
                    _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(packed, 4), packed), mask);
                let y = _mm256_loadu_si256(q.as_ptr().add(i * BLOCK) as *const __m256i);
                let lanes = _mm256_madd_epi16(_mm256_maddubs_epi16(nibbles, y), ones);
                acc = _mm256_fmadd_ps(
                    _mm256_set1_ps(dw * *d.get_unchecked(i)),
                    _mm256_cvtepi32_ps(lanes),
                    acc,
                );
                summs += mw * *s.get_unchecked(i);
            }
        }
        unsafe { hsum(acc) + summs }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_q8_0_q8_0(w: &[u8], q: &[i8], d: &[f32]) -> f32 {
        let nb = (w.len() / Q8_0_BYTES).min(q.len() / BLOCK).min(d.len());
        let ones = _mm256_set1_epi16(1);
        let mut acc = _mm256_setzero_ps();
        for i in 0..nb {
            // SAFETY: i < nb keeps every read inside the slices.
            unsafe {
                let blk = w.as_ptr().add(i * Q8_0_BYTES);
                let dw = f16(blk);
                let x = _mm256_loadu_si256(blk.add(2) as *const __m256i);
                let y = _mm256_loadu_si256(q.as_ptr().add(i * BLOCK) as *const __m256i);
                // |x| × sign(y, x): u8 × i8 pairs, as maddubs needs; exact (no saturation for
                // |x| ≤ 128, |y| ≤ 127).
                let lanes = _mm256_madd_epi16(
                    _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x)),
                    ones,
                );
                acc = _mm256_fmadd_ps(
                    _mm256_set1_ps(dw * *d.get_unchecked(i)),
                    _mm256_cvtepi32_ps(lanes),
                    acc,
                );
            }
        }
        unsafe { hsum(acc) }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_q4_1_q8_1_x4(w: &[u8], q: [&[i8]; 4], d4: &[f32], s4: &[f32]) -> [f32; 4] {
        let mut nb = (w.len() / Q4_1_BYTES).min(d4.len() / 4).min(s4.len() / 4);
        for y in q {
            nb = nb.min(y.len() / BLOCK);
        }
        let mask = _mm256_set1_epi8(0x0F);
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut summs = _mm_setzero_ps();
        let mut scale = [0f32; 4];
        for i in 0..nb {
            // SAFETY: i < nb keeps every read inside the slices.
            unsafe {
                let blk = w.as_ptr().add(i * Q4_1_BYTES);
                let (dw, mw) = (f16(blk), f16(blk.add(2)));
                // dw × d_k for the four rows at once (the same products as one by one), and
                // summs_k + mw × s_k, a multiply then an add, as the scalar code rounds them.
                _mm_storeu_ps(
                    scale.as_mut_ptr(),
                    _mm_mul_ps(_mm_set1_ps(dw), _mm_loadu_ps(d4.as_ptr().add(4 * i))),
                );
                summs = _mm_add_ps(
                    summs,
                    _mm_mul_ps(_mm_set1_ps(mw), _mm_loadu_ps(s4.as_ptr().add(4 * i))),
                );
                let packed = _mm_loadu_si128(blk.add(4) as *const __m128i);
                let nibbles =
                    _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(packed, 4), packed), mask);
                for k in 0..4 {
                    let y = _mm256_loadu_si256(q[k].as_ptr().add(i * BLOCK) as *const __m256i);
                    let lanes = _mm256_madd_epi16(_mm256_maddubs_epi16(nibbles, y), ones);
                    acc[k] = _mm256_fmadd_ps(
                        _mm256_broadcast_ss(&scale[k]),
                        _mm256_cvtepi32_ps(lanes),
                        acc[k],
                    );
                }
            }
        }
        let mut m = [0f32; 4];
        // SAFETY: `m` holds four floats.
        unsafe { _mm_storeu_ps(m.as_mut_ptr(), summs) };
        // SAFETY: AVX2 is present (this function's precondition).
        [0, 1, 2, 3].map(|k| unsafe { hsum(acc[k]) } + m[k])
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_q8_0_q8_0_x4(w: &[u8], q: [&[i8]; 4], d4: &[f32]) -> [f32; 4] {
        let mut nb = (w.len() / Q8_0_BYTES).min(d4.len() / 4);
        for y in q {
            nb = nb.min(y.len() / BLOCK);
        }
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut scale = [0f32; 4];
        for i in 0..nb {
            // SAFETY: i < nb keeps every read inside the slices.
            unsafe {
                let blk = w.as_ptr().add(i * Q8_0_BYTES);
                _mm_storeu_ps(
                    scale.as_mut_ptr(),
                    _mm_mul_ps(_mm_set1_ps(f16(blk)), _mm_loadu_ps(d4.as_ptr().add(4 * i))),
                );
                let x = _mm256_loadu_si256(blk.add(2) as *const __m256i);
                let ax = _mm256_sign_epi8(x, x);
                for k in 0..4 {
                    let y = _mm256_loadu_si256(q[k].as_ptr().add(i * BLOCK) as *const __m256i);
                    let lanes =
                        _mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(y, x)), ones);
                    acc[k] = _mm256_fmadd_ps(
                        _mm256_broadcast_ss(&scale[k]),
                        _mm256_cvtepi32_ps(lanes),
                        acc[k],
                    );
                }
            }
        }
        // SAFETY: AVX2 is present (this function's precondition).
        [0, 1, 2, 3].map(|k| unsafe { hsum(acc[k]) })
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_f32(w: &[f32], x: &[f32]) -> f32 {
        let n = w.len().min(x.len());
        let full = n / 8 * 8;
        let mut acc = _mm256_setzero_ps();
        let mut k = 0;
        while k < full {
            // SAFETY: k + 8 ≤ full ≤ both lengths.
            unsafe {
                acc = _mm256_fmadd_ps(
                    _mm256_loadu_ps(w.as_ptr().add(k)),
                    _mm256_loadu_ps(x.as_ptr().add(k)),
                    acc,
                );
            }
            k += 8;
        }
        let mut r = unsafe { hsum(acc) };
        for k in full..n {
            r = w[k].mul_add(x[k], r);
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random stream (xorshift), so the tests need no RNG crate.
    fn stream(seed: u64) -> impl FnMut() -> f32 {
        let mut s = seed.max(1);
        move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        }
    }

    fn q4_1_row(next: &mut impl FnMut() -> f32, blocks: usize) -> Vec<u8> {
        let mut row = Vec::new();
        for _ in 0..blocks {
            row.extend_from_slice(
                &f16::from_f32(next().abs() * 0.1 + 0.01)
                    .to_bits()
                    .to_le_bytes(),
            );
            row.extend_from_slice(&f16::from_f32(next() * 0.5).to_bits().to_le_bytes());
            for _ in 0..16 {
                row.push(((next() + 1.0) * 127.9) as u8);
            }
        }
        row
    }

    fn q8_0_row(next: &mut impl FnMut() -> f32, blocks: usize) -> Vec<u8> {
        let mut row = Vec::new();
        for b in 0..blocks {
            row.extend_from_slice(
                &f16::from_f32(next().abs() * 0.1 + 0.01)
                    .to_bits()
                    .to_le_bytes(),
            );
            for k in 0..32 {
                // Include the extremes -128 and 127 once.
                let v = match (b, k) {
                    (0, 0) => -128i8,
                    (0, 1) => 127,
                    _ => (next() * 127.0) as i8,
                };
                row.push(v as u8);
            }
        }
        row
    }

    #[test]
    fn simd_and_scalar_kernels_agree_bit_for_bit() {
        let mut next = stream(7);
        for blocks in [1, 3, 18, 48] {
            let x: Vec<f32> = (0..blocks * BLOCK).map(|_| next() * 3.0).collect();
            let Activations::Q8 { q, d, s } = quantize_q8(&x, true) else {
                unreachable!()
            };
            let w = q4_1_row(&mut next, blocks);
            let (a, b) = (
                dot_q4_1_q8_1(&w, &q, &d, &s),
                dot_q4_1_q8_1_scalar(&w, &q, &d, &s),
            );
            assert_eq!(
                a.to_bits(),
                b.to_bits(),
                "Q4_1, {blocks} blocks: {a} vs {b}"
            );
            let w = q8_0_row(&mut next, blocks);
            let (a, b) = (dot_q8_0_q8_0(&w, &q, &d), dot_q8_0_q8_0_scalar(&w, &q, &d));
            assert_eq!(
                a.to_bits(),
                b.to_bits(),
                "Q8_0, {blocks} blocks: {a} vs {b}"
            );
        }
        for n in [1, 7, 8, 33, 64, 100] {
            let w: Vec<f32> = (0..n).map(|_| next()).collect();
            let x: Vec<f32> = (0..n).map(|_| next()).collect();
            assert_eq!(
                dot_f32(&w, &x).to_bits(),
                dot_f32_scalar(&w, &x).to_bits(),
                "f32 {n}"
            );
        }
        eprintln!("kernels: {}", simd());
    }

    #[test]
    fn quantized_dots_approximate_the_float_dot() {
        let mut next = stream(11);
        let blocks = 8;
        let x: Vec<f32> = (0..blocks * BLOCK).map(|_| next()).collect();
        let w = q4_1_row(&mut next, blocks);
        let mut wf = vec![0f32; blocks * BLOCK];
        WeightData::Q4_1(w.clone()).dequantize_row(0, blocks * BLOCK, &mut wf);
        let exact: f32 = wf.iter().zip(&x).map(|(a, b)| a * b).sum();
        let Activations::Q8 { q, d, s } = quantize_q8(&x, true) else {
            unreachable!()
        };
        let got = dot_q4_1_q8_1(&w, &q, &d, &s);
        assert!(
            (got - exact).abs() < 0.02 * exact.abs().max(1.0),
            "{got} vs {exact}"
        );
    }

    #[test]
    fn a_batched_matmul_equals_its_rows_one_at_a_time_on_any_pool() {
        let mut next = stream(3);
        let (rows, cols, batch) = (150, 64, 5);
        let q4 = WeightData::Q4_1(
            (0..rows)
                .flat_map(|_| q4_1_row(&mut next, cols / BLOCK))
                .collect(),
        );
        let q8 = WeightData::Q8_0(
            (0..rows)
                .flat_map(|_| q8_0_row(&mut next, cols / BLOCK))
                .collect(),
        );
        let x: Vec<f32> = (0..batch * cols).map(|_| next()).collect();
        for w in [q4, q8] {
            let mut all = vec![0f32; batch * rows];
            let pool = |n| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build()
                    .unwrap()
            };
            pool(2).install(|| matmul(&w, rows, cols, None, &x, batch, &mut all));
            for b in 0..batch {
                let mut one = vec![0f32; rows];
                pool(1).install(|| {
                    matmul(
                        &w,
                        rows,
                        cols,
                        None,
                        &x[b * cols..(b + 1) * cols],
                        1,
                        &mut one,
                    )
                });
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&all[b * rows..(b + 1) * rows]), bits(&one), "row {b}");
            }
        }
    }
}
