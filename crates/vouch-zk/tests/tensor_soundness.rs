//! Soundness of the tensor gadgets (issue 18, item 5): a tiny transformer that uses every gadget
//! of `tensor::builder`, with every hidden and public entry perturbed in turn (each must break a
//! relation or a lookup, as `circuit::tests::every_variable_and_public_value_is_constrained`
//! requires of the R1CS tier), and proven, verified from the serialised key alone, refused for
//! another input and for every flipped proof byte (a sample of ~2 600).
//!
//! A single +1 cannot move a quotient by a fraction: `no_field_fraction_witness_proves_another_output`
//! builds a witness of non-integer field elements that, before quotients were pinned to the
//! integers (`Builder::pin`), every relation and lookup accepted while proving another output.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::HashMap;

use ff::{Field, PrimeField};
use rayon::prelude::*;

use vouch_zk::tensor::builder::{Builder, Fixed, Heads};
use vouch_zk::tensor::commit::Generators;
use vouch_zk::tensor::field::{F, from_i64};
use vouch_zk::tensor::lookup::{Table, TableSpec};
use vouch_zk::tensor::program::{self, MAX_COL_VARS, ModelKey, Op, Program, Proof, Role, Values};
use vouch_zk::tensor::relation::{Operand, Relation};

/// Tokens (padded to 8), vocabulary (padded to 16), hidden width, feed-forward width (padded to
/// 16): every axis but the hidden one has padding, so padding is perturbed too.
const SEQ: usize = 6;
const VOCAB: usize = 10;
const HIDDEN: usize = 8;
const FFN: usize = 12;
const HEADS: Heads = Heads { count: 2, dim: 4 };

/// Small tables: every lookup stays at most 2^12 rows.
fn fixed() -> Fixed {
    Fixed {
        a_bits: 8,
        w_bits: 8,
        g_bits: 8,
        isd_bits: 14,
        isd_range_bits: 24,
        slack_bits: 40,
        gelu_in_bits: 6,
        gelu_domain_bits: 12,
        exp_out_bits: 10,
        exp_domain_bits: 12,
        sat_bits: 4,
        quotient_bits: 24,
    }
}

/// Deterministic pseudo-random integers in `[centre − r, centre + r]` (SplitMix64).
fn noise(n: usize, seed: u64, centre: i64, r: i64) -> Vec<i64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            centre + (z % (2 * r as u64 + 1)) as i64 - r
        })
        .collect()
}

struct Tiny {
    program: Program,
    values: Vec<Vec<i64>>,
    weights: Vec<Vec<i64>>,
    /// The public tensors: inputs (one-hot ids, mask, count) and the output, padded.
    inputs: Vec<Vec<i64>>,
    outputs: Vec<Vec<i64>>,
}

