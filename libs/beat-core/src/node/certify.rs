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
//! C3  shares are kept unverified, one per sender (a second, different one is a fault); with
//!     f+1 of them, combine optimistically (one pairing check; only on failure verify each,
//!     fault and drop the invalid ones and never take another from their senders for e)
//! C4  on a certificate for e: send it to every peer whose share for e asked for it (`wants`),
//!     once per peer, and remember the last `certify_window + catch_up_lag` certificates
//! C5  a share asking for the certificate of a remembered certified epoch is answered with it,
//!     once per peer; a certificate for an uncertified epoch (from C4, C5 or catch-up) is
//!     checked (one pairing) and adopted
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
//! In the common case every replica combines its own certificate and no certificate travels:
//! the cost is one share signature, one multicast of 48 bytes and one combination (a
//! multi-scalar multiplication and one pairing check) per replica and epoch.
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
    pub share: bls::SignatureShare,
    pub wants: bool,
}

/// A committed, not yet certified epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Pending {
    statement: CommitStatement,
    /// Unverified shares, one per sender (this replica's own among them once the keystore
    /// answered).
    shares: BTreeMap<NodeId, bls::SignatureShare>,
    /// Whether the keystore answered the share request.
    own: bool,
    /// Senders caught with an invalid share for this epoch.
    refused: BTreeSet<NodeId>,
    /// Peers whose share asked for the certificate (C4).
    wanting: BTreeSet<NodeId>,
    /// Peers whose certificate for this epoch was checked (at most one each: an invalid one
    /// costs a pairing check, and a peer gets one).
    checked: BTreeSet<NodeId>,
}

/// Shares and a certificate for an epoch not committed here yet (C6).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Early {
    shares: BTreeMap<NodeId, bls::SignatureShare>,
    /// A certificate whose signature verified.
    certificate: Option<CommitCertificate>,
    /// Peers whose certificate was checked (one each).
    checked: BTreeSet<NodeId>,
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
}

impl Certifier {
    pub fn new(committee: Digest) -> Self {
        Self {
            chain: CommitStatement::genesis(committee),
            pending: BTreeMap::new(),
            early: BTreeMap::new(),
            recent: BTreeMap::new(),
            caught_up_through: None,
            last_batch: None,
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
    /// already checked against the batch.
    pub fn committed(
        &mut self,
        config: &Config,
        batch: &Batch,
        certificate: Option<CommitCertificate>,
        adopted: bool,
        step: &mut NodeStep,
    ) {
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
            self.certified(config, certificate, step);
            return;
        }
        self.pending.insert(
            epoch,
            Pending {
                statement,
                shares: early.shares,
                own: false,
                refused: BTreeSet::new(),
                wanting: BTreeSet::new(),
                checked: early.checked,
            },
        );
        step.request(Request::CommitShare(statement));
        self.try_combine(config, epoch, step);
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
        step.broadcast(Message::CommitShare {
            epoch,
            share,
            wants,
        });
        if let Some(p) = self.pending.get_mut(&epoch) {
            p.own = true;
            p.shares.insert(config.our_id, share);
            self.try_combine(config, epoch, step);
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
                    self.try_combine(config, epoch, step);
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
        if let Some(p) = self.pending.get_mut(&epoch) {
            if !p.checked.insert(sender) {
                return;
            }
            // A certificate on another statement cannot verify unless more than f replicas are
            // faulty; either way it is not this history's.
            if p.statement != certificate.statement
                || !certificate.verify_signature(&config.keys.coin)
            {
                invalid(step);
                return;
            }
            self.certified(config, certificate, step);
        } else if epoch >= next && epoch.distance_from(next) < Self::horizon(config) {
            let early = self.early.entry(epoch).or_default();
            if early.certificate.is_some() || !early.checked.insert(sender) {
                return;
            }
            if certificate.statement.committee != config.committee_digest
                || !certificate.verify_signature(&config.keys.coin)
            {
                invalid(step);
                return;
            }
            self.early.entry(epoch).or_default().certificate = Some(certificate);
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

    /// C3: combines `epoch`'s shares once there are f+1.
    fn try_combine(&mut self, config: &Config, epoch: Epoch, step: &mut NodeStep) {
        let Some(p) = self.pending.get_mut(&epoch) else {
            return;
        };
        if p.shares.len() < config.committee.f_plus_one() {
            return;
        }
        let combined = config
            .keys
            .coin
            .combine_optimistic(&p.statement.message(), &p.shares);
        for node in combined.invalid_shares {
            p.shares.remove(&node);
            p.refused.insert(node);
            if node != config.our_id {
                step.fault(Fault {
                    node,
                    epoch: Some(epoch),
                    kind: FaultKind::InvalidCommitShare,
                });
            }
        }
        if let Some(signature) = combined.value {
            let statement = p.statement;
            self.certified(
                config,
                CommitCertificate {
                    statement,
                    signature,
                },
                step,
            );
        }
    }

    /// C4: `epoch` is certified.
    fn certified(&mut self, config: &Config, certificate: CommitCertificate, step: &mut NodeStep) {
        let epoch = certificate.statement.epoch;
        let answered = self
            .pending
            .remove(&epoch)
            .map(|p| p.wanting)
            .unwrap_or_default();
        for peer in &answered {
            step.send(*peer, Message::Certificate(certificate));
        }
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
