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

/// The curve and commitment: Pallas (no pairing, so no MOV reduction of the discrete-log
/// assumption Hyrax rests on; ~128-bit security) with Hyrax. Measured fastest of the
/// pairing-free curves Spartan2 offers (docs/zk.md). Spartan2's own `PallasHyraxEngine`, except
/// that Hyrax rows are [`HYRAX_WIDTH`] wide instead of Spartan2's fixed 2048 (see [`Hyrax`]).
pub type E = PallasHyrax;

/// Width of a Hyrax row (a power of two dividing Spartan2's 2048, which pads every witness
/// segment to a multiple of 2048). The prover pays two MSMs of this width per proof and the
/// proof carries a vector of this many scalars; the commitment has one point per row (witness
/// length ÷ width) and the verifier one MSM over the rows. 2048 made those two MSMs most of an
/// MLP's prove time and 64 KB of every proof; 256 keeps the CNN's 2^19-variable witness at
/// 2048 rows (the size of its old row vector) while an MLP's MSMs shrink 8×.
pub const HYRAX_WIDTH: usize = 256;

/// Spartan2's Pallas + Keccak engine with [`Hyrax`] as its commitment scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PallasHyrax;

impl Engine for PallasHyrax {
    type Base = spartan2::provider::pasta::pallas::Base;
    type Scalar = spartan2::provider::pasta::pallas::Scalar;
    type GE = spartan2::provider::pasta::pallas::Point;
    type TE = spartan2::provider::keccak::Keccak256Transcript<Self>;
    type PCS = Hyrax;
}

type Inner = spartan2::provider::pcs::hyrax_pc::HyraxPCS<PallasHyrax>;

/// Spartan2's Hyrax with narrower rows. Spartan2 asks every commitment scheme for keys and
/// commitment shapes "of width 2048"; this one answers with rows `min(width, HYRAX_WIDTH)`
/// wide and otherwise is Spartan2's `HyraxPCS` unchanged (same generators-from-a-label setup,
/// same commitments, same evaluation argument), so its security argument is Spartan2's.
/// `check_commitment` — the verifier's check that a commitment has exactly one point per row —
/// checks against the narrow width, so a commitment of the wrong shape is still refused.
#[derive(Clone, Debug)]
pub struct Hyrax;

fn narrow(width: usize) -> usize {
    width.clamp(1, HYRAX_WIDTH)
}

impl PCSEngineTrait<PallasHyrax> for Hyrax {
    type CommitmentKey = <Inner as PCSEngineTrait<PallasHyrax>>::CommitmentKey;
    type VerifierKey = <Inner as PCSEngineTrait<PallasHyrax>>::VerifierKey;
    type Commitment = <Inner as PCSEngineTrait<PallasHyrax>>::Commitment;
    type Blind = <Inner as PCSEngineTrait<PallasHyrax>>::Blind;
    type EvaluationArgument = <Inner as PCSEngineTrait<PallasHyrax>>::EvaluationArgument;

    fn setup(
        label: &'static [u8],
        n: usize,
        width: usize,
    ) -> (Self::CommitmentKey, Self::VerifierKey) {
        Inner::setup(label, n, narrow(width))
    }

    fn precompute_ck(ck: &Self::CommitmentKey) {
        Inner::precompute_ck(ck)
    }

    fn blind(ck: &Self::CommitmentKey, n: usize) -> Self::Blind {
        Inner::blind(ck, n)
    }

    fn commit(
        ck: &Self::CommitmentKey,
        v: &[F],
        r: &Self::Blind,
        is_small: bool,
    ) -> Result<Self::Commitment, spartan2::errors::SpartanError> {
        Inner::commit(ck, v, r, is_small)
    }

    fn commit_zeros(
        ck: &Self::CommitmentKey,
        n: usize,
        r: &Self::Blind,
    ) -> Result<Self::Commitment, spartan2::errors::SpartanError> {
        Inner::commit_zeros(ck, n, r)
    }

    fn check_commitment(
        comm: &Self::Commitment,
        n: usize,
        width: usize,
    ) -> Result<(), spartan2::errors::SpartanError> {
        Inner::check_commitment(comm, n, narrow(width))
    }

    fn rerandomize_commitment(
        ck: &Self::CommitmentKey,
        comm: &Self::Commitment,
        r_old: &Self::Blind,
        r_new: &Self::Blind,
    ) -> Result<Self::Commitment, spartan2::errors::SpartanError> {
        Inner::rerandomize_commitment(ck, comm, r_old, r_new)
    }

    fn combine_commitments(
        comms: &[Self::Commitment],
    ) -> Result<Self::Commitment, spartan2::errors::SpartanError> {
        Inner::combine_commitments(comms)
    }

    fn combine_blinds(
        blinds: &[Self::Blind],
    ) -> Result<Self::Blind, spartan2::errors::SpartanError> {
        Inner::combine_blinds(blinds)
    }

