//! Calibration: picks the fixed-point scale, the per-tensor bit widths and the lookup-table width
//! for a model, deterministically from the model and the calibration samples.

use crate::circuit::{self, QuantConfig, Stats};
use crate::error::ZkError;
use crate::graph::{Graph, Op};
use crate::limits::Deadline;

/// Headroom over the largest calibrated magnitude (4× = 2 bits): inputs a little outside the
/// calibration set still prove; far outside, proving fails with `OutOfRange`.
const MARGIN: f64 = 4.0;

/// Scales tried, smallest first; the first whose error meets the target wins.
const SCALES: std::ops::RangeInclusive<u32> = 10..=16;

/// Deterministic standard-normal samples (SplitMix64 + Box–Muller): calibration must not
/// depend on anything but the model and the caller's samples, so keys are reproducible.
pub fn synthetic_inputs(g: &Graph, count: usize, seed: u64) -> Vec<Vec<Vec<f64>>> {
    let mut s = seed;
    let mut next = move || {
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (0..count)
        .map(|_| {
            g.inputs
                .iter()
                .map(|io| {
                    (0..g.value_len[io.value])
                        .map(|_| {
                            let (u1, u2) = (next(), next());
                            (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
                        })
                        .collect()
                })
                .collect()
        })
        .collect()
}

/// Float evaluation keeping every intermediate value (for ranges).
pub fn eval_all(g: &Graph, inputs: &[Vec<f64>]) -> Result<Vec<Vec<f64>>, ZkError> {
    eval_until(g, inputs, &Deadline::none())
}

/// [`eval_all`], giving up between operators once `deadline` has passed.
fn eval_until(
    g: &Graph,
    inputs: &[Vec<f64>],
    deadline: &Deadline,
) -> Result<Vec<Vec<f64>>, ZkError> {
    let mut vals: Vec<Vec<f64>> = vec![vec![]; g.value_len.len()];
    for (io, x) in g.inputs.iter().zip(inputs) {
        vals[io.value] = x.clone();
    }
    for op in &g.ops {
        deadline.check()?;
        let out = match op {
            Op::Linear {
                input, rows, bias, ..
            } => {
                let x = &vals[*input];
                (0..rows.rows())
                    .map(|i| {
                        let (ix, w) = rows.row(i);
                        ix.iter()
                            .zip(w)
                            .map(|(&j, &wj)| wj * x[j as usize])
                            .sum::<f64>()
                            + bias[i]
                    })
                    .collect()
            }
            Op::Add { a, b, .. } => vals[*a].iter().zip(&vals[*b]).map(|(x, y)| x + y).collect(),
            Op::Relu { input, .. } => vals[*input].iter().map(|&x| x.max(0.0)).collect(),
            Op::MaxPool { input, windows, .. } => {
                let x = &vals[*input];
                (0..windows.rows())
                    .map(|i| {
                        windows
                            .row(i)
                            .0
                            .iter()
                            .map(|&j| x[j as usize])
                            .fold(f64::NEG_INFINITY, f64::max)
                    })
                    .collect()
            }
            Op::Lut { input, f, .. } => vals[*input].iter().map(|&x| f.apply(x)).collect(),
        };
        vals[op.output()] = out;
    }
    Ok(vals)
}

fn bits_for(maxabs: f64, scale: u32) -> u32 {
    let v = maxabs * MARGIN * (1u64 << scale) as f64 + 1.0;
    (v.log2().ceil() as u32 + 1).clamp(2, 60)
}

/// Result of calibration.
#[derive(Clone, Debug)]
pub struct Calibrated {
    pub config: QuantConfig,
    /// Largest |quantised − float| over the calibration outputs.
    pub max_abs_err: f64,
    pub samples: usize,
    pub stats: Stats,
}

/// Chooses the configuration. `target_err` is the output error the scale search aims for.
/// Gives up (`ZkError::OverLimit`) once `deadline` has passed.
pub fn calibrate(
    g: &Graph,
    samples: &[Vec<Vec<f64>>],
    target_err: f64,
    fixed_scale: Option<u32>,
    deadline: &Deadline,
) -> Result<Calibrated, ZkError> {
    if samples.is_empty() {
        return Err(ZkError::Internal("no calibration samples".into()));
    }
    let floats: Vec<Vec<Vec<f64>>> = samples
        .iter()
        .map(|s| eval_until(g, s, deadline))
        .collect::<Result<_, _>>()?;
    let mut maxabs = vec![0f64; g.value_len.len()];
    for f in &floats {
        for (v, vals) in f.iter().enumerate() {
            for x in vals {
                if !x.is_finite() {
                    return Err(ZkError::OutOfRange(
                        "a calibration sample produces a non-finite value".into(),
                    ));
                }
                maxabs[v] = maxabs[v].max(x.abs());
            }
        }
    }
    let mut lut_in = 0f64;
    for op in &g.ops {
        if let Op::Lut { input, .. } = op {
            lut_in = lut_in.max(maxabs[*input]);
        }
    }
    let lut_domain_bits = ((lut_in * 2.0).max(1.0).log2().ceil() as u32).clamp(1, 4);
    // Largest scale first: if even it misses the target, take it; otherwise walk down while
    // the target holds (fewer bits = a smaller circuit).
    let scales: Vec<u32> = match fixed_scale {
        Some(s) => vec![s],
        None => SCALES.rev().step_by(2).collect(),
    };
    let mut best: Option<Calibrated> = None;
    for s in scales {
        let cfg = QuantConfig {
            act_bits: s,
            weight_bits: s,
            table_bits: 8,
            lut_input_bits: s.min(10),
            lut_domain_bits,
            value_bits: maxabs.iter().map(|&m| bits_for(m, s)).collect(),
        };
        let mut err = 0f64;
        let mut stats = Stats::default();
        let mut ok = true;
        for (sample, fl) in samples.iter().zip(&floats) {
            let q: Vec<Vec<i128>> = sample
                .iter()
                .map(|x| {
                    x.iter()
                        .map(|&v| circuit::quantise(v, s))
                        .collect::<Result<_, _>>()
                })
                .collect::<Result<_, _>>()?;
            match circuit::build(g, &cfg, &q, [0, 0], false, deadline) {
                Ok(b) => {
                    for (io, qo) in g.outputs.iter().zip(&b.outputs) {
                        for (a, f) in qo.iter().zip(&fl[io.value]) {
                            err = err.max((*a as f64 / (1u64 << s) as f64 - f).abs());
                        }
                    }
                    stats = b.stats;
                }
                Err(ZkError::OutOfRange(_)) => {
                    ok = false;
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        let meets = ok && err <= target_err;
        if ok && (best.is_none() || meets) {
            best = Some(Calibrated {
                config: cfg,
                max_abs_err: err,
                samples: samples.len(),
                stats,
            });
        }
        if !meets {
            break;
        }
    }
    let mut best = best.ok_or_else(|| {
        ZkError::OutOfRange("no fixed-point scale keeps the model's values in range".into())
    })?;
    best.config.table_bits = choose_table_bits(&best.stats);
    Ok(best)
}

/// Picks the range-check strategy: bit decomposition (0) or logUp with chunks of `t` bits.
/// Costs are in units of one constraint; a lookup commits one full-size field element (an
/// inverse), which costs about as much as `FULL_SCALAR` constraints in Hyrax's MSMs, while a
/// bit is a constraint and a 0/1 commitment. Measured on this machine (docs/zk.md).
pub fn choose_table_bits(stats: &Stats) -> u32 {
    const FULL_SCALAR: f64 = 5.0;
    const BIT: f64 = 1.0;
    let bits_cost: f64 = stats
        .range_widths
        .iter()
        .map(|(&w, &n)| n as f64 * (w as f64 * BIT + 1.0))
        .sum();
    let lookup_cost = |t: u32| -> f64 {
        let mut lookups = 0f64;
        let mut extra = 0f64;
        let mut widths = std::collections::BTreeSet::new();
        for (&w, &n) in &stats.range_widths {
            let n = n as f64;
            if w <= t {
                lookups += n;
                widths.insert(w);
            } else {
                let chunks = w.div_ceil(t) as f64;
                lookups += n * chunks;
                extra += n * (0.2 * chunks + 1.0);
                widths.insert(t);
                if w % t != 0 {
                    widths.insert(w % t);
                }
            }
        }
        let table: f64 = widths.iter().map(|&w| (1u64 << w) as f64).sum();
        // Each Hyrax row of inverses is a full 2048-wide MSM however few it holds.
        let rows = ((lookups + table) / 2048.0).ceil();
        (lookups + table) * (1.0 + FULL_SCALAR) + extra + rows * 1024.0
    };
    let (t, c) = (4..=16)
        .map(|t| (t, lookup_cost(t)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((8, f64::MAX));
    if bits_cost <= c { 0 } else { t }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn widths(w: &[(u32, usize)]) -> Stats {
        Stats {
            range_widths: w.iter().copied().collect(),
            ..Default::default()
        }
    }

    #[test]
    fn small_models_use_bits_large_ones_lookups() {
        // The MLP 64→128→128→10's range checks: bits are cheaper than any table.
        assert_eq!(choose_table_bits(&widths(&[(16, 266), (21, 256)])), 0);
        // The CNN's: a lookup table pays for itself.
        let t = choose_table_bits(&widths(&[(16, 18_826), (22, 15_680), (23, 7_840)]));
        assert!((8..=16).contains(&t), "{t}");
    }

    #[test]
    fn bit_widths_cover_the_calibrated_range_with_margin() {
        // 1.0 at scale 2^10 with a 4× margin needs |q| < 4097 → 13 bits + sign.
        assert_eq!(bits_for(1.0, 10), 14);
        assert!(bits_for(0.0, 16) >= 2);
    }
}
