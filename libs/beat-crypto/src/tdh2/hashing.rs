//! The TDH2 random oracles: H1 (key mask), H2 (ciphertext challenge), H4 (share challenge), the
//! key commitment and the second generator ḡ.

use std::sync::OnceLock;

use curve25519_dalek::{
    RistrettoPoint, Scalar,
    ristretto::{RistrettoBasepointTable, VartimeRistrettoPrecomputation},
    traits::VartimePrecomputedMultiscalarMul as _,
};
use sha2::{Digest as _, Sha512};

use crate::{dst, hash::hash_parts};

/// Hashes length-prefixed `parts` under `dst` to a uniformly distributed scalar (SHA-512 reduced
/// modulo ℓ).
pub(super) fn hash_to_scalar(dst: &[u8], parts: &[&[u8]]) -> Scalar {
    let mut h = Sha512::new();
    for p in std::iter::once(dst).chain(parts.iter().copied()) {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    Scalar::from_hash(h)
}

/// The second generator ḡ, whose discrete logarithm to base g nobody knows.
pub(super) fn g_bar() -> &'static RistrettoPoint {
    static G_BAR: OnceLock<RistrettoPoint> = OnceLock::new();
    G_BAR.get_or_init(|| RistrettoPoint::hash_from_bytes::<Sha512>(dst::TDH2_GENERATOR))
}

/// ḡ as a fixed base for secret scalars (encryption's `r·ḡ` and `s·ḡ`): the same constant-time
/// windowed table dalek keeps for g, built once (about 30 KiB).
pub(super) fn g_bar_table() -> &'static RistrettoBasepointTable {
    static TABLE: OnceLock<RistrettoBasepointTable> = OnceLock::new();
    TABLE.get_or_init(|| RistrettoBasepointTable::create(g_bar()))
}

/// ḡ as a fixed point of variable-time multiscalar multiplications with public scalars (the
/// validity check's `ḡ^f · ū^(−e)`): precomputed odd multiples, so ḡ's half of the product
/// costs what g's does in `vartime_double_scalar_mul_basepoint`.
pub(super) fn g_bar_vartime() -> &'static VartimeRistrettoPrecomputation {
    static TABLE: OnceLock<VartimeRistrettoPrecomputation> = OnceLock::new();
    TABLE.get_or_init(|| VartimeRistrettoPrecomputation::new([*g_bar()]))
}

/// H1: the mask applied to the symmetric key, from `u` and the shared secret `h^r`.
pub(super) fn key_mask(u: &[u8; 32], shared: &RistrettoPoint) -> [u8; 32] {
    hash_parts(dst::TDH2_MASK, &[u, shared.compress().as_bytes()]).0
}

/// The commitment to the symmetric key that makes the hybrid scheme key-committing.
pub(super) fn key_commitment(key: &[u8; 32]) -> [u8; 32] {
    hash_parts(dst::TDH2_KEY_COMMITMENT, &[key]).0
}

/// The digest of the AEAD body that the validity proof binds.
pub(super) fn body_digest(body: &[u8]) -> [u8; 32] {
    hash_parts(dst::TDH2_BODY, &[body]).0
}
