//! Errors of AVID-FP dispersal, verification and retrieval.

use std::fmt;

/// A field of the [`Fpcc`](super::Fpcc) whose length is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FpccField {
    /// `fragment_hashes`: one per fragment.
    FragmentHashes,
    /// `fingerprints`: one pair per data fragment.
    Fingerprints,
}

impl fmt::Display for FpccField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::FragmentHashes => "fragment_hashes",
            Self::Fingerprints => "fingerprints",
        })
    }
}

/// Why an AVID-FP operation failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum AvidFpError {
    /// The code parameters are unusable.
    #[error("unsupported code parameters n={n} k={k}")]
    InvalidParams {
        /// Total MDS fragments.
        n: usize,
        /// Data fragments.
        k: usize,
    },
    /// The pyramid group count is not in `1..=k`.
    #[error("{groups} pyramid groups requested for {k} data fragments")]
    InvalidGroups {
        /// Requested groups.
        groups: usize,
        /// Data fragments.
        k: usize,
    },
    /// The payload is larger than the configured maximum.
    #[error("payload of {len} bytes exceeds the maximum of {max}")]
    PayloadTooLarge {
        /// Payload length.
        len: u64,
        /// Configured maximum.
        max: usize,
    },
    /// A cross-checksum field has the wrong number of entries for this code.
    #[error("cross-checksum has {got} {field}, expected {expected}")]
    FpccShape {
        /// Offending field.
        field: FpccField,
        /// Entries present.
        got: usize,
        /// Entries expected.
        expected: usize,
    },
    /// A fragment index is not below the fragment count.
    #[error("fragment index {index} out of range for {count} fragments")]
    FragmentIndexOutOfRange {
        /// Offending index.
        index: u32,
        /// Number of fragments of the code.
        count: usize,
    },
    /// A dispersal does not have one fragment per index of the code.
    #[error("{got} fragments given, the code has {expected}")]
    FragmentCount {
        /// Fragments given.
        got: usize,
        /// Fragments of the code.
        expected: usize,
    },
    /// Fragments given as a whole dispersal are not in index order.
    #[error("fragment at position {position} has index {index}")]
    FragmentOrder {
        /// Position in the list.
        position: usize,
        /// The fragment's index.
        index: u32,
    },
    /// A fragment does not have the length the payload length implies.
    #[error("fragment {index} has {len} bytes, expected {expected}")]
    FragmentLength {
        /// Fragment index.
        index: u32,
        /// Its length.
        len: usize,
        /// Canonical fragment length.
        expected: usize,
    },
    /// A fragment does not match its hash in the cross-checksum.
    #[error("fragment {index} does not match its cross-checksum hash")]
    FragmentHashMismatch {
        /// Fragment index.
        index: u32,
    },
    /// A fragment matches its hash but not the fingerprints: the dispersal was inconsistent.
    #[error("fragment {index} does not match the fingerprinted cross-checksum")]
    FingerprintMismatch {
        /// Fragment index.
        index: u32,
    },
    /// Fewer than `k` MDS fragments verified.
    #[error("{have} fragments verified, {need} needed (rejected: {rejected:?})")]
    NotEnoughFragments {
        /// Verified MDS fragments.
        have: usize,
        /// Fragments needed (`k`).
        need: usize,
        /// Indices of fragments that failed verification.
        rejected: Vec<u32>,
    },
    /// A partial read was requested from a code without groups.
    #[error("the MDS layout has no groups to read")]
    NotPyramid,
    /// The group does not exist.
    #[error("group {group} out of range for {groups} groups")]
    GroupOutOfRange {
        /// Requested group.
        group: usize,
        /// Number of groups.
        groups: usize,
    },
    /// The group cannot be rebuilt from the fragments supplied.
    ///
    /// With one data fragment missing, supplying a good local parity suffices; with more, a
    /// full decode is needed.
    #[error(
        "group {group} cannot be rebuilt: data fragments {missing:?} missing or bad, repair \
         needs all but one of them and local parity {local_parity}"
    )]
    GroupUnrecoverable {
        /// Requested group.
        group: usize,
        /// Data fragments of the group that were absent or failed verification.
        missing: Vec<u32>,
        /// Index of the group's local parity fragment.
        local_parity: u32,
        /// Indices of fragments that failed verification.
        rejected: Vec<u32>,
    },
    /// The Reed–Solomon codec rejected its input.
    #[error("reed-solomon codec: {0}")]
    Codec(#[source] reed_solomon_simd::Error),
}

impl AvidFpError {
    /// Returns `true` if this error from [`verify_fragment`](super::AvidFpCode::verify_fragment)
    /// condemns the fragment itself (its index, length, hash or fingerprint), as opposed to the
    /// cross-checksum's shape.
    pub fn is_bad_fragment(&self) -> bool {
        matches!(
            self,
            Self::FragmentIndexOutOfRange { .. }
                | Self::FragmentLength { .. }
                | Self::FragmentHashMismatch { .. }
                | Self::FingerprintMismatch { .. }
        )
    }
}

impl From<reed_solomon_simd::Error> for AvidFpError {
    fn from(e: reed_solomon_simd::Error) -> Self {
        Self::Codec(e)
    }
}
