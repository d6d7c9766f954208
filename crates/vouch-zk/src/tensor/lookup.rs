//! logUp lookups (Haböck, "Multivariate lookups based on logarithmic derivatives") proven with a
//! GKR over the tree of fraction sums (Papini–Haböck, "Improving logarithmic derivative lookups
//! using GKR"), so that nothing is committed after the challenges: the looked-up columns and the
//! multiplicities are committed with every other tensor, and the proof ends in claims on them.
//!
//! A lookup says every row `(c_1(x), …, c_k(x))` of some committed columns is a row of a public
//! table: `Σ_x 1/(α − Σ_j β^j c_j(x)) = Σ_t m_t/(α − Σ_j β^j T_j(t))` for random α, β. Every
//! entry of a column, padding included, is looked up, so padding must hold a table row too.

use ff::Field;
use serde::{Deserialize, Serialize};

use super::field::{F, eq_eval, eq_table, evaluate, from_i64};
use super::sumcheck::{self, Expr, SumcheckProof};
use super::transcript::Transcript;
use crate::error::ZkError;

/// One layer of the fraction tree: the sumcheck and the four child values at its end point.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LayerProof {
    pub sumcheck: SumcheckProof,
    /// `p(·,0), p(·,1), q(·,0), q(·,1)` at the sumcheck's point.
    pub children: [F; 4],
}

/// A proof that `Σ_x p(x)/q(x) = root.0/root.1`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FractionProof {
    pub root: [F; 2],
    pub layers: Vec<LayerProof>,
}

/// The leaf claims a [`FractionProof`] ends in.
pub struct Leaves {
    pub point: Vec<F>,
    pub p: F,
    pub q: F,
}

fn halve(p: &[F], q: &[F]) -> (Vec<F>, Vec<F>) {
    let n = p.len() / 2;
    let mut np = Vec::with_capacity(n);
    let mut nq = Vec::with_capacity(n);
    for i in 0..n {
        let (p0, p1, q0, q1) = (p[2 * i], p[2 * i + 1], q[2 * i], q[2 * i + 1]);
        np.push(p0 * q1 + p1 * q0);
        nq.push(q0 * q1);
    }
    (np, nq)
}

fn layer_expr(lambda: F) -> Expr {
    // tables: 0 eq, 1 p0, 2 p1, 3 q0, 4 q1
    Expr {
        terms: vec![
            (F::ONE, vec![0, 1, 4]),
            (F::ONE, vec![0, 2, 3]),
            (lambda, vec![0, 3, 4]),
        ],
    }
}

pub fn prove_fraction(
    p: Vec<F>,
    q: Vec<F>,
    t: &mut Transcript,
) -> Result<(FractionProof, Leaves), ZkError> {
    if p.len() != q.len() || !p.len().is_power_of_two() {
        return Err(ZkError::Internal("fraction tree: bad leaf count".into()));
    }
    let mut levels = vec![(p, q)];
    while levels.last().map(|l| l.0.len()).unwrap_or(1) > 1 {
        let (np, nq) = {
            let (lp, lq) = &levels[levels.len() - 1];
            halve(lp, lq)
        };
        levels.push((np, nq));
    }
    let top = &levels[levels.len() - 1];
    let root = [top.0[0], top.1[0]];
    t.scalars(b"fraction root", &root);
    let mut point: Vec<F> = vec![];
    let mut layers = vec![];
    let (mut cp, mut cq) = (root[0], root[1]);
    for k in (0..levels.len() - 1).rev() {
        let _ = (cp, cq); // the root's claim, then each layer's: what the verifier checks against
        let (lp, lq) = &levels[k];
        let lambda = t.challenge(b"fraction lambda")?;
        let n = lp.len() / 2;
        let pick = |v: &Vec<F>, b: usize| -> Vec<F> { (0..n).map(|i| v[2 * i + b]).collect() };
        let tables = vec![
            eq_table(&point),
            pick(lp, 0),
            pick(lp, 1),
            pick(lq, 0),
            pick(lq, 1),
        ];
        let (sc, s, finals) = sumcheck::prove(tables, &layer_expr(lambda), t)?;
        let children = [finals[1], finals[2], finals[3], finals[4]];
        t.scalars(b"fraction children", &children);
        let gamma = t.challenge(b"fraction gamma")?;
        cp = children[0] + gamma * (children[1] - children[0]);
        cq = children[2] + gamma * (children[3] - children[2]);
        point = std::iter::once(gamma).chain(s).collect();
        layers.push(LayerProof {
            sumcheck: sc,
            children,
        });
    }
    Ok((
        FractionProof { root, layers },
        Leaves {
            point,
            p: cp,
            q: cq,
        },
    ))
}

