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
mod memory;

use std::{collections::BTreeMap, sync::Arc};

use beat_crypto::Digest;
use beat_types::{Epoch, NodeId, Transaction};

pub use self::{
    log::{Event, EventLog},
    memory::MemoryLog,
};
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
    /// Run pipelined epochs ([`BeatNode::set_pipelining`]): adopted at the first checkpoint
    /// after opening, since the replay must run as the replica ran before.
    pub pipelining: bool,
}

/// A batch on its way to watchers: once when committed (`certificate` is `None`), and again
/// when certified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitEvent {
    /// The batch.
    pub batch: Arc<Batch>,
    /// Its [`Batch::digest`], hashed once by the certification step.
    pub digest: Digest,
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
        mut log: L,
        settings: Settings,
    ) -> Result<(Self, Recovery), OpenError<L::Error>> {
        let checkpoint = log.checkpoint().map_err(OpenError::Log)?;
        let queue = SenderQueue::for_params(config.our_id, config.committee, &config.params);
        let (mut node, from) = match checkpoint {
            Some((cp, next)) => (BeatNode::from_checkpoint(config, seed, cp)?, Some(next)),
            None => (BeatNode::new(config, seed)?, None),
        };
        node.set_checkpoint_interval(settings.checkpoint_every);
        let mut from = from;
        if from.is_none() && log.events_from(0).map_err(OpenError::Log)?.is_empty() {
            // A new replica: its pipelining setting is recorded before its first event.
            node.set_pipelining(settings.pipelining);
            if let Some(genesis) = node.genesis_checkpoint() {
                // Durable before any event: a replica whose WAL holds events must find the
                // checkpoint they follow.
                log.save_checkpoint(genesis, 0).map_err(OpenError::Log)?;
                log.finish_checkpoint().map_err(OpenError::Log)?;
                from = Some(0);
            }
        }
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
        // Only now: the replay ran under the checkpoint's setting, as before the crash.
        replica.node.set_pipelining(settings.pipelining);
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
                Output::Committed { batch, digest } => {
                    self.log.put_batch(&batch)?;
                    let batch = Arc::new(batch);
                    self.uncertified.insert(batch.epoch, batch.clone());
                    committed.push(CommitEvent {
                        batch,
                        digest,
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
                            // The certifier signed its own statement over this batch (C1).
                            digest: certificate.statement.batch,
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
                    self.log.save_checkpoint(*checkpoint, seq + 1)?;
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

#[cfg(test)]
mod tests {
    use std::{
        collections::{BTreeMap, VecDeque},
        sync::Arc,
    };

    use beat_crypto::{bls, tdh2};
    use beat_types::{Committee, Epoch, NodeId, Transaction, Variant};
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::{Params, PublicKeys};

    /// One honest replica with its keystore.
    struct Peer {
        replica: Replica<MemoryLog>,
        config: Config,
        seed: ProposalSeed,
        coin: bls::SecretKeyShare,
        decryption: tdh2::SecretKeyShare,
    }

    impl Peer {
        /// Reopens the replica over a copy of its log, as after a crash.
        fn reopen(&self) -> (Replica<MemoryLog>, Recovery) {
            let log = self.replica.log().clone();
            reopen(&self.config, &self.seed, log, self.replica.settings)
        }

        fn serve(&self, request: Request) -> Reply {
            match request {
                Request::CoinShare(id) => Reply::CoinShare {
                    id,
                    share: self.coin.sign(&id.message()),
                },
                Request::DecryptionShares { epoch, items } => Reply::DecryptionShares {
                    epoch,
                    shares: items
                        .iter()
                        .filter_map(|item| {
                            self.decryption
                                .header_decryption_share(
                                    &self.config.keys.encryption,
                                    &item.header,
                                    &item.expected_label,
                                )
                                .ok()
                                .map(|share| (item.slot, share))
                        })
                        .collect(),
                },
                Request::CommitShare(statement) => Reply::CommitShare {
                    epoch: statement.epoch,
                    share: self.coin.sign(&statement.message()),
                },
                Request::ReadCommitted { .. } => panic!("the replica host serves ReadCommitted"),
            }
        }
    }

    fn reopen(
        config: &Config,
        seed: &ProposalSeed,
        log: MemoryLog,
        settings: Settings,
    ) -> (Replica<MemoryLog>, Recovery) {
        Replica::open(config.clone(), seed.clone(), log, settings).unwrap()
    }

    /// n = 4 honest replicas over in-memory logs, keystores answering at once, payloads
    /// delivered in FIFO order: deterministic for a seed.
    struct Net {
        peers: BTreeMap<NodeId, Peer>,
        in_flight: VecDeque<(NodeId, NodeId, Vec<u8>)>,
    }

    const MAX_PAYLOAD_BYTES: usize = 1 << 20;

    impl Net {
        fn new(seed: u64, checkpoint_every: u64) -> Self {
            let n = 4;
            let committee = Committee::new(n).unwrap();
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            let (coin_pk, coin_sk) = bls::deal(n, committee.f(), &mut rng).unwrap();
            let (enc_pk, enc_sk) = tdh2::deal(n, committee.f(), &mut rng).unwrap();
            let keys = PublicKeys {
                coin: Arc::new(coin_pk),
                encryption: Arc::new(enc_pk),
            };
            let params = Params {
                variant: Variant::Beat0,
                batch_size: 4,
                ..Params::default()
            };
            let settings = Settings {
                max_payload_bytes: MAX_PAYLOAD_BYTES,
                checkpoint_every,
                pipelining: seed % 2 == 1,
            };
            let peers = coin_sk
                .into_iter()
                .zip(enc_sk)
                .map(|(coin, decryption)| {
                    let id = coin.holder();
                    let config = Config {
                        our_id: id,
                        committee,
                        committee_digest: Digest([7; 32]),
                        keys: keys.clone(),
                        params: params.clone(),
                    };
                    let mut bytes = [0u8; 32];
                    bytes[..8].copy_from_slice(&(seed * 1000 + u64::from(id.0)).to_le_bytes());
                    let seed = ProposalSeed(bytes);
                    let (replica, _) = reopen(&config, &seed, MemoryLog::default(), settings);
                    let peer = Peer {
                        replica,
                        config,
                        seed,
                        coin,
                        decryption,
                    };
                    (id, peer)
                })
                .collect();
            Self {
                peers,
                in_flight: VecDeque::new(),
            }
        }

        fn peer(&mut self, id: NodeId) -> &mut Peer {
            self.peers.get_mut(&id).unwrap()
        }

        /// Performs what replica `id` returned: sends its messages, answers its keystore
        /// requests (and performs what the answers produce).
        fn perform(&mut self, id: NodeId, ready: Ready) {
            assert!(ready.faults.is_empty(), "replica {id}: {:?}", ready.faults);
            assert!(
                ready.refused.is_empty(),
                "replica {id}: {:?}",
                ready.refused
            );
            for (to, message) in ready.messages {
                self.in_flight.push_back((id, to, wire::encode(&message)));
            }
            for request in ready.requests {
                let reply = self.peers[&id].serve(request);
                let next = self.peer(id).replica.reply(reply).unwrap();
                self.perform(id, next);
            }
        }

        /// Gives each replica its own `count` transactions.
        fn submit_all(&mut self, count: usize) {
            let ids: Vec<NodeId> = self.peers.keys().copied().collect();
            for id in ids {
                let txs = (0..count)
                    .map(|i| Transaction::new(format!("tx-{id}-{i:04}").into_bytes()))
                    .collect();
                let replica = &mut self.peer(id).replica;
                let submission = replica.admit(txs, usize::MAX).unwrap();
                let (_, ready) = replica.submit(submission).unwrap();
                self.perform(id, ready);
            }
        }

        /// Delivers the oldest payload in flight; `false` when there is none.
        fn deliver(&mut self) -> bool {
            let Some((from, to, payload)) = self.in_flight.pop_front() else {
                return false;
            };
            let ready = self.peer(to).replica.inbound(from, &payload).unwrap();
            self.perform(to, ready);
            true
        }

        /// Delivers until `done` holds or nothing is in flight.
        fn run_until(&mut self, mut done: impl FnMut(&Self) -> bool) {
            for _ in 0..1_000_000 {
                if done(self) || !self.deliver() {
                    return;
                }
            }
            panic!("no end after a million deliveries");
        }
    }

    fn is_catch_up_response(message: &Message) -> bool {
        matches!(message, Message::CatchUpResponse(_))
    }

    /// Guards against replay serving committed history again (the consensus component before
    /// the replica host moved to beat-core): a `ReadCommitted` request found in a replayed step
    /// was answered again, appending a second `Reply::Committed` to the log at every restart,
    /// and the core then handled the request's reply twice (two catch-up answers re-sent). The
    /// logged reply must be replayed in order and nothing appended while opening.
    #[test]
    fn replay_does_not_serve_committed_history_again() {
        let mut net = Net::new(11, 3);
        net.submit_all(3);
        net.run_until(|_| false);
        let server = NodeId(0);
        let asker = NodeId(3);
        let epoch = net.peers[&server].replica.epoch();
        assert!(epoch >= Epoch(2), "committed too little to serve: {epoch}");

        // A lagging peer asks for the first two epochs: the host reads them from its log and
        // logs the answer after the request.
        let before = net.peers[&server].replica.log().appended();
        let request = Message::CatchUpRequest {
            from: Epoch(0),
            count: 2,
        };
        let ready = net
            .peer(server)
            .replica
            .inbound(asker, &wire::encode(&request))
            .unwrap();
        let answers: Vec<&Message> = ready
            .messages
            .iter()
            .filter(|(to, m)| *to == asker && is_catch_up_response(m))
            .map(|(_, m)| m)
            .collect();
        assert!(
            matches!(answers[..], [Message::CatchUpResponse(b)] if b.len() == 2),
            "one answer with both epochs: {answers:?}"
        );
        let logged = net.peers[&server].replica.log().clone();
        assert_eq!(logged.appended(), before + 2, "the request, then its reply");
        assert!(matches!(
            logged.events().last(),
            Some((_, Event::Reply(Reply::Committed { peer, .. }))) if *peer == asker
        ));

        // Restart twice over the same log.
        let peer = &net.peers[&server];
        let (first, first_recovery) = reopen(
            &peer.config,
            &peer.seed,
            logged.clone(),
            peer.replica.settings,
        );
        let (second, second_recovery) = reopen(
            &peer.config,
            &peer.seed,
            first.log().clone(),
            peer.replica.settings,
        );
        for (replica, recovery) in [(&first, &first_recovery), (&second, &second_recovery)] {
            assert_eq!(
                replica.log().appended(),
                logged.appended(),
                "opening appended to the log"
            );
            assert_eq!(replica.log().events(), logged.events());
            assert!(
                !recovery
                    .ready
                    .requests
                    .iter()
                    .any(|r| matches!(r, Request::ReadCommitted { .. })),
                "ReadCommitted asked again: {:?}",
                recovery.ready.requests
            );
            let replayed_answers = recovery
                .replayed
                .iter()
                .filter(|o| o.target == Target::Node(asker) && is_catch_up_response(&o.message))
                .count();
            assert_eq!(replayed_answers, 1, "the logged reply is handled once");
            assert_eq!(replica.epoch(), epoch);
            assert_eq!(
                replica.node().chain_link(),
                peer.replica.node().chain_link()
            );
            assert_eq!(recovery.refused, 0);
        }
        assert_eq!(first_recovery.events, second_recovery.events);
        assert_eq!(first_recovery.replayed, second_recovery.replayed);
    }

    /// P5: a replica that crashes with the next epoch started early replays exactly what it
    /// sent — also when it is reopened with pipelining switched off, since the checkpoint's
    /// mode governs until the next checkpoint — and then adopts the new setting there.
    #[test]
    fn a_pipelined_replica_replays_what_it_sent_whatever_it_is_reopened_with() {
        let mut net = Net::new(13, 3);
        assert!(net.peers[&NodeId(0)].replica.settings.pipelining);
        net.submit_all(40);
        let crashed = NodeId(0);
        net.run_until(|net| {
            let node = net.peers[&crashed].replica.node();
            node.epoch() >= Epoch(4) && node.started_next().is_some()
        });
        let peer = &net.peers[&crashed];
        let early = peer
            .replica
            .node()
            .started_next()
            .expect("crashed with e+1 under way");
        assert_eq!(peer.replica.node().pipelined_every(), Some(3));
        let sent = peer.replica.sent_since_checkpoint().to_vec();
        assert!(sent.iter().any(|o| o.message.epoch() == Some(early)));
        let (config, seed, log, base) = (
            peer.config.clone(),
            peer.seed.clone(),
            peer.replica.log().clone(),
            peer.replica.settings,
        );
        for pipelining in [true, false] {
            let settings = Settings { pipelining, ..base };
            let (replica, recovery) = reopen(&config, &seed, log.clone(), settings);
            assert_eq!(recovery.refused, 0);
            assert_eq!(replica.node().started_next(), Some(early));
            assert_eq!(
                replica.node().pipelined_every(),
                Some(3),
                "until the next checkpoint"
            );
            assert_eq!(
                recovery.replayed, sent,
                "replay (reopened with pipelining = {pipelining}) sent something else"
            );
            if pipelining {
                continue;
            }
            // Run the reopened replica on with the others: at its next checkpoint it adopts
            // the setting it was reopened with.
            let barrier = Epoch((replica.epoch().0 / 3 + 1) * 3);
            net.peer(crashed).replica = replica;
            net.perform(crashed, recovery.ready);
            net.run_until(|net| net.peers[&crashed].replica.epoch() > barrier);
            let node = net.peers[&crashed].replica.node();
            assert!(node.epoch() > barrier, "stopped at {}", node.epoch());
            assert_eq!(node.pipelined_every(), None);
            assert_eq!(node.started_next(), None);
            break;
        }
    }

    /// Guards against the replayed messages going through a sender queue that still assumes
    /// every peer at epoch 0 (the consensus component before the replica host moved to
    /// beat-core called `assume_peers_at` only after queueing them): every message for an
    /// epoch beyond `max_future_epochs` was held back until the peer announced a later
    /// epoch, which it might be waiting on this replica to reach. After a restart the
    /// replica must re-send its current epoch's messages to every peer at once.
    #[test]
    fn replayed_messages_beyond_the_window_are_sent_after_a_restart() {
        // A checkpoint every 5 epochs: the replica restarts from epoch 5, beyond the window
        // (3) seen from epoch 0, and replays into epoch 7.
        let mut net = Net::new(12, 5);
        let window = net.peers[&NodeId(0)].config.params.max_future_epochs;
        let target = Epoch(7);
        net.submit_all(40);
        let crashed = NodeId(0);
        net.run_until(|net| net.peers[&crashed].replica.epoch() >= target);
        let peer = &net.peers[&crashed];
        assert_eq!(peer.replica.epoch(), target);
        let (checkpoint, _) = peer.replica.log().checkpoint().unwrap().unwrap();
        assert!(
            checkpoint.epoch.0 > window,
            "replay must start beyond the window"
        );
        let current = |m: &Message| m.epoch() == Some(target);
        assert!(
            peer.replica
                .sent_since_checkpoint()
                .iter()
                .any(|o| o.target == Target::All && current(&o.message)),
            "the replica broadcast in its current epoch before the crash"
        );

        let (replica, recovery) = peer.reopen();
        assert_eq!(replica.epoch(), target);
        assert_eq!(recovery.refused, 0);
        assert_eq!(replica.queue.deferred_len(), 0, "messages held back");
        // Every current-epoch message the replay produced goes out to each of its
        // recipients, in order.
        let others: Vec<NodeId> = peer
            .config
            .committee
            .members()
            .filter(|p| *p != crashed)
            .collect();
        let mut expected = Vec::new();
        for out in recovery.replayed.iter().filter(|o| current(&o.message)) {
            match out.target {
                Target::All => expected.extend(others.iter().map(|p| (*p, out.message.clone()))),
                Target::Node(p) => expected.push((p, out.message.clone())),
            }
        }
        let sent: Vec<(NodeId, Message)> = recovery
            .ready
            .messages
            .iter()
            .filter(|(_, m)| current(m))
            .cloned()
            .collect();
        assert_eq!(
            sent, expected,
            "the replay's epoch-{target} messages, to each recipient"
        );
        for p in &others {
            assert!(
                sent.iter().any(|(to, _)| to == p),
                "nothing of epoch {target} re-sent to {p}"
            );
        }
    }
}
