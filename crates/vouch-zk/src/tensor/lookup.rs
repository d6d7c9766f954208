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

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LookupProof {
    pub witness: FractionProof,
    pub table: FractionProof,
    /// Each column's value at the witness tree's leaf point.
    pub columns_at: Vec<F>,
    /// The multiplicities' value at the table tree's leaf point.
    pub m_at: F,
}

/// Where a lookup's proof leaves its claims: each column at `witness_point`, the
/// multiplicities at `table_point`.
pub struct LookupClaims {
    pub witness_point: Vec<F>,
    pub columns_at: Vec<F>,
    pub table_point: Vec<F>,
    pub m_at: F,
}

/// Proves that every row of `columns` (each `2^vars` long) is in `table`, with `m` its
/// [`multiplicities`]. Columns and `m` must be committed (absorbed) before this is called.
pub fn prove(
    table: &Table,
    columns: &[&[i64]],
    m: &[i64],
    t: &mut Transcript,
) -> Result<(LookupProof, LookupClaims), ZkError> {
    let alpha = t.challenge(b"lookup alpha")?;
    let beta = t.challenge(b"lookup beta")?;
    let n = columns[0].len();
    let q: Vec<F> = (0..n)
        .map(|x| {
            let mut k = F::ZERO;
            let mut b = F::ONE;
            for c in columns {
                k += b * from_i64(c[x]);
                b *= beta;
            }
            alpha - k
        })
        .collect();
    let (witness, wl) = prove_fraction(vec![F::ONE; n], q, t)?;
    let tq: Vec<F> = table.keys(beta).into_iter().map(|k| alpha - k).collect();
    let tp: Vec<F> = m.iter().map(|&v| from_i64(v)).collect();
    let (tproof, tl) = prove_fraction(tp, tq, t)?;
    let columns_at: Vec<F> = columns
        .iter()
        .map(|c| {
            let v: Vec<F> = c.iter().map(|&x| from_i64(x)).collect();
            evaluate(&v, &wl.point)
        })
        .collect();
    t.scalars(b"lookup columns", &columns_at);
    t.scalar(b"lookup multiplicity", &tl.p);
    let proof = LookupProof {
        witness,
        table: tproof,
        columns_at: columns_at.clone(),
        m_at: tl.p,
    };
    Ok((
        proof,
        LookupClaims {
            witness_point: wl.point,
            columns_at,
            table_point: tl.point,
            m_at: tl.p,
        },
    ))
}

/// Checks a lookup of `columns` columns of `2^vars` rows into `table`; the returned claims must
/// then be opened against the columns' and multiplicities' commitments.
pub fn verify(
    table: &Table,
    columns: usize,
    vars: usize,
    proof: &LookupProof,
    t: &mut Transcript,
) -> Result<LookupClaims, ZkError> {
    if proof.columns_at.len() != columns || columns != table.columns() {
        return Err(ZkError::Verify("lookup: wrong number of columns".into()));
    }
    let alpha = t.challenge(b"lookup alpha")?;
    let beta = t.challenge(b"lookup beta")?;
    let wl = verify_fraction(&proof.witness, vars, t)?;
    let tl = verify_fraction(&proof.table, table.vars(), t)?;
    let [pw, qw] = proof.witness.root;
    let [pt, qt] = proof.table.root;
    if qw == F::ZERO || qt == F::ZERO || pw * qt != pt * qw {
        return Err(ZkError::Verify(
            "lookup: a looked-up row is not in its table".into(),
        ));
    }
    // Witness leaves: numerator 1, denominator α − key(columns).
    let mut key = F::ZERO;
    let mut b = F::ONE;
    for c in &proof.columns_at {
        key += b * c;
        b *= beta;
    }
    if wl.p != F::ONE || wl.q != alpha - key {
        return Err(ZkError::Verify(
            "lookup: the looked-up columns do not match the tree".into(),
        ));
    }
    if tl.p != proof.m_at || tl.q != alpha - table.key_at(&tl.point, beta) {
        return Err(ZkError::Verify(
            "lookup: the table side does not match the table".into(),
        ));
    }
    t.scalars(b"lookup columns", &proof.columns_at);
    t.scalar(b"lookup multiplicity", &proof.m_at);
    Ok(LookupClaims {
        witness_point: wl.point,
        columns_at: proof.columns_at.clone(),
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
        let (proof, pc) = prove(table, cols, m, &mut tp)?;
        let mut tv = Transcript::new(b"lk");
        let vc = verify(table, cols.len(), vars, &proof, &mut tv)?;
        // The claims are true of the actual columns and multiplicities.
        for (c, v) in cols.iter().zip(&vc.columns_at) {
            if evaluate_i64(c, &vc.witness_point) != *v {
                return Err(ZkError::Verify("column claim false".into()));
            }
        }
        if evaluate_i64(m, &vc.table_point) != vc.m_at {
            return Err(ZkError::Verify("multiplicity claim false".into()));
        }
        assert_eq!(pc.witness_point, vc.witness_point);
        Ok(())
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
