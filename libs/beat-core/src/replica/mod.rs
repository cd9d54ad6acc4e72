//! The replica host: one [`BeatNode`] over an [`EventLog`], with everything a replica does
//! around the protocol that is not I/O. The consensus service runs it over its segment-file
//! store and the simulator over an in-memory log, so the simulator's crash-restart check
//! (`RST-1`) and its byte-level adversaries exercise the code that ships.
//!
//! The model is raft-rs's `RawNode`/`Ready`: every call takes one event, logs it (write-ahead),
//! hands it to the core, performs the storage part of the resulting step itself and returns
//! the rest as a [`Ready`] — messages to send, keystore requests, committed batches, faults.
//! The host makes the log durable, then performs the `Ready`. Nothing here reads a clock,
//! opens a file or a socket.
//!
//! What it owns:
//! - **The byte boundary.** Peer payloads arrive as bytes and are decoded here
//!   ([`crate::wire::decode`] under the payload limit); a payload that does not decode is a
//!   [`FaultKind::MalformedMessage`] of its sender and changes nothing else.
//! - **Relevance before the log.** A message the core would ignore
//!   ([`BeatNode::is_relevant`]) is dropped unlogged, so a peer cannot fill the disk between
//!   checkpoints with stale or far-future traffic.
//! - **The sender queue** ([`SenderQueue`]), sized from the parameters: its window is
//!   `max_future_epochs`, the recipients' receive window.
//! - **Checkpoints and replay.** The core emits a checkpoint every `checkpoint_every` epochs;
//!   the host saves it with the position replay starts from. [`Replica::open`] restores it,
//!   resumes, replays the log, and re-asks what the replay left unanswered.
//! - **What was sent since the checkpoint**, re-sent when a link comes back (the gateway may
//!   have lost its queue) or a peer's link was reset.
//! - **Admission with receipts**: client transactions are checked all-or-nothing, each gets a
//!   receipt (new or duplicate), only new ones are logged and only they are verified.
//! - **Serving committed history** to peers that catch up (`ReadCommitted`): answered from the
//!   log within the event, the answer logged like any reply.
//!
//! What it leaves to the host: making the log durable before effects, the network, the
//! keystore, timers (the host calls [`Replica::stalled`]), per-client quotas and metrics.

mod log;

use std::{collections::BTreeMap, sync::Arc};

use beat_crypto::Digest;
use beat_types::{Epoch, NodeId, Transaction};

pub use self::log::{Event, EventLog};
use crate::{
    Batch, BeatNode, CommitCertificate, Config, Error, Fault, FaultKind, Input, Message, NodeStep,
    Outgoing, Output, ProposalSeed, Reply, Request, Target,
    buffer::TransactionError,
    sender_queue::SenderQueue,
    wire::{self, WireError},
};

/// How a host runs its replica.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Largest payload accepted from a peer (and twice the largest catch-up answer served).
    pub max_payload_bytes: usize,
    /// Save a checkpoint (and let the log drop what precedes it) every this many epochs.
    pub checkpoint_every: u64,
}

/// A batch on its way to watchers: once when committed (`certificate` is `None`), and again
/// when certified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitEvent {
    /// The batch.
    pub batch: Arc<Batch>,
    /// Its commit certificate, in the certification event.
    pub certificate: Option<CommitCertificate>,
}

/// What one call produced, for the host to perform once the log is durable. `P` is how a
/// message travels: typed as the core emitted it, or encoded by a host that hands bytes on
/// ([`Ready::map_messages`]).
#[derive(Debug)]
pub struct Ready<P = Message> {
    /// Messages to send, per recipient, in order (after the sender queue).
    pub messages: Vec<(NodeId, P)>,
    /// Secret-key operations for the keystore; their replies come back through
    /// [`Replica::reply`].
    pub requests: Vec<Request>,
    /// Newly committed and newly certified batches, in the order the core output them.
    pub committed: Vec<CommitEvent>,
    /// Faults observed, including undecodable payloads.
    pub faults: Vec<Fault>,
    /// Payloads from peers that did not decode, and why.
    pub malformed: Vec<(NodeId, WireError)>,
    /// Peer messages dropped unlogged because the core would ignore them.
    pub irrelevant: u64,
    /// Logged events the core refused. A refused event changes nothing, and it is refused
    /// again on replay; it signals a bug, not a fault of a peer.
    pub refused: Vec<Error>,
}

