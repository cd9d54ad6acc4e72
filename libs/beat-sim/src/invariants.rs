//! Invariants with stable identifiers, checked after every delivery.
//!
//! | ID | property |
//! |---|---|
//! | `AGR-1` | agreement: honest replicas commit identical batches for every epoch |
//! | `ORD-1` | total order: each honest replica commits epochs 0, 1, 2, … once each, without gaps |
//! | `VAL-1` | validity: an honest proposer's contribution is never rejected, and contains only transactions clients submitted (with commitments-only delivery: the contribution its commitment decodes to) |
//! | `DUP-1` | no replica commits the same transaction twice; in BEAT2, which de-duplicates by label, no replica orders the same label twice (two requests with equal plaintexts are legitimate); with commitments-only delivery, no honest proposer stores the same transaction in two committed contributions within the duplicate-suppression window (replicas cannot see each other's stored contributions, so readers remove duplicates across proposers) |
//! | `CEN-1` | censorship resilience: a transaction given to every honest replica is committed (commitments-only: retrievable) within a bounded number of epochs |
//! | `LIV-1` | liveness: the workload is committed everywhere within the delivery budget (commitments-only: every transaction is retrievable from the fragments honest replicas stored for epochs every honest replica committed) |
//! | `FLT-1` | no honest replica is ever reported faulty by an honest replica |
//! | `FLT-2` | where the adversary's deviation is detectable, faulty replicas are reported (checked over a suite of seeds) |
//! | `MEM-1` | bounded memory: an honest replica queues messages for at most `max_future_epochs` future epochs |
//! | `ERR-1` | no entry point of an honest replica returns an error |
//! | `RST-1` | a restarted replica, rebuilt from its checkpoint and write-ahead log, sends nothing it had not sent before (it cannot equivocate) |
//! | `TRM-1` | no honest replica is stranded: once nothing is in flight (and stall timers fired), every honest replica is in the same epoch and none has an epoch in progress — every binary agreement any of them started has decided everywhere; a cluster that stays busy after the workload must keep every honest replica moving |
//! | `CAU-1` | causal order: an honest replica asks for decryption shares of an epoch only once its common subset is fixed there, and only for ciphertexts labelled for that epoch and proposer (BEAT2: for a client) |
//! | `RET-1` | retrievability (commitments-only): once every honest replica committed an epoch, every committed commitment decodes (full read) from the fragments honest replicas stored under it, honest replicas stored nothing else, each honest replica that delivered the epoch itself (not through catch-up) keeps a record of every committed dispersal, and an honest proposer's commitment is its own dispersal and decodes to its contribution |
//! | `CER-1` | commit certificates: an honest replica outputs a certificate for an epoch once, after committing it, and it names the agreed batch and the agreed history (chain link) and carries the committee's signature |
//! | `CER-2` | certification is live: once nothing is in flight, every honest replica holds a certificate for every epoch it committed |
//! | `KSP-1` | the keystore's signing horizon never refuses an honest replica: every coin, decryption and commit request is within `certify_window + 1` epochs of the replica's latest certificate (decryption: not more than that behind it either) and no two commit statements for one epoch differ (module `beat_core::signing`, K1–K3) |
//! | `RD-1` | read consistency (BEAT4, commitments-only): every group's partial read of the honest replicas' fragments returns exactly the full read's bytes of that group, or both refuse |
//!
//! `RET-1` and `RD-1` are checked by [`crate::storage`], once per epoch, when the last honest
//! replica commits it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use beat_core::{
    Batch, BeatNode, CommitCertificate, CommitStatement, Content, Delivery, Fault, Params, Request,
    buffer::transaction_digest, client::is_client_label, codec::epoch_label,
    epoch::StoredFragments, signing::PolicyError,
};
use beat_crypto::{Digest, avid_fp::Fpcc};
use beat_types::{Committee, Epoch, NodeId, Transaction, Variant};

use crate::storage::StorageCheck;

