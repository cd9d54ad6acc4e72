//! Fragment hashes, evaluation points and homomorphic fingerprints.
//!
//! A fragment of `S` bytes (a multiple of 64) is read as `S/8` GF(2^64) elements
//! `X_0, …, X_{m−1}`: each 64-byte block holds 32 GF(2^16) symbols (bytes `0..32` are their low
//! bytes, bytes `32..64` their high bytes, as in reed-solomon-simd), and symbols `4e..4e+4` of
//! the block become the four coordinates of its element `e`. Its fingerprint at a point `r` is
//! `FP_r(F) = Σ_t X_t·r^(m−1−t)`, evaluated by Horner's rule.
//!
//! `FP_r` is GF(2^64)-linear in the fragment, and each coordinate is one code symbol, so a
//! GF(2^16)-linear combination of fragments symbol by symbol has as fingerprint the same
//! combination of fingerprints: `FP_r(Σ_j g_j·F_j) = Σ_j g_j·FP_r(F_j)`.

use super::field::{MulTable, gf64_mul, gf64_pow};
use crate::{Digest, dst, hash::Hasher};

/// Returns the cross-checksum hash of fragment `index`.
pub(crate) fn fragment_hash(index: u32, bytes: &[u8]) -> Digest {
    let mut h = Hasher::new(dst::AVIDFP_FRAGMENT);
    h.u64(u64::from(index)).part(bytes);
    h.finish()
}

/// Derives the two evaluation points from the payload length and the fragment hashes.
pub(crate) fn evaluation_points(payload_len: u64, fragment_hashes: &[Digest]) -> [u64; 2] {
    let mut h = Hasher::new(dst::AVIDFP_POINTS);
    h.u64(payload_len).u64(fragment_hashes.len() as u64);
    for d in fragment_hashes {
        h.part(d.as_bytes());
    }
    let d = h.finish();
    let word = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&d.as_bytes()[8 * i..8 * i + 8]);
        u64::from_le_bytes(w)
    };
    [word(0), word(1)]
}

/// Spreads the four bytes of `v` to the low byte of each 16-bit lane.
#[inline(always)]
fn spread(v: u32) -> u64 {
    let v = u64::from(v);
    let v = (v | v << 16) & 0x0000_FFFF_0000_FFFF;
    (v | v << 8) & 0x00FF_00FF_00FF_00FF
}

/// Gathers the low byte of each 16-bit lane of `x` into four bytes (inverse of [`spread`]).
fn gather(x: u64) -> u32 {
    let x = x & 0x00FF_00FF_00FF_00FF;
    let x = (x | x >> 8) & 0x0000_FFFF_0000_FFFF;
    (x | x >> 16) as u32
}

/// Maps a raw element (the four low bytes of four symbols, then their four high bytes) to the
/// field element whose lane `c` is symbol `c`. A bit permutation, hence GF(2)-linear.
#[inline(always)]
fn to_lanes(raw: u64) -> u64 {
    spread(raw as u32) | spread((raw >> 32) as u32) << 8
}

/// Inverse of [`to_lanes`].
fn from_lanes(x: u64) -> u64 {
    u64::from(gather(x)) | u64::from(gather(x >> 8)) << 32
}

/// Returns raw element `e` (`0..8`) of a 64-byte block: the low bytes of symbols `4e..4e+4`,
/// then their high bytes. The field element is `to_lanes` of it: lane `c` is symbol `4e + c`.
#[inline(always)]
fn raw_element(block: &[u8; 64], e: usize) -> u64 {
    let word = |at: usize| {
        let mut w = [0u8; 4];
        w.copy_from_slice(&block[at..at + 4]);
        u32::from_le_bytes(w)
    };
    u64::from(word(4 * e)) | u64::from(word(32 + 4 * e)) << 32
}

/// Fragments of at least this many 64-byte blocks are fingerprinted as two halves.
const SPLIT_MIN_BLOCKS: usize = 64;

