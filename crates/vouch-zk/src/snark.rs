//! The bridge to Spartan2: our constraint list as a `SpartanCircuit` (one round of interaction:
//! lookup keys and multiplicities are committed before α and β are drawn), key generation,
//! proving and verifying.
//!
//! Spartan2 with Hyrax over a curve without a pairing is transparent: the commitment generators
//! come from hashing a label to the curve, so nobody holds a trapdoor and the verifying key is a
//! pure function of the model and its quantisation config.

use std::sync::Arc;

use bellpepper_core::{ConstraintSystem, Index, LinearCombination, SynthesisError, Variable};
use ff::{BatchInvert, Field, PrimeField};
use spartan2::spartan::{SpartanProverKey, SpartanSNARK, SpartanVerifierKey};
use spartan2::traits::{
    Engine, circuit::SpartanCircuit, pcs::PCSEngineTrait, snark::DigestHelperTrait,
    snark::R1CSSNARKTrait,
};

use crate::circuit::{Built, Lc, Rest, Src, V};
use crate::error::ZkError;
use crate::limits::Deadline;

/// The curve and commitment: Pallas (no pairing, so no MOV reduction of the discrete-log
/// assumption Hyrax rests on; ~128-bit security) with Hyrax. Measured fastest of the
/// pairing-free curves Spartan2 offers (docs/zk.md). Spartan2's own `PallasHyraxEngine`, except
/// that Hyrax rows are `W` wide (see [`Hyrax`] and [`hyrax_width`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PallasHyrax<const W: usize>;

/// Narrow rows: small witnesses (the MLPs, the dense model).
pub type Narrow = PallasHyrax<NARROW>;
/// Spartan2's own width: witnesses with many full-size (post-challenge) values (the CNN).
pub type Wide = PallasHyrax<WIDE>;
pub const NARROW: usize = 256;
pub const WIDE: usize = 2048;

/// The Hyrax row width for a circuit, from its sizes alone (so keys stay a function of the
/// model and config). Per proof, the prover pays two full-scalar MSMs as wide as a row and the
/// proof carries a vector as wide as a row, while committing to full-size scalars (logUp
/// inverses) costs more per value in narrow rows (a 256-point bucket MSM uses smaller windows
/// than a 2048-point one, split over two threads): measured on the CNN (106 k inverses), the
/// witness commitment took 916 ms at 2048 and 1 413 ms at 256 (loaded), while the MLPs' proofs
/// (no inverses) were 3× faster at 256. Narrow unless the witness has more than 8 192
/// post-challenge values or more than 2^16 variables.
pub fn hyrax_width(stats: &crate::circuit::Stats) -> usize {
    if stats.rest <= 8192 && stats.precommitted + stats.rest <= 1 << 16 {
        NARROW
    } else {
        WIDE
    }
}

impl<const W: usize> Engine for PallasHyrax<W> {
    type Base = spartan2::provider::pasta::pallas::Base;
    type Scalar = spartan2::provider::pasta::pallas::Scalar;
    type GE = spartan2::provider::pasta::pallas::Point;
    type TE = spartan2::provider::keccak::Keccak256Transcript<Self>;
    type PCS = Hyrax<W>;
}

type Inner<const W: usize> = spartan2::provider::pcs::hyrax_pc::HyraxPCS<PallasHyrax<W>>;

/// Spartan2's Hyrax with rows `W` wide. Spartan2 asks every commitment scheme for keys and
/// commitment shapes "of width 2048" (a power of two dividing 2048 lines up with its padding of
/// every witness segment to a multiple of 2048); this one answers with rows `min(width, W)`
/// wide and otherwise is Spartan2's `HyraxPCS` unchanged (same generators-from-a-label setup,
/// same commitments, same evaluation argument), so its security argument is Spartan2's.
/// `check_commitment` — the verifier's check that a commitment has exactly one point per row —
/// checks against the same width, so a commitment of the wrong shape is still refused. The
/// width is in the commitment key, hence in the verifying key and its digest.
#[derive(Clone, Debug)]
pub struct Hyrax<const W: usize>;

fn narrow<const W: usize>(width: usize) -> usize {
    width.clamp(1, W)
}

