//! RFC 6962 / RFC 9162 Merkle hashing, proof verification, and the stored-hash layout the log
//! keeps on disk.
//!
//! Hashing and proof checking are delegated to `tlog_tiles` (a port of Go's `sumdb/tlog`); this
//! module adds the size checks that turn a bad proof into a clear error instead of a bare
//! "invalid proof", and the compact range ([`Frontier`]) the appender keeps in memory.
//!
//! Stored-hash layout: every hash of the tree that covers a complete power-of-two subtree is
//! written once, at the dense index `stored_hash_index(level, n)` (Crosby–Wallach order, as in
//! Go's `sumdb/tlog`). Appending record `n` writes `1 + trailing_ones(n)` hashes; any proof for a
//! tree of any size needs at most `2·log₂(size)` of them.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

pub use tlog_tiles::{stored_hash_count, stored_hash_index};

/// A SHA-256 Merkle tree hash (leaf, interior node or root). Written as standard base64, as in
/// checkpoints, proofs and CT responses.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses standard base64 of exactly 32 bytes.
    pub fn from_base64(s: &str) -> Result<Self, HashParseError> {
        let err = || HashParseError {
            input: s.chars().take(80).collect(),
        };
        let bytes = B64.decode(s).map_err(|_| err())?;
        Ok(Hash(bytes.try_into().map_err(|_| err())?))
    }

    /// From a byte slice that must be exactly 32 bytes long.
    pub fn from_slice(b: &[u8]) -> Option<Self> {
        b.try_into().ok().map(Hash)
    }

    pub(crate) fn to_tlog(self) -> tlog_tiles::Hash {
        tlog_tiles::Hash(self.0)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid hash {input:?}: expected standard base64 of 32 bytes")]
pub struct HashParseError {
    pub input: String,
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&B64.encode(self.0))
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Hash {
    type Err = HashParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Hash::from_base64(s)
    }
}

impl Serialize for Hash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Root of the empty tree: SHA-256 of the empty string (RFC 6962 §2.1).
pub const EMPTY_ROOT: Hash = Hash(tlog_tiles::EMPTY_HASH.0);

/// `SHA-256(0x00 ‖ entry)`.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    Hash(tlog_tiles::record_hash(entry).0)
}

/// `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: Hash, right: Hash) -> Hash {
    Hash(tlog_tiles::node_hash(left.to_tlog(), right.to_tlog()).0)
}

/// Why a proof did not verify. Every variant names the numbers involved, so a caller can tell
/// a truncated proof from a wrong tree size from a forged hash.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProofError {
    #[error("leaf index {index} is not in a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error(
        "inclusion proof for index {index} in a tree of size {size} must have {expected} hashes, \
         got {got}"
    )]
    InclusionLength {
        index: u64,
        size: u64,
        expected: usize,
        got: usize,
    },
    #[error(
        "inclusion proof for index {index} does not lead to the root of the tree of size {size}"
    )]
    InclusionMismatch { index: u64, size: u64 },
    #[error("consistency proof from size {old} to {new}: the new size is smaller")]
    SizeDecreased { old: u64, new: u64 },
    #[error("consistency proof from an empty tree is meaningless (old size 0)")]
    EmptyOldTree,
    #[error("trees of equal size {size} must have equal roots and an empty proof")]
    SameSizeMismatch { size: u64 },
    #[error("consistency proof from size {old} to {new} must have {expected} hashes, got {got}")]
    ConsistencyLength {
        old: u64,
        new: u64,
        expected: usize,
        got: usize,
    },
    #[error("consistency proof from size {old} to {new} does not match the two roots")]
    ConsistencyMismatch { old: u64, new: u64 },
}

/// `(inner, border)` decomposition of an inclusion proof (RFC 9162 §2.1.3.2): `inner` hashes
/// below the point where the path to `index` leaves the left-complete part, `border` above.
fn decompose(index: u64, size: u64) -> (usize, usize) {
    let inner = (64 - (index ^ (size - 1)).leading_zeros()) as usize;
    let border = (index >> inner).count_ones() as usize;
    (inner, border)
}

/// Number of hashes in the inclusion proof of `index` in a tree of `size` (requires index < size).
pub fn inclusion_proof_len(index: u64, size: u64) -> usize {
    let (inner, border) = decompose(index, size);
    inner + border
}

/// Number of hashes in the consistency proof from `old` to `new` (requires 0 < old < new).
pub fn consistency_proof_len(old: u64, new: u64) -> usize {
    let (inner, border) = decompose(old - 1, new);
    let shift = old.trailing_zeros() as usize;
    let start = if old.is_power_of_two() { 0 } else { 1 };
    start + inner - shift + border
}

/// Checks that `proof` shows the leaf with hash `leaf` at `index` in the tree of `size` leaves
/// whose root is `root`.
pub fn verify_inclusion(
    leaf: Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let expected = inclusion_proof_len(index, size);
    if proof.len() != expected {
        return Err(ProofError::InclusionLength {
            index,
            size,
            expected,
            got: proof.len(),
        });
    }
    let p: Vec<tlog_tiles::Hash> = proof.iter().map(|h| h.to_tlog()).collect();
    tlog_tiles::check_record(&p, size, root.to_tlog(), index, leaf.to_tlog())
        .map_err(|_| ProofError::InclusionMismatch { index, size })
}

