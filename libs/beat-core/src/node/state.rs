//! The replica state machine.

use std::{collections::BTreeMap, fmt, sync::Arc};

use beat_crypto::{Digest, hash::hash_parts};
use beat_types::{Epoch, NodeId, Transaction, Variant};
use bytes::Bytes;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use super::{
    Message,
    catch_up::CatchUp,
    certify::{Certifier, IncomingShare},
    window::CommittedWindow,
};
use crate::{
    Batch, CommitCertificate, Delivery, Error, Fault, Reply, Request, Step, aba,
    acs::SubsetMessage,
    batch::Content,
    broadcast::BroadcastConfig,
    buffer::{TransactionBuffer, TransactionError, transaction_digest},
    codec::{encode_transactions, epoch_label},
    config::Config,
    epoch::{EpochMessage, EpochOutcome, EpochState, RetiredEpoch, RetiredSnapshot},
};

/// A local input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Input {
    /// Transactions submitted by clients of this replica.
    Submit(Vec<Transaction>),
    /// The host has seen this replica make no progress for a while although peers announced
    /// later epochs (N5'). The core has no clock; hosts send this from a timer.
    Stalled,
}

/// An output of the replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// An epoch was committed. Batches are output in epoch order, each exactly once.
    Committed {
        /// The batch.
        batch: Batch,
        /// Its [`Batch::digest`], computed once by the certification step (C1) so that
        /// hosts need not hash every transaction again.
        digest: Digest,
    },
    /// A committed epoch was certified (module `certify`): output once per epoch, after its
    /// `Committed`, not necessarily in epoch order.
    Certified(CommitCertificate),
    /// BEAT3/BEAT4 with commitments-only delivery: this replica's verified fragments of the
    /// epoch's agreed dispersals, to store and serve to readers. Output just before the
    /// epoch's `Committed`.
    Stored {
        /// The epoch.
        epoch: Epoch,
        /// Fragments per agreed dispersal.
        fragments: Vec<crate::epoch::StoredFragments>,
        /// `true` when this replica delivered the epoch itself: one record (possibly without
        /// fragments) for every agreed dispersal. `false` when it adopted the epoch through
        /// catch-up (N5) and keeps only the dispersals it had verified fragments of; a reader
        /// asking it for the others is told it holds none.
        complete: bool,
    },
    /// The replica entered a new epoch; this is its complete state at that moment. Restoring it
    /// with [`BeatNode::from_checkpoint`] and calling [`BeatNode::resume`], then replaying every
    /// later event in order, reproduces the replica exactly — including every message it sent,
    /// so a restarted replica never equivocates. Emitted on entering every epoch that is a
    /// multiple of [`BeatNode::set_checkpoint_interval`] (default: every epoch).
    Checkpoint(Box<Checkpoint>),
}

/// The step type of [`BeatNode`].
pub type NodeStep = Step<Message, Output>;

/// The secret seed from which each epoch's proposal randomness is derived (transaction
/// sampling and the encryption randomness of the proposal). It must be secret — it determines
/// the encryption randomness of this replica's proposals — and it must be the same after a
/// restart, so that a replayed proposal is identical to the one sent before the crash.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposalSeed(pub [u8; 32]);

impl Drop for ProposalSeed {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for ProposalSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProposalSeed(<redacted>)")
    }
}

/// A replica's state at the moment it entered an epoch (see [`Output::Checkpoint`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The epoch just entered.
    pub epoch: Epoch,
    buffer: Vec<(Digest, Transaction)>,
    #[serde(with = "shared_keys")]
    window: Vec<(Epoch, EpochKeys)>,
    peer_epochs: BTreeMap<NodeId, Epoch>,
    catch_up: CatchUp,
    future: BTreeMap<Epoch, FutureEpoch>,
    retired: BTreeMap<Epoch, RetiredSnapshot>,
    certifier: Certifier,
    /// The period this replica pipelines under from this checkpoint on (P5), or `None` if it
    /// does not: replay must make the pipelining decisions that were made before the crash,
    /// whatever the host's settings are now.
    pub(crate) pipelined_every: Option<u64>,
}

/// A checkpoint in the layout written before pipelining (consensus store format 4): the same
/// fields without the pipelining period. Such a replica did not pipeline, so it converts into a
/// [`Checkpoint`] that does not either; replay from it then runs as the replica ran.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnpipelinedCheckpoint {
    epoch: Epoch,
    buffer: Vec<(Digest, Transaction)>,
    #[serde(with = "shared_keys")]
    window: Vec<(Epoch, EpochKeys)>,
    peer_epochs: BTreeMap<NodeId, Epoch>,
    catch_up: CatchUp,
    future: BTreeMap<Epoch, FutureEpoch>,
    retired: BTreeMap<Epoch, RetiredSnapshot>,
    certifier: Certifier,
}

impl From<UnpipelinedCheckpoint> for Checkpoint {
    fn from(c: UnpipelinedCheckpoint) -> Self {
        Self {
            epoch: c.epoch,
            buffer: c.buffer,
            window: c.window,
            peer_epochs: c.peer_epochs,
            catch_up: c.catch_up,
            future: c.future,
            retired: c.retired,
            certifier: c.certifier,
            pipelined_every: None,
        }
    }
}

impl UnpipelinedCheckpoint {
    /// The old layout of a checkpoint that does not pipeline (`None` if it does): what a store
    /// of the earlier format held, for upgrade tests.
    pub fn from_checkpoint(c: Checkpoint) -> Option<Self> {
        if c.pipelined_every.is_some() {
            return None;
        }
        Some(Self {
            epoch: c.epoch,
            buffer: c.buffer,
            window: c.window,
            peer_epochs: c.peer_epochs,
            catch_up: c.catch_up,
            future: c.future,
            retired: c.retired,
            certifier: c.certifier,
        })
    }
}

