//! Threshold BLS signatures on BLS12-381 (Boldyreva, PKC 2003) and the common coin.
//!
//! # Algorithm
//!
//! A trusted dealer picks a random polynomial `p` of degree `t` over the scalar field; replica
//! `i` receives the secret share `x_i = p(i+1)` and everybody learns the public key shares
//! `g2^{x_i}` and the group key `g2^{p(0)}` ([`deal`]). A signature share on a message `m` is
//! `σ_i = H(m)^{x_i}` in G1 ([`SecretKeyShare::sign`]); it verifies with one pairing check
//! `e(σ_i, g2) = e(H(m), g2^{x_i})`. Any `t + 1` shares combine by Lagrange interpolation in the
//! exponent into `H(m)^{p(0)}`, the unique BLS signature on `m` under the group key.
//!
//! The common coin ([`coin_message`], [`coin_bit`]) signs the coin's name; the coin value is a
//! hash of the unique combined signature. Nobody can predict it before `t + 1` replicas released
//! their shares, and nobody can bias it, because the signature is unique.
//!
//! This is the "minimal signature" instantiation (signatures in G1, keys in G2), with hashing to
//! G1 per RFC 9380 (SSWU, random oracle) under [`crate::dst::COIN_HASH_TO_G1`].
//!
//! # Cost
//!
//! Shares are combined optimistically ([`PublicKeySet::combine_optimistic`]): one
//! multi-scalar multiplication and one pairing check per coin in the common case, instead of
//! one pairing check per share — per-share verification is what made earlier implementations
//! CPU-bound (protocol reference, "share verification" decision).
//!
//! # References
//!
//! Boldyreva, "Threshold signatures, multisignatures and blind signatures based on the
//! Gap-Diffie-Hellman-group signature scheme", PKC 2003. Cachin, Kursawe, Shoup, "Random oracles
//! in Constantinople", J. Cryptology 2005 (coins from unique threshold signatures). RFC 9380.
//!
//! # Deviations
//!
//! The BEAT prototypes use the CKS Diffie–Hellman threshold PRF on P-256 for the coin; this
//! project uses threshold BLS (a unique signature, hence also a threshold PRF), as decided in the
//! protocol reference.

mod coin;
mod field;
mod group;
mod keys;
mod signature;

pub use coin::{coin_bit, coin_message};
pub use keys::{PublicKey, PublicKeySet, SecretKeyShare, deal};
pub use signature::{EncodedShare, HashedMessage, Signature, SignatureShare};

use beat_types::NodeId;

/// Errors of the threshold BLS scheme.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BlsError {
    /// An encoding was not a canonical, valid group or field element.
    #[error("invalid {0} encoding")]
    InvalidEncoding(&'static str),
    /// The threshold must be below the number of shares.
    #[error("threshold {threshold} is not below the number of shares {n}")]
    BadThreshold {
        /// Requested threshold.
        threshold: usize,
        /// Number of shares.
        n: usize,
    },
    /// Fewer than `threshold + 1` shares were given.
    #[error("{have} shares given, {need} needed")]
    NotEnoughShares {
        /// Shares given.
        have: usize,
        /// Shares needed.
        need: usize,
    },
    /// A received share's encoding is not a point of the curve.
    #[error("the share of holder {0} is not a curve point")]
    InvalidShareEncoding(NodeId),
    /// A share's holder is not in the key set.
    #[error("no key share for holder {0}")]
    UnknownHolder(NodeId),
    /// Key generation produced a zero share (probability 2^-255); run it again.
    #[error("degenerate key material")]
    DegenerateKey,
}

#[cfg(test)]
mod tests;
