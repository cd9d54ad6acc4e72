//! Threshold BLS key material and the trusted-dealer key generation.

use std::{
    fmt,
    sync::{Arc, OnceLock},
};

use beat_types::NodeId;
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use super::{
    BlsError,
    field::{Fr, eval_poly},
    group::{G2, G2Lines},
};
use crate::encoding::serde_via_bytes;

/// A BLS public key (a point of G2): the group key or one replica's key share.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(pub(super) G2);

impl PublicKey {
    /// Length of the compressed encoding.
    pub const LEN: usize = G2::COMPRESSED_LEN;

    /// The canonical compressed encoding.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        self.0.to_compressed()
    }

    /// Parses a compressed point, rejecting invalid, out-of-subgroup and identity encodings.
    pub fn from_bytes(bytes: &[u8; Self::LEN]) -> Result<Self, BlsError> {
        G2::from_compressed(bytes)
            .map(Self)
            .ok_or(BlsError::InvalidEncoding("public key"))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bls::PublicKey({}…)",
            &hex::encode(self.to_bytes())[..16]
        )
    }
}

serde_via_bytes!(PublicKey, PublicKey::LEN);

/// One replica's share of the threshold signing key.
///
/// Held only by the keystore service. Wiped on drop; `Debug` shows only the holder. It
/// serializes (as the holder and 32 big-endian bytes) so that it can be written into an
/// encrypted keystore file — never serialize it anywhere else.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "SecretShareRepr", into = "SecretShareRepr")]
pub struct SecretKeyShare {
    pub(super) holder: NodeId,
    pub(super) scalar: Fr,
}

#[derive(Serialize, Deserialize)]
struct SecretShareRepr {
    holder: NodeId,
    #[serde(with = "secret_bytes")]
    scalar: [u8; 32],
}

impl Drop for SecretShareRepr {
    fn drop(&mut self) {
        self.scalar.zeroize();
    }
}

mod secret_bytes {
    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(b: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        crate::encoding::serialize_bytes(b, s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        crate::encoding::deserialize_array::<D, 32>(d)
    }
}

impl TryFrom<SecretShareRepr> for SecretKeyShare {
    type Error = BlsError;

    fn try_from(repr: SecretShareRepr) -> Result<Self, BlsError> {
        let scalar =
            Fr::from_bytes_be(&repr.scalar).ok_or(BlsError::InvalidEncoding("secret key share"))?;
        if scalar.is_zero() {
            return Err(BlsError::InvalidEncoding("secret key share"));
        }
        Ok(Self {
            holder: repr.holder,
            scalar,
        })
    }
}

impl From<SecretKeyShare> for SecretShareRepr {
    fn from(share: SecretKeyShare) -> Self {
        Self {
            holder: share.holder,
            scalar: share.scalar.to_bytes_be(),
        }
    }
}

impl SecretKeyShare {
    /// The replica holding this share.
    pub fn holder(&self) -> NodeId {
        self.holder
    }

    /// The public key share matching this secret share.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(G2::generator_mul(&self.scalar))
    }
}

impl fmt::Debug for SecretKeyShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bls::SecretKeyShare(holder {}, <redacted>)", self.holder)
    }
}

/// The public half of a threshold BLS key: the group key and every replica's key share.
///
/// Any `threshold + 1` valid signature shares on a message combine into the unique signature on
/// that message under [`PublicKeySet::public_key`]; `threshold` or fewer reveal nothing about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PublicKeySetRepr", into = "PublicKeySetRepr")]
pub struct PublicKeySet {
    threshold: usize,
    public_key: PublicKey,
    shares: Vec<PublicKey>,
    lines: KeyLines,
}

/// The Miller-loop lines of a key set's keys ([`G2Lines`]): the group key's at once (it is
/// in every certificate and coin check), a share key's on its first check (only the slow path
/// of an optimistic combination verifies shares). Derived from the keys, so ignored by equality
/// and serialization; shared between clones.
#[derive(Clone)]
struct KeyLines {
    group: Arc<G2Lines>,
    shares: Arc<[OnceLock<G2Lines>]>,
}

