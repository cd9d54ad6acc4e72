//! Erasure coding with Merkle commitments for AVID reliable broadcast (BEAT0).
//!
//! The proposer frames its payload canonically, splits it into `k = n − 2f` data shards,
//! adds `n − k = 2f` Reed–Solomon parity shards (reed-solomon-simd) and commits to all `n`
//! shards with a [`MerkleTree`]. Replica `i` receives shard `i` with its proof (protocol
//! reference §1.4(b)).
//!
//! # Framing
//!
//! `framed = payload_len as u64 (little endian) ‖ payload ‖ zero padding` of exactly `k·S`
//! bytes, where the shard length is `S = shard_len(payload_len) = max(64, ⌈(8 + len)/k⌉ rounded
//! up to a multiple of 64)`. Shard `i < k` is `framed[i·S..(i+1)·S]`. The encoding is a
//! function of the payload alone, so a decoder rejects anything else: a length header above the
//! capacity `k·S − 8`, a shard length other than `shard_len(len)`, or nonzero padding.
//!
//! # Decoding and the re-encoding check
//!
//! [`ErasureCoder::decode`] reconstructs from any `k` distinct shards. A faulty proposer can
//! commit to `n` shards that are not a codeword, and then different `k`-subsets decode to
//! different payloads. [`ErasureCoder::decode_verified`] therefore re-encodes the decoded data
//! and compares the Merkle root with the committed one before it looks at the framing (pitfall
//! 6 of the protocol reference; amiller/HoneyBadgerBFT#65). Given shards whose proofs verified
//! against that root, every honest replica then reaches the same verdict from any `k` shards:
//! the same payload, or an error for which [`ErasureError::is_proposer_fault`] holds.
//!
//! # Cost
//!
//! Encoding hashes `n/k` times the payload (SHA-256) and runs the Reed–Solomon encoder; the
//! hashing dominates, so large inputs are hashed on a few scoped threads
//! ([`ErasureCoder::with_threads`]). Decoding from parity shards has a fixed cost of a few
//! hundred microseconds regardless of size (reed-solomon-simd's decoder transforms an
//! error-locator table over all of GF(2^16)); decoding from the `k` data shards skips it.
//!
//! ```
//! use beat_crypto::erasure::ErasureCoder;
//! use beat_types::Committee;
//!
//! let coder = ErasureCoder::new(Committee::new(4)?); // n = 4, f = 1, k = 2
//! let encoded = coder.encode(b"batch of transactions")?;
//! let root = encoded.root();
//! // Any two shards suffice, e.g. the two parity shards.
//! let shards = [(2, encoded.shards[2].as_slice()), (3, encoded.shards[3].as_slice())];
//! assert!(encoded.proof(3).expect("in range").verify(&root, shards[1].1, 4));
//! assert_eq!(coder.decode_verified(&shards, &root)?, b"batch of transactions");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use beat_types::Committee;

use crate::{
    hash::Digest,
    merkle::{self, MerkleProof, MerkleTree, VerifiedLeaf},
    par, rs,
};

#[cfg(test)]
mod tests;

/// Default bound on payload sizes: 64 MiB.
pub const DEFAULT_MAX_PAYLOAD_LEN: usize = 64 << 20;

/// Shard lengths are multiples of this many bytes (one reed-solomon-simd block).
pub const SHARD_ALIGN: usize = 64;

/// A shard with its index, as passed to the decoders.
type IndexedShard<'a> = (usize, &'a [u8]);

/// Length of the little-endian `u64` payload-length header.
const HEADER_LEN: usize = 8;

