//! Wire-facing types: the fingerprinted cross-checksum and fragments.

use serde::{Deserialize, Serialize};

use super::{AvidFpCode, AvidFpError, FpccField, fingerprint};
use crate::{Digest, dst, hash::Hasher};

/// A fingerprinted cross-checksum: the proposer's commitment to one dispersal.
///
/// Servers ECHO/READY it (or its [`digest`](Self::digest)); readers verify fragments against
/// it. Its size is `O(n)` hashes plus `O(k)` fingerprints, independent of the payload.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fpcc {
    /// Length of the dispersed payload in bytes.
    pub payload_len: u64,
    /// `H(AVIDFP_FRAGMENT, i, F_i)` for every fragment `i` (MDS fragments, then local
    /// parities).
    pub fragment_hashes: Vec<Digest>,
    /// `[FP_r1(d_j), FP_r2(d_j)]` for every data fragment `d_j`, `j < k`.
    pub fingerprints: Vec<[u64; 2]>,
}

/// One fragment of a dispersal.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fragment {
    /// Fragment index: `0..k` data, `k..n` global parity, `n..n+groups` local parity.
    pub index: u32,
    /// Fragment bytes (a multiple of 64).
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Fragment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fragment")
            .field("index", &self.index)
            .field("len", &self.bytes.len())
            .finish()
    }
}

// === impl Fpcc ===

impl Fpcc {
    /// Returns the digest that identifies this cross-checksum (`AVIDFP_COMMITMENT`).
    pub fn digest(&self) -> Digest {
        let mut h = Hasher::new(dst::AVIDFP_COMMITMENT);
        h.u64(self.payload_len);
        h.u64(self.fragment_hashes.len() as u64);
        for d in &self.fragment_hashes {
            h.part(d.as_bytes());
        }
        h.u64(self.fingerprints.len() as u64);
        for [a, b] in &self.fingerprints {
            let mut pair = [0u8; 16];
            pair[..8].copy_from_slice(&a.to_le_bytes());
            pair[8..].copy_from_slice(&b.to_le_bytes());
            h.part(&pair);
        }
        h.finish()
    }

    /// Returns the two fingerprint evaluation points `r1, r2`, derived as
    /// `H(AVIDFP_POINTS, payload_len, fragment_hashes)`.
    pub fn evaluation_points(&self) -> [u64; 2] {
        fingerprint::evaluation_points(self.payload_len, &self.fragment_hashes)
    }

    /// Checks the shape of the cross-checksum against `code`: one hash per fragment, one
    /// fingerprint pair per data fragment, and a payload length within the code's bound.
    ///
    /// This is cheap and should run before anything else touches an untrusted `Fpcc`.
    pub fn validate(&self, code: &AvidFpCode) -> Result<(), AvidFpError> {
        if self.fragment_hashes.len() != code.fragment_count() {
            return Err(AvidFpError::FpccShape {
                field: FpccField::FragmentHashes,
                got: self.fragment_hashes.len(),
                expected: code.fragment_count(),
            });
        }
        if self.fingerprints.len() != code.k() {
            return Err(AvidFpError::FpccShape {
                field: FpccField::Fingerprints,
                got: self.fingerprints.len(),
                expected: code.k(),
            });
        }
        if self.payload_len > code.max_payload_len() as u64 {
            return Err(AvidFpError::PayloadTooLarge {
                len: self.payload_len,
                max: code.max_payload_len(),
            });
        }
        Ok(())
    }
}
