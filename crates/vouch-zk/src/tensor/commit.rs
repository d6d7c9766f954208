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

use super::field::{F, eq_at_index, eq_eval, eq_table, from_i64};
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
                // Canonical encodings only: the identity also decodes from its bytes with the
                // sign bit set, and a proof must not have two encodings.
                a.filter(|a| a.to_bytes().as_ref() == b.as_slice())
                    .map(Point::from)
            })
            .collect::<Option<Vec<Point>>>()
            .ok_or_else(|| {
                serde::de::Error::custom("a commitment row is not a canonical curve point")
            })?;
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

/// A claim `member(point) = value` on one member of a stacked class.
#[derive(Clone, Debug)]
pub struct Claim {
    pub poly: usize,
    pub point: Vec<F>,
    pub value: F,
}

/// The opening of all claims on one stacked class.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Opening {
    pub reduce: SumcheckProof,
    /// The stacked polynomial's value at the common point.
    pub eval: F,
    /// The row combination `L^T M` at that point.
    pub combined_row: Vec<F>,
}

/// Variables that index the members of a class of `n` members.
pub fn member_bits(n: usize) -> usize {
    n.max(1).next_power_of_two().trailing_zeros() as usize
}

/// Same-size polynomials (`2^vars` values each) stacked into one: member `m`'s entry `x` at
/// `m·2^vars + x`, so member bits are the highest variables. One commitment and one opening
/// serve the whole class.
pub fn stack(members: &[&[i64]], vars: usize) -> Vec<i64> {
    let n = 1usize << vars;
    let mut out = vec![0i64; n << member_bits(members.len())];
    for (m, v) in members.iter().enumerate() {
        out[m * n..m * n + v.len()].copy_from_slice(v);
    }
    out
}

/// Commits to a class of same-size members as one stacked polynomial.
pub fn commit_class(
    gens: &Generators,
    members: &[&[i64]],
    vars: usize,
) -> Result<Commitment, ZkError> {
    commit_ints(
        gens,
        &stack(members, vars),
        vars + member_bits(members.len()),
    )
}

/// Proves every claim in `claims` on the members of a class (all `2^vars` long, committed with
/// [`commit_class`]). The claims' values must already be in the transcript.
pub fn open(
    gens: &Generators,
    members: &[&[i64]],
    vars: usize,
    claims: &[Claim],
    t: &mut Transcript,
) -> Result<Opening, ZkError> {
    let rho = t.challenges(b"open rho", claims.len())?;
    let stacked = stack(members, vars);
    let total = vars + member_bits(members.len());
    let n = 1usize << vars;
    let p: Vec<F> = stacked.par_iter().map(|&x| from_i64(x)).collect();
    let mut e = vec![F::ZERO; 1 << total];
    for (c, r) in claims.iter().zip(&rho) {
        let eq = eq_table(&c.point);
        e[c.poly * n..(c.poly + 1) * n]
            .par_iter_mut()
            .zip(eq.par_iter())
            .for_each(|(a, b)| *a += *r * b);
    }
    let (reduce, point, finals) = sumcheck::prove(vec![p, e], &Expr::product(&[0, 1]), t)?;
    let eval = finals[0];
    t.scalar(b"open eval", &eval);
    let col_vars = gens.cols_for(total);
    let cols = 1usize << col_vars;
    let l = eq_table(&point[col_vars..]);
    let combined_row: Vec<F> = (0..cols)
        .into_par_iter()
        .map(|j| {
            let mut acc = F::ZERO;
            for (i, li) in l.iter().enumerate() {
                let v = stacked[i * cols + j];
                if v != 0 {
                    acc += *li * from_i64(v);
                }
            }
            acc
        })
        .collect();
    Ok(Opening {
        reduce,
        eval,
        combined_row,
    })
}