/// Why encoding or decoding failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ErasureError {
    /// The code parameters are unusable.
    #[error("unsupported code parameters n={n} k={k}")]
    InvalidParams {
        /// Total shards.
        n: usize,
        /// Data shards.
        k: usize,
    },
    /// The payload is larger than the configured maximum.
    #[error("payload of {len} bytes exceeds the maximum of {max}")]
    PayloadTooLarge {
        /// Payload length.
        len: usize,
        /// Configured maximum.
        max: usize,
    },
    /// Fewer than `k` distinct shards were supplied.
    #[error("{have} distinct shards supplied, {need} needed")]
    NotEnoughShards {
        /// Distinct shards supplied.
        have: usize,
        /// Shards needed (`k`).
        need: usize,
    },
    /// A shard index is not below `n`.
    #[error("shard index {index} out of range for n={n}")]
    ShardIndexOutOfRange {
        /// Offending index.
        index: usize,
        /// Number of shards.
        n: usize,
    },
    /// The same index was supplied twice.
    #[error("shard {index} supplied more than once")]
    DuplicateShard {
        /// Offending index.
        index: usize,
    },
    /// Supplied shards have different lengths.
    #[error("shard {index} has {len} bytes, others have {expected}")]
    ShardLengthMismatch {
        /// Offending index.
        index: usize,
        /// Its length.
        len: usize,
        /// Length of the first supplied shard.
        expected: usize,
    },
    /// The shard length is zero or not a multiple of [`SHARD_ALIGN`].
    #[error("shard length {shard_len} is not a positive multiple of 64")]
    UnalignedShardLength {
        /// Supplied shard length.
        shard_len: usize,
    },
    /// The shard length exceeds what the largest allowed payload needs.
    #[error("shard length {shard_len} exceeds the maximum of {max}")]
    ShardTooLong {
        /// Supplied shard length.
        shard_len: usize,
        /// `shard_len(max_payload_len)`.
        max: usize,
    },
    /// The length header claims more bytes than the shards can hold.
    #[error("length header {len} exceeds the capacity of {capacity} bytes")]
    LengthExceedsCapacity {
        /// Header value.
        len: u64,
        /// `k·S − 8`.
        capacity: u64,
    },
    /// The shard length is not the canonical one for the decoded payload length.
    #[error(
        "shard length {shard_len} is not canonical for a {len}-byte payload (expected {expected})"
    )]
    NonCanonicalShardLength {
        /// Supplied shard length.
        shard_len: usize,
        /// Decoded payload length.
        len: u64,
        /// `shard_len(len)`.
        expected: usize,
    },
    /// A padding byte is not zero.
    #[error("nonzero padding at framed offset {offset}")]
    NonZeroPadding {
        /// Offset in the framed data of the first nonzero padding byte.
        offset: usize,
    },
    /// Re-encoding the decoded payload does not reproduce the committed Merkle root: the
    /// committed shards are not a codeword, so the proposer was faulty.
    #[error("re-encoded root {computed} does not match the committed root {expected}")]
    RootMismatch {
        /// The committed root.
        expected: Digest,
        /// The root of the re-encoded shards.
        computed: Digest,
    },
    /// The Reed–Solomon codec rejected its input.
    #[error("reed-solomon codec: {0}")]
    Codec(#[source] reed_solomon_simd::Error),
}

impl ErasureError {
    /// Returns `true` if this error, returned by [`ErasureCoder::decode_verified`] for shards
    /// whose Merkle proofs verified against the expected root, proves the proposer faulty.
    ///
    /// Every honest replica then gets such an error from any `k` verified shards (perhaps a
    /// different variant), and outputs ⊥ for the broadcast. The other variants are misuse by
    /// the caller (too few shards, duplicates, bad indices, oversized payloads to encode).
    pub fn is_proposer_fault(&self) -> bool {
        matches!(
            self,
            Self::ShardLengthMismatch { .. }
                | Self::UnalignedShardLength { .. }
                | Self::ShardTooLong { .. }
                | Self::LengthExceedsCapacity { .. }
                | Self::NonCanonicalShardLength { .. }
                | Self::NonZeroPadding { .. }
                | Self::RootMismatch { .. }
        )
    }
}

impl From<reed_solomon_simd::Error> for ErasureError {
    fn from(e: reed_solomon_simd::Error) -> Self {
        Self::Codec(e)
    }
}

/// A payload encoded into `n` shards, with the Merkle tree committing to them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedPayload {
    /// The `n` shards: `k` data shards, then `n − k` parity shards, all of equal length.
    pub shards: Vec<Vec<u8>>,
    /// The Merkle tree over `shards`.
    pub tree: MerkleTree,
}

impl EncodedPayload {
    /// Returns the Merkle root committing to every shard.
    pub fn root(&self) -> Digest {
        self.tree.root()
    }