/// Embedding → LayerNorm → attention block (q, k, v, out projections, residual, LayerNorm) →
/// feed-forward block (GELU, residual, LayerNorm) → masked mean pooling → L2 normalisation, with
/// the pooled vector's squared norm range-checked at 28 bits (two chunks). `ids` beyond the
/// mask's ones are padding tokens (id 0, mask 0), as the MiniLM program pads.
fn tiny(ids: &[usize], real: usize) -> Tiny {
    assert!(ids.len() == SEQ && (1..=SEQ).contains(&real));
    let mut onehot = vec![0i64; SEQ * VOCAB];
    for (i, &t) in ids.iter().enumerate() {
        onehot[i * VOCAB + if i < real { t } else { 0 }] = 1;
    }
    let mask: Vec<i64> = (0..SEQ).map(|i| i64::from(i < real)).collect();
    let mut n = Net {
        b: Builder::new(),
        seed: 0,
        p: fixed(),
    };
    let onehot =
        n.b.tensor_real("ids.onehot", &[SEQ, VOCAB], Role::Input, &onehot)
            .unwrap();
    let mask = n.b.tensor_real("mask", &[SEQ], Role::Input, &mask).unwrap();
    let count =
        n.b.tensor_real("count", &[], Role::Input, &[real as i64])
            .unwrap();
    let word = n.weight("word", &[VOCAB, HIDDEN], 0, 256);
    let pos = n.weight("position", &[SEQ, HIDDEN], 0, 64);
    let e = n.b.embedding("embeddings", onehot, word, pos).unwrap();
    let h0 = n.layer_norm("ln0", e);
    // q carries the 1/√(head dim) = 1/2 of the scores.
    let q = n.linear("q", h0, HIDDEN, HIDDEN, 64);
    let k = n.linear("k", h0, HIDDEN, HIDDEN, 128);
    let v = n.linear("v", h0, HIDDEN, HIDDEN, 128);
    let p = n.p.clone();
    let ctx = n.b.attention("attn", [q, k, v], mask, HEADS, &p).unwrap();
    let ao = n.linear("attn_out", ctx, HIDDEN, HIDDEN, 128);
    let r1 = n.b.add("attn_res", ao, h0).unwrap();
    let h1 = n.layer_norm("ln1", r1);
    let f1 = n.linear("ff1", h1, HIDDEN, FFN, 128);
    let g = n.b.gelu("gelu", f1, &p).unwrap();
    let f2 = n.linear("ff2", g, FFN, HIDDEN, 128);
    let r2 = n.b.add("ff_res", f2, h1).unwrap();
    let h2 = n.layer_norm("ln2", r2);
    let pooled = n.b.mean_pool("pool", h2, mask, count).unwrap();
    let out = n.b.l2_normalize("embedding", pooled, &p).unwrap();
    let mut b = n.b;
    b.set_role(out, Role::Output);
    let sumsq = b
        .program
        .tensors
        .iter()
        .position(|t| t.name == "embedding.sumsq")
        .unwrap();
    b.range_check(sumsq, 28).unwrap();
    let weights = b.weights();
    let (program, values) = b.finish();
    let public = |role| -> Vec<Vec<i64>> {
        program
            .ids(role)
            .iter()
            .map(|&i| values[i].clone())
            .collect()
    };
    let (inputs, outputs) = (public(Role::Input), public(Role::Output));
    Tiny {
        program,
        values,
        weights,
        inputs,
        outputs,
    }
}

/// A builder with deterministic weights: activations at 2^8, weights at 2^8, biases at 2^16,
/// LayerNorm scales at 2^8.
struct Net {
    b: Builder,
    seed: u64,
    p: Fixed,
}

impl Net {
    fn weight(&mut self, name: &str, dims: &[usize], centre: i64, r: i64) -> usize {
        self.seed += 1;
        let n = dims.iter().product();
        self.b
            .tensor_real(name, dims, Role::Weight, &noise(n, self.seed, centre, r))
            .unwrap()
    }

    fn layer_norm(&mut self, name: &str, x: usize) -> usize {
        let g = self.weight(&format!("{name}.gamma"), &[HIDDEN], 256, 48);
        let be = self.weight(&format!("{name}.beta"), &[HIDDEN], 0, 32);
        let p = self.p.clone();
        self.b.layer_norm(name, x, g, be, &p).unwrap()
    }

    fn linear(&mut self, name: &str, x: usize, k: usize, n: usize, r: i64) -> usize {
        let (a, w) = (self.p.a_bits, self.p.w_bits);
        let wt = self.weight(&format!("{name}.weight"), &[k, n], 0, r);
        let bt = self.weight(&format!("{name}.bias"), &[n], 0, 1 << (a + w - 3));
        self.b.linear(name, x, wt, Some(bt), w).unwrap()
    }
}

const IDS: [usize; SEQ] = [3, 7, 1, 9, 4, 2];
const REAL: usize = 4;

/// Proof bytes flipped (sampled over the whole proof).
const FLIPS: usize = 2048;

/// Which ops read each tensor, and each lookup's table.
struct Checker<'p> {
    program: &'p Program,
    readers: Vec<Vec<usize>>,
    tables: HashMap<usize, Table>,
}

impl<'p> Checker<'p> {
    fn new(program: &'p Program) -> Self {
        let mut readers = vec![vec![]; program.tensors.len()];
        let mut tables = HashMap::new();
        let mut built: Vec<(TableSpec, Table)> = vec![];
        for (k, op) in program.ops.iter().enumerate() {
            let mut read = |t: usize| {
                if readers[t].last() != Some(&k) {
                    readers[t].push(k);
                }
            };
            match op {
                Op::Relation(rel) => {
                    for o in rel.sum_terms.iter().flat_map(|t| t.1.iter()) {
                        read(o.tensor);
                    }
                    for (_, o) in &rel.point_terms {
                        read(o.tensor);
                    }
                }
                Op::Lookup { columns, table } => {
                    for &c in columns {
                        read(c);
                    }
                    let t = match built.iter().find(|(s, _)| s == table) {
                        Some((_, t)) => t.clone(),
                        None => {
                            let t = table.build().unwrap();
                            built.push((table.clone(), t.clone()));
                            t
                        }
                    };
                    tables.insert(k, t);
                }
            }
        }
        Checker {
            program,
            readers,
            tables,
        }
    }

