//! Committee size and the thresholds derived from it.

use serde::{Deserialize, Serialize};

use crate::NodeId;

/// The largest committee this implementation accepts.
///
/// The bound keeps per-epoch state (`O(n²)` messages, `n` erasure-code shards) within what the
/// reed-solomon-simd codec and a single machine's memory handle comfortably; the protocol itself
/// has no such limit.
pub const MAX_COMMITTEE_SIZE: usize = 1024;

/// Why a committee size was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommitteeError {
    /// A committee needs at least one replica.
    #[error("a committee needs at least one replica")]
    Empty,
    /// The committee is larger than [`MAX_COMMITTEE_SIZE`].
    #[error("committee of {n} replicas exceeds the maximum of {max}")]
    TooLarge {
        /// Requested size.
        n: usize,
        /// Largest accepted size.
        max: usize,
    },
}

/// A committee of `n` replicas tolerating `f = ⌊(n−1)/3⌋` Byzantine ones.
///
/// All thresholds are derived from `n`; see the crate documentation for which sub-protocol uses
/// which. The committee is `Copy` and cheap to pass around.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "CommitteeRepr", into = "CommitteeRepr")]
pub struct Committee {
    n: usize,
}

#[derive(Serialize, Deserialize)]
struct CommitteeRepr {
    n: usize,
}

impl TryFrom<CommitteeRepr> for Committee {
    type Error = CommitteeError;

    fn try_from(repr: CommitteeRepr) -> Result<Self, Self::Error> {
        Self::new(repr.n)
    }
}

impl From<Committee> for CommitteeRepr {
    fn from(committee: Committee) -> Self {
        Self { n: committee.n }
    }
}

impl Committee {
    /// Returns a committee of `n` replicas.
    pub fn new(n: usize) -> Result<Self, CommitteeError> {
        match n {
            0 => Err(CommitteeError::Empty),
            n if n > MAX_COMMITTEE_SIZE => Err(CommitteeError::TooLarge {
                n,
                max: MAX_COMMITTEE_SIZE,
            }),
            n => Ok(Self { n }),
        }
    }

    /// Number of replicas.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Largest number of Byzantine replicas tolerated: `⌊(n−1)/3⌋`.
    pub fn f(&self) -> usize {
        (self.n - 1) / 3
    }

    /// `f + 1`: the smallest set guaranteed to contain an honest replica.
    pub fn f_plus_one(&self) -> usize {
        self.f() + 1
    }

    /// `2f + 1`: the smallest set guaranteed to contain `f + 1` honest replicas.
    pub fn two_f_plus_one(&self) -> usize {
        2 * self.f() + 1
    }

    /// `n − f`: the number of replicas that can be waited for without waiting for a faulty one.
    pub fn quorum(&self) -> usize {
        self.n - self.f()
    }

    /// `n − 2f`: Reed–Solomon data shards (`k`), the most that `n − f` senders of which `f` may
    /// lie are guaranteed to provide honestly.
    pub fn data_shards(&self) -> usize {
        self.n - 2 * self.f()
    }

    /// `n − k = 2f`: Reed–Solomon recovery (parity) shards.
    pub fn parity_shards(&self) -> usize {
        2 * self.f()
    }

    /// `⌈(n + f + 1)/2⌉`: Bracha's ECHO threshold, which makes any two ECHO quorums intersect in
    /// an honest replica.
    pub fn echo_threshold(&self) -> usize {
        (self.n + self.f() + 1).div_ceil(2)
    }

    /// Returns `true` if `id` names a member of this committee.
    pub fn contains(&self, id: NodeId) -> bool {
        id.index() < self.n
    }

    /// Iterates over every member, in index order.
    pub fn members(&self) -> impl ExactSizeIterator<Item = NodeId> + use<> {
        (0..self.n).map(NodeId::from_index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_empty_and_oversized() {
        assert_eq!(Committee::new(0), Err(CommitteeError::Empty));
        assert!(matches!(
            Committee::new(MAX_COMMITTEE_SIZE + 1),
            Err(CommitteeError::TooLarge { .. })
        ));
        assert!(Committee::new(MAX_COMMITTEE_SIZE).is_ok());
    }

    #[test]
    fn deserialization_validates() {
        let c: Committee = serde_json::from_str(r#"{"n":4}"#).unwrap();
        assert_eq!(c.f(), 1);
        assert!(serde_json::from_str::<Committee>(r#"{"n":0}"#).is_err());
    }

    #[test]
    fn membership() {
        let c = Committee::new(4).unwrap();
        assert!(c.contains(NodeId(3)));
        assert!(!c.contains(NodeId(4)));
        assert_eq!(c.members().collect::<Vec<_>>().len(), 4);
    }
}