pub fn verify_fraction(
    proof: &FractionProof,
    vars: usize,
    t: &mut Transcript,
) -> Result<Leaves, ZkError> {
    if proof.layers.len() != vars {
        return Err(ZkError::Verify("fraction tree: wrong depth".into()));
    }
    t.scalars(b"fraction root", &proof.root);
    let (mut cp, mut cq) = (proof.root[0], proof.root[1]);
    let mut point: Vec<F> = vec![];
    for layer in &proof.layers {
        let lambda = t.challenge(b"fraction lambda")?;
        let (s, last) = sumcheck::verify(&layer.sumcheck, point.len(), 3, cp + lambda * cq, t)?;
        let [p0, p1, q0, q1] = layer.children;
        if eq_eval(&point, &s) * (p0 * q1 + p1 * q0 + lambda * q0 * q1) != last {
            return Err(ZkError::Verify(
                "fraction tree: a layer does not add up".into(),
            ));
        }
        t.scalars(b"fraction children", &layer.children);
        let gamma = t.challenge(b"fraction gamma")?;
        cp = p0 + gamma * (p1 - p0);
        cq = q0 + gamma * (q1 - q0);
        point = std::iter::once(gamma).chain(s).collect();
    }
    Ok(Leaves {
        point,
        p: cp,
        q: cq,
    })
}

/// A public table: each column's values over `2^vars` rows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Table {
    /// `[0, 2^bits)`, one column.
    Range { bits: usize },
    /// `(x, f(x))` for `x` in `[lo, lo + values.len())`; `values.len()` a power of two.
    Function { lo: i64, values: Vec<i64> },
}

impl Table {
    pub fn vars(&self) -> usize {
        match self {
            Table::Range { bits } => *bits,
            Table::Function { values, .. } => values.len().trailing_zeros() as usize,
        }
    }

    pub fn columns(&self) -> usize {
        match self {
            Table::Range { .. } => 1,
            Table::Function { .. } => 2,
        }
    }

    /// Row index of a looked-up row, if it is in the table.
    pub fn index(&self, row: &[i64]) -> Option<usize> {
        match self {
            Table::Range { bits } => {
                let v = row[0];
                (v >= 0 && v < (1i64 << bits)).then_some(v as usize)
            }
            Table::Function { lo, values } => {
                let i = row[0].checked_sub(*lo)?;
                let i = usize::try_from(i).ok()?;
                (values.get(i) == Some(&row[1])).then_some(i)
            }
        }
    }

    /// `Σ_j β^j T_j` at a point (the verifier's own evaluation of the table).
    fn key_at(&self, r: &[F], beta: F) -> F {
        let ramp: F = r
            .iter()
            .enumerate()
            .map(|(k, &rk)| rk * F::from(1u64 << k))
            .sum();
        match self {
            Table::Range { .. } => ramp,
            Table::Function { lo, values } => {
                let vals: Vec<F> = values.iter().map(|&v| from_i64(v)).collect();
                from_i64(*lo) + ramp + beta * evaluate(&vals, r)
            }
        }
    }

    fn keys(&self, beta: F) -> Vec<F> {
        match self {
            Table::Range { bits } => (0..1u64 << bits).map(F::from).collect(),
            Table::Function { lo, values } => values
                .iter()
                .enumerate()
                .map(|(i, &v)| from_i64(lo + i as i64) + beta * from_i64(v))
                .collect(),
        }
    }
}

/// The erf form of GELU, as the export computes it. `libm` is a pure-Rust port of musl's: the
/// same bits on every platform, so every verifier rebuilds the same table.
pub fn gelu(x: f64) -> f64 {
    0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2))
}