impl<P> Default for Ready<P> {
    fn default() -> Self {
        Self {
            messages: Vec::new(),
            requests: Vec::new(),
            committed: Vec::new(),
            faults: Vec::new(),
            malformed: Vec::new(),
            irrelevant: 0,
            refused: Vec::new(),
        }
    }
}

impl<P> Ready<P> {
    /// Appends `other`.
    pub fn extend(&mut self, other: Self) {
        self.messages.extend(other.messages);
        self.requests.extend(other.requests);
        self.committed.extend(other.committed);
        self.faults.extend(other.faults);
        self.malformed.extend(other.malformed);
        self.irrelevant += other.irrelevant;
        self.refused.extend(other.refused);
    }

    /// The same, with the messages converted by `convert` (a host encoding them for its
    /// transport).
    pub fn map_messages<Q>(
        self,
        convert: impl FnOnce(Vec<(NodeId, P)>) -> Vec<(NodeId, Q)>,
    ) -> Ready<Q> {
        Ready {
            messages: convert(self.messages),
            requests: self.requests,
            committed: self.committed,
            faults: self.faults,
            malformed: self.malformed,
            irrelevant: self.irrelevant,
            refused: self.refused,
        }
    }
}

/// What a restart recovered.
#[derive(Debug, Default)]
pub struct Recovery {
    /// What to perform now: the replay's messages through a fresh sender queue, and the
    /// keystore requests whose replies were lost with the process. Replayed outputs were
    /// stored before the crash and are not reported again.
    pub ready: Ready,
    /// Every message the replay produced, as the core emitted it (before the sender queue). A
    /// faithful replay produces only messages the replica had sent before (`RST-1`).
    pub replayed: Vec<Outgoing<Message>>,
    /// Events replayed from the log.
    pub events: usize,
    /// Replayed events the core refused (as it did the first time).
    pub refused: usize,
}

/// What happened to one submitted transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// New.
    Accepted,
    /// Already pending or recently committed.
    Duplicate,
}

/// One receipt per submitted transaction, in order: its key and what became of it.
pub type Receipts = Vec<(Digest, Admission)>;

/// Why a submission was refused. Nothing of it was accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AdmissionError {
    /// A transaction is invalid.
    #[error("transaction {index}: {reason}")]
    Invalid {
        /// Its position in the submission.
        index: usize,
        /// Why.
        reason: String,
    },
    /// Too many transactions in one submission.
    #[error("{count} transactions in one request exceed the limit of {max}")]
    TooMany {
        /// Count.
        count: usize,
        /// Limit.
        max: usize,
    },
    /// The pending buffer cannot take the new transactions.
    #[error("the pending buffer is full ({capacity} transactions); retry later")]
    BufferFull {
        /// Capacity.
        capacity: usize,
    },
}

/// A submission checked by [`Replica::admit`]: every transaction valid, the new ones verified
/// and fitting in the buffer. Hand it to [`Replica::submit`] before anything else reaches the
/// replica (the check holds for the replica's state at the time).
#[derive(Debug)]
pub struct Submission {
    receipts: Receipts,
    fresh: Vec<(Digest, Transaction)>,
}

impl Submission {
    /// The keys of the transactions that are new.
    pub fn fresh_keys(&self) -> impl Iterator<Item = Digest> + '_ {
        self.fresh.iter().map(|(k, _)| *k)
    }

    /// How many transactions are new.
    pub fn fresh_len(&self) -> usize {
        self.fresh.len()
    }
}

/// Why a replica could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError<E: std::error::Error + 'static> {
    /// The log failed.
    #[error(transparent)]
    Log(E),
    /// The configuration or the checkpoint is unusable.
    #[error(transparent)]
    Core(#[from] Error),
}