    /// The first op among those reading `tensor` that `values` violate.
    fn violated(&self, values: &[Vec<i64>], tensor: usize) -> Option<usize> {
        self.readers[tensor]
            .iter()
            .copied()
            .find(|&k| !self.holds(values, k))
    }

    fn holds(&self, values: &[Vec<i64>], k: usize) -> bool {
        match &self.program.ops[k] {
            Op::Relation(rel) => rel.holds(&|i| values[i].as_slice()),
            Op::Lookup { columns, .. } => {
                let table = &self.tables[&k];
                let n = values[columns[0]].len();
                (0..n).all(|x| {
                    let row: Vec<i64> = columns.iter().map(|&c| values[c][x]).collect();
                    table.index(&row).is_some()
                })
            }
        }
    }
}

#[test]
fn every_hidden_and_public_entry_of_every_gadget_is_constrained() {
    let t = tiny(&IDS, REAL);
    let prog = &t.program;
    let checker = Checker::new(prog);
    let mut values = t.values.clone();
    // The honest values satisfy every relation and lookup.
    for k in 0..prog.ops.len() {
        assert!(checker.holds(&values, k), "op {k} fails on honest values");
    }
    // Every gadget left its mark (a tensor name of each kind).
    for part in [
        "embeddings",
        "ln0.isd.chunk0",
        "q.rem",
        "attn.argmax",
        "attn.shifted.high",
        "attn.probs.slack",
        "attn.context.rem",
        "attn_res",
        "gelu.in.rem",
        "gelu",
        "pool.slack",
        "embedding.isd.high.chunk2",
        "embedding.sumsq.chunk1",
    ] {
        assert!(
            prog.tensors.iter().any(|s| s.name == part),
            "no tensor {part}"
        );
    }
    let (mut free, mut checked) = (Vec::new(), 0usize);
    for (i, spec) in prog.tensors.iter().enumerate() {
        if spec.role == Role::Weight {
            continue;
        }
        for x in 0..values[i].len() {
            values[i][x] += 1;
            if checker.violated(&values, i).is_none() {
                free.push((spec.name.clone(), x));
            }
            values[i][x] -= 1;
            checked += 1;
        }
    }
    // The one-hot's padding columns (ids ≥ VOCAB) meet the word table's zero padding rows: they
    // change nothing the program computes. Not a gap of the proof (the statement is the public
    // one-hot, whatever its padding holds) but a rule for its verifiers: build the one-hot (and
    // mask and count) from the ids themselves, never take them from a prover.
    let vocab_pad = VOCAB.next_power_of_two();
    let benign = |(name, x): &(String, usize)| name == "ids.onehot" && x % vocab_pad >= VOCAB;
    let (benign_free, free): (Vec<_>, Vec<_>) = free.into_iter().partition(benign);
    assert_eq!(
        benign_free.len(),
        SEQ.next_power_of_two() * (vocab_pad - VOCAB)
    );
    assert!(
        free.is_empty(),
        "{} of {checked} entries are free, e.g. {:?}",
        free.len(),
        &free[..free.len().min(20)]
    );
    eprintln!(
        "{checked} hidden and public entries of {} tensors perturbed, each caught",
        prog.tensors.len() - prog.ids(Role::Weight).len()
    );
}