/// Evaluates fingerprints at two fixed points.
///
/// Two implementation choices keep the value `Σ_t X_t·r^(m−1−t)` but make it faster:
///
/// * Horner's rule runs on raw elements `x_t` with `X_t = to_lanes(x_t)`: the accumulator is
///   kept as `from_lanes(acc)` and each step applies the GF(2)-linear map
///   `a ↦ from_lanes(to_lanes(a)·r)`, tabulated like multiplication by `r`. The byte
///   interleaving then costs nothing per element.
/// * Horner's rule is a chain of dependent table lookups, bound by their latency. For
///   fragments of the length given at construction, the two halves run as independent,
///   interleaved chains joined as `FP = FP(first)·r^(elements in second) + FP(second)`.
pub(crate) struct Fingerprinter {
    tables: [Box<MulTable>; 2],
    split: Option<Split>,
}

/// How fragments of one length are split.
struct Split {
    /// Fragment length in blocks.
    blocks: usize,
    /// Blocks in the first half.
    first: usize,
    /// `r^(8·(blocks − first))` for both points.
    shift: [u64; 2],
}

impl Fingerprinter {
    /// Precomputes the multiplication tables for `points`, and the split for fragments of
    /// `fragment_len` bytes.
    pub(crate) fn new(points: [u64; 2], fragment_len: usize) -> Self {
        let blocks = fragment_len / 64;
        let split = (fragment_len.is_multiple_of(64) && blocks >= SPLIT_MIN_BLOCKS).then(|| {
            let first = blocks / 2;
            let elements = 8 * (blocks - first) as u64;
            Split {
                blocks,
                first,
                shift: points.map(|r| gf64_pow(r, elements)),
            }
        });
        Self {
            tables: points.map(|r| MulTable::conjugated(r, to_lanes, from_lanes)),
            split,
        }
    }

    /// Returns the fingerprints of `bytes` at both points.
    ///
    /// `bytes` should be a multiple of 64 long; a partial last block is read as zero-padded.
    pub(crate) fn fingerprint(&self, bytes: &[u8]) -> [u64; 2] {
        match &self.split {
            Some(split) if bytes.len() == 64 * split.blocks => self.fingerprint_split(bytes, split),
            _ => self.fingerprint_sequential(bytes),
        }
    }

    fn fingerprint_sequential(&self, bytes: &[u8]) -> [u64; 2] {
        let [t0, t1] = &self.tables;
        let (mut a0, mut a1) = (0u64, 0u64);
        let mut step = |block: &[u8; 64]| {
            for e in 0..8 {
                let x = raw_element(block, e);
                a0 = t0.mul(a0) ^ x;
                a1 = t1.mul(a1) ^ x;
            }
        };
        let mut chunks = bytes.chunks_exact(64);
        for chunk in &mut chunks {
            step(as_block(chunk));
        }
        let tail = chunks.remainder();
        if !tail.is_empty() {
            let mut block = [0u8; 64];
            block[..tail.len()].copy_from_slice(tail);
            step(&block);
        }
        [to_lanes(a0), to_lanes(a1)]
    }

    fn fingerprint_split(&self, bytes: &[u8], split: &Split) -> [u64; 2] {
        let [t0, t1] = &self.tables;
        let (first, second) = bytes.split_at(64 * split.first);
        let (mut a0, mut a1, mut b0, mut b1) = (0u64, 0u64, 0u64, 0u64);
        let mut second_blocks = second.chunks_exact(64);
        for (ca, cb) in first.chunks_exact(64).zip(&mut second_blocks) {
            let (ba, bb) = (as_block(ca), as_block(cb));
            for e in 0..8 {
                let (xa, xb) = (raw_element(ba, e), raw_element(bb, e));
                a0 = t0.mul(a0) ^ xa;
                a1 = t1.mul(a1) ^ xa;
                b0 = t0.mul(b0) ^ xb;
                b1 = t1.mul(b1) ^ xb;
            }
        }
        // The second half is one block longer when the block count is odd.
        for cb in second_blocks {
            let bb = as_block(cb);
            for e in 0..8 {
                let xb = raw_element(bb, e);
                b0 = t0.mul(b0) ^ xb;
                b1 = t1.mul(b1) ^ xb;
            }
        }
        [
            gf64_mul(to_lanes(a0), split.shift[0]) ^ to_lanes(b0),
            gf64_mul(to_lanes(a1), split.shift[1]) ^ to_lanes(b1),
        ]
    }
}