    fn prove(
        ck: &Self::CommitmentKey,
        ck_eval: &Self::CommitmentKey,
        transcript: &mut <PallasHyrax as Engine>::TE,
        comm: &Self::Commitment,
        poly: &[F],
        blind: &Self::Blind,
        point: &[F],
        comm_eval: &Self::Commitment,
        blind_eval: &Self::Blind,
    ) -> Result<Self::EvaluationArgument, spartan2::errors::SpartanError> {
        Inner::prove(
            ck, ck_eval, transcript, comm, poly, blind, point, comm_eval, blind_eval,
        )
    }

    fn verify(
        vk: &Self::VerifierKey,
        ck_eval: &Self::CommitmentKey,
        transcript: &mut <PallasHyrax as Engine>::TE,
        comm: &Self::Commitment,
        point: &[F],
        comm_eval: &Self::Commitment,
        arg: &Self::EvaluationArgument,
    ) -> Result<(), spartan2::errors::SpartanError> {
        Inner::verify(vk, ck_eval, transcript, comm, point, comm_eval, arg)
    }
}
pub type F = <E as Engine>::Scalar;
pub type Snark = SpartanSNARK<E>;
pub type ProverKey = SpartanProverKey<E>;
pub type VerifierKey = SpartanVerifierKey<E>;

/// Names the proof system in evidence, so a verifier never guesses (the Hyrax row width is part
/// of it: a proof made with rows of another width does not verify against these keys).
pub const SYSTEM: &str = "spartan2-0.9/spartan/hyrax-256/pallas/r1cs-logup";

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
}

#[derive(Clone, Debug)]
pub(crate) struct Circuit(pub Arc<Data>);

impl Circuit {
    pub fn new(b: Built, record: bool) -> Self {
        let lookups = b.rest.iter().any(|r| !matches!(r, Rest::Mul { .. }));
        let num_challenges = if lookups { 2 } else { 0 };
        Circuit(Arc::new(Data {
            public: b.public_ints.iter().map(|&x| field(x)).collect(),
            num_public: b.num_public,
            pre: b.pre,
            rest: b.rest,
            cons: std::sync::Mutex::new(record.then_some(b.cons)),
            num_challenges,
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

impl SpartanCircuit<E> for Circuit {
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

pub(crate) fn setup(circuit: Circuit) -> Result<(ProverKey, VerifierKey), ZkError> {
    Snark::setup(circuit).map_err(|e| ZkError::Prover(format!("key generation: {e}")))
}

pub(crate) fn vk_digest(vk: &VerifierKey) -> Result<[u8; 32], ZkError> {
    vk.digest()
        .map_err(|e| ZkError::Internal(format!("verifying-key digest: {e}")))
}

pub(crate) fn prove(pk: &ProverKey, circuit: Circuit) -> Result<Snark, ZkError> {
    let prep = Snark::prep_prove(pk, circuit.clone(), false)
        .map_err(|e| ZkError::Prover(format!("{e}")))?;
    let (proof, _) =
        Snark::prove(pk, circuit, prep, false).map_err(|e| ZkError::Prover(format!("{e}")))?;
    Ok(proof)
}

/// Checks the proof and returns the public values it proves (without challenges).
pub(crate) fn verify(proof: &Snark, vk: &VerifierKey) -> Result<Vec<F>, ZkError> {
    proof
        .verify(vk)
        .map_err(|e| ZkError::Verify(format!("the proof does not verify: {e}")))
}

pub(crate) fn proof_to_bytes(p: &Snark) -> Result<Vec<u8>, ZkError> {
    bincode::serialize(p).map_err(|e| ZkError::Internal(format!("proof encoding: {e}")))
}

pub(crate) fn proof_from_bytes(b: &[u8]) -> Result<Snark, ZkError> {
    use bincode::Options;
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_limit(64 << 20)
        .deserialize(b)
        .map_err(|e| ZkError::Malformed(format!("proof bytes do not decode: {e}")))
}

/// Encoded length of the verifying key, without encoding it.
pub(crate) fn vk_len(vk: &VerifierKey) -> Result<u64, ZkError> {
    bincode::serialized_size(vk).map_err(|e| ZkError::Internal(format!("vk encoding: {e}")))
}

pub(crate) fn vk_to_bytes(vk: &VerifierKey) -> Result<Vec<u8>, ZkError> {
    bincode::serialize(vk).map_err(|e| ZkError::Internal(format!("vk encoding: {e}")))
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
    fn system_names_the_hyrax_width() {
        assert!(SYSTEM.contains(&format!("/hyrax-{HYRAX_WIDTH}/")));
        assert!(HYRAX_WIDTH.is_power_of_two() && 2048 % HYRAX_WIDTH == 0);
    }
}
