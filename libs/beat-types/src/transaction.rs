//! Opaque client transactions.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An opaque client transaction.
///
/// Consensus never interprets transaction bytes. In BEAT2 they are threshold ciphertexts that the
/// replicas decrypt after ordering; in every other variant they are application payloads.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Transaction(#[serde(with = "serde_bytes")] pub Vec<u8>);

impl Transaction {
    /// Wraps `bytes` as a transaction.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    /// The transaction bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
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
        Self(bytes)
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
}