/// One replica: the protocol core, its log, its sender queue.
pub struct Replica<L> {
    node: BeatNode,
    log: L,
    queue: SenderQueue,
    settings: Settings,
    /// Messages produced since the last saved checkpoint (by the event that produced it and
    /// every event since), re-sent when a link comes back.
    sent_since_checkpoint: Vec<Outgoing<Message>>,
    /// Committed batches awaiting their certificate (at most `certify_window`, the core's
    /// watermark), to report with it.
    uncertified: BTreeMap<Epoch, Arc<Batch>>,
}

impl<L: EventLog> Replica<L> {
    /// Opens a replica over `log`: restores its last checkpoint (or starts at genesis),
    /// resumes, replays the logged events, and returns what the replay leaves to do. `seed`
    /// must be the one the replica always used: a replayed proposal must equal the one sent.
    pub fn open(
        config: Config,
        seed: ProposalSeed,
        log: L,
        settings: Settings,
    ) -> Result<(Self, Recovery), OpenError<L::Error>> {
        let checkpoint = log.checkpoint().map_err(OpenError::Log)?;
        let queue = SenderQueue::for_params(config.our_id, config.committee, &config.params);
        let (mut node, from) = match checkpoint {
            Some((cp, next)) => (BeatNode::from_checkpoint(config, seed, cp)?, Some(next)),
            None => (BeatNode::new(config, seed)?, None),
        };
        node.set_checkpoint_interval(settings.checkpoint_every);
        let mut replica = Self {
            node,
            log,
            queue,
            settings,
            sent_since_checkpoint: Vec::new(),
            uncertified: BTreeMap::new(),
        };
        let mut recovery = Recovery::default();
        if let Some(next) = from {
            let step = replica.node.resume();
            replica
                .replay(step, next.saturating_sub(1), &mut recovery)
                .map_err(OpenError::Log)?;
        }
        let events = replica
            .log
            .events_from(from.unwrap_or(0))
            .map_err(OpenError::Log)?;
        for (seq, event) in events {
            recovery.events += 1;
            match replica.apply(event) {
                Ok(step) => replica
                    .replay(step, seq, &mut recovery)
                    .map_err(OpenError::Log)?,
                // A logged event the core refuses was refused the same way the first time.
                Err(_) => recovery.refused += 1,
            }
        }
        // The queue's knowledge of peers died with the process: assume they are where this
        // replica is (SenderQueue::assume_peers_at), then send what the replay produced.
        replica.queue.assume_peers_at(replica.node.epoch());
        recovery.ready.messages = replica.queue.outgoing(recovery.replayed.clone());
        // Keystore calls in progress were lost; replies already logged were replayed above.
        recovery.ready.requests = replica.node.pending_requests();
        Ok((replica, recovery))
    }

    /// The protocol core (read-only).
    pub fn node(&self) -> &BeatNode {
        &self.node
    }

    /// The log (read-only).
    pub fn log(&self) -> &L {
        &self.log
    }

    /// The log, for a host that needs to act on it directly (durability, observation; the
    /// simulator takes it out to rebuild the replica over it after a crash).
    pub fn log_mut(&mut self) -> &mut L {
        &mut self.log
    }

    /// The replica's epoch.
    pub fn epoch(&self) -> Epoch {
        self.node.epoch()
    }

    /// Messages produced since the last checkpoint, as the core emitted them.
    pub fn sent_since_checkpoint(&self) -> &[Outgoing<Message>] {
        &self.sent_since_checkpoint
    }

    /// Checks a client submission of at most `max` transactions, all-or-nothing: each
    /// transaction gets a key; cheap checks and the duplicate check come first, and only a
    /// transaction that is new is verified (in BEAT2 a client signature and a ciphertext
    /// proof), once: the core takes it as validated. The new ones must fit in the buffer.
    pub fn admit(&self, txs: Vec<Transaction>, max: usize) -> Result<Submission, AdmissionError> {
        if txs.len() > max {
            return Err(AdmissionError::TooMany {
                count: txs.len(),
                max,
            });
        }
        let invalid = |index: usize| {
            move |e: TransactionError| AdmissionError::Invalid {
                index,
                reason: e.to_string(),
            }
        };
        let mut receipts = Vec::with_capacity(txs.len());
        let mut fresh = Vec::new();
        let mut seen = std::collections::HashSet::with_capacity(txs.len());
        for (index, tx) in txs.into_iter().enumerate() {
            let key = self.node.transaction_key(&tx).map_err(invalid(index))?;
            if self.node.is_known(&key) || !seen.insert(key) {
                receipts.push((key, Admission::Duplicate));
                continue;
            }
            self.node.verify_transaction(&tx).map_err(invalid(index))?;
            receipts.push((key, Admission::Accepted));
            fresh.push((key, tx));
        }
        let capacity = self.node.config().params.buffer_capacity;
        if self.node.buffer_len() + fresh.len() > capacity {
            return Err(AdmissionError::BufferFull { capacity });
        }
        Ok(Submission { receipts, fresh })
    }

