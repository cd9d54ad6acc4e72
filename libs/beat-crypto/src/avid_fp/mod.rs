//! AVID-FP: verifiable erasure-coded dispersal with fingerprinted cross-checksums (BEAT3), and
//! its pyramid-code variant with local parities for partial reads (BEAT4).
//!
//! # Algorithm
//!
//! **Disperse** (proposer, [`AvidFpCode::disperse`]). The payload is zero-padded to `k·S` bytes,
//! `S = max(64, ⌈len/k⌉` rounded up to a multiple of 64`)` (no length prefix: the length
//! travels in the cross-checksum), and cut into `k` data fragments `d_0..d_{k−1}`. A systematic
//! Reed–Solomon code (reed-solomon-simd, `k` of `n`) adds `n − k = 2f` global parities; with
//! [`Layout::Pyramid`] one local parity per group is appended, the GF(2^16) sum (XOR) of the
//! group's data fragments. Every fragment `F_i` is hashed with its index; two evaluation
//! points `r1, r2 ∈ GF(2^64)` are derived from `H(payload_len, all fragment hashes)`; and the
//! proposer publishes the fingerprints `fp_j = (FP_r1(d_j), FP_r2(d_j))` of the data
//! fragments. [`Fpcc`] = (payload length, fragment hashes, fingerprints).
//!
//! **Verify** (server `holder_of(i)`, and readers, [`AvidFpCode::verify_fragment`]). `F_i` is
//! accepted iff its length is `S`, its hash is `fragment_hashes[i]`, and
//! `FP_r(F_i) = Σ_j G[i][j]·fp_j` at both points, where `G` is the generator matrix: identity
//! rows for data fragments, reed-solomon-simd's coefficients for global parities, and 0/1 rows
//! for local parities. Fingerprinting is GF(2^16)-linear (see below), so an honest fragment
//! always passes; and since `r` is fixed only after every fragment is, a fragment that is not
//! on the codeword the fingerprints describe passes only by a polynomial-root accident.
//!
//! **Retrieve** ([`AvidFpCode::decode`]). The reader verifies fragments until `k` MDS fragments
//! pass, decodes the data fragments, and returns their first `payload_len` bytes. Any `k`
//! verified fragments decode to the same data (w.h.p.), which is what makes the dispersal's
//! outcome well defined: the **dispersed value is the first `payload_len` bytes of the data
//! codeword the cross-checksum fixes**, whatever the padding after them holds.
//!
//! **Partial read** ([`AvidFpCode::read_group`], pyramid only). The payload bytes of group `l`
//! are in its data fragments ([`AvidFpCode::group_fragments`]); one missing or bad fragment is
//! rebuilt from the group's verified local parity. Reading a group then costs
//! `|group|·S` (plus `S` when repairing) instead of `k·S`, and returns exactly the bytes a
//! full read returns in that range.
//!
//! # Parameters
//!
//! * **Field.** Code symbols are elements of reed-solomon-simd's own GF(2^16). Fingerprints
//!   live in GF(2^64) = GF(2^32)\[z\]/(z² + z + γ), GF(2^32) = GF(2^16)\[y\]/(y² + y + β), with
//!   β = `0x8000` and γ = `0x8000·y` (the smallest constants of trace 1, which makes both
//!   quadratics irreducible). Four GF(2^16) symbols are the four coordinates of one GF(2^64)
//!   element, and a subfield coefficient scales them coordinate-wise, so
//!   `FP(Σ_j g_j·d_j) = Σ_j g_j·FP(d_j)`.
//! * **Fingerprint.** `FP_r(F) = Σ_t X_t·r^(m−1−t)` over the `m = S/8` elements of `F`, by
//!   Horner's rule with 8×256-entry lookup tables for multiplication by the fixed `r`.
//! * **Evaluation points.** `r1 ‖ r2` are the first 16 bytes of
//!   `H(AVIDFP_POINTS, payload_len, #fragments, fragment_hashes…)`.
//! * **Generator coefficients.** Computed once per [`AvidFpCode`] by encoding unit shards, and
//!   tested to reproduce reed-solomon-simd's encoding at every symbol position.
//! * **Grinding bound.** If the verified fragments are not all on one codeword, some minimal
//!   parity-check relation `P = Σ_{i∈T} h_i·F_i` (`|T| = k + 1`) is a nonzero polynomial of
//!   degree `< m` whose fingerprint vanishes at both points. For one relation this has
//!   probability at most `(m/2^64)²` per attempt, and each attempt costs the proposer fresh
//!   fragment hashes: `2^−94` for 1 MiB fragments (`m = 2^17`), `2^−82` at the 64 MiB payload
//!   bound. With one inconsistent fragment every relevant relation is a multiple of the same
//!   polynomial and that is the bound. In general a union bound over the at most
//!   `C(n, k+1)` relations applies, which costs up to `log2 C(n, k+1)` bits (2 at n = 4, 13.5
//!   at n = 16, 57 at n = 64).
//! * **Groups.** [`Layout::pyramid`] uses `min(2, k)` groups; data fragments are split into
//!   contiguous groups whose sizes differ by at most one. Local parity `l` is fragment `n + l`
//!   and is stored at replica `(k + l) mod n`.
//!
//! ```
//! use beat_crypto::avid_fp::{AvidFpCode, Layout};
//! use beat_types::Committee;
//!
//! let committee = Committee::new(7)?; // f = 2, k = 3
//! let code = AvidFpCode::new(committee, Layout::pyramid(committee))?;
//! let (fpcc, fragments) = code.disperse(b"stored batch")?;
//! assert_eq!(fragments.len(), 7 + 2);
//! for fragment in &fragments {
//!     code.verify_fragment(&fpcc, fragment)?;
//! }
//! // Any k = 3 verified MDS fragments decode.
//! assert_eq!(code.decode(&fpcc, &fragments[4..7])?, b"stored batch");
//! // Group 0 holds data fragments 0 and 1; rebuild fragment 1 from the local parity.
//! let partial = [fragments[0].clone(), fragments[7].clone()];
//! let read = code.read_group(&fpcc, 0, &partial)?;
//! assert_eq!(read.bytes, b"stored batch");
//! assert_eq!(read.repaired, Some(1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # References
//!
//! * J. Hendricks, G. R. Ganger, M. K. Reiter, "Verifying distributed erasure-coded data",
//!   PODC 2007 (AVID-FP, fingerprinted cross-checksums).
//! * C. Huang, M. Chen, J. Li, "Pyramid codes: flexible schemes to trade space for access
//!   efficiency in reliable data storage systems", NCA 2007.
//! * S. Duan, M. K. Reiter, H. Zhang, "BEAT: asynchronous BFT made practical", CCS 2018
//!   (BEAT3 and BEAT4); protocol reference §2.4–2.5.
//!
//! # Deviations
//!
//! * Pyramid codes proper split one global parity into per-group local parities, keeping the
//!   fragment count. We keep all `2f` global parities and *add* `groups` local parities
//!   (`n + groups` fragments, storage overhead `+groups/n`), so global fault tolerance is
//!   exactly BEAT3's: any `k` MDS fragments still decode.
//! * Fingerprints are evaluated at two independent points of GF(2^64) rather than at one
//!   point of a larger field, over elements that pack four code symbols each.
//! * **The zero padding is not checked** (issue 12, bug 5). The protocol reference's pitfall
//!   6, "reject non-canonical padding", protects codes where the padding is part of what
//!   identifies a value, so that one value could be dispersed as two. Here the identity of a
//!   dispersal is its cross-checksum, and the cross-checksum fixes the data codeword
//!   uniquely (fragment hashes, and fingerprints against inconsistent fragments, with the
//!   grinding bound above); the value is defined as that codeword's first `payload_len`
//!   bytes. Checking the padding instead would make readers disagree: the padding lies in
//!   the last data fragment(s) — for small payloads in several, the last always in the last
//!   group — so a partial read of another group cannot see it, and a faulty proposer's
//!   non-zero padding would give partial readers bytes and full readers an error for one
//!   stored batch. Checking it in partial reads too would mean reading the padding's
//!   fragments in every partial read, which defeats partial reads. With the padding ignored,
//!   full and partial reads of any verified fragments always agree, and a proposer gains
//!   nothing from non-zero padding: it cannot change the value any reader sees. One value
//!   then has several possible cross-checksums; nothing relies on it having only one, since
//!   agreement is on the cross-checksum and honest proposers pad with zeros. (BEAT0's
//!   AVID keeps its canonical-framing check: there the re-encoding check is what pins the
//!   value.)

mod code;
mod error;
mod field;
mod fingerprint;
mod fpcc;
mod read;
#[cfg(test)]
mod tests;

use beat_types::Committee;
use serde::{Deserialize, Serialize};

pub use self::{
    code::AvidFpCode,
    error::{AvidFpError, FpccField},
    fpcc::{Fpcc, Fragment},
    read::{DecodeOutcome, GroupRead, Rejection},
};

/// How fragments are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Layout {
    /// BEAT3: `n` MDS fragments, `k` data and `2f` global parity.
    Mds,
    /// BEAT4: the `n` MDS fragments plus one local parity per group of data fragments.
    Pyramid {
        /// Number of groups, `1..=k`.
        groups: usize,
    },
}

impl Layout {
    /// Returns the default pyramid layout for `committee`: `min(2, k)` groups.
    pub fn pyramid(committee: Committee) -> Self {
        Self::Pyramid {
            groups: committee.data_shards().min(2),
        }
    }
}
