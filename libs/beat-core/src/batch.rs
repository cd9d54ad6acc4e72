//! What an epoch commits.

use beat_crypto::{Digest, hash::hash};
use beat_types::{Epoch, NodeId, Transaction};
use serde::{Deserialize, Serialize};

use crate::FaultKind;

const BATCH_DIGEST_DST: &[u8] = b"_BEAT_CORE_BATCH";

/// The agreed outcome of one epoch: every included proposer's contribution, in proposer order.
///
/// Identical at every honest replica (invariants AGR-1 and ORD-1). Transactions appear in a
/// deterministic order — by proposer, then in the proposer's order — with duplicates removed
/// (within the batch and against recently committed epochs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// The epoch.
    pub epoch: Epoch,
    /// The included contributions, by ascending proposer.
    pub contributions: Vec<Contribution>,
    /// BEAT2 only: the client labels ordered in this epoch (hashed), including those whose
    /// ciphertext did not decrypt. They are agreed data because duplicate suppression of later
    /// epochs depends on them, also at a replica that adopts this batch through catch-up.
    pub ordered_labels: Vec<Digest>,
}

/// One proposer's part of a batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contribution {
    /// The proposer.
    pub proposer: NodeId,
    /// What it contributed.
    pub content: Content,
}

/// A contribution's content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Content {
    /// Transactions (decrypted where the variant encrypts), after duplicate suppression.
    Transactions(Vec<Transaction>),
    /// The proposer was faulty; every honest replica rejects its contribution for this reason.
    Rejected(FaultKind),
    /// BEAT3/BEAT4 with commitments-only delivery: the agreed commitment to the dispersed data.
    Stored(StoredCommitment),
}

/// The commitment to a dispersed contribution (BEAT3/BEAT4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCommitment {
    /// Digest of the fingerprinted cross-checksum.
    pub commitment: Digest,
    /// Length of the dispersed contribution.
    pub payload_len: u64,
}

impl Batch {
    /// Iterates over the committed transactions in order.
    pub fn transactions(&self) -> impl Iterator<Item = &Transaction> {
        self.contributions.iter().flat_map(|c| match &c.content {
            Content::Transactions(txs) => txs.as_slice(),
            _ => &[],
        })
    }

    /// Number of committed transactions.
    pub fn transaction_count(&self) -> usize {
        self.transactions().count()
    }

    /// A digest identifying the batch (used to match catch-up answers and compare replicas).
    pub fn digest(&self) -> Digest {
        hash(
            BATCH_DIGEST_DST,
            &postcard::to_allocvec(self).unwrap_or_default(),
        )
    }
}
