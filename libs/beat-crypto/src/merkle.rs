//! Binary Merkle trees over SHA-256 with index-bound leaves and canonical proofs.
//!
//! AVID reliable broadcast (BEAT0, protocol reference §1.4(b)) commits to the `n` erasure-coded
//! shards with the root of this tree and ships each shard with its [`MerkleProof`].
//!
//! * A leaf hash binds the leaf's index: `H(MERKLE_LEAF, index as u64, leaf)`, so a shard can
//!   never be accepted at a position other than the one it was committed at.
//! * Interior nodes are `H(MERKLE_NODE, left, right)`.
//! * The leaf level is padded to a power of two with the fixed hash `H(MERKLE_EMPTY)`, which no
//!   real leaf can produce because the tags differ.
//! * A proof is canonical: [`MerkleProof::verify`] takes the leaf count from the verifier (the
//!   committee size), rejects indices outside `0..leaf_count` and any sibling count other than
//!   `⌈log2(leaf_count)⌉`. A tree with one leaf has the leaf hash as root and empty proofs.
//!
//! ```
//! use beat_crypto::merkle::MerkleTree;
//!
//! let shards = [b"zero".to_vec(), b"one".to_vec(), b"two".to_vec()];
//! let tree = MerkleTree::new(&shards);
//! let proof = tree.proof(1).expect("index 1 is in range");
//! assert!(proof.verify(&tree.root(), b"one", 3));
//! assert!(!proof.verify(&tree.root(), b"two", 3));
//! ```

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::{
    dst,
    hash::{Digest, Hasher, hash_parts},
    par,
};

/// A Merkle tree kept in memory with every level, so that proofs are cheap to extract.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MerkleTree {
    leaf_count: usize,
    /// `levels[0]` holds the padded leaf hashes; the last level holds the root alone.
    levels: Vec<Vec<Digest>>,
}

/// An authentication path from one leaf to the root.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MerkleProof {
    /// Position of the leaf.
    pub index: u32,
    /// Sibling hashes from the leaf level upwards.
    pub siblings: Vec<Digest>,
}

/// A leaf whose proof verified ([`MerkleProof::verify_leaf`]): its index and bytes bound to
/// the leaf hash computed from them, so that rebuilding the tree later
/// ([`crate::erasure::ErasureCoder::decode_verified_leaves`]) need not hash the bytes again.
/// Only verification constructs one, so the hash is always that of these bytes at this index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedLeaf {
    index: u32,
    bytes: Bytes,
    hash: Digest,
}

impl VerifiedLeaf {
    /// The leaf's position.
    pub fn index(&self) -> usize {
        self.index as usize
    }

    /// The leaf's bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// `H(MERKLE_LEAF, index, bytes)`.
    pub(crate) fn hash(&self) -> Digest {
        self.hash
    }
}

/// Returns the hash of the leaf at `index`.
pub(crate) fn leaf_hash(index: u64, leaf: &[u8]) -> Digest {
    let mut h = Hasher::new(dst::MERKLE_LEAF);
    h.u64(index).part(leaf);
    h.finish()
}

/// Returns the hash of an interior node.
fn node_hash(left: &Digest, right: &Digest) -> Digest {
    hash_parts(dst::MERKLE_NODE, &[left.as_bytes(), right.as_bytes()])
}

/// Returns the hash of a padding leaf.
fn empty_hash() -> Digest {
    hash_parts(dst::MERKLE_EMPTY, &[])
}

/// Returns `⌈log2(count)⌉` (0 for a single leaf), or `None` if it does not fit.
fn depth_for(count: usize) -> Option<usize> {
    count
        .max(1)
        .checked_next_power_of_two()
        .map(|p| p.trailing_zeros() as usize)
}

// === impl MerkleTree ===

impl MerkleTree {
    /// Builds the tree over `leaves`, in order.
    ///
    /// An empty slice gives a tree whose root is the padding hash and which has no proofs.
    pub fn new<L: AsRef<[u8]>>(leaves: &[L]) -> Self {
        let hashes = leaves
            .iter()
            .enumerate()
            .map(|(i, leaf)| leaf_hash(i as u64, leaf.as_ref()))
            .collect();
        Self::from_leaf_hashes(hashes)
    }

