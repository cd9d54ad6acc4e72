//! Ed25519 identities of replicas and clients.
//!
//! An identity is a long-lived Ed25519 key pair. It authenticates a party (peer handshakes,
//! client requests, signed configuration); it is *not* the threshold key material used by the
//! protocol itself.
//!
//! # Domain separation
//!
//! Every signature is bound to a caller-chosen *context* (for example `b"peer-handshake"`).
//! [`IdentityKeypair::sign`] does not sign `message` directly but the digest
//!
//! ```text
//! hash_parts(dst::IDENTITY_SIGN, &[context, message])
//! ```
//!
//! whose framing length-prefixes the tag, the context and the message (see [`crate::hash`]).
//! A signature made under one context therefore never verifies under another, and no
//! `(context, message)` pair can be re-split into a different pair with the same encoding.
//! Signing a 32-byte digest rather than the message keeps the signed value small and fixed-size;
//! the price is that unforgeability now also rests on SHA-256 collision resistance, which BEAT
//! assumes everywhere else anyway (Merkle trees, ciphertext bindings).
//!
//! # Strictness
//!
//! * [`IdentityPublicKey::from_bytes`] accepts only canonical encodings of points in the
//!   prime-order subgroup that are not of small order. Keys produced by
//!   [`IdentityKeypair::generate`] always qualify; anything else is either malformed or an
//!   attempt to exploit verifier disagreement.
//! * [`IdentitySignature::from_bytes`] rejects a non-canonical `s` (≥ the group order), so a valid
//!   signature has exactly one encoding.
//! * [`IdentityPublicKey::verify`] uses `ed25519-dalek`'s `verify_strict`, which additionally
//!   rejects small-order `R` and non-canonical `R` encodings.
//!
//! # Deviations
//!
//! RFC 8032 accepts any public key that decodes to a curve point. BEAT also rejects small-order
//! and mixed-order (torsioned) public keys; honest key generation never produces them.

use std::{collections::HashMap, fmt, str::FromStr, sync::LazyLock};

use curve25519_dalek::{Scalar, edwards::CompressedEdwardsY};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use parking_lot::Mutex;
use rand_core::CryptoRng;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::{dst, hash::hash_parts};

/// Errors from parsing identity keys and signatures and from verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum IdentityError {
    /// The bytes do not decode to a point on the curve.
    #[error("public key is not a valid curve point")]
    InvalidPublicKey,
    /// The point is valid but its encoding is not the canonical one.
    #[error("public key encoding is not canonical")]
    NonCanonicalPublicKey,
    /// The point has small order; it would let a signer produce signatures that verify for
    /// many messages.
    #[error("public key is a small-order (weak) point")]
    WeakPublicKey,
    /// The point has a small-order component, so it is outside the prime-order subgroup.
    #[error("public key is not in the prime-order subgroup")]
    TorsionedPublicKey,
    /// The `s` half of the signature is not reduced modulo the group order.
    #[error("signature scalar is not canonical")]
    NonCanonicalSignature,
    /// The signature does not verify for this key, context and message.
    #[error("signature verification failed")]
    InvalidSignature,
}

/// Returns the digest that is actually signed for `(context, message)`.
fn signed_digest(context: &[u8], message: &[u8]) -> [u8; 32] {
    hash_parts(dst::IDENTITY_SIGN, &[context, message]).0
}

// === impl IdentityKeypair ===

/// An Ed25519 signing key together with its public key.
///
/// The secret is wiped when the value is dropped, the type is deliberately not `Clone`, and
/// `Debug` prints only the public key.
///
/// # Serialization
///
/// `IdentityKeypair` implements `Serialize`/`Deserialize` as its 32 secret bytes (a hex string in
/// human-readable formats, a byte string otherwise). This exists **only** to put the key into the
/// payload of an encrypted keystore ([`crate::keystore_file`]); never serialize it anywhere
/// else, and zeroize the serialized buffer after sealing it.
pub struct IdentityKeypair {
    signing: SigningKey,
}