#[test]
fn the_tiny_transformer_proves_verifies_from_the_key_and_refuses_other_inputs_and_bytes() {
    let t = tiny(&IDS, REAL);
    let gens = Generators::new(MAX_COL_VARS);
    let key = ModelKey::commit(t.program.clone(), &t.weights, &gens).unwrap();
    // The verifier's whole knowledge of the model: the key, as bytes.
    let key: ModelKey = bincode::deserialize(&bincode::serialize(&key).unwrap()).unwrap();
    let vals = Values::new(&t.program, t.values.clone()).unwrap();
    let started = std::time::Instant::now();
    let proof = program::prove(&key, &vals, b"receipt", &gens).unwrap();
    let prove_ms = started.elapsed().as_millis();
    let bytes = bincode::serialize(&proof).unwrap();
    let proof: Proof = bincode::deserialize(&bytes).unwrap();
    let started = std::time::Instant::now();
    program::verify(&key, &t.inputs, &t.outputs, b"receipt", &proof, &gens).unwrap();
    let verify_ms = started.elapsed().as_millis();
    eprintln!(
        "tiny transformer: {} tensors, {} ops, proof {} bytes, key {} bytes, prove {prove_ms} ms, verify {verify_ms} ms",
        t.program.tensors.len(),
        t.program.ops.len(),
        bytes.len(),
        key.size_bytes()
    );
    assert!(program::verify(&key, &t.inputs, &t.outputs, b"other", &proof, &gens).is_err());

    // Another sentence: its own proof verifies; this proof does not, neither with the other
    // sentence's output nor with this one's.
    let mut ids2 = IDS;
    ids2[1] = 5;
    let t2 = tiny(&ids2, REAL);
    assert_eq!(t2.program, t.program, "the program depends on the input");
    assert_ne!(t2.outputs, t.outputs);
    let vals2 = Values::new(&t2.program, t2.values.clone()).unwrap();
    let proof2 = program::prove(&key, &vals2, b"receipt", &gens).unwrap();
    program::verify(&key, &t2.inputs, &t2.outputs, b"receipt", &proof2, &gens).unwrap();
    for outputs in [&t.outputs, &t2.outputs] {
        assert!(program::verify(&key, &t2.inputs, outputs, b"receipt", &proof, &gens).is_err());
    }
    // Another mask and count (one token fewer) for the same ids.
    let t3 = tiny(&IDS, REAL - 1);
    assert!(program::verify(&key, &t3.inputs, &t.outputs, b"receipt", &proof, &gens).is_err());

    // Every byte of the proof matters: each flip fails to deserialise or to verify. Flipping
    // all ~240 KB would take hours in the test profile (a deserialisation, with every
    // commitment point decompressed, and a verification each, ~40 ms): a deterministic sample
    // of FLIPS positions spread over the whole proof (a different offset within each 32-byte
    // scalar or point, a different bit of each byte) plus its first and last 64 bytes, plus the
    // sign bit of every identity commitment row (32 zero bytes, whose sign-flipped bytes also
    // decoded to the identity until `Commitment`'s deserialisation required canonical bytes).
    let n = bytes.len();
    let positions: Vec<usize> = (0..FLIPS)
        .map(|k| (k * n / FLIPS + (k * 7) % 32).min(n - 1))
        .chain(0..64)
        .chain(n - 64..n)
        .chain(identity_sign_bits(&proof, &bytes))
        .collect();
    let started = std::time::Instant::now();
    let accepted: Vec<usize> = positions
        .par_iter()
        .copied()
        .filter(|&i| {
            let mut b = bytes.clone();
            b[i] ^= 1 << (i % 8);
            bincode::deserialize::<Proof>(&b).is_ok_and(|p| {
                program::verify(&key, &t.inputs, &t.outputs, b"receipt", &p, &gens).is_ok()
            })
        })
        .collect();
    assert!(accepted.is_empty(), "flipped bytes accepted: {accepted:?}");
    eprintln!(
        "{} of {n} proof bytes flipped in {} ms, each refused",
        positions.len(),
        started.elapsed().as_millis()
    );
}

/// The last byte of every commitment row that is the identity, where position `i` flips bit
/// `i % 8` = 7 (rows start 16 bytes plus 8 per commitment plus 32 per row into the proof: the
/// proof's commitments come first, each a length and its rows).
fn identity_sign_bits(proof: &Proof, bytes: &[u8]) -> Vec<usize> {
    let mut out = vec![];
    let mut at = 8;
    for c in &proof.commitments {
        at += 8;
        for _ in &c.rows {
            if bytes[at..at + 32].iter().all(|&b| b == 0) {
                out.push(at + 31);
            }
            at += 32;
        }
    }
    assert!(out.iter().all(|i| i % 8 == 7) && !out.is_empty());
    out
}

