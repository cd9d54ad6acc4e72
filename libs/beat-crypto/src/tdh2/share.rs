//! Decryption shares with DLEQ proofs, their verification, and (optimistic) combination.

use std::collections::BTreeMap;

use beat_types::NodeId;
use chacha20poly1305::{
    ChaCha20Poly1305, KeyInit,
    aead::{Aead, Payload},
};
use curve25519_dalek::{RistrettoPoint, Scalar, traits::VartimeMultiscalarMul};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use super::{
    Ciphertext, CiphertextHeader, PublicKey, SecretKeyShare, Tdh2Error,
    hashing::{hash_to_scalar, key_commitment, key_mask},
    keys::{Point, scalar_from_bytes},
};
use crate::{
    dst,
    encoding::{deserialize_array, serialize_bytes},
    threshold::Combined,
};

/// A ciphertext that every honest replica agrees cannot be decrypted: its key commitment or its
/// AEAD tag does not match the key that `t + 1` *valid* shares determine. The proposer (or, in
/// BEAT2, the client) who produced it was faulty.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("ciphertext does not decrypt under its committed key")]
pub struct Undecryptable;

/// One replica's decryption share `u_i = u^{x_i}` with a Chaum–Pedersen proof `(e_i, f_i)` that
/// `log_u u_i = log_g h_i`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecryptionShare {
    u_i: Point,
    e_i: Scalar,
    f_i: Scalar,
}

impl DecryptionShare {
    /// Length of the canonical encoding.
    pub const LEN: usize = 96;

    /// The canonical encoding: `u_i ‖ e_i ‖ f_i`.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[..32].copy_from_slice(&self.u_i.bytes);
        out[32..64].copy_from_slice(self.e_i.as_bytes());
        out[64..].copy_from_slice(self.f_i.as_bytes());
        out
    }

    /// Parses the canonical encoding (valid non-identity point, canonical scalars).
    pub fn from_bytes(bytes: &[u8; Self::LEN]) -> Result<Self, Tdh2Error> {
        let mut part = [0u8; 32];
        part.copy_from_slice(&bytes[..32]);
        let u_i = Point::from_bytes(&part, "decryption share")?;
        part.copy_from_slice(&bytes[32..64]);
        let e_i = scalar_from_bytes(&part, "decryption share")?;
        part.copy_from_slice(&bytes[64..]);
        let f_i = scalar_from_bytes(&part, "decryption share")?;
        Ok(Self { u_i, e_i, f_i })
    }
}

impl Serialize for DecryptionShare {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_bytes(&self.to_bytes(), s)
    }
}

impl<'de> Deserialize<'de> for DecryptionShare {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = deserialize_array::<D, { Self::LEN }>(d)?;
        Self::from_bytes(&bytes).map_err(serde::de::Error::custom)
    }
}

/// H4: the share proof's challenge, bound to the holder and the ciphertext's `u`.
fn share_challenge(
    holder: NodeId,
    u: &[u8; 32],
    u_i: &[u8; 32],
    u_hat: &RistrettoPoint,
    h_hat: &RistrettoPoint,
) -> Scalar {
    hash_to_scalar(
        dst::TDH2_SHARE_CHALLENGE,
        &[
            &holder.0.to_le_bytes(),
            u,
            u_i,
            u_hat.compress().as_bytes(),
            h_hat.compress().as_bytes(),
        ],
    )
}

impl SecretKeyShare {
    /// Produces this replica's decryption share for `ct` (TDH2 `DecShare`), but only if `ct`
    /// carries `expected_label` and its validity proof verifies: releasing a share for an
    /// invalid or relabelled ciphertext would let a Byzantine replica get an honest replica's
    /// ciphertext decrypted early (protocol reference, pitfall 5).
    ///
    /// The proof nonce is derived deterministically from the secret share and the ciphertext
    /// (as in Ed25519), so the same ciphertext always gets the same share and no RNG is needed.
    pub fn decryption_share(
        &self,
        public_key: &PublicKey,
        ct: &Ciphertext,
        expected_label: &[u8],
    ) -> Result<DecryptionShare, Tdh2Error> {
        self.header_decryption_share(public_key, &ct.header(), expected_label)
    }

    /// [`Self::decryption_share`] from the ciphertext's header: the same checks (label, validity
    /// proof over the body's digest) and the same share, without the body.
    pub fn header_decryption_share(
        &self,
        public_key: &PublicKey,
        ct: &CiphertextHeader,
        expected_label: &[u8],
    ) -> Result<DecryptionShare, Tdh2Error> {
        public_key.verify_header_with_label(ct, expected_label)?;
        let u_i = Point::new(self.x * ct.u.point);
        let mut x_bytes = Zeroizing::new(self.x.to_bytes());
        let mut s = hash_to_scalar(
            dst::TDH2_SHARE_NONCE,
            &[
                x_bytes.as_ref(),
                &ct.u.bytes,
                ct.e.as_bytes(),
                ct.f.as_bytes(),
            ],
        );
        x_bytes.zeroize();
        let u_hat = s * ct.u.point;
        let h_hat = RistrettoPoint::mul_base(&s);
        let e_i = share_challenge(self.holder, &ct.u.bytes, &u_i.bytes, &u_hat, &h_hat);
        let f_i = s + self.x * e_i;
        s.zeroize();
        Ok(DecryptionShare { u_i, e_i, f_i })
    }
}