impl<const W: usize> PCSEngineTrait<PallasHyrax<W>> for Hyrax<W> {
    type CommitmentKey = <Inner<W> as PCSEngineTrait<PallasHyrax<W>>>::CommitmentKey;
    type VerifierKey = <Inner<W> as PCSEngineTrait<PallasHyrax<W>>>::VerifierKey;
    type Commitment = <Inner<W> as PCSEngineTrait<PallasHyrax<W>>>::Commitment;
    type Blind = <Inner<W> as PCSEngineTrait<PallasHyrax<W>>>::Blind;
    type EvaluationArgument = <Inner<W> as PCSEngineTrait<PallasHyrax<W>>>::EvaluationArgument;

    fn setup(
        label: &'static [u8],
        n: usize,
        width: usize,
    ) -> (Self::CommitmentKey, Self::VerifierKey) {
        Inner::<W>::setup(label, n, narrow::<W>(width))
    }

    fn precompute_ck(ck: &Self::CommitmentKey) {
        Inner::<W>::precompute_ck(ck)
    }

    fn blind(ck: &Self::CommitmentKey, n: usize) -> Self::Blind {
        Inner::<W>::blind(ck, n)
    }

    fn commit(
        ck: &Self::CommitmentKey,
        v: &[F],
        r: &Self::Blind,
        is_small: bool,
    ) -> Result<Self::Commitment, spartan2::errors::SpartanError> {
        Inner::<W>::commit(ck, v, r, is_small)
    }

    fn commit_zeros(
        ck: &Self::CommitmentKey,
        n: usize,
        r: &Self::Blind,
    ) -> Result<Self::Commitment, spartan2::errors::SpartanError> {
        Inner::<W>::commit_zeros(ck, n, r)
    }

    fn check_commitment(
        comm: &Self::Commitment,
        n: usize,
        width: usize,
    ) -> Result<(), spartan2::errors::SpartanError> {
        Inner::<W>::check_commitment(comm, n, narrow::<W>(width))
    }

    fn rerandomize_commitment(
        ck: &Self::CommitmentKey,
        comm: &Self::Commitment,
        r_old: &Self::Blind,
        r_new: &Self::Blind,
    ) -> Result<Self::Commitment, spartan2::errors::SpartanError> {
        Inner::<W>::rerandomize_commitment(ck, comm, r_old, r_new)
    }

    fn combine_commitments(
        comms: &[Self::Commitment],
    ) -> Result<Self::Commitment, spartan2::errors::SpartanError> {
        Inner::<W>::combine_commitments(comms)
    }

    fn combine_blinds(
        blinds: &[Self::Blind],
    ) -> Result<Self::Blind, spartan2::errors::SpartanError> {
        Inner::<W>::combine_blinds(blinds)
    }

    fn prove(
        ck: &Self::CommitmentKey,
        ck_eval: &Self::CommitmentKey,
        transcript: &mut <PallasHyrax<W> as Engine>::TE,
        comm: &Self::Commitment,
        poly: &[F],
        blind: &Self::Blind,
        point: &[F],
        comm_eval: &Self::Commitment,
        blind_eval: &Self::Blind,
    ) -> Result<Self::EvaluationArgument, spartan2::errors::SpartanError> {
        Inner::<W>::prove(
            ck, ck_eval, transcript, comm, poly, blind, point, comm_eval, blind_eval,
        )
    }

    fn verify(
        vk: &Self::VerifierKey,
        ck_eval: &Self::CommitmentKey,
        transcript: &mut <PallasHyrax<W> as Engine>::TE,
        comm: &Self::Commitment,
        point: &[F],
        comm_eval: &Self::Commitment,
        arg: &Self::EvaluationArgument,
    ) -> Result<(), spartan2::errors::SpartanError> {
        Inner::<W>::verify(vk, ck_eval, transcript, comm, point, comm_eval, arg)
    }
}
pub type F = <Narrow as Engine>::Scalar;

/// Keys and proofs of either width.
// Setup makes a proving key with the verifying key; a verifier-only build drops it unread.
#[cfg_attr(not(feature = "prover"), allow(dead_code))]
pub(crate) enum ProverKey {
    Narrow(SpartanProverKey<Narrow>),
    Wide(SpartanProverKey<Wide>),
}

pub(crate) enum VerifierKey {
    Narrow(SpartanVerifierKey<Narrow>),
    Wide(SpartanVerifierKey<Wide>),
}

pub(crate) enum Snark {
    Narrow(SpartanSNARK<Narrow>),
    Wide(SpartanSNARK<Wide>),
}

