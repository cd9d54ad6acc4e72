//! The code object: parameters, generator coefficients, dispersal and fragment verification.

use std::ops::Range;

use beat_types::Committee;

use super::{
    AvidFpError, Fpcc, Fragment, Layout,
    field::scale,
    fingerprint::{Fingerprinter, fragment_hash},
};
use crate::{
    erasure::{DEFAULT_MAX_PAYLOAD_LEN, aligned_shard_len},
    par, rs,
};

/// An AVID-FP code for one committee: `n` MDS fragments (`k` data, `n − k` parity) and, in the
/// pyramid layout, one local parity per group.
///
/// Construction computes and caches the GF(2^16) generator coefficients of reed-solomon-simd's
/// encoder, so build it once per committee and reuse it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AvidFpCode {
    n: usize,
    k: usize,
    layout: Layout,
    /// Data-fragment index ranges of the groups (empty for [`Layout::Mds`]).
    groups: Vec<Range<usize>>,
    /// `parity_rows[i][j] = G[k + i][j]`: parity fragment `k + i` is `Σ_j G[k+i][j]·d_j`.
    pub(super) parity_rows: Vec<Vec<u16>>,
    max_payload_len: usize,
    threads: usize,
}

/// Splits `0..k` into `groups` contiguous ranges whose sizes differ by at most one (the larger
/// ones first).
fn split_groups(k: usize, groups: usize) -> Vec<Range<usize>> {
    let (base, extra) = (k / groups, k % groups);
    let mut start = 0;
    (0..groups)
        .map(|g| {
            let len = base + usize::from(g < extra);
            let r = start..start + len;
            start += len;
            r
        })
        .collect()
}

// === impl AvidFpCode ===

impl AvidFpCode {
    /// Returns the code for `committee`: `k = n − 2f` data fragments, `2f` global parities,
    /// and for [`Layout::Pyramid`] its local parities.
    pub fn new(committee: Committee, layout: Layout) -> Result<Self, AvidFpError> {
        Self::with_params(committee.n(), committee.data_shards(), layout)
    }

    /// Returns a code with `k` data fragments out of `n` MDS fragments, `1 ≤ k ≤ n`.
    pub fn with_params(n: usize, k: usize, layout: Layout) -> Result<Self, AvidFpError> {
        if k == 0 || k > n || !rs::supports(k, n - k) {
            return Err(AvidFpError::InvalidParams { n, k });
        }
        let groups = match layout {
            Layout::Mds => Vec::new(),
            Layout::Pyramid { groups } if (1..=k).contains(&groups) => split_groups(k, groups),
            Layout::Pyramid { groups } => return Err(AvidFpError::InvalidGroups { groups, k }),
        };
        if u32::try_from(n + groups.len()).is_err() {
            return Err(AvidFpError::InvalidParams { n, k });
        }
        Ok(Self {
            n,
            k,
            layout,
            groups,
            parity_rows: rs::parity_coefficients(k, n - k)?,
            max_payload_len: DEFAULT_MAX_PAYLOAD_LEN,
            threads: par::default_threads(),
        })
    }

    /// Returns this code with a different payload bound (default 64 MiB).
    #[must_use]
    pub fn with_max_payload_len(mut self, max_payload_len: usize) -> Self {
        self.max_payload_len = max_payload_len;
        self
    }

    /// Returns this code with at most `threads` threads (the caller's included) for hashing
    /// and fingerprinting fragments in [`disperse`](Self::disperse); 1 keeps all work on the
    /// calling thread.
    ///
    /// The default is the available parallelism, at most 4. Work under 256 KiB always stays on
    /// the calling thread, and results never depend on the thread count.
    #[must_use]
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// Returns the number of MDS fragments `n` (one per replica).
    pub fn n(&self) -> usize {
        self.n
    }

    /// Returns the number of data fragments `k`, which is also the number of MDS fragments a
    /// full decode needs.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Returns the layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Returns the payload bound.
    pub fn max_payload_len(&self) -> usize {
        self.max_payload_len
    }

    /// Returns the number of pyramid groups (0 for [`Layout::Mds`]).
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Returns the total number of fragments: `n`, plus one local parity per group.
    pub fn fragment_count(&self) -> usize {
        self.n + self.groups.len()
    }

    /// Returns the fragment length for a payload of `payload_len` bytes:
    /// `max(64, ⌈payload_len/k⌉` rounded up to a multiple of 64`)`.
    pub fn fragment_len(&self, payload_len: u64) -> usize {
        aligned_shard_len(u128::from(payload_len), self.k)
    }