/// `round(2^out_bits · gelu(u / 2^in_bits))` for `u` in `[−2^(domain_bits−1), 2^(domain_bits−1))`.
fn gelu_table(in_bits: u32, out_bits: u32, domain_bits: u32) -> Table {
    let lo = -(1i64 << (domain_bits - 1));
    let (si, so) = ((1u64 << in_bits) as f64, (1u64 << out_bits) as f64);
    let values = (0..1i64 << domain_bits)
        .map(|i| (so * gelu((lo + i) as f64 / si) + 0.5).floor() as i64)
        .collect();
    Table::Function { lo, values }
}

/// A table as a model key names it: tables computed from a function are named by their recipe
/// and the digest of their values, so the key stays small and a verifier whose floating-point
/// library computed a different table fails loudly instead of checking another statement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum TableSpec {
    Range {
        bits: usize,
    },
    Gelu {
        in_bits: u32,
        out_bits: u32,
        domain_bits: u32,
        digest: [u8; 32],
    },
    Exp {
        a_bits: u32,
        out_bits: u32,
        domain_bits: u32,
        digest: [u8; 32],
    },
    /// `(t, [t = 0])` for `t` in `[0, 2^bits)`.
    IsZero {
        bits: u32,
    },
    Explicit(Table),
}

/// `round(2^out_bits · exp(−d / 2^a_bits))` for `d` in `[0, 2^domain_bits)`: Softmax's numerators
/// after the row maximum is subtracted (so `d ≥ 0`).
fn exp_table(a_bits: u32, out_bits: u32, domain_bits: u32) -> Table {
    let (s, o) = ((1u64 << a_bits) as f64, (1u64 << out_bits) as f64);
    let values = (0..1i64 << domain_bits)
        .map(|d| (libm::exp(-(d as f64) / s) * o + 0.5).floor() as i64)
        .collect();
    Table::Function { lo: 0, values }
}

fn table_digest(t: &Table) -> [u8; 32] {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    if let Table::Function { lo, values } = t {
        h.update(lo.to_le_bytes());
        for v in values {
            h.update(v.to_le_bytes());
        }
    }
    h.finalize().into()
}

impl TableSpec {
    pub fn gelu(in_bits: u32, out_bits: u32, domain_bits: u32) -> Self {
        let digest = table_digest(&gelu_table(in_bits, out_bits, domain_bits));
        TableSpec::Gelu {
            in_bits,
            out_bits,
            domain_bits,
            digest,
        }
    }

    pub fn exp(a_bits: u32, out_bits: u32, domain_bits: u32) -> Self {
        let digest = table_digest(&exp_table(a_bits, out_bits, domain_bits));
        TableSpec::Exp {
            a_bits,
            out_bits,
            domain_bits,
            digest,
        }
    }

    /// Variables of the table (log2 of its rows), without building it.
    pub fn vars(&self) -> usize {
        match self {
            TableSpec::Range { bits } => *bits,
            TableSpec::Gelu { domain_bits, .. } | TableSpec::Exp { domain_bits, .. } => {
                *domain_bits as usize
            }
            TableSpec::IsZero { bits } => *bits as usize,
            TableSpec::Explicit(t) => t.vars(),
        }
    }

