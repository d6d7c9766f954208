//! The sumcheck protocol for sums of products of multilinear tables,
//! `Σ_x Σ_j c_j · Π_{k ∈ term_j} t_k(x)`, the one engine every tensor relation reduces to (matrix
//! products, elementwise products, the fractional sums of lookups, batched openings).
//!
//! Each round the prover sends its round polynomial as its values at `0..=degree`; the verifier
//! checks `s(0) + s(1)` against the running claim and moves to `s(r)`. At the end the verifier
//! holds a point and the claim `Σ_j c_j Π t_k(point)`, which the caller discharges with the
//! tables' evaluations (opened from commitments, or computed from public data).

use ff::Field;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::field::{F, fold};
use super::transcript::Transcript;
use crate::error::ZkError;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SumcheckProof {
    /// Per round, the round polynomial's values at `0, 1, …, degree`.
    pub rounds: Vec<Vec<F>>,
}

/// A sum of products: each term a coefficient and the indices of the tables it multiplies.
#[derive(Clone, Debug)]
pub struct Expr {
    pub terms: Vec<(F, Vec<usize>)>,
}

impl Expr {
    pub fn product(tables: &[usize]) -> Self {
        Expr {
            terms: vec![(F::ONE, tables.to_vec())],
        }
    }

    pub fn degree(&self) -> usize {
        self.terms.iter().map(|(_, t)| t.len()).max().unwrap_or(0)
    }

    /// The expression's value given each table's value.
    pub fn eval(&self, values: &[F]) -> F {
        self.terms
            .iter()
            .map(|(c, ks)| ks.iter().fold(*c, |acc, &k| acc * values[k]))
            .sum()
    }
}

/// Lagrange interpolation of the values at `0..=d` to the point `r`.
fn interpolate(values: &[F], r: F) -> F {
    let d = values.len();
    let mut acc = F::ZERO;
    for (i, &vi) in values.iter().enumerate() {
        let mut num = F::ONE;
        let mut den = F::ONE;
        for j in 0..d {
            if j != i {
                num *= r - F::from(j as u64);
                den *= F::from(i as u64) - F::from(j as u64);
            }
        }
        // den is a product of small non-zero integers: invertible.
        acc += vi * num * den.invert().unwrap_or(F::ZERO);
    }
    acc
}

/// Proves `Σ_x expr(tables(x)) = claim` (the caller has absorbed the claim). Every table must
/// have the same power-of-two length. Returns the proof, the point, and each table's value there.
pub fn prove(
    mut tables: Vec<Vec<F>>,
    expr: &Expr,
    t: &mut Transcript,
) -> Result<(SumcheckProof, Vec<F>, Vec<F>), ZkError> {
    let n = tables.first().map(|x| x.len()).unwrap_or(1);
    if !n.is_power_of_two() || tables.iter().any(|x| x.len() != n) {
        return Err(ZkError::Internal(
            "sumcheck: tables of unequal or non-power-of-two size".into(),
        ));
    }
    let vars = n.trailing_zeros() as usize;
    let deg = expr.degree().max(1);
    let mut rounds = Vec::with_capacity(vars);
    let mut point = Vec::with_capacity(vars);
    for _ in 0..vars {
        let half = tables[0].len() / 2;
        let evals = (0..half)
            .into_par_iter()
            .fold(
                || vec![F::ZERO; deg + 1],
                |mut acc, i| {
                    let mut at = vec![F::ZERO; tables.len()];
                    let mut step = vec![F::ZERO; tables.len()];
                    for (k, tk) in tables.iter().enumerate() {
                        at[k] = tk[2 * i];
                        step[k] = tk[2 * i + 1] - tk[2 * i];
                    }
                    for a in acc.iter_mut() {
                        *a += expr.eval(&at);
                        for k in 0..at.len() {
                            at[k] += step[k];
                        }
                    }
                    acc
                },
            )
            .reduce(
                || vec![F::ZERO; deg + 1],
                |mut a, b| {
                    for (x, y) in a.iter_mut().zip(b) {
                        *x += y;
                    }
                    a
                },
            );
        t.scalars(b"sumcheck round", &evals);
        let r = t.challenge(b"sumcheck challenge")?;
        rounds.push(evals);
        point.push(r);
        tables = tables.into_iter().map(|tk| fold(&tk, r)).collect();
    }
    let finals: Vec<F> = tables.iter().map(|tk| tk[0]).collect();
    Ok((SumcheckProof { rounds }, point, finals))
}

/// Checks a sumcheck of `vars` rounds of degree at most `degree` against `claim`. Returns the
/// point and the claim the tables must meet there.
pub fn verify(
    proof: &SumcheckProof,
    vars: usize,
    degree: usize,
    mut claim: F,
    t: &mut Transcript,
) -> Result<(Vec<F>, F), ZkError> {
    if proof.rounds.len() != vars {
        return Err(ZkError::Verify(format!(
            "sumcheck has {} rounds, the statement needs {vars}",
            proof.rounds.len()
        )));
    }
    let mut point = Vec::with_capacity(vars);
    for (i, evals) in proof.rounds.iter().enumerate() {
        if evals.len() != degree.max(1) + 1 {
            return Err(ZkError::Verify(format!(
                "sumcheck round {i} has the wrong degree"
            )));
        }
        if evals[0] + evals[1] != claim {
            return Err(ZkError::Verify(format!(
                "sumcheck round {i} does not sum to its claim"
            )));
        }
        t.scalars(b"sumcheck round", evals);
        let r = t.challenge(b"sumcheck challenge")?;
        claim = interpolate(evals, r);
        point.push(r);
    }
    Ok((point, claim))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::field::{evaluate, from_i64};

    fn table(seed: i64, n: usize) -> Vec<F> {
        (0..n as i64)
            .map(|i| from_i64((i * 7919 + seed * 31) % 97 - 48))
            .collect()
    }

    #[test]
    fn a_true_sum_verifies_and_ends_at_the_tables_values() {
        let (a, b, c) = (table(1, 16), table(2, 16), table(3, 16));
        let expr = Expr {
            terms: vec![(F::ONE, vec![0, 1, 2]), (from_i64(-3), vec![1])],
        };
        let claim: F = (0..16)
            .map(|i| a[i] * b[i] * c[i] - from_i64(3) * b[i])
            .sum();
        let mut tp = Transcript::new(b"test");
        let (proof, point, finals) =
            prove(vec![a.clone(), b.clone(), c.clone()], &expr, &mut tp).unwrap();
        assert_eq!(
            finals,
            vec![
                evaluate(&a, &point),
                evaluate(&b, &point),
                evaluate(&c, &point)
            ]
        );
        let mut tv = Transcript::new(b"test");
        let (vpoint, vclaim) = verify(&proof, 4, 3, claim, &mut tv).unwrap();
        assert_eq!(vpoint, point);
        assert_eq!(vclaim, expr.eval(&finals));
        // A wrong claim fails in round 0; a changed round value fails later.
        let mut tv = Transcript::new(b"test");
        assert!(verify(&proof, 4, 3, claim + F::ONE, &mut tv).is_err());
        let mut bad = proof.clone();
        bad.rounds[2][3] += F::ONE;
        let mut tv = Transcript::new(b"test");
        let r = verify(&bad, 4, 3, claim, &mut tv);
        assert!(r.is_err() || r.unwrap().1 != expr.eval(&finals));
    }
}