/// One epoch's duplicate-suppression keys, shared between the window and checkpoints.
type EpochKeys = Arc<[Digest]>;

/// The serde form of the checkpoint's window: a sequence of `(epoch, keys)`, exactly as when
/// the keys were a `Vec` (the shared `Arc` is a memory detail, not part of the format).
mod shared_keys {
    use std::sync::Arc;

    use beat_crypto::Digest;
    use beat_types::Epoch;
    use serde::{Deserialize, Deserializer, Serializer, ser::SerializeSeq};

    use super::EpochKeys;

    pub fn serialize<S: Serializer>(
        window: &[(Epoch, EpochKeys)],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(window.len()))?;
        for (epoch, keys) in window {
            seq.serialize_element(&(epoch, &**keys))?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<(Epoch, EpochKeys)>, D::Error> {
        let window = Vec::<(Epoch, Vec<Digest>)>::deserialize(deserializer)?;
        Ok(window
            .into_iter()
            .map(|(e, k)| (e, Arc::<[Digest]>::from(k)))
            .collect())
    }
}

/// Messages for an epoch the replica has not reached yet, in arrival order, with per-sender
/// accounting so that no sender can fill the queue.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct FutureEpoch {
    messages: Vec<(NodeId, EpochMessage)>,
    per_sender: BTreeMap<NodeId, (usize, usize)>,
}

/// One BEAT replica's protocol state.
pub struct BeatNode {
    config: Arc<Config>,
    broadcast: BroadcastConfig,
    seed: ProposalSeed,
    epoch: Epoch,
    current: Option<EpochState>,
    /// Epoch `epoch + 1`, started early (P1); `None` unless pipelining.
    next: Option<EpochState>,
    future: BTreeMap<Epoch, FutureEpoch>,
    /// The last `catch_up_lag` epochs this replica left, with what it still owes them (R1, R2).
    retired: BTreeMap<Epoch, RetiredEpoch>,
    buffer: TransactionBuffer,
    window: CommittedWindow,
    peer_epochs: BTreeMap<NodeId, Epoch>,
    catch_up: CatchUp,
    certifier: Certifier,
    /// The buffer keys of this replica's proposals in epochs not committed yet (the current
    /// one and, pipelining, the next): held in the buffer so that the next proposal does not
    /// repeat them (P3), released when the epoch ends. Commitments-only delivery also drops
    /// them from the buffer if the contribution is committed (N4). Not in the checkpoint: it is
    /// empty on entering a checkpoint epoch, whose proposal resuming redoes.
    in_flight: BTreeMap<Epoch, Vec<Digest>>,
    /// Emit [`Output::Checkpoint`] on entering every epoch that is a multiple of this (when
    /// not pipelining).
    checkpoint_every: u64,
    /// P5: the period this replica pipelines under (its checkpoints and barriers), or `None`.
    pipelined_every: Option<u64>,
    /// What the host asked for ([`BeatNode::set_pipelining`]), adopted at the next checkpoint.
    want_pipelining: bool,
}

impl fmt::Debug for BeatNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BeatNode")
            .field("our_id", &self.config.our_id)
            .field("epoch", &self.epoch)
            .field("buffered", &self.buffer.len())
            .finish_non_exhaustive()
    }
}

impl BeatNode {
    /// Creates a replica at epoch 0 with an empty buffer.
    pub fn new(config: Config, seed: ProposalSeed) -> Result<Self, Error> {
        config.validate()?;
        let window = CommittedWindow::new(config.params.dedup_window_epochs);
        let broadcast = BroadcastConfig::new(config.committee, &config.params);
        let certifier = Certifier::new(config.committee_digest);
        Ok(Self {
            config: Arc::new(config),
            broadcast,
            seed,
            epoch: Epoch::ZERO,
            current: None,
            next: None,
            future: BTreeMap::new(),
            retired: BTreeMap::new(),
            buffer: TransactionBuffer::default(),
            window,
            peer_epochs: BTreeMap::new(),
            catch_up: CatchUp::default(),
            certifier,
            in_flight: BTreeMap::new(),
            checkpoint_every: 1,
            pipelined_every: None,
            want_pipelining: false,
        })
    }

    /// Emits [`Output::Checkpoint`] only on entering epochs that are multiples of `every`
    /// (default 1: every epoch). A checkpoint copies the whole transaction buffer, so a host
    /// that persists only every k-th one should say so here rather than discard the others.
    /// A local setting, not part of the protocol: replicas may differ.
    pub fn set_checkpoint_interval(&mut self, every: u64) {
        self.checkpoint_every = every.max(1);
    }

    /// Asks for pipelined epochs (module docs, P1–P5) or for none. A local setting, not part of
    /// the protocol: replicas that pipeline and replicas that do not run together. It takes
    /// effect at the next checkpoint the node emits, which records it: a node restored from a
    /// checkpoint pipelines as it did when it took the checkpoint, so that replaying the events
    /// after it reproduces what it sent. Hosts call this after replaying; a new node starts
    /// unpipelined until its first checkpoint. While pipelining, checkpoints (and barriers)
    /// fall on multiples of the checkpoint interval in force when it was adopted.
    pub fn set_pipelining(&mut self, on: bool) {
        self.want_pipelining = on;
    }