impl KeyLines {
    fn new(public_key: &PublicKey, n: usize) -> Self {
        Self {
            group: Arc::new(G2Lines::new(&public_key.0)),
            shares: (0..n).map(|_| OnceLock::new()).collect(),
        }
    }
}

impl PartialEq for KeyLines {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for KeyLines {}

impl fmt::Debug for KeyLines {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyLines")
    }
}

#[derive(Serialize, Deserialize)]
struct PublicKeySetRepr {
    threshold: usize,
    public_key: PublicKey,
    shares: Vec<PublicKey>,
}

impl TryFrom<PublicKeySetRepr> for PublicKeySet {
    type Error = BlsError;

    fn try_from(r: PublicKeySetRepr) -> Result<Self, BlsError> {
        Self::new(r.threshold, r.public_key, r.shares)
    }
}

impl From<PublicKeySet> for PublicKeySetRepr {
    fn from(s: PublicKeySet) -> Self {
        Self {
            threshold: s.threshold,
            public_key: s.public_key,
            shares: s.shares,
        }
    }
}

impl PublicKeySet {
    /// Assembles a key set, checking that `threshold + 1 ≤ shares.len()`.
    pub fn new(
        threshold: usize,
        public_key: PublicKey,
        shares: Vec<PublicKey>,
    ) -> Result<Self, BlsError> {
        if shares.is_empty() || threshold >= shares.len() {
            return Err(BlsError::BadThreshold {
                threshold,
                n: shares.len(),
            });
        }
        Ok(Self {
            threshold,
            lines: KeyLines::new(&public_key, shares.len()),
            public_key,
            shares,
        })
    }

    /// `t`: any `t + 1` shares combine.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// Number of key shares (replicas).
    pub fn n(&self) -> usize {
        self.shares.len()
    }

    /// The group public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    /// Replica `holder`'s public key share.
    pub fn share(&self, holder: NodeId) -> Option<&PublicKey> {
        self.shares.get(holder.index())
    }

    /// The group key's precomputed Miller-loop lines.
    pub(super) fn group_lines(&self) -> &G2Lines {
        &self.lines.group
    }

    /// Replica `holder`'s key share's precomputed Miller-loop lines (computed on first use).
    pub(super) fn share_lines(&self, holder: NodeId) -> Option<&G2Lines> {
        let key = self.shares.get(holder.index())?;
        let cell = self.lines.shares.get(holder.index())?;
        Some(cell.get_or_init(|| G2Lines::new(&key.0)))
    }
}

/// Generates threshold BLS keys for `n` replicas as a trusted dealer: a random polynomial `p`
/// of degree `threshold`; replica `i` gets `p(i + 1)`, the group key is `g2^p(0)`.
pub fn deal(
    n: usize,
    threshold: usize,
    rng: &mut (impl CryptoRng + ?Sized),
) -> Result<(PublicKeySet, Vec<SecretKeyShare>), BlsError> {
    if n == 0 || threshold >= n {
        return Err(BlsError::BadThreshold { threshold, n });
    }
    let coefficients: Vec<Fr> = (0..=threshold).map(|_| Fr::random(rng)).collect();
    let master = PublicKey(G2::generator_mul(&coefficients[0]));
    let mut secrets = Vec::with_capacity(n);
    let mut publics = Vec::with_capacity(n);
    for i in 0..n {
        let x = Fr::from_u64(i as u64 + 1);
        let scalar = eval_poly(&coefficients, &x);
        if scalar.is_zero() {
            // Probability 2^-255; a zero share would be rejected by the keystore loader.
            return Err(BlsError::DegenerateKey);
        }
        let share = SecretKeyShare {
            holder: NodeId::from_index(i),
            scalar,
        };
        publics.push(share.public_key());
        secrets.push(share);
    }
    // `coefficients` (including the master secret p(0)) are wiped as they drop here.
    Ok((PublicKeySet::new(threshold, master, publics)?, secrets))
}
