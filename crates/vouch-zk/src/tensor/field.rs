//! The field the tensor proofs live in (Pallas's scalar field, the same as the R1CS tier), and the
//! multilinear-extension arithmetic every other module uses.
//!
//! Convention, everywhere in `tensor`: a vector of `2^n` values is the table of a multilinear
//! polynomial in `n` variables, and variable `k` is bit `k` of the index (the lowest bit first).
//! A row-major tensor's last axis therefore owns the lowest variables, so a point on a tensor is
//! its last axis's coordinates followed by the earlier axes'.

use ff::Field;
use rayon::prelude::*;

pub type F = spartan2::provider::pasta::pallas::Scalar;

/// A signed integer as a field element (negative numbers wrap to `p - |v|`).
pub fn from_i64(v: i64) -> F {
    if v >= 0 {
        F::from(v as u64)
    } else {
        -F::from(v.unsigned_abs())
    }
}

/// A signed 128-bit integer as a field element.
pub fn from_i128(v: i128) -> F {
    let m = v.unsigned_abs();
    let lo = F::from(m as u64);
    let hi = F::from((m >> 64) as u64);
    let x = hi * F::from(1u64 << 32).square() + lo;
    if v < 0 { -x } else { x }
}

/// `eq(r, x)` for every `x` in `{0,1}^n`, indexed as the convention above says.
pub fn eq_table(r: &[F]) -> Vec<F> {
    let mut t = vec![F::ONE];
    // Highest variable first, so that the last doubling places variable 0 in bit 0.
    for &ri in r.iter().rev() {
        let mut next = vec![F::ZERO; t.len() * 2];
        for (i, &v) in t.iter().enumerate() {
            let hi = v * ri;
            next[2 * i] = v - hi;
            next[2 * i + 1] = hi;
        }
        t = next;
    }
    t
}

/// `eq(a, b)` for two points of the same length.
pub fn eq_eval(a: &[F], b: &[F]) -> F {
    a.iter().zip(b).fold(F::ONE, |acc, (&x, &y)| {
        acc * (x * y + (F::ONE - x) * (F::ONE - y))
    })
}

/// `eq(r, i)` for one integer `i` (bits of `i` beyond `r.len()` must be zero).
pub fn eq_at_index(r: &[F], i: usize) -> F {
    r.iter().enumerate().fold(F::ONE, |acc, (k, &rk)| {
        if (i >> k) & 1 == 1 {
            acc * rk
        } else {
            acc * (F::ONE - rk)
        }
    })
}

/// Binds variable 0 of a table to `r`, halving it.
pub fn fold(t: &[F], r: F) -> Vec<F> {
    t.par_chunks(2)
        .map(|p| {
            let lo = p[0];
            let hi = if p.len() > 1 { p[1] } else { F::ZERO };
            lo + r * (hi - lo)
        })
        .collect()
}

/// The multilinear extension of `t` (zero-padded to `2^r.len()`) at `r`.
pub fn evaluate(t: &[F], r: &[F]) -> F {
    let n = 1usize << r.len();
    debug_assert!(t.len() <= n);
    let eq = eq_table(r);
    t.par_iter().zip(eq.par_iter()).map(|(a, b)| *a * b).sum()
}

/// The multilinear extension of integer values at `r`, without converting them all first.
pub fn evaluate_i64(t: &[i64], r: &[F]) -> F {
    let eq = eq_table(r);
    t.par_iter()
        .zip(eq.par_iter())
        .map(|(&a, b)| from_i64(a) * b)
        .sum()
}

/// Number of variables of a table of `len` values (padded to a power of two, at least 1).
pub fn vars_for(len: usize) -> usize {
    len.max(1).next_power_of_two().trailing_zeros() as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eq_table_matches_pointwise_eq_and_evaluate_interpolates() {
        let r = [F::from(3u64), F::from(5u64), -F::from(7u64)];
        let t = eq_table(&r);
        for (i, v) in t.iter().enumerate() {
            assert_eq!(*v, eq_at_index(&r, i));
        }
        // On boolean points the extension is the table itself.
        let vals: Vec<F> = (0..8).map(|i| from_i64(i * i - 20)).collect();
        for i in 0..8usize {
            let p: Vec<F> = (0..3).map(|k| F::from(((i >> k) & 1) as u64)).collect();
            assert_eq!(evaluate(&vals, &p), vals[i]);
        }
        // Folding variable 0 then evaluating the rest is evaluating the whole.
        let folded = fold(&vals, r[0]);
        assert_eq!(evaluate(&folded, &r[1..]), evaluate(&vals, &r));
        assert_eq!(from_i128(-(1i128 << 70)), -F::from(1u64 << 35).square());
    }
}