    /// Returns the generator coefficient `G[i][j]` of fragment `i` on data fragment `j`, or
    /// `None` if either index is out of range.
    ///
    /// Data fragments are identity rows, global parities come from reed-solomon-simd, and a
    /// local parity has coefficient 1 on each data fragment of its group.
    pub fn generator_coefficient(&self, i: usize, j: usize) -> Option<u16> {
        if j >= self.k {
            return None;
        }
        if i < self.k {
            Some(u16::from(i == j))
        } else if i < self.n {
            self.parity_rows.get(i - self.k)?.get(j).copied()
        } else {
            let group = self.groups.get(i - self.n)?;
            Some(u16::from(group.contains(&j)))
        }
    }

    /// Returns the data-fragment indices a partial read of `group` needs (empty if the group
    /// does not exist). If one of them is missing or bad, add
    /// [`local_parity_index`](Self::local_parity_index).
    pub fn group_fragments(&self, group: usize) -> Vec<u32> {
        self.groups
            .get(group)
            .map(|r| r.clone().map(|j| j as u32).collect())
            .unwrap_or_default()
    }

    /// Returns the group of data fragment `j`, or `None` for the MDS layout or a non-data
    /// index.
    pub fn group_of_data_fragment(&self, j: usize) -> Option<usize> {
        self.groups.iter().position(|r| r.contains(&j))
    }

    /// Returns the fragment index of the local parity of `group`.
    pub fn local_parity_index(&self, group: usize) -> Option<u32> {
        (group < self.groups.len()).then(|| (self.n + group) as u32)
    }

    /// Returns which replica stores fragment `fragment_index`: MDS fragment `i` lives at
    /// replica `i`, local parity `l` at replica `(k + l) mod n` (a global-parity holder when
    /// `f > 0`). `None` if the index is out of range.
    pub fn holder_of(&self, fragment_index: usize) -> Option<usize> {
        if fragment_index < self.n {
            Some(fragment_index)
        } else if fragment_index < self.fragment_count() {
            Some((self.k + fragment_index - self.n) % self.n)
        } else {
            None
        }
    }

    pub(crate) fn group_range(&self, group: usize) -> Option<Range<usize>> {
        self.groups.get(group).cloned()
    }

    /// Disperses `payload`: returns the cross-checksum and all fragments, in index order
    /// (route fragment `i` to [`holder_of(i)`](Self::holder_of)).
    pub fn disperse(&self, payload: &[u8]) -> Result<(Fpcc, Vec<Fragment>), AvidFpError> {
        let len = payload.len();
        if len > self.max_payload_len {
            return Err(AvidFpError::PayloadTooLarge {
                len: len as u64,
                max: self.max_payload_len,
            });
        }
        let s = self.fragment_len(len as u64);
        // payload ‖ zero padding to k·S, split into k fragments.
        let mut fragments: Vec<Vec<u8>> = (0..self.k)
            .map(|j| {
                let piece = payload.get((j * s).min(len)..((j + 1) * s).min(len));
                let mut f = Vec::with_capacity(s);
                f.extend_from_slice(piece.unwrap_or_default());
                f.resize(s, 0);
                f
            })
            .collect();
        let parity = rs::encode_parity(&fragments, self.n - self.k)?;
        fragments.extend(parity);
        for range in &self.groups {
            let mut local = vec![0u8; s];
            for d in &fragments[range.clone()] {
                xor_into(&mut local, d);
            }
            fragments.push(local);
        }
        let fragments: Vec<Fragment> = fragments
            .into_iter()
            .enumerate()
            .map(|(i, bytes)| Fragment {
                index: i as u32,
                bytes,
            })
            .collect();
        let fpcc = self.commit(len as u64, &fragments, s);
        Ok((fpcc, fragments))
    }

