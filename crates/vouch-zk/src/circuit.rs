//! The quantised model as an R1CS with logUp lookups, and its witness.
//!
//! One code path ([`build`]) is both the fixed-point evaluator and the constraint recorder, so
//! the witness can never drift from the constraints: key generation runs it on a zero input
//! with recording on, proving runs it on the real input with recording off.
//!
//! Soundness rules the gadgets keep (see `docs/zk.md`):
//! - every rescale `z + 2^(k-1) = 2^k·q + r` range-checks `r ∈ [0, 2^k)` and bounds `q`
//!   (through the max gadget that consumes it, or an explicit range check), so `q` is the unique
//!   rounded quotient;
//! - `y = max(items)` checks `y - item ∈ [0, 2^b)` for every item and `Π (y - item) = 0`;
//! - every lookup key is a linear combination of variables committed before the challenges
//!   (`precommitted`), multiplicities too; only inverses and products come after.
//! - range-table keys are tagged with their bit width (`v + w·β`), so a value checked against a
//!   narrow width cannot borrow an entry of a wider one.

use std::collections::BTreeMap;

use crate::error::ZkError;
use crate::graph::{Graph, LutFn, Op};
use crate::limits::Deadline;

/// Rows (or pooling windows) built between two looks at the deadline.
const DEADLINE_EVERY: usize = 4096;

/// A variable of the constraint system.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum V {
    One,
    /// Public value (quantised inputs, outputs, receipt hash limbs), in order.
    Pub(u32),
    /// Verifier challenge: 0 = α (logUp point), 1 = β (tag/pair combiner).
    Ch(u32),
    /// Committed before the challenges; every value is a non-negative integer < 2^64.
    Pre(u32),
    /// Committed after the challenges (inverses, products).
    Rest(u32),
}

/// A linear combination with integer coefficients.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Lc(pub Vec<(V, i128)>);

impl Lc {
    pub fn var(v: V) -> Self {
        Lc(vec![(v, 1)])
    }
    pub fn konst(c: i128) -> Self {
        Lc(vec![(V::One, c)])
    }
    /// `c·v + k`.
    pub fn affine(v: V, c: i128, k: i128) -> Self {
        let mut l = Lc(vec![(v, c)]);
        if k != 0 {
            l.0.push((V::One, k));
        }
        l
    }
    pub fn add_scaled(&mut self, other: &Lc, s: i128) {
        for &(v, c) in &other.0 {
            self.0.push((v, c * s));
        }
    }
    pub fn plus(mut self, other: &Lc, s: i128) -> Self {
        self.add_scaled(other, s);
        self
    }
    pub fn term(mut self, v: V, c: i128) -> Self {
        self.0.push((v, c));
        self
    }
    /// Sorted by variable, duplicates merged, zeros dropped: the order bellpepper appends fastest.
    pub fn normalized(mut self) -> Self {
        self.0.sort_by_key(|t| t.0);
        let mut out: Vec<(V, i128)> = Vec::with_capacity(self.0.len());
        for (v, c) in self.0 {
            match out.last_mut() {
                Some(last) if last.0 == v => last.1 += c,
                _ => out.push((v, c)),
            }
        }
        out.retain(|t| t.1 != 0);
        Lc(out)
    }
}

/// One R1CS row: `a · b = c`.
#[derive(Clone, Debug)]
pub struct Cons {
    pub a: Lc,
    pub b: Lc,
    pub c: Lc,
}

/// An operand of a post-challenge product.
#[derive(Clone, Copy, Debug)]
pub enum Src {
    Int(i128),
    Rest(u32),
}

/// How to compute a post-challenge variable once α and β are known.
#[derive(Clone, Copy, Debug)]
pub enum Rest {
    /// `1 / (α - v - tag·β)`: a range lookup of `v` in the table of width `tag`.
    InvTagged { v: u64, tag: u64 },
    /// `1 / (α - u - β·y)`: a pair lookup.
    InvPair { u: u64, y: u64 },
    /// `β·y`.
    BetaTimes { y: u64 },
    /// `m / (α - j - tag·β)`: range-table entry with multiplicity `m`.
    TabTagged { j: u64, tag: u64, m: u64 },
    /// `m / (α - j - β·fj)`: pair-table entry.
    TabPair { j: u64, fj: u64, m: u64 },
    /// `a · b`.
    Mul { a: Src, b: Src },
}

/// The quantisation and layout choices; with the model they fix the circuit (and so the keys).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuantConfig {
    /// Activations are integers at scale `2^act_bits`.
    pub act_bits: u32,
    /// Weights are integers at scale `2^weight_bits` (biases at `2^(act_bits+weight_bits)`).
    pub weight_bits: u32,
    /// Width of the range table's largest chunk: range checks split values into chunks this wide
    /// and look them up (logUp). 0: range checks by bit decomposition instead (no lookups).
    pub table_bits: u32,
    /// Lookup nonlinearities read their input at scale `2^lut_input_bits`…
    pub lut_input_bits: u32,
    /// …over the domain `[-2^lut_domain_bits, 2^lut_domain_bits)` (in real units).
    pub lut_domain_bits: u32,
    /// Per graph value: signed bit width that bounds every quantised element (`|q| < 2^(b-1)`).
    pub value_bits: Vec<u32>,
}

