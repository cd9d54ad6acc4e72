//! Epoch state machine.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use beat_crypto::{
    Digest,
    avid_fp::{AvidFpCode, Fpcc, Fragment},
    bls,
    hash::hash,
    tdh2,
};
use beat_types::{Epoch, NodeId, Transaction, Variant};
use bytes::Bytes;

use super::{EpochMessage, retired::RetiredEpoch, retrieval::Retrieval};
use crate::{
    CiphertextSlot, DecryptionItem, Delivery, Fault, FaultKind, Step,
    acs::{Subset, SubsetOutput},
    batch::{Content, Contribution, StoredCommitment},
    broadcast::{BroadcastConfig, Delivered},
    client::{ClientTransaction, ClientTransactionError, EnvelopeKind},
    codec::{decode_transactions, epoch_label},
    config::Config,
    decrypt::Decryption,
};

const LABEL_KEY_DST: &[u8] = b"_BEAT_CORE_CLIENT_LABEL";

/// The duplicate-suppression key of a BEAT2 client transaction: a digest of its label (client
/// key and request id), so one request is ordered once however often it is re-encrypted.
pub(crate) fn label_key(label: &[u8]) -> Digest {
    hash(LABEL_KEY_DST, label)
}

/// What an epoch decided, before cross-epoch duplicate suppression.
#[derive(Debug)]
pub(crate) struct EpochOutcome {
    pub contributions: Vec<Contribution>,
    /// BEAT2: the labels ordered in this epoch (decrypted or not), for duplicate suppression.
    pub ordered_labels: Vec<Digest>,
    /// BEAT3/BEAT4 commitments-only: this replica's verified fragments of the agreed
    /// dispersals, to store and serve to readers.
    pub stored: Vec<StoredFragments>,
}

/// One agreed dispersal's cross-checksum and this replica's fragments of it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredFragments {
    /// The proposer.
    pub proposer: NodeId,
    /// The agreed cross-checksum.
    pub fpcc: Fpcc,
    /// This replica's verified fragments (possibly none).
    pub fragments: Vec<Fragment>,
}

/// An agreed proposer's value on its way to becoming a contribution.
#[derive(Debug)]
enum Value {
    Bytes(Bytes),
    Rejected(FaultKind),
    Stored(StoredCommitment),
    /// Being retrieved from the replicas' fragments.
    Retrieving,
}

/// How one included proposer's value is being turned into its contribution.
#[derive(Debug)]
enum Plan {
    Done(Content),
    /// BEAT0/1: one ciphertext, slot (j, 0).
    Encrypted,
    /// BEAT2: client ciphertexts at these slots, each one transaction or a bundle.
    ClientTransactions(Vec<(CiphertextSlot, EnvelopeKind)>),
}

#[derive(Debug)]
enum Phase {
    Agreeing,
    Retrieving {
        values: Vec<(NodeId, Value)>,
        retrieval: Retrieval,
    },
    Decrypting {
        plans: Vec<(NodeId, Plan)>,
        decryption: Decryption,
        ordered_labels: Vec<Digest>,
    },
    Done,
}

/// One epoch at one replica.
#[derive(Debug)]
pub(crate) struct EpochState {
    epoch: Epoch,
    config: Arc<Config>,
    subset: Subset,
    subset_output: Option<SubsetOutput>,
    phase: Phase,
    /// Decryption shares that arrived before this replica knew the slots, per sender and slot.
    /// Keyed so that a message delivered twice (a restarted sender re-sends what it sent
    /// before) is absorbed rather than counted against the sender's cap.
    early_shares: BTreeMap<NodeId, BTreeMap<CiphertextSlot, tdh2::DecryptionShare>>,
    /// Fragments that arrived before this replica knew the agreed dispersals, per sender,
    /// keyed by (proposer, fragment index) for the same reason.
    early_fragments: BTreeMap<NodeId, BTreeMap<(NodeId, u32), Fragment>>,
    code: Arc<AvidFpCode>,
    stored: Vec<StoredFragments>,
    /// This replica's decryption-share request (D1), until the keystore answers it.
    own_request: Option<Vec<DecryptionItem>>,
    /// Set once any message for this epoch arrived: somebody started it, so join.
    pub seen_message: bool,
    outcome: Option<EpochOutcome>,
}

