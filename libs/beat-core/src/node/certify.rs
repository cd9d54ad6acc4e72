//! Certifying committed epochs (module [`crate::certificate`] states what is signed).
//!
//! # Algorithm
//!
//! ```text
//! C1  on committing epoch e: S_e = (committee, e, digest(B_e), L_{e-1}); ask the keystore for a
//!     share on S_e (Request::CommitShare) — unless the batch came with a valid certificate
//!     (catch-up), which certifies e at once
//! C2  on the keystore's share: multicast CommitShare(e, share, wants), even if e is certified
//!     by then (R2: a requested share is always released); `wants` is set if this replica may
//!     have missed others' shares for e: it adopted an epoch through catch-up within the
//!     catch-up horizon before e (C6)
//! C3  shares are kept unverified and undecoded, one per sender (a second, different one is a
//!     fault); an epoch with f+1 of them is ready: its candidate certificate combines f+1 of
//!     them (this replica's own first, senders never caught with an invalid share next),
//!     decoding only those and checking subgroup membership once, on the combination. Ready
//!     epochs are checked together, k candidates against one pairing check
//!     (`bls::PublicKeySet::verify_batch`), when the replica is not loaded (its next proposal
//!     would not be full: nobody waits on its throughput), when a peer asked for a ready
//!     epoch's certificate (C4), under the watermark (C7: before an epoch would be held) and
//!     when stalled; while loaded they wait, at most until the watermark. If the batch
//!     fails, each candidate is checked alone, and for a failed one the shares are verified
//!     one by one until f+1 valid ones combine: invalid ones are faulted and dropped, and
//!     their senders' shares for e never taken again
//! C3' the epoch's combiner, replica e mod n, checks as soon as e is ready, loaded or not, and
//!     multicasts the certificate (C4). A certificate from e's combiner, not yet checked, makes
//!     e ready too: it is the candidate (no combination) and is checked with the next batch;
//!     if it fails, its sender is faulted and the replica combines its own shares as above
//! C4  on a certificate for e: send it to every peer whose share for e asked for it (`wants`),
//!     once per peer — to every peer if this replica is e's combiner — and remember the last
//!     `certify_window + catch_up_lag` certificates
//! C5  a share asking for the certificate of a remembered certified epoch is answered with it,
//!     once per peer; a certificate for an uncertified epoch (from C4, C5 or catch-up) is
//!     checked (one pairing) and adopted — unless it comes from e's combiner (C3')
//! C6  shares and certificates for epochs not committed here yet, within the catch-up horizon,
//!     wait until their epoch is committed; further ones are ignored (honest ones are only
//!     that far ahead of a replica that f+1 replicas are far ahead of, so it will adopt epochs
//!     through catch-up, and its shares then ask for the certificates, C2)
//! C7  watermark: a replica commits epoch e only if e − (oldest uncertified epoch) <
//!     certify_window. When stalled (Input::Stalled: no progress for a while, and f+1 peers
//!     ahead or epochs uncertified) it re-sends its shares of uncertified epochs asking for the
//!     certificate, and if held asks peers for catch-up from the oldest uncertified epoch,
//!     whose answers carry stored certificates
//! ```
//!
//! In the common case under load, a replica combines only the epochs it is the combiner of (one
//! in n) and checks the others' certificates in its batches: the cost per replica and epoch is
//! one share signature, one multicast of 48 bytes, `1/n` of a combination (a multi-scalar
//! multiplication, the largest single cost), `1/k` of a pairing check, `k` the number of epochs
//! checked together (up to `certify_window`), and one received certificate. An idle replica
//! checks as soon as an epoch is ready, which is usually before the combiner's certificate
//! arrives: it combines every epoch, as before C3', and nobody waits on its throughput.
//!
//! C3' is the rotating combiner of the ADR 0009 amendment. It adds one message per replica and
//! epoch on average (the combiner's n − 1) and no waiting: a replica that has f+1 shares never
//! waits for the combiner beyond the deferral it does anyway. A slow or silent combiner costs
//! the others what C3 costs without C3'; one that sends an invalid certificate, one failed
//! batch (below) and from then on one pairing per epoch it combines. The candidate is not part
//! of the checkpoint (a hint, like the suspects): after a restart the replica combines.
//!
//! Deferring the check under load changes no guarantee: a deferred epoch is committed and its
//! share released (C1, C2) as before; only its certificate forms up to `certify_window − 1`
//! epochs later. It cannot stall the replica: a loaded replica proposes in every epoch, so
//! epochs keep committing until the watermark, which flushes every ready epoch before it
//! would hold (and the stall timer flushes them too). A Byzantine sender of invalid shares
//! fails one batch, is found by the per-candidate checks, and from then on its shares are
//! combined last (a volatile hint, relearned after a restart). A faulty combiner's invalid
//! certificate fails one batch the same way; it is faulted, and from then on its certificates
//! are checked on arrival like any other peer's (C5), one pairing each at most once per epoch.
//!
//! Liveness: every honest replica commits every epoch (agreement, catch-up) and releases its
//! share for it (C1, C2); n − f ≥ f + 1 honest shares exist. A replica that committed e holds
//! `pending[e]` until certified (C7 bounds how many), so every honest share that reaches it
//! after that is used, and those that came before were kept (C6) — unless it was more than the
//! catch-up horizon behind, or its links lost them (a gateway restart). Then its own share asks
//! for the certificate (C2, or the stall of C7): a peer that certified e answers at once (C5),
//! one that has not yet does when it does (C4), and one far ahead serves it from storage with
//! the batch (catch-up, C7). The simulator checks that every honest replica certifies every
//! epoch it committed (invariant `CER-2`) and that every certificate verifies and names the
//! agreed batch (`CER-1`).

