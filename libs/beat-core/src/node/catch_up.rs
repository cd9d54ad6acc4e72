//! Catching up from f+1 matching answers.
//!
//! A replica that fell far behind (it was partitioned, or restarted and missed messages) does not
//! need to rerun old epochs: once f+1 peers announce epochs at least `catch_up_lag` ahead, it asks
//! each of them for the committed batches from its own epoch on, and adopts a batch as soon as
//! f+1 peers sent the same one — at least one of them is honest, and honest replicas commit
//! identical batches. Peers serve batches from their storage (a `ReadCommitted` request), so
//! nothing here depends on how far behind the replica is.
//!
//! A batch that comes with a commit certificate needs no second answer: the certificate shows
//! that f+1 replicas, one of them honest, committed it (module `crate::certificate`). Such a
//! batch is adopted from one answer once the certificate verifies against the batch and this
//! replica's history; one that does not verify is its sender's fault.

use std::collections::BTreeMap;

use beat_crypto::Digest;
use beat_types::{Epoch, NodeId};

use crate::{Batch, CommitCertificate, CommittedBatch, Fault, FaultKind};

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct CatchUp {
    /// The epoch at which each peer was last asked.
    asked: BTreeMap<NodeId, Epoch>,
    /// Per epoch, each peer's answer.
    votes: BTreeMap<Epoch, BTreeMap<NodeId, Digest>>,
    /// Per epoch, the distinct batches answered.
    batches: BTreeMap<Epoch, BTreeMap<Digest, Batch>>,
    /// Per epoch, the certificates answered with a batch (unverified), one per peer.
    certificates: BTreeMap<Epoch, BTreeMap<NodeId, CommitCertificate>>,
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
        batches: Vec<CommittedBatch>,
        current: Epoch,
        horizon: u64,
    ) -> Vec<Fault> {
        let mut faults = Vec::new();
        if !self.asked.contains_key(&peer) {
            return faults;
        }
        for CommittedBatch { batch, certificate } in batches {
            if batch.epoch < current || batch.epoch.distance_from(current) >= horizon {
                continue;
            }
            let digest = batch.digest();
            if let Some(c) = certificate
                && c.statement.epoch == batch.epoch
                && c.statement.batch == digest
            {
                self.certificates
                    .entry(batch.epoch)
                    .or_default()
                    .entry(peer)
                    .or_insert(c);
            }
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

    /// The batch for `current` that f+1 peers agree on or one peer sent with a certificate that
    /// passes `check`, with a certificate for it if one passed; forgets older epochs. A
    /// certificate that fails `check` is its sender's fault (in `faults`) and is dropped.
    pub fn take_ready(
        &mut self,
        current: Epoch,
        f_plus_one: usize,
        check: impl Fn(&CommitCertificate) -> bool,
        faults: &mut Vec<Fault>,
    ) -> Option<(Batch, Option<CommitCertificate>)> {
        self.votes = self.votes.split_off(&current);
        self.batches = self.batches.split_off(&current);
        self.certificates = self.certificates.split_off(&current);
        let mut counts: BTreeMap<Digest, usize> = BTreeMap::new();
        for d in self
            .votes
            .get(&current)
            .into_iter()
            .flat_map(|v| v.values())
        {
            *counts.entry(*d).or_default() += 1;
        }
        let agreed = counts
            .into_iter()
            .find(|(_, c)| *c >= f_plus_one)
            .map(|(d, _)| d);
        // At most one certificate per peer and epoch is ever checked: a failing one is dropped
        // with a fault, a passing one ends the epoch here.
        let mut certified = None;
        if let Some(certs) = self.certificates.get_mut(&current) {
            let candidates: Vec<NodeId> = certs
                .iter()
                .filter(|(_, c)| agreed.is_none_or(|d| c.statement.batch == d))
                .map(|(p, _)| *p)
                .collect();
            for peer in candidates {
                let Some(c) = certs.remove(&peer) else {
                    continue;
                };
                if check(&c) {
                    certified = Some(c);
                    break;
                }
                faults.push(Fault {
                    node: peer,
                    epoch: Some(current),
                    kind: FaultKind::InvalidCertificate,
                });
            }
        }
        let digest = agreed.or(certified.map(|c| c.statement.batch))?;
        let batch = self.batches.get_mut(&current)?.remove(&digest);
        self.votes.remove(&current);
        self.batches.remove(&current);
        self.certificates.remove(&current);
        batch.map(|b| (b, certified))
    }
}