    /// Builds the tree like [`Self::new`], hashing the leaves on up to `threads` threads when
    /// they are large enough to be worth it.
    pub(crate) fn new_parallel<L: AsRef<[u8]> + Sync>(leaves: &[L], threads: usize) -> Self {
        let total = leaves.iter().map(|l| l.as_ref().len()).sum();
        let hashes = par::map(leaves, par::threads_for(total, threads), |i, leaf| {
            leaf_hash(i as u64, leaf.as_ref())
        });
        Self::from_leaf_hashes(hashes)
    }

    pub(crate) fn from_leaf_hashes(mut level: Vec<Digest>) -> Self {
        let leaf_count = level.len();
        // `leaf_count` is the length of an in-memory slice, so its next power of two fits.
        let width = leaf_count.max(1).next_power_of_two();
        level.resize(width, empty_hash());
        let mut levels = vec![level];
        while let Some(last) = levels.last().filter(|l| l.len() > 1) {
            let next = last
                .chunks_exact(2)
                .map(|pair| node_hash(&pair[0], &pair[1]))
                .collect();
            levels.push(next);
        }
        Self { leaf_count, levels }
    }

    /// Returns the root hash.
    pub fn root(&self) -> Digest {
        self.levels
            .last()
            .and_then(|l| l.first())
            .copied()
            .unwrap_or_else(empty_hash)
    }

    /// Returns the number of (unpadded) leaves.
    pub fn leaf_count(&self) -> usize {
        self.leaf_count
    }

    /// Returns the proof for the leaf at `index`, or `None` if `index ≥ leaf_count()`.
    pub fn proof(&self, index: usize) -> Option<MerkleProof> {
        if index >= self.leaf_count {
            return None;
        }
        let index32 = u32::try_from(index).ok()?;
        let siblings = self
            .levels
            .iter()
            .take(self.levels.len().saturating_sub(1))
            .enumerate()
            .map(|(depth, level)| level.get((index >> depth) ^ 1).copied())
            .collect::<Option<Vec<_>>>()?;
        Some(MerkleProof {
            index: index32,
            siblings,
        })
    }
}

// === impl MerkleProof ===

impl MerkleProof {
    /// Returns `true` if `leaf` sits at `self.index` of a `leaf_count`-leaf tree with root
    /// `root`.
    ///
    /// The check is canonical: it fails if `index ≥ leaf_count` or if the proof does not have
    /// exactly `⌈log2(leaf_count)⌉` siblings.
    pub fn verify(&self, root: &Digest, leaf: &[u8], leaf_count: usize) -> bool {
        self.verified_hash(root, leaf, leaf_count).is_some()
    }

    /// Verifies like [`Self::verify`] and, if the proof holds, returns the leaf with its hash
    /// for a later tree rebuild to reuse.
    pub fn verify_leaf(
        &self,
        root: &Digest,
        leaf: Bytes,
        leaf_count: usize,
    ) -> Option<VerifiedLeaf> {
        let hash = self.verified_hash(root, &leaf, leaf_count)?;
        Some(VerifiedLeaf {
            index: self.index,
            bytes: leaf,
            hash,
        })
    }