/// Everything [`build`] produces.
#[derive(Debug)]
pub struct Built {
    /// Public values as signed integers (inputs, outputs) followed by the two receipt limbs.
    pub public_ints: Vec<i128>,
    pub num_public: usize,
    pub pre: Vec<u64>,
    pub rest: Vec<Rest>,
    /// Recorded constraints (empty unless recording).
    pub cons: Vec<Cons>,
    pub num_cons: usize,
    /// Quantised outputs (integers at scale `2^act_bits`), one vector per graph output.
    pub outputs: Vec<Vec<i64>>,
    pub stats: Stats,
}

/// Circuit size figures (also what the estimator reads).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    pub constraints: usize,
    pub precommitted: usize,
    pub rest: usize,
    pub public: usize,
    pub lookups: usize,
    pub table_entries: usize,
    /// Non-zero entries of A, B and C together.
    pub nnz: usize,
    /// Range-check widths and how many checks of each (before chunking).
    pub range_widths: BTreeMap<u32, usize>,
}

struct Builder<'a> {
    cfg: &'a QuantConfig,
    record: bool,
    cons: Vec<Cons>,
    num_cons: usize,
    nnz: usize,
    pre: Vec<u64>,
    /// Structural bit width of each precommitted variable (see [`Builder::pre`]).
    pre_width: Vec<u8>,
    rest: Vec<Rest>,
    /// Rest variables holding logUp inverses for the range table and the pair table.
    range_invs: Vec<u32>,
    pair_invs: Vec<u32>,
    /// Multiplicities per range width.
    range_mult: BTreeMap<u32, Vec<u64>>,
    pair_mult: Option<(LutFn, Vec<u64>)>,
    lookups: usize,
    range_widths: BTreeMap<u32, usize>,
}

const ALPHA: V = V::Ch(0);
const BETA: V = V::Ch(1);

fn pow2(k: u32) -> i128 {
    1i128 << k
}