/// A broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The invariant's identifier.
    pub invariant: &'static str,
    /// The delivery after which it was detected.
    pub crank: u64,
    /// What happened.
    pub detail: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (after delivery {}): {}",
            self.invariant, self.crank, self.detail
        )
    }
}

/// Tracks the run and records violations.
pub struct Checker {
    committee: Committee,
    faulty: BTreeSet<NodeId>,
    params: Params,
    reference: BTreeMap<Epoch, Digest>,
    /// The first batch committed for each epoch some honest replica has not committed yet, and
    /// its transactions' digests: a replica committing an equal batch is compared, not hashed
    /// again (hashing every batch at every replica was 17 % of a `beat-sim bench` process at
    /// n = 4; the bench's per-replica CPU never counted it).
    unhashed: BTreeMap<Epoch, (Batch, Vec<Digest>)>,
    next_epoch: BTreeMap<NodeId, Epoch>,
    committed: BTreeMap<NodeId, HashSet<Digest>>,
    /// BEAT2: the label keys each replica ordered.
    ordered_labels: BTreeMap<NodeId, HashSet<Digest>>,
    /// Expected transactions (in committed form) and the honest epoch when they were given to
    /// every honest replica.
    workload: HashMap<Digest, Epoch>,
    remaining: BTreeMap<NodeId, usize>,
    first_committed_in: HashMap<Digest, Epoch>,
    /// Commitments-only delivery: the storage checks, and per honest proposer the epoch in
    /// which each of its transactions was last stored.
    storage: Option<StorageCheck>,
    stored_by: BTreeMap<NodeId, HashMap<Digest, Epoch>>,
    /// Violations so far.
    pub violations: Vec<Violation>,
    /// Faults honest replicas attributed to faulty ones.
    pub detections: u64,
    /// The most epochs any honest replica held in memory.
    pub max_epochs_in_memory: usize,
    /// The widest gap between honest replicas' epochs seen after any delivery.
    pub max_lag: u64,
    /// (replica, epoch) pairs in which an honest replica started an epoch early (pipelining,
    /// P1 of `beat_core::node`), seen after deliveries.
    pub started_early: BTreeSet<(NodeId, Epoch)>,
    /// Commit certificates: the committee, its group key, the agreed chain links and the
    /// certificate signature checked for each epoch, and what each replica certified.
    certification: Certification,
}

/// What `CER-1` checks certificates against.
struct Certification {
    committee: Digest,
    keys: Option<std::sync::Arc<beat_crypto::bls::PublicKeySet>>,
    links: BTreeMap<Epoch, Digest>,
    signatures: BTreeMap<Epoch, beat_crypto::bls::Signature>,
    certified: BTreeMap<NodeId, BTreeSet<Epoch>>,
}

impl Checker {
    /// A checker for a committee with the given faulty replicas.
    pub fn new(committee: Committee, faulty: BTreeSet<NodeId>, params: Params) -> Self {
        let next_epoch = committee
            .members()
            .filter(|id| !faulty.contains(id))
            .map(|id| (id, Epoch::ZERO))
            .collect();
        let storage = (params.variant.is_storage() && params.delivery == Delivery::CommitmentsOnly)
            .then(|| StorageCheck::new(committee, &params));
        Self {
            committee,
            faulty,
            storage,
            stored_by: BTreeMap::new(),
            params,
            reference: BTreeMap::new(),
            unhashed: BTreeMap::new(),
            next_epoch,
            committed: BTreeMap::new(),
            ordered_labels: BTreeMap::new(),
            workload: HashMap::new(),
            remaining: BTreeMap::new(),
            first_committed_in: HashMap::new(),
            violations: Vec::new(),
            detections: 0,
            max_epochs_in_memory: 0,
            max_lag: 0,
            started_early: BTreeSet::new(),
            certification: Certification {
                committee: Digest::default(),
                keys: None,
                links: BTreeMap::new(),
                signatures: BTreeMap::new(),
                certified: BTreeMap::new(),
            },
        }
    }

