//! The pending-transaction buffer and the proposal rule.
//!
//! HoneyBadgerBFT's rule (HB Fig. 1, kept by BEAT): each replica proposes a random sample of
//! `⌊B/n⌋` transactions from the first `B` of its buffer. Because the samples are random, the
//! honest replicas' proposals are mostly disjoint, so an epoch commits close to `B` distinct
//! transactions even though every replica may hold the same ones. Committed transactions leave
//! the buffer whoever proposed them.

use std::collections::{BTreeMap, HashMap};

use beat_crypto::{Digest, hash::hash};
use beat_types::Transaction;
use rand_core::Rng;

const TX_DIGEST_DST: &[u8] = b"_BEAT_CORE_TRANSACTION";

/// The identity of a transaction: a hash of its bytes.
pub fn transaction_digest(tx: &Transaction) -> Digest {
    hash(TX_DIGEST_DST, tx.as_bytes())
}

/// Why a transaction was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransactionError {
    /// Empty transactions carry nothing to order.
    #[error("empty transaction")]
    Empty,
    /// The transaction exceeds the size limit.
    #[error("transaction of {size} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Size.
        size: usize,
        /// Limit.
        max: usize,
    },
    /// BEAT2 transactions must be valid, signed client transactions.
    #[error("not a valid client transaction: {0}")]
    InvalidClientTransaction(#[from] crate::client::ClientTransactionError),
}

/// What happened to a submitted transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Added to the buffer.
    Added,
    /// Already pending, or committed within the duplicate-suppression window.
    Duplicate,
}

/// Pending transactions in arrival order.
#[derive(Debug, Default)]
pub struct TransactionBuffer {
    /// Arrival sequence → transaction.
    queue: BTreeMap<u64, (Digest, Transaction)>,
    /// Digest → arrival sequence.
    index: HashMap<Digest, u64>,
    next_seq: u64,
    bytes: usize,
}

impl TransactionBuffer {
    /// Number of pending transactions.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Returns `true` when nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Total bytes pending.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Every pending transaction with its key, in arrival order.
    pub fn entries(&self) -> impl Iterator<Item = &(Digest, Transaction)> {
        self.queue.values()
    }

    /// Returns `true` if the transaction with this digest is pending.
    pub fn contains(&self, digest: &Digest) -> bool {
        self.index.contains_key(digest)
    }

    /// Appends a transaction unless it is already pending.
    pub fn push(&mut self, digest: Digest, tx: Transaction) -> Admission {
        if self.index.contains_key(&digest) {
            return Admission::Duplicate;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.bytes += tx.len();
        self.index.insert(digest, seq);
        self.queue.insert(seq, (digest, tx));
        Admission::Added
    }

    /// Removes a transaction (because it was committed).
    pub fn remove(&mut self, digest: &Digest) {
        if let Some(seq) = self.index.remove(digest)
            && let Some((_, tx)) = self.queue.remove(&seq)
        {
            self.bytes -= tx.len();
        }
    }

    /// The proposal rule: a uniformly random sample of `count` transactions from the first
    /// `window` pending ones, in buffer order, bounded by `max_bytes` in total.
    pub fn sample(
        &self,
        window: usize,
        count: usize,
        max_bytes: usize,
        rng: &mut (impl Rng + ?Sized),
    ) -> Vec<Transaction> {
        let head: Vec<&Transaction> = self.queue.values().take(window).map(|(_, t)| t).collect();
        let count = count.min(head.len());
        // Partial Fisher–Yates over positions: the first `count` positions are the sample.
        let mut positions: Vec<usize> = (0..head.len()).collect();
        for i in 0..count {
            let span = (head.len() - i) as u64;
            let j = i + (rng.next_u64() % span) as usize;
            positions.swap(i, j);
        }
        let mut chosen = positions[..count].to_vec();
        chosen.sort_unstable();
        let mut out = Vec::with_capacity(count);
        let mut total = 0;
        for p in chosen {
            let tx = head[p];
            if total + tx.len() > max_bytes {
                continue;
            }
            total += tx.len();
            out.push(tx.clone());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    fn tx(i: u32) -> Transaction {
        Transaction::new(i.to_le_bytes().to_vec())
    }

    #[test]
    fn push_dedupes_and_remove_forgets() {
        let mut b = TransactionBuffer::default();
        let t = tx(1);
        let d = transaction_digest(&t);
        assert_eq!(b.push(d, t.clone()), Admission::Added);
        assert_eq!(b.push(d, t), Admission::Duplicate);
        assert_eq!((b.len(), b.bytes()), (1, 4));
        b.remove(&d);
        assert!(b.is_empty());
        assert_eq!(b.bytes(), 0);
    }

    #[test]
    fn sample_takes_from_the_window_in_order_and_respects_limits() {
        let mut b = TransactionBuffer::default();
        for i in 0..100 {
            let t = tx(i);
            b.push(transaction_digest(&t), t);
        }
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let s = b.sample(40, 10, usize::MAX, &mut rng);
        assert_eq!(s.len(), 10);
        let idx: Vec<u32> = s
            .iter()
            .map(|t| u32::from_le_bytes(t.as_bytes().try_into().unwrap()))
            .collect();
        assert!(idx.windows(2).all(|w| w[0] < w[1]), "in buffer order");
        assert!(idx.iter().all(|i| *i < 40), "from the window");
        assert_eq!(b.sample(40, 10, 12, &mut rng).len(), 3, "byte bound");
        assert_eq!(b.sample(5, 10, usize::MAX, &mut rng).len(), 5);
        // Different seeds give different samples.
        let other = b.sample(40, 10, usize::MAX, &mut ChaCha20Rng::seed_from_u64(2));
        assert_ne!(s, other);
    }
}