/// Checks an [`Opening`] of `claims` on a class of `members` members against its commitment.
pub fn verify(
    gens: &Generators,
    comm: &Commitment,
    members: usize,
    vars: usize,
    claims: &[Claim],
    opening: &Opening,
    t: &mut Transcript,
) -> Result<(), ZkError> {
    if claims
        .iter()
        .any(|c| c.point.len() != vars || c.poly >= members)
    {
        return Err(ZkError::Verify(
            "opening: a claim does not fit its class".into(),
        ));
    }
    let total = vars + member_bits(members);
    let rho = t.challenges(b"open rho", claims.len())?;
    let sum: F = claims.iter().zip(&rho).map(|(c, r)| *r * c.value).sum();
    let (point, last) = sumcheck::verify(&opening.reduce, total, 2, sum, t)?;
    let e: F = claims
        .iter()
        .zip(&rho)
        .map(|(c, r)| *r * eq_eval(&c.point, &point[..vars]) * eq_at_index(&point[vars..], c.poly))
        .sum();
    if opening.eval * e != last {
        return Err(ZkError::Verify(
            "opening: the claims do not reduce to the evaluation".into(),
        ));
    }
    t.scalar(b"open eval", &opening.eval);
    let col_vars = gens.cols_for(total);
    let cols = 1usize << col_vars;
    if opening.combined_row.len() != cols {
        return Err(ZkError::Verify(
            "opening: the row combination has the wrong width".into(),
        ));
    }
    if comm.rows.len() != 1 << (total - col_vars) {
        return Err(ZkError::Verify(
            "opening: a commitment has the wrong number of rows".into(),
        ));
    }
    let l = eq_table(&point[col_vars..]);
    let bases: Vec<Affine> = comm.rows.iter().map(|r| r.to_affine()).collect();
    let lhs = Point::vartime_multiscalar_mul(&l, &bases, true)
        .map_err(|e| ZkError::Internal(format!("msm: {e}")))?;
    let rhs = Point::vartime_multiscalar_mul(&opening.combined_row, &gens.g[..cols], true)
        .map_err(|e| ZkError::Internal(format!("msm: {e}")))?;
    if lhs != rhs {
        return Err(ZkError::Verify(
            "opening: the row combination does not match the commitment".into(),
        ));
    }
    let r = eq_table(&point[..col_vars]);
    let got: F = opening
        .combined_row
        .iter()
        .zip(&r)
        .map(|(a, b)| *a * b)
        .sum();
    if got != opening.eval {
        return Err(ZkError::Verify(
            "opening: the evaluation does not match the row combination".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::field::evaluate_i64;

    #[test]
    fn claims_on_a_stacked_class_open_together_and_a_false_one_fails() {
        let gens = Generators::new(3);
        let a: Vec<i64> = (0..64).map(|i| (i * 37 % 23) - 11).collect();
        let b: Vec<i64> = (0..50).map(|i| -(i * 13 % 7)).collect(); // zero-padded to 64
        let c: Vec<i64> = (0..64).map(|i| i % 5).collect();
        let members: [&[i64]; 3] = [&a, &b, &c];
        let comm = commit_class(&gens, &members, 6).unwrap();
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
            Claim {
                poly: 2,
                point: pt(4),
                value: evaluate_i64(&c, &pt(4)),
            },
        ];
        let mut tp = Transcript::new(b"t");
        let op = open(&gens, &members, 6, &claims, &mut tp).unwrap();
        let mut tv = Transcript::new(b"t");
        verify(&gens, &comm, 3, 6, &claims, &op, &mut tv).unwrap();
        // Round trip through serde keeps the commitment.
        let bytes = bincode::serialize(&comm).unwrap();
        assert_eq!(bincode::deserialize::<Commitment>(&bytes).unwrap(), comm);
        // A false claim, a claim on the wrong member, another commitment, a tampered row: each fails.
        let mut bad = claims.clone();
        bad[1].value += F::ONE;
        let mut tp = Transcript::new(b"t");
        let op_bad = open(&gens, &members, 6, &bad, &mut tp).unwrap();
        let mut tv = Transcript::new(b"t");
        assert!(verify(&gens, &comm, 3, 6, &bad, &op_bad, &mut tv).is_err());
        let mut moved = claims.clone();
        moved[3].poly = 1;
        let mut tv = Transcript::new(b"t");
        assert!(verify(&gens, &comm, 3, 6, &moved, &op, &mut tv).is_err());
        let other = commit_class(&gens, &[&c, &b, &a], 6).unwrap();
        let mut tv = Transcript::new(b"t");
        assert!(verify(&gens, &other, 3, 6, &claims, &op, &mut tv).is_err());
        let mut op2 = op.clone();
        op2.combined_row[0] += F::ONE;
        let mut tv = Transcript::new(b"t");
        assert!(verify(&gens, &comm, 3, 6, &claims, &op2, &mut tv).is_err());
    }

    #[test]
    fn a_commitment_has_one_encoding() {
        // A zero row commits to the identity (32 zero bytes); with the sign bit set those bytes
        // also decode to it, so they are refused: a proof has exactly one encoding.
        let gens = Generators::new(2);
        let comm = commit_ints(&gens, &[0, 0, 0, 0, 1, -2, 3, 0], 3).unwrap();
        let bytes = bincode::serialize(&comm).unwrap();
        assert_eq!(&bytes[8..40], &[0u8; 32]);
        assert_eq!(bincode::deserialize::<Commitment>(&bytes).unwrap(), comm);
        for (i, bit) in [(39, 7), (71, 7), (8, 0)] {
            let mut b = bytes.clone();
            b[i] ^= 1 << bit;
            if let Ok(c) = bincode::deserialize::<Commitment>(&b) {
                assert_ne!(c, comm, "byte {i} bit {bit}");
                assert_ne!(bincode::serialize(&c).unwrap(), bytes);
            }
        }
    }
}