impl IdentityKeypair {
    /// Length of the secret key in bytes.
    pub const SECRET_LEN: usize = 32;

    /// Generates a fresh key pair from `rng`.
    ///
    /// ```
    /// use beat_crypto::identity::IdentityKeypair;
    /// use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
    ///
    /// let mut rng = ChaCha20Rng::seed_from_u64(7);
    /// let keypair = IdentityKeypair::generate(&mut rng);
    /// let signature = keypair.sign(b"peer-handshake", b"hello");
    /// assert!(keypair.public().verify(b"peer-handshake", b"hello", &signature).is_ok());
    /// assert!(keypair.public().verify(b"client-request", b"hello", &signature).is_err());
    /// ```
    pub fn generate(rng: &mut (impl CryptoRng + ?Sized)) -> Self {
        let mut secret = Zeroizing::new([0u8; Self::SECRET_LEN]);
        rng.fill_bytes(secret.as_mut());
        Self {
            signing: SigningKey::from_bytes(&secret),
        }
    }

    /// Builds a key pair from its 32-byte Ed25519 secret (the RFC 8032 seed).
    ///
    /// The local copy of `secret` is wiped; wiping the caller's copy is the caller's job.
    pub fn from_secret_bytes(mut secret: [u8; 32]) -> Self {
        let signing = SigningKey::from_bytes(&secret);
        secret.zeroize();
        Self { signing }
    }

    /// Returns the public key.
    pub fn public(&self) -> IdentityPublicKey {
        IdentityPublicKey {
            key: self.signing.verifying_key(),
        }
    }

    /// Signs `message` under `context` (see the [module docs](self) for the exact framing).
    pub fn sign(&self, context: &[u8], message: &[u8]) -> IdentitySignature {
        let signature = self.signing.sign(&signed_digest(context, message));
        IdentitySignature(signature.to_bytes())
    }
}

// `SigningKey` zeroizes its secret in its own `Drop`; this marker records that guarantee.
impl ZeroizeOnDrop for IdentityKeypair {}

impl fmt::Debug for IdentityKeypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityKeypair")
            .field("public", &self.public().to_hex())
            .finish_non_exhaustive()
    }
}

impl Serialize for IdentityKeypair {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        fixed_bytes::serialize_secret(self.signing.as_bytes(), serializer)
    }
}

impl<'de> Deserialize<'de> for IdentityKeypair {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let secret = fixed_bytes::deserialize_secret::<D, 32>(deserializer)?;
        Ok(Self {
            signing: SigningKey::from_bytes(&secret),
        })
    }
}

// === impl IdentityPublicKey ===

/// How many validated keys [`VALIDATED_KEYS`] remembers before it starts afresh.
const VALIDATED_KEYS_CAPACITY: usize = 4096;

/// Encodings that passed [`IdentityPublicKey::from_bytes`]'s checks, with their decoded keys.
static VALIDATED_KEYS: LazyLock<Mutex<HashMap<[u8; 32], VerifyingKey>>> =
    LazyLock::new(|| Mutex::new(HashMap::with_capacity(64)));

/// A validated Ed25519 public key.
///
/// Serialized as 64 lowercase hex characters in human-readable formats and as a 32-byte byte
/// string otherwise; deserialization applies the checks of [`IdentityPublicKey::from_bytes`].
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdentityPublicKey {
    key: VerifyingKey,
}

impl IdentityPublicKey {
    /// Length of the encoding in bytes.
    pub const LEN: usize = 32;