type EpochStep = Step<EpochMessage, ()>;

impl EpochState {
    pub fn new(config: Arc<Config>, broadcast: &BroadcastConfig, epoch: Epoch) -> Self {
        let subset = Subset::new(
            config.our_id,
            config.committee,
            epoch,
            broadcast,
            config.keys.coin.clone(),
            config.params.max_future_rounds,
        );
        Self {
            epoch,
            config,
            subset,
            subset_output: None,
            phase: Phase::Agreeing,
            early_shares: BTreeMap::new(),
            early_fragments: BTreeMap::new(),
            code: broadcast.code.clone(),
            stored: Vec::new(),
            own_request: None,
            seen_message: false,
            outcome: None,
        }
    }

    pub fn has_proposed(&self) -> bool {
        self.subset.has_proposed()
    }

    /// Commitments-only delivery, epoch adopted through catch-up (N5): the fragments this
    /// replica verified for the dispersals `batch` stores, wherever the epoch had got to. Every
    /// replica that echoed a dispersal holds a verified fragment of it; keeping it however the
    /// replica leaves the epoch is what keeps `k` honest fragments of every agreed dispersal.
    pub fn salvage_fragments(&self, batch: &crate::Batch) -> Vec<StoredFragments> {
        let mut out = Vec::new();
        for c in &batch.contributions {
            let Content::Stored(stored) = &c.content else {
                continue;
            };
            let from_output = self.subset_output.as_ref().and_then(|output| {
                output.iter().find_map(|(p, d)| match d {
                    Delivered::Dispersed(d)
                        if *p == c.proposer && d.fpcc.digest() == stored.commitment =>
                    {
                        Some(d.clone())
                    }
                    _ => None,
                })
            });
            let from_stored = || {
                self.stored
                    .iter()
                    .find(|s| s.proposer == c.proposer && s.fpcc.digest() == stored.commitment)
                    .map(|s| crate::dispersal::Dispersed {
                        fpcc: s.fpcc.clone(),
                        fragments: s.fragments.clone(),
                    })
            };
            let found = from_output.or_else(from_stored).or_else(|| {
                self.subset
                    .dispersed_fragments(c.proposer, &stored.commitment)
            });
            if let Some(d) = found
                && !d.fragments.is_empty()
            {
                out.push(StoredFragments {
                    proposer: c.proposer,
                    fpcc: d.fpcc,
                    fragments: d.fragments,
                });
            }
        }
        out
    }

    /// Returns `true` once the common subset was output here.
    pub fn is_subset_fixed(&self) -> bool {
        self.subset.is_done()
    }

    /// The broadcasts (RBC/AVID) of this epoch delivered here so far.
    pub fn broadcasts_delivered(&self) -> usize {
        self.subset.delivered()
    }

    /// The agreements that have not decided yet, with their rounds.
    pub fn undecided_agreements(&self) -> Vec<(NodeId, u32)> {
        self.subset.undecided_agreements()
    }

    /// Returns `true` once the common subset is known and E3 can start.
    pub fn is_ready_to_finalize(&self) -> bool {
        self.subset_output.is_some() && matches!(self.phase, Phase::Agreeing)
    }

    /// Keystore requests made by this epoch whose replies have not arrived.
    pub fn pending_requests(&self) -> Vec<crate::Request> {
        let mut out: Vec<crate::Request> = self
            .subset
            .pending_coin_requests()
            .into_iter()
            .map(crate::Request::CoinShare)
            .collect();
        if let Some(items) = &self.own_request {
            out.push(crate::Request::DecryptionShares {
                epoch: self.epoch,
                items: items.clone(),
            });
        }
        out
    }