    /// Returns the Merkle proof of shard `index`, or `None` if out of range.
    pub fn proof(&self, index: usize) -> Option<MerkleProof> {
        self.tree.proof(index)
    }
}

/// A systematic `(n, k)` Reed–Solomon coder with canonical framing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErasureCoder {
    n: usize,
    k: usize,
    max_payload_len: usize,
    threads: usize,
    /// The parity coefficients, for fast decoding of small codes.
    rows: std::sync::Arc<Vec<Vec<u16>>>,
}

// === impl ErasureCoder ===

impl ErasureCoder {
    /// Returns the coder for `committee`: `k = n − 2f` data and `2f` parity shards.
    pub fn new(committee: Committee) -> Self {
        let (n, k) = (committee.n(), committee.data_shards());
        Self {
            n,
            k,
            max_payload_len: DEFAULT_MAX_PAYLOAD_LEN,
            threads: par::default_threads(),
            // Committees are at most MAX_COMMITTEE_SIZE, far within the codec's limits; without
            // coefficients decoding still works, through the FFT decoder.
            rows: std::sync::Arc::new(rs::parity_coefficients(k, n - k).unwrap_or_default()),
        }
    }

    /// Returns a coder with `k` data shards out of `n`, `1 ≤ k ≤ n`. `n = k` (no parity) is
    /// allowed.
    pub fn with_params(n: usize, k: usize) -> Result<Self, ErasureError> {
        if k == 0 || k > n || u32::try_from(n).is_err() || !rs::supports(k, n - k) {
            return Err(ErasureError::InvalidParams { n, k });
        }
        Ok(Self {
            n,
            k,
            max_payload_len: DEFAULT_MAX_PAYLOAD_LEN,
            threads: par::default_threads(),
            rows: std::sync::Arc::new(rs::parity_coefficients(k, n - k)?),
        })
    }

    /// Returns this coder with a different payload bound (default [`DEFAULT_MAX_PAYLOAD_LEN`]).
    #[must_use]
    pub fn with_max_payload_len(mut self, max_payload_len: usize) -> Self {
        self.max_payload_len = max_payload_len;
        self
    }

    /// Returns this coder with at most `threads` threads (the caller's included) for hashing
    /// shards; 1 keeps all work on the calling thread.
    ///
    /// The default is the available parallelism, at most 4. Work under 256 KiB always stays on
    /// the calling thread, and results never depend on the thread count.
    #[must_use]
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// Returns the total number of shards `n`.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Returns the number of data shards `k` (shards needed to decode).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Returns the payload bound.
    pub fn max_payload_len(&self) -> usize {
        self.max_payload_len
    }

    /// Returns the canonical shard length for a payload of `payload_len` bytes:
    /// `max(64, ⌈(8 + payload_len)/k⌉` rounded up to a multiple of 64`)`.
    ///
    /// Lengths too large to represent saturate to the largest multiple of 64.
    pub fn shard_len(&self, payload_len: usize) -> usize {
        aligned_shard_len(payload_len as u128 + HEADER_LEN as u128, self.k)
    }

    /// Encodes `payload` into `n` shards and commits to them.
    pub fn encode(&self, payload: &[u8]) -> Result<EncodedPayload, ErasureError> {
        let len = payload.len();
        if len > self.max_payload_len {
            return Err(ErasureError::PayloadTooLarge {
                len,
                max: self.max_payload_len,
            });
        }
        let shard_len = self.shard_len(len);
        let header = (len as u64).to_le_bytes();
        let mut shards: Vec<Vec<u8>> = (0..self.k)
            .map(|i| {
                let start = i * shard_len;
                let mut shard = Vec::with_capacity(shard_len);
                // framed[start..start + S] = (header ‖ payload ‖ zeros)[start..start + S]
                if start < HEADER_LEN {
                    shard.extend_from_slice(&header[start..]);
                }
                let p_start = start.saturating_sub(HEADER_LEN).min(len);
                let p_end = (start + shard_len).saturating_sub(HEADER_LEN).min(len);
                shard.extend_from_slice(&payload[p_start..p_end]);
                shard.resize(shard_len, 0);
                shard
            })
            .collect();
        let parity = rs::encode_parity(&shards, self.n - self.k)?;
        shards.extend(parity);
        let tree = MerkleTree::new_parallel(&shards, self.threads);
        Ok(EncodedPayload { shards, tree })
    }

