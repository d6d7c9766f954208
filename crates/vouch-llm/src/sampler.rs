//! Choosing the next token from the logits, reproducibly.
//!
//! The algorithm is part of the replay contract and is specified in docs/llm.md ("Sampler")
//! so that another implementation can reproduce it: greedy at temperature 0; otherwise sort,
//! top-k, softmax in f64 in sorted order, top-p, one uniform draw from ChaCha20 keyed by the
//! seed. The PRNG is `rand_chacha`'s `ChaCha20Rng` (pinned with `=`); only its raw `next_u64`
//! is used — the uniform float is computed here, not by `rand`'s distributions, which may
//! change between versions.

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::LlmError;

/// How to pick each token.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SamplingParams {
    /// 0 = greedy (argmax). Otherwise logits are divided by it; at most [`MAX_TEMPERATURE`].
    pub temperature: f64,
    /// Nucleus sampling: keep the most likely tokens whose probabilities add up to at least
    /// this. 1.0 = off. In (0, 1].
    pub top_p: f64,
    /// Keep only the `top_k` most likely tokens first; 0 = off.
    pub top_k: u32,
    /// Seeds the PRNG. Every sampled run is reproducible from it.
    pub seed: u64,
}

pub const MAX_TEMPERATURE: f64 = 100.0;

impl SamplingParams {
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            top_p: 1.0,
            top_k: 0,
            seed: 0,
        }
    }

    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0
    }

    pub fn validate(&self) -> Result<(), LlmError> {
        if !(self.temperature.is_finite() && (0.0..=MAX_TEMPERATURE).contains(&self.temperature)) {
            return Err(LlmError::BadParameter {
                name: "temperature",
                why: format!("{} is not in [0, {MAX_TEMPERATURE}]", self.temperature),
            });
        }
        if !(self.top_p.is_finite() && self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(LlmError::BadParameter {
                name: "top_p",
                why: format!("{} is not in (0, 1]", self.top_p),
            });
        }
        Ok(())
    }
}

/// The sampler of one generation: its parameters and its PRNG stream.
pub struct Sampler {
    params: SamplingParams,
    rng: ChaCha20Rng,
}

/// The ChaCha20 key for `seed`: its 8 little-endian bytes, then 24 zero bytes.
pub fn chacha_key(seed: u64) -> [u8; 32] {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key
}

/// A uniform f64 in [0, 1) from the top 53 bits of one `next_u64`.
pub fn uniform_f64(word: u64) -> f64 {
    (word >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Result<Self, LlmError> {
        params.validate()?;
        Ok(Self {
            params,
            rng: ChaCha20Rng::from_seed(chacha_key(params.seed)),
        })
    }

    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// The next token id. NaN logits count as −∞; a vocabulary of only NaN/−∞ gives token 0.
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        if self.params.is_greedy() {
            return argmax(logits);
        }
        // Candidates by descending logit, ties to the lower id: one u64 key per candidate whose
        // ascending order is exactly that order (a total order, so an unstable sort gives the
        // one result), and with top-k only the k first are sorted.
        let mut keys: Vec<u64> = logits
            .iter()
            .enumerate()
            .filter(|(_, l)| l.is_finite())
            .map(|(i, l)| (u64::from(!ordered_bits(*l)) << 32) | i as u64)
            .collect();
        if keys.is_empty() {
            return 0;
        }
        let k = self.params.top_k as usize;
        if k > 0 && k < keys.len() {
            keys.select_nth_unstable(k - 1);
            keys.truncate(k);
        }
        radix_sort(&mut keys);
        let order: Vec<u32> = keys.iter().map(|key| *key as u32).collect();
        let t = self.params.temperature;
        let max = f64::from(logits[order[0] as usize]) / t;
        let weights: Vec<f64> = order
            .iter()
            .map(|&i| (f64::from(logits[i as usize]) / t - max).exp())
            .collect();
        let mut total = 0.0f64;
        for w in &weights {
            total += w;
        }
        // Top-p: the shortest prefix whose probability reaches top_p (at least one token).
        let mut kept = weights.len();
        if self.params.top_p < 1.0 {
            let mut cumulative = 0.0f64;
            for (n, w) in weights.iter().enumerate() {
                cumulative += w / total;
                if cumulative >= self.params.top_p {
                    kept = n + 1;
                    break;
                }
            }
        }
        let mut kept_total = 0.0f64;
        for w in &weights[..kept] {
            kept_total += w;
        }
        let target = uniform_f64(self.rng.next_u64()) * kept_total;
        let mut cumulative = 0.0f64;
        for (n, w) in weights[..kept].iter().enumerate() {
            cumulative += w;
            if target < cumulative {
                return order[n];
            }
        }
        order[kept - 1]
    }
}

/// Sorts ascending: least-significant-byte-first counting passes, skipping a byte all keys
/// share (a vocabulary's ids use two or three of the eight). The keys are distinct (each ends
/// with its token id), so this is the one sorted order, whatever the algorithm.
fn radix_sort(keys: &mut Vec<u64>) {
    let mut other = vec![0u64; keys.len()];
    for shift in (0..64).step_by(8) {
        let mut counts = [0usize; 256];
        for k in keys.iter() {
            counts[((k >> shift) & 0xFF) as usize] += 1;
        }
        if counts.contains(&keys.len()) {
            continue;
        }
        let mut start = [0usize; 256];
        let mut at = 0;
        for (s, c) in start.iter_mut().zip(counts) {
            *s = at;
            at += c;
        }
        for k in keys.iter() {
            let digit = ((k >> shift) & 0xFF) as usize;
            other[start[digit]] = *k;
            start[digit] += 1;
        }
        std::mem::swap(keys, &mut other);
    }
}

