//! Hyrax commitments to multilinear polynomials (Wahby et al., "Doubly-efficient zkSNARKs without
//! trusted setup", §6), built from Spartan2's hash-to-curve generators and MSMs: a table of
//! `2^n` values is a matrix of `2^(n-c)` rows by `2^c` columns and its commitment is one Pedersen
//! commitment per row. Not hiding (no blinds): everything committed here is either public weights
//! or values the statement already determines.
//!
//! What makes it fit the tensor proofs: any number of evaluation claims on any number of
//! same-size polynomials reduce, by one sumcheck, to a single point, and all polynomials are then
//! opened there together by one vector of `2^c` scalars (the row combination). The verifier's
//! work is one MSM over the row commitments and one over the `2^c` generators.

use ff::Field;
use group::{Curve, Group, GroupEncoding};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use spartan2::provider::traits::{DlogGroup, DlogGroupExt};

use super::field::{F, eq_eval, eq_table, from_i64};
use super::sumcheck::{self, Expr, SumcheckProof};
use super::transcript::{Point, Transcript};
use crate::error::ZkError;

pub type Affine = <Point as DlogGroup>::AffineGroupElement;

const GENERATORS_LABEL: &[u8] = b"vouch.tensor.hyrax.v1";

/// The column generators shared by every commitment of a given width.
#[derive(Clone, Debug)]
pub struct Generators {
    g: Vec<Affine>,
}

impl Generators {
    /// Generators for rows of `2^col_vars` values: derived from a fixed label, no setup.
    pub fn new(col_vars: usize) -> Self {
        Generators {
            g: <Point as DlogGroup>::from_label(GENERATORS_LABEL, 1 << col_vars),
        }
    }

    pub fn col_vars(&self) -> usize {
        self.g.len().trailing_zeros() as usize
    }

    /// Row width (in variables) of a polynomial of `2^vars` values: square-ish, at most the
    /// generators', so the commitment has `2^(vars − cols)` points and an opening `2^cols` scalars.
    pub fn cols_for(&self, vars: usize) -> usize {
        vars.div_ceil(2).min(self.col_vars())
    }
}

/// One polynomial's commitment: a point per row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commitment {
    pub rows: Vec<Point>,
}

impl Serialize for Commitment {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let bytes: Vec<[u8; 32]> = self
            .rows
            .iter()
            .map(|p| {
                let mut b = [0u8; 32];
                b.copy_from_slice(p.to_affine().to_bytes().as_ref());
                b
            })
            .collect();
        bytes.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Commitment {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes: Vec<[u8; 32]> = Vec::deserialize(d)?;
        let rows = bytes
            .iter()
            .map(|b| {
                let mut repr = <Affine as GroupEncoding>::Repr::default();
                repr.as_mut().copy_from_slice(b);
                let a: Option<Affine> = Affine::from_bytes(&repr).into();
                a.map(Point::from)
            })
            .collect::<Option<Vec<Point>>>()
            .ok_or_else(|| serde::de::Error::custom("a commitment row is not a curve point"))?;
        Ok(Commitment { rows })
    }
}

impl Commitment {
    pub fn absorb(&self, label: &'static [u8], t: &mut Transcript) {
        t.points(label, &self.rows);
    }
}

/// Commits to signed integers (weights, quantised activations): two small-scalar MSMs per row,
/// one for the positive and one for the negative entries.
pub fn commit_ints(gens: &Generators, values: &[i64], vars: usize) -> Result<Commitment, ZkError> {
    let cols = 1usize << gens.cols_for(vars);
    let rows = (1usize << vars) / cols;
    let out = (0..rows)
        .into_par_iter()
        .map(|i| {
            let lo = (i * cols).min(values.len());
            let hi = ((i + 1) * cols).min(values.len());
            let row = &values[lo..hi];
            if row.iter().all(|&v| v == 0) {
                return Ok(Point::identity());
            }
            let pos: Vec<u64> = row
                .iter()
                .map(|&v| if v > 0 { v as u64 } else { 0 })
                .collect();
            let neg: Vec<u64> = row
                .iter()
                .map(|&v| if v < 0 { v.unsigned_abs() } else { 0 })
                .collect();
            let p = Point::vartime_multiscalar_mul_small(&pos, &gens.g[..row.len()], false)?;
            let n = Point::vartime_multiscalar_mul_small(&neg, &gens.g[..row.len()], false)?;
            Ok(p - n)
        })
        .collect::<Result<Vec<Point>, spartan2::errors::SpartanError>>()
        .map_err(|e| ZkError::Internal(format!("commit: {e}")))?;
    Ok(Commitment { rows: out })
}

