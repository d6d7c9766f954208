//! Builds tensor programs and their values together: every gadget computes its outputs and
//! records the relations and lookups that constrain them in the same call, so the values cannot
//! drift from the constraints (as `circuit.rs` does for the R1CS tier). The program's shape never
//! depends on the values: building with any input gives the same program.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::lookup::{Table, TableSpec};
use super::program::{Op, Program, Role, TensorSpec};
use super::relation::{Operand, Relation};
use crate::error::ZkError;

/// Widest range table; wider values are split into chunks of this many bits.
pub const CHUNK_BITS: usize = 16;

/// Attention heads: how many, and each one's width (a power of two).
#[derive(Clone, Copy, Debug)]
pub struct Heads {
    pub count: usize,
    pub dim: usize,
}

/// Fixed-point choices of a transformer program.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fixed {
    /// Activations at `2^a_bits`.
    pub a_bits: u32,
    /// Weights at `2^w_bits` (biases at `2^(a_bits + w_bits)`).
    pub w_bits: u32,
    /// LayerNorm scales at `2^g_bits`.
    pub g_bits: u32,
    /// Inverse standard deviations carry `2^isd_bits`.
    pub isd_bits: u32,
    /// Width of the inverse standard deviation's range check, and of its two slacks'.
    pub isd_range_bits: usize,
    pub slack_bits: usize,
    /// GELU's table input scale (FFN1 outputs are rescaled from `2^a_bits` to it first).
    pub gelu_in_bits: u32,
    /// Softmax shifts beyond the exp table: `d = 2^exp_domain_bits·hi + lo`, `hi < 2^sat_bits`.
    pub sat_bits: u32,
    pub exp_out_bits: u32,
    pub exp_domain_bits: u32,
    pub gelu_domain_bits: u32,
    /// Signed width of every quotient (rescaled activations, means, probabilities), each pinned
    /// to the integers by a range check.
    pub quotient_bits: usize,
}

pub struct Builder {
    pub program: Program,
    pub values: Vec<Vec<i64>>,
    /// Width every quotient is pinned to ([`Builder::pin`]); [`Fixed::quotient_bits`] for
    /// transformer programs.
    pub quotient_bits: usize,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            program: Program::default(),
            values: vec![],
            quotient_bits: 32,
        }
    }
}

fn log2(n: usize) -> usize {
    n.trailing_zeros() as usize
}

fn op(tensor: usize, axes: &[usize]) -> Operand {
    Operand {
        tensor,
        axes: axes.to_vec(),
    }
}