    /// Decodes the payload from at least `k` distinct shards `(index, bytes)`.
    ///
    /// Uses the `k` lowest indices supplied. Rejects non-canonical framing. Does not check
    /// that the shards form a codeword; use [`Self::decode_verified`] in the protocol.
    pub fn decode(&self, shards: &[(usize, &[u8])]) -> Result<Vec<u8>, ErasureError> {
        let (shard_len, chosen) = self.select(shards)?;
        let data = rs::recover_data(&self.rows, self.k, self.n - self.k, shard_len, &chosen)?;
        self.unframe(&data, shard_len)
    }

    /// Decodes like [`Self::decode`], then re-encodes and checks that the Merkle root equals
    /// `expected_root`.
    ///
    /// A mismatch is [`ErasureError::RootMismatch`]: the proposer committed to shards that are
    /// not a codeword. The root is compared before the framing is parsed, so for shards whose
    /// proofs verified, the outcome is the same from every `k`-subset (see
    /// [`ErasureError::is_proposer_fault`]).
    pub fn decode_verified(
        &self,
        shards: &[(usize, &[u8])],
        expected_root: &Digest,
    ) -> Result<Vec<u8>, ErasureError> {
        self.decode_checked(shards, expected_root, |_, _| None)
    }

    /// Decodes like [`Self::decode_verified`] from leaves whose proofs verified. Their hashes
    /// are reused in the tree rebuild: a re-encoded shard equal to a supplied leaf's bytes
    /// takes that leaf's hash instead of being hashed again. (For `k` shards of an MDS code the
    /// re-encoding reproduces every supplied shard, so this halves the rebuild's hashing at
    /// `n = 2k`; the byte comparison keeps the check sound without relying on that.) The
    /// outcome is exactly that of [`Self::decode_verified`] on the same shards.
    pub fn decode_verified_leaves(
        &self,
        leaves: &[&VerifiedLeaf],
        expected_root: &Digest,
    ) -> Result<Vec<u8>, ErasureError> {
        let shards: Vec<(usize, &[u8])> = leaves
            .iter()
            .map(|l| (l.index(), l.bytes().as_ref()))
            .collect();
        self.decode_checked(&shards, expected_root, |index, shard| {
            leaves
                .iter()
                .find(|l| l.index() == index && l.bytes().as_ref() == shard)
                .map(|l| l.hash())
        })
    }

    /// Recovers, re-encodes and checks the root; `known` returns the hash of a re-encoded
    /// shard if the caller holds it.
    fn decode_checked(
        &self,
        shards: &[(usize, &[u8])],
        expected_root: &Digest,
        known: impl Fn(usize, &[u8]) -> Option<Digest> + Sync,
    ) -> Result<Vec<u8>, ErasureError> {
        let (shard_len, chosen) = self.select(shards)?;
        let mut all = rs::recover_data(&self.rows, self.k, self.n - self.k, shard_len, &chosen)?;
        let parity = rs::encode_parity(&all, self.n - self.k)?;
        all.extend(parity);
        let total = all.iter().map(Vec::len).sum();
        let hashes = par::map(&all, par::threads_for(total, self.threads), |i, shard| {
            known(i, shard).unwrap_or_else(|| merkle::leaf_hash(i as u64, shard))
        });
        let computed = MerkleTree::from_leaf_hashes(hashes).root();
        if computed != *expected_root {
            return Err(ErasureError::RootMismatch {
                expected: *expected_root,
                computed,
            });
        }
        all.truncate(self.k);
        self.unframe(&all, shard_len)
    }