/// Names the proof system in evidence, so a verifier never guesses. The Hyrax row width
/// ([`hyrax_width`]) is a parameter of the verifying key and covered by its digest.
pub const SYSTEM: &str = "spartan2-0.9/spartan/hyrax/pallas/r1cs-logup";

pub fn field(x: i128) -> F {
    if x >= 0 {
        F::from_u128(x as u128)
    } else {
        -F::from_u128(x.unsigned_abs())
    }
}

/// What the circuit needs at synthesis time. Shared (`Arc`) because Spartan2 clones circuits.
#[derive(Debug)]
pub(crate) struct Data {
    pub public: Vec<F>,
    pub num_public: usize,
    pub pre: Vec<u64>,
    pub rest: Vec<Rest>,
    /// The recorded constraints, handed over to Spartan2 once when it builds the shape (key
    /// generation) and freed as they are: the shape builder keeps its own copy, so holding ours
    /// too until the keys were done cost an MLP a tenth of its key-generation peak.
    pub cons: std::sync::Mutex<Option<Vec<crate::circuit::Cons>>>,
    pub num_challenges: usize,
    /// Polled while the constraints are handed to Spartan2 (key generation).
    pub deadline: Deadline,
}

#[derive(Clone, Debug)]
pub(crate) struct Circuit(pub Arc<Data>);

impl Circuit {
    #[cfg(feature = "prover")]
    pub fn new(b: Built, record: bool) -> Self {
        Self::with_deadline(b, record, Deadline::none())
    }

    /// A circuit whose shape synthesis (key generation) gives up once `deadline` has passed.
    pub fn with_deadline(b: Built, record: bool, deadline: Deadline) -> Self {
        let lookups = b.rest.iter().any(|r| !matches!(r, Rest::Mul { .. }));
        let num_challenges = if lookups { 2 } else { 0 };
        Circuit(Arc::new(Data {
            public: b.public_ints.iter().map(|&x| field(x)).collect(),
            num_public: b.num_public,
            pre: b.pre,
            rest: b.rest,
            cons: std::sync::Mutex::new(record.then_some(b.cons)),
            num_challenges,
            deadline,
        }))
    }
}

/// Values of the post-challenge variables.
fn rest_values(rest: &[Rest], alpha: F, beta: F) -> Result<Vec<F>, SynthesisError> {
    let mut vals = vec![F::ZERO; rest.len()];
    // Denominators first, inverted in one batch.
    let mut den_idx = vec![];
    let mut dens = vec![];
    for (i, r) in rest.iter().enumerate() {
        let d = match *r {
            Rest::InvTagged { v, tag } | Rest::TabTagged { j: v, tag, .. } => {
                alpha - F::from(v) - F::from(tag) * beta
            }
            Rest::InvPair { u, y } | Rest::TabPair { j: u, fj: y, .. } => {
                alpha - F::from(u) - beta * F::from(y)
            }
            Rest::BetaTimes { y } => {
                vals[i] = beta * F::from(y);
                continue;
            }
            Rest::Mul { .. } => continue,
        };
        if bool::from(d.is_zero()) {
            return Err(SynthesisError::DivisionByZero);
        }
        den_idx.push(i);
        dens.push(d);
    }
    dens.iter_mut().batch_invert();
    for (k, &i) in den_idx.iter().enumerate() {
        vals[i] = match rest[i] {
            Rest::TabTagged { m, .. } | Rest::TabPair { m, .. } => dens[k] * F::from(m),
            _ => dens[k],
        };
    }
    for (i, r) in rest.iter().enumerate() {
        if let Rest::Mul { a, b } = *r {
            let get = |s: Src| match s {
                Src::Int(x) => field(x),
                Src::Rest(j) => vals[j as usize],
            };
            vals[i] = get(a) * get(b);
        }
    }
    Ok(vals)
}

#[cfg(test)]
pub(crate) fn rest_values_for_tests(rest: &[Rest], alpha: F, beta: F) -> Vec<F> {
    rest_values(rest, alpha, beta).expect("no zero denominator")
}

impl<const W: usize> SpartanCircuit<PallasHyrax<W>> for Circuit {
    fn public_values(&self) -> Result<Vec<F>, SynthesisError> {
        Ok(self.0.public.clone())
    }

