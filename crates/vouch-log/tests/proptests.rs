//! Property tests: for random tree sizes, every inclusion and consistency proof built from the
//! stored-hash layout verifies, agrees byte for byte with an independent implementation
//! (`ct-merkle`), and stops verifying after any single-bit change to a proof hash, the leaf or
//! a root.

#![allow(clippy::unwrap_used)]

use ct_merkle::mem_backed_tree::MemoryBackedTree;
use proptest::prelude::*;

use vouch_log::merkle::{
    Frontier, Hash, consistency_plan, inclusion_plan, leaf_hash, verify_consistency,
    verify_inclusion,
};

/// A log held as its stored hashes, exactly as a `LogStore` holds them.
struct Stored {
    hashes: Vec<Hash>,
    leaves: Vec<Vec<u8>>,
}

impl Stored {
    fn build(n: u64, salt: u64) -> Self {
        let mut f = Frontier::new();
        let mut hashes = Vec::new();
        let mut leaves = Vec::new();
        for i in 0..n {
            let data = format!("entry {i} salt {salt}").into_bytes();
            hashes.extend(f.push(leaf_hash(&data)));
            leaves.push(data);
        }
        Stored { hashes, leaves }
    }

    fn read(&self, idx: &[u64]) -> Vec<Hash> {
        idx.iter().map(|&i| self.hashes[i as usize]).collect()
    }

    fn root(&self, size: u64) -> Hash {
        let idx = Frontier::stored_indexes(size);
        Frontier::from_subtree_roots(size, self.read(&idx))
            .unwrap()
            .root()
    }

    fn inclusion(&self, index: u64, size: u64) -> Vec<Hash> {
        let plan = inclusion_plan(index, size).unwrap();
        plan.assemble(&self.read(&plan.indexes)).unwrap()
    }

    fn consistency(&self, old: u64, new: u64) -> Vec<Hash> {
        let plan = consistency_plan(old, new).unwrap();
        plan.assemble(&self.read(&plan.indexes)).unwrap()
    }
}

fn flip(h: Hash, bit: usize) -> Hash {
    let mut b = h.0;
    b[bit / 8] ^= 1 << (bit % 8);
    Hash(b)
}

fn concat(p: &[Hash]) -> Vec<u8> {
    p.iter().flat_map(|h| h.0).collect()
}

fn sizes() -> impl Strategy<Value = (u64, u64, u64, u64)> {
    (1u64..1025, any::<u64>())
        .prop_flat_map(|(size, salt)| (Just(size), 0..size, 1..=size, Just(salt)))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    #[test]
    fn inclusion_proofs_verify_match_ct_merkle_and_break_on_any_bit((size, index, _old, salt) in sizes()) {
        let s = Stored::build(size, salt);
        let root = s.root(size);
        let proof = s.inclusion(index, size);
        let leaf = leaf_hash(&s.leaves[index as usize]);
        prop_assert!(verify_inclusion(leaf, index, size, &proof, root).is_ok());

        let mut reference: MemoryBackedTree<sha2::Sha256, Vec<u8>> = MemoryBackedTree::new();
        for l in &s.leaves {
            reference.push(l.clone());
        }
        let ref_root = reference.root().as_bytes().to_vec();
        prop_assert_eq!(ref_root, root.0.to_vec());
        let ref_proof = reference.prove_inclusion(index as usize).as_bytes().to_vec();
        prop_assert_eq!(ref_proof, concat(&proof));

        for (i, h) in proof.iter().enumerate() {
            for bit in 0..256 {
                let mut p = proof.clone();
                p[i] = flip(*h, bit);
                prop_assert!(verify_inclusion(leaf, index, size, &p, root).is_err());
            }
        }
        for bit in 0..256 {
            prop_assert!(verify_inclusion(flip(leaf, bit), index, size, &proof, root).is_err());
            prop_assert!(verify_inclusion(leaf, index, size, &proof, flip(root, bit)).is_err());
        }
        for bit in 0..64 {
            let other = index ^ (1 << bit);
            if other < size {
                prop_assert!(verify_inclusion(leaf, other, size, &proof, root).is_err());
            }
        }
        // Truncated and padded proofs.
        if !proof.is_empty() {
            prop_assert!(verify_inclusion(leaf, index, size, &proof[1..], root).is_err());
        }
        let mut longer = proof.clone();
        longer.push(root);
        prop_assert!(verify_inclusion(leaf, index, size, &longer, root).is_err());
    }

    #[test]
    fn consistency_proofs_verify_match_ct_merkle_and_break_on_any_bit((size, _index, old, salt) in sizes()) {
        let s = Stored::build(size, salt);
        let (old_root, new_root) = (s.root(old), s.root(size));
        let proof = s.consistency(old, size);
        prop_assert!(verify_consistency(old, size, old_root, new_root, &proof).is_ok());

        let mut reference: MemoryBackedTree<sha2::Sha256, Vec<u8>> = MemoryBackedTree::new();
        for l in &s.leaves {
            reference.push(l.clone());
        }
        if old < size {
            let r = reference.prove_consistency((size - old) as usize);
            prop_assert_eq!(r.as_bytes().to_vec(), concat(&proof));
        }

        for (i, h) in proof.iter().enumerate() {
            for bit in 0..256 {
                let mut p = proof.clone();
                p[i] = flip(*h, bit);
                prop_assert!(verify_consistency(old, size, old_root, new_root, &p).is_err());
            }
        }
        for bit in 0..256 {
            prop_assert!(verify_consistency(old, size, flip(old_root, bit), new_root, &proof).is_err());
            prop_assert!(verify_consistency(old, size, old_root, flip(new_root, bit), &proof).is_err());
        }
        if size > old {
            // Claiming the old tree was bigger or smaller than it was is refused.
            prop_assert!(verify_consistency(old + 1, size, old_root, new_root, &proof).is_err());
            if old > 1 {
                prop_assert!(verify_consistency(old - 1, size, old_root, new_root, &proof).is_err());
            }
        }
    }
}

#[test]
fn proofs_at_power_of_two_boundaries() {
    // Exhaustive over every (index, size) and (old, new) up to 70 leaves, across the 64 edge.
    let s = Stored::build(70, 7);
    for size in 1..=70u64 {
        let root = s.root(size);
        for index in 0..size {
            let p = s.inclusion(index, size);
            verify_inclusion(leaf_hash(&s.leaves[index as usize]), index, size, &p, root).unwrap();
        }
        for old in 1..=size {
            let p = s.consistency(old, size);
            verify_consistency(old, size, s.root(old), root, &p).unwrap();
        }
    }
}