use std::collections::{BTreeMap, BTreeSet};

use beat_crypto::{Digest, bls};
use beat_types::{Epoch, NodeId};
use serde::{Deserialize, Serialize};

use super::{Message, NodeStep, Output};
use crate::{
    Batch, Config, Fault, FaultKind, Request,
    certificate::{CommitCertificate, CommitStatement},
};

/// A peer's `CommitShare` message.
pub(crate) struct IncomingShare {
    pub epoch: Epoch,
    pub share: bls::EncodedShare,
    pub wants: bool,
}

/// A committed, not yet certified epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Pending {
    statement: CommitStatement,
    /// Unverified, undecoded shares, one per sender (this replica's own among them once the
    /// keystore answered).
    shares: BTreeMap<NodeId, bls::EncodedShare>,
    /// Whether the keystore answered the share request.
    own: bool,
    /// Senders caught with an invalid share for this epoch.
    refused: BTreeSet<NodeId>,
    /// Peers whose share asked for the certificate (C4).
    wanting: BTreeSet<NodeId>,
    /// Peers whose certificate for this epoch was checked or taken as the candidate (at most
    /// one each: an invalid one costs a pairing check, and a peer gets one).
    checked: BTreeSet<NodeId>,
    /// The epoch's combiner's certificate signature on `statement`, not checked yet (C3'). A
    /// hint: a replica that lost it combines its own shares.
    #[serde(skip)]
    candidate: Hint<Option<(NodeId, bls::Signature)>>,
}

/// Shares and a certificate for an epoch not committed here yet (C6).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Early {
    shares: BTreeMap<NodeId, bls::EncodedShare>,
    /// A certificate whose signature verified.
    certificate: Option<CommitCertificate>,
    /// Peers whose certificate was checked or taken as the candidate (one each).
    checked: BTreeSet<NodeId>,
    /// The epoch's combiner's certificate, not checked yet (C3'); a hint, as in [`Pending`].
    #[serde(skip)]
    candidate: Hint<Option<(NodeId, CommitCertificate)>>,
}

/// A certificate this replica holds, and the peers it was sent to (C4, C5).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Recent {
    certificate: CommitCertificate,
    answered: BTreeSet<NodeId>,
}

/// The certification state of a replica; part of its checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Certifier {
    /// The chain link of the last committed epoch (the genesis link before epoch 0).
    chain: Digest,
    pending: BTreeMap<Epoch, Pending>,
    early: BTreeMap<Epoch, Early>,
    recent: BTreeMap<Epoch, Recent>,
    /// The last epoch adopted through catch-up: shares of epochs up to the catch-up horizon
    /// after it ask for certificates (C2).
    caught_up_through: Option<Epoch>,
    /// The digest of the last committed batch.
    last_batch: Option<Digest>,
    /// Senders caught with an invalid share since this replica started: their shares are
    /// combined last (C3). A hint only — not part of the checkpoint, ignored by equality.
    #[serde(skip)]
    suspects: Hint<BTreeSet<NodeId>>,
}

/// State that only steers effort, never an outcome: equal to any other value of its type, and
/// not persisted. (Which f+1 valid shares combine does not matter: BLS signatures are unique.)
#[derive(Clone, Debug, Default)]
struct Hint<T>(T);

impl<T> PartialEq for Hint<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl<T> Eq for Hint<T> {}

impl Certifier {
    pub fn new(committee: Digest) -> Self {
        Self {
            chain: CommitStatement::genesis(committee),
            pending: BTreeMap::new(),
            early: BTreeMap::new(),
            recent: BTreeMap::new(),
            caught_up_through: None,
            last_batch: None,
            suspects: Hint::default(),
        }
    }

    /// Returns `true` if some committed epoch has no certificate yet: the host's stall timer
    /// should fire while this stays so (C7).
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Whether `sender`'s share would change anything (the node's `is_relevant`: what would
    /// not is dropped before the write-ahead log). Mirrors [`Self::on_share`].
    pub fn is_relevant_share(
        &self,
        config: &Config,
        sender: NodeId,
        share: &IncomingShare,
        next: Epoch,
    ) -> bool {
        let epoch = share.epoch;
        if let Some(p) = self.pending.get(&epoch) {
            return (share.wants && !p.wanting.contains(&sender))
                || (!p.refused.contains(&sender) && p.shares.get(&sender) != Some(&share.share));
        }
        if let Some(r) = self.recent.get(&epoch) {
            return share.wants && !r.answered.contains(&sender);
        }
        epoch >= next
            && epoch.distance_from(next) < Self::horizon(config)
            && self
                .early
                .get(&epoch)
                .is_none_or(|e| !e.shares.contains_key(&sender))
    }

    /// Whether `sender`'s certificate for `epoch` would change anything. Mirrors
    /// [`Self::on_certificate`].
    pub fn is_relevant_certificate(
        &self,
        config: &Config,
        sender: NodeId,
        epoch: Epoch,
        next: Epoch,
    ) -> bool {
        if let Some(p) = self.pending.get(&epoch) {
            return !p.checked.contains(&sender);
        }
        epoch >= next
            && epoch.distance_from(next) < Self::horizon(config)
            && self
                .early
                .get(&epoch)
                .is_none_or(|e| e.certificate.is_none() && !e.checked.contains(&sender))
    }