impl Builder<'_> {
    fn enforce(&mut self, a: Lc, b: Lc, c: Lc) {
        self.num_cons += 1;
        if self.record {
            let (a, b, c) = (a.normalized(), b.normalized(), c.normalized());
            self.nnz += a.0.len() + b.0.len() + c.0.len();
            self.cons.push(Cons { a, b, c });
        }
    }

    /// A precommitted variable whose value is below `2^width` (`width` depends only on the
    /// circuit's structure, never on the witness: it decides the variable's place, see
    /// [`Builder::group_by_width`]).
    fn pre(&mut self, v: u64, width: u32) -> V {
        self.pre.push(v);
        self.pre_width.push(width.min(64) as u8);
        V::Pre(self.pre.len() as u32 - 1)
    }

    /// Reorders the precommitted variables by width, narrowest first (a stable sort on the
    /// structural widths, so key generation and every proof agree). Hyrax commits to the
    /// witness row by row and Spartan2's MSM is picked per row by its largest scalar: rows of
    /// booleans are plain point additions, rows that mix in one 22-bit value pay a bucket
    /// method. Grouping makes most rows pure booleans.
    fn group_by_width(&mut self) {
        let mut order: Vec<u32> = (0..self.pre.len() as u32).collect();
        order.sort_by_key(|&i| self.pre_width[i as usize]);
        let mut new_index = vec![0u32; order.len()];
        for (new, &old) in order.iter().enumerate() {
            new_index[old as usize] = new as u32;
        }
        self.pre = order.iter().map(|&old| self.pre[old as usize]).collect();
        self.pre_width = order
            .iter()
            .map(|&old| self.pre_width[old as usize])
            .collect();
        let remap = |l: &mut Lc| {
            for t in &mut l.0 {
                if let V::Pre(i) = t.0 {
                    t.0 = V::Pre(new_index[i as usize]);
                }
            }
            l.0.sort_by_key(|t| t.0);
        };
        for c in &mut self.cons {
            remap(&mut c.a);
            remap(&mut c.b);
            remap(&mut c.c);
        }
    }

    fn rest(&mut self, r: Rest) -> V {
        self.rest.push(r);
        V::Rest(self.rest.len() as u32 - 1)
    }

    /// Range lookup of a value already known to lie in `[0, 2^w)`, `w <= table_bits`.
    fn lookup_range(&mut self, key: Lc, v: u64, w: u32) {
        let inv = self.rest(Rest::InvTagged { v, tag: w as u64 });
        if let V::Rest(i) = inv {
            self.range_invs.push(i);
        }
        let b = Lc::var(ALPHA).term(BETA, -(w as i128)).plus(&key, -1);
        self.enforce(Lc::var(inv), b, Lc::konst(1));
        let table = self
            .range_mult
            .entry(w)
            .or_insert_with(|| vec![0; 1usize << w]);
        table[v as usize] += 1;
        self.lookups += 1;
    }

    /// Proves `lc ∈ [0, 2^w)` (its value is `val`), chunking values wider than the table.
    fn range(
        &mut self,
        lc: Lc,
        val: i128,
        w: u32,
        what: &dyn Fn() -> String,
    ) -> Result<(), ZkError> {
        if w == 0 || w > 62 {
            return Err(ZkError::Internal(format!("range width {w} for {}", what())));
        }
        if val < 0 || val >= pow2(w) {
            return Err(ZkError::OutOfRange(format!(
                "{} = {val} is outside [0, 2^{w})",
                what()
            )));
        }
        *self.range_widths.entry(w).or_default() += 1;
        let t = self.cfg.table_bits;
        if t == 0 {
            // Bit decomposition: w booleans, no lookup, no challenge.
            let mut sum = Lc::default();
            for i in 0..w {
                let bit = ((val >> i) & 1) as u64;
                let bv = self.pre(bit, 1);
                self.enforce(Lc::var(bv), Lc::konst(1).term(bv, -1), Lc::default());
                sum = sum.term(bv, pow2(i));
            }
            self.enforce(lc.plus(&sum, -1), Lc::konst(1), Lc::default());
            return Ok(());
        }
        if w <= t {
            self.lookup_range(lc, val as u64, w);
            return Ok(());
        }
        let mut sum = Lc::default();
        let mut shift = 0;
        while shift < w {
            let cw = t.min(w - shift);
            let c = ((val >> shift) & (pow2(cw) - 1)) as u64;
            let cv = self.pre(c, cw);
            self.lookup_range(Lc::var(cv), c, cw);
            sum = sum.term(cv, pow2(shift));
            shift += cw;
        }
        self.enforce(lc.plus(&sum, -1), Lc::konst(1), Lc::default());
        Ok(())
    }

    /// `q = round(z / 2^k)` (half up), with `z + 2^(k-1) - 2^k·q = r ∈ [0, 2^k)` proven.
    /// `q` is stored offset by `2^(bits-1)` so the committed value is non-negative; the caller
    /// must bound `q` (max gadget or explicit range). With `public`, `q` is that public value.
    fn requant(
        &mut self,
        z: Lc,
        zv: i128,
        k: u32,
        bits: u32,
        public: Option<V>,
        what: &dyn Fn() -> String,
    ) -> Result<(Lc, i128), ZkError> {
        let half = if k > 0 { pow2(k - 1) } else { 0 };
        let q = (zv + half).div_euclid(pow2(k));
        let r = zv + half - q * pow2(k);
        let off = pow2(bits - 1);
        let q_lc = match public {
            Some(p) => Lc::var(p),
            None => {
                let stored = q + off;
                if stored < 0 || stored >= pow2(bits) {
                    return Err(ZkError::OutOfRange(format!(
                        "{} = {q} needs more than {bits} bits",
                        what()
                    )));
                }
                Lc::affine(self.pre(stored as u64, bits), 1, -off)
            }
        };
        if k == 0 {
            self.enforce(z.plus(&q_lc, -1), Lc::konst(1), Lc::default());
            return Ok((q_lc, q));
        }
        // The remainder is the linear combination itself: range-checking it directly needs no
        // variable and no constraint of its own.
        let rem = z.term(V::One, half).plus(&q_lc, -pow2(k));
        self.range(rem, r, k, &|| format!("remainder of {}", what()))?;
        Ok((q_lc, q))
    }

    /// `m = max(items ∪ {0 if with_zero})` with every item in `[-2^(bits-1), 2^(bits-1))`.
    fn max(
        &mut self,
        items: &[(Lc, i128)],
        with_zero: bool,
        bits: u32,
        what: &dyn Fn() -> String,
    ) -> Result<(Lc, i128), ZkError> {
        let mut m = items.iter().map(|i| i.1).max().unwrap_or(0);
        if with_zero {
            m = m.max(0);
        }
        let off = if with_zero { 0 } else { pow2(bits - 1) };
        if m + off < 0 || m + off >= pow2(bits) {
            return Err(ZkError::OutOfRange(format!(
                "{} = {m} needs more than {bits} bits",
                what()
            )));
        }
        // No range check on m itself: the zero product pins it to one of the (bounded) items.
        let mv = self.pre((m + off) as u64, bits);
        let m_lc = Lc::affine(mv, 1, -off);
        // Differences m - item, each in [0, 2^bits), and their product is zero.
        let mut diffs: Vec<(Lc, i128)> = vec![];
        if with_zero {
            diffs.push((m_lc.clone(), m)); // m - 0, range-checked below like the others
        }
        for (lc, v) in items {
            diffs.push((m_lc.clone().plus(lc, -1), m - v));
        }
        for (i, (lc, v)) in diffs.iter().enumerate() {
            self.range(lc.clone(), *v, bits, &|| format!("{} - item {i}", what()))?;
        }
        if diffs.len() == 1 {
            self.enforce(diffs[0].0.clone(), Lc::konst(1), Lc::default());
            return Ok((m_lc, m));
        }
        let mut acc_lc = diffs[0].0.clone();
        let mut acc_src = Src::Int(diffs[0].1);
        for (i, (lc, v)) in diffs.iter().enumerate().skip(1) {
            if i + 1 == diffs.len() {
                self.enforce(acc_lc.clone(), lc.clone(), Lc::default());
            } else {
                let p = self.rest(Rest::Mul {
                    a: acc_src,
                    b: Src::Int(*v),
                });
                self.enforce(acc_lc.clone(), lc.clone(), Lc::var(p));
                acc_lc = Lc::var(p);
                acc_src = match p {
                    V::Rest(j) => Src::Rest(j),
                    _ => unreachable!("rest() returns a Rest variable"),
                };
            }
        }
        Ok((m_lc, m))
    }

    /// `y = relu(q)` for `q ∈ [-2^(bits-1), 2^(bits-1))`: `q + 2^(bits-1) = s·2^(bits-1) + low`
    /// with `s ∈ {0,1}` and `low ∈ [0, 2^(bits-1))` (so `s = [q ≥ 0]` and `q` is bounded), then
    /// `y = s·q`. One range check of `bits-1` bits instead of the max gadget's two of `bits`.
    fn relu(
        &mut self,
        q: Lc,
        qv: i128,
        bits: u32,
        what: &dyn Fn() -> String,
    ) -> Result<(Lc, i128), ZkError> {
        let half = pow2(bits - 1);
        let u = qv + half;
        if u < 0 || u >= pow2(bits) {
            return Err(ZkError::OutOfRange(format!(
                "{} = {qv} needs more than {bits} bits",
                what()
            )));
        }
        let sign = u >> (bits - 1);
        let sv = self.pre(sign as u64, 1);
        self.enforce(Lc::var(sv), Lc::konst(1).term(sv, -1), Lc::default());
        let low = q.clone().term(V::One, half).term(sv, -half);
        self.range(low, u - sign * half, bits - 1, &|| {
            format!("{} (magnitude)", what())
        })?;
        let y = qv.max(0);
        let yv = self.pre(y as u64, bits - 1);
        self.enforce(Lc::var(sv), q, Lc::var(yv));
        Ok((Lc::var(yv), y))
    }

    /// `y = f(x)` by a pair lookup: `x + 2^(d-1) = 2^d·u + r`, `(u, y)` in the table of `f`.
    fn lut(
        &mut self,
        f: LutFn,
        x: Lc,
        xv: i128,
        what: &dyn Fn() -> String,
    ) -> Result<(Lc, i128), ZkError> {
        let (sa, st, dom) = (
            self.cfg.act_bits,
            self.cfg.lut_input_bits,
            self.cfg.lut_domain_bits,
        );
        let d = sa - st;
        let half = if d > 0 { pow2(d - 1) } else { 0 };
        let u = (xv + half).div_euclid(pow2(d));
        let r = xv + half - u * pow2(d);
        let off_u = pow2(st + dom);
        let us = u + off_u;
        if us < 0 || us >= 2 * off_u {
            return Err(ZkError::OutOfRange(format!(
                "input of {} ({:.3}) is outside the lookup table's domain ±{}",
                what(),
                xv as f64 / pow2(sa) as f64,
                pow2(dom)
            )));
        }
        let (fj, y) = lut_entry(f, us as u64, self.cfg);
        let uv = self.pre(us as u64, st + dom + 1);
        let yv = self.pre(fj, sa + 2);
        let u_lc = Lc::affine(uv, 1, -off_u);
        if d > 0 {
            let rem = x.term(V::One, half).plus(&u_lc, -pow2(d));
            self.range(rem, r, d, &|| format!("remainder of {}", what()))?;
        } else {
            self.enforce(x.plus(&u_lc, -1), Lc::konst(1), Lc::default());
        }
        let by = self.rest(Rest::BetaTimes { y: fj });
        self.enforce(Lc::var(BETA), Lc::var(yv), Lc::var(by));
        let inv = self.rest(Rest::InvPair {
            u: us as u64,
            y: fj,
        });
        if let V::Rest(i) = inv {
            self.pair_invs.push(i);
        }
        self.enforce(
            Lc::var(inv),
            Lc::var(ALPHA).term(uv, -1).term(by, -1),
            Lc::konst(1),
        );
        let table = self
            .pair_mult
            .get_or_insert_with(|| (f, vec![0; 2 * off_u as usize]));
        if table.0 != f {
            return Err(ZkError::unsupported(
                "Sigmoid and Tanh together",
                "one lookup nonlinearity per model in this version",
            ));
        }
        table.1[us as usize] += 1;
        self.lookups += 1;
        Ok((Lc::affine(yv, 1, -lut_out_offset(self.cfg)), y))
    }

    /// The table sides of both logUp relations and their sum checks.
    fn finish_tables(&mut self) {
        let mut tab_vars: Vec<u32> = vec![];
        let widths: Vec<(u32, Vec<u64>)> =
            std::mem::take(&mut self.range_mult).into_iter().collect();
        for (w, mult) in &widths {
            for (j, &m) in mult.iter().enumerate() {
                let mv = self.pre(m, 64);
                let t = self.rest(Rest::TabTagged {
                    j: j as u64,
                    tag: *w as u64,
                    m,
                });
                if let V::Rest(i) = t {
                    tab_vars.push(i);
                }
                let b = Lc::var(ALPHA)
                    .term(BETA, -(*w as i128))
                    .term(V::One, -(j as i128));
                self.enforce(Lc::var(t), b, Lc::var(mv));
            }
        }
        if !self.range_invs.is_empty() {
            let mut a = Lc::default();
            for &i in &self.range_invs {
                a = a.term(V::Rest(i), 1);
            }
            for &i in &tab_vars {
                a = a.term(V::Rest(i), -1);
            }
            self.enforce(a, Lc::konst(1), Lc::default());
        }
        if let Some((f, mult)) = self.pair_mult.take() {
            let mut tvars = vec![];
            for (j, &m) in mult.iter().enumerate() {
                let (fj, _) = lut_entry(f, j as u64, self.cfg);
                let mv = self.pre(m, 64);
                let t = self.rest(Rest::TabPair { j: j as u64, fj, m });
                if let V::Rest(i) = t {
                    tvars.push(i);
                }
                let b = Lc::var(ALPHA)
                    .term(BETA, -(fj as i128))
                    .term(V::One, -(j as i128));
                self.enforce(Lc::var(t), b, Lc::var(mv));
            }
            let mut a = Lc::default();
            for &i in &self.pair_invs {
                a = a.term(V::Rest(i), 1);
            }
            for &i in &tvars {
                a = a.term(V::Rest(i), -1);
            }
            self.enforce(a, Lc::konst(1), Lc::default());
        }
    }
}

