//! Tensor relations: the one operator kind every product, sum, rescale and elementwise identity
//! of a tensor program is written in, proven by one sumcheck.
//!
//! A relation names axes (each `2^bits` long) and says, for every assignment `o` of its *free*
//! axes, `Σ_s Σ_t c_t Π_{op ∈ t} op(o, s) + Σ_p c_p op_p(o) + constant = 0`, where `s` ranges
//! over all its other axes (the summed ones; a term lacking a summed axis counts once per index
//! of it). Matrix products (`Σ_k x(i,k)W(k,j) + b(j) − 2^s y(i,j) − rem(i,j) + 2^(s−1) = 0`),
//! attention's batched products, sums over an axis and elementwise identities with broadcasting
//! are all relations.
//!
//! The verifier checks it at a random point `r` of the free axes. A free axis that appears in at
//! most one operand of every term is bound to `r` directly (the product stays multilinear in
//! it, so the term's sum at `r` is the extension's value there); a free axis shared by operands
//! is summed with an `eq(r, ·)` weight instead (a zero-check). Point terms are single operands
//! over free axes: the prover states their values at `r`.

use ff::Field;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::field::{F, eq_eval, eq_table, from_i64};
use super::sumcheck::{self, Expr, SumcheckProof};
use super::transcript::Transcript;
use crate::error::ZkError;

/// A tensor in a relation: which tensor, and the relation axes its padded layout is read as
/// (row-major: the first axis owns the highest bits), which may split or merge its own axes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Operand {
    pub tensor: usize,
    pub axes: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Relation {
    /// log2 of each axis's (padded) length.
    pub axes: Vec<usize>,
    pub free: Vec<usize>,
    pub sum_terms: Vec<(i64, Vec<Operand>)>,
    pub point_terms: Vec<(i64, Operand)>,
    pub constant: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RelationProof {
    /// Each point term's operand at the free point.
    pub at_point: Vec<F>,
    pub sumcheck: SumcheckProof,
    /// Each sum term's operands (flattened, in order) at the sumcheck's end.
    pub at_end: Vec<F>,
}

/// A claim the relation leaves: `tensor(point) = value`.
pub type TensorClaim = (usize, Vec<F>, F);

/// Bit fields of a row-major list of axes: the last axis owns the lowest bits.
struct Fields {
    bits: Vec<usize>,
    offset: Vec<usize>,
    total: usize,
}

impl Fields {
    fn new(bits: Vec<usize>) -> Self {
        let mut offset = vec![0; bits.len()];
        let mut acc = 0;
        for k in (0..bits.len()).rev() {
            offset[k] = acc;
            acc += bits[k];
        }
        Fields {
            bits,
            offset,
            total: acc,
        }
    }
    fn get(&self, idx: usize, k: usize) -> usize {
        (idx >> self.offset[k]) & ((1 << self.bits[k]) - 1)
    }
    /// A point over these fields from each field's own point.
    fn point(&self, per_axis: &[&[F]]) -> Vec<F> {
        let mut p = vec![F::ZERO; self.total];
        for (k, pa) in per_axis.iter().enumerate() {
            p[self.offset[k]..self.offset[k] + self.bits[k]].copy_from_slice(pa);
        }
        p
    }
    fn slice<'a>(&self, point: &'a [F], k: usize) -> &'a [F] {
        &point[self.offset[k]..self.offset[k] + self.bits[k]]
    }
}

struct Plan {
    /// Free axes bound at the random point.
    bound: Vec<usize>,
    /// Free axes summed with an eq weight.
    eq_axes: Vec<usize>,
    /// The sumcheck's axes (eq axes and summed axes), in relation-axis order.
    domain: Vec<usize>,
}

