//! SHA-256 digests with unambiguous, domain-separated framing.
//!
//! Every hash in BEAT goes through [`hash_parts`]: the domain-separation tag and every part are
//! length-prefixed, so no two different `(tag, parts)` inputs share an encoding and a hash
//! computed for one purpose can never be replayed as a hash for another.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// A 32-byte SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Digest(pub [u8; 32]);

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::encoding::serialize_bytes(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::encoding::deserialize_array::<D, 32>(d).map(Self)
    }
}

impl Digest {
    /// Length in bytes.
    pub const LEN: usize = 32;

    /// The digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hexadecimal.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hexadecimal characters.
    pub fn from_hex(s: &str) -> Result<Self, hex::FromHexError> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out)?;
        Ok(Self(out))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", &self.to_hex()[..16])
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl AsRef<[u8]> for Digest {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// An incremental hasher with the same framing as [`hash_parts`].
#[derive(Clone)]
pub struct Hasher(Sha256);

impl Hasher {
    /// Starts a hash under the domain-separation tag `dst`.
    pub fn new(dst: &[u8]) -> Self {
        let mut h = Self(Sha256::new());
        h.part(dst);
        h
    }

    /// Appends one length-prefixed part.
    pub fn part(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
        self
    }

    /// Appends a `u64` as a fixed-width part.
    pub fn u64(&mut self, value: u64) -> &mut Self {
        self.part(&value.to_le_bytes())
    }

    /// Returns the digest.
    pub fn finish(self) -> Digest {
        Digest(self.0.finalize().into())
    }
}

/// Hashes `parts` under the domain-separation tag `dst`, length-prefixing each.
pub fn hash_parts(dst: &[u8], parts: &[&[u8]]) -> Digest {
    let mut h = Hasher::new(dst);
    for p in parts {
        h.part(p);
    }
    h.finish()
}

/// Hashes one byte string under `dst`.
pub fn hash(dst: &[u8], bytes: &[u8]) -> Digest {
    hash_parts(dst, &[bytes])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_is_unambiguous() {
        let a = hash_parts(b"T", &[b"ab", b"c"]);
        let b = hash_parts(b"T", &[b"a", b"bc"]);
        let c = hash_parts(b"U", &[b"ab", b"c"]);
        assert_ne!(a, b);
        assert_ne!(a, c);
        let mut h = Hasher::new(b"T");
        h.part(b"ab").part(b"c");
        assert_eq!(h.finish(), a);
    }

    #[test]
    fn hex_round_trip() {
        let d = hash(b"T", b"x");
        assert_eq!(Digest::from_hex(&d.to_hex()).unwrap(), d);
        assert!(Digest::from_hex("zz").is_err());
    }
}
