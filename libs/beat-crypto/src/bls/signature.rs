//! Signature shares, their verification and (optimistic) combination.

use std::{collections::BTreeMap, fmt};

use beat_types::NodeId;

use super::{
    BlsError, PublicKeySet, SecretKeyShare,
    field::{Fr, lagrange_at_zero},
    group::{G1, pairing_check},
};
use crate::{
    dst,
    encoding::serde_via_bytes,
    hash::{Hasher, hash_parts},
    threshold::Combined,
};

/// `threshold + 1` shares with their holders, and the Lagrange coefficients that interpolate
/// them at zero.
type Interpolation<'a, S> = (Vec<(NodeId, &'a S)>, Vec<Fr>);

/// A message hashed to G1, computed once and reused for signing and every verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashedMessage(pub(super) G1);

impl HashedMessage {
    /// Hashes `message` to G1 under the domain-separation tag `dst`.
    pub fn new(dst: &[u8], message: &[u8]) -> Self {
        Self(G1::hash_to(message, dst))
    }
}

/// One replica's signature share on a message (a point of G1, 48 bytes compressed).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SignatureShare(pub(super) G1);

/// A combined threshold signature: the unique BLS signature on the message under the group key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub(super) G1);

macro_rules! point_encoding {
    ($ty:ident, $what:literal) => {
        impl $ty {
            /// Length of the compressed encoding.
            pub const LEN: usize = G1::COMPRESSED_LEN;

            /// The canonical compressed encoding.
            pub fn to_bytes(&self) -> [u8; Self::LEN] {
                self.0.to_compressed()
            }

            /// Parses a compressed point, rejecting invalid, out-of-subgroup and identity
            /// encodings.
            pub fn from_bytes(bytes: &[u8; Self::LEN]) -> Result<Self, BlsError> {
                G1::from_compressed(bytes)
                    .map(Self)
                    .ok_or(BlsError::InvalidEncoding($what))
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(
                    f,
                    "{}({}…)",
                    stringify!($ty),
                    &hex::encode(self.to_bytes())[..16]
                )
            }
        }

        serde_via_bytes!($ty, G1::COMPRESSED_LEN);
    };
}

point_encoding!(SignatureShare, "signature share");
point_encoding!(Signature, "signature");

/// A signature share as it arrived: its 48-byte compressed encoding, not yet decoded.
///
/// Decoding a share — decompression and the subgroup check — costs about as much as a
/// scalar multiplication (≈ 85 µs on the development box, `bls/share_from_bytes`), and a
/// replica receives `n − 1` commit shares per epoch of which it combines `f + 1`. Kept encoded,
/// a share is decoded only if it is combined ([`PublicKeySet::combine_encoded`], which also
/// skips the per-share subgroup check) or verified ([`Self::decode`]). The encoding on the
/// wire is that of [`SignatureShare`]; an encoding that is not a share is refused when the
/// share is used, not when it arrives.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EncodedShare([u8; G1::COMPRESSED_LEN]);

impl EncodedShare {
    /// Length of the encoding.
    pub const LEN: usize = G1::COMPRESSED_LEN;

    /// Wraps an encoding without looking at it.
    pub fn from_bytes(bytes: &[u8; Self::LEN]) -> Self {
        Self(*bytes)
    }

    /// The encoding.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        self.0
    }

    /// Decodes the share, with every check of [`SignatureShare::from_bytes`].
    pub fn decode(&self) -> Result<SignatureShare, BlsError> {
        SignatureShare::from_bytes(&self.0)
    }
}

impl From<SignatureShare> for EncodedShare {
    fn from(share: SignatureShare) -> Self {
        Self(share.to_bytes())
    }
}

impl fmt::Debug for EncodedShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncodedShare({}…)", &hex::encode(self.0)[..16])
    }
}

impl serde::Serialize for EncodedShare {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::encoding::serialize_bytes(&self.0, s)
    }
}

impl<'de> serde::Deserialize<'de> for EncodedShare {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::encoding::deserialize_array::<D, { G1::COMPRESSED_LEN }>(d).map(Self)
    }
}