    pub fn build(&self) -> Result<Table, ZkError> {
        let too_large = |op: &str| ZkError::Unsupported {
            op: op.into(),
            detail: "table too large".into(),
        };
        let checked = |t: Table, digest: &[u8; 32], what: &str| {
            if table_digest(&t) == *digest {
                Ok(t)
            } else {
                Err(ZkError::Verify(format!(
                    "this verifier computes a {what} table different from the model key's"
                )))
            }
        };
        match self {
            TableSpec::Range { bits } if *bits <= 24 => Ok(Table::Range { bits: *bits }),
            TableSpec::Range { .. } => Err(too_large("range check")),
            TableSpec::Gelu {
                in_bits,
                out_bits,
                domain_bits,
                digest,
            } => {
                if *domain_bits > 20 || *in_bits > 30 || *out_bits > 30 {
                    return Err(too_large("GELU"));
                }
                checked(
                    gelu_table(*in_bits, *out_bits, *domain_bits),
                    digest,
                    "GELU",
                )
            }
            TableSpec::Exp {
                a_bits,
                out_bits,
                domain_bits,
                digest,
            } => {
                if *domain_bits > 20 || *a_bits > 30 || *out_bits > 30 {
                    return Err(too_large("Softmax"));
                }
                checked(exp_table(*a_bits, *out_bits, *domain_bits), digest, "exp")
            }
            TableSpec::IsZero { bits } if *bits <= 20 => Ok(Table::Function {
                lo: 0,
                values: (0..1i64 << bits).map(|t| i64::from(t == 0)).collect(),
            }),
            TableSpec::IsZero { .. } => Err(too_large("saturation")),
            TableSpec::Explicit(t) => Ok(t.clone()),
        }
    }
}

/// How often each table row is looked up; fails with the first row not in the table.
pub fn multiplicities(table: &Table, columns: &[&[i64]]) -> Result<Vec<i64>, ZkError> {
    let mut m = vec![0i64; 1 << table.vars()];
    let n = columns.first().map(|c| c.len()).unwrap_or(0);
    let mut row = vec![0i64; columns.len()];
    for x in 0..n {
        for (j, c) in columns.iter().enumerate() {
            row[j] = c[x];
        }
        let i = table.index(&row).ok_or_else(|| {
            ZkError::OutOfRange(format!("value {row:?} is outside its lookup table"))
        })?;
        m[i] += 1;
    }
    Ok(m)
}

/// All lookups into one table, batched: one fraction tree per group of same-size lookups
/// (their columns side by side, padded with zero numerators), one tree for the table with the
/// lookups' summed multiplicities, and one check that the groups' fractions add up to the
/// table's.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LookupProof {
    pub witness: Vec<FractionProof>,
    pub table: FractionProof,
    /// Per group, per lookup, each column's value at the group tree's leaf point.
    pub columns_at: Vec<Vec<Vec<F>>>,
    /// The multiplicities' value at the table tree's leaf point.
    pub m_at: F,
}

/// Where a batch's proof leaves its claims.
pub struct LookupClaims {
    /// Per group: the point on its lookups' columns, and per lookup each column's value there.
    pub groups: Vec<(Vec<F>, Vec<Vec<F>>)>,
    pub table_point: Vec<F>,
    pub m_at: F,
}

/// The random challenges every lookup shares: drawn once, after every commitment.
#[derive(Clone, Copy)]
pub struct Challenges {
    pub alpha: F,
    pub beta: F,
}

impl Challenges {
    pub fn draw(t: &mut Transcript) -> Result<Self, ZkError> {
        Ok(Challenges {
            alpha: t.challenge(b"lookup alpha")?,
            beta: t.challenge(b"lookup beta")?,
        })
    }
}

fn key_of(cols: &[F], beta: F) -> F {
    let mut k = F::ZERO;
    let mut b = F::ONE;
    for c in cols {
        k += b * c;
        b *= beta;
    }
    k
}

/// `Σ_{b<k} eq(r, b)`: the numerators' extension for `k` real blocks among `2^r.len()`.
fn blocks_indicator(r: &[F], k: usize) -> F {
    (0..k).map(|b| super::field::eq_at_index(r, b)).sum()
}