    /// Sets what certificates are checked against (`CER-1`); without it their signatures are
    /// not checked.
    pub fn with_certificates(
        mut self,
        committee: Digest,
        keys: std::sync::Arc<beat_crypto::bls::PublicKeySet>,
    ) -> Self {
        self.certification.committee = committee;
        self.certification.keys = Some(keys);
        self
    }

    /// Checks a certificate an honest replica output (`CER-1`): once per replica and epoch,
    /// after it committed the epoch, on the agreed batch and the agreed history, with the
    /// committee's signature.
    pub fn on_certified(&mut self, node: NodeId, certificate: &CommitCertificate, crank: u64) {
        let s = certificate.statement;
        let e = s.epoch;
        if self.next_epoch.get(&node).is_none_or(|next| *next <= e) {
            self.violate(
                "CER-1",
                crank,
                format!("node {node} certified epoch {e} before committing it"),
            );
            return;
        }
        if !self
            .certification
            .certified
            .entry(node)
            .or_default()
            .insert(e)
        {
            self.violate(
                "CER-1",
                crank,
                format!("node {node} certified epoch {e} twice"),
            );
        }
        // The agreed link names the committee, the epoch, the agreed batch and the agreed
        // history before it: equal links, equal statements.
        let c = &self.certification;
        if c.links.get(&e) != Some(&s.link()) {
            self.violate(
                "CER-1",
                crank,
                format!("node {node}'s certificate of epoch {e} is not on the agreed history"),
            );
            return;
        }
        if c.signatures.get(&e) == Some(&certificate.signature) {
            return;
        }
        if let Some(keys) = &c.keys
            && !certificate.verify_signature(keys)
        {
            self.violate(
                "CER-1",
                crank,
                format!("node {node}'s certificate of epoch {e} does not verify"),
            );
            return;
        }
        self.certification
            .signatures
            .insert(e, certificate.signature);
    }

    fn violate(&mut self, invariant: &'static str, crank: u64, detail: String) {
        self.violations.push(Violation {
            invariant,
            crank,
            detail,
        });
    }

    /// Registers a transaction (in the form it will be committed) given to every honest
    /// replica while the most advanced honest replica was in `epoch`.
    pub fn expect(&mut self, committed_form: &Transaction, epoch: Epoch) {
        let key = transaction_digest(committed_form);
        if self.workload.insert(key, epoch).is_none() {
            for id in self.next_epoch.keys() {
                *self.remaining.entry(*id).or_default() += 1;
            }
        }
    }

    /// Returns `true` once every honest replica committed every expected transaction.
    pub fn workload_done(&self) -> bool {
        self.remaining.values().all(|r| *r == 0)
    }

    /// Distinct transactions of the workload committed so far — with commitments-only
    /// delivery, stored in an agreed contribution.
    pub fn stored_transactions(&self) -> usize {
        self.first_committed_in.len()
    }

    /// The lowest number of epochs committed by an honest replica.
    pub fn min_epochs(&self) -> u64 {
        self.next_epoch.values().map(|e| e.0).min().unwrap_or(0)
    }

    /// Checks a batch an honest replica committed.
    pub fn on_commit(&mut self, node: NodeId, batch: &Batch, crank: u64) {
        let expected = self.next_epoch.get(&node).copied().unwrap_or_default();
        if batch.epoch != expected {
            self.violate(
                "ORD-1",
                crank,
                format!(
                    "node {node} committed epoch {} after {}",
                    batch.epoch,
                    expected.0.wrapping_sub(1)
                ),
            );
        }
        self.next_epoch.insert(node, batch.epoch.next());
        // An equal batch was checked in full when it was first committed (AGR-1, VAL-1: the
        // outcome depends on the batch only); its transactions' digests are reused below.
        let digests = match self.unhashed.get(&batch.epoch) {
            Some((first, digests)) if first == batch => digests.clone(),
            _ => self.check_batch(node, batch, crank),
        };
        let everywhere = self.next_epoch.values().min().copied().unwrap_or_default();
        self.unhashed = self.unhashed.split_off(&everywhere);
        self.record_transactions(node, batch, &digests, crank);
    }