    /// For a host opening a replica over an empty log: adopts the requested pipelining at once
    /// and returns the genesis checkpoint that records it, to be saved before any event, so
    /// that a restart replays under the same setting whatever the host asks for then. `None`
    /// (and nothing changes) once the node has handled anything.
    pub fn genesis_checkpoint(&mut self) -> Option<Checkpoint> {
        let untouched = self.epoch == Epoch::ZERO
            && self.current.is_none()
            && self.buffer.is_empty()
            && self.future.is_empty()
            && self.peer_epochs.is_empty()
            && !self.certifier.has_pending()
            && self.certifier.latest().is_none();
        if !untouched {
            return None;
        }
        self.pipelined_every = self.want_pipelining.then_some(self.checkpoint_every);
        Some(self.checkpoint())
    }

    /// The period this node pipelines under (its checkpoints fall on its multiples), or `None`
    /// if it runs one epoch at a time.
    pub fn pipelined_every(&self) -> Option<u64> {
        self.pipelined_every
    }

    /// The epoch started early, if any (P1).
    pub fn started_next(&self) -> Option<Epoch> {
        self.next.as_ref().map(|_| self.epoch.next())
    }

    /// Restores a replica from a checkpoint. Call [`Self::resume`] next, then replay the events
    /// that followed the checkpoint.
    pub fn from_checkpoint(
        config: Config,
        seed: ProposalSeed,
        checkpoint: Checkpoint,
    ) -> Result<Self, Error> {
        let mut node = Self::new(config, seed)?;
        let bad = |reason: &str| Error::BadCheckpoint {
            epoch: checkpoint.epoch,
            reason: reason.to_owned(),
        };
        if checkpoint.future.keys().any(|e| *e < checkpoint.epoch) {
            return Err(bad("queued messages for past epochs"));
        }
        if checkpoint.retired.keys().any(|e| *e >= checkpoint.epoch) {
            return Err(bad("a retired epoch that is not in the past"));
        }
        if checkpoint.pipelined_every == Some(0) {
            return Err(bad("a pipelining period of 0"));
        }
        for (epoch, snapshot) in checkpoint.retired {
            let retired = RetiredEpoch::from_snapshot(&node.config, epoch, snapshot)?;
            node.retired.insert(epoch, retired);
        }
        node.epoch = checkpoint.epoch;
        for (key, tx) in checkpoint.buffer {
            node.buffer.push(key, tx);
        }
        for (epoch, keys) in checkpoint.window {
            node.window.insert(epoch, keys);
        }
        node.peer_epochs = checkpoint.peer_epochs;
        node.catch_up = checkpoint.catch_up;
        node.future = checkpoint.future;
        node.certifier = checkpoint.certifier;
        node.pipelined_every = checkpoint.pipelined_every;
        node.want_pipelining = checkpoint.pipelined_every.is_some();
        Ok(node)
    }

    /// Completes entering the checkpoint's epoch, exactly as the replica did when it took the
    /// checkpoint.
    pub fn resume(&mut self) -> NodeStep {
        let mut step = Step::default();
        self.enter_epoch(&mut step);
        self.process(&mut step);
        step
    }

    /// This replica's identifier.
    pub fn our_id(&self) -> NodeId {
        self.config.our_id
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The lowest epoch not yet committed.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// Pending transactions.
    pub fn buffer_len(&self) -> usize {
        self.buffer.len()
    }

    /// Messages queued for future epochs.
    pub fn queued_future_messages(&self) -> usize {
        self.future.values().map(|f| f.messages.len()).sum()
    }

    /// Epochs with queued messages beyond the current one; bounded by `max_future_epochs`
    /// whatever peers send.
    pub fn future_epochs_queued(&self) -> usize {
        self.future.len()
    }

    /// The epoch each peer last announced.
    pub fn peer_epochs(&self) -> &BTreeMap<NodeId, Epoch> {
        &self.peer_epochs
    }

    /// Keystore requests whose replies have not arrived (to re-issue after a restart),
    /// including those of epochs this replica has left: a requested share is always released
    /// (R2).
    pub fn pending_requests(&self) -> Vec<Request> {
        let mut out: Vec<Request> = self
            .retired
            .values()
            .flat_map(RetiredEpoch::pending_requests)
            .collect();
        for state in self.current.iter().chain(&self.next) {
            out.extend(state.pending_requests());
        }
        out.extend(self.certifier.pending_requests());
        out
    }

    /// Committed epochs this replica holds no commit certificate for yet.
    pub fn uncertified_epochs(&self) -> Vec<Epoch> {
        self.certifier.pending_epochs().collect()
    }

    /// The digest of the last batch committed since this replica started or was restored
    /// ([`Batch::digest`], computed once per epoch by the certification step).
    pub fn last_batch_digest(&self) -> Option<Digest> {
        self.certifier.last_batch()
    }

    /// The certificate of the highest epoch this replica has certified (or adopted through
    /// catch-up), if any: its keystore's signing horizon (module [`crate::signing`]).
    pub fn latest_certificate(&self) -> Option<&CommitCertificate> {
        self.certifier.latest()
    }

    /// The chain link of the last committed epoch (module [`crate::certificate`]).
    pub fn chain_link(&self) -> Digest {
        self.certifier.chain()
    }

    /// Whether the host's stall timer should run although no peer is ahead: some committed
    /// epoch is not certified yet (module `certify`, C7). A host sends [`Input::Stalled`] when
    /// the replica made no progress for a while and either f+1 peers are ahead or this holds.
    pub fn awaits_certificates(&self) -> bool {
        self.certifier.has_pending()
    }

    /// Returns `true` if committing the current epoch waits for older epochs' certificates
    /// (the watermark, `certify_window`).
    pub fn is_held_for_certificates(&self) -> bool {
        self.certifier
            .holds(self.epoch, self.config.params.certify_window)
    }

    /// How many peers announced an epoch after this replica's.
    pub fn peers_ahead(&self) -> usize {
        self.peer_epochs
            .values()
            .filter(|e| **e > self.epoch)
            .count()
    }

    /// Returns `true` if the current epoch has started here (this replica proposed in it or
    /// received a message for it) and is not committed yet.
    pub fn is_epoch_in_progress(&self) -> bool {
        self.current
            .as_ref()
            .is_some_and(|s| s.has_proposed() || s.seen_message)
    }

    /// The binary agreements of the current epoch that have not decided, with their rounds
    /// (diagnostics: a run that stops with one of these is stranded).
    pub fn undecided_agreements(&self) -> Vec<(NodeId, u32)> {
        self.current
            .as_ref()
            .map(EpochState::undecided_agreements)
            .unwrap_or_default()
    }

    /// Returns `true` once this replica knows the common subset of `epoch` (every earlier epoch
    /// is past, and the current one's subset is output). Decryption shares for an epoch must
    /// never be requested before (causal order, BEAT2's guarantee).
    pub fn is_subset_fixed(&self, epoch: Epoch) -> bool {
        epoch < self.epoch
            || (epoch == self.epoch
                && self
                    .current
                    .as_ref()
                    .is_some_and(EpochState::is_subset_fixed))
    }

    /// Epochs this replica left and still relays for (R1).
    pub fn retired_epochs(&self) -> impl Iterator<Item = Epoch> + '_ {
        self.retired.keys().copied()
    }

