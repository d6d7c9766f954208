//! A tensor program — what a model becomes for the tensor proofs — its model key (the program and
//! the weights' commitments: all a verifier needs), the prover and the verifier.
//!
//! Tensors have a role: `Input` and `Output` are the public statement, `Weight`s are committed
//! once in the [`ModelKey`], `Hidden` tensors are committed by each proof. Every tensor is stored
//! with each axis padded to a power of two (row-major), and every relation holds on the whole
//! padded domain, so padding is as constrained as data.

use ff::Field;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use super::commit::{self, Claim, Commitment, Generators, Opening};
use super::field::{F, eq_table, evaluate_i64, from_i64};
use super::lookup::{self, LookupProof, Table, TableSpec};
use super::sumcheck::{self, Expr, SumcheckProof};
use super::transcript::Transcript;
use crate::error::ZkError;

/// Widest Hyrax rows: 2^11 generators (see [`Generators::cols_for`]).
pub const MAX_COL_VARS: usize = 11;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    Input,
    Output,
    Hidden,
    Weight,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TensorSpec {
    pub name: String,
    pub dims: Vec<usize>,
    pub role: Role,
}

impl TensorSpec {
    pub fn padded(&self) -> Vec<usize> {
        self.dims
            .iter()
            .map(|d| d.max(&1).next_power_of_two())
            .collect()
    }
    pub fn vars(&self) -> usize {
        self.padded()
            .iter()
            .map(|d| d.trailing_zeros() as usize)
            .sum()
    }
    pub fn padded_len(&self) -> usize {
        1 << self.vars()
    }
    /// Copies row-major values of the real shape into the padded layout.
    pub fn pad(&self, values: &[i64]) -> Result<Vec<i64>, ZkError> {
        let real: usize = self.dims.iter().product();
        if values.len() != real {
            return Err(ZkError::BadInput(format!(
                "{} has {} values, its shape {:?} needs {real}",
                self.name,
                values.len(),
                self.dims
            )));
        }
        let padded = self.padded();
        let mut out = vec![0i64; self.padded_len()];
        for (i, &v) in values.iter().enumerate() {
            let (mut rem, mut idx, mut stride) = (i, 0usize, 1usize);
            for (d, p) in self.dims.iter().zip(&padded).rev() {
                idx += (rem % d) * stride;
                rem /= d;
                stride *= p;
            }
            out[idx] = v;
        }
        Ok(out)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// `y = ⌊(x·w + b + 2^(shift−1)) / 2^shift⌋` and `rem` what the division leaves, for
    /// `x: [m, k]`, `w: [k, n]`, `b: [n]`; `rem` must be range-checked by a later lookup.
    Linear {
        x: usize,
        w: usize,
        b: Option<usize>,
        y: usize,
        rem: usize,
        shift: u32,
    },
    /// Every row of `columns` is in `table`; a `Function` table defines `columns[1]` from
    /// `columns[0]`.
    Lookup {
        columns: Vec<usize>,
        table: TableSpec,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Program {
    pub tensors: Vec<TensorSpec>,
    pub ops: Vec<Op>,
}

/// What a verifier needs about a model: its program and its weights' commitments.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelKey {
    pub program: Program,
    /// One per `Weight` tensor, in tensor order.
    pub weights: Vec<Commitment>,
}

impl ModelKey {
    /// Commits to the weights (the registration-time work) and returns the key.
    pub fn commit(
        program: Program,
        weights: &[Vec<i64>],
        gens: &Generators,
    ) -> Result<Self, ZkError> {
        let ids = program.ids(Role::Weight);
        if ids.len() != weights.len() {
            return Err(ZkError::Internal(
                "model key: one value vector per weight".into(),
            ));
        }
        let comms = ids
            .iter()
            .zip(weights)
            .map(|(&i, w)| commit::commit_ints(gens, w, program.tensors[i].vars()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ModelKey {
            program,
            weights: comms,
        })
    }

    pub fn digest(&self) -> [u8; 32] {
        let bytes = bincode::serialize(self).unwrap_or_default();
        let mut h = sha2::Sha256::new();
        h.update(b"vouch.zk.tensor.key.v1\0");
        h.update(&bytes);
        h.finalize().into()
    }

    pub fn size_bytes(&self) -> usize {
        bincode::serialized_size(self)
            .map(|s| s as usize)
            .unwrap_or(0)
    }
}

impl Program {
    pub fn ids(&self, role: Role) -> Vec<usize> {
        (0..self.tensors.len())
            .filter(|&i| self.tensors[i].role == role)
            .collect()
    }

    /// Runs the program in integers from padded inputs and weights: every tensor's padded
    /// values, and each lookup's multiplicities.
    pub fn run(&self, inputs: &[Vec<i64>], weights: &[Vec<i64>]) -> Result<Values, ZkError> {
        let mut vals: Vec<Option<Vec<i64>>> = vec![None; self.tensors.len()];
        for (&i, v) in self.ids(Role::Input).iter().zip(inputs) {
            vals[i] = Some(v.clone());
        }
        for (&i, v) in self.ids(Role::Weight).iter().zip(weights) {
            vals[i] = Some(v.clone());
        }
        let get = |vals: &Vec<Option<Vec<i64>>>, i: usize| -> Result<Vec<i64>, ZkError> {
            vals[i].clone().ok_or_else(|| {
                ZkError::Internal(format!(
                    "{} used before it is computed",
                    self.tensors[i].name
                ))
            })
        };
        let mut mults = Vec::new();
        for op in &self.ops {
            match op {
                Op::Linear {
                    x,
                    w,
                    b,
                    y,
                    rem,
                    shift,
                } => {
                    let (xs, ws) = (get(&vals, *x)?, get(&vals, *w)?);
                    let bs = match b {
                        Some(b) => Some(get(&vals, *b)?),
                        None => None,
                    };
                    let (m, k) = dims2(&self.tensors[*x])?;
                    let (_, n) = dims2(&self.tensors[*w])?;
                    let half = 1i64 << (shift - 1);
                    let rows: Vec<(Vec<i64>, Vec<i64>)> = (0..m)
                        .into_par_iter()
                        .map(|i| {
                            let mut acc: Vec<i128> = (0..n)
                                .map(|j| {
                                    bs.as_ref().map(|b| b[j] as i128).unwrap_or(0) + half as i128
                                })
                                .collect();
                            for kk in 0..k {
                                let a = xs[i * k + kk] as i128;
                                if a != 0 {
                                    for (j, s) in acc.iter_mut().enumerate() {
                                        *s += a * ws[kk * n + j] as i128;
                                    }
                                }
                            }
                            let q: Vec<i64> = acc.iter().map(|&z| (z >> shift) as i64).collect();
                            let r: Vec<i64> = acc
                                .iter()
                                .map(|&z| (z & ((1i128 << shift) - 1)) as i64)
                                .collect();
                            (q, r)
                        })
                        .collect();
                    vals[*y] = Some(rows.iter().flat_map(|r| r.0.clone()).collect());
                    vals[*rem] = Some(rows.iter().flat_map(|r| r.1.clone()).collect());
                }
                Op::Lookup { columns, table } => {
                    let table = &table.build()?;
                    if let (Table::Function { lo, values }, [x, y]) = (table, columns.as_slice())
                        && vals[*y].is_none()
                    {
                        {
                            let xs = get(&vals, *x)?;
                            let ys = xs
                                .iter()
                                .map(|&v| {
                                    usize::try_from(v - lo)
                                        .ok()
                                        .and_then(|i| values.get(i).copied())
                                        .ok_or_else(|| {
                                            ZkError::OutOfRange(format!(
                                                "{} = {v} is outside its table",
                                                self.tensors[*x].name
                                            ))
                                        })
                                })
                                .collect::<Result<Vec<_>, _>>()?;
                            vals[*y] = Some(ys);
                        }
                    }
                    let cols = columns
                        .iter()
                        .map(|&c| get(&vals, c))
                        .collect::<Result<Vec<_>, _>>()?;
                    let refs: Vec<&[i64]> = cols.iter().map(|c| c.as_slice()).collect();
                    mults.push(lookup::multiplicities(table, &refs)?);
                }
            }
        }
        let tensors = vals
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                v.ok_or_else(|| {
                    ZkError::Internal(format!("{} is never computed", self.tensors[i].name))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Values { tensors, mults })
    }

    /// The committed polynomials of a proof: hidden tensors, then each lookup's multiplicities;
    /// with their variable counts.
    fn committed(&self) -> Vec<(Poly, usize)> {
        let mut out: Vec<(Poly, usize)> = self
            .ids(Role::Hidden)
            .into_iter()
            .map(|i| (Poly::Tensor(i), self.tensors[i].vars()))
            .collect();
        let mut l = 0;
        for op in &self.ops {
            if let Op::Lookup { table, .. } = op {
                out.push((Poly::Mult(l), table.vars()));
                l += 1;
            }
        }
        out
    }
}

/// A 2-D tensor's padded dims.
fn dims2(t: &TensorSpec) -> Result<(usize, usize), ZkError> {
    match t.padded().as_slice() {
        [m, n] => Ok((*m, *n)),
        [n] => Ok((1, *n)),
        _ => Err(ZkError::Internal(format!("{} is not a matrix", t.name))),
    }
}

pub struct Values {
    pub tensors: Vec<Vec<i64>>,
    pub mults: Vec<Vec<i64>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Poly {
    Tensor(usize),
    Mult(usize),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum OpProof {
    Linear {
        /// `y, rem, b` at the output point (b: zero when absent).
        at_out: [F; 3],
        sumcheck: SumcheckProof,
        /// `x, w` at the sumcheck's point.
        at_in: [F; 2],
    },
    Lookup(LookupProof),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Proof {
    /// One per committed polynomial (hidden tensors, then multiplicities).
    pub commitments: Vec<Commitment>,
    pub ops: Vec<OpProof>,
    /// One per size class of committed polynomials with claims, by ascending size.
    pub openings: Vec<Opening>,
    /// One per size class of weights with claims, by ascending size.
    pub weight_openings: Vec<Opening>,
}

/// Claims gathered while proving or verifying, discharged at the end.
#[derive(Default)]
struct Claims(Vec<(Poly, Vec<F>, F)>);

impl Claims {
    fn add(&mut self, p: Poly, point: Vec<F>, value: F) {
        self.0.push((p, point, value));
    }
}

fn bind_statement(t: &mut Transcript, key_digest: &[u8; 32], binding: &[u8], publics: &[&[i64]]) {
    t.bytes(b"model key", key_digest);
    t.bytes(b"binding", binding);
    for p in publics {
        let b: Vec<u8> = p.iter().flat_map(|v| v.to_le_bytes()).collect();
        t.bytes(b"public tensor", &b);
    }
}

fn log2(n: usize) -> usize {
    n.trailing_zeros() as usize
}

/// Proves that `program` maps the inputs to the outputs it computes, under `key`, bound to
/// `binding` (the receipt). Returns the output tensors (padded) and the proof.
pub fn prove(
    key: &ModelKey,
    weights: &[Vec<i64>],
    inputs: &[Vec<i64>],
    binding: &[u8],
    gens: &Generators,
) -> Result<(Vec<Vec<i64>>, Proof), ZkError> {
    let prog = &key.program;
    let vals = prog.run(inputs, weights)?;
    let outputs: Vec<Vec<i64>> = prog
        .ids(Role::Output)
        .iter()
        .map(|&i| vals.tensors[i].clone())
        .collect();
    let mut t = Transcript::new(b"vouch.zk.tensor.v1");
    let publics: Vec<&[i64]> = prog
        .ids(Role::Input)
        .into_iter()
        .chain(prog.ids(Role::Output))
        .map(|i| vals.tensors[i].as_slice())
        .collect();
    bind_statement(&mut t, &key.digest(), binding, &publics);
    let committed = prog.committed();
    let poly_values = |p: Poly| -> &[i64] {
        match p {
            Poly::Tensor(i) => &vals.tensors[i],
            Poly::Mult(l) => &vals.mults[l],
        }
    };
    let commitments = committed
        .par_iter()
        .map(|&(p, v)| commit::commit_ints(gens, poly_values(p), v))
        .collect::<Result<Vec<_>, _>>()?;
    for c in &commitments {
        c.absorb(b"commitment", &mut t);
    }
    let mut claims = Claims::default();
    let mut ops = Vec::new();
    let mut lookup_i = 0;
    for op in &prog.ops {
        match op {
            Op::Linear {
                x,
                w,
                b,
                y,
                rem,
                shift,
            } => {
                let (m, k) = dims2(&prog.tensors[*x])?;
                let (_, n) = dims2(&prog.tensors[*w])?;
                let rj = t.challenges(b"linear j", log2(n))?;
                let ri = t.challenges(b"linear i", log2(m))?;
                let out_point: Vec<F> = rj.iter().chain(&ri).copied().collect();
                let yv = evaluate_i64(&vals.tensors[*y], &out_point);
                let rv = evaluate_i64(&vals.tensors[*rem], &out_point);
                let bv = b
                    .map(|b| evaluate_i64(&vals.tensors[b], &rj))
                    .unwrap_or(F::ZERO);
                let at_out = [yv, rv, bv];
                t.scalars(b"linear out", &at_out);
                // x(ri, ·) and w(·, rj) as tables over k.
                let ei = eq_table(&ri);
                let ej = eq_table(&rj);
                let xs = &vals.tensors[*x];
                let ws = &vals.tensors[*w];
                let xt: Vec<F> = (0..k)
                    .into_par_iter()
                    .map(|kk| (0..m).map(|i| ei[i] * from_i64(xs[i * k + kk])).sum())
                    .collect();
                let wt: Vec<F> = (0..k)
                    .into_par_iter()
                    .map(|kk| {
                        ws[kk * n..(kk + 1) * n]
                            .iter()
                            .zip(&ej)
                            .filter(|(v, _)| **v != 0)
                            .map(|(v, e)| from_i64(*v) * e)
                            .sum()
                    })
                    .collect();
                let (sc, rk, finals) =
                    sumcheck::prove(vec![xt, wt], &Expr::product(&[0, 1]), &mut t)?;
                let at_in = [finals[0], finals[1]];
                t.scalars(b"linear in", &at_in);
                claims.add(Poly::Tensor(*y), out_point.clone(), yv);
                claims.add(Poly::Tensor(*rem), out_point, rv);
                if let Some(b) = b {
                    claims.add(Poly::Tensor(*b), rj.clone(), bv);
                }
                claims.add(
                    Poly::Tensor(*x),
                    rk.iter().chain(&ri).copied().collect(),
                    at_in[0],
                );
                claims.add(
                    Poly::Tensor(*w),
                    rj.iter().chain(&rk).copied().collect(),
                    at_in[1],
                );
                let _ = shift;
                ops.push(OpProof::Linear {
                    at_out,
                    sumcheck: sc,
                    at_in,
                });
            }
            Op::Lookup { columns, table } => {
                let table = &table.build()?;
                let cols: Vec<&[i64]> = columns
                    .iter()
                    .map(|&c| vals.tensors[c].as_slice())
                    .collect();
                let (proof, lc) = lookup::prove(table, &cols, &vals.mults[lookup_i], &mut t)?;
                for (&c, v) in columns.iter().zip(&lc.columns_at) {
                    claims.add(Poly::Tensor(c), lc.witness_point.clone(), *v);
                }
                claims.add(Poly::Mult(lookup_i), lc.table_point, lc.m_at);
                lookup_i += 1;
                ops.push(OpProof::Lookup(proof));
            }
        }
    }
    let (openings, weight_openings) =
        discharge_prover(prog, &committed, &vals, &claims, gens, &mut t)?;
    Ok((
        outputs,
        Proof {
            commitments,
            ops,
            openings,
            weight_openings,
        },
    ))
}

/// The size classes (variable counts) of a set of polynomials, ascending.
fn classes(polys: &[(Poly, usize)]) -> Vec<usize> {
    let mut v: Vec<usize> = polys.iter().map(|p| p.1).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The claims on polynomials of one class, with each claim's index within the class.
fn class_claims(polys: &[(Poly, usize)], vars: usize, claims: &Claims) -> (Vec<Poly>, Vec<Claim>) {
    let members: Vec<Poly> = polys.iter().filter(|p| p.1 == vars).map(|p| p.0).collect();
    let cl = claims
        .0
        .iter()
        .filter_map(|(p, point, v)| {
            members.iter().position(|m| m == p).map(|i| Claim {
                poly: i,
                point: point.clone(),
                value: *v,
            })
        })
        .collect();
    (members, cl)
}

fn weight_polys(prog: &Program) -> Vec<(Poly, usize)> {
    prog.ids(Role::Weight)
        .into_iter()
        .map(|i| (Poly::Tensor(i), prog.tensors[i].vars()))
        .collect()
}

fn discharge_prover(
    prog: &Program,
    committed: &[(Poly, usize)],
    vals: &Values,
    claims: &Claims,
    gens: &Generators,
    t: &mut Transcript,
) -> Result<(Vec<Opening>, Vec<Opening>), ZkError> {
    let values = |p: Poly| -> &[i64] {
        match p {
            Poly::Tensor(i) => &vals.tensors[i],
            Poly::Mult(l) => &vals.mults[l],
        }
    };
    let mut out = [Vec::new(), Vec::new()];
    for (slot, polys) in [committed.to_vec(), weight_polys(prog)].iter().enumerate() {
        for vars in classes(polys) {
            let (members, cl) = class_claims(polys, vars, claims);
            if cl.is_empty() {
                continue;
            }
            let refs: Vec<&[i64]> = members.iter().map(|&p| values(p)).collect();
            out[slot].push(commit::open(gens, &refs, vars, &cl, t)?);
        }
    }
    let [a, b] = out;
    Ok((a, b))
}

/// Checks `proof` that `key`'s program maps `inputs` to `outputs` (both padded), bound to
/// `binding`. Needs no weights: only the key.
pub fn verify(
    key: &ModelKey,
    inputs: &[Vec<i64>],
    outputs: &[Vec<i64>],
    binding: &[u8],
    proof: &Proof,
    gens: &Generators,
) -> Result<(), ZkError> {
    let prog = &key.program;
    let mut public: Vec<Option<&[i64]>> = vec![None; prog.tensors.len()];
    let (in_ids, out_ids) = (prog.ids(Role::Input), prog.ids(Role::Output));
    if inputs.len() != in_ids.len() || outputs.len() != out_ids.len() {
        return Err(ZkError::Verify("wrong number of public tensors".into()));
    }
    for (&i, v) in in_ids.iter().zip(inputs).chain(out_ids.iter().zip(outputs)) {
        if v.len() != prog.tensors[i].padded_len() {
            return Err(ZkError::Verify(format!(
                "{} has the wrong size",
                prog.tensors[i].name
            )));
        }
        public[i] = Some(v);
    }
    let mut t = Transcript::new(b"vouch.zk.tensor.v1");
    let publics: Vec<&[i64]> = in_ids
        .iter()
        .chain(&out_ids)
        .filter_map(|&i| public[i])
        .collect();
    bind_statement(&mut t, &key.digest(), binding, &publics);
    let committed = prog.committed();
    if proof.commitments.len() != committed.len() {
        return Err(ZkError::Verify("wrong number of commitments".into()));
    }
    for (c, (_, vars)) in proof.commitments.iter().zip(&committed) {
        if c.rows.len() != 1 << (vars - gens.cols_for(*vars)) {
            return Err(ZkError::Verify(
                "a commitment has the wrong number of rows".into(),
            ));
        }
        c.absorb(b"commitment", &mut t);
    }
    if proof.ops.len() != prog.ops.len() {
        return Err(ZkError::Verify("wrong number of operator proofs".into()));
    }
    let mut claims = Claims::default();
    let mut lookup_i = 0;
    for (op, op_proof) in prog.ops.iter().zip(&proof.ops) {
        match (op, op_proof) {
            (
                Op::Linear {
                    x,
                    w,
                    b,
                    y,
                    rem,
                    shift,
                },
                OpProof::Linear {
                    at_out,
                    sumcheck,
                    at_in,
                },
            ) => {
                let (m, k) = dims2(&prog.tensors[*x])?;
                let (_, n) = dims2(&prog.tensors[*w])?;
                let rj = t.challenges(b"linear j", log2(n))?;
                let ri = t.challenges(b"linear i", log2(m))?;
                let out_point: Vec<F> = rj.iter().chain(&ri).copied().collect();
                if b.is_none() && at_out[2] != F::ZERO {
                    return Err(ZkError::Verify("a bias where the operator has none".into()));
                }
                t.scalars(b"linear out", at_out);
                let [yv, rv, bv] = *at_out;
                let half = from_i64(1i64 << (shift - 1));
                let claim = F::from(1u64 << shift) * yv + rv - half - bv;
                let (rk, last) = sumcheck::verify(sumcheck, log2(k), 2, claim, &mut t)?;
                if at_in[0] * at_in[1] != last {
                    return Err(ZkError::Verify("a matrix product does not hold".into()));
                }
                t.scalars(b"linear in", at_in);
                claims.add(Poly::Tensor(*y), out_point.clone(), yv);
                claims.add(Poly::Tensor(*rem), out_point, rv);
                if let Some(b) = b {
                    claims.add(Poly::Tensor(*b), rj.clone(), bv);
                }
                claims.add(
                    Poly::Tensor(*x),
                    rk.iter().chain(&ri).copied().collect(),
                    at_in[0],
                );
                claims.add(
                    Poly::Tensor(*w),
                    rj.iter().chain(&rk).copied().collect(),
                    at_in[1],
                );
            }
            (Op::Lookup { columns, table }, OpProof::Lookup(lp)) => {
                let table = &table.build()?;
                let vars = prog.tensors[columns[0]].vars();
                if columns.iter().any(|&c| prog.tensors[c].vars() != vars) {
                    return Err(ZkError::Internal(
                        "lookup columns of different sizes".into(),
                    ));
                }
                let lc = lookup::verify(table, columns.len(), vars, lp, &mut t)?;
                for (&c, v) in columns.iter().zip(&lc.columns_at) {
                    claims.add(Poly::Tensor(c), lc.witness_point.clone(), *v);
                }
                claims.add(Poly::Mult(lookup_i), lc.table_point, lc.m_at);
                lookup_i += 1;
            }
            _ => {
                return Err(ZkError::Verify(
                    "an operator proof of the wrong kind".into(),
                ));
            }
        }
    }
    // Public tensors: the verifier evaluates them itself.
    for (p, point, v) in &claims.0 {
        if let Poly::Tensor(i) = p
            && let Some(vals) = public[*i]
        {
            {
                if evaluate_i64(vals, point) != *v {
                    return Err(ZkError::Verify(format!(
                        "{} is not what the proof says",
                        prog.tensors[*i].name
                    )));
                }
            }
        }
    }
    let weight_comms: Vec<(Poly, &Commitment)> = prog
        .ids(Role::Weight)
        .into_iter()
        .map(Poly::Tensor)
        .zip(&key.weights)
        .collect();
    let act_comms: Vec<(Poly, &Commitment)> = committed
        .iter()
        .map(|p| p.0)
        .zip(&proof.commitments)
        .collect();
    for (slot, (polys, comms, openings)) in [
        (committed.clone(), act_comms, &proof.openings),
        (weight_polys(prog), weight_comms, &proof.weight_openings),
    ]
    .iter()
    .enumerate()
    {
        let mut used = 0;
        for vars in classes(polys) {
            let (members, cl) = class_claims(polys, vars, &claims);
            if cl.is_empty() {
                continue;
            }
            let opening = openings
                .get(used)
                .ok_or_else(|| ZkError::Verify(format!("missing opening {slot}/{vars}")))?;
            used += 1;
            let cs: Vec<&Commitment> = members
                .iter()
                .map(|m| comms.iter().find(|(p, _)| p == m).map(|c| c.1))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    ZkError::Internal("a claimed polynomial has no commitment".into())
                })?;
            commit::verify(gens, &cs, vars, &cl, opening, &mut t)?;
        }
        if used != openings.len() {
            return Err(ZkError::Verify("extra openings".into()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// x[3,5] → Linear(w1, b1) → h[3,6] → f(h) by table → g → Linear(w2, b2) → y[3,2].
    pub(crate) fn ffn() -> (ModelKey, Vec<Vec<i64>>, Vec<Vec<i64>>, Generators) {
        let t = |name: &str, dims: &[usize], role| TensorSpec {
            name: name.into(),
            dims: dims.to_vec(),
            role,
        };
        let tensors = vec![
            t("x", &[3, 5], Role::Input),
            t("w1", &[5, 6], Role::Weight),
            t("b1", &[6], Role::Weight),
            t("h", &[3, 6], Role::Hidden),
            t("h.rem", &[3, 6], Role::Hidden),
            t("g", &[3, 6], Role::Hidden),
            t("w2", &[6, 2], Role::Weight),
            t("b2", &[2], Role::Weight),
            t("y", &[3, 2], Role::Output),
            t("y.rem", &[3, 2], Role::Hidden),
        ];
        let f = Table::Function {
            lo: -64,
            values: (-64..64).map(|x: i64| x.max(0) / 2 + x.abs() % 3).collect(),
        };
        let ops = vec![
            Op::Linear {
                x: 0,
                w: 1,
                b: Some(2),
                y: 3,
                rem: 4,
                shift: 4,
            },
            Op::Lookup {
                columns: vec![4],
                table: TableSpec::Range { bits: 4 },
            },
            Op::Lookup {
                columns: vec![3, 5],
                table: TableSpec::Explicit(f),
            },
            Op::Linear {
                x: 5,
                w: 6,
                b: Some(7),
                y: 8,
                rem: 9,
                shift: 3,
            },
            Op::Lookup {
                columns: vec![9],
                table: TableSpec::Range { bits: 3 },
            },
        ];
        let program = Program { tensors, ops };
        let raw = |n: usize, s: i64| -> Vec<i64> {
            (0..n as i64).map(|i| (i * 37 + s) % 11 - 5).collect()
        };
        let pad = |i: usize, v: Vec<i64>| program.tensors[i].pad(&v).unwrap();
        let weights = vec![
            pad(1, raw(30, 1)),
            pad(2, raw(6, 2)),
            pad(6, raw(12, 3)),
            pad(7, raw(2, 4)),
        ];
        let inputs = vec![pad(0, raw(15, 5))];
        let gens = Generators::new(MAX_COL_VARS);
        let key = ModelKey::commit(program, &weights, &gens).unwrap();
        (key, weights, inputs, gens)
    }

    #[test]
    fn a_two_layer_network_proves_and_verifies_from_the_key_alone() {
        let (key, weights, inputs, gens) = ffn();
        let (outputs, proof) = prove(&key, &weights, &inputs, b"receipt A", &gens).unwrap();
        verify(&key, &inputs, &outputs, b"receipt A", &proof, &gens).unwrap();
        // Another receipt, input or output does not verify.
        assert!(verify(&key, &inputs, &outputs, b"receipt B", &proof, &gens).is_err());
        let mut other_in = inputs.clone();
        other_in[0][1] += 1;
        assert!(verify(&key, &other_in, &outputs, b"receipt A", &proof, &gens).is_err());
        let mut other_out = outputs.clone();
        other_out[0][0] += 1;
        assert!(verify(&key, &inputs, &other_out, b"receipt A", &proof, &gens).is_err());
        // Other weights (a different key) do not verify this proof.
        let mut w2 = weights.clone();
        w2[0][0] += 1;
        let key2 = ModelKey::commit(key.program.clone(), &w2, &gens).unwrap();
        assert!(verify(&key2, &inputs, &outputs, b"receipt A", &proof, &gens).is_err());
        // Every byte of the proof matters.
        let bytes = bincode::serialize(&proof).unwrap();
        for i in (0..bytes.len()).step_by(bytes.len() / 97 + 1) {
            let mut b = bytes.clone();
            b[i] ^= 1;
            if let Ok(p) = bincode::deserialize::<Proof>(&b) {
                assert!(
                    verify(&key, &inputs, &outputs, b"receipt A", &p, &gens).is_err(),
                    "byte {i}"
                );
            }
        }
    }
}