    /// Validates the supplied shards and returns the shard length and the `k` lowest-indexed
    /// shards, sorted by index.
    fn select<'a>(
        &self,
        shards: &[(usize, &'a [u8])],
    ) -> Result<(usize, Vec<IndexedShard<'a>>), ErasureError> {
        let mut seen = vec![false; self.n];
        for &(index, _) in shards {
            let slot = seen
                .get_mut(index)
                .ok_or(ErasureError::ShardIndexOutOfRange { index, n: self.n })?;
            if std::mem::replace(slot, true) {
                return Err(ErasureError::DuplicateShard { index });
            }
        }
        if shards.len() < self.k {
            return Err(ErasureError::NotEnoughShards {
                have: shards.len(),
                need: self.k,
            });
        }
        let shard_len = shards.first().map_or(0, |(_, s)| s.len());
        if let Some(&(index, s)) = shards.iter().find(|(_, s)| s.len() != shard_len) {
            return Err(ErasureError::ShardLengthMismatch {
                index,
                len: s.len(),
                expected: shard_len,
            });
        }
        if shard_len == 0 || !shard_len.is_multiple_of(SHARD_ALIGN) {
            return Err(ErasureError::UnalignedShardLength { shard_len });
        }
        let max = self.shard_len(self.max_payload_len);
        if shard_len > max {
            return Err(ErasureError::ShardTooLong { shard_len, max });
        }
        let mut chosen = shards.to_vec();
        chosen.sort_unstable_by_key(|&(index, _)| index);
        chosen.truncate(self.k);
        Ok((shard_len, chosen))
    }

    /// Parses the canonical framing of the `k` data shards.
    fn unframe(&self, data: &[Vec<u8>], shard_len: usize) -> Result<Vec<u8>, ErasureError> {
        let framed = Framed { data, shard_len };
        let total = self.k * shard_len;
        let mut header = [0u8; HEADER_LEN];
        framed.copy_to(0, &mut header);
        let len = u64::from_le_bytes(header);
        let capacity = (total - HEADER_LEN) as u64;
        if len > capacity {
            return Err(ErasureError::LengthExceedsCapacity { len, capacity });
        }
        // len ≤ capacity < total, which is a usize.
        let len_usize = len as usize;
        let expected = self.shard_len(len_usize);
        if expected != shard_len {
            return Err(ErasureError::NonCanonicalShardLength {
                shard_len,
                len,
                expected,
            });
        }
        if let Some(offset) = framed.first_nonzero(HEADER_LEN + len_usize) {
            return Err(ErasureError::NonZeroPadding { offset });
        }
        let mut payload = vec![0u8; len_usize];
        framed.copy_to(HEADER_LEN, &mut payload);
        Ok(payload)
    }
}

/// Returns `max(64, ⌈framed_len/k⌉` rounded up to a multiple of 64`)`, saturating at the
/// largest multiple of 64 that fits a `usize`. `k` is at least 1.
pub(crate) fn aligned_shard_len(framed_len: u128, k: usize) -> usize {
    let align = SHARD_ALIGN as u128;
    let per_shard = framed_len.div_ceil(k.max(1) as u128);
    let aligned = per_shard.div_ceil(align).saturating_mul(align).max(align);
    usize::try_from(aligned).unwrap_or(usize::MAX - (SHARD_ALIGN - 1))
}

/// The concatenation of equal-length data shards, read without copying it out first.
pub(crate) struct Framed<'a> {
    pub(crate) data: &'a [Vec<u8>],
    pub(crate) shard_len: usize,
}

impl Framed<'_> {
    /// Yields the pieces of `[start, ∞)` within each shard, in order, with their framed offsets.
    fn pieces_from(&self, start: usize) -> impl Iterator<Item = (usize, &[u8])> {
        let shard_len = self.shard_len;
        self.data.iter().enumerate().filter_map(move |(i, shard)| {
            let base = i * shard_len;
            let from = start.saturating_sub(base);
            shard
                .get(from..)
                .filter(|p| !p.is_empty())
                .map(|p| (base + from, p))
        })
    }

    /// Copies `out.len()` bytes starting at framed offset `start` into `out` (as many as exist).
    pub(crate) fn copy_to(&self, start: usize, out: &mut [u8]) {
        let mut written = 0;
        for (_, piece) in self.pieces_from(start) {
            let take = piece.len().min(out.len() - written);
            out[written..written + take].copy_from_slice(&piece[..take]);
            written += take;
            if written == out.len() {
                break;
            }
        }
    }

    /// Returns the framed offset of the first nonzero byte at or after `start`.
    pub(crate) fn first_nonzero(&self, start: usize) -> Option<usize> {
        self.pieces_from(start)
            .find_map(|(offset, piece)| piece.iter().position(|&b| b != 0).map(|p| offset + p))
    }
}