impl SecretKeyShare {
    /// Signs a hashed message with this share.
    pub fn sign(&self, message: &HashedMessage) -> SignatureShare {
        SignatureShare(message.0.mul(&self.scalar))
    }
}

impl PublicKeySet {
    /// Checks one share against its holder's public key share (one pairing check).
    pub fn verify_share(
        &self,
        holder: NodeId,
        message: &HashedMessage,
        share: &SignatureShare,
    ) -> bool {
        self.share_lines(holder)
            .is_some_and(|pk| pairing_check(&share.0, &message.0, pk))
    }

    /// Checks a combined signature against the group key (one pairing check).
    pub fn verify(&self, message: &HashedMessage, signature: &Signature) -> bool {
        pairing_check(&signature.0, &message.0, self.group_lines())
    }

    /// Checks `k` combined signatures, each on its own message, against the group key at once:
    /// two Miller loops and one final exponentiation for all of them instead of `k` of each,
    /// plus two `k`-point multi-scalar multiplications with 128-bit scalars.
    ///
    /// This is the small-exponents batch test (Bellare, Garay, Rabin, EUROCRYPT 1998) with the
    /// coefficients derived by Fiat–Shamir instead of drawn at random: with `rᵢ` the hash of the
    /// whole batch and `i` (128 bits, odd, under [`dst::BLS_BATCH_VERIFY`]), it checks
    /// `e(Σ rᵢ·σᵢ, g₂) = e(Σ rᵢ·H(mᵢ), pk)`. If some `σⱼ` is not the signature on `mⱼ`, write
    /// `σᵢ = sk·H(mᵢ) + Δᵢ`; the check passes only if `Σ rᵢ·Δᵢ = 0` in G1 (prime order), which
    /// for coefficients fixed by a hash of the `Δᵢ` themselves happens with probability at most
    /// `2^-127` per hash evaluation an adversary makes. Returns `true` only if, except with
    /// that probability, every signature verifies; an identity signature fails the batch as it
    /// fails [`Self::verify`]. A failed batch says nothing about which signature is bad: check
    /// them one by one.
    pub fn verify_batch(&self, items: &[(HashedMessage, Signature)]) -> bool {
        match items {
            [] => return true,
            [(message, signature)] => return self.verify(message, signature),
            _ => {}
        }
        if items.iter().any(|(_, s)| s.0.is_identity()) {
            return false;
        }
        let mut transcript = Hasher::new(dst::BLS_BATCH_VERIFY);
        transcript.u64(items.len() as u64);
        for (message, signature) in items {
            transcript.part(&message.0.to_compressed());
            transcript.part(&signature.0.to_compressed());
        }
        let seed = transcript.finish();
        let coefficients: Vec<Fr> = (0..items.len() as u64)
            .map(|i| {
                let d = hash_parts(dst::BLS_BATCH_VERIFY, &[&seed.0, &i.to_le_bytes()]);
                let mut low = [0u8; 16];
                low.copy_from_slice(&d.0[..16]);
                Fr::from_u128(u128::from_le_bytes(low) | 1)
            })
            .collect();
        let signatures: Vec<G1> = items.iter().map(|(_, s)| s.0).collect();
        let messages: Vec<G1> = items.iter().map(|(m, _)| m.0).collect();
        let signature = G1::multi_mul_bits(&signatures, &coefficients, 128);
        let message = G1::multi_mul_bits(&messages, &coefficients, 128);
        pairing_check(&signature, &message, self.group_lines())
    }

    /// Combines exactly `threshold + 1` shares by Lagrange interpolation in the exponent,
    /// without verifying anything. Shares beyond the first `threshold + 1` (in holder order) are
    /// ignored.
    pub fn combine_unchecked(
        &self,
        shares: &BTreeMap<NodeId, SignatureShare>,
    ) -> Result<Signature, BlsError> {
        let (chosen, lambdas) = self.interpolation(shares)?;
        let points: Vec<G1> = chosen.iter().map(|(_, s)| s.0).collect();
        Ok(Signature(G1::multi_mul(&points, &lambdas)))
    }

