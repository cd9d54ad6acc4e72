//! Catching up from f+1 matching answers.
//!
//! A replica that fell far behind (it was partitioned, or restarted and missed messages) does not
//! need to rerun old epochs: once f+1 peers announce epochs at least `catch_up_lag` ahead, it asks
//! each of them for the committed batches from its own epoch on, and adopts a batch as soon as
//! f+1 peers sent the same one — at least one of them is honest, and honest replicas commit
//! identical batches. Peers serve batches from their storage (a `ReadCommitted` request), so
//! nothing here depends on how far behind the replica is.

use std::collections::BTreeMap;

use beat_crypto::Digest;
use beat_types::{Epoch, NodeId};

use crate::{Batch, Fault, FaultKind};

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct CatchUp {
    /// The epoch at which each peer was last asked.
    asked: BTreeMap<NodeId, Epoch>,
    /// Per epoch, each peer's answer.
    votes: BTreeMap<Epoch, BTreeMap<NodeId, Digest>>,
    /// Per epoch, the distinct batches answered.
    batches: BTreeMap<Epoch, BTreeMap<Digest, Batch>>,
}

impl CatchUp {
    /// Returns `true` if `peer` should be asked now (not yet asked at `current`).
    pub fn should_ask(&self, peer: NodeId, current: Epoch) -> bool {
        self.asked.get(&peer).is_none_or(|e| *e < current)
    }

    pub fn mark_asked(&mut self, peer: NodeId, current: Epoch) {
        self.asked.insert(peer, current);
    }

    /// Records `peer`'s answer. Only answers to an outstanding request, for epochs in
    /// `[current, current + horizon)`, are kept.
    pub fn on_response(
        &mut self,
        peer: NodeId,
        batches: Vec<Batch>,
        current: Epoch,
        horizon: u64,
    ) -> Vec<Fault> {
        let mut faults = Vec::new();
        if !self.asked.contains_key(&peer) {
            return faults;
        }
        for batch in batches {
            if batch.epoch < current || batch.epoch.distance_from(current) >= horizon {
                continue;
            }
            let digest = batch.digest();
            let votes = self.votes.entry(batch.epoch).or_default();
            match votes.get(&peer) {
                Some(d) if *d != digest => {
                    faults.push(Fault {
                        node: peer,
                        epoch: Some(batch.epoch),
                        kind: FaultKind::ConflictingCatchUp,
                    });
                }
                Some(_) => {}
                None => {
                    votes.insert(peer, digest);
                    self.batches
                        .entry(batch.epoch)
                        .or_default()
                        .entry(digest)
                        .or_insert(batch);
                }
            }
        }
        faults
    }

    /// The batch for `current` that f+1 peers agree on, if any; forgets older epochs.
    pub fn take_ready(&mut self, current: Epoch, f_plus_one: usize) -> Option<Batch> {
        self.votes = self.votes.split_off(&current);
        self.batches = self.batches.split_off(&current);
        let votes = self.votes.get(&current)?;
        let mut counts: BTreeMap<Digest, usize> = BTreeMap::new();
        for d in votes.values() {
            *counts.entry(*d).or_default() += 1;
        }
        let (digest, _) = counts.into_iter().find(|(_, c)| *c >= f_plus_one)?;
        let batch = self.batches.get_mut(&current)?.remove(&digest);
        self.votes.remove(&current);
        self.batches.remove(&current);
        batch
    }
}