    /// AGR-1 and VAL-1 for a batch not seen before at its epoch; returns its transactions'
    /// digests.
    fn check_batch(&mut self, node: NodeId, batch: &Batch, crank: u64) -> Vec<Digest> {
        let digests: Vec<Digest> = batch.transactions().map(transaction_digest).collect();
        let digest = batch.digest();
        match self.reference.get(&batch.epoch) {
            Some(d) if *d != digest => self.violate(
                "AGR-1",
                crank,
                format!(
                    "node {node} committed a different batch for epoch {}",
                    batch.epoch
                ),
            ),
            Some(_) => {}
            None => {
                self.reference.insert(batch.epoch, digest);
                self.unhashed
                    .insert(batch.epoch, (batch.clone(), digests.clone()));
                let c = &mut self.certification;
                let previous = match batch.epoch.0.checked_sub(1) {
                    Some(p) => c.links.get(&Epoch(p)).copied(),
                    None => Some(CommitStatement::genesis(c.committee)),
                };
                // An honest replica commits epochs in order, so the previous link is known
                // (ORD-1 reports it otherwise).
                if let Some(previous) = previous {
                    let link = CommitStatement {
                        committee: c.committee,
                        epoch: batch.epoch,
                        batch: digest,
                        previous,
                    }
                    .link();
                    c.links.insert(batch.epoch, link);
                }
            }
        }
        // `digests` follows `batch.transactions()`: contribution by contribution.
        let mut remaining = digests.as_slice();
        for c in &batch.contributions {
            let own = match &c.content {
                Content::Transactions(txs) => {
                    let (own, rest) = remaining.split_at(txs.len());
                    remaining = rest;
                    own
                }
                _ => &[],
            };
            if self.faulty.contains(&c.proposer) {
                continue;
            }
            match &c.content {
                Content::Rejected(kind) => self.violate(
                    "VAL-1",
                    crank,
                    format!(
                        "honest proposer {}'s contribution rejected in epoch {}: {kind:?}",
                        c.proposer, batch.epoch
                    ),
                ),
                Content::Transactions(txs) => {
                    for (tx, key) in txs.iter().zip(own) {
                        if !self.workload.contains_key(key) {
                            self.violate(
                                "VAL-1",
                                crank,
                                format!(
                                    "honest proposer {} committed an unknown transaction {tx:?}",
                                    c.proposer
                                ),
                            );
                        }
                    }
                }
                Content::Stored(_) => {}
            }
        }
        digests
    }

    /// DUP-1 and liveness bookkeeping for `node`'s commit of `batch` (`digests`: its
    /// transactions').
    fn record_transactions(&mut self, node: NodeId, batch: &Batch, digests: &[Digest], crank: u64) {
        let beat2 = self.params.variant == Variant::Beat2;
        let seen = self.committed.entry(node).or_default();
        let mut duplicates = Vec::new();
        let mut newly_expected = 0;
        for (tx, &key) in batch.transactions().zip(digests) {
            if !seen.insert(key) {
                // BEAT2 orders requests, not plaintexts: equal plaintexts may commit twice.
                if !beat2 {
                    duplicates.push(format!("transaction {tx:?}"));
                }
            } else if self.workload.contains_key(&key) {
                newly_expected += 1;
                self.first_committed_in.entry(key).or_insert(batch.epoch);
            }
        }
        if beat2 {
            let labels = self.ordered_labels.entry(node).or_default();
            for label in &batch.ordered_labels {
                if !labels.insert(*label) {
                    duplicates.push(format!("label {label:?}"));
                }
            }
        }
        if let Some(r) = self.remaining.get_mut(&node) {
            *r = r.saturating_sub(newly_expected);
        }
        for d in duplicates {
            self.violate("DUP-1", crank, format!("node {node} committed {d} twice"));
        }
        self.check_storage(batch, crank);
    }