/// Proves that every row of every lookup in `groups` (group → lookups → columns, every column of
/// a group `2^vars` long) is in `table`, with `m` the summed [`multiplicities`]. The columns and
/// `m` must be committed before `ch` was drawn.
pub fn prove(
    table: &Table,
    groups: &[Vec<Vec<&[i64]>>],
    m: &[i64],
    ch: Challenges,
    t: &mut Transcript,
) -> Result<(LookupProof, LookupClaims), ZkError> {
    let Challenges { alpha, beta } = ch;
    let mut witness = Vec::new();
    let mut claims = Vec::new();
    let mut columns_at = Vec::new();
    for g in groups {
        let n = g
            .first()
            .and_then(|l| l.first())
            .map(|c| c.len())
            .unwrap_or(1);
        let kb = super::commit::member_bits(g.len());
        let total = n << kb;
        let mut p = vec![F::ZERO; total];
        let mut q = vec![alpha; total];
        for (b, lk) in g.iter().enumerate() {
            for x in 0..n {
                let cols: Vec<F> = lk.iter().map(|c| from_i64(c[x])).collect();
                p[b * n + x] = F::ONE;
                q[b * n + x] = alpha - key_of(&cols, beta);
            }
        }
        let (proof, leaves) = prove_fraction(p, q, t)?;
        let low = leaves.point[..n.trailing_zeros() as usize].to_vec();
        let at: Vec<Vec<F>> = g
            .iter()
            .map(|lk| {
                lk.iter()
                    .map(|c| super::field::evaluate_i64(c, &low))
                    .collect()
            })
            .collect();
        for v in &at {
            t.scalars(b"lookup columns", v);
        }
        witness.push(proof);
        claims.push((low, at.clone()));
        columns_at.push(at);
    }
    let tq: Vec<F> = table.keys(beta).into_iter().map(|k| alpha - k).collect();
    let tp: Vec<F> = m.iter().map(|&v| from_i64(v)).collect();
    let (tproof, tl) = prove_fraction(tp, tq, t)?;
    t.scalar(b"lookup multiplicity", &tl.p);
    let proof = LookupProof {
        witness,
        table: tproof,
        columns_at,
        m_at: tl.p,
    };
    Ok((
        proof,
        LookupClaims {
            groups: claims,
            table_point: tl.point,
            m_at: tl.p,
        },
    ))
}