impl Relation {
    pub fn check_shapes(&self, dims: &dyn Fn(usize) -> Vec<usize>) -> Result<(), ZkError> {
        let bad = |m: String| ZkError::Internal(format!("relation: {m}"));
        for f in &self.free {
            if *f >= self.axes.len() {
                return Err(bad("free axis out of range".into()));
            }
        }
        let ops = self
            .sum_terms
            .iter()
            .flat_map(|t| t.1.iter())
            .chain(self.point_terms.iter().map(|p| &p.1));
        for op in ops {
            // An operand views its tensor's padded layout as the relation's axes, row-major:
            // e.g. a [16, 384] tensor (padded [16, 512]) as (token, head, dim) of 4, 4, 5 bits.
            let vars: usize = dims(op.tensor)
                .iter()
                .map(|d| d.trailing_zeros() as usize)
                .sum();
            if op.axes.iter().any(|&a| a >= self.axes.len()) {
                return Err(bad(format!(
                    "an operand of tensor {} names no axis",
                    op.tensor
                )));
            }
            let bits: usize = op.axes.iter().map(|&a| self.axes[a]).sum();
            if bits != vars {
                return Err(bad(format!(
                    "tensor {} has {vars} variables, its operand {bits}",
                    op.tensor
                )));
            }
        }
        for (_, op) in &self.point_terms {
            if op.axes.iter().any(|a| !self.free.contains(a)) {
                return Err(bad("a point term over a summed axis".into()));
            }
        }
        Ok(())
    }

    fn plan(&self) -> Plan {
        let shared = |a: usize| {
            self.sum_terms
                .iter()
                .any(|(_, ops)| ops.iter().filter(|o| o.axes.contains(&a)).count() > 1)
        };
        let mut free = self.free.clone();
        free.sort_unstable();
        let eq_axes: Vec<usize> = free.iter().copied().filter(|&a| shared(a)).collect();
        let bound: Vec<usize> = free
            .iter()
            .copied()
            .filter(|a| !eq_axes.contains(a))
            .collect();
        let domain: Vec<usize> = (0..self.axes.len())
            .filter(|a| !bound.contains(a))
            .collect();
        Plan {
            bound,
            eq_axes,
            domain,
        }
    }

    /// Checks the relation on actual values (the prover's guard against proving a false one).
    pub fn holds<'v>(&self, values: &dyn Fn(usize) -> &'v [i64]) -> bool {
        let fields = Fields::new(self.axes.clone());
        let n = 1usize << fields.total;
        let free_mask: usize = self
            .free
            .iter()
            .map(|&a| ((1usize << self.axes[a]) - 1) << fields.offset[a])
            .sum();
        let idx_of = |op: &Operand, x: usize| -> usize {
            let tf = Fields::new(op.axes.iter().map(|&a| self.axes[a]).collect());
            op.axes
                .iter()
                .enumerate()
                .map(|(k, &a)| fields.get(x, a) << tf.offset[k])
                .sum()
        };
        let mut totals = std::collections::HashMap::<usize, i128>::new();
        for x in 0..n {
            let mut s: i128 = 0;
            for (c, ops) in &self.sum_terms {
                let mut p = *c as i128;
                for op in ops {
                    p *= values(op.tensor)[idx_of(op, x)] as i128;
                }
                s += p;
            }
            *totals.entry(x & free_mask).or_default() += s;
        }
        totals.into_iter().all(|(o, mut s)| {
            for (c, op) in &self.point_terms {
                s += *c as i128 * values(op.tensor)[idx_of(op, o)] as i128;
            }
            s + self.constant as i128 == 0
        })
    }
}

/// `op`'s values with its `bound` axes fixed to their points, as a table over `domain`.
fn operand_table(rel: &Relation, op: &Operand, vals: &[i64], r: &[Vec<F>], plan: &Plan) -> Vec<F> {
    let tf = Fields::new(op.axes.iter().map(|&a| rel.axes[a]).collect());
    let bound_k: Vec<usize> = (0..op.axes.len())
        .filter(|&k| plan.bound.contains(&op.axes[k]))
        .collect();
    let rest_k: Vec<usize> = (0..op.axes.len())
        .filter(|&k| !plan.bound.contains(&op.axes[k]))
        .collect();
    let bf = Fields::new(bound_k.iter().map(|&k| tf.bits[k]).collect());
    let rf = Fields::new(rest_k.iter().map(|&k| tf.bits[k]).collect());
    let pts: Vec<&[F]> = bound_k.iter().map(|&k| r[op.axes[k]].as_slice()).collect();
    let eq = eq_table(&bf.point(&pts));
    let mut rest = vec![F::ZERO; 1 << rf.total];
    for (x, &v) in vals.iter().enumerate() {
        if v == 0 {
            continue;
        }
        let bi: usize = bound_k
            .iter()
            .enumerate()
            .map(|(j, &k)| tf.get(x, k) << bf.offset[j])
            .sum();
        let ri: usize = rest_k
            .iter()
            .enumerate()
            .map(|(j, &k)| tf.get(x, k) << rf.offset[j])
            .sum();
        rest[ri] += eq[bi] * from_i64(v);
    }
    // Broadcast over the domain.
    let df = Fields::new(plan.domain.iter().map(|&a| rel.axes[a]).collect());
    let pos: Vec<usize> = rest_k
        .iter()
        .map(|&k| {
            plan.domain
                .iter()
                .position(|&a| a == op.axes[k])
                .unwrap_or(0)
        })
        .collect();
    (0..1usize << df.total)
        .into_par_iter()
        .map(|d| {
            let ri: usize = pos
                .iter()
                .enumerate()
                .map(|(j, &p)| df.get(d, p) << rf.offset[j])
                .sum();
            rest[ri]
        })
        .collect()
}