    fn shared<CS: ConstraintSystem<F>>(
        &self,
        _: &mut CS,
    ) -> Result<Vec<bellpepper_core::num::AllocatedNum<F>>, SynthesisError> {
        Ok(vec![])
    }

    fn precommitted<CS: ConstraintSystem<F>>(
        &self,
        cs: &mut CS,
        _: &[bellpepper_core::num::AllocatedNum<F>],
    ) -> Result<Vec<bellpepper_core::num::AllocatedNum<F>>, SynthesisError> {
        for (i, &v) in self.0.pre.iter().enumerate() {
            cs.alloc(|| format!("pre{i}"), || Ok(F::from(v)))?;
        }
        Ok(vec![])
    }

    fn num_challenges(&self) -> usize {
        self.0.num_challenges
    }

    fn synthesize<CS: ConstraintSystem<F>>(
        &self,
        cs: &mut CS,
        _: &[bellpepper_core::num::AllocatedNum<F>],
        _: &[bellpepper_core::num::AllocatedNum<F>],
        challenges: Option<&[F]>,
    ) -> Result<(), SynthesisError> {
        let d = &self.0;
        for (i, &v) in d.public.iter().enumerate() {
            cs.alloc_input(|| format!("pub{i}"), || Ok(v))?;
        }
        let ch: Vec<F> = match challenges {
            Some(c) if c.len() == d.num_challenges => c.to_vec(),
            _ => vec![F::ZERO; d.num_challenges],
        };
        for (i, &c) in ch.iter().enumerate() {
            cs.alloc_input(|| format!("ch{i}"), || Ok(c))?;
        }
        let witness = cs.is_witness_generator();
        if witness && !d.rest.is_empty() {
            let (alpha, beta) = (
                ch.first().copied().unwrap_or(F::ZERO),
                ch.get(1).copied().unwrap_or(F::ZERO),
            );
            let vals = rest_values(&d.rest, alpha, beta)?;
            for (i, v) in vals.into_iter().enumerate() {
                cs.alloc(|| format!("rest{i}"), || Ok(v))?;
            }
        } else {
            for i in 0..d.rest.len() {
                cs.alloc(|| format!("rest{i}"), || Ok(F::ZERO))?;
            }
        }
        if witness {
            return Ok(()); // constraints only matter when the shape is built
        }
        let np = d.num_public;
        let npre = d.pre.len();
        let var = |v: V| -> Variable {
            match v {
                V::One => CS::one(),
                V::Pub(i) => Variable::new_unchecked(Index::Input(1 + i as usize)),
                V::Ch(i) => Variable::new_unchecked(Index::Input(1 + np + i as usize)),
                V::Pre(i) => Variable::new_unchecked(Index::Aux(i as usize)),
                V::Rest(i) => Variable::new_unchecked(Index::Aux(npre + i as usize)),
            }
        };
        let lc = |l: &Lc, mut acc: LinearCombination<F>| -> LinearCombination<F> {
            for &(v, c) in &l.0 {
                acc = acc + (field(c), var(v));
            }
            acc
        };
        // A second shape synthesis would find no constraints: refuse rather than build an
        // empty shape.
        let cons = d
            .cons
            .lock()
            .map_err(|_| SynthesisError::AssignmentMissing)?
            .take()
            .ok_or(SynthesisError::AssignmentMissing)?;
        for (i, c) in cons.into_iter().enumerate() {
            if i.is_multiple_of(1 << 16) && d.deadline.expired() {
                return Err(SynthesisError::Unsatisfiable);
            }
            cs.enforce(
                || format!("c{i}"),
                |z| lc(&c.a, z),
                |z| lc(&c.b, z),
                |z| lc(&c.c, z),
            );
        }
        Ok(())
    }
}

pub(crate) fn setup(circuit: Circuit, width: usize) -> Result<(ProverKey, VerifierKey), ZkError> {
    let err = |e| ZkError::Prover(format!("key generation: {e}"));
    match width {
        NARROW => {
            let (pk, vk) = SpartanSNARK::<Narrow>::setup(circuit).map_err(err)?;
            Ok((ProverKey::Narrow(pk), VerifierKey::Narrow(vk)))
        }
        WIDE => {
            let (pk, vk) = SpartanSNARK::<Wide>::setup(circuit).map_err(err)?;
            Ok((ProverKey::Wide(pk), VerifierKey::Wide(vk)))
        }
        w => Err(ZkError::Internal(format!("no Hyrax engine of width {w}"))),
    }
}