    /// The chain link of the last committed epoch.
    pub fn chain(&self) -> Digest {
        self.chain
    }

    /// The digest of the last committed batch, if any (computed once per epoch, here).
    pub fn last_batch(&self) -> Option<Digest> {
        self.last_batch
    }

    /// The certificate of the highest certified epoch this replica remembers.
    pub fn latest(&self) -> Option<&CommitCertificate> {
        self.recent.values().next_back().map(|r| &r.certificate)
    }

    /// The oldest committed epoch without a certificate.
    pub fn oldest_pending(&self) -> Option<Epoch> {
        self.pending.keys().next().copied()
    }

    /// Committed epochs without a certificate.
    pub fn pending_epochs(&self) -> impl Iterator<Item = Epoch> + '_ {
        self.pending.keys().copied()
    }

    /// C7: whether committing `next` must wait for older epochs' certificates.
    pub fn holds(&self, next: Epoch, window: u64) -> bool {
        self.oldest_pending()
            .is_some_and(|o| next.distance_from(o) >= window)
    }

    /// Share requests the keystore has not answered (re-issued after a restart).
    pub fn pending_requests(&self) -> impl Iterator<Item = Request> + '_ {
        self.pending
            .values()
            .filter(|p| !p.own)
            .map(|p| Request::CommitShare(p.statement))
    }

    fn horizon(config: &Config) -> u64 {
        u64::from(config.params.catch_up_max_epochs).max(config.params.max_future_epochs)
    }

    /// C1: `batch` was committed (it is the epoch after the last one committed), `adopted`
    /// through catch-up or not. `certificate` is one that came with it through catch-up,
    /// already checked against the batch. Returns the batch's digest.
    pub fn committed(
        &mut self,
        config: &Config,
        batch: &Batch,
        certificate: Option<CommitCertificate>,
        adopted: bool,
        step: &mut NodeStep,
    ) -> Digest {
        let statement = CommitStatement::new(config.committee_digest, batch, self.chain);
        let epoch = statement.epoch;
        if adopted {
            self.caught_up_through = Some(epoch);
        }
        self.chain = statement.link();
        self.last_batch = Some(statement.batch);
        let early = self.early.remove(&epoch).unwrap_or_default();
        self.early = self.early.split_off(&epoch.next());
        let certificate = certificate
            .or(early.certificate)
            .filter(|c| c.statement == statement);
        if let Some(certificate) = certificate {
            self.certified(config, certificate, false, step);
            return statement.batch;
        }
        // C3': the combiner's early certificate, checked with the next batch. One on another
        // statement cannot verify unless more than f replicas are faulty.
        let candidate = match early.candidate.0 {
            Some((sender, c)) if c.statement == statement => Some((sender, c.signature)),
            Some((sender, _)) => {
                self.suspects.0.insert(sender);
                step.fault(Fault {
                    node: sender,
                    epoch: Some(epoch),
                    kind: FaultKind::InvalidCertificate,
                });
                None
            }
            None => None,
        };
        self.pending.insert(
            epoch,
            Pending {
                statement,
                shares: early.shares,
                own: false,
                refused: BTreeSet::new(),
                wanting: BTreeSet::new(),
                checked: early.checked,
                candidate: Hint(candidate),
            },
        );
        step.request(Request::CommitShare(statement));
        statement.batch
    }

    /// C2: the keystore's share for `epoch`.
    pub fn own_share(
        &mut self,
        config: &Config,
        epoch: Epoch,
        share: bls::SignatureShare,
        step: &mut NodeStep,
    ) {
        let horizon = Self::horizon(config);
        let wants = self
            .caught_up_through
            .is_some_and(|c| epoch.0 <= c.0.saturating_add(horizon));
        let share = bls::EncodedShare::from(share);
        step.broadcast(Message::CommitShare {
            epoch,
            share,
            wants,
        });
        if let Some(p) = self.pending.get_mut(&epoch) {
            p.own = true;
            p.shares.insert(config.our_id, share);
        }
    }

    /// C3, C5, C6: `sender`'s share for `epoch`; `next` is this replica's first uncommitted
    /// epoch.
    pub fn on_share(
        &mut self,
        config: &Config,
        sender: NodeId,
        share: IncomingShare,
        next: Epoch,
        step: &mut NodeStep,
    ) {
        let IncomingShare {
            epoch,
            share,
            wants,
        } = share;
        if let Some(p) = self.pending.get_mut(&epoch) {
            if wants {
                p.wanting.insert(sender);
            }
            if p.refused.contains(&sender) {
                return;
            }
            match p.shares.get(&sender) {
                Some(known) if *known != share => step.fault(Fault {
                    node: sender,
                    epoch: Some(epoch),
                    kind: FaultKind::ConflictingCommitShare,
                }),
                Some(_) => {}
                None => {
                    p.shares.insert(sender, share);
                }
            }
        } else if let Some(recent) = self.recent.get_mut(&epoch) {
            if wants && recent.answered.insert(sender) {
                step.send(sender, Message::Certificate(recent.certificate));
            }
        } else if epoch >= next && epoch.distance_from(next) < Self::horizon(config) {
            self.early
                .entry(epoch)
                .or_default()
                .shares
                .entry(sender)
                .or_insert(share);
        }
    }

    /// C5, C6: a certificate from `sender` (a peer's C4 or C5, or a catch-up answer).
    pub fn on_certificate(
        &mut self,
        config: &Config,
        sender: NodeId,
        certificate: CommitCertificate,
        next: Epoch,
        step: &mut NodeStep,
    ) {
        let epoch = certificate.statement.epoch;
        let invalid = |step: &mut NodeStep| {
            step.fault(Fault {
                node: sender,
                epoch: Some(epoch),
                kind: FaultKind::InvalidCertificate,
            });
        };
        // C3': the combiner's certificate waits for the next batch check, unless the combiner
        // was caught with an invalid one before.
        let candidate =
            sender == Self::combiner(config, epoch) && !self.suspects.0.contains(&sender);
        if let Some(p) = self.pending.get_mut(&epoch) {
            if !p.checked.insert(sender) {
                return;
            }
            // A certificate on another statement cannot verify unless more than f replicas are
            // faulty; either way it is not this history's.
            if p.statement != certificate.statement {
                invalid(step);
                return;
            }
            if candidate {
                p.candidate.0 = Some((sender, certificate.signature));
                return;
            }
            if !certificate.verify_signature(&config.keys.coin) {
                invalid(step);
                return;
            }
            self.certified(config, certificate, false, step);
        } else if epoch >= next && epoch.distance_from(next) < Self::horizon(config) {
            let early = self.early.entry(epoch).or_default();
            if early.certificate.is_some() || !early.checked.insert(sender) {
                return;
            }
            if certificate.statement.committee != config.committee_digest {
                invalid(step);
                return;
            }
            if candidate {
                early.candidate.0 = Some((sender, certificate));
                return;
            }
            if !certificate.verify_signature(&config.keys.coin) {
                invalid(step);
                return;
            }
            early.certificate = Some(certificate);
        }
    }

    /// C7, when stalled: re-sends this replica's shares of the epochs still uncertified (a peer
    /// that certified them answers with the certificate, C5).
    pub fn stalled(&self, config: &Config, step: &mut NodeStep) {
        for (epoch, p) in &self.pending {
            if let Some(share) = p.shares.get(&config.our_id) {
                step.broadcast(Message::CommitShare {
                    epoch: *epoch,
                    share: *share,
                    wants: true,
                });
            }
        }
    }

    /// C3: checks the ready epochs now unless the replica is `loaded` and no peer waits for
    /// one of them (the node calls this at the end of every `process`, which follows nearly
    /// every event).
    pub fn settle(&mut self, config: &Config, loaded: bool, step: &mut NodeStep) {
        let mut ready = 0;
        let mut wanted = false;
        for (epoch, p) in &self.pending {
            if Self::is_ready(config, p) {
                ready += 1;
                // C4, C3': a peer waits for this replica's certificate.
                wanted |= !p.wanting.is_empty() || Self::combiner(config, *epoch) == config.our_id;
            }
        }
        if ready > 0 && (!loaded || wanted || ready as u64 >= config.params.certify_window) {
            self.flush(config, step);
        }
    }

    /// C3, C7: checks every ready epoch now (the watermark is about to hold, or the replica is
    /// stalled).
    pub fn flush(&mut self, config: &Config, step: &mut NodeStep) {
        let mut candidates = Vec::new();
        let mut to_verify = Vec::new();
        for (epoch, p) in self
            .pending
            .iter()
            .filter(|(_, p)| Self::is_ready(config, p))
        {
            let message = p.statement.message();
            if let Some((sender, signature)) = p.candidate.0 {
                candidates.push((*epoch, message, signature, Some(sender)));
                continue;
            }
            match self.combine(config, p) {
                Ok(signature) => candidates.push((*epoch, message, signature, None)),
                // An encoding that is no curve point, or a combination outside G1.
                Err(_) => to_verify.push((*epoch, message)),
            }
        }
        let batch: Vec<(bls::HashedMessage, bls::Signature)> =
            candidates.iter().map(|(_, m, s, _)| (*m, *s)).collect();
        let all_valid = config.keys.coin.verify_batch(&batch);
        // A batch of one was that candidate's own check; in a larger failed one, find the bad.
        let single = candidates.len() == 1;
        let mut to_combine = Vec::new();
        for (epoch, message, signature, from) in candidates {
            if all_valid || (!single && config.keys.coin.verify(&message, &signature)) {
                self.certify_pending(config, epoch, signature, step);
            } else if let Some(sender) = from {
                self.refuse_candidate(epoch, sender, step);
                to_combine.push((epoch, message));
            } else {
                to_verify.push((epoch, message));
            }
        }
        // C3': epochs whose combiner's certificate failed, combined here after all.
        for (epoch, message) in to_combine {
            let Some(p) = self.pending.get(&epoch) else {
                continue;
            };
            if !Self::is_ready(config, p) {
                continue;
            }
            match self.combine(config, p) {
                Ok(signature) if config.keys.coin.verify(&message, &signature) => {
                    self.certify_pending(config, epoch, signature, step);
                }
                _ => to_verify.push((epoch, message)),
            }
        }
        for (epoch, message) in to_verify {
            self.verify_shares(config, epoch, &message, step);
        }
    }

    /// The combiner of `epoch` (C3'): the replicas take turns.
    fn combiner(config: &Config, epoch: Epoch) -> NodeId {
        let n = config.committee.n() as u64;
        NodeId((epoch.0 % n) as u32)
    }

    /// Whether `p` has f+1 shares not refused (C3) or a candidate certificate (C3').
    fn is_ready(config: &Config, p: &Pending) -> bool {
        p.shares.len() >= config.committee.f_plus_one() || p.candidate.0.is_some()
    }

    /// The candidate certificate of `p` combined from its preferred f+1 shares (C3), which it
    /// must have.
    fn combine(&self, config: &Config, p: &Pending) -> Result<bls::Signature, bls::BlsError> {
        let f1 = config.committee.f_plus_one();
        config
            .keys
            .coin
            .combine_encoded(&self.preferred(config, p, f1))
    }

    /// C3': the certificate `sender`, `epoch`'s combiner, sent failed its check.
    fn refuse_candidate(&mut self, epoch: Epoch, sender: NodeId, step: &mut NodeStep) {
        if let Some(p) = self.pending.get_mut(&epoch) {
            p.candidate.0 = None;
        }
        self.suspects.0.insert(sender);
        step.fault(Fault {
            node: sender,
            epoch: Some(epoch),
            kind: FaultKind::InvalidCertificate,
        });
    }

    /// `p`'s shares in the order they are combined: this replica's own first, then those of
    /// senders never caught with an invalid share, each group in holder order.
    fn ordered(&self, config: &Config, p: &Pending) -> Vec<(NodeId, bls::EncodedShare)> {
        let mut order: Vec<(NodeId, bls::EncodedShare)> =
            p.shares.iter().map(|(id, s)| (*id, *s)).collect();
        order.sort_by_key(|(id, _)| (*id != config.our_id, self.suspects.0.contains(id)));
        order
    }

    /// The first `count` shares of [`Self::ordered`].
    fn preferred(
        &self,
        config: &Config,
        p: &Pending,
        count: usize,
    ) -> BTreeMap<NodeId, bls::EncodedShare> {
        self.ordered(config, p).into_iter().take(count).collect()
    }

    /// C3, slow path: verifies `epoch`'s shares one by one, in preference order, until f+1
    /// valid ones combine; faults and drops every invalid one met.
    fn verify_shares(
        &mut self,
        config: &Config,
        epoch: Epoch,
        message: &bls::HashedMessage,
        step: &mut NodeStep,
    ) {
        let f1 = config.committee.f_plus_one();
        let Some(p) = self.pending.get(&epoch) else {
            return;
        };
        let mut valid = BTreeMap::new();
        let mut invalid = Vec::new();
        // The replica's own share came from its keystore; it is checked like any other (a
        // misconfigured keystore must not yield a bad certificate), but not faulted.
        for (holder, share) in self.ordered(config, p) {
            if valid.len() == f1 {
                break;
            }
            match share.decode() {
                Ok(share) if config.keys.coin.verify_share(holder, message, &share) => {
                    valid.insert(holder, share);
                }
                _ => invalid.push(holder),
            }
        }
        if let Some(p) = self.pending.get_mut(&epoch) {
            for node in invalid {
                p.shares.remove(&node);
                p.refused.insert(node);
                if node != config.our_id {
                    self.suspects.0.insert(node);
                    step.fault(Fault {
                        node,
                        epoch: Some(epoch),
                        kind: FaultKind::InvalidCommitShare,
                    });
                }
            }
        }
        if valid.len() < f1 {
            return;
        }
        // f+1 valid shares interpolate to the signature; checked once more all the same, so
        // that inconsistent key material can never yield a certificate that does not verify.
        if let Ok(signature) = config.keys.coin.combine_unchecked(&valid)
            && config.keys.coin.verify(message, &signature)
        {
            self.certify_pending(config, epoch, signature, step);
        }
    }

    /// C3: `signature` verified on pending `epoch`'s statement.
    fn certify_pending(
        &mut self,
        config: &Config,
        epoch: Epoch,
        signature: bls::Signature,
        step: &mut NodeStep,
    ) {
        if let Some(p) = self.pending.get(&epoch) {
            let statement = p.statement;
            let announce = Self::combiner(config, epoch) == config.our_id;
            self.certified(
                config,
                CommitCertificate {
                    statement,
                    signature,
                },
                announce,
                step,
            );
        }
    }

    /// C4: `epoch` is certified; `announce` if this replica is its combiner and checked the
    /// certificate itself (C3').
    fn certified(
        &mut self,
        config: &Config,
        certificate: CommitCertificate,
        announce: bool,
        step: &mut NodeStep,
    ) {
        let epoch = certificate.statement.epoch;
        let wanting = self
            .pending
            .remove(&epoch)
            .map(|p| p.wanting)
            .unwrap_or_default();
        // The multicast answers the peers that asked, too. A peer that did not ask stays
        // unanswered: if its link lost the multicast, its own request (C2, C7) still gets the
        // certificate once (C5).
        if announce {
            step.broadcast(Message::Certificate(certificate));
        } else {
            for peer in &wanting {
                step.send(*peer, Message::Certificate(certificate));
            }
        }
        let answered = wanting;
        self.recent.insert(
            epoch,
            Recent {
                certificate,
                answered,
            },
        );
        let keep = (config.params.certify_window + config.params.catch_up_lag) as usize;
        while self.recent.len() > keep {
            self.recent.pop_first();
        }
        step.output(Output::Certified(certificate));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use beat_crypto::tdh2;
    use beat_types::Committee;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::{Params, PublicKeys};

    /// Replica 3's configuration in a committee of four, and everybody's key shares.
    fn setup() -> (Config, Vec<bls::SecretKeyShare>) {
        let committee = Committee::new(4).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let (coin, secrets) = bls::deal(4, committee.f(), &mut rng).unwrap();
        let (encryption, _) = tdh2::deal(4, committee.f(), &mut rng).unwrap();
        let config = Config {
            our_id: NodeId(3),
            committee,
            committee_digest: Digest([5; 32]),
            keys: PublicKeys {
                coin: Arc::new(coin),
                encryption: Arc::new(encryption),
            },
            params: Params::default(),
        };
        (config, secrets)
    }

    fn batch(epoch: u64) -> Batch {
        Batch {
            epoch: Epoch(epoch),
            contributions: Vec::new(),
            ordered_labels: Vec::new(),
        }
    }

    /// Commits `epoch` and hands the certifier shares from `senders` (node 0's invalid when
    /// `byzantine`); returns what that did.
    fn commit_with_shares(
        c: &mut Certifier,
        config: &Config,
        secrets: &[bls::SecretKeyShare],
        epoch: u64,
        byzantine: bool,
    ) -> NodeStep {
        let mut step = NodeStep::default();
        c.committed(config, &batch(epoch), None, false, &mut step);
        let statement = c.pending[&Epoch(epoch)].statement;
        for sender in 0..3u32 {
            let message = if byzantine && sender == 0 {
                CommitStatement {
                    epoch: Epoch(epoch + 100),
                    ..statement
                }
                .message()
            } else {
                statement.message()
            };
            let share = IncomingShare {
                epoch: Epoch(epoch),
                share: secrets[sender as usize].sign(&message).into(),
                wants: false,
            };
            c.on_share(config, NodeId(sender), share, Epoch(epoch + 1), &mut step);
        }
        step
    }

    fn certified(step: &NodeStep) -> Vec<Epoch> {
        step.outputs
            .iter()
            .filter_map(|o| match o {
                Output::Certified(c) => Some(c.statement.epoch),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_loaded_replica_defers_ready_epochs_up_to_the_window_and_an_idle_one_does_not() {
        let (config, secrets) = setup();
        let window = config.params.certify_window;
        let mut c = Certifier::new(config.committee_digest);
        for e in 0..window - 1 {
            let mut step = commit_with_shares(&mut c, &config, &secrets, e, false);
            c.settle(&config, true, &mut step);
            assert!(certified(&step).is_empty(), "epoch {e} deferred under load");
        }
        assert!(!c.holds(Epoch(window - 1), window));
        // The window-th ready epoch: all of them are checked in one batch.
        let mut step = commit_with_shares(&mut c, &config, &secrets, window - 1, false);
        c.settle(&config, true, &mut step);
        assert_eq!(certified(&step), (0..window).map(Epoch).collect::<Vec<_>>());
        assert!(!c.has_pending());
        // Idle: certified as soon as it is ready.
        let mut step = commit_with_shares(&mut c, &config, &secrets, window, false);
        c.settle(&config, false, &mut step);
        assert_eq!(certified(&step), vec![Epoch(window)]);
        // Under load, a peer that asks for a ready epoch's certificate is answered at once.
        let mut step = commit_with_shares(&mut c, &config, &secrets, window + 1, false);
        c.settle(&config, true, &mut step);
        assert!(certified(&step).is_empty());
        let own = secrets[0].sign(&c.pending[&Epoch(window + 1)].statement.message());
        let share = IncomingShare {
            epoch: Epoch(window + 1),
            share: own.into(),
            wants: true,
        };
        let mut step = NodeStep::default();
        c.on_share(&config, NodeId(0), share, Epoch(window + 2), &mut step);
        c.settle(&config, true, &mut step);
        assert_eq!(certified(&step), vec![Epoch(window + 1)]);
        assert!(
            step.messages
                .iter()
                .any(|m| matches!(m.message, Message::Certificate(_))),
            "the certificate goes to the peer that asked"
        );
    }

    #[test]
    fn an_invalid_share_fails_one_batch_and_is_combined_last_from_then_on() {
        let (config, secrets) = setup();
        let mut c = Certifier::new(config.committee_digest);
        let mut faults = Vec::new();
        let mut step = NodeStep::default();
        for e in 0..3 {
            let s = commit_with_shares(&mut c, &config, &secrets, e, true);
            step.extend(s);
        }
        // Node 0's invalid share is among the first f+1 of every epoch: the batch fails, each
        // candidate is checked alone and fails; epoch 0's shares are verified and node 0 is
        // faulted, and the later epochs' share checks start with the honest senders, f+1 of
        // which suffice without meeting node 0's share again.
        c.flush(&config, &mut step);
        assert_eq!(certified(&step), vec![Epoch(0), Epoch(1), Epoch(2)]);
        faults.append(&mut step.faults);
        assert_eq!(faults.len(), 1);
        assert_eq!(faults[0].epoch, Some(Epoch(0)));
        assert!(
            faults
                .iter()
                .all(|f| f.node == NodeId(0) && f.kind == FaultKind::InvalidCommitShare)
        );
        // The next epoch combines the honest shares first: certified, and no check of node 0's.
        let mut step = commit_with_shares(&mut c, &config, &secrets, 3, true);
        c.settle(&config, false, &mut step);
        assert_eq!(certified(&step), vec![Epoch(3)]);
        assert!(step.faults.is_empty(), "{:?}", step.faults);
        // The refused sender's later shares for a refused epoch are not relevant; the hint is
        // not part of the state's equality or encoding.
        let mut other = c.clone();
        other.suspects.0.clear();
        assert_eq!(c, other);
    }

    #[test]
    fn undecodable_shares_are_refused_when_combined_and_cost_nothing_otherwise() {
        let (config, secrets) = setup();
        let mut c = Certifier::new(config.committee_digest);
        let mut step = NodeStep::default();
        c.committed(&config, &batch(0), None, false, &mut step);
        let statement = c.pending[&Epoch(0)].statement;
        // Node 0 sends bytes that are no curve point, then nodes 1 and 2 valid shares.
        let shares = [
            bls::EncodedShare::from_bytes(&[0xff; 48]),
            secrets[1].sign(&statement.message()).into(),
            secrets[2].sign(&statement.message()).into(),
        ];
        for (sender, share) in shares.into_iter().enumerate() {
            let share = IncomingShare {
                epoch: Epoch(0),
                share,
                wants: false,
            };
            c.on_share(&config, NodeId(sender as u32), share, Epoch(1), &mut step);
        }
        assert!(step.faults.is_empty(), "shares are not decoded on arrival");
        c.flush(&config, &mut step);
        assert_eq!(certified(&step), vec![Epoch(0)]);
        assert_eq!(step.faults.len(), 1);
        assert_eq!(step.faults[0].node, NodeId(0));
        assert_eq!(step.faults[0].kind, FaultKind::InvalidCommitShare);
    }

    /// The committee's signature on `statement`, from the first f+1 key shares.
    fn group_signature(
        config: &Config,
        secrets: &[bls::SecretKeyShare],
        statement: &CommitStatement,
    ) -> bls::Signature {
        let shares = (0..config.committee.f_plus_one())
            .map(|i| (NodeId(i as u32), secrets[i].sign(&statement.message())))
            .collect();
        config.keys.coin.combine_unchecked(&shares).unwrap()
    }

    fn announced(step: &NodeStep) -> usize {
        step.messages
            .iter()
            .filter(|m| {
                matches!(m.target, crate::step::Target::All)
                    && matches!(m.message, Message::Certificate(_))
            })
            .count()
    }

    #[test]
    fn the_combiner_checks_at_once_under_load_and_announces_to_every_peer() {
        let (config, secrets) = setup();
        let mut c = Certifier::new(config.committee_digest);
        // Replica 3 combines epochs 3, 7, …: epoch 2 waits under load, epoch 3 does not.
        let mut step = commit_with_shares(&mut c, &config, &secrets, 0, false);
        step.extend(commit_with_shares(&mut c, &config, &secrets, 1, false));
        c.flush(&config, &mut step);
        let mut step = commit_with_shares(&mut c, &config, &secrets, 2, false);
        c.settle(&config, true, &mut step);
        assert!(certified(&step).is_empty());
        let mut step = commit_with_shares(&mut c, &config, &secrets, 3, false);
        c.settle(&config, true, &mut step);
        assert_eq!(
            certified(&step),
            vec![Epoch(2), Epoch(3)],
            "every ready epoch goes in the batch"
        );
        assert_eq!(
            announced(&step),
            1,
            "only epoch 3's certificate is multicast"
        );
        // A peer whose link lost the multicast asks: it is answered, once.
        let message = c.recent[&Epoch(3)].certificate.statement.message();
        let ask = || IncomingShare {
            epoch: Epoch(3),
            share: secrets[0].sign(&message).into(),
            wants: true,
        };
        assert!(c.is_relevant_share(&config, NodeId(0), &ask(), Epoch(4)));
        let mut step = NodeStep::default();
        c.on_share(&config, NodeId(0), ask(), Epoch(4), &mut step);
        assert_eq!(step.messages.len(), 1);
        assert!(!c.is_relevant_share(&config, NodeId(0), &ask(), Epoch(4)));
    }

    #[test]
    fn the_combiners_certificate_replaces_the_combination_and_waits_for_the_batch() {
        let (config, secrets) = setup();
        let mut c = Certifier::new(config.committee_digest);
        let mut step = NodeStep::default();
        // Epoch 1 (combiner: replica 1). Its certificate comes before f+1 shares do.
        c.committed(&config, &batch(0), None, false, &mut step);
        c.committed(&config, &batch(1), None, false, &mut step);
        let statement = c.pending[&Epoch(1)].statement;
        let certificate = CommitCertificate {
            statement,
            signature: group_signature(&config, &secrets, &statement),
        };
        // From another peer it is checked on arrival (C5) …
        let mut other = c.clone();
        other.on_certificate(&config, NodeId(2), certificate, Epoch(2), &mut step);
        assert_eq!(certified(&step), vec![Epoch(1)]);
        step = NodeStep::default();
        // … from the combiner it is the candidate: ready, deferred under load, then certified
        // with the batch although no share arrived.
        c.on_certificate(&config, NodeId(1), certificate, Epoch(2), &mut step);
        assert!(certified(&step).is_empty());
        c.settle(&config, true, &mut step);
        assert!(
            certified(&step).is_empty(),
            "one ready epoch waits under load"
        );
        c.flush(&config, &mut step);
        assert_eq!(certified(&step), vec![Epoch(1)]);
        assert_eq!(announced(&step), 0);
        assert!(step.faults.is_empty());
        assert!(c.pending.contains_key(&Epoch(0)), "epoch 0 is not ready");
        // The candidate is a hint: equality and the checkpoint ignore it.
        let mut step = NodeStep::default();
        let mut a = Certifier::new(config.committee_digest);
        a.committed(&config, &batch(0), None, false, &mut step);
        a.committed(&config, &batch(1), None, false, &mut step);
        let b = a.clone();
        a.on_certificate(&config, NodeId(1), certificate, Epoch(2), &mut step);
        let mut b = b;
        b.pending
            .get_mut(&Epoch(1))
            .unwrap()
            .checked
            .insert(NodeId(1));
        assert_eq!(a, b);
    }

    #[test]
    fn an_early_certificate_from_the_combiner_becomes_the_candidate_at_commit() {
        let (config, secrets) = setup();
        let mut c = Certifier::new(config.committee_digest);
        let mut step = NodeStep::default();
        c.committed(&config, &batch(0), None, false, &mut step);
        // Epoch 1's statement as this replica will commit it.
        let mut ahead = c.clone();
        ahead.committed(&config, &batch(1), None, false, &mut step);
        let statement = ahead.pending[&Epoch(1)].statement;
        let certificate = CommitCertificate {
            statement,
            signature: group_signature(&config, &secrets, &statement),
        };
        c.on_certificate(&config, NodeId(1), certificate, Epoch(1), &mut step);
        assert!(
            c.early[&Epoch(1)].certificate.is_none(),
            "not checked on arrival"
        );
        c.committed(&config, &batch(1), None, false, &mut step);
        c.flush(&config, &mut step);
        assert_eq!(certified(&step), vec![Epoch(1)]);
        assert!(step.faults.is_empty());
    }

    #[test]
    fn an_early_certificate_from_the_combiner_on_another_statement_is_faulted_at_commit() {
        let (config, secrets) = setup();
        let mut c = Certifier::new(config.committee_digest);
        let mut step = NodeStep::default();
        c.committed(&config, &batch(0), None, false, &mut step);
        let mut ahead = c.clone();
        ahead.committed(&config, &batch(1), None, false, &mut step);
        // The combiner of epoch 1 signs (validly) a statement on another batch.
        let other = CommitStatement {
            batch: Digest([9; 32]),
            ..ahead.pending[&Epoch(1)].statement
        };
        let certificate = CommitCertificate {
            statement: other,
            signature: group_signature(&config, &secrets, &other),
        };
        c.on_certificate(&config, NodeId(1), certificate, Epoch(1), &mut step);
        assert!(step.faults.is_empty(), "not judged before commit");
        let mut step = commit_with_shares(&mut c, &config, &secrets, 1, false);
        assert_eq!(step.faults.len(), 1);
        assert_eq!(step.faults[0].node, NodeId(1));
        assert_eq!(step.faults[0].kind, FaultKind::InvalidCertificate);
        assert!(c.pending[&Epoch(1)].candidate.0.is_none());
        assert!(c.suspects.0.contains(&NodeId(1)));
        // Epoch 1 certifies from its shares (epoch 0 has none).
        c.flush(&config, &mut step);
        assert_eq!(certified(&step), vec![Epoch(1)]);
    }

    #[test]
    fn an_invalid_certificate_from_the_combiner_is_faulted_and_the_replica_combines() {
        let (config, secrets) = setup();
        let mut c = Certifier::new(config.committee_digest);
        let mut step = NodeStep::default();
        for e in 0..2 {
            let s = commit_with_shares(&mut c, &config, &secrets, e, false);
            step.extend(s);
        }
        // Replica 1, epoch 1's combiner, signs another statement: a valid point, wrong.
        let statement = c.pending[&Epoch(1)].statement;
        let forged = CommitStatement {
            epoch: Epoch(7),
            ..statement
        };
        let bad = CommitCertificate {
            statement,
            signature: group_signature(&config, &secrets, &forged),
        };
        c.on_certificate(&config, NodeId(1), bad, Epoch(2), &mut step);
        assert!(
            step.faults.is_empty(),
            "checked with the batch, not on arrival"
        );
        c.flush(&config, &mut step);
        assert_eq!(certified(&step), vec![Epoch(0), Epoch(1)]);
        assert_eq!(step.faults.len(), 1);
        assert_eq!(step.faults[0].node, NodeId(1));
        assert_eq!(step.faults[0].kind, FaultKind::InvalidCertificate);
        // From then on replica 1's certificates are checked on arrival: epoch 5 (its turn).
        let mut step = NodeStep::default();
        for e in 2..6 {
            c.committed(&config, &batch(e), None, false, &mut step);
        }
        let statement = c.pending[&Epoch(5)].statement;
        let bad = CommitCertificate {
            statement,
            signature: group_signature(&config, &secrets, &forged),
        };
        c.on_certificate(&config, NodeId(1), bad, Epoch(6), &mut step);
        assert_eq!(step.faults.len(), 1, "faulted on arrival");
        assert!(c.pending[&Epoch(5)].candidate.0.is_none());
    }

    #[test]
    fn a_stall_flushes_deferred_epochs() {
        let (config, secrets) = setup();
        let mut c = Certifier::new(config.committee_digest);
        let mut step = commit_with_shares(&mut c, &config, &secrets, 0, false);
        c.settle(&config, true, &mut step);
        assert!(certified(&step).is_empty());
        let mut step = NodeStep::default();
        c.flush(&config, &mut step);
        assert_eq!(certified(&step), vec![Epoch(0)]);
    }
}