    /// Records the fragments an honest replica stored (commitments-only delivery).
    pub fn on_stored(
        &mut self,
        node: NodeId,
        epoch: Epoch,
        fragments: &[StoredFragments],
        complete: bool,
    ) {
        if let Some(storage) = &mut self.storage {
            storage.on_stored(node, epoch, fragments, complete);
        }
    }

    /// Records the cross-checksum an honest proposer dispersed (from its `Val` messages).
    pub fn on_dispersed(&mut self, proposer: NodeId, epoch: Epoch, fpcc: &Fpcc) {
        if let Some(storage) = &mut self.storage {
            storage.on_proposed(proposer, epoch, fpcc);
        }
    }

    /// Commitments-only delivery: reads every epoch all honest replicas have now committed
    /// (RET-1, RD-1), and counts what it retrieves as committed (VAL-1, DUP-1, LIV-1, CEN-1).
    fn check_storage(&mut self, batch: &Batch, crank: u64) {
        let Some(storage) = &mut self.storage else {
            return;
        };
        storage.on_committed(batch);
        let everywhere = Epoch(self.next_epoch.values().map(|e| e.0).min().unwrap_or(0));
        for (epoch, check) in storage.check_up_to(everywhere, &self.faulty) {
            for (invariant, detail) in check.violations {
                self.violate(invariant, crank, detail);
            }
            for r in check.retrieved {
                let honest = !self.faulty.contains(&r.proposer);
                let Some(txs) = r.transactions else {
                    if honest {
                        self.violate(
                            "VAL-1",
                            crank,
                            format!(
                                "honest proposer {}'s stored contribution in epoch {epoch} is \
                                 not a list of transactions",
                                r.proposer
                            ),
                        );
                    }
                    continue;
                };
                for tx in &txs {
                    self.on_retrieved(epoch, r.proposer, honest, tx, crank);
                }
            }
        }
    }

    fn on_retrieved(
        &mut self,
        epoch: Epoch,
        proposer: NodeId,
        honest: bool,
        tx: &Transaction,
        crank: u64,
    ) {
        let key = transaction_digest(tx);
        let expected = self.workload.contains_key(&key);
        if honest {
            if !expected {
                self.violate(
                    "VAL-1",
                    crank,
                    format!("honest proposer {proposer} stored an unknown transaction {tx:?}"),
                );
            }
            let window = self.params.dedup_window_epochs;
            let last = self
                .stored_by
                .entry(proposer)
                .or_default()
                .insert(key, epoch);
            if let Some(before) = last
                && epoch.distance_from(before) <= window
            {
                self.violate(
                    "DUP-1",
                    crank,
                    format!(
                        "honest proposer {proposer} stored {tx:?} in epoch {before} and again in \
                         epoch {epoch}"
                    ),
                );
            }
        }
        if expected && !self.first_committed_in.contains_key(&key) {
            self.first_committed_in.insert(key, epoch);
            for r in self.remaining.values_mut() {
                *r = r.saturating_sub(1);
            }
        }
    }

    /// Checks a fault an honest replica reported.
    pub fn on_fault(&mut self, reporter: NodeId, fault: &Fault, crank: u64) {
        if self.faulty.contains(&fault.node) {
            self.detections += 1;
        } else {
            self.violate(
                "FLT-1",
                crank,
                format!("honest node {reporter} reported honest node: {fault}"),
            );
        }
    }

    /// Records an error returned to an honest replica's driver.
    pub fn on_error(&mut self, node: NodeId, error: &str, crank: u64) {
        if !self.faulty.contains(&node) {
            self.violate("ERR-1", crank, format!("node {node}: {error}"));
        }
    }