    /// Checks a transaction before it is accepted from a client and returns its
    /// duplicate-suppression key. In BEAT2 the transaction must be a valid client transaction
    /// (a TDH2 ciphertext under a client label, signed by that client; module
    /// [`crate::client`]), and the key is its label: one request, one slot.
    ///
    /// This is [`transaction_key`](Self::transaction_key) then
    /// [`verify_transaction`](Self::verify_transaction); a host that admits many transactions
    /// calls the two apart, so that a duplicate costs no verification.
    pub fn validate_transaction(&self, tx: &Transaction) -> Result<Digest, TransactionError> {
        let key = self.transaction_key(tx)?;
        self.verify_transaction(tx)?;
        Ok(key)
    }

    /// The checks of [`validate_transaction`](Self::validate_transaction) that cost next to
    /// nothing — not empty, within the size limit, and in BEAT2 a well-formed envelope (parsed,
    /// not verified) — and the duplicate-suppression key.
    pub fn transaction_key(&self, tx: &Transaction) -> Result<Digest, TransactionError> {
        let max = self.config.params.max_transaction_bytes;
        if tx.is_empty() {
            return Err(TransactionError::Empty);
        }
        if tx.len() > max {
            return Err(TransactionError::TooLarge {
                size: tx.len(),
                max,
            });
        }
        if self.config.params.variant == Variant::Beat2 {
            let parsed = crate::client::ClientTransaction::from_bytes(tx.as_bytes())?;
            return Ok(crate::epoch::label_key(parsed.ciphertext().label()));
        }
        Ok(transaction_digest(tx))
    }

    /// The costly checks of [`validate_transaction`](Self::validate_transaction): in BEAT2 the
    /// client's signature and the ciphertext's validity proof; nothing in other variants.
    pub fn verify_transaction(&self, tx: &Transaction) -> Result<(), TransactionError> {
        if self.config.params.variant == Variant::Beat2 {
            crate::epoch::verified_client_transaction(&self.config, tx)?;
        }
        Ok(())
    }

    /// Submits transactions that the caller has validated, each under the key
    /// [`validate_transaction`](Self::validate_transaction) (or
    /// [`transaction_key`](Self::transaction_key) and
    /// [`verify_transaction`](Self::verify_transaction)) returned for it: the effect of
    /// `handle_input(Input::Submit(..))` without verifying again. Known transactions are
    /// skipped; a full buffer rejects them all. A host that logs its inputs logs these as
    /// `Input::Submit`, whose replay verifies them again.
    pub fn submit_validated(
        &mut self,
        keyed: Vec<(Digest, Transaction)>,
    ) -> Result<NodeStep, Error> {
        let new = keyed.iter().filter(|(k, _)| !self.is_known(k)).count();
        let capacity = self.config.params.buffer_capacity;
        if self.buffer.len() + new > capacity {
            return Err(Error::BufferFull { capacity });
        }
        for (key, tx) in keyed {
            if !self.window.contains(&key) {
                self.buffer.push(key, tx);
            }
        }
        let mut step = Step::default();
        self.maybe_propose(&mut step);
        self.process(&mut step);
        Ok(step)
    }

    /// Whether a transaction with this key waits in the buffer (not yet committed).
    pub fn is_buffered(&self, key: &Digest) -> bool {
        self.buffer.contains(key)
    }

    /// Whether `key` is pending or was committed recently (duplicate suppression).
    pub fn is_known(&self, key: &Digest) -> bool {
        self.buffer.contains(key) || self.window.contains(key)
    }

    /// Handles a local input. Submitting is all-or-nothing: an invalid transaction or a full
    /// buffer rejects the whole input.
    pub fn handle_input(&mut self, input: Input) -> Result<NodeStep, Error> {
        match input {
            Input::Submit(txs) => {
                let mut keyed = Vec::with_capacity(txs.len());
                for tx in txs {
                    keyed.push((self.validate_transaction(&tx)?, tx));
                }
                self.submit_validated(keyed)
            }
            Input::Stalled => {
                let mut step = Step::default();
                let config = self.config.clone();
                self.certifier.flush(&config, &mut step);
                self.certifier.stalled(&self.config, &mut step);
                // A flush may have lifted the watermark.
                self.process(&mut step);
                self.request_catch_up(&mut step, 1, true);
                Ok(step)
            }
        }
    }