/// Checks that the tree of `new` leaves with root `new_root` extends the tree of `old` leaves
/// with root `old_root`. As in transparency-dev/merkle, `old == 0` is rejected: every tree
/// extends the empty tree, so such a "proof" proves nothing and callers handle it explicitly.
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: Hash,
    new_root: Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if new < old {
        return Err(ProofError::SizeDecreased { old, new });
    }
    if old == 0 {
        return Err(ProofError::EmptyOldTree);
    }
    if old == new {
        if !proof.is_empty() || old_root != new_root {
            return Err(ProofError::SameSizeMismatch { size: old });
        }
        return Ok(());
    }
    let expected = consistency_proof_len(old, new);
    if proof.len() != expected {
        return Err(ProofError::ConsistencyLength {
            old,
            new,
            expected,
            got: proof.len(),
        });
    }
    let p: Vec<tlog_tiles::Hash> = proof.iter().map(|h| h.to_tlog()).collect();
    tlog_tiles::check_tree(&p, new, new_root.to_tlog(), old, old_root.to_tlog())
        .map_err(|_| ProofError::ConsistencyMismatch { old, new })
}

/// The compact range of a tree: the roots of its maximal complete subtrees, left to right (one
/// per set bit of the size). Enough to append and to compute the root without reading storage.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frontier {
    size: u64,
    roots: Vec<Hash>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a frontier for {size} leaves needs {expected} subtree hashes, got {got}")]
pub struct FrontierError {
    pub size: u64,
    pub expected: usize,
    pub got: usize,
}

impl Frontier {
    pub fn new() -> Self {
        Frontier::default()
    }

    /// Rebuilds the frontier from the stored hashes at [`Frontier::stored_indexes`]`(size)`.
    pub fn from_subtree_roots(size: u64, roots: Vec<Hash>) -> Result<Self, FrontierError> {
        let expected = size.count_ones() as usize;
        if roots.len() != expected {
            return Err(FrontierError {
                size,
                expected,
                got: roots.len(),
            });
        }
        Ok(Frontier { size, roots })
    }

    /// Stored-hash indexes of the subtree roots that make up a tree of `size` leaves.
    pub fn stored_indexes(size: u64) -> Vec<u64> {
        tlog_tiles::sub_tree_index(0, size, Vec::new())
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn subtree_roots(&self) -> &[Hash] {
        &self.roots
    }

    /// Appends a leaf hash; returns the hashes to store for this record, in stored-index order
    /// starting at `stored_hash_index(0, old size)`: the leaf, then each subtree it completes.
    pub fn push(&mut self, leaf: Hash) -> Vec<Hash> {
        let mut stored = Vec::with_capacity(2);
        stored.push(leaf);
        let mut h = leaf;
        let mut n = self.size;
        while n & 1 == 1 {
            // A set low bit means a complete left sibling of the same height sits on the stack.
            let Some(left) = self.roots.pop() else { break };
            h = node_hash(left, h);
            stored.push(h);
            n >>= 1;
        }
        self.roots.push(h);
        self.size += 1;
        stored
    }

    /// Root hash of the tree (RFC 6962 MTH).
    pub fn root(&self) -> Hash {
        let mut it = self.roots.iter().rev();
        let Some(&last) = it.next() else {
            return EMPTY_ROOT;
        };
        it.fold(last, |acc, &left| node_hash(left, acc))
    }
}

/// Root of a list of leaf hashes (reference computation, for audits and tests).
pub fn root_of(leaves: &[Hash]) -> Hash {
    let mut f = Frontier::new();
    for &l in leaves {
        f.push(l);
    }
    f.root()
}

/// Proof generation in two steps, so storage can be asynchronous: first ask which stored hashes
/// a proof needs ([`inclusion_plan`], [`consistency_plan`]), read them (O(log n) point reads),
/// then assemble ([`ProofPlan::assemble`]). The tree walk itself is `tlog_tiles`'.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProofPlan {
    kind: PlanKind,
    /// Stored-hash indexes to read, in the order `assemble` expects them.
    pub indexes: Vec<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PlanKind {
    Inclusion { index: u64, size: u64 },
    Consistency { old: u64, new: u64 },
    Empty,
}

/// A `HashReader` that only notes which indexes were asked for, then stops the walk.
struct Recorder(std::cell::RefCell<Vec<u64>>);

impl tlog_tiles::HashReader for Recorder {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog_tiles::Hash>, tlog_tiles::Error> {
        *self.0.borrow_mut() = indexes.to_vec();
        Err(tlog_tiles::Error::IndexesNotInTree)
    }
}

/// A `HashReader` over hashes already read, refusing any other request.
struct Supplied<'a> {
    indexes: &'a [u64],
    hashes: &'a [Hash],
}