    /// Ends the epoch at this replica (committed, or passed by catch-up) and keeps what it
    /// still owes the replicas that are still in it (module `retired`).
    pub fn retire(self) -> RetiredEpoch {
        RetiredEpoch::new(self.epoch, self.subset.into_agreements(), self.own_request)
    }

    pub fn take_outcome(&mut self) -> Option<EpochOutcome> {
        self.outcome.take()
    }

    /// E1/E2: proposes `value`.
    pub fn propose(&mut self, value: Bytes) -> EpochStep {
        let our_id = self.config.our_id;
        let sub = self.subset.propose(our_id, value);
        self.absorb_subset(sub)
    }

    pub fn handle_message(&mut self, sender: NodeId, message: EpochMessage) -> EpochStep {
        self.seen_message = true;
        match message {
            EpochMessage::Subset(m) => {
                let sub = self.subset.handle_message(sender, m);
                self.absorb_subset(sub)
            }
            EpochMessage::DecryptionShares(shares) => self.on_shares(sender, shares),
            EpochMessage::Fragments(fragments) => self.on_fragments(sender, fragments),
        }
    }

    fn on_fragments(&mut self, sender: NodeId, fragments: Vec<(NodeId, Fragment)>) -> EpochStep {
        let mut step = Step::default();
        match &mut self.phase {
            Phase::Agreeing => {
                // An honest replica holds at most two fragments per proposer.
                let cap = 2 * self.config.committee.n();
                let stash = self.early_fragments.entry(sender).or_default();
                let mut faulty = false;
                for (proposer, fragment) in fragments {
                    match stash.get(&(proposer, fragment.index)) {
                        // The same fragment again: a re-sent message.
                        Some(held) if *held == fragment => {}
                        // Two different fragments for one position: equivocation.
                        Some(_) => faulty = true,
                        None if stash.len() < cap => {
                            stash.insert((proposer, fragment.index), fragment);
                        }
                        None => faulty = true,
                    }
                }
                if faulty {
                    step.fault(Fault::new(sender, FaultKind::InvalidFragment));
                }
            }
            Phase::Retrieving { retrieval, .. } => {
                for fault in retrieval.add(sender, fragments) {
                    step.fault(fault);
                }
                self.try_finish_retrieval(&mut step);
            }
            Phase::Decrypting { .. } | Phase::Done => {}
        }
        step
    }

    /// R3 done: replaces the retrieved values and plans the contributions.
    fn try_finish_retrieval(&mut self, step: &mut EpochStep) {
        let Phase::Retrieving { retrieval, .. } = &self.phase else {
            return;
        };
        if !retrieval.is_done() {
            return;
        }
        let Phase::Retrieving {
            mut values,
            mut retrieval,
        } = std::mem::replace(&mut self.phase, Phase::Agreeing)
        else {
            return;
        };
        let mut results = retrieval.take_results();
        for (proposer, value) in &mut values {
            if matches!(value, Value::Retrieving) {
                *value = match results.remove(proposer).flatten() {
                    Some(bytes) => Value::Bytes(bytes),
                    None => {
                        step.fault(Fault::new(*proposer, FaultKind::UndecodableValue));
                        Value::Rejected(FaultKind::UndecodableValue)
                    }
                };
            }
        }
        // Only BEAT2 consults the committed labels, and BEAT2 never retrieves.
        step.extend(self.plan(values, &|_| false));
    }

    pub fn handle_coin_share(
        &mut self,
        instance: NodeId,
        round: u32,
        share: bls::SignatureShare,
    ) -> EpochStep {
        let sub = self.subset.handle_coin_share(instance, round, share);
        self.absorb_subset(sub)
    }