    /// Whether [`Self::handle_message`] could change this replica's state or produce anything
    /// for `message` from `sender`. It mirrors the first branch `handle_message` takes: a sender
    /// outside the committee (or this replica), an epoch message outside the window (neither
    /// current, nor within `max_future_epochs` ahead, nor a retired epoch still relayed for), an
    /// `EpochStarted` that announces nothing new, a catch-up request for epochs this replica
    /// has not committed. A component may drop an irrelevant message *without logging it*: a
    /// replay then reaches the same state, and a peer cannot fill the write-ahead log with
    /// traffic the core would ignore anyway.
    pub fn is_relevant(&self, sender: NodeId, message: &Message) -> bool {
        if !self.config.committee.contains(sender) || sender == self.config.our_id {
            return false;
        }
        match message {
            Message::Epoch { epoch, .. } => {
                *epoch == self.epoch
                    || (*epoch > self.epoch
                        && epoch.distance_from(self.epoch) <= self.config.params.max_future_epochs)
                    || self.retired.contains_key(epoch)
            }
            Message::EpochStarted(e) => self.peer_epochs.get(&sender).is_none_or(|k| e > k),
            Message::CatchUpRequest { from, .. } => *from < self.epoch,
            Message::CatchUpResponse(_) => true,
            Message::CommitShare {
                epoch,
                share,
                wants,
            } => {
                let share = IncomingShare {
                    epoch: *epoch,
                    share: *share,
                    wants: *wants,
                };
                self.certifier
                    .is_relevant_share(&self.config, sender, &share, self.epoch)
            }
            Message::Certificate(c) => self.certifier.is_relevant_certificate(
                &self.config,
                sender,
                c.statement.epoch,
                self.epoch,
            ),
        }
    }

    /// Handles a message from replica `sender` (authenticated by the transport).
    pub fn handle_message(&mut self, sender: NodeId, message: Message) -> Result<NodeStep, Error> {
        let mut step = Step::default();
        if !self.config.committee.contains(sender) || sender == self.config.our_id {
            return Ok(step);
        }
        match message {
            Message::Epoch { epoch, message } => {
                if epoch == self.epoch {
                    let state = self.current_state();
                    let sub = state.handle_message(sender, message);
                    absorb_epoch(&mut step, epoch, sub);
                    self.maybe_propose(&mut step);
                    self.process(&mut step);
                } else if epoch == self.epoch.next()
                    && let Some(next) = self.next.as_mut()
                {
                    // P2: the epoch started early runs like the current one, up to E3.
                    let sub = next.handle_message(sender, message);
                    absorb_epoch(&mut step, epoch, sub);
                } else if epoch > self.epoch
                    && epoch.distance_from(self.epoch) <= self.config.params.max_future_epochs
                {
                    self.queue_future(sender, epoch, message);
                    // P1: a message for the next epoch is a reason to start it.
                    if epoch == self.epoch.next() {
                        self.maybe_start_next(&mut step);
                    }
                } else if let Some(retired) = self.retired.get_mut(&epoch) {
                    // R1: votes for an epoch this replica left are still relayed.
                    let sub = retired.handle_message(sender, message);
                    absorb_epoch(&mut step, epoch, sub);
                }
            }
            Message::EpochStarted(e) => {
                let known = self.peer_epochs.entry(sender).or_insert(e);
                *known = (*known).max(e);
                self.maybe_request_catch_up(&mut step);
            }
            Message::CatchUpRequest { from, count } => {
                if from < self.epoch {
                    let max = u64::from(self.config.params.catch_up_max_epochs);
                    let count = self
                        .epoch
                        .distance_from(from)
                        .min(u64::from(count))
                        .min(max);
                    step.request(Request::ReadCommitted {
                        peer: sender,
                        from,
                        count: count as u32,
                    });
                }
            }
            Message::CommitShare {
                epoch,
                share,
                wants,
            } => {
                let config = self.config.clone();
                let share = IncomingShare {
                    epoch,
                    share,
                    wants,
                };
                self.certifier
                    .on_share(&config, sender, share, self.epoch, &mut step);
                self.process(&mut step);
            }
            Message::Certificate(certificate) => {
                let config = self.config.clone();
                self.certifier
                    .on_certificate(&config, sender, certificate, self.epoch, &mut step);
                self.process(&mut step);
            }
            Message::CatchUpResponse(mut batches) => {
                // C7: certificates of epochs committed here but not certified yet.
                let config = self.config.clone();
                for entry in &mut batches {
                    if entry.batch.epoch < self.epoch
                        && let Some(certificate) = entry.certificate.take()
                    {
                        self.certifier.on_certificate(
                            &config,
                            sender,
                            certificate,
                            self.epoch,
                            &mut step,
                        );
                    }
                }
                let horizon = u64::from(self.config.params.catch_up_max_epochs);
                for fault in self
                    .catch_up
                    .on_response(sender, batches, self.epoch, horizon)
                {
                    step.fault(fault);
                }
                self.process(&mut step);
            }
        }
        Ok(step)
    }

