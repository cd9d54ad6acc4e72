//! Opaque client transactions.

use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// An opaque client transaction.
///
/// Consensus never interprets transaction bytes. In BEAT2 they are threshold ciphertexts that the
/// replicas decrypt after ordering; in every other variant they are application payloads.
///
/// The bytes are reference-counted ([`Bytes`]): a transaction is copied into the buffer, a
/// proposal, a checkpoint and a committed batch, and each of those copies is a pointer, not
/// the payload. The serde form is a byte string, as it always was.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Transaction(Bytes);

impl Transaction {
    /// Wraps `bytes` as a transaction (a `Vec<u8>` is taken over without copying).
    pub fn new(bytes: impl Into<Bytes>) -> Self {
        Self(bytes.into())
    }

    /// The transaction bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The transaction bytes as shared [`Bytes`]: cloning them copies nothing.
    pub fn bytes(&self) -> &Bytes {
        &self.0
    }

    /// Gives up the transaction as a vector: without copying if nothing else shares the bytes.
    pub fn into_vec(self) -> Vec<u8> {
        Vec::from(self.0)
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Returns `true` for an empty transaction.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Transaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 16;
        write!(f, "Transaction({} bytes: ", self.0.len())?;
        for byte in self.0.iter().take(SHOWN) {
            write!(f, "{byte:02x}")?;
        }
        if self.0.len() > SHOWN {
            f.write_str("…")?;
        }
        f.write_str(")")
    }
}

impl From<Vec<u8>> for Transaction {
    fn from(bytes: Vec<u8>) -> Self {
        Self(bytes.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_truncates() {
        let t = Transaction::new(vec![0xab; 40]);
        let s = format!("{t:?}");
        assert!(s.starts_with("Transaction(40 bytes: abab"));
        assert!(s.ends_with("…)"));
        assert_eq!(t.len(), 40);
        assert!(!t.is_empty());
    }

    #[test]
    fn the_serde_form_is_a_byte_string_as_before() {
        // The encoding of `Vec<u8>` with `serde_bytes`, which transactions used to be: the
        // write-ahead logs, checkpoints and wire messages that hold transactions keep theirs.
        #[derive(Serialize)]
        struct Old(#[serde(with = "serde_bytes")] Vec<u8>);
        let t = Transaction::new(vec![1, 2, 3]);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, serde_json::to_string(&Old(vec![1, 2, 3])).unwrap());
        assert_eq!(serde_json::from_str::<Transaction>(&json).unwrap(), t);
        // Clones share the payload.
        let shared = t.clone();
        assert_eq!(shared.as_bytes().as_ptr(), t.as_bytes().as_ptr());
        assert_eq!(shared.into_vec(), vec![1, 2, 3]);
    }
}