impl tlog_tiles::HashReader for Supplied<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog_tiles::Hash>, tlog_tiles::Error> {
        if indexes != self.indexes || self.hashes.len() != indexes.len() {
            return Err(tlog_tiles::Error::IndexesNotInTree);
        }
        Ok(self.hashes.iter().map(|h| h.to_tlog()).collect())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("proof assembly was given {got} hashes for a plan of {expected}")]
pub struct AssembleError {
    pub expected: usize,
    pub got: usize,
}

/// Which stored hashes the inclusion proof of `index` in the tree of `size` needs.
pub fn inclusion_plan(index: u64, size: u64) -> Result<ProofPlan, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let rec = Recorder(Default::default());
    // The recorder aborts the walk at its single read; an `Ok` means no read was needed.
    let _ = tlog_tiles::prove_record(size, index, &rec);
    Ok(ProofPlan {
        kind: PlanKind::Inclusion { index, size },
        indexes: rec.0.into_inner(),
    })
}

/// Which stored hashes the consistency proof from `old` to `new` needs. Equal sizes need none
/// (the proof is empty); an empty old tree or a shrinking tree is an error.
pub fn consistency_plan(old: u64, new: u64) -> Result<ProofPlan, ProofError> {
    if new < old {
        return Err(ProofError::SizeDecreased { old, new });
    }
    if old == 0 {
        return Err(ProofError::EmptyOldTree);
    }
    if old == new {
        return Ok(ProofPlan {
            kind: PlanKind::Empty,
            indexes: Vec::new(),
        });
    }
    let rec = Recorder(Default::default());
    let _ = tlog_tiles::prove_tree(new, old, &rec);
    Ok(ProofPlan {
        kind: PlanKind::Consistency { old, new },
        indexes: rec.0.into_inner(),
    })
}

impl ProofPlan {
    /// Builds the proof from the hashes read at `self.indexes` (same order).
    pub fn assemble(&self, hashes: &[Hash]) -> Result<Vec<Hash>, AssembleError> {
        let err = AssembleError {
            expected: self.indexes.len(),
            got: hashes.len(),
        };
        if hashes.len() != self.indexes.len() {
            return Err(err);
        }
        let r = Supplied {
            indexes: &self.indexes,
            hashes,
        };
        let proof = match self.kind {
            PlanKind::Empty => return Ok(Vec::new()),
            PlanKind::Inclusion { index, size } => tlog_tiles::prove_record(size, index, &r),
            PlanKind::Consistency { old, new } => tlog_tiles::prove_tree(new, old, &r),
        };
        proof
            .map(|p| p.into_iter().map(|h| Hash(h.0)).collect())
            .map_err(|_| err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frontier_stores_the_same_hashes_as_tlog() {
        // tlog_tiles::stored_hashes is the Go sumdb/tlog algorithm; our frontier must write the
        // same hashes at the same indexes, or tiles and proofs would disagree.
        struct Mem(Vec<tlog_tiles::Hash>);
        impl tlog_tiles::HashReader for Mem {
            fn read_hashes(&self, idx: &[u64]) -> Result<Vec<tlog_tiles::Hash>, tlog_tiles::Error> {
                Ok(idx.iter().map(|&i| self.0[i as usize]).collect())
            }
        }
        let mut mem = Mem(Vec::new());
        let mut f = Frontier::new();
        for n in 0..300u64 {
            let data = n.to_be_bytes();
            let want = tlog_tiles::stored_hashes(n, &data, &mem).unwrap();
            let got = f.push(leaf_hash(&data));
            assert_eq!(got.len(), want.len(), "record {n}");
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(g.0, w.0);
            }
            assert_eq!(mem.0.len() as u64, stored_hash_index(0, n));
            mem.0.extend(want);
            assert_eq!(mem.0.len() as u64, stored_hash_count(n + 1));
            assert_eq!(f.root().0, tlog_tiles::tree_hash(n + 1, &mem).unwrap().0);
            let idx = Frontier::stored_indexes(n + 1);
            let roots: Vec<Hash> = idx.iter().map(|&i| Hash(mem.0[i as usize].0)).collect();
            assert_eq!(Frontier::from_subtree_roots(n + 1, roots).unwrap(), f);
        }
    }

    #[test]
    fn proof_lengths_match_rfc9162_examples() {
        // RFC 9162 §2.1.5 example tree of 7 leaves: inclusion of d0 has 3 hashes, of d6 has 2;
        // consistency 3→7 has 4 hashes, 4→7 has 1, 6→7 has 3.
        assert_eq!(inclusion_proof_len(0, 7), 3);
        assert_eq!(inclusion_proof_len(6, 7), 2);
        assert_eq!(consistency_proof_len(3, 7), 4);
        assert_eq!(consistency_proof_len(4, 7), 1);
        assert_eq!(consistency_proof_len(6, 7), 3);
        assert_eq!(inclusion_proof_len(0, 1), 0);
    }

    #[test]
    fn hash_base64_round_trips_and_rejects_wrong_lengths() {
        let h = leaf_hash(b"x");
        assert_eq!(h.to_string().parse::<Hash>().unwrap(), h);
        assert!("AAAA".parse::<Hash>().is_err());
        assert!("not base64!".parse::<Hash>().is_err());
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(serde_json::from_str::<Hash>(&json).unwrap(), h);
    }
}
