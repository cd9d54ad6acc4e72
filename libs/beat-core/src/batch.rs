//! What an epoch commits.

use beat_crypto::{Digest, hash::Hasher};
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

    /// A digest identifying the batch: equal digests mean equal batches as the API shows them.
    ///
    /// It is defined on what a client sees (docs/wire.md §6), so that any client can recompute
    /// it from a `beat.common.v1.Batch` and check it against a commit certificate: SHA-256 over
    /// length-prefixed parts (each part is its length as a little-endian `u64`, then its bytes)
    /// under the tag `_BEAT_CORE_BATCH`:
    ///
    /// ```text
    /// u64 epoch, u64 #contributions,
    ///   per contribution: u64 proposer, then
    ///     transactions: [0x00], u64 #transactions, each transaction as a part
    ///     rejected:     [0x01], u64 reject code (beat.common.v1.RejectReason)
    ///     stored:       [0x02], commitment (32 bytes), u64 payload length
    /// u64 #ordered labels, each label as a part
    /// ```
    /// (`u64 x` is the part of the 8 little-endian bytes of `x`.)
    pub fn digest(&self) -> Digest {
        let mut h = Hasher::new(BATCH_DIGEST_DST);
        h.u64(self.epoch.0).u64(self.contributions.len() as u64);
        for c in &self.contributions {
            h.u64(u64::from(c.proposer.0));
            match &c.content {
                Content::Transactions(txs) => {
                    h.part(&[0]).u64(txs.len() as u64);
                    for tx in txs {
                        h.part(tx.as_bytes());
                    }
                }
                Content::Rejected(kind) => {
                    h.part(&[1]).u64(u64::from(kind.reject_code()));
                }
                Content::Stored(s) => {
                    h.part(&[2])
                        .part(s.commitment.as_bytes())
                        .u64(s.payload_len);
                }
            }
        }
        h.u64(self.ordered_labels.len() as u64);
        for label in &self.ordered_labels {
            h.part(label.as_bytes());
        }
        h.finish()
    }
}
