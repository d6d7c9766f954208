//! Fiat–Shamir for the tensor proofs: Spartan2's Keccak-256 transcript, fed only bytes (points are
//! absorbed in their 32-byte compressed form, so a prover-chosen identity point is just bytes,
//! never a panic in coordinate extraction).

use group::GroupEncoding;
use spartan2::provider::PallasHyraxEngine;
use spartan2::provider::keccak::Keccak256Transcript;
use spartan2::traits::transcript::{TranscriptEngineTrait, TranscriptReprTrait};

use super::field::F;
use crate::error::ZkError;

pub type Point = spartan2::provider::pasta::pallas::Point;

struct Bytes<'a>(&'a [u8]);

impl<G: spartan2::traits::Group> TranscriptReprTrait<G> for Bytes<'_> {
    fn to_transcript_bytes(&self) -> Vec<u8> {
        let mut v = (self.0.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(self.0);
        v
    }
}

pub struct Transcript(Keccak256Transcript<PallasHyraxEngine>, usize);

impl Transcript {
    pub fn new(label: &'static [u8]) -> Self {
        Transcript(Keccak256Transcript::new(label), 0)
    }

    pub fn bytes(&mut self, label: &'static [u8], b: &[u8]) {
        self.0.absorb(label, &Bytes(b));
    }

    pub fn scalar(&mut self, label: &'static [u8], s: &F) {
        self.bytes(label, &s.to_bytes());
    }

    pub fn scalars(&mut self, label: &'static [u8], s: &[F]) {
        let mut b = Vec::with_capacity(s.len() * 32);
        for x in s {
            b.extend_from_slice(&x.to_bytes());
        }
        self.bytes(label, &b);
    }

    pub fn points(&mut self, label: &'static [u8], p: &[Point]) {
        let mut b = Vec::with_capacity(p.len() * 32);
        for x in p {
            b.extend_from_slice(x.to_bytes().as_ref());
        }
        self.bytes(label, &b);
    }

    /// Challenges drawn so far: the prover checks none was drawn before it commits.
    pub fn drawn(&self) -> usize {
        self.1
    }

    pub fn challenge(&mut self, label: &'static [u8]) -> Result<F, ZkError> {
        self.1 += 1;
        self.0
            .squeeze(label)
            .map_err(|e| ZkError::Internal(format!("transcript: {e}")))
    }

    pub fn challenges(&mut self, label: &'static [u8], n: usize) -> Result<Vec<F>, ZkError> {
        (0..n).map(|_| self.challenge(label)).collect()
    }
}