    /// Logs the new transactions of an admitted submission (as `Input::Submit`, whose replay
    /// verifies them again) and proposes them. Returns the receipts.
    pub fn submit(&mut self, submission: Submission) -> Result<(Receipts, Ready), L::Error> {
        let Submission { receipts, fresh } = submission;
        let mut ready = Ready::default();
        if fresh.is_empty() {
            return Ok((receipts, ready));
        }
        let logged = Input::Submit(fresh.iter().map(|(_, tx)| tx.clone()).collect());
        let seq = self.log.append(&Event::Input(logged))?;
        match self.node.submit_validated(fresh) {
            Ok(step) => self.absorb(step, seq, &mut ready)?,
            // Admission checked the buffer; only a submission held across other events fails.
            Err(e) => ready.refused.push(e),
        }
        Ok((receipts, ready))
    }

    /// Handles a payload from peer `sender`.
    pub fn inbound(&mut self, sender: NodeId, payload: &[u8]) -> Result<Ready, L::Error> {
        let mut ready = Ready::default();
        let message = match wire::decode(payload, self.settings.max_payload_bytes) {
            Ok(m) => m,
            Err(e) => {
                ready.malformed.push((sender, e));
                ready
                    .faults
                    .push(Fault::new(sender, FaultKind::MalformedMessage));
                return Ok(ready);
            }
        };
        // An `EpochStarted` may release what the queue held back for the sender.
        ready.messages = self.queue.incoming(sender, &message);
        if !self.node.is_relevant(sender, &message) {
            ready.irrelevant += 1;
            return Ok(ready);
        }
        let seq = self.log.append(&Event::Message(sender, message.clone()))?;
        match self.node.handle_message(sender, message) {
            Ok(step) => self.absorb(step, seq, &mut ready)?,
            Err(e) => ready.refused.push(e),
        }
        Ok(ready)
    }

    /// Handles a keystore reply.
    pub fn reply(&mut self, reply: Reply) -> Result<Ready, L::Error> {
        self.logged(Event::Reply(reply))
    }

    /// Reports that the replica made no progress for a while (N5' in the core): if f+1 peers
    /// announced later epochs, the event is logged and asks them for the committed batches; if
    /// a committed epoch is not certified, it asks peers for the certificate (C7). `None` when
    /// there is nothing to catch up with (nothing is logged).
    pub fn stalled(&mut self) -> Result<Option<Ready>, L::Error> {
        if self.node.peers_ahead() < self.node.config().committee.f_plus_one()
            && !self.node.awaits_certificates()
        {
            return Ok(None);
        }
        self.logged(Event::Input(Input::Stalled)).map(Some)
    }

    /// Every message produced since the last checkpoint, again: to every peer (a gateway that
    /// reconnected) or to one (its link was reset), through the sender queue.
    pub fn resend(&mut self, to: Option<NodeId>) -> Ready {
        let again: Vec<Outgoing<Message>> = match to {
            None => self.sent_since_checkpoint.clone(),
            Some(peer) => self
                .sent_since_checkpoint
                .iter()
                .filter(|o| matches!(o.target, Target::All) || o.target == Target::Node(peer))
                .map(|o| Outgoing {
                    target: Target::Node(peer),
                    message: o.message.clone(),
                })
                .collect(),
        };
        Ready {
            messages: self.queue.outgoing(again),
            ..Ready::default()
        }
    }

