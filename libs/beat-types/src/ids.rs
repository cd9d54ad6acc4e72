//! Replica and epoch identifiers.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The index of a replica in the committee, `0..n`.
///
/// Indices are dense and fixed at key generation: replica `i` holds key share `i + 1` of every
/// threshold scheme (share indices start at one because zero is the secret's own evaluation
/// point).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub u32);

impl NodeId {
    /// Returns the index as a `usize`, for indexing per-replica vectors.
    pub fn index(self) -> usize {
        self.0 as usize
    }

    /// Returns the identifier of replica `index`.
    ///
    /// # Panics
    ///
    /// Panics if `index` does not fit in a `u32`; committees are far smaller
    /// ([`crate::MAX_COMMITTEE_SIZE`]).
    pub fn from_index(index: usize) -> Self {
        Self(u32::try_from(index).expect("replica index fits in u32"))
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A consensus epoch: one run of the asynchronous common subset and its decryption phase.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Epoch(pub u64);

impl Epoch {
    /// The first epoch.
    pub const ZERO: Self = Self(0);

    /// Returns the epoch after this one.
    #[must_use]
    pub fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }

    /// Returns `self + delta`, saturating at `u64::MAX`.
    #[must_use]
    pub fn saturating_add(self, delta: u64) -> Self {
        Self(self.0.saturating_add(delta))
    }

    /// Returns how many epochs `self` is ahead of `earlier` (zero if it is not ahead).
    pub fn distance_from(self, earlier: Self) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_arithmetic_saturates() {
        assert_eq!(Epoch(u64::MAX).next(), Epoch(u64::MAX));
        assert_eq!(Epoch(3).saturating_add(4), Epoch(7));
        assert_eq!(Epoch(3).distance_from(Epoch(5)), 0);
        assert_eq!(Epoch(9).distance_from(Epoch(5)), 4);
    }

    #[test]
    fn ids_serialize_transparently() {
        assert_eq!(serde_json::to_string(&NodeId(4)).unwrap(), "4");
        assert_eq!(serde_json::to_string(&Epoch(17)).unwrap(), "17");
    }
}
