//! Builds tensor programs and their values together: every gadget computes its outputs and
//! records the relations and lookups that constrain them in the same call, so the values cannot
//! drift from the constraints (as `circuit.rs` does for the R1CS tier). The program's shape never
//! depends on the values: building with any input gives the same program.

use rayon::prelude::*;

use super::lookup::{Table, TableSpec};
use super::program::{Op, Program, Role, TensorSpec};
use super::relation::{Operand, Relation};
use crate::error::ZkError;

/// Widest range table; wider values are split into chunks of this many bits.
pub const CHUNK_BITS: usize = 16;

#[derive(Default)]
pub struct Builder {
    pub program: Program,
    pub values: Vec<Vec<i64>>,
}

fn log2(n: usize) -> usize {
    n.trailing_zeros() as usize
}

fn op(tensor: usize, axes: &[usize]) -> Operand {
    Operand {
        tensor,
        axes: axes.to_vec(),
    }
}

impl Builder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn padded(&self, t: usize) -> Vec<usize> {
        self.program.tensors[t].padded()
    }

    /// A tensor from its padded values.
    pub fn tensor(
        &mut self,
        name: &str,
        dims: &[usize],
        role: Role,
        padded: Vec<i64>,
    ) -> Result<usize, ZkError> {
        let spec = TensorSpec {
            name: name.into(),
            dims: dims.to_vec(),
            role,
        };
        if padded.len() != spec.padded_len() {
            return Err(ZkError::Internal(format!(
                "{name}: {} values for a padded size of {}",
                padded.len(),
                spec.padded_len()
            )));
        }
        self.program.tensors.push(spec);
        self.values.push(padded);
        Ok(self.program.tensors.len() - 1)
    }

    /// A tensor from row-major values of its real shape.
    pub fn tensor_real(
        &mut self,
        name: &str,
        dims: &[usize],
        role: Role,
        values: &[i64],
    ) -> Result<usize, ZkError> {
        let spec = TensorSpec {
            name: name.into(),
            dims: dims.to_vec(),
            role,
        };
        let padded = spec.pad(values)?;
        self.tensor(name, dims, role, padded)
    }

    pub fn set_role(&mut self, t: usize, role: Role) {
        self.program.tensors[t].role = role;
    }

    pub fn relation(&mut self, rel: Relation) -> Result<(), ZkError> {
        let dims = |t: usize| self.program.tensors[t].padded();
        rel.check_shapes(&dims)?;
        self.program.ops.push(Op::Relation(rel));
        Ok(())
    }

    pub fn lookup(&mut self, columns: Vec<usize>, table: TableSpec) {
        self.program.ops.push(Op::Lookup { columns, table });
    }

    /// Checks `0 ≤ t < 2^bits`: one lookup up to [`CHUNK_BITS`], else chunks of that width
    /// (committed) that recombine to `t` by a relation.
    pub fn range_check(&mut self, t: usize, bits: usize) -> Result<(), ZkError> {
        if bits <= CHUNK_BITS {
            self.lookup(vec![t], TableSpec::Range { bits });
            return Ok(());
        }
        let name = self.program.tensors[t].name.clone();
        let dims = self.program.tensors[t].dims.clone();
        let pad = self.padded(t);
        let n = bits.div_ceil(CHUNK_BITS);
        let vals = self.values[t].clone();
        if vals
            .iter()
            .any(|&v| v < 0 || (bits < 63 && v >= 1i64 << bits))
        {
            return Err(ZkError::OutOfRange(format!("{name} leaves [0, 2^{bits})")));
        }
        let axes: Vec<usize> = (0..pad.len()).collect();
        let mut point_terms = vec![(-1, op(t, &axes))];
        for c in 0..n {
            let width = (bits - c * CHUNK_BITS).min(CHUNK_BITS);
            let chunk: Vec<i64> = vals
                .iter()
                .map(|&v| (v >> (c * CHUNK_BITS)) & ((1 << width) - 1))
                .collect();
            let id = self.tensor(&format!("{name}.chunk{c}"), &dims, Role::Hidden, chunk)?;
            self.lookup(vec![id], TableSpec::Range { bits: width });
            point_terms.push((1i64 << (c * CHUNK_BITS), op(id, &axes)));
        }
        self.relation(Relation {
            axes: pad.iter().map(|&d| log2(d)).collect(),
            free: axes.clone(),
            sum_terms: vec![],
            point_terms,
            constant: 0,
        })
    }

    /// `y = ⌊(x·w + b + 2^(shift−1)) / 2^shift⌋` for `x: [m, k]`, `w: [k, n]`, `b: [n]`,
    /// remainder range-checked.
    pub fn linear(
        &mut self,
        name: &str,
        x: usize,
        w: usize,
        b: Option<usize>,
        shift: u32,
    ) -> Result<usize, ZkError> {
        let (xd, wd) = (
            self.program.tensors[x].dims.clone(),
            self.program.tensors[w].dims.clone(),
        );
        let (xp, wp) = (self.padded(x), self.padded(w));
        let ([m], [k, n], [mp, kp], [kp2, np]) = (
            &xd[..xd.len() - 1],
            wd.as_slice(),
            xp.as_slice(),
            wp.as_slice(),
        ) else {
            return Err(ZkError::Internal(format!(
                "{name}: linear wants x [m, k] and w [k, n]"
            )));
        };
        if kp != kp2 || xd[1] != *k {
            return Err(ZkError::Internal(format!(
                "{name}: inner dimensions differ"
            )));
        }
        let (m, n, mp, kp, np) = (*m, *n, *mp, *kp, *np);
        let half = 1i128 << (shift - 1);
        let (xs, ws) = (&self.values[x], &self.values[w]);
        let bs = b.map(|b| &self.values[b]);
        let rows: Vec<(Vec<i64>, Vec<i64>)> = (0..mp)
            .into_par_iter()
            .map(|i| {
                let mut acc: Vec<i128> = (0..np)
                    .map(|j| bs.map(|b| b[j] as i128).unwrap_or(0) + half)
                    .collect();
                for kk in 0..kp {
                    let a = xs[i * kp + kk] as i128;
                    if a != 0 {
                        for (j, s) in acc.iter_mut().enumerate() {
                            *s += a * ws[kk * np + j] as i128;
                        }
                    }
                }
                let q = acc.iter().map(|&z| (z >> shift) as i64).collect();
                let r = acc
                    .iter()
                    .map(|&z| (z & ((1i128 << shift) - 1)) as i64)
                    .collect();
                (q, r)
            })
            .collect();
        let (y, rem): (Vec<Vec<i64>>, Vec<Vec<i64>>) = rows.into_iter().unzip();
        let y = self.tensor(name, &[m, n], Role::Hidden, y.concat())?;
        let rem = self.tensor(&format!("{name}.rem"), &[m, n], Role::Hidden, rem.concat())?;
        let mut point_terms = vec![(-(1i64 << shift), op(y, &[0, 2])), (-1, op(rem, &[0, 2]))];
        if let Some(b) = b {
            point_terms.push((1, op(b, &[2])));
        }
        self.relation(Relation {
            axes: vec![log2(mp), log2(kp), log2(np)],
            free: vec![0, 2],
            sum_terms: vec![(1, vec![op(x, &[0, 1]), op(w, &[1, 2])])],
            point_terms,
            constant: 1i64 << (shift - 1),
        })?;
        self.range_check(rem, shift as usize)?;
        Ok(y)
    }

    /// `y = f(x)` elementwise by a function table (every entry, padding included, is looked up).
    pub fn function(&mut self, name: &str, x: usize, spec: TableSpec) -> Result<usize, ZkError> {
        let table = spec.build()?;
        let Table::Function { lo, values } = &table else {
            return Err(ZkError::Internal(format!("{name}: not a function table")));
        };
        let xs = &self.values[x];
        let ys = xs
            .iter()
            .map(|&v| {
                usize::try_from(v - lo)
                    .ok()
                    .and_then(|i| values.get(i).copied())
                    .ok_or_else(|| {
                        ZkError::OutOfRange(format!(
                            "{} = {v} is outside the {name} table",
                            self.program.tensors[x].name
                        ))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let dims = self.program.tensors[x].dims.clone();
        let y = self.tensor(name, &dims, Role::Hidden, ys)?;
        self.lookup(vec![x, y], spec);
        Ok(y)
    }

    /// The weights' values, in the order [`ModelKey::commit`](super::program::ModelKey::commit) takes them.
    pub fn weights(&self) -> Vec<Vec<i64>> {
        self.program
            .ids(Role::Weight)
            .iter()
            .map(|&i| self.values[i].clone())
            .collect()
    }

    pub fn finish(self) -> (Program, Vec<Vec<i64>>) {
        (self.program, self.values)
    }
}