impl PublicKey {
    /// Checks `holder`'s share for `ct` (TDH2 `VerifyShare`): recomputes `û = u^{f_i} / u_i^{e_i}`,
    /// `ĥ = g^{f_i} / h_i^{e_i}` and compares the challenge.
    pub fn verify_share(&self, ct: &Ciphertext, holder: NodeId, share: &DecryptionShare) -> bool {
        let Some(h_i) = self.verification_key(holder) else {
            return false;
        };
        let minus_e = -share.e_i;
        let u_hat = RistrettoPoint::vartime_multiscalar_mul(
            [share.f_i, minus_e],
            [ct.u.point, share.u_i.point],
        );
        let h_hat =
            RistrettoPoint::vartime_double_scalar_mul_basepoint(&minus_e, &h_i.point, &share.f_i);
        share_challenge(holder, &ct.u.bytes, &share.u_i.bytes, &u_hat, &h_hat) == share.e_i
    }

    /// Interpolates `h^r` from the first `threshold + 1` shares (in holder order), unmasks the
    /// key and checks its commitment. Verifies nothing about the shares.
    fn recover_key(
        &self,
        ct: &Ciphertext,
        shares: &BTreeMap<NodeId, DecryptionShare>,
    ) -> Result<Option<Zeroizing<[u8; 32]>>, Tdh2Error> {
        let needed = self.threshold + 1;
        if shares.len() < needed {
            return Err(Tdh2Error::NotEnoughShares {
                have: shares.len(),
                need: needed,
            });
        }
        let chosen: Vec<(&NodeId, &DecryptionShare)> = shares.iter().take(needed).collect();
        let xs: Vec<Scalar> = chosen
            .iter()
            .map(|(h, _)| Scalar::from(h.0 as u64 + 1))
            .collect();
        let mut lambdas = Vec::with_capacity(needed);
        for (i, xi) in xs.iter().enumerate() {
            let (mut num, mut den) = (Scalar::ONE, Scalar::ONE);
            for (j, xj) in xs.iter().enumerate() {
                if i != j {
                    num *= xj;
                    den *= xj - xi;
                }
            }
            if den == Scalar::ZERO {
                return Err(Tdh2Error::Malformed("duplicate share holder"));
            }
            lambdas.push(num * den.invert());
        }
        let shared = RistrettoPoint::vartime_multiscalar_mul(
            lambdas,
            chosen.iter().map(|(_, s)| s.u_i.point),
        );
        let mask = key_mask(&ct.u.bytes, &shared);
        let mut key = Zeroizing::new([0u8; 32]);
        for (out, (c, m)) in key.iter_mut().zip(ct.masked_key.iter().zip(mask)) {
            *out = c ^ m;
        }
        let committed: bool = key_commitment(&key).ct_eq(&ct.key_commitment).into();
        Ok(committed.then_some(key))
    }

    fn open_body(ct: &Ciphertext, key: &[u8; 32]) -> Result<Vec<u8>, Undecryptable> {
        ChaCha20Poly1305::new_from_slice(key)
            .map_err(|_| Undecryptable)?
            .decrypt(
                &[0u8; 12].into(),
                Payload {
                    msg: &ct.body,
                    aad: &ct.label,
                },
            )
            .map_err(|_| Undecryptable)
    }

    /// Decrypts from `threshold + 1` shares that the caller has already verified.
    pub fn combine_verified(
        &self,
        ct: &Ciphertext,
        shares: &BTreeMap<NodeId, DecryptionShare>,
    ) -> Result<Result<Vec<u8>, Undecryptable>, Tdh2Error> {
        Ok(match self.recover_key(ct, shares)? {
            Some(key) => Self::open_body(ct, &key),
            None => Err(Undecryptable),
        })
    }

    /// Decrypts optimistically (protocol reference, "share verification" decision): combine the
    /// first `threshold + 1` shares without verifying them; if the recovered key matches the
    /// ciphertext's key commitment the result is final (the commitment pins the key, so the AEAD
    /// outcome is the same at every replica). Only otherwise verify every share, report the
    /// invalid ones and combine the valid ones, whose result is again the same at every replica.
    ///
    /// `value` is `None` while fewer than `threshold + 1` valid shares are available.
    pub fn decrypt_optimistic(
        &self,
        ct: &Ciphertext,
        shares: &BTreeMap<NodeId, DecryptionShare>,
    ) -> Combined<Result<Vec<u8>, Undecryptable>> {
        let all_known = shares.keys().all(|h| h.index() < self.n());
        if all_known && let Ok(Some(key)) = self.recover_key(ct, shares) {
            return Combined::ok(Self::open_body(ct, &key));
        }
        if all_known && shares.len() <= self.threshold {
            return Combined {
                value: None,
                invalid_shares: Vec::new(),
            };
        }
        let (valid, invalid): (BTreeMap<_, _>, BTreeMap<_, _>) = shares
            .iter()
            .map(|(h, s)| (*h, *s))
            .partition(|(h, s)| self.verify_share(ct, *h, s));
        Combined {
            value: self.combine_verified(ct, &valid).ok(),
            invalid_shares: invalid.into_keys().collect(),
        }
    }
}