    /// Handles the reply to a [`Request`] this replica emitted. Replies for epochs that are
    /// over are ignored.
    pub fn handle_reply(&mut self, reply: Reply) -> Result<NodeStep, Error> {
        let mut step = Step::default();
        let epoch = self.epoch;
        match reply {
            // R2: a requested share is released whenever it arrives, however far this
            // replica has moved on since.
            Reply::CoinShare { id, share } => {
                let sub = if id.epoch == epoch
                    && let Some(state) = self.current.as_mut()
                {
                    state.handle_coin_share(id.instance, id.round, share)
                } else if id.epoch == epoch.next()
                    && let Some(next) = self.next.as_mut()
                {
                    next.handle_coin_share(id.instance, id.round, share)
                } else if let Some(retired) = self.retired.get_mut(&id.epoch) {
                    retired.handle_coin_share(id.instance, id.round, share)
                } else if id.epoch < epoch {
                    let mut sub = Step::default();
                    sub.broadcast(EpochMessage::Subset(SubsetMessage::Agreement {
                        proposer: id.instance,
                        message: aba::Message::Coin {
                            round: id.round,
                            share,
                        },
                    }));
                    sub
                } else {
                    Step::default()
                };
                absorb_epoch(&mut step, id.epoch, sub);
            }
            Reply::DecryptionShares { epoch: e, shares } => {
                let sub = if e == epoch
                    && let Some(state) = self.current.as_mut()
                {
                    state.handle_own_shares(shares)
                } else if e < epoch && !shares.is_empty() {
                    if let Some(retired) = self.retired.get_mut(&e) {
                        retired.on_own_shares();
                    }
                    let mut sub = Step::default();
                    sub.broadcast(EpochMessage::DecryptionShares(shares));
                    sub
                } else {
                    Step::default()
                };
                absorb_epoch(&mut step, e, sub);
            }
            Reply::CommitShare { epoch: e, share } => {
                let config = self.config.clone();
                self.certifier.own_share(&config, e, share, &mut step);
            }
            Reply::Committed { peer, batches } => {
                if !batches.is_empty() {
                    step.send(peer, Message::CatchUpResponse(batches));
                }
            }
        }
        self.process(&mut step);
        Ok(step)
    }

    fn current_state(&mut self) -> &mut EpochState {
        let (epoch, config, broadcast) = (self.epoch, self.config.clone(), &self.broadcast);
        self.current
            .get_or_insert_with(|| EpochState::new(config, broadcast, epoch))
    }

    /// N3: queues a message for a future epoch, bounded per sender.
    fn queue_future(&mut self, sender: NodeId, epoch: Epoch, message: EpochMessage) {
        let n = self.config.committee.n();
        let max_messages = 64 * n + 1024;
        let max_bytes = (n + 2) * crate::config::max_value_bytes(&self.config.params);
        let weight = message.weight();
        let queue = self.future.entry(epoch).or_default();
        let (count, bytes) = queue.per_sender.entry(sender).or_default();
        if *count < max_messages && *bytes + weight <= max_bytes {
            *count += 1;
            *bytes += weight;
            queue.messages.push((sender, message));
        }
    }

    /// The randomness of this replica's proposal in `epoch`: a function of the secret seed and
    /// the epoch only, so that a replayed proposal is the one sent before a crash.
    fn proposal_rng(&self, epoch: Epoch) -> ChaCha20Rng {
        let digest = hash_parts(
            b"_BEAT_CORE_PROPOSAL_RNG",
            &[&self.seed.0, &epoch.0.to_le_bytes()],
        );
        ChaCha20Rng::from_seed(digest.0)
    }

    /// N2: proposes in the current epoch if there is a reason to.
    fn maybe_propose(&mut self, step: &mut NodeStep) {
        let epoch = self.epoch;
        let available = self.buffer.available() > 0;
        let state = self.current_state();
        if state.has_proposed() || (!available && !state.seen_message) {
            return;
        }
        self.propose_in(epoch, step);
    }

    /// N2/P3: this replica's proposal in `epoch` (the current one, or the next started early):
    /// a sample of what its buffer does not hold for an earlier uncommitted proposal.
    fn propose_in(&mut self, epoch: Epoch, step: &mut NodeStep) {
        let mut rng = self.proposal_rng(epoch);
        let config = self.config.clone();
        let params = &config.params;
        let (keys, sample) = self.buffer.sample(
            params.batch_size,
            params.proposal_size(config.committee),
            params.max_contribution_bytes.saturating_sub(64),
            &mut rng,
        );
        let plaintext = encode_transactions(&sample);
        self.buffer.hold(&keys);
        self.in_flight.insert(epoch, keys);
        let value = if params.encrypts_contributions() {
            let label = epoch_label(epoch, config.our_id);
            match config.keys.encryption.encrypt(&label, &plaintext, &mut rng) {
                Ok(ct) => Bytes::from(ct.to_bytes()),
                // The label is short and the plaintext bounded, so encryption cannot fail;
                // propose an empty contribution rather than stall the epoch if it ever did.
                Err(_) => Bytes::from(encode_transactions(&[])),
            }
        } else {
            Bytes::from(plaintext)
        };
        let state = if epoch == self.epoch {
            self.current_state()
        } else {
            match self.next.as_mut() {
                Some(next) => next,
                None => return,
            }
        };
        let sub = state.propose(value);
        absorb_epoch(step, epoch, sub);
    }

    /// P1: starts epoch `e + 1` early — its broadcasts and agreements, not its E3 — once
    /// `n − f` of the current epoch's broadcasts are delivered here (or its subset is fixed),
    /// if this replica pipelines, `e + 1` is not a barrier
    /// (P5), the commit watermark would let `e + 1` commit (P4), and there is a reason to
    /// propose in it (N2).
    fn maybe_start_next(&mut self, step: &mut NodeStep) {
        let Some(every) = self.pipelined_every else {
            return;
        };
        let next = self.epoch.next();
        if self.next.is_some()
            || next.0.is_multiple_of(every)
            || !self.current.as_ref().is_some_and(|s| {
                s.has_proposed()
                    && (s.broadcasts_delivered() >= self.config.committee.quorum()
                        || s.is_subset_fixed())
            })
            || self
                .certifier
                .holds(next, self.config.params.certify_window)
        {
            return;
        }
        let queued = self
            .future
            .get(&next)
            .is_some_and(|q| !q.messages.is_empty());
        if !queued && self.buffer.available() == 0 {
            return;
        }
        let mut state = EpochState::new(self.config.clone(), &self.broadcast, next);
        if let Some(queued) = self.future.remove(&next) {
            for (sender, message) in queued.messages {
                let sub = state.handle_message(sender, message);
                absorb_epoch(step, next, sub);
            }
        }
        self.next = Some(state);
        self.propose_in(next, step);
    }