    /// Returns the cross-checksum a proposer publishes for `fragments`: the hash of every
    /// fragment, the evaluation points derived from them, and the fingerprints of the data
    /// fragments at those points.
    ///
    /// `fragments` must be all of the code's fragments in index order (fragment `i` at
    /// position `i`), each [`fragment_len(payload_len)`](Self::fragment_len) bytes long.
    /// Whether they form a codeword is *not* checked: [`disperse`](Self::disperse) is
    /// encoding followed by this step, and a proposer that commits to anything else is caught
    /// by [`verify_fragment`](Self::verify_fragment) at the holders of the fragments that are
    /// off the codeword. It is public so that tests and the simulator can build deliberately
    /// inconsistent dispersals exactly as a faulty proposer would.
    pub fn cross_checksum(
        &self,
        payload_len: u64,
        fragments: &[Fragment],
    ) -> Result<Fpcc, AvidFpError> {
        if payload_len > self.max_payload_len as u64 {
            return Err(AvidFpError::PayloadTooLarge {
                len: payload_len,
                max: self.max_payload_len,
            });
        }
        if fragments.len() != self.fragment_count() {
            return Err(AvidFpError::FragmentCount {
                got: fragments.len(),
                expected: self.fragment_count(),
            });
        }
        let s = self.fragment_len(payload_len);
        for (position, f) in fragments.iter().enumerate() {
            if f.index as usize != position {
                return Err(AvidFpError::FragmentOrder {
                    position,
                    index: f.index,
                });
            }
            if f.bytes.len() != s {
                return Err(AvidFpError::FragmentLength {
                    index: f.index,
                    len: f.bytes.len(),
                    expected: s,
                });
            }
        }
        Ok(self.commit(payload_len, fragments, s))
    }

    /// Hashes and fingerprints `fragments`, which are in index order and `s` bytes each.
    fn commit(&self, payload_len: u64, fragments: &[Fragment], s: usize) -> Fpcc {
        let threads = par::threads_for(fragments.len() * s, self.threads);
        let fragment_hashes =
            par::map(fragments, threads, |i, f| fragment_hash(i as u32, &f.bytes));
        let mut fpcc = Fpcc {
            payload_len,
            fragment_hashes,
            fingerprints: Vec::new(),
        };
        let fp = Fingerprinter::new(fpcc.evaluation_points(), s);
        let threads = par::threads_for(self.k * s, self.threads);
        fpcc.fingerprints = par::map(&fragments[..self.k], threads, |_, d| {
            fp.fingerprint(&d.bytes)
        });
        fpcc
    }

    /// Verifies a fragment against a cross-checksum, as a server does on receipt and a reader
    /// does before decoding: the index is in range, the length is `fragment_len(payload_len)`,
    /// the hash matches, and the fingerprints satisfy `FP_r(F_i) = Σ_j G[i][j]·fp_j`.
    pub fn verify_fragment(&self, fpcc: &Fpcc, fragment: &Fragment) -> Result<(), AvidFpError> {
        fpcc.validate(self)?;
        let fp = self.fingerprinter(fpcc);
        self.verify_with(fpcc, &fp, fragment)
    }

    /// Returns the fingerprinter for the fragments of a validated `fpcc`.
    pub(crate) fn fingerprinter(&self, fpcc: &Fpcc) -> Fingerprinter {
        Fingerprinter::new(
            fpcc.evaluation_points(),
            self.fragment_len(fpcc.payload_len),
        )
    }

    /// Verifies `fragment` against an already validated `fpcc` with its fingerprinter.
    pub(crate) fn verify_with(
        &self,
        fpcc: &Fpcc,
        fp: &Fingerprinter,
        fragment: &Fragment,
    ) -> Result<(), AvidFpError> {
        let index = fragment.index;
        let i = index as usize;
        let expected_hash =
            fpcc.fragment_hashes
                .get(i)
                .ok_or(AvidFpError::FragmentIndexOutOfRange {
                    index,
                    count: self.fragment_count(),
                })?;
        let expected_len = self.fragment_len(fpcc.payload_len);
        if fragment.bytes.len() != expected_len {
            return Err(AvidFpError::FragmentLength {
                index,
                len: fragment.bytes.len(),
                expected: expected_len,
            });
        }
        if fragment_hash(index, &fragment.bytes) != *expected_hash {
            return Err(AvidFpError::FragmentHashMismatch { index });
        }
        let expected_fp = self.expected_fingerprint(fpcc, i);
        if expected_fp != Some(fp.fingerprint(&fragment.bytes)) {
            return Err(AvidFpError::FingerprintMismatch { index });
        }
        Ok(())
    }

    /// Returns `Σ_j G[i][j]·fp_j` for fragment `i`.
    fn expected_fingerprint(&self, fpcc: &Fpcc, i: usize) -> Option<[u64; 2]> {
        let mut acc = [0u64; 2];
        for (j, fp) in fpcc.fingerprints.iter().enumerate().take(self.k) {
            let g = self.generator_coefficient(i, j)?;
            acc[0] ^= scale(g, fp[0]);
            acc[1] ^= scale(g, fp[1]);
        }
        Some(acc)
    }
}

/// `acc ^= x` bytewise (GF(2^16) addition of fragments).
pub(crate) fn xor_into(acc: &mut [u8], x: &[u8]) {
    for (a, b) in acc.iter_mut().zip(x) {
        *a ^= b;
    }
}
