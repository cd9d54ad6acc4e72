//! Duplicate suppression across epochs.

use std::{
    collections::{HashSet, VecDeque},
    sync::Arc,
};

use beat_crypto::Digest;
use beat_types::Epoch;

/// The duplicate-suppression keys committed in the last `span` epochs.
///
/// Its content is a function of the committed batches alone, so it is identical at every honest
/// replica — which matters, because it decides what later batches contain. Each epoch's keys
/// are shared (`Arc`), so that a checkpoint, which holds all of them, copies pointers.
#[derive(Debug)]
pub(crate) struct CommittedWindow {
    span: u64,
    epochs: VecDeque<(Epoch, Arc<[Digest]>)>,
    keys: HashSet<Digest>,
}

impl CommittedWindow {
    pub fn new(span: u64) -> Self {
        Self {
            span,
            epochs: VecDeque::new(),
            keys: HashSet::new(),
        }
    }

    /// The recorded epochs and their keys, oldest first.
    pub fn epochs(&self) -> Vec<(Epoch, Arc<[Digest]>)> {
        self.epochs.iter().cloned().collect()
    }

    pub fn contains(&self, key: &Digest) -> bool {
        self.keys.contains(key)
    }

    /// Records `epoch`'s keys and forgets epochs older than `span`.
    pub fn insert(&mut self, epoch: Epoch, keys: impl Into<Arc<[Digest]>>) {
        let keys = keys.into();
        self.keys.extend(keys.iter().copied());
        self.epochs.push_back((epoch, keys));
        while let Some((old, _)) = self.epochs.front() {
            if epoch.distance_from(*old) < self.span {
                break;
            }
            if let Some((_, keys)) = self.epochs.pop_front() {
                for k in keys.iter() {
                    self.keys.remove(k);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