fn eq_over_domain(rel: &Relation, r: &[Vec<F>], plan: &Plan) -> Vec<F> {
    let df = Fields::new(plan.domain.iter().map(|&a| rel.axes[a]).collect());
    let ef = Fields::new(plan.eq_axes.iter().map(|&a| rel.axes[a]).collect());
    let pts: Vec<&[F]> = plan.eq_axes.iter().map(|&a| r[a].as_slice()).collect();
    let eq = eq_table(&ef.point(&pts));
    let pos: Vec<usize> = plan
        .eq_axes
        .iter()
        .map(|a| plan.domain.iter().position(|d| d == a).unwrap_or(0))
        .collect();
    (0..1usize << df.total)
        .into_par_iter()
        .map(|d| {
            eq[pos
                .iter()
                .enumerate()
                .map(|(j, &p)| df.get(d, p) << ef.offset[j])
                .sum::<usize>()]
        })
        .collect()
}

/// An operand's point from the free point and the sumcheck's end point.
fn operand_point(rel: &Relation, op: &Operand, r: &[Vec<F>], end: &[F], plan: &Plan) -> Vec<F> {
    let tf = Fields::new(op.axes.iter().map(|&a| rel.axes[a]).collect());
    let df = Fields::new(plan.domain.iter().map(|&a| rel.axes[a]).collect());
    let per: Vec<Vec<F>> = op
        .axes
        .iter()
        .map(|&a| match plan.domain.iter().position(|&d| d == a) {
            Some(p) => df.slice(end, p).to_vec(),
            None => r[a].clone(),
        })
        .collect();
    let refs: Vec<&[F]> = per.iter().map(|v| v.as_slice()).collect();
    tf.point(&refs)
}

/// The claims a relation's sumcheck leaves: each sum-term operand, in order, at its point.
fn end_claims(
    rel: &Relation,
    plan: &Plan,
    r: &[Vec<F>],
    end: &[F],
    at_end: &[F],
) -> Vec<TensorClaim> {
    rel.sum_terms
        .iter()
        .flat_map(|(_, ops)| ops)
        .zip(at_end)
        .map(|(op, &v)| (op.tensor, operand_point(rel, op, r, end, plan), v))
        .collect()
}

fn expr(rel: &Relation, plan: &Plan) -> (Expr, usize) {
    let with_eq = !plan.eq_axes.is_empty();
    let mut next = usize::from(with_eq);
    let mut terms = Vec::new();
    for (c, ops) in &rel.sum_terms {
        let mut idx: Vec<usize> = if with_eq { vec![0] } else { vec![] };
        for _ in ops {
            idx.push(next);
            next += 1;
        }
        terms.push((from_i64(*c), idx));
    }
    (Expr { terms }, next)
}

fn free_point(rel: &Relation, t: &mut Transcript) -> Result<Vec<Vec<F>>, ZkError> {
    (0..rel.axes.len())
        .map(|a| {
            if rel.free.contains(&a) {
                t.challenges(b"relation point", rel.axes[a])
            } else {
                Ok(vec![])
            }
        })
        .collect()
}

fn point_of(rel: &Relation, op: &Operand, r: &[Vec<F>]) -> Vec<F> {
    let tf = Fields::new(op.axes.iter().map(|&a| rel.axes[a]).collect());
    let per: Vec<&[F]> = op.axes.iter().map(|&a| r[a].as_slice()).collect();
    tf.point(&per)
}