    /// Checks a keystore request an honest replica made (`CAU-1`); `node` is its state right
    /// after the step that made it.
    pub fn on_request(&mut self, id: NodeId, node: &BeatNode, request: &Request, crank: u64) {
        let Request::DecryptionShares { epoch, items } = request else {
            return;
        };
        if !node.is_subset_fixed(*epoch) {
            self.violate(
                "CAU-1",
                crank,
                format!("node {id} asked for decryption shares of epoch {epoch} before its common subset was fixed"),
            );
        }
        let beat2 = self.params.variant == beat_types::Variant::Beat2;
        for item in items {
            let ok = if beat2 {
                is_client_label(&item.expected_label)
            } else {
                item.expected_label == epoch_label(*epoch, item.slot.proposer)
            };
            if !ok {
                self.violate(
                    "CAU-1",
                    crank,
                    format!(
                        "node {id} asked for a decryption share in epoch {epoch} slot {:?} under a label that does not bind it there",
                        item.slot
                    ),
                );
            }
        }
    }

    /// An honest replica's keystore request that the keystore's signing horizon refuses
    /// (`KSP-1`, module `beat_core::signing`): the real keystore would not answer it.
    pub fn on_refused(&mut self, id: NodeId, refusal: &PolicyError, crank: u64) {
        self.violate(
            "KSP-1",
            crank,
            format!("node {id}'s keystore would refuse its request: {refusal}"),
        );
    }

    /// Checks that no honest replica is stranded once nothing is in flight (`TRM-1`).
    /// `node` looks up a replica's core.
    pub fn check_quiescent<'a>(
        &mut self,
        node: impl Fn(NodeId) -> Option<&'a BeatNode>,
        crank: u64,
    ) {
        let honest: Vec<(NodeId, &BeatNode)> = self
            .next_epoch
            .keys()
            .filter_map(|id| node(*id).map(|n| (*id, n)))
            .collect();
        let highest = honest
            .iter()
            .map(|(_, n)| n.epoch())
            .max()
            .unwrap_or_default();
        let mut stranded = Vec::new();
        for (id, node) in &honest {
            let uncertified = node.uncertified_epochs();
            if !uncertified.is_empty() {
                let detail = format!(
                    "nothing in flight, but node {id} holds no certificate for epochs {uncertified:?}"
                );
                self.violations.push(Violation {
                    invariant: "CER-2",
                    crank,
                    detail,
                });
            }
            if node.epoch() < highest {
                stranded.push(format!(
                    "node {id} at epoch {} (others at {highest})",
                    node.epoch()
                ));
            } else if node.is_epoch_in_progress() {
                let undecided: Vec<String> = node
                    .undecided_agreements()
                    .iter()
                    .map(|(p, r)| format!("agreement {p} in round {r}"))
                    .collect();
                stranded.push(format!(
                    "node {id} has epoch {} in progress, undecided: [{}]",
                    node.epoch(),
                    undecided.join(", ")
                ));
            }
        }
        if !stranded.is_empty() {
            self.violate(
                "TRM-1",
                crank,
                format!("nothing in flight, but {}", stranded.join("; ")),
            );
        }
    }

    /// Records a drain that did not settle: `stuck` honest replicas sat still behind others
    /// (empty: nobody made progress at all while messages kept flowing).
    pub fn on_no_quiescence(&mut self, crank: u64, stuck: &[String]) {
        let detail = if stuck.is_empty() {
            "messages kept flowing after the workload but no honest replica made progress"
                .to_owned()
        } else {
            format!("still busy after the workload, and {}", stuck.join("; "))
        };
        self.violate("TRM-1", crank, detail);
    }

    /// Records a restarted replica that produced messages it had not sent before.
    pub fn on_restart_divergence(&mut self, node: NodeId, unexpected: usize, crank: u64) {
        self.violate(
            "RST-1",
            crank,
            format!("restarted node {node} produced {unexpected} messages it had not sent before"),
        );
    }

    /// Checks memory bounds after a delivery; `node` looks up a replica's core.
    pub fn after_delivery<'a>(
        &mut self,
        node: impl Fn(NodeId) -> Option<&'a BeatNode>,
        crank: u64,
    ) {
        let bound = self.params.max_future_epochs as usize;
        let epochs = self
            .next_epoch
            .keys()
            .filter_map(|id| node(*id).map(|n| n.epoch().0));
        let (lo, hi) = epochs.fold((u64::MAX, 0), |(lo, hi), e| (lo.min(e), hi.max(e)));
        self.max_lag = self.max_lag.max(hi.saturating_sub(lo));
        for id in self.next_epoch.keys().copied().collect::<Vec<_>>() {
            if let Some(n) = node(id) {
                if let Some(next) = n.started_next() {
                    self.started_early.insert((id, next));
                }
                let held = n.future_epochs_queued();
                self.max_epochs_in_memory = self.max_epochs_in_memory.max(held);
                if held > bound {
                    self.violate(
                        "MEM-1",
                        crank,
                        format!("node {id} holds {held} epochs (bound {bound})"),
                    );
                }
            }
        }
    }

    /// Final checks: liveness and the censorship bound of `bound_epochs`.
    pub fn finish(&mut self, completed: bool, crank: u64, bound_epochs: u64) {
        if !completed {
            let behind: Vec<String> = self
                .remaining
                .iter()
                .filter(|(_, r)| **r > 0)
                .map(|(id, r)| format!("node {id}: {r} uncommitted"))
                .collect();
            self.violate(
                "LIV-1",
                crank,
                format!("workload not committed: {}", behind.join(", ")),
            );
        }
        let mut late = 0;
        let mut worst = 0;
        for (key, given) in &self.workload {
            if let Some(at) = self.first_committed_in.get(key) {
                let waited = at.distance_from(*given);
                worst = worst.max(waited);
                if waited > bound_epochs {
                    late += 1;
                }
            }
        }
        if late > 0 {
            self.violate(
                "CEN-1",
                crank,
                format!(
                    "{late} transactions waited more than {bound_epochs} epochs (worst {worst})"
                ),
            );
        }
        let _ = self.committee;
    }
}