pub(crate) fn vk_digest(vk: &VerifierKey) -> Result<[u8; 32], ZkError> {
    match vk {
        VerifierKey::Narrow(vk) => vk.digest(),
        VerifierKey::Wide(vk) => vk.digest(),
    }
    .map_err(|e| ZkError::Internal(format!("verifying-key digest: {e}")))
}

#[cfg(feature = "prover")]
pub(crate) fn prove(pk: &ProverKey, circuit: Circuit) -> Result<Snark, ZkError> {
    fn go<const W: usize>(
        pk: &SpartanProverKey<PallasHyrax<W>>,
        circuit: Circuit,
    ) -> Result<SpartanSNARK<PallasHyrax<W>>, ZkError> {
        let prep = SpartanSNARK::prep_prove(pk, circuit.clone(), false)
            .map_err(|e| ZkError::Prover(format!("{e}")))?;
        let (proof, _) = SpartanSNARK::prove(pk, circuit, prep, false)
            .map_err(|e| ZkError::Prover(format!("{e}")))?;
        Ok(proof)
    }
    Ok(match pk {
        ProverKey::Narrow(pk) => Snark::Narrow(go(pk, circuit)?),
        ProverKey::Wide(pk) => Snark::Wide(go(pk, circuit)?),
    })
}

/// Checks the proof and returns the public values it proves (without challenges).
pub(crate) fn verify(proof: &Snark, vk: &VerifierKey) -> Result<Vec<F>, ZkError> {
    match (proof, vk) {
        (Snark::Narrow(p), VerifierKey::Narrow(vk)) => p.verify(vk),
        (Snark::Wide(p), VerifierKey::Wide(vk)) => p.verify(vk),
        _ => {
            return Err(ZkError::Verify(
                "the proof is for another Hyrax width than the verifying key".into(),
            ));
        }
    }
    .map_err(|e| ZkError::Verify(format!("the proof does not verify: {e}")))
}

#[cfg(feature = "prover")]
pub(crate) fn proof_to_bytes(p: &Snark) -> Result<Vec<u8>, ZkError> {
    match p {
        Snark::Narrow(p) => bincode::serialize(p),
        Snark::Wide(p) => bincode::serialize(p),
    }
    .map_err(|e| ZkError::Internal(format!("proof encoding: {e}")))
}

/// Decodes a proof for the verifying key's width.
pub(crate) fn proof_from_bytes(b: &[u8], vk: &VerifierKey) -> Result<Snark, ZkError> {
    use bincode::Options;
    let opts = || {
        bincode::DefaultOptions::new()
            .with_fixint_encoding()
            .with_limit(64 << 20)
    };
    let err = |e| ZkError::Malformed(format!("proof bytes do not decode: {e}"));
    Ok(match vk {
        VerifierKey::Narrow(_) => Snark::Narrow(opts().deserialize(b).map_err(err)?),
        VerifierKey::Wide(_) => Snark::Wide(opts().deserialize(b).map_err(err)?),
    })
}

/// Encoded length of the verifying key, without encoding it.
#[cfg(feature = "prover")]
pub(crate) fn vk_len(vk: &VerifierKey) -> Result<u64, ZkError> {
    match vk {
        VerifierKey::Narrow(vk) => bincode::serialized_size(vk),
        VerifierKey::Wide(vk) => bincode::serialized_size(vk),
    }
    .map_err(|e| ZkError::Internal(format!("vk encoding: {e}")))
}

pub(crate) fn vk_to_bytes(vk: &VerifierKey) -> Result<Vec<u8>, ZkError> {
    match vk {
        VerifierKey::Narrow(vk) => bincode::serialize(vk),
        VerifierKey::Wide(vk) => bincode::serialize(vk),
    }
    .map_err(|e| ZkError::Internal(format!("vk encoding: {e}")))
}