    /// The leaf's hash if the proof holds.
    fn verified_hash(&self, root: &Digest, leaf: &[u8], leaf_count: usize) -> Option<Digest> {
        let index = self.index as usize;
        if index >= leaf_count || depth_for(leaf_count) != Some(self.siblings.len()) {
            return None;
        }
        let hash = leaf_hash(u64::from(self.index), leaf);
        let mut acc = hash;
        for (depth, sibling) in self.siblings.iter().enumerate() {
            acc = if (index >> depth) & 1 == 0 {
                node_hash(&acc, sibling)
            } else {
                node_hash(sibling, &acc)
            };
        }
        (acc == *root).then_some(hash)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn leaves(count: usize) -> Vec<Vec<u8>> {
        (0..count)
            .map(|i| format!("leaf {i}").into_bytes())
            .collect()
    }

    #[test]
    fn every_proof_verifies_for_sizes_1_to_17() {
        for count in 1..=17 {
            let leaves = leaves(count);
            let tree = MerkleTree::new(&leaves);
            assert_eq!(tree.leaf_count(), count);
            for (i, leaf) in leaves.iter().enumerate() {
                let proof = tree.proof(i).unwrap();
                assert_eq!(proof.siblings.len(), depth_for(count).unwrap());
                assert!(
                    proof.verify(&tree.root(), leaf, count),
                    "count {count} i {i}"
                );
            }
            assert!(tree.proof(count).is_none());
        }
    }

    #[test]
    fn parallel_construction_is_identical() {
        let big: Vec<Vec<u8>> = (0..9u8).map(|i| vec![i; 100_000]).collect();
        for threads in [1, 2, 3, 16] {
            assert_eq!(
                MerkleTree::new_parallel(&big, threads),
                MerkleTree::new(&big)
            );
        }
    }

    #[test]
    fn single_leaf_tree_has_leaf_hash_root_and_empty_proof() {
        let tree = MerkleTree::new(&[b"only"]);
        assert_eq!(tree.root(), leaf_hash(0, b"only"));
        let proof = tree.proof(0).unwrap();
        assert!(proof.siblings.is_empty());
        assert!(proof.verify(&tree.root(), b"only", 1));
        assert!(!proof.verify(&tree.root(), b"other", 1));
    }

    #[test]
    fn empty_tree_has_padding_root_and_no_proofs() {
        let tree = MerkleTree::new::<&[u8]>(&[]);
        assert_eq!(tree.root(), empty_hash());
        assert!(tree.proof(0).is_none());
        let bogus = MerkleProof {
            index: 0,
            siblings: vec![],
        };
        assert!(!bogus.verify(&tree.root(), b"", 0));
    }

    #[test]
    fn proof_rejects_out_of_range_index_and_wrong_sibling_count() {
        let leaves = leaves(5);
        let tree = MerkleTree::new(&leaves);
        let root = tree.root();
        let good = tree.proof(4).unwrap();
        assert!(good.verify(&root, &leaves[4], 5));
        // Same path claimed for a tree whose size says the index is padding.
        assert!(!good.verify(&root, &leaves[4], 4));
        // Extra or missing siblings.
        let mut long = good.clone();
        long.siblings.push(root);
        assert!(!long.verify(&root, &leaves[4], 5));
        let mut short = good.clone();
        short.siblings.pop();
        assert!(!short.verify(&root, &leaves[4], 5));
        // Padding slot index (5..8) is never accepted.
        let padding = MerkleProof {
            index: 5,
            siblings: good.siblings,
        };
        assert!(!padding.verify(&root, &[], 5));
    }

    #[test]
    fn leaves_are_bound_to_their_index() {
        // Two equal leaves at different positions must not share a proof.
        let leaves = vec![b"same".to_vec(), b"same".to_vec()];
        let tree = MerkleTree::new(&leaves);
        let mut proof = tree.proof(0).unwrap();
        proof.index = 1;
        assert!(!proof.verify(&tree.root(), b"same", 2));
    }

    #[test]
    fn padding_leaf_differs_from_any_real_empty_leaf() {
        // Three leaves plus padding must not equal four leaves whose last is empty.
        let three = MerkleTree::new(&[b"a".as_slice(), b"b", b"c"]);
        let four = MerkleTree::new(&[b"a".as_slice(), b"b", b"c", b""]);
        assert_ne!(three.root(), four.root());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn flipped_bit_or_sibling_fails(count in 1usize..40, seed in any::<u64>()) {
            let leaves: Vec<Vec<u8>> =
                (0..count).map(|i| (seed ^ i as u64).to_le_bytes().to_vec()).collect();
            let tree = MerkleTree::new(&leaves);
            let i = (seed as usize) % count;
            let proof = tree.proof(i).unwrap();
            prop_assert!(proof.verify(&tree.root(), &leaves[i], count));
            let bit = (seed >> 8) as usize % 64;
            let mut leaf = leaves[i].clone();
            leaf[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(!proof.verify(&tree.root(), &leaf, count));
            if !proof.siblings.is_empty() {
                let mut bad = proof;
                let s = (seed >> 16) as usize % bad.siblings.len();
                bad.siblings[s].0[bit % 32] ^= 0x80;
                prop_assert!(!bad.verify(&tree.root(), &leaves[i], count));
            }
        }
    }
}