    /// N4/N5: commits every epoch that is ready, in order; then C3: checks the certificates
    /// that formed unless the replica is loaded — its next proposal full — and may defer them.
    fn process(&mut self, step: &mut NodeStep) {
        self.commit_ready(step);
        let config = self.config.clone();
        let loaded = self.buffer.len() >= config.params.proposal_size(config.committee);
        self.certifier.settle(&config, loaded, step);
        self.maybe_start_next(step);
    }

    /// N4/N5: commits every epoch that is ready, in order.
    fn commit_ready(&mut self, step: &mut NodeStep) {
        loop {
            // C7: the watermark of commit certificates. Deferred checks (C3) are done before it
            // holds anything.
            let window = self.config.params.certify_window;
            if self.certifier.holds(self.epoch, window) {
                let config = self.config.clone();
                self.certifier.flush(&config, step);
                if self.certifier.holds(self.epoch, window) {
                    return;
                }
            }
            let f1 = self.config.committee.f_plus_one();
            let config = self.config.clone();
            let chain = self.certifier.chain();
            let check = |c: &CommitCertificate| {
                c.statement.committee == config.committee_digest
                    && c.statement.previous == chain
                    && c.verify_signature(&config.keys.coin)
            };
            let ready = self
                .catch_up
                .take_ready(self.epoch, f1, check, &mut step.faults);
            if let Some((batch, certificate)) = ready {
                // Commitments-only: keep the fragments verified here for the adopted dispersals.
                if let Some(state) = &self.current {
                    let fragments = state.salvage_fragments(&batch);
                    if !fragments.is_empty() {
                        step.output(Output::Stored {
                            epoch: self.epoch,
                            fragments,
                            complete: false,
                        });
                    }
                }
                self.commit_batch(batch, None, certificate, true, step);
                self.advance(step);
                continue;
            }
            let Some(state) = self.current.as_mut() else {
                return;
            };
            if state.is_ready_to_finalize() {
                let window = &self.window;
                let sub = state.finalize(&|k| window.contains(k));
                absorb_epoch(step, self.epoch, sub);
            }
            let Some(outcome) = state.take_outcome() else {
                return;
            };
            if !outcome.stored.is_empty() {
                step.output(Output::Stored {
                    epoch: self.epoch,
                    fragments: outcome.stored.clone(),
                    complete: true,
                });
            }
            let (batch, keys) = self.assemble(outcome);
            self.commit_batch(batch, Some(keys), None, false, step);
            self.advance(step);
        }
    }

    /// N4: builds the batch, suppressing duplicates within it and against recent epochs.
    /// Returns the digests of the transactions it keeps, in batch order, so that committing
    /// does not hash every transaction a second time (BEAT2 keys by label instead: empty).
    fn assemble(&self, outcome: EpochOutcome) -> (Batch, Vec<Digest>) {
        let beat2 = self.config.params.variant == Variant::Beat2;
        let mut seen = std::collections::HashSet::new();
        let mut kept = Vec::new();
        let contributions = outcome
            .contributions
            .into_iter()
            .map(|mut c| {
                if !beat2 && let Content::Transactions(txs) = &mut c.content {
                    txs.retain(|tx| {
                        let key = transaction_digest(tx);
                        let keep = !self.window.contains(&key) && seen.insert(key);
                        if keep {
                            kept.push(key);
                        }
                        keep
                    });
                }
                c
            })
            .collect();
        let batch = Batch {
            epoch: self.epoch,
            contributions,
            ordered_labels: outcome.ordered_labels,
        };
        (batch, kept)
    }

    /// `digests`: the transactions' digests in batch order if the caller has them
    /// ([`Self::assemble`]); an adopted batch's are computed here.
    fn commit_batch(
        &mut self,
        batch: Batch,
        digests: Option<Vec<Digest>>,
        certificate: Option<CommitCertificate>,
        adopted: bool,
        step: &mut NodeStep,
    ) {
        let mut keys: Vec<Digest> = if self.config.params.variant == Variant::Beat2 {
            batch.ordered_labels.clone()
        } else {
            match digests {
                Some(digests) => {
                    debug_assert!(
                        batch
                            .transactions()
                            .map(transaction_digest)
                            .eq(digests.iter().copied())
                    );
                    digests
                }
                None => batch.transactions().map(transaction_digest).collect(),
            }
        };
        // N4, commitments-only delivery: the batch shows no transactions, but a replica knows
        // what its own stored contribution holds. Without this its buffer never drains: it
        // would store the same transactions every epoch and never reach those beyond the first
        // B. Other proposers' transactions stay buffered (readers remove duplicates); the
        // window only affects batch contents through `Content::Transactions`, which this mode
        // never commits, so adding the keys keeps batches identical everywhere.
        let ours = self.config.our_id;
        let params = &self.config.params;
        if params.variant.is_storage()
            && params.delivery == Delivery::CommitmentsOnly
            && let Some(own) = self.in_flight.get(&batch.epoch)
            && batch
                .contributions
                .iter()
                .any(|c| c.proposer == ours && matches!(c.content, Content::Stored(_)))
        {
            keys.extend(own.iter().copied());
        }
        for key in &keys {
            self.buffer.remove(key);
        }
        self.window.insert(batch.epoch, keys);
        let config = self.config.clone();
        let digest = self
            .certifier
            .committed(&config, &batch, certificate, adopted, step);
        // `Committed` goes before the `Certified` the certifier may have output: hosts store a
        // certificate with its batch.
        let at = step
            .outputs
            .iter()
            .position(|o| matches!(o, Output::Certified(c) if c.statement.epoch == batch.epoch))
            .unwrap_or(step.outputs.len());
        step.outputs.insert(at, Output::Committed { batch, digest });
    }