    /// This replica's own decryption shares, from the keystore: D2 and D3. R2: they are
    /// broadcast whatever this replica's progress (it may have decrypted from others' shares
    /// already); replicas that were sent a faulty share only by some may need them.
    pub fn handle_own_shares(
        &mut self,
        shares: Vec<(CiphertextSlot, tdh2::DecryptionShare)>,
    ) -> EpochStep {
        let mut step = Step::default();
        if self.own_request.take().is_none() || shares.is_empty() {
            // Not requested, already answered, or the keystore refused every item.
            return step;
        }
        step.broadcast(EpochMessage::DecryptionShares(shares.clone()));
        if matches!(self.phase, Phase::Decrypting { .. }) {
            step.extend(self.on_shares(self.config.our_id, shares));
        }
        step
    }

    fn absorb_subset(&mut self, sub: Step<crate::acs::SubsetMessage, SubsetOutput>) -> EpochStep {
        let mut step = Step::default();
        let outputs = sub.absorb_into(&mut step, EpochMessage::Subset);
        if let Some(output) = outputs.into_iter().next() {
            self.subset_output = Some(output);
        }
        step
    }

    fn on_shares(
        &mut self,
        sender: NodeId,
        shares: Vec<(CiphertextSlot, tdh2::DecryptionShare)>,
    ) -> EpochStep {
        let mut step = Step::default();
        match &mut self.phase {
            Phase::Agreeing | Phase::Retrieving { .. } => {
                // Honest replicas share at most one slot per proposer and transaction.
                let cap = self.config.committee.n()
                    * self.config.params.proposal_size(self.config.committee);
                let stash = self.early_shares.entry(sender).or_default();
                let (mut conflicting, mut excess) = (false, false);
                for (slot, share) in shares {
                    match stash.get(&slot) {
                        // The same share again: a re-sent message.
                        Some(held) if *held == share => {}
                        Some(_) => conflicting = true,
                        None if stash.len() < cap => {
                            stash.insert(slot, share);
                        }
                        None => excess = true,
                    }
                }
                if conflicting {
                    step.fault(Fault::new(sender, FaultKind::ConflictingDecryptionShare));
                }
                if excess {
                    step.fault(Fault::new(sender, FaultKind::UnexpectedDecryptionShares));
                }
            }
            Phase::Decrypting { decryption, .. } => {
                for fault in decryption.add_shares(sender, shares) {
                    step.fault(fault);
                }
                self.try_complete(&mut step);
            }
            Phase::Done => {}
        }
        step
    }

    /// E3: collects the agreed values — retrieving BEAT3/BEAT4 contributions from fragments
    /// first where needed — and turns them into decryption slots. `is_committed` says whether a
    /// BEAT2 label was ordered in an earlier epoch. Called once every earlier epoch is committed.
    pub fn finalize(&mut self, is_committed: &dyn Fn(&Digest) -> bool) -> EpochStep {
        let mut step = Step::default();
        let Some(output) = self.subset_output.take() else {
            return step;
        };
        let mut values = Vec::with_capacity(output.len());
        let mut targets = BTreeMap::new();
        let mut own = BTreeMap::new();
        for (proposer, delivered) in output {
            let value = match delivered {
                Delivered::Value(bytes) => Value::Bytes(bytes),
                // The broadcast layer already attributed the fault.
                Delivered::Undecodable => Value::Rejected(FaultKind::UndecodableValue),
                Delivered::Dispersed(d) => match self.config.params.delivery {
                    Delivery::CommitmentsOnly => {
                        let commitment = StoredCommitment {
                            commitment: d.fpcc.digest(),
                            payload_len: d.fpcc.payload_len,
                        };
                        self.stored.push(StoredFragments {
                            proposer,
                            fpcc: d.fpcc,
                            fragments: d.fragments,
                        });
                        Value::Stored(commitment)
                    }
                    Delivery::Full => {
                        targets.insert(proposer, d.fpcc);
                        own.insert(proposer, d.fragments);
                        Value::Retrieving
                    }
                },
            };
            values.push((proposer, value));
        }
        if targets.is_empty() {
            step.extend(self.plan(values, is_committed));
            return step;
        }
        let mut retrieval =
            Retrieval::new(self.code.clone(), self.config.committee.n(), targets, own);
        let mine = retrieval.own_fragments();
        if !mine.is_empty() {
            step.broadcast(EpochMessage::Fragments(mine));
        }
        for (sender, fragments) in std::mem::take(&mut self.early_fragments) {
            let fragments = fragments
                .into_iter()
                .map(|((proposer, _), fragment)| (proposer, fragment))
                .collect::<Vec<_>>();
            for fault in retrieval.add(sender, fragments) {
                step.fault(fault);
            }
        }
        self.phase = Phase::Retrieving { values, retrieval };
        self.try_finish_retrieval(&mut step);
        step
    }

