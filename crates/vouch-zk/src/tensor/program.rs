//! A tensor program — what a model becomes for the tensor proofs — its model key (the program and
//! the weights' commitments: all a verifier needs), the prover and the verifier.
//!
//! Tensors have a role: `Input` and `Output` are the public statement, `Weight`s are committed
//! once in the [`ModelKey`], `Hidden` tensors are committed by each proof. Every tensor is stored
//! with each axis padded to a power of two (row-major), and every relation holds on the whole
//! padded domain, so padding is as constrained as data.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use super::commit::{self, Claim, Commitment, Generators, Opening};
use super::field::{F, evaluate_i64};
use super::lookup::{self, LookupProof, TableSpec};
use super::relation::{self, Relation, RelationProof};
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
    /// An identity between tensors, checked by sumcheck ([`Relation`]).
    Relation(Relation),
    /// Every row of `columns` is in `table`.
    Lookup {
        columns: Vec<usize>,
        table: TableSpec,
    },
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Program {
    pub tensors: Vec<TensorSpec>,
    pub ops: Vec<Op>,
}

/// What a verifier needs about a model: its program and its weights' commitments.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelKey {
    pub program: Program,
    /// One per size class of weights (ascending): the class's weights stacked in tensor order.
    pub weights: Vec<Commitment>,
}

impl ModelKey {
    /// Commits to the weights (the registration-time work) and returns the key. `weights` are
    /// the `Weight` tensors' padded values in tensor order.
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
        let polys = weight_polys(&program);
        let comms = classes(&polys)
            .into_iter()
            .map(|(vars, members)| {
                let refs: Vec<&[i64]> = members
                    .iter()
                    .map(|m| match m {
                        Poly::Tensor(i) => ids
                            .iter()
                            .position(|x| x == i)
                            .map(|k| weights[k].as_slice())
                            .unwrap_or(&[]),
                        Poly::Mult(_) => &[],
                    })
                    .collect();
                commit::commit_class(gens, &refs, vars)
            })
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

    /// The committed polynomials of a proof: hidden tensors, then each lookup's multiplicities;
    /// with their variable counts.
    fn committed(&self) -> Vec<(Poly, usize)> {
        let mut out: Vec<(Poly, usize)> = self
            .ids(Role::Hidden)
            .into_iter()
            .map(|i| (Poly::Tensor(i), self.tensors[i].vars()))
            .collect();
        for (g, (table, _)) in self.lookup_plan().iter().enumerate() {
            out.push((Poly::Mult(g), table.vars()));
        }
        out
    }

    /// The lookups batched: per distinct table (in order of first use), its lookups grouped by
    /// column size (ascending), as (variables, lookup ops).
    pub fn lookup_plan(&self) -> Vec<LookupBatch> {
        let mut plan: Vec<LookupBatch> = Vec::new();
        for (i, op) in self.ops.iter().enumerate() {
            if let Op::Lookup { columns, table } = op {
                let vars = columns
                    .first()
                    .map(|&c| self.tensors[c].vars())
                    .unwrap_or(0);
                let g = match plan.iter().position(|(t, _)| t == table) {
                    Some(g) => g,
                    None => {
                        plan.push((table.clone(), vec![]));
                        plan.len() - 1
                    }
                };
                match plan[g].1.iter().position(|(v, _)| *v == vars) {
                    Some(s) => plan[g].1[s].1.push(i),
                    None => plan[g].1.push((vars, vec![i])),
                }
            }
        }
        for (_, groups) in &mut plan {
            groups.sort_by_key(|(v, _)| *v);
        }
        plan
    }

    fn lookup_columns(&self, op: usize) -> &[usize] {
        match &self.ops[op] {
            Op::Lookup { columns, .. } => columns,
            Op::Relation(_) => &[],
        }
    }
}

