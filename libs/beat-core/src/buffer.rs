//! The pending-transaction buffer and the proposal rule.
//!
//! HoneyBadgerBFT's rule (HB Fig. 1, kept by BEAT): each replica proposes a random sample of
//! `⌊B/n⌋` transactions from the first `B` of its buffer. Because the samples are random, the
//! honest replicas' proposals are mostly disjoint, so an epoch commits close to `B` distinct
//! transactions even though every replica may hold the same ones. Committed transactions leave
//! the buffer whoever proposed them.

use std::collections::{BTreeMap, HashMap, HashSet};

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
///
/// Some of them may be *held*: proposed by this replica in an epoch that is not committed yet
/// (pipelined epochs, module `node`). The proposal rule samples only from the others, so that
/// the next epoch's proposal does not repeat the one still in flight; a held transaction that
/// its epoch does not commit is released and proposed again later.
#[derive(Debug, Default)]
pub struct TransactionBuffer {
    /// Arrival sequence → transaction.
    queue: BTreeMap<u64, (Digest, Transaction)>,
    /// Digest → arrival sequence.
    index: HashMap<Digest, u64>,
    /// Pending transactions in one of this replica's uncommitted proposals (a subset of
    /// `index`'s keys).
    held: HashSet<Digest>,
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
            self.held.remove(digest);
        }
    }

    /// Pending transactions that are not held: what the next proposal can draw from.
    pub fn available(&self) -> usize {
        self.queue.len() - self.held.len()
    }

    /// Holds the pending ones of `keys` (they are in a proposal of an uncommitted epoch).
    pub fn hold(&mut self, keys: &[Digest]) {
        for key in keys {
            if self.index.contains_key(key) {
                self.held.insert(*key);
            }
        }
    }

    /// Releases `keys` (their epoch is over; those it did not commit may be proposed again).
    pub fn release(&mut self, keys: &[Digest]) {
        for key in keys {
            self.held.remove(key);
        }
    }

    /// The proposal rule: a uniformly random sample of `count` transactions from the first
    /// `window` pending ones that are not held, in buffer order, bounded by `max_bytes` in
    /// total. Returns the sample's keys and transactions.
    pub fn sample(
        &self,
        window: usize,
        count: usize,
        max_bytes: usize,
        rng: &mut (impl Rng + ?Sized),
    ) -> (Vec<Digest>, Vec<Transaction>) {
        let head: Vec<&(Digest, Transaction)> = self
            .queue
            .values()
            .filter(|(k, _)| self.held.is_empty() || !self.held.contains(k))
            .take(window)
            .collect();
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
        let mut keys = Vec::with_capacity(count);
        let mut out = Vec::with_capacity(count);
        let mut total = 0;
        for p in chosen {
            let (key, tx) = head[p];
            if total + tx.len() > max_bytes {
                continue;
            }
            total += tx.len();
            keys.push(*key);
            out.push(tx.clone());
        }
        (keys, out)
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
        let (keys, s) = b.sample(40, 10, usize::MAX, &mut rng);
        assert!(
            keys.iter()
                .eq(s.iter().map(transaction_digest).collect::<Vec<_>>().iter())
        );
        assert_eq!(s.len(), 10);
        let idx: Vec<u32> = s
            .iter()
            .map(|t| u32::from_le_bytes(t.as_bytes().try_into().unwrap()))
            .collect();
        assert!(idx.windows(2).all(|w| w[0] < w[1]), "in buffer order");
        assert!(idx.iter().all(|i| *i < 40), "from the window");
        assert_eq!(b.sample(40, 10, 12, &mut rng).1.len(), 3, "byte bound");
        assert_eq!(b.sample(5, 10, usize::MAX, &mut rng).1.len(), 5);
        // Different seeds give different samples.
        let other = b.sample(40, 10, usize::MAX, &mut ChaCha20Rng::seed_from_u64(2));
        assert_ne!(s, other.1);
    }

    /// Held transactions are not sampled until released; one committed while held leaves both
    /// the buffer and the held set; with nothing held the sample is what it always was.
    #[test]
    fn held_transactions_are_skipped_until_released() {
        let mut b = TransactionBuffer::default();
        let mut keys = Vec::new();
        for i in 0..10 {
            let t = tx(i);
            keys.push(transaction_digest(&t));
            b.push(keys[i as usize], t);
        }
        let before = b.sample(10, 4, usize::MAX, &mut ChaCha20Rng::seed_from_u64(7));
        b.hold(&keys[..6]);
        assert_eq!(b.available(), 4);
        let (held_out, _) = b.sample(10, 10, usize::MAX, &mut ChaCha20Rng::seed_from_u64(7));
        assert_eq!(
            held_out,
            keys[6..].to_vec(),
            "only what is not held, in order"
        );
        b.remove(&keys[0]);
        assert_eq!((b.len(), b.available()), (9, 4));
        b.release(&keys[..6]);
        assert_eq!(b.available(), 9);
        b.push(keys[0], tx(0));
        let after = b.sample(10, 4, usize::MAX, &mut ChaCha20Rng::seed_from_u64(7));
        // Re-pushed at the end, so only the window's order differs: same size, all pending.
        assert_eq!(after.0.len(), before.0.len());
        let mut c = TransactionBuffer::default();
        for i in 0..10 {
            let t = tx(i);
            c.push(transaction_digest(&t), t);
        }
        c.hold(&[]);
        assert_eq!(
            c.sample(10, 4, usize::MAX, &mut ChaCha20Rng::seed_from_u64(7)),
            before,
            "nothing held: the sample of an unpipelined replica"
        );
    }
}