impl Builder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn padded(&self, t: usize) -> Vec<usize> {
        self.program.tensors[t].padded()
    }

    /// A tensor from its padded values.
    pub fn tensor(
        &mut self,
        name: &str,
        dims: &[usize],
        role: Role,
        padded: Vec<i64>,
    ) -> Result<usize, ZkError> {
        let spec = TensorSpec {
            name: name.into(),
            dims: dims.to_vec(),
            role,
        };
        if padded.len() != spec.padded_len() {
            return Err(ZkError::Internal(format!(
                "{name}: {} values for a padded size of {}",
                padded.len(),
                spec.padded_len()
            )));
        }
        self.program.tensors.push(spec);
        self.values.push(padded);
        Ok(self.program.tensors.len() - 1)
    }

    /// A tensor from row-major values of its real shape.
    pub fn tensor_real(
        &mut self,
        name: &str,
        dims: &[usize],
        role: Role,
        values: &[i64],
    ) -> Result<usize, ZkError> {
        let spec = TensorSpec {
            name: name.into(),
            dims: dims.to_vec(),
            role,
        };
        let padded = spec.pad(values)?;
        self.tensor(name, dims, role, padded)
    }

    pub fn set_role(&mut self, t: usize, role: Role) {
        self.program.tensors[t].role = role;
    }

    pub fn relation(&mut self, rel: Relation) -> Result<(), ZkError> {
        let dims = |t: usize| self.program.tensors[t].padded();
        rel.check_shapes(&dims)?;
        self.program.ops.push(Op::Relation(rel));
        Ok(())
    }

    pub fn lookup(&mut self, columns: Vec<usize>, table: TableSpec) {
        self.program.ops.push(Op::Lookup { columns, table });
    }

    /// Checks `0 ≤ t < 2^bits`: one lookup up to [`CHUNK_BITS`], else chunks of that width
    /// (committed) that recombine to `t` by a relation.
    pub fn range_check(&mut self, t: usize, bits: usize) -> Result<(), ZkError> {
        if bits <= CHUNK_BITS {
            self.lookup(vec![t], TableSpec::Range { bits });
            return Ok(());
        }
        self.chunked(t, bits, 0)
    }

    /// Pins a quotient to the integers of `[−2^(bits−1), 2^(bits−1))`. A quotient whose only
    /// constraint is `c·q + rem = x` with `rem` range-checked is otherwise any field element
    /// `q + δ/c`: a fraction that later products turn into another output
    /// (tests/tensor_soundness.rs, `no_field_fraction_witness_proves_another_output`).
    pub fn pin(&mut self, t: usize, bits: usize) -> Result<(), ZkError> {
        self.chunked(t, bits, 1i64 << (bits - 1))
    }

    /// The one place a rescaled quotient is constrained: `rel` (its sums and point terms) equals
    /// `2^shift·y + rem − 2^(shift−1)`, `rem` is range-checked to `shift` bits and `y` pinned to
    /// `bits` — so no rescaling gadget can leave either check out.
    fn rescaled(
        &mut self,
        mut rel: Relation,
        y: Operand,
        rem: Operand,
        shift: u32,
        bits: usize,
    ) -> Result<(), ZkError> {
        let (yt, rt) = (y.tensor, rem.tensor);
        rel.point_terms.push((-(1i64 << shift), y));
        rel.point_terms.push((-1, rem));
        rel.constant += 1i64 << (shift - 1);
        self.relation(rel)?;
        self.range_check(rt, shift as usize)?;
        self.pin(yt, bits)
    }

    /// `t + offset` split into range-checked chunks of [`CHUNK_BITS`] that recombine to it.
    fn chunked(&mut self, t: usize, bits: usize, offset: i64) -> Result<(), ZkError> {
        let name = self.program.tensors[t].name.clone();
        let dims = self.program.tensors[t].dims.clone();
        let pad = self.padded(t);
        let n = bits.div_ceil(CHUNK_BITS);
        let vals: Vec<i64> = self.values[t].iter().map(|&v| v + offset).collect();
        if vals
            .iter()
            .any(|&v| v < 0 || (bits < 63 && v >= 1i64 << bits))
        {
            return Err(ZkError::OutOfRange(format!(
                "{name} leaves [{}, 2^{bits} − {offset})",
                -offset
            )));
        }
        let axes: Vec<usize> = (0..pad.len()).collect();
        let mut point_terms = vec![(-1, op(t, &axes))];
        for c in 0..n {
            let width = (bits - c * CHUNK_BITS).min(CHUNK_BITS);
            let chunk: Vec<i64> = vals
                .iter()
                .map(|&v| (v >> (c * CHUNK_BITS)) & ((1 << width) - 1))
                .collect();
            let id = self.tensor(&format!("{name}.chunk{c}"), &dims, Role::Hidden, chunk)?;
            self.lookup(vec![id], TableSpec::Range { bits: width });
            point_terms.push((1i64 << (c * CHUNK_BITS), op(id, &axes)));
        }
        self.relation(Relation {
            axes: pad.iter().map(|&d| log2(d)).collect(),
            free: axes.clone(),
            sum_terms: vec![],
            point_terms,
            constant: -offset,
        })
    }

    /// `y = ⌊(x·w + b + 2^(shift−1)) / 2^shift⌋` for `x: [m, k]`, `w: [k, n]`, `b: [n]`,
    /// remainder range-checked.
    pub fn linear(
        &mut self,
        name: &str,
        x: usize,
        w: usize,
        b: Option<usize>,
        shift: u32,
    ) -> Result<usize, ZkError> {
        let (xd, wd) = (
            self.program.tensors[x].dims.clone(),
            self.program.tensors[w].dims.clone(),
        );
        let (xp, wp) = (self.padded(x), self.padded(w));
        let ([m], [k, n], [mp, kp], [kp2, np]) = (
            &xd[..xd.len() - 1],
            wd.as_slice(),
            xp.as_slice(),
            wp.as_slice(),
        ) else {
            return Err(ZkError::Internal(format!(
                "{name}: linear wants x [m, k] and w [k, n]"
            )));
        };
        if kp != kp2 || xd[1] != *k {
            return Err(ZkError::Internal(format!(
                "{name}: inner dimensions differ"
            )));
        }
        let (m, n, mp, kp, np) = (*m, *n, *mp, *kp, *np);
        let half = 1i128 << (shift - 1);
        let (xs, ws) = (&self.values[x], &self.values[w]);
        let bs = b.map(|b| &self.values[b]);
        let rows: Vec<(Vec<i64>, Vec<i64>)> = (0..mp)
            .into_par_iter()
            .map(|i| {
                let mut acc: Vec<i128> = (0..np)
                    .map(|j| bs.map(|b| b[j] as i128).unwrap_or(0) + half)
                    .collect();
                for kk in 0..kp {
                    let a = xs[i * kp + kk] as i128;
                    if a != 0 {
                        for (j, s) in acc.iter_mut().enumerate() {
                            *s += a * ws[kk * np + j] as i128;
                        }
                    }
                }
                let q = acc.iter().map(|&z| (z >> shift) as i64).collect();
                let r = acc
                    .iter()
                    .map(|&z| (z & ((1i128 << shift) - 1)) as i64)
                    .collect();
                (q, r)
            })
            .collect();
        let (y, rem): (Vec<Vec<i64>>, Vec<Vec<i64>>) = rows.into_iter().unzip();
        let y = self.tensor(name, &[m, n], Role::Hidden, y.concat())?;
        let rem = self.tensor(&format!("{name}.rem"), &[m, n], Role::Hidden, rem.concat())?;
        let point_terms = b.map(|b| (1, op(b, &[2]))).into_iter().collect();
        let rel = Relation {
            axes: vec![log2(mp), log2(kp), log2(np)],
            free: vec![0, 2],
            sum_terms: vec![(1, vec![op(x, &[0, 1]), op(w, &[1, 2])])],
            point_terms,
            constant: 0,
        };
        self.rescaled(
            rel,
            op(y, &[0, 2]),
            op(rem, &[0, 2]),
            shift,
            self.quotient_bits,
        )?;
        Ok(y)
    }

    /// A constant all-ones weight of length `n` (1 on the real entries, 0 on padding): what
    /// broadcasts a per-row value over a row's real entries only.
    pub fn ones(&mut self, n: usize) -> Result<usize, ZkError> {
        let name = format!("ones{n}");
        if let Some(i) = self.program.tensors.iter().position(|t| t.name == name) {
            return Ok(i);
        }
        self.tensor_real(&name, &[n], Role::Weight, &vec![1; n])
    }

    /// `y = a + b` (same shape).
    pub fn add(&mut self, name: &str, a: usize, b: usize) -> Result<usize, ZkError> {
        let vals: Vec<i64> = self.values[a]
            .iter()
            .zip(&self.values[b])
            .map(|(x, y)| x + y)
            .collect();
        let dims = self.program.tensors[a].dims.clone();
        let pad = self.padded(a);
        let y = self.tensor(name, &dims, Role::Hidden, vals)?;
        let axes: Vec<usize> = (0..pad.len()).collect();
        self.relation(Relation {
            axes: pad.iter().map(|&d| log2(d)).collect(),
            free: axes.clone(),
            sum_terms: vec![],
            point_terms: vec![(1, op(a, &axes)), (1, op(b, &axes)), (-1, op(y, &axes))],
            constant: 0,
        })?;
        Ok(y)
    }

    /// Checks `0 ≤ t < n` for a non-power-of-two bound: `t` and `n − 1 − t` both in range.
    fn bounded(&mut self, t: usize, n: i64) -> Result<(), ZkError> {
        let bits = (64 - (n - 1).max(1).leading_zeros()) as usize;
        let name = format!("{}.slack", self.program.tensors[t].name);
        let dims = self.program.tensors[t].dims.clone();
        let pad = self.padded(t);
        let u: Vec<i64> = self.values[t].iter().map(|&v| n - 1 - v).collect();
        let u = self.tensor(&name, &dims, Role::Hidden, u)?;
        let axes: Vec<usize> = (0..pad.len()).collect();
        self.relation(Relation {
            axes: pad.iter().map(|&d| log2(d)).collect(),
            free: axes.clone(),
            sum_terms: vec![],
            point_terms: vec![(1, op(u, &axes)), (1, op(t, &axes))],
            constant: -(n - 1),
        })?;
        self.range_check(t, bits)?;
        self.range_check(u, bits)
    }

    /// An integer inverse square root per entry of `v` (`[n]` or `[]`): `s = ⌊√(k / (v + 1))⌋`,
    /// pinned by `s²(v+1) ≤ k < (s+1)²(v+1)` with both slacks and `s` range-checked (so `s` is
    /// an integer and the inequalities are over the integers). The `+1` keeps a zero variance
    /// defined.
    fn inv_sqrt(
        &mut self,
        name: &str,
        v: usize,
        k: i64,
        bits: usize,
        slack_bits: usize,
    ) -> Result<usize, ZkError> {
        let dims = self.program.tensors[v].dims.clone();
        let pad = self.padded(v);
        let (mut ss, mut e1, mut e2) = (vec![], vec![], vec![]);
        for &x in &self.values[v] {
            let w = (x as i128) + 1;
            if w <= 0 {
                return Err(ZkError::OutOfRange(format!("{name}: negative variance")));
            }
            let t = (k as i128) / w;
            let mut r = (t as f64).sqrt() as i128;
            while r * r > t {
                r -= 1;
            }
            while (r + 1) * (r + 1) <= t {
                r += 1;
            }
            ss.push(r as i64);
            e1.push((k as i128 - r * r * w) as i64);
            e2.push(((r + 1) * (r + 1) * w - k as i128 - 1) as i64);
        }
        let s = self.tensor(name, &dims, Role::Hidden, ss)?;
        let e1 = self.tensor(&format!("{name}.low"), &dims, Role::Hidden, e1)?;
        let e2 = self.tensor(&format!("{name}.high"), &dims, Role::Hidden, e2)?;
        let axes: Vec<usize> = (0..pad.len()).collect();
        let bits_of = pad.iter().map(|&d| log2(d)).collect::<Vec<_>>();
        let o = |t| op(t, &axes);
        self.relation(Relation {
            axes: bits_of.clone(),
            free: axes.clone(),
            sum_terms: vec![(1, vec![o(s), o(s), o(v)]), (1, vec![o(s), o(s)])],
            point_terms: vec![(1, o(e1))],
            constant: -k,
        })?;
        self.relation(Relation {
            axes: bits_of,
            free: axes.clone(),
            sum_terms: vec![
                (-1, vec![o(s), o(s), o(v)]),
                (-1, vec![o(s), o(s)]),
                (-2, vec![o(s), o(v)]),
            ],
            point_terms: vec![(1, o(e2)), (-2, o(s)), (-1, o(v))],
            constant: k,
        })?;
        self.range_check(s, bits)?;
        self.range_check(e1, slack_bits)?;
        self.range_check(e2, slack_bits)?;
        Ok(s)
    }

    /// LayerNorm over the last axis of `x: [m, n]` (activations at `2^a`), `gamma` at `2^g`,
    /// `beta` at `2^a` (models/text/minilm_fixed.md): `μ = ⌊Σx/n⌋`, `d = x − μ`,
    /// `isd = ⌊2^B·√(n/(Σd² + 1))⌋` by [`Self::inv_sqrt`], `y = rescale(d·isd·γ, B + g − a) + β`.
    pub fn layer_norm(
        &mut self,
        name: &str,
        x: usize,
        gamma: usize,
        beta: usize,
        p: &Fixed,
    ) -> Result<usize, ZkError> {
        let [m, n] = self.program.tensors[x].dims[..] else {
            return Err(ZkError::Internal(format!("{name}: LayerNorm wants [m, n]")));
        };
        let pad = self.padded(x);
        let (mp, np) = (pad[0], pad[1]);
        let ones = self.ones(n)?;
        let ni = n as i64;
        let xs = self.values[x].clone();
        let (mut mu, mut r) = (vec![0i64; mp], vec![0i64; mp]);
        for i in 0..mp {
            let s: i64 = xs[i * np..(i + 1) * np].iter().sum();
            mu[i] = s.div_euclid(ni);
            r[i] = s.rem_euclid(ni);
        }
        let mu_t = self.tensor(&format!("{name}.mean"), &[m], Role::Hidden, mu.clone())?;
        let r_t = self.tensor(&format!("{name}.mean.rem"), &[m], Role::Hidden, r)?;
        let (ib, jb) = (log2(mp), log2(np));
        self.relation(Relation {
            axes: vec![ib, jb],
            free: vec![0],
            sum_terms: vec![(-1, vec![op(x, &[0, 1])])],
            point_terms: vec![(ni, op(mu_t, &[0])), (1, op(r_t, &[0]))],
            constant: 0,
        })?;
        self.bounded(r_t, ni)?;
        self.pin(mu_t, p.quotient_bits)?;
        let d: Vec<i64> = (0..mp * np)
            .map(|ix| xs[ix] - if ix % np < n { mu[ix / np] } else { 0 })
            .collect();
        let d_t = self.tensor(&format!("{name}.centred"), &[m, n], Role::Hidden, d.clone())?;
        self.relation(Relation {
            axes: vec![ib, jb],
            free: vec![0, 1],
            sum_terms: vec![(1, vec![op(mu_t, &[0]), op(ones, &[1])])],
            point_terms: vec![(1, op(d_t, &[0, 1])), (-1, op(x, &[0, 1]))],
            constant: 0,
        })?;
        let v: Vec<i64> = (0..mp)
            .map(|i| d[i * np..(i + 1) * np].iter().map(|&z| z * z).sum())
            .collect();
        let v_t = self.tensor(&format!("{name}.var"), &[m], Role::Hidden, v)?;
        self.relation(Relation {
            axes: vec![ib, jb],
            free: vec![0],
            sum_terms: vec![(1, vec![op(d_t, &[0, 1]), op(d_t, &[0, 1])])],
            point_terms: vec![(-1, op(v_t, &[0]))],
            constant: 0,
        })?;
        let k = (1i64 << (2 * p.isd_bits)) * ni;
        let isd = self.inv_sqrt(
            &format!("{name}.isd"),
            v_t,
            k,
            p.isd_range_bits,
            p.slack_bits,
        )?;
        // y = ((d·isd·γ + half) >> sh) + β, at 2^a: isd carries 2^(isd_bits − a)/σ, γ 2^g.
        let sh = p.isd_bits + p.g_bits - p.a_bits;
        let half = 1i128 << (sh - 1);
        let (isv, gv, bv) = (&self.values[isd], &self.values[gamma], &self.values[beta]);
        let (mut y, mut rem) = (vec![0i64; mp * np], vec![0i64; mp * np]);
        for ix in 0..mp * np {
            let (i, j) = (ix / np, ix % np);
            let z = d[ix] as i128 * isv[i] as i128 * gv[j] as i128 + half;
            y[ix] = (z >> sh) as i64 + bv[j];
            rem[ix] = (z & ((1i128 << sh) - 1)) as i64;
        }
        let y_t = self.tensor(name, &[m, n], Role::Hidden, y)?;
        let rem_t = self.tensor(&format!("{name}.rem"), &[m, n], Role::Hidden, rem)?;
        let rel = Relation {
            axes: vec![ib, jb],
            free: vec![0, 1],
            sum_terms: vec![(1, vec![op(d_t, &[0, 1]), op(isd, &[0]), op(gamma, &[1])])],
            point_terms: vec![(1i64 << sh, op(beta, &[1]))],
            constant: 0,
        };
        self.rescaled(
            rel,
            op(y_t, &[0, 1]),
            op(rem_t, &[0, 1]),
            sh,
            p.quotient_bits,
        )?;
        Ok(y_t)
    }

    /// Multi-head attention core on `q, k, v: [s, heads·hd]` (q already scaled by 1/√hd):
    /// scores rescaled to `2^a`, a masked Softmax over keys (`mask: [s]`, public) and the
    /// context `[s, heads·hd]` at `2^a`.
    ///
    /// Softmax: the row maximum `c` over unmasked keys is pinned by a one-hot selector
    /// (`sel ∈ {0,1}`, one per row, only on unmasked keys, `sel·(c − score) = 0`) and by every
    /// `(c − score)·mask` being a row of the exp table (so non-negative); numerators
    /// `e = exp_table(·)·mask`, `Z = Σ e`, and `p = ⌊2^a·e / Z⌋` with `0 ≤ rem < Z`.
    pub fn attention(
        &mut self,
        name: &str,
        qkv: [usize; 3],
        mask: usize,
        heads: Heads,
        p: &Fixed,
    ) -> Result<usize, ZkError> {
        let (
            [q, k, v],
            Heads {
                count: heads,
                dim: hd,
            },
        ) = (qkv, heads);
        let [s, hidden] = self.program.tensors[q].dims[..] else {
            return Err(ZkError::Internal(format!(
                "{name}: attention wants [s, hidden]"
            )));
        };
        let pad = self.padded(q);
        let (sp, hp) = (pad[0], pad[1]);
        let hh = heads.next_power_of_two();
        if !hd.is_power_of_two() || hh * hd != hp || heads * hd != hidden {
            return Err(ZkError::Internal(format!(
                "{name}: heads do not tile the hidden axis"
            )));
        }
        let (sb, hb, db) = (log2(sp), log2(hh), log2(hd));
        let a = p.a_bits;
        let (qs, ks, vs, ms) = (
            self.values[q].clone(),
            self.values[k].clone(),
            self.values[v].clone(),
            self.values[mask].clone(),
        );
        let at = |h: usize, i: usize, j: usize| (h * sp + i) * sp + j;
        // scores[h,i,j] = round(Σ_d q[i,h,d]·k[j,h,d] / 2^a)
        let half = 1i64 << (a - 1);
        let n3 = hh * sp * sp;
        let (mut sc, mut sc_rem) = (vec![0i64; n3], vec![0i64; n3]);
        for h in 0..hh {
            for i in 0..sp {
                for j in 0..sp {
                    let mut z: i64 = half;
                    for d in 0..hd {
                        z += qs[i * hp + h * hd + d] * ks[j * hp + h * hd + d];
                    }
                    sc[at(h, i, j)] = z >> a;
                    sc_rem[at(h, i, j)] = z & ((1 << a) - 1);
                }
            }
        }
        let d3 = [heads, s, s];
        let sc_t = self.tensor(&format!("{name}.scores"), &d3, Role::Hidden, sc.clone())?;
        let sc_rem_t = self.tensor(&format!("{name}.scores.rem"), &d3, Role::Hidden, sc_rem)?;
        // axes: 0 i, 1 h, 2 d, 3 j
        let rel = Relation {
            axes: vec![sb, hb, db, sb],
            free: vec![0, 1, 3],
            sum_terms: vec![(1, vec![op(q, &[0, 1, 2]), op(k, &[3, 1, 2])])],
            point_terms: vec![],
            constant: 0,
        };
        self.rescaled(
            rel,
            op(sc_t, &[1, 0, 3]),
            op(sc_rem_t, &[1, 0, 3]),
            a,
            p.quotient_bits,
        )?;
        // Row maxima over unmasked keys and their one-hot selectors.
        let (mut c, mut sel) = (vec![0i64; hh * sp], vec![0i64; n3]);
        for h in 0..hh {
            for i in 0..sp {
                let best = (0..sp)
                    .filter(|&j| ms[j] == 1)
                    .max_by_key(|&j| (sc[at(h, i, j)], std::cmp::Reverse(j)));
                let Some(jm) = best else {
                    return Err(ZkError::BadInput(
                        "the attention mask masks every token".into(),
                    ));
                };
                c[h * sp + i] = sc[at(h, i, jm)];
                sel[at(h, i, jm)] = 1;
            }
        }
        let c_t = self.tensor(
            &format!("{name}.rowmax"),
            &[heads, s],
            Role::Hidden,
            c.clone(),
        )?;
        let sel_t = self.tensor(&format!("{name}.argmax"), &d3, Role::Hidden, sel)?;
        // axes for [h, i, j]: 0 h, 1 i, 2 j
        let ax3 = vec![hb, sb, sb];
        let f3 = [0, 1, 2];
        self.relation(Relation {
            axes: ax3.clone(),
            free: vec![0, 1, 2],
            sum_terms: vec![
                (1, vec![op(sel_t, &f3)]),
                (-1, vec![op(sel_t, &f3), op(sel_t, &f3)]),
            ],
            point_terms: vec![],
            constant: 0,
        })?;
        self.relation(Relation {
            axes: ax3.clone(),
            free: vec![0, 1],
            sum_terms: vec![(1, vec![op(sel_t, &f3)])],
            point_terms: vec![],
            constant: -1,
        })?;
        self.relation(Relation {
            axes: ax3.clone(),
            free: vec![0, 1, 2],
            sum_terms: vec![
                (1, vec![op(sel_t, &f3), op(c_t, &[0, 1])]),
                (-1, vec![op(sel_t, &f3), op(sc_t, &f3)]),
            ],
            point_terms: vec![],
            constant: 0,
        })?;
        self.relation(Relation {
            axes: ax3.clone(),
            free: vec![0, 1, 2],
            sum_terms: vec![
                (1, vec![op(sel_t, &f3)]),
                (-1, vec![op(sel_t, &f3), op(mask, &[2])]),
            ],
            point_terms: vec![],
            constant: 0,
        })?;
        // Shifted scores on unmasked keys, their exps, and the masked numerators.
        let dd: Vec<i64> = (0..n3)
            .map(|ix| (c[ix / sp] - sc[ix]) * ms[ix % sp])
            .collect();
        let dd_t = self.tensor(&format!("{name}.shifted"), &d3, Role::Hidden, dd)?;
        self.relation(Relation {
            axes: ax3.clone(),
            free: vec![0, 1, 2],
            sum_terms: vec![
                (-1, vec![op(c_t, &[0, 1]), op(mask, &[2])]),
                (1, vec![op(sc_t, &f3), op(mask, &[2])]),
            ],
            point_terms: vec![(1, op(dd_t, &f3))],
            constant: 0,
        })?;
        // Beyond the table the exp is 0: d = 2^E·hi + lo, e = T_exp(lo)·[hi = 0]·mask.
        let eb = p.exp_domain_bits;
        let dvals = self.values[dd_t].clone();
        let lo: Vec<i64> = dvals.iter().map(|&v| v & ((1 << eb) - 1)).collect();
        let hi: Vec<i64> = dvals.iter().map(|&v| v >> eb).collect();
        let lo_t = self.tensor(&format!("{name}.shifted.low"), &d3, Role::Hidden, lo)?;
        let hi_t = self.tensor(&format!("{name}.shifted.high"), &d3, Role::Hidden, hi)?;
        self.relation(Relation {
            axes: ax3.clone(),
            free: vec![0, 1, 2],
            sum_terms: vec![],
            point_terms: vec![
                (1, op(dd_t, &f3)),
                (-1, op(lo_t, &f3)),
                (-(1i64 << eb), op(hi_t, &f3)),
            ],
            constant: 0,
        })?;
        let e0 = self.function(
            &format!("{name}.exp"),
            lo_t,
            TableSpec::exp(a, p.exp_out_bits, eb),
        )?;
        let nz = self.function(
            &format!("{name}.in_table"),
            hi_t,
            TableSpec::IsZero { bits: p.sat_bits },
        )?;
        let e: Vec<i64> = (0..n3)
            .map(|ix| self.values[e0][ix] * self.values[nz][ix] * ms[ix % sp])
            .collect();
        let e_t = self.tensor(&format!("{name}.numerator"), &d3, Role::Hidden, e.clone())?;
        self.relation(Relation {
            axes: ax3.clone(),
            free: vec![0, 1, 2],
            sum_terms: vec![(-1, vec![op(e0, &f3), op(nz, &f3), op(mask, &[2])])],
            point_terms: vec![(1, op(e_t, &f3))],
            constant: 0,
        })?;
        let z: Vec<i64> = (0..hh * sp)
            .map(|r| e[r * sp..(r + 1) * sp].iter().sum())
            .collect();
        let z_t = self.tensor(
            &format!("{name}.denominator"),
            &[heads, s],
            Role::Hidden,
            z.clone(),
        )?;
        self.relation(Relation {
            axes: ax3.clone(),
            free: vec![0, 1],
            sum_terms: vec![(1, vec![op(e_t, &f3)])],
            point_terms: vec![(-1, op(z_t, &[0, 1]))],
            constant: 0,
        })?;
        // p = ⌊2^a·e / Z⌋, 0 ≤ rem < Z
        let (mut pr, mut prem, mut slack) = (vec![0i64; n3], vec![0i64; n3], vec![0i64; n3]);
        for ix in 0..n3 {
            let zz = z[ix / sp];
            pr[ix] = (e[ix] << a) / zz;
            prem[ix] = (e[ix] << a) % zz;
            slack[ix] = zz - 1 - prem[ix];
        }
        let p_t = self.tensor(&format!("{name}.probs"), &d3, Role::Hidden, pr.clone())?;
        let prem_t = self.tensor(&format!("{name}.probs.rem"), &d3, Role::Hidden, prem)?;
        let slack_t = self.tensor(&format!("{name}.probs.slack"), &d3, Role::Hidden, slack)?;
        self.relation(Relation {
            axes: ax3.clone(),
            free: vec![0, 1, 2],
            sum_terms: vec![(-1, vec![op(p_t, &f3), op(z_t, &[0, 1])])],
            point_terms: vec![(1i64 << a, op(e_t, &f3)), (-1, op(prem_t, &f3))],
            constant: 0,
        })?;
        self.relation(Relation {
            axes: ax3,
            free: vec![0, 1, 2],
            sum_terms: vec![],
            point_terms: vec![
                (1, op(slack_t, &f3)),
                (1, op(prem_t, &f3)),
                (-1, op(z_t, &[0, 1])),
            ],
            constant: 1,
        })?;
        let zbits = p.exp_out_bits as usize + sb;
        self.range_check(prem_t, zbits)?;
        self.range_check(slack_t, zbits)?;
        self.pin(p_t, p.quotient_bits)?;
        // ctx[i,h,d] = round(Σ_j p[h,i,j]·v[j,h,d] / 2^a)
        let (mut ctx, mut crem) = (vec![0i64; sp * hp], vec![0i64; sp * hp]);
        for i in 0..sp {
            for h in 0..hh {
                for d in 0..hd {
                    let mut zz: i64 = half;
                    for j in 0..sp {
                        zz += pr[at(h, i, j)] * vs[j * hp + h * hd + d];
                    }
                    ctx[i * hp + h * hd + d] = zz >> a;
                    crem[i * hp + h * hd + d] = zz & ((1 << a) - 1);
                }
            }
        }
        let ctx_t = self.tensor(&format!("{name}.context"), &[s, hidden], Role::Hidden, ctx)?;
        let crem_t = self.tensor(
            &format!("{name}.context.rem"),
            &[s, hidden],
            Role::Hidden,
            crem,
        )?;
        // axes: 0 i, 1 h, 2 d, 3 j
        let rel = Relation {
            axes: vec![sb, hb, db, sb],
            free: vec![0, 1, 2],
            sum_terms: vec![(1, vec![op(p_t, &[1, 0, 3]), op(v, &[3, 1, 2])])],
            point_terms: vec![],
            constant: 0,
        };
        self.rescaled(
            rel,
            op(ctx_t, &[0, 1, 2]),
            op(crem_t, &[0, 1, 2]),
            a,
            p.quotient_bits,
        )?;
        Ok(ctx_t)
    }

    /// `y = ⌊(x + 2^(k−1)) / 2^k⌋` elementwise, remainder range-checked.
    pub fn rescale(&mut self, name: &str, x: usize, k: u32) -> Result<usize, ZkError> {
        let dims = self.program.tensors[x].dims.clone();
        let pad = self.padded(x);
        let half = 1i64 << (k - 1);
        let xs = &self.values[x];
        let y: Vec<i64> = xs.iter().map(|&v| (v + half) >> k).collect();
        let r: Vec<i64> = xs.iter().map(|&v| (v + half) & ((1 << k) - 1)).collect();
        let y = self.tensor(name, &dims, Role::Hidden, y)?;
        let r = self.tensor(&format!("{name}.rem"), &dims, Role::Hidden, r)?;
        let axes: Vec<usize> = (0..pad.len()).collect();
        let rel = Relation {
            axes: pad.iter().map(|&d| log2(d)).collect(),
            free: axes.clone(),
            sum_terms: vec![],
            point_terms: vec![(1, op(x, &axes))],
            constant: 0,
        };
        self.rescaled(rel, op(y, &axes), op(r, &axes), k, self.quotient_bits)?;
        Ok(y)
    }

    /// GELU of `x` at `2^a`: rescaled to the table's input scale, then looked up.
    pub fn gelu(&mut self, name: &str, x: usize, p: &Fixed) -> Result<usize, ZkError> {
        let u = if p.gelu_in_bits < p.a_bits {
            self.rescale(&format!("{name}.in"), x, p.a_bits - p.gelu_in_bits)?
        } else {
            x
        };
        self.function(
            name,
            u,
            TableSpec::gelu(p.gelu_in_bits, p.a_bits, p.gelu_domain_bits),
        )
    }

    /// The embedding of public token ids: `onehot: [s, vocab]` (public) times the word table
    /// (`[vocab, n]`, committed) plus the position-and-type rows `[s, n]`.
    pub fn embedding(
        &mut self,
        name: &str,
        onehot: usize,
        word: usize,
        pos: usize,
    ) -> Result<usize, ZkError> {
        let [s, _] = self.program.tensors[onehot].dims[..] else {
            return Err(ZkError::Internal(format!(
                "{name}: one-hot wants [s, vocab]"
            )));
        };
        let n = self.program.tensors[word].dims[1];
        let (op_, wp) = (self.padded(onehot), self.padded(word));
        let (vp, np) = (wp[0], wp[1]);
        let (oh, wv, pv) = (&self.values[onehot], &self.values[word], &self.values[pos]);
        let mut y = pv.clone();
        for i in 0..op_[0] {
            for t in 0..vp {
                let c = oh[i * vp + t];
                if c != 0 {
                    for j in 0..np {
                        y[i * np + j] += c * wv[t * np + j];
                    }
                }
            }
        }
        let y = self.tensor(name, &[s, n], Role::Hidden, y)?;
        self.relation(Relation {
            axes: vec![log2(op_[0]), log2(vp), log2(np)],
            free: vec![0, 2],
            sum_terms: vec![(1, vec![op(onehot, &[0, 1]), op(word, &[1, 2])])],
            point_terms: vec![(1, op(pos, &[0, 2])), (-1, op(y, &[0, 2]))],
            constant: 0,
        })?;
        Ok(y)
    }

    /// Masked mean over rows: `m = ⌊Σ_i mask_i·h_i / count⌋`, `mask: [s]` and `count: []` public.
    pub fn mean_pool(
        &mut self,
        name: &str,
        h: usize,
        mask: usize,
        count: usize,
    ) -> Result<usize, ZkError> {
        let [_, n] = self.program.tensors[h].dims[..] else {
            return Err(ZkError::Internal(format!("{name}: pooling wants [s, n]")));
        };
        let pad = self.padded(h);
        let (sp, np) = (pad[0], pad[1]);
        let (hv, mv, cnt) = (&self.values[h], &self.values[mask], self.values[count][0]);
        if cnt < 1 {
            return Err(ZkError::BadInput(
                "the attention mask masks every token".into(),
            ));
        }
        let total: Vec<i64> = (0..np)
            .map(|j| (0..sp).map(|i| mv[i] * hv[i * np + j]).sum())
            .collect();
        let m: Vec<i64> = total.iter().map(|&t| t.div_euclid(cnt)).collect();
        let r: Vec<i64> = total.iter().map(|&t| t.rem_euclid(cnt)).collect();
        let slack: Vec<i64> = r.iter().map(|&v| cnt - 1 - v).collect();
        let total_t = self.tensor(&format!("{name}.sum"), &[n], Role::Hidden, total)?;
        let m_t = self.tensor(name, &[n], Role::Hidden, m)?;
        let r_t = self.tensor(&format!("{name}.rem"), &[n], Role::Hidden, r)?;
        let slack_t = self.tensor(&format!("{name}.slack"), &[n], Role::Hidden, slack)?;
        let (sb, nb) = (log2(sp), log2(np));
        self.relation(Relation {
            axes: vec![sb, nb],
            free: vec![1],
            sum_terms: vec![(1, vec![op(mask, &[0]), op(h, &[0, 1])])],
            point_terms: vec![(-1, op(total_t, &[1]))],
            constant: 0,
        })?;
        self.relation(Relation {
            axes: vec![nb],
            free: vec![0],
            sum_terms: vec![(1, vec![op(count, &[]), op(m_t, &[0])])],
            point_terms: vec![(1, op(r_t, &[0])), (-1, op(total_t, &[0]))],
            constant: 0,
        })?;
        self.relation(Relation {
            axes: vec![nb],
            free: vec![0],
            sum_terms: vec![],
            point_terms: vec![
                (1, op(slack_t, &[0])),
                (1, op(r_t, &[0])),
                (-1, op(count, &[])),
            ],
            constant: 1,
        })?;
        let bits = sb + 1;
        self.range_check(r_t, bits)?;
        self.range_check(slack_t, bits)?;
        self.pin(m_t, self.quotient_bits)?;
        Ok(m_t)
    }

    /// `y = rescale(m·isd, B − a)` with `isd = ⌊2^B / √(Σm² + 1)⌋`: `m / ‖m‖` at `2^a`.
    pub fn l2_normalize(&mut self, name: &str, m: usize, p: &Fixed) -> Result<usize, ZkError> {
        let [n] = self.program.tensors[m].dims[..] else {
            return Err(ZkError::Internal(format!(
                "{name}: L2 normalisation wants [n]"
            )));
        };
        let np = self.padded(m)[0];
        let mv = self.values[m].clone();
        let v: i64 = mv.iter().map(|&x| x * x).sum();
        let v_t = self.tensor(&format!("{name}.sumsq"), &[], Role::Hidden, vec![v])?;
        let nb = log2(np);
        self.relation(Relation {
            axes: vec![nb],
            free: vec![],
            sum_terms: vec![(1, vec![op(m, &[0]), op(m, &[0])])],
            point_terms: vec![(-1, op(v_t, &[]))],
            constant: 0,
        })?;
        let k = 1i64 << (2 * p.isd_bits);
        let isd = self.inv_sqrt(
            &format!("{name}.isd"),
            v_t,
            k,
            p.isd_range_bits,
            p.slack_bits,
        )?;
        let sh = p.isd_bits - p.a_bits;
        let iv = self.values[isd][0];
        let half = 1i128 << (sh - 1);
        let z: Vec<i128> = mv.iter().map(|&x| x as i128 * iv as i128 + half).collect();
        let y: Vec<i64> = z.iter().map(|&z| (z >> sh) as i64).collect();
        let r: Vec<i64> = z
            .iter()
            .map(|&z| (z & ((1i128 << sh) - 1)) as i64)
            .collect();
        let y_t = self.tensor(name, &[n], Role::Hidden, y)?;
        let r_t = self.tensor(&format!("{name}.rem"), &[n], Role::Hidden, r)?;
        let rel = Relation {
            axes: vec![nb],
            free: vec![0],
            sum_terms: vec![(1, vec![op(m, &[0]), op(isd, &[])])],
            point_terms: vec![],
            constant: 0,
        };
        self.rescaled(rel, op(y_t, &[0]), op(r_t, &[0]), sh, p.quotient_bits)?;
        Ok(y_t)
    }

    /// `y = f(x)` elementwise by a function table (every entry, padding included, is looked up).
    pub fn function(&mut self, name: &str, x: usize, spec: TableSpec) -> Result<usize, ZkError> {
        let table = spec.build()?;
        let Table::Function { lo, values } = &table else {
            return Err(ZkError::Internal(format!("{name}: not a function table")));
        };
        let xs = &self.values[x];
        let ys = xs
            .iter()
            .map(|&v| {
                usize::try_from(v - lo)
                    .ok()
                    .and_then(|i| values.get(i).copied())
                    .ok_or_else(|| {
                        ZkError::OutOfRange(format!(
                            "{} = {v} is outside the {name} table",
                            self.program.tensors[x].name
                        ))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let dims = self.program.tensors[x].dims.clone();
        let y = self.tensor(name, &dims, Role::Hidden, ys)?;
        self.lookup(vec![x, y], spec);
        Ok(y)
    }

    /// The weights' values, in the order [`ModelKey::commit`](super::program::ModelKey::commit) takes them.
    pub fn weights(&self) -> Vec<Vec<i64>> {
        self.program
            .ids(Role::Weight)
            .iter()
            .map(|&i| self.values[i].clone())
            .collect()
    }

    pub fn finish(self) -> (Program, Vec<Vec<i64>>) {
        (self.program, self.values)
    }
}