/// `Relation::holds` over field values (what the sumcheck actually checks).
fn holds_in_field(rel: &Relation, values: &[Vec<F>]) -> bool {
    let offsets = |bits: &[usize]| -> Vec<usize> {
        let mut off = vec![0; bits.len()];
        let mut acc = 0;
        for k in (0..bits.len()).rev() {
            off[k] = acc;
            acc += bits[k];
        }
        off
    };
    let off = offsets(&rel.axes);
    let field = |x: usize, a: usize| (x >> off[a]) & ((1 << rel.axes[a]) - 1);
    let index = |op: &Operand, x: usize| -> usize {
        let bits: Vec<usize> = op.axes.iter().map(|&a| rel.axes[a]).collect();
        let toff = offsets(&bits);
        op.axes
            .iter()
            .enumerate()
            .map(|(k, &a)| field(x, a) << toff[k])
            .sum()
    };
    let total: usize = rel.axes.iter().sum();
    let free_mask: usize = rel
        .free
        .iter()
        .map(|&a| ((1usize << rel.axes[a]) - 1) << off[a])
        .sum();
    let mut totals = HashMap::<usize, F>::new();
    for x in 0..1usize << total {
        let mut s = F::ZERO;
        for (c, ops) in &rel.sum_terms {
            let mut p = from_i64(*c);
            for op in ops {
                p *= values[op.tensor][index(op, x)];
            }
            s += p;
        }
        *totals.entry(x & free_mask).or_insert(F::ZERO) += s;
    }
    totals.into_iter().all(|(o, mut s)| {
        for (c, op) in &rel.point_terms {
            s += from_i64(*c) * values[op.tensor][index(op, o)];
        }
        s + from_i64(rel.constant) == F::ZERO
    })
}

/// The integer a field element stands for, if it is one of magnitude below 2^62.
fn small_integer(f: F) -> Option<i64> {
    let small = |f: F| {
        let r = f.to_repr();
        let b = r.as_ref();
        (b[8..].iter().all(|&x| x == 0) && b[7] < 0x40)
            .then(|| i64::from_le_bytes(b[..8].try_into().unwrap()))
    };
    small(f).or_else(|| small(-f).map(|v| -v))
}

/// Every relation and lookup of `program` on field values: lookups need rows of integers.
fn satisfied_in_field(program: &Program, values: &[Vec<F>]) -> Result<(), String> {
    for (k, op) in program.ops.iter().enumerate() {
        match op {
            Op::Relation(rel) => {
                if !holds_in_field(rel, values) {
                    return Err(format!("relation {k} fails"));
                }
            }
            Op::Lookup { columns, table } => {
                let table = table.build().unwrap();
                let n = values[columns[0]].len();
                let outside = (0..n).find(|&x| {
                    let row: Option<Vec<i64>> = columns
                        .iter()
                        .map(|&c| small_integer(values[c][x]))
                        .collect();
                    row.and_then(|r| table.index(&r)).is_none()
                });
                if let Some(x) = outside {
                    return Err(format!(
                        "lookup {k} on {} fails at {x}",
                        program.tensors[columns[0]].name
                    ));
                }
            }
        }
    }
    Ok(())
}

/// `⌊√(k / (v + 1))⌋` and the two slacks, as `Builder::inv_sqrt` computes them.
fn inv_sqrt(v: i64, k: i64) -> (i64, i64, i64) {
    let w = v as i128 + 1;
    let t = k as i128 / w;
    let mut r = (t as f64).sqrt() as i128;
    while r * r > t {
        r -= 1;
    }
    while (r + 1) * (r + 1) <= t {
        r += 1;
    }
    let e1 = k as i128 - r * r * w;
    let e2 = (r + 1) * (r + 1) * w - k as i128 - 1;
    (r as i64, e1 as i64, e2 as i64)
}