    /// Parses a compressed Edwards point, rejecting invalid, non-canonical, small-order and
    /// torsioned points.
    ///
    /// The checks cost a point decompression, a re-compression and a full scalar
    /// multiplication (the torsion check), about a fifth of a BEAT2 replica's CPU when every
    /// client transaction carries its client's key. Keys that passed are therefore remembered
    /// in a small process-wide table ([`VALIDATED_KEYS`]), so a client's key is validated once
    /// per process rather than once per transaction. The table only ever holds keys that passed,
    /// so a lookup gives exactly the result the checks would: it changes no outcome.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, IdentityError> {
        if let Some(key) = VALIDATED_KEYS.lock().get(bytes) {
            return Ok(Self { key: *key });
        }
        let key = Self::validate(bytes)?;
        let mut table = VALIDATED_KEYS.lock();
        if table.len() >= VALIDATED_KEYS_CAPACITY {
            // Bounded: a flood of distinct keys costs what validating them costs, nothing more.
            table.clear();
        }
        table.insert(*bytes, key.key);
        Ok(key)
    }

    /// The checks of [`Self::from_bytes`], uncached.
    fn validate(bytes: &[u8; 32]) -> Result<Self, IdentityError> {
        let compressed = CompressedEdwardsY(*bytes);
        let point = compressed
            .decompress()
            .ok_or(IdentityError::InvalidPublicKey)?;
        if point.compress() != compressed {
            return Err(IdentityError::NonCanonicalPublicKey);
        }
        if point.is_small_order() {
            return Err(IdentityError::WeakPublicKey);
        }
        if !point.is_torsion_free() {
            return Err(IdentityError::TorsionedPublicKey);
        }
        Ok(Self {
            key: VerifyingKey::from(point),
        })
    }

    /// Parses 64 hexadecimal characters and applies [`Self::from_bytes`].
    pub fn from_hex(s: &str) -> Result<Self, IdentityError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s, &mut bytes).map_err(|_| IdentityError::InvalidPublicKey)?;
        Self::from_bytes(&bytes)
    }

    /// Returns the 32-byte encoding.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// Returns the encoding as a reference.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.key.as_bytes()
    }

    /// Returns the lowercase hex encoding.
    pub fn to_hex(&self) -> String {
        hex::encode(self.as_bytes())
    }

    /// Verifies `signature` on `message` under `context` with strict Ed25519 verification.
    pub fn verify(
        &self,
        context: &[u8],
        message: &[u8],
        signature: &IdentitySignature,
    ) -> Result<(), IdentityError> {
        let signature = Signature::from_bytes(&signature.0);
        self.key
            .verify_strict(&signed_digest(context, message), &signature)
            .map_err(|_| IdentityError::InvalidSignature)
    }
}

impl PartialOrd for IdentityPublicKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for IdentityPublicKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl fmt::Debug for IdentityPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityPublicKey({})", self.to_hex())
    }
}

impl fmt::Display for IdentityPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl FromStr for IdentityPublicKey {
    type Err = IdentityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_hex(s)
    }
}

impl Serialize for IdentityPublicKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        fixed_bytes::serialize(self.as_bytes(), serializer)
    }
}

impl<'de> Deserialize<'de> for IdentityPublicKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let bytes = fixed_bytes::deserialize::<D, 32>(deserializer)?;
        Self::from_bytes(&bytes).map_err(serde::de::Error::custom)
    }
}

// === impl IdentitySignature ===

/// An Ed25519 signature (`R ‖ s`, 64 bytes) with a canonical `s`.
///
/// Serialized like [`IdentityPublicKey`]: hex in human-readable formats, bytes otherwise.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdentitySignature([u8; 64]);

impl IdentitySignature {
    /// Length of the encoding in bytes.
    pub const LEN: usize = 64;

    /// Parses `R ‖ s`, rejecting an `s` that is not reduced modulo the group order.
    ///
    /// `R` is checked at verification time: strict verification compares it byte-for-byte with a
    /// canonical recomputation, so a non-canonical `R` never verifies.
    pub fn from_bytes(bytes: &[u8; 64]) -> Result<Self, IdentityError> {
        let mut s = [0u8; 32];
        s.copy_from_slice(&bytes[32..]);
        if bool::from(Scalar::from_canonical_bytes(s).is_none()) {
            return Err(IdentityError::NonCanonicalSignature);
        }
        Ok(Self(*bytes))
    }