#[cfg(test)]
mod tests {
    use beat_core::Contribution;

    use super::*;

    fn checker(variant: Variant) -> Checker {
        let params = Params {
            variant,
            ..Params::default()
        };
        Checker::new(Committee::new(4).unwrap(), BTreeSet::new(), params)
    }

    fn batch(epoch: u64, txs: &[&[u8]], labels: &[u8]) -> Batch {
        Batch {
            epoch: Epoch(epoch),
            contributions: vec![Contribution {
                proposer: NodeId(0),
                content: Content::Transactions(
                    txs.iter().map(|t| Transaction::new(t.to_vec())).collect(),
                ),
            }],
            ordered_labels: labels.iter().map(|l| Digest([*l; 32])).collect(),
        }
    }

    fn dup_violations(checker: &Checker) -> usize {
        checker
            .violations
            .iter()
            .filter(|v| v.invariant == "DUP-1")
            .count()
    }

    #[test]
    fn dup1_in_beat2_counts_labels_not_plaintexts() {
        let mut c = checker(Variant::Beat2);
        c.on_commit(NodeId(0), &batch(0, &[b"buy 1"], &[1]), 1);
        // The same plaintext again, as another request (another label): legitimate.
        c.on_commit(NodeId(0), &batch(1, &[b"buy 1"], &[2]), 2);
        assert_eq!(dup_violations(&c), 0);
        // A label ordered a second time is a duplicate, whatever it decrypted to.
        c.on_commit(NodeId(0), &batch(2, &[b"sell 1"], &[1]), 3);
        assert_eq!(dup_violations(&c), 1);
    }

    #[test]
    fn dup1_in_other_variants_counts_plaintexts() {
        let mut c = checker(Variant::Beat0);
        c.on_commit(NodeId(0), &batch(0, &[b"buy 1"], &[]), 1);
        c.on_commit(NodeId(0), &batch(1, &[b"buy 1"], &[]), 2);
        assert_eq!(dup_violations(&c), 1);
    }
}