    /// The first `threshold + 1` of `shares` (in holder order) and their Lagrange coefficients
    /// for interpolating at zero.
    fn interpolation<'a, S>(
        &self,
        shares: &'a BTreeMap<NodeId, S>,
    ) -> Result<Interpolation<'a, S>, BlsError> {
        let needed = self.threshold() + 1;
        if shares.len() < needed {
            return Err(BlsError::NotEnoughShares {
                have: shares.len(),
                need: needed,
            });
        }
        let mut xs = Vec::with_capacity(needed);
        let mut chosen = Vec::with_capacity(needed);
        for (holder, share) in shares.iter().take(needed) {
            if holder.index() >= self.n() {
                return Err(BlsError::UnknownHolder(*holder));
            }
            xs.push(holder.index() as u64 + 1);
            chosen.push((*holder, share));
        }
        let lambdas = lagrange_at_zero(&xs).ok_or(BlsError::DegenerateKey)?;
        Ok((chosen, lambdas))
    }

    /// Combines exactly `threshold + 1` shares as they arrived ([`EncodedShare`]; shares beyond
    /// the first `threshold + 1` in holder order are ignored) by Lagrange interpolation,
    /// decompressing each but checking only the result's subgroup membership, once instead of
    /// `threshold + 1` times. The result is in G1 but not verified: check it against the
    /// message ([`Self::verify`], [`Self::verify_batch`]) — a signature that passes is the
    /// unique signature on the message whatever the shares were.
    ///
    /// Errors: [`BlsError::InvalidShareEncoding`] names a share that is not a curve point;
    /// [`BlsError::InvalidEncoding`] says the combination is not in G1 (some share is not);
    /// [`BlsError::NotEnoughShares`], [`BlsError::UnknownHolder`] as for
    /// [`Self::combine_unchecked`].
    pub fn combine_encoded(
        &self,
        shares: &BTreeMap<NodeId, EncodedShare>,
    ) -> Result<Signature, BlsError> {
        let (chosen, lambdas) = self.interpolation(shares)?;
        let encodings: Vec<[u8; G1::COMPRESSED_LEN]> = chosen.iter().map(|(_, e)| e.0).collect();
        match G1::interpolate_encoded(&encodings, &lambdas) {
            Ok(sum) => Ok(Signature(sum)),
            Err(Some(i)) => Err(BlsError::InvalidShareEncoding(chosen[i].0)),
            Err(None) => Err(BlsError::InvalidEncoding("combined signature")),
        }
    }

    /// Combines shares optimistically (protocol reference, "share verification" decision):
    /// interpolate from the first `threshold + 1` shares and verify the result with one pairing
    /// check; only if that fails, verify every share individually, report the invalid ones and
    /// retry with the valid ones.
    ///
    /// Because BLS signatures are unique, every set of `threshold + 1` valid shares yields the
    /// same signature, so all honest replicas derive the same coin whichever shares reach them
    /// first.
    pub fn combine_optimistic(
        &self,
        message: &HashedMessage,
        shares: &BTreeMap<NodeId, SignatureShare>,
    ) -> Combined<Signature> {
        let unknown: Vec<NodeId> = shares
            .keys()
            .copied()
            .filter(|h| h.index() >= self.n())
            .collect();
        if unknown.is_empty()
            && let Ok(sig) = self.combine_unchecked(shares)
            && self.verify(message, &sig)
        {
            return Combined::ok(sig);
        }
        if shares.len() < self.threshold() + 1 && unknown.is_empty() {
            return Combined {
                value: None,
                invalid_shares: Vec::new(),
            };
        }
        // Slow path: verify each share.
        let (valid, invalid): (BTreeMap<_, _>, BTreeMap<_, _>) = shares
            .iter()
            .map(|(h, s)| (*h, *s))
            .partition(|(h, s)| self.verify_share(*h, message, s));
        let invalid_shares: Vec<NodeId> = invalid.into_keys().collect();
        let value = self
            .combine_unchecked(&valid)
            .ok()
            .filter(|sig| self.verify(message, sig));
        Combined {
            value,
            invalid_shares,
        }
    }
}