/// Checks a batch of lookups into `table`: `shape` gives, per group, the columns' variable count
/// and the number of lookups; every lookup has `table.columns()` columns.
pub fn verify(
    table: &Table,
    shape: &[(usize, usize)],
    proof: &LookupProof,
    ch: Challenges,
    t: &mut Transcript,
) -> Result<LookupClaims, ZkError> {
    let Challenges { alpha, beta } = ch;
    if proof.witness.len() != shape.len() || proof.columns_at.len() != shape.len() {
        return Err(ZkError::Verify("lookup: wrong number of groups".into()));
    }
    let mut claims = Vec::new();
    let (mut sum_p, mut sum_q) = (F::ZERO, F::ONE);
    for ((&(vars, k), wp), at) in shape.iter().zip(&proof.witness).zip(&proof.columns_at) {
        if at.len() != k || at.iter().any(|cols| cols.len() != table.columns()) {
            return Err(ZkError::Verify("lookup: wrong number of columns".into()));
        }
        let kb = super::commit::member_bits(k);
        let leaves = verify_fraction(wp, vars + kb, t)?;
        let (low, high) = leaves.point.split_at(vars);
        let key: F = at
            .iter()
            .enumerate()
            .map(|(b, cols)| super::field::eq_at_index(high, b) * key_of(cols, beta))
            .sum();
        if leaves.p != blocks_indicator(high, k) || leaves.q != alpha - key {
            return Err(ZkError::Verify(
                "lookup: the looked-up columns do not match the tree".into(),
            ));
        }
        for v in at {
            t.scalars(b"lookup columns", v);
        }
        let [p, q] = wp.root;
        if q == F::ZERO {
            return Err(ZkError::Verify("lookup: a zero denominator".into()));
        }
        sum_p = sum_p * q + p * sum_q;
        sum_q *= q;
        claims.push((low.to_vec(), at.clone()));
    }
    let tl = verify_fraction(&proof.table, table.vars(), t)?;
    let [pt, qt] = proof.table.root;
    if qt == F::ZERO || sum_p * qt != pt * sum_q {
        return Err(ZkError::Verify(
            "lookup: a looked-up row is not in its table".into(),
        ));
    }
    if tl.p != proof.m_at || tl.q != alpha - table.key_at(&tl.point, beta) {
        return Err(ZkError::Verify(
            "lookup: the table side does not match the table".into(),
        ));
    }
    t.scalar(b"lookup multiplicity", &proof.m_at);
    Ok(LookupClaims {
        groups: claims,
        table_point: tl.point,
        m_at: proof.m_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::field::evaluate_i64;

    fn check(table: &Table, cols: &[&[i64]], m: &[i64]) -> Result<(), ZkError> {
        let vars = cols[0].len().trailing_zeros() as usize;
        let mut tp = Transcript::new(b"lk");
        let ch = Challenges::draw(&mut tp)?;
        let groups = vec![vec![cols.to_vec()]];
        let (proof, pc) = prove(table, &groups, m, ch, &mut tp)?;
        let mut tv = Transcript::new(b"lk");
        let ch = Challenges::draw(&mut tv)?;
        let vc = verify(table, &[(vars, 1)], &proof, ch, &mut tv)?;
        // The claims are true of the actual columns and multiplicities.
        let (point, at) = &vc.groups[0];
        for (c, v) in cols.iter().zip(&at[0]) {
            if evaluate_i64(c, point) != *v {
                return Err(ZkError::Verify("column claim false".into()));
            }
        }
        if evaluate_i64(m, &vc.table_point) != vc.m_at {
            return Err(ZkError::Verify("multiplicity claim false".into()));
        }
        assert_eq!(pc.groups[0].0, vc.groups[0].0);
        Ok(())
    }

    #[test]
    fn lookups_of_several_sizes_batch_into_one_table_and_a_bad_row_fails() {
        let range = Table::Range { bits: 3 };
        let a: Vec<i64> = (0..8).map(|i| i % 8).collect();
        let b: Vec<i64> = (0..8).map(|i| (i * 3) % 8).collect();
        let c: Vec<i64> = (0..4).map(|i| 7 - i).collect();
        let m: Vec<i64> = {
            let mut m = multiplicities(&range, &[&a]).unwrap();
            for (x, y) in m.iter_mut().zip(multiplicities(&range, &[&b]).unwrap()) {
                *x += y;
            }
            for (x, y) in m.iter_mut().zip(multiplicities(&range, &[&c]).unwrap()) {
                *x += y;
            }
            m
        };
        let run = |a: &[i64], m: &[i64]| -> Result<(), ZkError> {
            let groups = vec![vec![vec![a], vec![&b[..]]], vec![vec![&c[..]]]];
            let mut tp = Transcript::new(b"lk");
            let ch = Challenges::draw(&mut tp)?;
            let (proof, _) = prove(&range, &groups, m, ch, &mut tp)?;
            let mut tv = Transcript::new(b"lk");
            let ch = Challenges::draw(&mut tv)?;
            verify(&range, &[(3, 2), (2, 1)], &proof, ch, &mut tv).map(|_| ())
        };
        run(&a, &m).unwrap();
        let mut bad = a.clone();
        bad[2] = 9;
        assert!(run(&bad, &m).is_err());
    }

    #[test]
    fn rows_in_the_table_verify_and_a_row_outside_cannot() {
        let range = Table::Range { bits: 4 };
        let v: Vec<i64> = (0..32).map(|i| (i * 7) % 16).collect();
        let m = multiplicities(&range, &[&v]).unwrap();
        check(&range, &[&v], &m).unwrap();
        // 16 is out of range: no multiplicities exist, and forged ones do not verify.
        let mut bad = v.clone();
        bad[3] = 16;
        assert!(multiplicities(&range, &[&bad]).is_err());
        let mut forged = m.clone();
        forged[(v[3]) as usize] -= 1;
        forged[0] += 1;
        assert!(check(&range, &[&bad], &m).is_err());
        assert!(check(&range, &[&bad], &forged).is_err());

        let f = Table::Function {
            lo: -4,
            values: (-4..4).map(|x: i64| x * x).collect(),
        };
        let x: Vec<i64> = (0..16).map(|i| (i % 8) - 4).collect();
        let y: Vec<i64> = x.iter().map(|v| v * v).collect();
        let m = multiplicities(&f, &[&x, &y]).unwrap();
        check(&f, &[&x, &y], &m).unwrap();
        let mut y2 = y.clone();
        y2[5] += 1;
        assert!(check(&f, &[&x, &y2], &m).is_err());
    }
}