    /// E3 (continued): turns agreed values into decryption slots, or final contents.
    fn plan(
        &mut self,
        values: Vec<(NodeId, Value)>,
        is_committed: &dyn Fn(&Digest) -> bool,
    ) -> EpochStep {
        let mut step = Step::default();
        let config = self.config.clone();
        let params = &config.params;
        let max_count = params.proposal_size(config.committee);
        let mut plans = Vec::with_capacity(values.len());
        let mut slots = Vec::new();
        let mut ordered_labels = Vec::new();
        let mut seen_labels = BTreeSet::new();
        for (proposer, value) in values {
            let value = match value {
                Value::Bytes(bytes) => bytes,
                Value::Rejected(kind) => {
                    plans.push((proposer, Plan::Done(Content::Rejected(kind))));
                    continue;
                }
                Value::Stored(commitment) => {
                    plans.push((proposer, Plan::Done(Content::Stored(commitment))));
                    continue;
                }
                Value::Retrieving => {
                    plans.push((
                        proposer,
                        Plan::Done(Content::Rejected(FaultKind::UndecodableValue)),
                    ));
                    continue;
                }
            };
            let plan = match params.variant {
                Variant::Beat2 => {
                    let Some(txs) =
                        decode_transactions(&value, max_count, params.max_transaction_bytes)
                    else {
                        step.fault(Fault::new(proposer, FaultKind::MalformedContribution));
                        plans.push((
                            proposer,
                            Plan::Done(Content::Rejected(FaultKind::MalformedContribution)),
                        ));
                        continue;
                    };
                    let mut mine = Vec::new();
                    let mut malformed = false;
                    for (index, tx) in txs.iter().enumerate() {
                        // E3 (BEAT2): the same check as admission. An honest proposer proposes
                        // only admitted transactions, so a failure is the proposer's fault; the
                        // transaction is dropped without spending its label.
                        let Ok((ct, header, kind)) = verified_client_transaction(&config, tx)
                        else {
                            malformed = true;
                            continue;
                        };
                        let key = label_key(ct.label());
                        if is_committed(&key) || !seen_labels.insert(key) {
                            continue;
                        }
                        ordered_labels.push(key);
                        let slot = CiphertextSlot {
                            proposer,
                            index: index as u32,
                        };
                        let label = ct.label().to_vec();
                        slots.push((slot, Arc::new(ct), Arc::new(header), label));
                        mine.push((slot, kind));
                    }
                    if malformed {
                        step.fault(Fault::new(proposer, FaultKind::MalformedContribution));
                    }
                    Plan::ClientTransactions(mine)
                }
                _ if params.encrypts_contributions() => {
                    let label = epoch_label(self.epoch, proposer);
                    let verified = tdh2::Ciphertext::from_bytes(&value).and_then(|ct| {
                        let header = config.keys.encryption.verified_header(&ct, &label)?;
                        Ok((ct, header))
                    });
                    match verified {
                        Ok((ct, header)) => {
                            slots.push((
                                CiphertextSlot { proposer, index: 0 },
                                Arc::new(ct),
                                Arc::new(header),
                                label,
                            ));
                            Plan::Encrypted
                        }
                        _ => {
                            step.fault(Fault::new(proposer, FaultKind::InvalidCiphertext));
                            Plan::Done(Content::Rejected(FaultKind::InvalidCiphertext))
                        }
                    }
                }
                _ => match decode_transactions(&value, max_count, params.max_transaction_bytes) {
                    Some(txs) => Plan::Done(Content::Transactions(txs)),
                    None => {
                        step.fault(Fault::new(proposer, FaultKind::MalformedContribution));
                        Plan::Done(Content::Rejected(FaultKind::MalformedContribution))
                    }
                },
            };
            plans.push((proposer, plan));
        }
        let mut decryption =
            Decryption::new(config.keys.encryption.clone(), config.committee, slots);
        if let Some(request) = decryption.request(self.epoch) {
            if let crate::Request::DecryptionShares { items, .. } = &request {
                self.own_request = Some(items.clone());
            }
            step.request(request);
        }
        for (sender, shares) in std::mem::take(&mut self.early_shares) {
            for fault in decryption.add_shares(sender, shares) {
                step.fault(fault);
            }
        }
        self.phase = Phase::Decrypting {
            plans,
            decryption,
            ordered_labels,
        };
        self.try_complete(&mut step);
        step
    }