/// One table's lookups: the table, and its lookup ops grouped by column size (variables, ops).
pub type LookupBatch = (TableSpec, Vec<(usize, Vec<usize>)>);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Poly {
    Tensor(usize),
    Mult(usize),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Proof {
    /// One per size class of committed polynomials (hidden tensors and each table's
    /// multiplicities), ascending.
    pub commitments: Vec<Commitment>,
    /// One per relation, in program order.
    pub relations: Vec<RelationProof>,
    /// One per table, in [`Program::lookup_plan`] order.
    pub lookups: Vec<LookupProof>,
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

/// Every tensor's padded values (inputs, weights and everything computed) and each lookup's
/// multiplicities: what the prover proves about.
pub struct Values {
    pub tensors: Vec<Vec<i64>>,
    pub mults: Vec<Vec<i64>>,
}

impl Values {
    /// Computes the multiplicities of `program`'s lookups over `tensors`.
    pub fn new(program: &Program, tensors: Vec<Vec<i64>>) -> Result<Self, ZkError> {
        if tensors.len() != program.tensors.len()
            || tensors
                .iter()
                .zip(&program.tensors)
                .any(|(v, t)| v.len() != t.padded_len())
        {
            return Err(ZkError::Internal(
                "values do not match the program's tensors".into(),
            ));
        }
        let mut mults = Vec::new();
        for (spec, groups) in program.lookup_plan() {
            let table = spec.build()?;
            let mut m = vec![0i64; 1 << table.vars()];
            for &op in groups.iter().flat_map(|(_, ops)| ops) {
                let columns = program.lookup_columns(op);
                let cols: Vec<&[i64]> = columns.iter().map(|&c| tensors[c].as_slice()).collect();
                let part = lookup::multiplicities(&table, &cols).map_err(|e| match e {
                    ZkError::OutOfRange(msg) => {
                        ZkError::OutOfRange(format!("{}: {msg}", program.tensors[columns[0]].name))
                    }
                    e => e,
                })?;
                for (x, y) in m.iter_mut().zip(part) {
                    *x += y;
                }
            }
            mults.push(m);
        }
        Ok(Values { tensors, mults })
    }
}

/// Proves that `key`'s program holds of `vals` (its public tensors are the statement), bound to
/// `binding` (the receipt).
pub fn prove(
    key: &ModelKey,
    vals: &Values,
    binding: &[u8],
    gens: &Generators,
) -> Result<Proof, ZkError> {
    let prog = &key.program;
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
    let commitments = classes(&committed)
        .par_iter()
        .map(|(vars, members)| {
            let refs: Vec<&[i64]> = members.iter().map(|&p| poly_values(p)).collect();
            commit::commit_class(gens, &refs, *vars)
        })
        .collect::<Result<Vec<_>, _>>()?;
    // The architecture invariant (ARCHITECTURE.md): every committed value is fixed before the
    // first challenge, so no prover choice can depend on one.
    if t.drawn() != 0 {
        return Err(ZkError::Internal(
            "a challenge was drawn before the commitments".into(),
        ));
    }
    for c in &commitments {
        c.absorb(b"commitment", &mut t);
    }
    let mut claims = Claims::default();
    let mut relations = Vec::new();
    let tensor_values = |i: usize| -> &[i64] { &vals.tensors[i] };
    for op in &prog.ops {
        if let Op::Relation(rel) = op {
            let (proof, cl) = relation::prove(rel, &tensor_values, &mut t)?;
            for (i, point, v) in cl {
                claims.add(Poly::Tensor(i), point, v);
            }
            relations.push(proof);
        }
    }
    let ch = lookup::Challenges::draw(&mut t)?;
    let mut lookups = Vec::new();
    for (g, (spec, groups)) in prog.lookup_plan().iter().enumerate() {
        let table = spec.build()?;
        let cols: Vec<Vec<Vec<&[i64]>>> = groups
            .iter()
            .map(|(_, ops)| {
                ops.iter()
                    .map(|&op| {
                        prog.lookup_columns(op)
                            .iter()
                            .map(|&c| vals.tensors[c].as_slice())
                            .collect()
                    })
                    .collect()
            })
            .collect();
        let (proof, lc) = lookup::prove(&table, &cols, &vals.mults[g], ch, &mut t)?;
        add_lookup_claims(prog, groups, &lc, g, &mut claims);
        lookups.push(proof);
    }
    let (openings, weight_openings) =
        discharge_prover(prog, &committed, vals, &claims, gens, &mut t)?;
    Ok(Proof {
        commitments,
        relations,
        lookups,
        openings,
        weight_openings,
    })
}

/// The size classes of a set of polynomials, ascending by variable count, each with its
/// members in order: each class is committed and opened as one stacked polynomial.
fn classes(polys: &[(Poly, usize)]) -> Vec<(usize, Vec<Poly>)> {
    let mut vars: Vec<usize> = polys.iter().map(|p| p.1).collect();
    vars.sort_unstable();
    vars.dedup();
    vars.into_iter()
        .map(|v| (v, polys.iter().filter(|p| p.1 == v).map(|p| p.0).collect()))
        .collect()
}

/// The claims on a class's members, each naming its member's index.
fn class_claims(members: &[Poly], claims: &Claims) -> Vec<Claim> {
    claims
        .0
        .iter()
        .filter_map(|(p, point, v)| {
            members.iter().position(|m| m == p).map(|i| Claim {
                poly: i,
                point: point.clone(),
                value: *v,
            })
        })
        .collect()
}

/// The claims a batch of lookups leaves on its columns and its table's multiplicities.
fn add_lookup_claims(
    prog: &Program,
    groups: &[(usize, Vec<usize>)],
    lc: &lookup::LookupClaims,
    g: usize,
    claims: &mut Claims,
) {
    for ((_, ops), (point, at)) in groups.iter().zip(&lc.groups) {
        for (&op, cols_at) in ops.iter().zip(at) {
            for (&c, v) in prog.lookup_columns(op).iter().zip(cols_at) {
                claims.add(Poly::Tensor(c), point.clone(), *v);
            }
        }
    }
    claims.add(Poly::Mult(g), lc.table_point.clone(), lc.m_at);
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
        for (vars, members) in classes(polys) {
            let cl = class_claims(&members, claims);
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
    let act_classes = classes(&committed);
    if proof.commitments.len() != act_classes.len() {
        return Err(ZkError::Verify("wrong number of commitments".into()));
    }
    for c in &proof.commitments {
        c.absorb(b"commitment", &mut t);
    }
    let rels: Vec<&Relation> = prog
        .ops
        .iter()
        .filter_map(|op| match op {
            Op::Relation(r) => Some(r),
            Op::Lookup { .. } => None,
        })
        .collect();
    if proof.relations.len() != rels.len() {
        return Err(ZkError::Verify("wrong number of relation proofs".into()));
    }
    let mut claims = Claims::default();
    for (rel, rp) in rels.into_iter().zip(&proof.relations) {
        for (i, point, v) in relation::verify(rel, rp, &mut t)? {
            claims.add(Poly::Tensor(i), point, v);
        }
    }
    let ch = lookup::Challenges::draw(&mut t)?;
    let plan = prog.lookup_plan();
    if proof.lookups.len() != plan.len() {
        return Err(ZkError::Verify("wrong number of lookup proofs".into()));
    }
    for (g, ((spec, groups), lp)) in plan.iter().zip(&proof.lookups).enumerate() {
        let table = spec.build()?;
        for (vars, ops) in groups {
            if ops
                .iter()
                .flat_map(|&op| prog.lookup_columns(op))
                .any(|&c| prog.tensors[c].vars() != *vars)
                || ops
                    .iter()
                    .any(|&op| prog.lookup_columns(op).len() != table.columns())
            {
                return Err(ZkError::Internal(
                    "lookup columns of different sizes".into(),
                ));
            }
        }
        let shape: Vec<(usize, usize)> = groups.iter().map(|(v, ops)| (*v, ops.len())).collect();
        let lc = lookup::verify(&table, &shape, lp, ch, &mut t)?;
        add_lookup_claims(prog, groups, &lc, g, &mut claims);
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
    let weight_classes = classes(&weight_polys(prog));
    if key.weights.len() != weight_classes.len() {
        return Err(ZkError::Verify(
            "the key has the wrong number of weight commitments".into(),
        ));
    }
    for (class_list, comms, openings) in [
        (&act_classes, &proof.commitments, &proof.openings),
        (&weight_classes, &key.weights, &proof.weight_openings),
    ] {
        if openings.len() != class_list.len() {
            return Err(ZkError::Verify("wrong number of openings".into()));
        }
        for (((vars, members), comm), opening) in class_list.iter().zip(comms).zip(openings) {
            let cl = class_claims(members, &claims);
            commit::verify(gens, comm, members.len(), *vars, &cl, opening, &mut t)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::builder::Builder;
    use crate::tensor::lookup::Table;

    /// x[3,5] → Linear(w1, b1) → h[3,6] → f(h) by table → g → Linear(w2, b2) → y[3,2].
    fn ffn(x: &[i64]) -> (Program, Vec<Vec<i64>>, usize) {
        let raw = |n: usize, s: i64| -> Vec<i64> {
            (0..n as i64).map(|i| (i * 37 + s) % 11 - 5).collect()
        };
        let mut b = Builder::new();
        let xi = b.tensor_real("x", &[3, 5], Role::Input, x).unwrap();
        let w1 = b
            .tensor_real("w1", &[5, 6], Role::Weight, &raw(30, 1))
            .unwrap();
        let b1 = b.tensor_real("b1", &[6], Role::Weight, &raw(6, 2)).unwrap();
        let w2 = b
            .tensor_real("w2", &[6, 2], Role::Weight, &raw(12, 3))
            .unwrap();
        let b2 = b.tensor_real("b2", &[2], Role::Weight, &raw(2, 4)).unwrap();
        let h = b.linear("h", xi, w1, Some(b1), 4).unwrap();
        let f = Table::Function {
            lo: -64,
            values: (-64..64).map(|x: i64| x.max(0) / 2 + x.abs() % 3).collect(),
        };
        let g = b.function("g", h, TableSpec::Explicit(f)).unwrap();
        let y = b.linear("y", g, w2, Some(b2), 3).unwrap();
        b.set_role(y, Role::Output);
        let (p, v) = b.finish();
        (p, v, y)
    }

    fn weights(p: &Program, v: &[Vec<i64>]) -> Vec<Vec<i64>> {
        p.ids(Role::Weight).iter().map(|&i| v[i].clone()).collect()
    }

    #[test]
    fn relations_hold_of_the_values_the_builder_computes() {
        let x: Vec<i64> = (0..15).map(|i| (i * 5) % 9 - 4).collect();
        let (p, v, _) = ffn(&x);
        for op in &p.ops {
            if let Op::Relation(r) = op {
                assert!(r.holds(&|i| v[i].as_slice()));
            }
        }
        // A changed value breaks its relation.
        let mut bad = v.clone();
        let h = p.tensors.iter().position(|t| t.name == "h").unwrap();
        bad[h][0] += 1;
        assert!(
            p.ops
                .iter()
                .any(|op| matches!(op, Op::Relation(r) if !r.holds(&|i| bad[i].as_slice())))
        );
    }

    #[test]
    fn a_two_layer_network_proves_and_verifies_from_the_key_alone() {
        let x: Vec<i64> = (0..15).map(|i| (i * 37 + 5) % 11 - 5).collect();
        let (program, v, y) = ffn(&x);
        let gens = Generators::new(MAX_COL_VARS);
        let key = ModelKey::commit(program.clone(), &weights(&program, &v), &gens).unwrap();
        let inputs = vec![v[0].clone()];
        let outputs = vec![v[y].clone()];
        let vals = Values::new(&program, v.clone()).unwrap();
        let proof = prove(&key, &vals, b"receipt A", &gens).unwrap();
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
        let mut w2 = weights(&program, &v);
        w2[0][0] += 1;
        let key2 = ModelKey::commit(program.clone(), &w2, &gens).unwrap();
        assert!(verify(&key2, &inputs, &outputs, b"receipt A", &proof, &gens).is_err());
        // A wrong hidden value (its relation fails) gives a proof that does not verify.
        let mut bad = v.clone();
        let h = program.tensors.iter().position(|t| t.name == "h").unwrap();
        bad[h][1] += 1;
        if let Ok(vals) = Values::new(&program, bad) {
            let p = prove(&key, &vals, b"receipt A", &gens).unwrap();
            assert!(verify(&key, &inputs, &outputs, b"receipt A", &p, &gens).is_err());
        }
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