    /// Moves to the next epoch: retire the one left (R1, R2), checkpoint, then enter the next
    /// (the one started early, if pipelining).
    fn advance(&mut self, step: &mut NodeStep) {
        if let Some(state) = self.current.take() {
            self.retired.insert(self.epoch, state.retire());
        }
        if let Some(keys) = self.in_flight.remove(&self.epoch) {
            self.buffer.release(&keys);
        }
        self.epoch = self.epoch.next();
        self.current = self.next.take();
        // Keep the last `catch_up_lag` epochs: a replica further behind than that is brought
        // forward by catch-up (N5), which f+1 replicas that far ahead trigger.
        let keep_from = Epoch(self.epoch.0.saturating_sub(self.config.params.catch_up_lag));
        self.retired = self.retired.split_off(&keep_from);
        self.future = self.future.split_off(&self.epoch);
        let every = self.pipelined_every.unwrap_or(self.checkpoint_every);
        if self.epoch.0.is_multiple_of(every) {
            // P5: a barrier, so nothing of this epoch exists yet, and no proposal is in flight.
            debug_assert!(self.current.is_none() && self.in_flight.is_empty());
            self.pipelined_every = self.want_pipelining.then_some(self.checkpoint_every);
            step.output(Output::Checkpoint(Box::new(self.checkpoint())));
        }
        self.enter_epoch(step);
    }

    /// Announces the epoch, handles the messages queued for it in arrival order, proposes if
    /// there is a reason to, and asks for catch-up if peers are far ahead.
    fn enter_epoch(&mut self, step: &mut NodeStep) {
        // Every replica starts at genesis; resuming a genesis checkpoint announces nothing.
        if self.epoch != Epoch::ZERO {
            step.broadcast(Message::EpochStarted(self.epoch));
        }
        if let Some(queued) = self.future.remove(&self.epoch) {
            let epoch = self.epoch;
            for (sender, message) in queued.messages {
                let sub = self.current_state().handle_message(sender, message);
                absorb_epoch(step, epoch, sub);
            }
        }
        self.maybe_propose(step);
        self.maybe_request_catch_up(step);
    }

    fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            epoch: self.epoch,
            buffer: self.buffer.entries().cloned().collect(),
            window: self.window.epochs(),
            peer_epochs: self.peer_epochs.clone(),
            catch_up: self.catch_up.clone(),
            future: self.future.clone(),
            retired: self
                .retired
                .iter()
                .map(|(e, r)| (*e, r.snapshot()))
                .collect(),
            certifier: self.certifier.clone(),
            pipelined_every: self.pipelined_every,
        }
    }

    /// N5: asks each peer that is far enough ahead, once per own epoch.
    fn maybe_request_catch_up(&mut self, step: &mut NodeStep) {
        self.request_catch_up(step, self.config.params.catch_up_lag, false);
    }

    /// Asks each peer at least `lag` epochs ahead, if there are f+1 of them: once per own epoch,
    /// or `again` (a stall: an earlier answer may have been lost with a link).
    fn request_catch_up(&mut self, step: &mut NodeStep, lag: u64, again: bool) {
        let ahead: Vec<NodeId> = self
            .peer_epochs
            .iter()
            .filter(|(_, e)| e.distance_from(self.epoch) >= lag)
            .map(|(p, _)| *p)
            .collect();
        if ahead.len() < self.config.committee.f_plus_one() {
            return;
        }
        // C7: a replica held by the watermark asks from its oldest uncertified epoch, whose
        // stored certificate the answers carry.
        let from = match self.certifier.oldest_pending() {
            Some(oldest) if again && self.is_held_for_certificates() => oldest,
            _ => self.epoch,
        };
        let count = self.config.params.catch_up_max_epochs;
        for peer in ahead {
            if again || self.catch_up.should_ask(peer, self.epoch) {
                self.catch_up.mark_asked(peer, self.epoch);
                step.send(peer, Message::CatchUpRequest { from, count });
            }
        }
    }
}

/// Wraps an epoch's step into the node's, tagging faults with the epoch.
fn absorb_epoch(step: &mut NodeStep, epoch: Epoch, sub: Step<EpochMessage, ()>) {
    let first_fault = step.faults.len();
    let _: Vec<()> = sub.absorb_into(step, |message| Message::Epoch { epoch, message });
    for fault in &mut step.faults[first_fault..] {
        let Fault { epoch: e, .. } = fault;
        e.get_or_insert(epoch);
    }
}

#[cfg(test)]
mod format_tests {
    use super::*;

    #[derive(Serialize, Deserialize)]
    struct Shared(#[serde(with = "shared_keys")] Vec<(Epoch, EpochKeys)>);

    /// Checkpoints written before the window's keys were shared decode, and new ones encode
    /// byte for byte as they did.
    #[test]
    fn the_shared_window_keeps_the_checkpoint_format() {
        let old: Vec<(Epoch, Vec<Digest>)> = vec![
            (Epoch(3), vec![Digest([1; 32]), Digest([2; 32])]),
            (Epoch(4), vec![]),
        ];
        let bytes = postcard::to_allocvec(&old).unwrap();
        let Shared(window) = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(window.len(), 2);
        assert_eq!(&*window[0].1, old[0].1.as_slice());
        assert_eq!(postcard::to_allocvec(&Shared(window)).unwrap(), bytes);
    }
}