    /// E5: once every slot is resolved, assembles the contributions.
    fn try_complete(&mut self, step: &mut EpochStep) {
        let Phase::Decrypting { decryption, .. } = &self.phase else {
            return;
        };
        if !decryption.is_done() {
            return;
        }
        let Phase::Decrypting {
            plans,
            decryption,
            ordered_labels,
        } = std::mem::replace(&mut self.phase, Phase::Done)
        else {
            return;
        };
        let params = &self.config.params;
        let max_count = params.proposal_size(self.config.committee);
        let mut contributions = Vec::with_capacity(plans.len());
        for (proposer, plan) in plans {
            let content = match plan {
                Plan::Done(content) => content,
                Plan::Encrypted => {
                    match decryption.result(&CiphertextSlot { proposer, index: 0 }) {
                        Some(Ok(plaintext)) => match decode_transactions(
                            plaintext,
                            max_count,
                            params.max_transaction_bytes,
                        ) {
                            Some(txs) => Content::Transactions(txs),
                            None => {
                                step.fault(Fault::new(proposer, FaultKind::MalformedContribution));
                                Content::Rejected(FaultKind::MalformedContribution)
                            }
                        },
                        _ => {
                            step.fault(Fault::new(proposer, FaultKind::UndecryptableCiphertext));
                            Content::Rejected(FaultKind::UndecryptableCiphertext)
                        }
                    }
                }
                Plan::ClientTransactions(slots) => Content::Transactions(
                    slots
                        .iter()
                        .flat_map(|(s, kind)| match decryption.result(s) {
                            // A client ciphertext that does not decrypt, or whose plaintext is
                            // not what its envelope's kind says, was ordered (its label is
                            // spent) but commits nothing; the client, not the proposer, erred.
                            // A bundle commits its transactions in its own order.
                            Some(Ok(plaintext)) => kind
                                .open(plaintext, params.max_transaction_bytes)
                                .unwrap_or_default(),
                            _ => Vec::new(),
                        })
                        .collect(),
                ),
            };
            contributions.push(Contribution { proposer, content });
        }
        self.outcome = Some(EpochOutcome {
            contributions,
            ordered_labels,
            stored: std::mem::take(&mut self.stored),
        });
    }
}

/// Parses and verifies a BEAT2 client transaction (module [`crate::client`]): a TDH2
/// ciphertext under a client label, signed by that client, valid under the committee key.
/// Admission and E3 both call this one function, so they accept exactly the same transactions.
/// Returns the ciphertext and whether its plaintext is one transaction or a bundle.
pub(crate) fn verified_client_transaction(
    config: &Config,
    tx: &Transaction,
) -> Result<(tdh2::Ciphertext, tdh2::CiphertextHeader, EnvelopeKind), ClientTransactionError> {
    let parsed = ClientTransaction::from_bytes(tx.as_bytes())?;
    let header = parsed.verified_header(&config.keys.encryption)?;
    let kind = parsed.kind();
    Ok((parsed.into_ciphertext(), header, kind))
}
