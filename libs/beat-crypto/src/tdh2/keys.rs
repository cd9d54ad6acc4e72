//! TDH2 key material and the trusted-dealer key generation.

use std::fmt;

use beat_types::NodeId;
use curve25519_dalek::{RistrettoPoint, Scalar, ristretto::CompressedRistretto};
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use super::Tdh2Error;
use crate::encoding::{deserialize_array, serialize_bytes};

/// A compressed Ristretto255 point that is known to decompress to a non-identity point.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct Point {
    pub(super) point: RistrettoPoint,
    pub(super) bytes: [u8; 32],
}

impl Point {
    pub(super) fn new(point: RistrettoPoint) -> Self {
        Self {
            point,
            bytes: point.compress().to_bytes(),
        }
    }

    /// Parses a canonical, non-identity encoding.
    pub(super) fn from_bytes(bytes: &[u8; 32], what: &'static str) -> Result<Self, Tdh2Error> {
        let point = CompressedRistretto(*bytes)
            .decompress()
            .ok_or(Tdh2Error::InvalidEncoding(what))?;
        if point == RistrettoPoint::default() {
            return Err(Tdh2Error::InvalidEncoding(what));
        }
        Ok(Self {
            point,
            bytes: *bytes,
        })
    }
}

impl fmt::Debug for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}…", &hex::encode(self.bytes)[..16])
    }
}

impl Serialize for Point {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_bytes(&self.bytes, s)
    }
}

impl<'de> Deserialize<'de> for Point {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = deserialize_array::<D, 32>(d)?;
        Self::from_bytes(&bytes, "point").map_err(serde::de::Error::custom)
    }
}

/// Parses a canonical scalar (< ℓ).
pub(super) fn scalar_from_bytes(bytes: &[u8; 32], what: &'static str) -> Result<Scalar, Tdh2Error> {
    Option::from(Scalar::from_canonical_bytes(*bytes)).ok_or(Tdh2Error::InvalidEncoding(what))
}

/// The TDH2 public key: `h = g^x` and every replica's verification key `h_i = g^{x_i}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PublicKeyRepr", into = "PublicKeyRepr")]
pub struct PublicKey {
    pub(super) threshold: usize,
    pub(super) h: Point,
    pub(super) verification_keys: Vec<Point>,
}

#[derive(Serialize, Deserialize)]
struct PublicKeyRepr {
    threshold: usize,
    h: Point,
    verification_keys: Vec<Point>,
}

impl TryFrom<PublicKeyRepr> for PublicKey {
    type Error = Tdh2Error;

    fn try_from(r: PublicKeyRepr) -> Result<Self, Tdh2Error> {
        if r.verification_keys.is_empty() || r.threshold >= r.verification_keys.len() {
            return Err(Tdh2Error::BadThreshold {
                threshold: r.threshold,
                n: r.verification_keys.len(),
            });
        }
        Ok(Self {
            threshold: r.threshold,
            h: r.h,
            verification_keys: r.verification_keys,
        })
    }
}

impl From<PublicKey> for PublicKeyRepr {
    fn from(k: PublicKey) -> Self {
        Self {
            threshold: k.threshold,
            h: k.h,
            verification_keys: k.verification_keys,
        }
    }
}

impl PublicKey {
    /// `t`: any `t + 1` valid decryption shares decrypt.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// Number of key shares (replicas).
    pub fn n(&self) -> usize {
        self.verification_keys.len()
    }

    pub(super) fn verification_key(&self, holder: NodeId) -> Option<&Point> {
        self.verification_keys.get(holder.index())
    }
}

/// One replica's TDH2 decryption key share `x_i`.
///
/// Held only by the keystore service; wiped on drop; `Debug` shows only the holder. It
/// serializes so that it can be written into an encrypted keystore file — never anywhere else.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "SecretShareRepr", into = "SecretShareRepr")]
pub struct SecretKeyShare {
    pub(super) holder: NodeId,
    pub(super) x: Scalar,
}

#[derive(Serialize, Deserialize)]
struct SecretShareRepr {
    holder: NodeId,
    #[serde(serialize_with = "ser32", deserialize_with = "de32")]
    x: [u8; 32],
}

fn ser32<S: serde::Serializer>(b: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
    serialize_bytes(b, s)
}

fn de32<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
    deserialize_array::<D, 32>(d)
}

impl Drop for SecretShareRepr {
    fn drop(&mut self) {
        self.x.zeroize();
    }
}

impl TryFrom<SecretShareRepr> for SecretKeyShare {
    type Error = Tdh2Error;

    fn try_from(r: SecretShareRepr) -> Result<Self, Tdh2Error> {
        let x = scalar_from_bytes(&r.x, "secret key share")?;
        if x == Scalar::ZERO {
            return Err(Tdh2Error::InvalidEncoding("secret key share"));
        }
        Ok(Self {
            holder: r.holder,
            x,
        })
    }
}

impl From<SecretKeyShare> for SecretShareRepr {
    fn from(s: SecretKeyShare) -> Self {
        Self {
            holder: s.holder,
            x: s.x.to_bytes(),
        }
    }
}

impl SecretKeyShare {
    /// The replica holding this share.
    pub fn holder(&self) -> NodeId {
        self.holder
    }
}

impl Drop for SecretKeyShare {
    fn drop(&mut self) {
        self.x.zeroize();
    }
}

impl fmt::Debug for SecretKeyShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "tdh2::SecretKeyShare(holder {}, <redacted>)",
            self.holder
        )
    }
}

/// Generates TDH2 keys for `n` replicas as a trusted dealer: a random polynomial `p` of degree
/// `threshold`; replica `i` gets `x_i = p(i + 1)`, the public key is `h = g^{p(0)}`.
pub fn deal(
    n: usize,
    threshold: usize,
    rng: &mut (impl CryptoRng + ?Sized),
) -> Result<(PublicKey, Vec<SecretKeyShare>), Tdh2Error> {
    if n == 0 || threshold >= n {
        return Err(Tdh2Error::BadThreshold { threshold, n });
    }
    let mut coefficients: Vec<Scalar> = (0..=threshold).map(|_| Scalar::random(rng)).collect();
    let eval = |x: Scalar| {
        coefficients
            .iter()
            .rev()
            .fold(Scalar::ZERO, |acc, c| acc * x + c)
    };
    let h = Point::new(RistrettoPoint::mul_base(&coefficients[0]));
    let mut secrets = Vec::with_capacity(n);
    let mut verification_keys = Vec::with_capacity(n);
    for i in 0..n {
        let x = eval(Scalar::from(i as u64 + 1));
        if x == Scalar::ZERO {
            return Err(Tdh2Error::DegenerateKey);
        }
        verification_keys.push(Point::new(RistrettoPoint::mul_base(&x)));
        secrets.push(SecretKeyShare {
            holder: NodeId::from_index(i),
            x,
        });
    }
    coefficients.zeroize();
    Ok((
        PublicKey {
            threshold,
            h,
            verification_keys,
        },
        secrets,
    ))
}