/// `f32::total_cmp`'s order as unsigned integers: negative values with all bits flipped,
/// the others with the sign bit set.
fn ordered_bits(x: f32) -> u32 {
    let bits = x.to_bits();
    if bits >> 31 == 1 {
        !bits
    } else {
        bits | 0x8000_0000
    }
}

/// The index of the largest logit, the lowest index among equals; NaN never wins.
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    let mut best_value = f32::NEG_INFINITY;
    for (i, &v) in logits.iter().enumerate() {
        if v > best_value {
            best = i;
            best_value = v;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(temperature: f64, top_p: f64, top_k: u32, seed: u64) -> SamplingParams {
        SamplingParams {
            temperature,
            top_p,
            top_k,
            seed,
        }
    }

    #[test]
    fn greedy_takes_the_first_maximum_and_skips_nan() {
        let mut s = Sampler::new(SamplingParams::greedy()).unwrap();
        assert_eq!(s.sample(&[1.0, f32::NAN, 3.0, 3.0, -1.0]), 2);
    }

    #[test]
    fn chacha20_stream_is_the_pinned_one() {
        // Known answer for the documented PRNG: ChaCha20 (RFC 8439 block function, 20 rounds,
        // zero nonce, counter from 0), key = seed LE ‖ 24 zero bytes; next_u64 = keystream
        // bytes 0..8 little-endian. Checked independently in Python (docs/llm.md).
        let mut rng = ChaCha20Rng::from_seed(chacha_key(42));
        let first = rng.next_u64();
        let second = rng.next_u64();
        assert_eq!((first, second), (KNOWN_SEED42_FIRST, KNOWN_SEED42_SECOND));
    }

    // From PyCryptodome: ChaCha20.new(key=pack('<Q', 42) + bytes(24), nonce=bytes(8)).encrypt(bytes(16)).
    const KNOWN_SEED42_FIRST: u64 = 0x6ae3_0a51_26e5_761f;
    const KNOWN_SEED42_SECOND: u64 = 0xb4eb_7f59_5c8b_5c62;

    #[test]
    fn same_seed_same_tokens_other_seed_other_tokens() {
        let logits: Vec<f32> = (0..50).map(|i| ((i * 37) % 11) as f32 * 0.3).collect();
        let run = |seed| {
            let mut s = Sampler::new(params(1.0, 0.95, 0, seed)).unwrap();
            (0..40).map(|_| s.sample(&logits)).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn top_k_one_and_tiny_top_p_are_greedy() {
        let logits = [0.5f32, 2.0, 1.9, -3.0];
        let mut k1 = Sampler::new(params(1.5, 1.0, 1, 3)).unwrap();
        let mut p0 = Sampler::new(params(1.5, 1e-9, 0, 3)).unwrap();
        for _ in 0..20 {
            assert_eq!(k1.sample(&logits), 1);
            assert_eq!(p0.sample(&logits), 1);
        }
    }

    #[test]
    fn frequencies_follow_the_softmax() {
        // Two tokens with logits ln 3 and 0 at temperature 1: probabilities 3/4 and 1/4.
        let logits = [3f32.ln(), 0.0];
        let mut s = Sampler::new(params(1.0, 1.0, 0, 11)).unwrap();
        let n = 20_000;
        let zeros = (0..n).filter(|_| s.sample(&logits) == 0).count();
        let share = zeros as f64 / n as f64;
        assert!((share - 0.75).abs() < 0.015, "share {share}");
    }

    /// The u64 keys order candidates exactly as the specified comparator does.
    #[test]
    fn the_sort_keys_follow_the_specified_order() {
        let logits = [0.5f32, -0.0, 0.0, -1.5, 2.0, 0.5, -3.0e-39, 1.0e-39, 2.0];
        let mut spec: Vec<u32> = (0..logits.len() as u32).collect();
        spec.sort_by(|&a, &b| {
            logits[b as usize]
                .total_cmp(&logits[a as usize])
                .then(a.cmp(&b))
        });
        let mut keys: Vec<u64> = logits
            .iter()
            .enumerate()
            .map(|(i, l)| (u64::from(!ordered_bits(*l)) << 32) | i as u64)
            .collect();
        radix_sort(&mut keys);
        let ours: Vec<u32> = keys.iter().map(|k| *k as u32).collect();
        assert_eq!(ours, spec);
        // And on a vocabulary-sized stream with repeated values.
        let mut state = 12345u64;
        let many: Vec<f32> = (0..50_000)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 40) % 2000) as f32 / 100.0 - 10.0
            })
            .collect();
        let mut spec: Vec<u32> = (0..many.len() as u32).collect();
        spec.sort_by(|&a, &b| {
            many[b as usize]
                .total_cmp(&many[a as usize])
                .then(a.cmp(&b))
        });
        let mut keys: Vec<u64> = many
            .iter()
            .enumerate()
            .map(|(i, l)| (u64::from(!ordered_bits(*l)) << 32) | i as u64)
            .collect();
        radix_sort(&mut keys);
        assert!(keys.iter().map(|k| *k as u32).eq(spec));
    }

    #[test]
    fn out_of_range_parameters_are_refused() {
        assert!(Sampler::new(params(-1.0, 1.0, 0, 0)).is_err());
        assert!(Sampler::new(params(f64::NAN, 1.0, 0, 0)).is_err());
        assert!(Sampler::new(params(1.0, 0.0, 0, 0)).is_err());
        assert!(Sampler::new(params(1.0, 1.5, 0, 0)).is_err());
    }
}