/// A claim `poly(point) = value` on polynomial `poly` of a [`PolySet`].
#[derive(Clone, Debug)]
pub struct Claim {
    pub poly: usize,
    pub point: Vec<F>,
    pub value: F,
}

/// The opening of all claims on a set of same-size polynomials.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Opening {
    pub reduce: SumcheckProof,
    /// Each claimed polynomial's value at the common point (in order of first claim).
    pub evals: Vec<F>,
    /// The row combination `Σ_t μ_t L^T M_t`.
    pub combined_row: Vec<F>,
}

/// Distinct polynomials claimed, in order of first claim.
fn claimed_polys(claims: &[Claim]) -> Vec<usize> {
    let mut seen = Vec::new();
    for c in claims {
        if !seen.contains(&c.poly) {
            seen.push(c.poly);
        }
    }
    seen
}

/// Proves every claim in `claims` on `polys` (all `2^vars` long, committed with `gens`). The
/// claims' values must already be in the transcript.
pub fn open(
    gens: &Generators,
    polys: &[&[i64]],
    vars: usize,
    claims: &[Claim],
    t: &mut Transcript,
) -> Result<Opening, ZkError> {
    let used = claimed_polys(claims);
    let rho = t.challenges(b"open rho", claims.len())?;
    let n = 1usize << vars;
    let mut tables: Vec<Vec<F>> = Vec::with_capacity(2 * used.len());
    for &p in &used {
        let mut v: Vec<F> = polys[p].par_iter().map(|&x| from_i64(x)).collect();
        v.resize(n, F::ZERO);
        tables.push(v);
    }
    for &p in &used {
        let mut e = vec![F::ZERO; n];
        for (c, r) in claims.iter().zip(&rho) {
            if c.poly == p {
                let eq = eq_table(&c.point);
                e.par_iter_mut()
                    .zip(eq.par_iter())
                    .for_each(|(a, b)| *a += *r * b);
            }
        }
        tables.push(e);
    }
    let k = used.len();
    let expr = Expr {
        terms: (0..k).map(|i| (F::ONE, vec![i, k + i])).collect(),
    };
    let (reduce, point, finals) = sumcheck::prove(tables, &expr, t)?;
    let evals = finals[..k].to_vec();
    t.scalars(b"open evals", &evals);
    let mu = t.challenges(b"open mu", k)?;
    let col_vars = gens.cols_for(vars);
    let cols = 1usize << col_vars;
    let l = eq_table(&point[col_vars..]);
    let mut combined_row = vec![F::ZERO; cols];
    for (&p, m) in used.iter().zip(&mu) {
        let vals = polys[p];
        let part: Vec<F> = (0..cols)
            .into_par_iter()
            .map(|j| {
                let mut acc = F::ZERO;
                for (i, li) in l.iter().enumerate() {
                    if let Some(&v) = vals.get(i * cols + j)
                        && v != 0
                    {
                        acc += *li * from_i64(v);
                    }
                }
                acc
            })
            .collect();
        for (a, b) in combined_row.iter_mut().zip(part) {
            *a += *m * b;
        }
    }
    Ok(Opening {
        reduce,
        evals,
        combined_row,
    })
}