fn lut_out_offset(cfg: &QuantConfig) -> i128 {
    pow2(cfg.act_bits) // tanh reaches -1: store y + 2^sa >= 0
}

/// Table entry `j` of `f`: (stored non-negative value, signed output at scale `2^act_bits`).
pub(crate) fn lut_entry(f: LutFn, j: u64, cfg: &QuantConfig) -> (u64, i128) {
    let off_u = pow2(cfg.lut_input_bits + cfg.lut_domain_bits);
    let x = (j as i128 - off_u) as f64 / pow2(cfg.lut_input_bits) as f64;
    let y = (f.apply(x) * pow2(cfg.act_bits) as f64).round() as i128;
    ((y + lut_out_offset(cfg)) as u64, y)
}

/// Quantises a float to an integer at scale `2^bits` (round half away from zero).
pub fn quantise(x: f64, bits: u32) -> Result<i128, ZkError> {
    let v = (x * pow2(bits) as f64).round();
    if !v.is_finite() || v.abs() >= 2f64.powi(62) {
        return Err(ZkError::OutOfRange(format!(
            "value {x} cannot be quantised at scale 2^{bits}"
        )));
    }
    Ok(v as i128)
}

/// How each value is consumed: decides the fused rescale → ReLU → MaxPool gadget.
fn readers(g: &Graph) -> Vec<Vec<usize>> {
    let mut r = vec![vec![]; g.value_len.len()];
    for (k, op) in g.ops.iter().enumerate() {
        for i in op.inputs() {
            r[i].push(k);
        }
    }
    r
}