/// Views a 64-byte chunk as a block.
#[inline(always)]
fn as_block(chunk: &[u8]) -> &[u8; 64] {
    // Callers pass `chunks_exact(64)` items; the fallback is never taken.
    chunk.try_into().unwrap_or(&[0; 64])
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Reference: symbol-by-symbol packing and plain Horner with the generic multiplication.
    fn reference(bytes: &[u8], r: u64) -> u64 {
        let mut acc = 0u64;
        for block in bytes.chunks(64) {
            for e in 0..8 {
                let mut x = 0u64;
                for c in 0..4 {
                    let p = 4 * e + c;
                    let symbol = u64::from(block[p]) | u64::from(block[32 + p]) << 8;
                    x |= symbol << (16 * c);
                }
                acc = gf64_mul(acc, r) ^ x;
            }
        }
        acc
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn matches_reference_evaluation(
            blocks in prop_oneof![1usize..6, 60usize..140],
            seed in any::<u64>(),
            r0 in any::<u64>(),
            r1 in any::<u64>(),
        ) {
            let bytes: Vec<u8> = (0..blocks * 64)
                .map(|i| (seed.rotate_left(i as u32 % 64) as u8) ^ i as u8)
                .collect();
            let expected = [reference(&bytes, r0), reference(&bytes, r1)];
            // Split for this length, and sequential (constructed for another length).
            let split = Fingerprinter::new([r0, r1], bytes.len());
            prop_assert_eq!(split.split.is_some(), blocks >= SPLIT_MIN_BLOCKS);
            prop_assert_eq!(split.fingerprint(&bytes), expected);
            prop_assert_eq!(Fingerprinter::new([r0, r1], 0).fingerprint(&bytes), expected);
        }

        #[test]
        fn is_additive(seed in any::<u64>(), r in any::<[u64; 2]>()) {
            let a: Vec<u8> = (0..256).map(|i| (seed >> (i % 57)) as u8).collect();
            let b: Vec<u8> = (0..256).map(|i| (seed.wrapping_mul(i + 3) >> 11) as u8).collect();
            let sum: Vec<u8> = a.iter().zip(&b).map(|(x, y)| x ^ y).collect();
            let f = Fingerprinter::new(r, 256);
            let (fa, fb) = (f.fingerprint(&a), f.fingerprint(&b));
            prop_assert_eq!(f.fingerprint(&sum), [fa[0] ^ fb[0], fa[1] ^ fb[1]]);
        }
    }

    #[test]
    fn lane_permutation_round_trips() {
        for x in [
            0u64,
            1,
            0x0123_4567_89AB_CDEF,
            u64::MAX,
            0x8000_0000_0000_0001,
        ] {
            assert_eq!(from_lanes(to_lanes(x)), x);
            assert_eq!(to_lanes(from_lanes(x)), x);
        }
        // Raw element 0 of a block whose symbol p is 0xHHLL = (p + 1)·0x0101 + 0x1000.
        let mut block = [0u8; 64];
        for p in 0..32 {
            block[p] = p as u8 + 1;
            block[32 + p] = p as u8 + 0x11;
        }
        assert_eq!(to_lanes(raw_element(&block, 1)), 0x1808_1707_1606_1505);
    }

    #[test]
    fn points_depend_on_every_input() {
        let h = [fragment_hash(0, b"a"), fragment_hash(1, b"b")];
        let base = evaluation_points(10, &h);
        assert_ne!(base[0], base[1]);
        assert_ne!(evaluation_points(11, &h), base);
        assert_ne!(evaluation_points(10, &[h[1], h[0]]), base);
        assert_ne!(evaluation_points(10, &h[..1]), base);
        assert_ne!(fragment_hash(0, b"a"), fragment_hash(1, b"a"));
    }
}