/// Signed integer value of a public field element, if it is small (|x| < 2^126).
pub(crate) fn small_int(x: &F) -> Option<i128> {
    let to = |f: &F| -> Option<u128> {
        let r = f.to_repr();
        let b = r.as_ref();
        // little-endian canonical representation
        if b[16..].iter().any(|&x| x != 0) {
            return None;
        }
        let mut lo = [0u8; 16];
        lo.copy_from_slice(&b[..16]);
        Some(u128::from_le_bytes(lo))
    };
    if let Some(v) = to(x).filter(|v| *v < 1 << 126) {
        return Some(v as i128);
    }
    to(&-*x).filter(|v| *v < 1 << 126).map(|v| -(v as i128))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyrax_widths_line_up_with_spartan2s_padding() {
        for w in [NARROW, WIDE] {
            assert!(w.is_power_of_two() && 2048 % w == 0);
        }
    }

    /// x(4) → Linear(4→3) → Relu → Linear(3→2), with range-check lookups (so both witness
    /// segments are used).
    #[cfg(feature = "prover")]
    fn tiny() -> (crate::graph::Graph, crate::circuit::QuantConfig) {
        use crate::graph::{Graph, Io, Op, Sparse};
        let dense = |n_in: u32, n_out: usize, w0: f64| Sparse {
            ptr: (0..=n_out as u32).map(|i| i * n_in).collect(),
            idx: (0..n_out).flat_map(|_| 0..n_in).collect(),
            w: (0..n_out * n_in as usize)
                .map(|k| w0 + 0.01 * k as f64)
                .collect(),
        };
        let g = Graph {
            inputs: vec![Io {
                name: "x".into(),
                shape: vec![1, 4],
                value: 0,
            }],
            outputs: vec![Io {
                name: "y".into(),
                shape: vec![1, 2],
                value: 3,
            }],
            value_len: vec![4, 3, 3, 2],
            ops: vec![
                Op::Linear {
                    input: 0,
                    output: 1,
                    rows: dense(4, 3, -0.05),
                    bias: vec![0.01, -0.02, 0.03],
                    onnx_op: "Gemm".into(),
                },
                Op::Relu {
                    input: 1,
                    output: 2,
                },
                Op::Linear {
                    input: 2,
                    output: 3,
                    rows: dense(3, 2, 0.1),
                    bias: vec![0.0, 0.05],
                    onnx_op: "Gemm".into(),
                },
            ],
            params: 0,
        };
        let cfg = crate::circuit::QuantConfig {
            act_bits: 10,
            weight_bits: 10,
            table_bits: 6,
            lut_input_bits: 6,
            lut_domain_bits: 3,
            value_bits: vec![16; 4],
        };
        (g, cfg)
    }

    #[test]
    #[cfg(feature = "prover")]
    fn both_widths_prove_and_verify_and_reject_tampering() {
        let (g, cfg) = tiny();
        let x = vec![vec![700, -300, 50, 1000]];
        let mut vks = vec![];
        let mut proofs = vec![];
        for width in [NARROW, WIDE] {
            let zeros = vec![vec![0; 4]];
            let keys =
                crate::circuit::build(&g, &cfg, &zeros, [0, 0], true, &Deadline::none()).unwrap();
            let (pk, vk) = setup(Circuit::new(keys, true), width).unwrap();
            let w = crate::circuit::build(&g, &cfg, &x, [1, 2], false, &Deadline::none()).unwrap();
            let public = Circuit::new(w, false).0.public.clone();
            let w = crate::circuit::build(&g, &cfg, &x, [1, 2], false, &Deadline::none()).unwrap();
            let proof = prove(&pk, Circuit::new(w, false)).unwrap();
            let bytes = proof_to_bytes(&proof).unwrap();
            let back = proof_from_bytes(&bytes, &vk).unwrap();
            assert_eq!(verify(&back, &vk).unwrap(), public);
            // A flipped byte in the middle of the proof is refused (decode or verify).
            let mut bad = bytes.clone();
            let mid = bad.len() / 2;
            bad[mid] ^= 1;
            assert!(
                proof_from_bytes(&bad, &vk)
                    .and_then(|p| verify(&p, &vk))
                    .is_err()
            );
            vks.push(vk);
            proofs.push(bytes);
        }
        // The widths give different verifying keys, and a proof of one width does not verify
        // against the other's key.
        assert_ne!(vk_digest(&vks[0]).unwrap(), vk_digest(&vks[1]).unwrap());
        for (p, vk) in [(&proofs[0], &vks[1]), (&proofs[1], &vks[0])] {
            assert!(
                proof_from_bytes(p, vk)
                    .and_then(|p| verify(&p, vk))
                    .is_err()
            );
        }
    }
}