    /// Logs `event`, then processes it.
    fn logged(&mut self, event: Event) -> Result<Ready, L::Error> {
        let mut ready = Ready::default();
        let seq = self.log.append(&event)?;
        match self.apply(event) {
            Ok(step) => self.absorb(step, seq, &mut ready)?,
            Err(e) => ready.refused.push(e),
        }
        Ok(ready)
    }

    fn apply(&mut self, event: Event) -> Result<NodeStep, Error> {
        match event {
            Event::Input(input) => self.node.handle_input(input),
            Event::Message(from, message) => self.node.handle_message(from, message),
            Event::Reply(reply) => self.node.handle_reply(reply),
        }
    }

    /// Stores a step's outputs. `seq` is the log position of the event that produced it; a
    /// checkpoint it carries is saved with replay starting after that event.
    fn store_outputs(
        &mut self,
        outputs: Vec<Output>,
        seq: u64,
        committed: &mut Vec<CommitEvent>,
    ) -> Result<(), L::Error> {
        for output in outputs {
            match output {
                Output::Committed(batch) => {
                    self.log.put_batch(&batch)?;
                    let batch = Arc::new(batch);
                    self.uncertified.insert(batch.epoch, batch.clone());
                    committed.push(CommitEvent {
                        batch,
                        certificate: None,
                    });
                }
                Output::Certified(certificate) => {
                    self.log.put_certificate(&certificate)?;
                    let epoch = certificate.statement.epoch;
                    // Committed before the last restart: read it back.
                    let batch = match self.uncertified.remove(&epoch) {
                        Some(b) => Some(b),
                        None => self.log.batch(epoch)?.map(Arc::new),
                    };
                    if let Some(batch) = batch {
                        committed.push(CommitEvent {
                            batch,
                            certificate: Some(certificate),
                        });
                    }
                }
                Output::Stored {
                    epoch,
                    fragments,
                    complete,
                } => self.log.put_fragments(epoch, &fragments, complete)?,
                // The core emits one every `checkpoint_every` epochs (set at open).
                Output::Checkpoint(checkpoint) => {
                    self.log.save_checkpoint(&checkpoint, seq + 1)?;
                    self.sent_since_checkpoint.clear();
                }
            }
        }
        Ok(())
    }

    /// Performs the storage part of a step and collects the rest into `ready`. Committed
    /// history a peer asked for is served from the log right here, and the answer is an event
    /// like any other (logged, then handled).
    fn absorb(&mut self, step: NodeStep, seq: u64, ready: &mut Ready) -> Result<(), L::Error> {
        let mut pending = vec![(step, seq)];
        while let Some((step, seq)) = pending.pop() {
            self.store_outputs(step.outputs, seq, &mut ready.committed)?;
            ready.faults.extend(step.faults);
            for request in step.requests {
                match request {
                    Request::ReadCommitted { peer, from, count } => {
                        // Half the payload limit leaves room for the message's framing and
                        // for the encodings differing between log and wire.
                        let batches = self.log.batches_within(
                            from,
                            count as usize,
                            self.settings.max_payload_bytes / 2,
                        )?;
                        let reply = Reply::Committed { peer, batches };
                        let seq = self.log.append(&Event::Reply(reply.clone()))?;
                        match self.node.handle_reply(reply) {
                            Ok(next) => pending.push((next, seq)),
                            Err(e) => ready.refused.push(e),
                        }
                    }
                    other => ready.requests.push(other),
                }
            }
            self.sent_since_checkpoint
                .extend(step.messages.iter().cloned());
            ready.messages.extend(self.queue.outgoing(step.messages));
        }
        Ok(())
    }

    /// The replay counterpart of [`Self::absorb`]: storage is written again (idempotently),
    /// messages are collected to send once the replay is over, requests are not performed
    /// (a logged reply follows its request in the log; the rest are re-asked at the end).
    fn replay(
        &mut self,
        step: NodeStep,
        seq: u64,
        recovery: &mut Recovery,
    ) -> Result<(), L::Error> {
        let mut committed = Vec::new();
        self.store_outputs(step.outputs, seq, &mut committed)?;
        self.sent_since_checkpoint
            .extend(step.messages.iter().cloned());
        recovery.replayed.extend(step.messages);
        Ok(())
    }
}
