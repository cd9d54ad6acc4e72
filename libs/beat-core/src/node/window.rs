//! Duplicate suppression across epochs.

use std::{
    collections::VecDeque,
    hash::{BuildHasher, RandomState},
    sync::Arc,
};

use beat_crypto::Digest;
use beat_types::Epoch;
use hashbrown::HashTable;

/// The duplicate-suppression keys committed in the last `span` epochs.
///
/// Its content is a function of the committed batches alone, so it is identical at every honest
/// replica — which matters, because it decides what later batches contain. Each epoch's keys
/// are shared (`Arc`), so that a checkpoint, which holds all of them, copies pointers.
///
/// **Semantics** (those of a set of keys, and unchanged from when this was a
/// `HashSet<Digest>`): [`Self::insert`] adds each of the epoch's keys, then removes every key of
/// each epoch that falls out of the span, even one that a newer epoch in the window also holds.
///
/// **Memory.** The keys are stored once, in the per-epoch lists; the lookup index holds only
/// where a key is, `(epoch slot, position)` in 8 bytes, instead of a second copy of its 32
/// bytes. At 50,000 tx/s the window is 64 epochs of up to 16,384 keys, about a million: the
/// index is 19 MiB instead of the 69 MiB a `HashSet<Digest>` reached while growing (heaptrack,
/// docs/benchmarks.md, "Where the consensus service's memory goes"). An entry always points into
/// a live epoch: it is made pointing at the epoch being inserted, and removed when any epoch
/// holding its key leaves, which happens no later than the epoch it points at leaves.
///
/// The index hashes keys with SipHash under a per-process random key (std's `RandomState`), as
/// the `HashSet` did: keys are digests of client transactions, which a client can grind to
/// collide in a fixed hash's low bits. Membership never depends on the hash, so replicas stay
/// identical.
#[derive(Debug)]
pub(crate) struct CommittedWindow {
    span: u64,
    /// The recorded epochs, oldest first; `epochs[i]` has slot `first_slot + i` (wrapping).
    epochs: VecDeque<(Epoch, Arc<[Digest]>)>,
    first_slot: u32,
    /// `(slot, position)` of one occurrence of each key in the window.
    index: HashTable<(u32, u32)>,
    hasher: RandomState,
}

impl CommittedWindow {
    pub fn new(span: u64) -> Self {
        Self {
            span,
            epochs: VecDeque::new(),
            first_slot: 0,
            index: HashTable::new(),
            hasher: RandomState::new(),
        }
    }

    /// The recorded epochs and their keys, oldest first.
    pub fn epochs(&self) -> Vec<(Epoch, Arc<[Digest]>)> {
        self.epochs.iter().cloned().collect()
    }

    pub fn contains(&self, key: &Digest) -> bool {
        let epochs = &self.epochs;
        let first = self.first_slot;
        self.index
            .find(self.hasher.hash_one(key), |&e| {
                key_at(epochs, first, e) == key
            })
            .is_some()
    }

    /// Records `epoch`'s keys and forgets epochs older than `span`.
    pub fn insert(&mut self, epoch: Epoch, keys: impl Into<Arc<[Digest]>>) {
        let keys = keys.into();
        let slot = self.first_slot.wrapping_add(self.epochs.len() as u32);
        self.epochs.push_back((epoch, keys.clone()));
        let (epochs, first, hasher) = (&self.epochs, self.first_slot, &self.hasher);
        for (position, key) in keys.iter().enumerate() {
            let hash = hasher.hash_one(key);
            if self
                .index
                .find(hash, |&e| key_at(epochs, first, e) == key)
                .is_none()
            {
                self.index
                    .insert_unique(hash, (slot, position as u32), |&e| {
                        hasher.hash_one(key_at(epochs, first, e))
                    });
            }
        }
        while let Some((old, _)) = self.epochs.front() {
            if epoch.distance_from(*old) < self.span {
                break;
            }
            let (epochs, first, hasher) = (&self.epochs, self.first_slot, &self.hasher);
            for key in epochs[0].1.iter() {
                if let Ok(entry) = self
                    .index
                    .find_entry(hasher.hash_one(key), |&e| key_at(epochs, first, e) == key)
                {
                    entry.remove();
                }
            }
            self.epochs.pop_front();
            self.first_slot = self.first_slot.wrapping_add(1);
        }
    }

    /// Keys in the window (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.index.len()
    }
}

/// The key an index entry points at. Slots wrap, but the window holds at most `span` epochs,
/// far fewer than 2^32, so the distance from the first slot is exact.
fn key_at(
    epochs: &VecDeque<(Epoch, Arc<[Digest]>)>,
    first_slot: u32,
    (slot, position): (u32, u32),
) -> &Digest {
    &epochs[slot.wrapping_sub(first_slot) as usize].1[position as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::HashSet;

    use proptest::prelude::*;

    /// The set semantics the window had as a `HashSet<Digest>`, to compare against.
    struct Reference {
        span: u64,
        epochs: VecDeque<(Epoch, Vec<Digest>)>,
        keys: HashSet<Digest>,
    }

    impl Reference {
        fn insert(&mut self, epoch: Epoch, keys: Vec<Digest>) {
            self.keys.extend(keys.iter().copied());
            self.epochs.push_back((epoch, keys));
            while let Some((old, _)) = self.epochs.front() {
                if epoch.distance_from(*old) < self.span {
                    break;
                }
                if let Some((_, keys)) = self.epochs.pop_front() {
                    for k in &keys {
                        self.keys.remove(k);
                    }
                }
            }
        }
    }

    proptest! {
        /// Same answers as the `HashSet` it replaced, on keys drawn from a small alphabet so
        /// that repeats within an epoch, across epochs and across evictions are common, with
        /// gaps between epochs, and slots wrapping past `u32::MAX`.
        #[test]
        fn answers_like_a_set_of_keys(
            span in 1u64..6,
            start_slot in prop_oneof![Just(0u32), Just(u32::MAX - 3)],
            epochs in proptest::collection::vec(
                (1u64..3, proptest::collection::vec(0u8..24, 0..12)),
                1..40,
            ),
        ) {
            let mut window = CommittedWindow::new(span);
            window.first_slot = start_slot;
            let mut reference = Reference { span, epochs: VecDeque::new(), keys: HashSet::new() };
            let mut epoch = 0u64;
            for (gap, keys) in epochs {
                epoch += gap;
                let keys: Vec<Digest> = keys.into_iter().map(|k| Digest([k; 32])).collect();
                window.insert(Epoch(epoch), keys.clone());
                reference.insert(Epoch(epoch), keys);
                for k in 0u8..24 {
                    let key = Digest([k; 32]);
                    prop_assert_eq!(window.contains(&key), reference.keys.contains(&key), "key {}", k);
                }
                prop_assert_eq!(window.len(), reference.keys.len());
                let listed: Vec<(Epoch, Vec<Digest>)> =
                    window.epochs().into_iter().map(|(e, k)| (e, k.to_vec())).collect();
                prop_assert_eq!(listed, reference.epochs.iter().cloned().collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn forgets_after_span() {
        let mut w = CommittedWindow::new(2);
        w.insert(Epoch(0), vec![Digest([0; 32])]);
        w.insert(Epoch(1), vec![Digest([1; 32])]);
        assert!(w.contains(&Digest([0; 32])));
        w.insert(Epoch(2), vec![]);
        assert!(!w.contains(&Digest([0; 32])));
        assert!(w.contains(&Digest([1; 32])));
    }
}