/// Checks an [`Opening`] of `claims` against the polynomials' commitments.
pub fn verify(
    gens: &Generators,
    comms: &[&Commitment],
    vars: usize,
    claims: &[Claim],
    opening: &Opening,
    t: &mut Transcript,
) -> Result<(), ZkError> {
    let used = claimed_polys(claims);
    if opening.evals.len() != used.len() {
        return Err(ZkError::Verify(
            "opening: wrong number of evaluations".into(),
        ));
    }
    if claims.iter().any(|c| c.point.len() != vars) {
        return Err(ZkError::Verify(
            "opening: a claim's point has the wrong size".into(),
        ));
    }
    let rho = t.challenges(b"open rho", claims.len())?;
    let total: F = claims.iter().zip(&rho).map(|(c, r)| *r * c.value).sum();
    let (point, last) = sumcheck::verify(&opening.reduce, vars, 2, total, t)?;
    let mut expect = F::ZERO;
    for (i, &p) in used.iter().enumerate() {
        let e: F = claims
            .iter()
            .zip(&rho)
            .filter(|(c, _)| c.poly == p)
            .map(|(c, r)| *r * eq_eval(&c.point, &point))
            .sum();
        expect += opening.evals[i] * e;
    }
    if expect != last {
        return Err(ZkError::Verify(
            "opening: the claims do not reduce to the evaluations".into(),
        ));
    }
    t.scalars(b"open evals", &opening.evals);
    let mu = t.challenges(b"open mu", used.len())?;
    let col_vars = gens.cols_for(vars);
    let cols = 1usize << col_vars;
    if opening.combined_row.len() != cols {
        return Err(ZkError::Verify(
            "opening: the row combination has the wrong width".into(),
        ));
    }
    let rows = 1usize << (vars - col_vars);
    let l = eq_table(&point[col_vars..]);
    let mut scalars = Vec::new();
    let mut bases = Vec::new();
    for (&p, m) in used.iter().zip(&mu) {
        let c = comms
            .get(p)
            .ok_or_else(|| ZkError::Verify("opening: a claim names no commitment".into()))?;
        if c.rows.len() != rows {
            return Err(ZkError::Verify(
                "opening: a commitment has the wrong number of rows".into(),
            ));
        }
        for (li, row) in l.iter().zip(&c.rows) {
            scalars.push(*m * li);
            bases.push(row.to_affine());
        }
    }
    let lhs = Point::vartime_multiscalar_mul(&scalars, &bases, true)
        .map_err(|e| ZkError::Internal(format!("msm: {e}")))?;
    let rhs = Point::vartime_multiscalar_mul(&opening.combined_row, &gens.g[..cols], true)
        .map_err(|e| ZkError::Internal(format!("msm: {e}")))?;
    if lhs != rhs {
        return Err(ZkError::Verify(
            "opening: the row combination does not match the commitments".into(),
        ));
    }
    let r = eq_table(&point[..col_vars]);
    let got: F = opening
        .combined_row
        .iter()
        .zip(&r)
        .map(|(a, b)| *a * b)
        .sum();
    let want: F = opening.evals.iter().zip(&mu).map(|(e, m)| *e * m).sum();
    if got != want {
        return Err(ZkError::Verify(
            "opening: the evaluations do not match the row combination".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::field::evaluate_i64;

    #[test]
    fn claims_on_several_polynomials_open_together_and_a_false_one_fails() {
        let gens = Generators::new(3);
        let a: Vec<i64> = (0..64).map(|i| (i * 37 % 23) - 11).collect();
        let b: Vec<i64> = (0..50).map(|i| -(i * 13 % 7)).collect(); // zero-padded to 64
        let (ca, cb) = (
            commit_ints(&gens, &a, 6).unwrap(),
            commit_ints(&gens, &b, 6).unwrap(),
        );
        let pt = |s: u64| -> Vec<F> { (0..6).map(|k| F::from(s * 10 + k)).collect() };
        let claims = vec![
            Claim {
                poly: 0,
                point: pt(1),
                value: evaluate_i64(&a, &pt(1)),
            },
            Claim {
                poly: 1,
                point: pt(2),
                value: evaluate_i64(&b, &pt(2)),
            },
            Claim {
                poly: 0,
                point: pt(3),
                value: evaluate_i64(&a, &pt(3)),
            },
        ];
        let mut tp = Transcript::new(b"t");
        let op = open(&gens, &[&a, &b], 6, &claims, &mut tp).unwrap();
        let mut tv = Transcript::new(b"t");
        verify(&gens, &[&ca, &cb], 6, &claims, &op, &mut tv).unwrap();
        // Round trip through serde keeps the commitment.
        let bytes = bincode::serialize(&ca).unwrap();
        assert_eq!(bincode::deserialize::<Commitment>(&bytes).unwrap(), ca);
        // A false claim, a different commitment, a tampered row: each fails.
        let mut bad = claims.clone();
        bad[1].value += F::ONE;
        let mut tp = Transcript::new(b"t");
        let op_bad = open(&gens, &[&a, &b], 6, &bad, &mut tp).unwrap();
        let mut tv = Transcript::new(b"t");
        assert!(verify(&gens, &[&ca, &cb], 6, &bad, &op_bad, &mut tv).is_err());
        let mut tv = Transcript::new(b"t");
        assert!(verify(&gens, &[&cb, &ca], 6, &claims, &op, &mut tv).is_err());
        let mut op2 = op.clone();
        op2.combined_row[0] += F::ONE;
        let mut tv = Transcript::new(b"t");
        assert!(verify(&gens, &[&ca, &cb], 6, &claims, &op2, &mut tv).is_err());
    }
}
