//! Serde helpers for fixed-size cryptographic encodings.
//!
//! Human-readable formats (JSON, TOML: committee files, key files) get lowercase hex strings;
//! binary formats (postcard: the wire) get raw bytes. Deserialization checks the exact length and
//! then runs the type's own canonical parser, so a value that decodes is always valid.

use std::fmt;

use serde::{Deserializer, Serializer, de};

/// Serializes `bytes` as hex (human-readable) or a byte string (binary).
pub(crate) fn serialize_bytes<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    if s.is_human_readable() {
        s.serialize_str(&hex::encode(bytes))
    } else {
        s.serialize_bytes(bytes)
    }
}

/// Deserializes exactly `N` bytes written by [`serialize_bytes`].
pub(crate) fn deserialize_array<'de, D: Deserializer<'de>, const N: usize>(
    d: D,
) -> Result<[u8; N], D::Error> {
    struct ArrayVisitor<const N: usize>;

    impl<'de, const N: usize> de::Visitor<'de> for ArrayVisitor<N> {
        type Value = [u8; N];

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{N} bytes (or {} hex characters)", 2 * N)
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<[u8; N], E> {
            let mut out = [0u8; N];
            hex::decode_to_slice(v, &mut out).map_err(|_| E::invalid_length(v.len(), &self))?;
            Ok(out)
        }

        fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<[u8; N], E> {
            v.try_into().map_err(|_| E::invalid_length(v.len(), &self))
        }

        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<[u8; N], A::Error> {
            let mut out = [0u8; N];
            for (i, slot) in out.iter_mut().enumerate() {
                *slot = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(i, &self))?;
            }
            if seq.next_element::<u8>()?.is_some() {
                return Err(de::Error::invalid_length(N + 1, &self));
            }
            Ok(out)
        }
    }

    if d.is_human_readable() {
        d.deserialize_str(ArrayVisitor::<N>)
    } else {
        d.deserialize_bytes(ArrayVisitor::<N>)
    }
}

/// Implements `Serialize`/`Deserialize` for a type with `to_bytes() -> [u8; N]` and
/// `from_bytes(&[u8; N]) -> Result<Self, E>` (E: Display), going through the canonical encoding.
macro_rules! serde_via_bytes {
    ($ty:ty, $len:expr) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                $crate::encoding::serialize_bytes(&self.to_bytes(), s)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let bytes = $crate::encoding::deserialize_array::<D, { $len }>(d)?;
                Self::from_bytes(&bytes).map_err(serde::de::Error::custom)
            }
        }
    };
}

pub(crate) use serde_via_bytes;