/// A closed gap: before quotients were pinned (`Builder::pin`), a division gadget's quotient
/// could be a non-integer field element. Mean pooling's `count·m + rem = total` with
/// `0 ≤ rem < count` holds for `m' = m + δ/count` (in the field) and `rem' = rem − δ` for any
/// `δ` in `(rem − count, rem]`; when `Σ m'²` is an integer and `m'·isd'` is too, the L2
/// normalisation downstream is satisfied by integers again, and the program "proves" another
/// public output. This test searches for such a witness, builds it consistently everywhere it
/// can (the forged output's own pin included), and asserts the pooled mean's pin refuses it.
#[test]
fn no_field_fraction_witness_proves_another_output() {
    let t = tiny(&IDS, REAL);
    let prog = &t.program;
    let id = |name: &str| prog.tensors.iter().position(|s| s.name == name).unwrap();
    let p = fixed();
    let c = REAL as i64;
    let (m, rem) = (
        t.values[id("pool")].clone(),
        t.values[id("pool.rem")].clone(),
    );
    let honest = t.outputs[0].clone();
    let v: i64 = m.iter().map(|x| x * x).sum();
    let k = 1i64 << (2 * p.isd_bits);
    let sh = p.isd_bits - p.a_bits;
    let n = m.len();
    let mut found = None;
    // δ_j = rem_j − u_j for u_j in [0, count): every choice of the remainders.
    for code in 0..(c as usize).pow(n as u32) {
        let mut u = vec![0i64; n];
        let mut x = code;
        for uj in u.iter_mut() {
            *uj = (x % c as usize) as i64;
            x /= c as usize;
        }
        let delta: Vec<i64> = rem.iter().zip(&u).map(|(r, u)| r - u).collect();
        if delta.iter().all(|&d| d == 0) {
            continue;
        }
        let num: i64 = delta
            .iter()
            .zip(&m)
            .map(|(d, m)| 2 * c * m * d + d * d)
            .sum();
        if num % (c * c) != 0 {
            continue;
        }
        let v2 = v + num / (c * c);
        let (s, _, _) = inv_sqrt(v2, k);
        if delta.iter().any(|d| (d * s) % c != 0) {
            continue;
        }
        let y: Vec<i64> = (0..n)
            .map(|j| (((m[j] * c + delta[j]) * s / c) + (1 << (sh - 1))) >> sh)
            .collect();
        if y != honest {
            found = Some((delta, u, v2, y));
            break;
        }
    }
    let (delta, u, v2, y) =
        found.expect("a fractional pooled mean that proves another output exists for this input");
    // The forged witness: every tensor as the honest one, but the pooled mean, its remainder and
    // slack, and everything the L2 normalisation computes from it.
    let mut w: Vec<Vec<F>> = t
        .values
        .iter()
        .map(|v| v.iter().map(|&x| from_i64(x)).collect())
        .collect();
    let cinv = from_i64(c).invert().unwrap();
    let ints = |v: &[i64]| -> Vec<F> { v.iter().map(|&x| from_i64(x)).collect() };
    w[id("pool")] = (0..n)
        .map(|j| from_i64(m[j]) + from_i64(delta[j]) * cinv)
        .collect();
    w[id("pool.rem")] = ints(&u);
    w[id("pool.slack")] = ints(&u.iter().map(|u| c - 1 - u).collect::<Vec<_>>());
    let chunks = |w: &mut Vec<Vec<F>>, name: &str, vals: &[i64]| {
        w[id(name)] = ints(vals);
        let mut c = 0;
        while let Some(i) = prog
            .tensors
            .iter()
            .position(|s| s.name == format!("{name}.chunk{c}"))
        {
            let chunk: Vec<i64> = vals.iter().map(|v| (v >> (16 * c)) & 0xFFFF).collect();
            w[i] = ints(&chunk);
            c += 1;
        }
    };
    let (s, e1, e2) = inv_sqrt(v2, k);
    chunks(&mut w, "embedding.sumsq", &[v2]);
    chunks(&mut w, "embedding.isd", &[s]);
    chunks(&mut w, "embedding.isd.low", &[e1]);
    chunks(&mut w, "embedding.isd.high", &[e2]);
    let r2: Vec<i64> = (0..n)
        .map(|j| (((m[j] * c + delta[j]) * s / c) + (1 << (sh - 1))) & ((1 << sh) - 1))
        .collect();
    chunks(&mut w, "embedding.rem", &r2);
    // The forged output is integers: its own pin is satisfied, as a forger would make it.
    let off = 1i64 << (p.quotient_bits - 1);
    chunks(
        &mut w,
        "embedding",
        &y.iter().map(|v| v + off).collect::<Vec<_>>(),
    );
    w[id("embedding")] = ints(&y);
    let honest_w: Vec<Vec<F>> = t.values.iter().map(|v| ints(v)).collect();
    assert_eq!(satisfied_in_field(prog, &honest_w), Ok(()));
    assert!(
        satisfied_in_field(prog, &w).is_err(),
        "a witness with the pooled mean m + δ/count (δ = {delta:?}, count {c}) satisfies every \
         relation and lookup in the field and proves the output {y:?} instead of {honest:?}"
    );
}