    /// Returns the 64-byte encoding.
    pub fn to_bytes(&self) -> [u8; 64] {
        self.0
    }

    /// Returns the encoding as a reference.
    pub fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }

    /// Returns the lowercase hex encoding.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for IdentitySignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentitySignature({})", self.to_hex())
    }
}

impl fmt::Display for IdentitySignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for IdentitySignature {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        fixed_bytes::serialize(&self.0, serializer)
    }
}

impl<'de> Deserialize<'de> for IdentitySignature {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let bytes = fixed_bytes::deserialize::<D, 64>(deserializer)?;
        Self::from_bytes(&bytes).map_err(serde::de::Error::custom)
    }
}

/// Serde for fixed-length byte arrays: a lowercase hex string in human-readable formats, a byte
/// string otherwise. Deserialization also accepts a sequence of `N` integers, which is how some
/// binary formats (and `serde_json` values) present byte arrays.
mod fixed_bytes {
    use std::fmt;

    use serde::{
        Deserializer, Serializer,
        de::{self, SeqAccess, Visitor},
    };
    use zeroize::Zeroizing;

    pub(super) fn serialize<S: Serializer, const N: usize>(
        bytes: &[u8; N],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&hex::encode(bytes))
        } else {
            serializer.serialize_bytes(bytes)
        }
    }

    /// Like [`serialize`], but the intermediate hex string is wiped afterwards.
    pub(super) fn serialize_secret<S: Serializer, const N: usize>(
        bytes: &[u8; N],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            let hex = Zeroizing::new(hex::encode(bytes));
            serializer.serialize_str(&hex)
        } else {
            serializer.serialize_bytes(bytes)
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        deserializer: D,
    ) -> Result<[u8; N], D::Error> {
        let bytes = deserialize_secret::<D, N>(deserializer)?;
        Ok(*bytes)
    }

    /// Deserializes into a buffer that is wiped on drop.
    pub(super) fn deserialize_secret<'de, D: Deserializer<'de>, const N: usize>(
        deserializer: D,
    ) -> Result<Zeroizing<[u8; N]>, D::Error> {
        if deserializer.is_human_readable() {
            deserializer.deserialize_str(FixedVisitor::<N>)
        } else {
            deserializer.deserialize_bytes(FixedVisitor::<N>)
        }
    }

    struct FixedVisitor<const N: usize>;

    impl<'de, const N: usize> Visitor<'de> for FixedVisitor<N> {
        type Value = Zeroizing<[u8; N]>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{N} bytes or {} hex characters", 2 * N)
        }

        fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
            let mut out = Zeroizing::new([0u8; N]);
            if s.len() != 2 * N {
                return Err(E::invalid_length(s.len(), &self));
            }
            hex::decode_to_slice(s, out.as_mut()).map_err(|_| {
                E::invalid_value(de::Unexpected::Other("non-hex characters"), &self)
            })?;
            Ok(out)
        }

        fn visit_string<E: de::Error>(self, s: String) -> Result<Self::Value, E> {
            let s = Zeroizing::new(s);
            self.visit_str(&s)
        }

        fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Self::Value, E> {
            if bytes.len() != N {
                return Err(E::invalid_length(bytes.len(), &self));
            }
            let mut out = Zeroizing::new([0u8; N]);
            out.copy_from_slice(bytes);
            Ok(out)
        }

        fn visit_byte_buf<E: de::Error>(self, bytes: Vec<u8>) -> Result<Self::Value, E> {
            let bytes = Zeroizing::new(bytes);
            self.visit_bytes(&bytes)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Zeroizing::new([0u8; N]);
            for (i, byte) in out.iter_mut().enumerate() {
                *byte = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(i, &self))?;
            }
            if seq.next_element::<u8>()?.is_some() {
                return Err(de::Error::invalid_length(N + 1, &self));
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests;