/// Builds the witness (and, with `record`, the constraints) for quantised inputs `q_inputs`,
/// giving up (`ZkError::OverLimit`) once `deadline` has passed.
pub fn build(
    g: &Graph,
    cfg: &QuantConfig,
    q_inputs: &[Vec<i128>],
    receipt_limbs: [u128; 2],
    record: bool,
    deadline: &Deadline,
) -> Result<Built, ZkError> {
    if cfg.value_bits.len() != g.value_len.len() {
        return Err(ZkError::BadInput(
            "quantisation config does not match the model".into(),
        ));
    }
    if cfg.act_bits < cfg.lut_input_bits
        || cfg.table_bits > 20
        || cfg.act_bits > 24
        || cfg.weight_bits > 24
    {
        return Err(ZkError::BadInput("inconsistent quantisation config".into()));
    }
    let mut b = Builder {
        cfg,
        record,
        cons: vec![],
        num_cons: 0,
        nnz: 0,
        pre: vec![],
        pre_width: vec![],
        rest: vec![],
        range_invs: vec![],
        pair_invs: vec![],
        range_mult: BTreeMap::new(),
        pair_mult: None,
        lookups: 0,
        range_widths: BTreeMap::new(),
    };
    let nv = g.value_len.len();
    let mut lcs: Vec<Option<Vec<Lc>>> = vec![None; nv];
    let mut ints: Vec<Option<Vec<i128>>> = vec![None; nv];

    // Public layout: inputs, outputs, receipt limbs.
    let mut public_ints: Vec<i128> = vec![];
    let mut next_pub = 0u32;
    for (io, q) in g.inputs.iter().zip(q_inputs) {
        if q.len() != g.value_len[io.value] {
            return Err(ZkError::BadInput(format!(
                "input {:?}: {} elements, expected {}",
                io.name,
                q.len(),
                g.value_len[io.value]
            )));
        }
        let mut l = Vec::with_capacity(q.len());
        for &x in q {
            l.push(Lc::var(V::Pub(next_pub)));
            next_pub += 1;
            public_ints.push(x);
        }
        lcs[io.value] = Some(l);
        ints[io.value] = Some(q.clone());
    }
    if q_inputs.len() != g.inputs.len() {
        return Err(ZkError::BadInput(format!(
            "{} inputs given, the model has {}",
            q_inputs.len(),
            g.inputs.len()
        )));
    }
    // Output public slots, assigned now so ops can write into them.
    let mut out_pub: BTreeMap<usize, u32> = BTreeMap::new();
    for io in &g.outputs {
        if out_pub.contains_key(&io.value) || g.inputs.iter().any(|i| i.value == io.value) {
            return Err(ZkError::unsupported(
                "repeated output",
                format!("output {:?} aliases another graph tensor", io.name),
            ));
        }
        out_pub.insert(io.value, next_pub);
        next_pub += g.value_len[io.value] as u32;
    }
    let receipt_pub = next_pub;
    let num_public = next_pub as usize + 2;
    let rd = readers(g);
    let is_output = |v: usize| out_pub.contains_key(&v);
    let mut skip = vec![false; g.ops.len()];

    let tick = |i: usize| {
        if i.is_multiple_of(DEADLINE_EVERY) {
            deadline.check()
        } else {
            Ok(())
        }
    };
    for (k, op) in g.ops.iter().enumerate() {
        if skip[k] {
            continue;
        }
        deadline.check()?;
        let out = op.output();
        let get = |v: usize,
                   lcs: &Vec<Option<Vec<Lc>>>,
                   ints: &Vec<Option<Vec<i128>>>|
         -> Result<(Vec<Lc>, Vec<i128>), ZkError> {
            match (&lcs[v], &ints[v]) {
                (Some(l), Some(i)) => Ok((l.clone(), i.clone())),
                _ => Err(ZkError::Internal(format!(
                    "value {v} used before it is computed"
                ))),
            }
        };
        match op {
            Op::Linear {
                input,
                rows,
                bias,
                onnx_op,
                ..
            } => {
                let (xl, xi) = get(*input, &lcs, &ints)?;
                let sw = cfg.weight_bits;
                let bits = cfg.value_bits[out];
                // Fusion: Linear → Relu → MaxPool (or any prefix) when each link has one reader.
                let mut relu = false;
                let mut pool: Option<(usize, &crate::graph::Sparse)> = None;
                let mut final_v = out;
                if !is_output(out) && rd[out].len() == 1 {
                    let n1 = rd[out][0];
                    match &g.ops[n1] {
                        Op::Relu { output, .. } => {
                            relu = true;
                            skip[n1] = true;
                            final_v = *output;
                            if !is_output(*output) && rd[*output].len() == 1 {
                                let n2 = rd[*output][0];
                                if let Op::MaxPool {
                                    windows,
                                    output: po,
                                    ..
                                } = &g.ops[n2]
                                    && covers(windows, g.value_len[*output])
                                {
                                    skip[n2] = true;
                                    pool = Some((n2, windows));
                                    final_v = *po;
                                }
                            }
                        }
                        Op::MaxPool {
                            windows,
                            output: po,
                            ..
                        } if covers(windows, g.value_len[out]) => {
                            skip[n1] = true;
                            pool = Some((n1, windows));
                            final_v = *po;
                        }
                        _ => {}
                    }
                }
                let public_base = if final_v == out {
                    out_pub.get(&out).copied()
                } else {
                    None
                };
                let mut ql = Vec::with_capacity(rows.rows());
                let mut qi = Vec::with_capacity(rows.rows());
                for (i, &bias_i) in bias.iter().enumerate().take(rows.rows()) {
                    tick(i)?;
                    let (ix, w) = rows.row(i);
                    let bq = quantise(bias_i, cfg.act_bits + sw)?;
                    let mut z = Lc::konst(bq);
                    let mut zv = bq;
                    for (&j, &wf) in ix.iter().zip(w) {
                        let wq = quantise(wf, sw)?;
                        if wq == 0 {
                            continue;
                        }
                        if b.record {
                            z.add_scaled(&xl[j as usize], wq);
                        }
                        zv += wq * xi[j as usize];
                    }
                    let public = public_base.map(|p| V::Pub(p + i as u32));
                    let what = || format!("{onnx_op} output {i}");
                    let (l, v) = b.requant(z, zv, sw, bits, public, &what)?;
                    ql.push(l);
                    qi.push(v);
                }
                if relu || pool.is_some() {
                    let (fl, fi) = match pool {
                        Some((_, windows)) => {
                            let mut fl = Vec::with_capacity(windows.rows());
                            let mut fi = Vec::with_capacity(windows.rows());
                            for o in 0..windows.rows() {
                                tick(o)?;
                                let items: Vec<(Lc, i128)> = windows
                                    .row(o)
                                    .0
                                    .iter()
                                    .map(|&j| (ql[j as usize].clone(), qi[j as usize]))
                                    .collect();
                                let (l, v) =
                                    b.max(&items, relu, bits, &|| format!("max-pool output {o}"))?;
                                fl.push(l);
                                fi.push(v);
                            }
                            (fl, fi)
                        }
                        None => {
                            let mut fl = Vec::with_capacity(ql.len());
                            let mut fi = Vec::with_capacity(ql.len());
                            for (i, (l, v)) in ql.iter().zip(&qi).enumerate() {
                                let (l, v) =
                                    b.relu(l.clone(), *v, bits, &|| format!("relu output {i}"))?;
                                fl.push(l);
                                fi.push(v);
                            }
                            (fl, fi)
                        }
                    };
                    lcs[final_v] = Some(fl);
                    ints[final_v] = Some(fi);
                } else {
                    if public_base.is_none() {
                        // Nothing downstream bounds q: range-check it explicitly.
                        let off = pow2(bits - 1);
                        for (i, (l, v)) in ql.iter().zip(&qi).enumerate() {
                            b.range(l.clone().term(V::One, off), v + off, bits, &|| {
                                format!("{onnx_op} output {i}")
                            })?;
                        }
                    }
                    lcs[out] = Some(ql);
                    ints[out] = Some(qi);
                }
            }
            Op::Add { a, b: bb, .. } => {
                let (al, ai) = get(*a, &lcs, &ints)?;
                let (bl, bi) = get(*bb, &lcs, &ints)?;
                lcs[out] = Some(al.into_iter().zip(&bl).map(|(x, y)| x.plus(y, 1)).collect());
                ints[out] = Some(ai.iter().zip(&bi).map(|(x, y)| x + y).collect());
            }
            Op::Relu { input, .. } => {
                let (xl, xi) = get(*input, &lcs, &ints)?;
                let bits = cfg.value_bits[*input].max(cfg.value_bits[out]);
                let mut fl = vec![];
                let mut fi = vec![];
                for (i, (l, v)) in xl.into_iter().zip(xi).enumerate() {
                    let (l, v) = b.relu(l, v, bits, &|| format!("relu output {i}"))?;
                    fl.push(l);
                    fi.push(v);
                }
                lcs[out] = Some(fl);
                ints[out] = Some(fi);
            }
            Op::MaxPool { input, windows, .. } => {
                let (xl, xi) = get(*input, &lcs, &ints)?;
                let bits = cfg.value_bits[*input].max(cfg.value_bits[out]);
                let mut fl = vec![];
                let mut fi = vec![];
                for o in 0..windows.rows() {
                    tick(o)?;
                    let items: Vec<(Lc, i128)> = windows
                        .row(o)
                        .0
                        .iter()
                        .map(|&j| (xl[j as usize].clone(), xi[j as usize]))
                        .collect();
                    let (l, v) = b.max(&items, false, bits, &|| format!("max-pool output {o}"))?;
                    fl.push(l);
                    fi.push(v);
                }
                lcs[out] = Some(fl);
                ints[out] = Some(fi);
            }
            Op::Lut { input, f, .. } => {
                let (xl, xi) = get(*input, &lcs, &ints)?;
                let mut fl = vec![];
                let mut fi = vec![];
                for (i, (l, v)) in xl.into_iter().zip(xi).enumerate() {
                    let (l, v) = b.lut(*f, l, v, &|| format!("{f:?} element {i}"))?;
                    fl.push(l);
                    fi.push(v);
                }
                lcs[out] = Some(fl);
                ints[out] = Some(fi);
            }
        }
    }

    // Outputs: bind each output element to its public slot (Linear outputs already are).
    let mut outputs = vec![];
    for io in &g.outputs {
        let base = out_pub[&io.value];
        let (l, v) = match (&lcs[io.value], &ints[io.value]) {
            (Some(l), Some(v)) => (l.clone(), v.clone()),
            _ => {
                return Err(ZkError::Internal(format!(
                    "output {:?} not computed",
                    io.name
                )));
            }
        };
        for (i, (lc, val)) in l.iter().zip(&v).enumerate() {
            let p = V::Pub(base + i as u32);
            if lc.0.len() != 1 || lc.0[0] != (p, 1) {
                b.enforce(lc.clone().term(p, -1), Lc::konst(1), Lc::default());
            }
            public_ints.push(*val);
        }
        outputs.push(v.iter().map(|&x| x as i64).collect());
    }
    public_ints.push(receipt_limbs[0] as i128);
    public_ints.push(receipt_limbs[1] as i128);
    // Tie the receipt limbs into the constraint system too (they are also in the transcript).
    for i in 0..2 {
        let p = V::Pub(receipt_pub + i);
        b.enforce(Lc::var(p), Lc::konst(1), Lc::var(p));
    }
    b.finish_tables();
    b.group_by_width();
    debug_assert_eq!(public_ints.len(), num_public);
    let stats = Stats {
        constraints: b.num_cons,
        precommitted: b.pre.len(),
        rest: b.rest.len(),
        public: num_public,
        lookups: b.lookups,
        table_entries: b
            .rest
            .iter()
            .filter(|r| matches!(r, Rest::TabTagged { .. } | Rest::TabPair { .. }))
            .count(),
        nnz: b.nnz,
        range_widths: b.range_widths.clone(),
    };
    Ok(Built {
        public_ints,
        num_public,
        pre: b.pre,
        rest: b.rest,
        cons: b.cons,
        num_cons: b.num_cons,
        outputs,
        stats,
    })
}