pub fn prove<'v>(
    rel: &Relation,
    values: &dyn Fn(usize) -> &'v [i64],
    t: &mut Transcript,
) -> Result<(RelationProof, Vec<TensorClaim>), ZkError> {
    let plan = rel.plan();
    let r = free_point(rel, t)?;
    let mut claims = Vec::new();
    let mut at_point = Vec::new();
    for (_, op) in &rel.point_terms {
        let p = point_of(rel, op, &r);
        let v = super::field::evaluate_i64(values(op.tensor), &p);
        at_point.push(v);
        claims.push((op.tensor, p, v));
    }
    t.scalars(b"relation point values", &at_point);
    let mut tables = Vec::new();
    if !plan.eq_axes.is_empty() {
        tables.push(eq_over_domain(rel, &r, &plan));
    }
    for (_, ops) in &rel.sum_terms {
        for op in ops {
            tables.push(operand_table(rel, op, values(op.tensor), &r, &plan));
        }
    }
    let n_ops: usize = rel.sum_terms.iter().map(|t| t.1.len()).sum();
    if tables.is_empty() {
        // Only constants are summed: a table of ones carries the domain's size.
        let df_bits: usize = plan.domain.iter().map(|&a| rel.axes[a]).sum();
        tables.push(vec![F::ONE; 1 << df_bits]);
    }
    let (e, _) = expr(rel, &plan);
    let (sc, end, finals) = sumcheck::prove(tables, &e, t)?;
    let skip = usize::from(!plan.eq_axes.is_empty());
    let at_end: Vec<F> = finals[skip..skip + n_ops].to_vec();
    t.scalars(b"relation end values", &at_end);
    claims.extend(end_claims(rel, &plan, &r, &end, &at_end));
    Ok((
        RelationProof {
            at_point,
            sumcheck: sc,
            at_end,
        },
        claims,
    ))
}

pub fn verify(
    rel: &Relation,
    proof: &RelationProof,
    t: &mut Transcript,
) -> Result<Vec<TensorClaim>, ZkError> {
    let plan = rel.plan();
    let r = free_point(rel, t)?;
    if proof.at_point.len() != rel.point_terms.len() {
        return Err(ZkError::Verify(
            "relation: wrong number of point values".into(),
        ));
    }
    let mut claims = Vec::new();
    let mut point_sum = from_i64(rel.constant);
    for ((c, op), v) in rel.point_terms.iter().zip(&proof.at_point) {
        point_sum += from_i64(*c) * v;
        claims.push((op.tensor, point_of(rel, op, &r), *v));
    }
    t.scalars(b"relation point values", &proof.at_point);
    let vars: usize = plan.domain.iter().map(|&a| rel.axes[a]).sum();
    let (e, _) = expr(rel, &plan);
    let has_ops = rel.sum_terms.iter().any(|t| !t.1.is_empty()) || !plan.eq_axes.is_empty();
    let degree = e.degree().max(usize::from(!has_ops));
    let (end, last) = sumcheck::verify(&proof.sumcheck, vars, degree, -point_sum, t)?;
    let n_ops: usize = rel.sum_terms.iter().map(|t| t.1.len()).sum();
    if proof.at_end.len() != n_ops {
        return Err(ZkError::Verify(
            "relation: wrong number of end values".into(),
        ));
    }
    let mut values = Vec::new();
    if !plan.eq_axes.is_empty() {
        let df = Fields::new(plan.domain.iter().map(|&a| rel.axes[a]).collect());
        let mut eq = F::ONE;
        for &a in &plan.eq_axes {
            let p = plan.domain.iter().position(|&d| d == a).unwrap_or(0);
            eq *= eq_eval(&r[a], df.slice(&end, p));
        }
        values.push(eq);
    }
    values.extend_from_slice(&proof.at_end);
    if !has_ops {
        values.push(F::ONE);
    }
    if e.eval(&values) != last {
        return Err(ZkError::Verify("a tensor relation does not hold".into()));
    }
    t.scalars(b"relation end values", &proof.at_end);
    claims.extend(end_claims(rel, &plan, &r, &end, &proof.at_end));
    Ok(claims)
}