/// Whether the pooling windows read every element (so every rescaled value gets bounded).
fn covers(w: &crate::graph::Sparse, n: usize) -> bool {
    let mut seen = vec![false; n];
    for &j in &w.idx {
        if let Some(s) = seen.get_mut(j as usize) {
            *s = true;
        }
    }
    seen.into_iter().all(|s| s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Graph, Io, Sparse};
    use crate::snark::{F, field};
    use ff::Field;

    /// Evaluates every recorded constraint; returns the index of the first one violated.
    fn first_violation(
        b: &Built,
        pre: &[u64],
        public: &[i128],
        rest: &[F],
        alpha: F,
        beta: F,
    ) -> Option<usize> {
        let val = |v: V| match v {
            V::One => F::ONE,
            V::Pub(i) => field(public[i as usize]),
            V::Ch(0) => alpha,
            V::Ch(_) => beta,
            V::Pre(i) => F::from(pre[i as usize]),
            V::Rest(i) => rest[i as usize],
        };
        let ev = |l: &Lc| {
            l.0.iter()
                .fold(F::ZERO, |acc, &(v, c)| acc + field(c) * val(v))
        };
        b.cons.iter().position(|c| ev(&c.a) * ev(&c.b) != ev(&c.c))
    }

    fn dense(n_in: usize, n_out: usize, seed: u64) -> (Sparse, Vec<f64>) {
        let mut s = seed;
        let mut r = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) as f64 / (1u64 << 31) as f64) - 0.5
        };
        let mut m = Sparse {
            ptr: vec![0],
            idx: vec![],
            w: vec![],
        };
        for _ in 0..n_out {
            for j in 0..n_in {
                m.idx.push(j as u32);
                m.w.push(r());
            }
            m.ptr.push(m.idx.len() as u32);
        }
        let bias = (0..n_out).map(|_| r() * 0.1).collect();
        (m, bias)
    }

    /// x(8) → Linear(8→8) → Relu → MaxPool(pairs) → Linear(4→4) → Sigmoid → Linear(4→2): every gadget.
    fn toy() -> Graph {
        let (w1, b1) = dense(8, 8, 1);
        let (w2, b2) = dense(4, 4, 2);
        let (w3, b3) = dense(4, 2, 3);
        let pairs = Sparse {
            ptr: vec![0, 2, 4, 6, 8],
            idx: (0..8).collect(),
            w: vec![1.0; 8],
        };
        Graph {
            inputs: vec![Io {
                name: "x".into(),
                shape: vec![1, 8],
                value: 0,
            }],
            outputs: vec![Io {
                name: "y".into(),
                shape: vec![1, 2],
                value: 7,
            }],
            value_len: vec![8, 8, 8, 4, 4, 4, 4, 2],
            ops: vec![
                Op::Linear {
                    input: 0,
                    output: 1,
                    rows: w1,
                    bias: b1,
                    onnx_op: "Gemm".into(),
                },
                Op::Relu {
                    input: 1,
                    output: 2,
                },
                Op::MaxPool {
                    input: 2,
                    output: 3,
                    windows: pairs,
                },
                Op::Linear {
                    input: 3,
                    output: 4,
                    rows: w2,
                    bias: b2,
                    onnx_op: "Gemm".into(),
                },
                Op::Lut {
                    input: 4,
                    output: 5,
                    f: LutFn::Sigmoid,
                },
                Op::Relu {
                    input: 5,
                    output: 6,
                },
                Op::Linear {
                    input: 6,
                    output: 7,
                    rows: w3,
                    bias: b3,
                    onnx_op: "Gemm".into(),
                },
            ],
            params: 0,
        }
    }

    fn cfg(g: &Graph) -> QuantConfig {
        QuantConfig {
            act_bits: 10,
            weight_bits: 10,
            table_bits: 6,
            lut_input_bits: 6,
            lut_domain_bits: 3,
            value_bits: vec![16; g.value_len.len()],
        }
    }

    fn input() -> Vec<Vec<i128>> {
        vec![vec![900, -300, 50, 1023, -1024, 7, 0, 400]]
    }

    #[test]
    fn honest_witness_satisfies_every_constraint() {
        let g = toy();
        let b = build(&g, &cfg(&g), &input(), [5, 6], true, &Deadline::none()).unwrap();
        assert_eq!(b.num_cons, b.cons.len());
        let (alpha, beta) = (F::from(0x1234_5678_9abc_u64), F::from(0x0fed_cba9_8765_u64));
        let rest = crate::snark::rest_values_for_tests(&b.rest, alpha, beta);
        assert_eq!(
            first_violation(&b, &b.pre, &b.public_ints, &rest, alpha, beta),
            None
        );
        // The fused gadget, the standalone relu, the lookup nonlinearity and chunked ranges all ran.
        assert!(b.stats.lookups > 0 && b.stats.table_entries > 0);
        assert!(
            b.stats.range_widths.keys().any(|&w| w > 6),
            "some range needed chunking"
        );
    }

    #[test]
    #[cfg(feature = "prover")]
    fn fixed_point_result_tracks_the_float_model() {
        let g = toy();
        let c = cfg(&g);
        let b = build(&g, &c, &input(), [0, 0], false, &Deadline::none()).unwrap();
        let x: Vec<f64> = input()[0].iter().map(|&v| v as f64 / 1024.0).collect();
        let f = crate::quant::eval_all(&g, &[x]).unwrap();
        for (q, fl) in b.outputs[0].iter().zip(&f[7]) {
            assert!((*q as f64 / 1024.0 - fl).abs() < 0.02, "{q} vs {fl}");
        }
    }

    #[test]
    fn every_variable_and_public_value_is_constrained() {
        let g = toy();
        let b = build(&g, &cfg(&g), &input(), [5, 6], true, &Deadline::none()).unwrap();
        let (alpha, beta) = (F::from(987_654_321u64), F::from(123_456_789u64));
        let rest = crate::snark::rest_values_for_tests(&b.rest, alpha, beta);
        for i in 0..b.pre.len() {
            let mut pre = b.pre.clone();
            pre[i] += 1;
            assert!(
                first_violation(&b, &pre, &b.public_ints, &rest, alpha, beta).is_some(),
                "pre var {i} is free"
            );
        }
        for i in 0..rest.len() {
            let mut r = rest.clone();
            r[i] += F::ONE;
            assert!(
                first_violation(&b, &b.pre, &b.public_ints, &r, alpha, beta).is_some(),
                "rest var {i} is free"
            );
        }
        // Inputs and outputs (not the receipt limbs, which the transcript binds).
        for i in 0..b.num_public - 2 {
            let mut p = b.public_ints.clone();
            p[i] += 1;
            assert!(
                first_violation(&b, &b.pre, &p, &rest, alpha, beta).is_some(),
                "public {i} is free"
            );
        }
    }

    #[test]
    fn out_of_range_values_are_refused_not_wrapped() {
        let g = toy();
        let mut c = cfg(&g);
        c.value_bits = vec![4; g.value_len.len()];
        let e = build(&g, &c, &input(), [0, 0], false, &Deadline::none()).unwrap_err();
        assert!(matches!(e, ZkError::OutOfRange(_)), "{e}");
    }
}
