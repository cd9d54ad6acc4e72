//! The consensus component: owns the protocol core and the store, logs every event before
//! processing it, and turns each [`beat_core::Step`] into effects. Synchronous; the actor shell
//! performs the effects after [`Component::flush`].

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
    sync::Arc,
};

use beat_core::{
    Batch, BeatNode, CommitCertificate, Config, Error as CoreError, Fault, Input, Message,
    NodeStep, Outgoing, Output, Reply, Request, sender_queue::SenderQueue,
};
use beat_crypto::Digest;
use beat_types::{Epoch, NodeId, Transaction};
use bytes::Bytes;

use crate::{
    store::{Store, StoreError, WalEvent},
    wire,
};

/// A batch on its way to watchers: once when committed (`certificate` is `None`), and again
/// when certified.
#[derive(Clone, Debug)]
pub struct CommitEvent {
    /// The batch.
    pub batch: Arc<Batch>,
    /// Its commit certificate, in the certification event.
    pub certificate: Option<CommitCertificate>,
}

/// What processing produced, to perform after the store is flushed.
#[derive(Debug, Default)]
pub struct Effects {
    /// Encoded payloads for the gateway: `(recipient, payload)`.
    pub outbound: Vec<(NodeId, Bytes)>,
    /// Secret-key operations for the keystore.
    pub requests: Vec<Request>,
    /// Newly committed and newly certified batches, in the order the core output them.
    pub committed: Vec<CommitEvent>,
    /// Faults observed.
    pub faults: Vec<Fault>,
    /// Payloads from peers that did not decode.
    pub malformed: Vec<(NodeId, String)>,
    /// Peer messages dropped unlogged because the core would ignore them
    /// ([`BeatNode::is_relevant`]).
    pub irrelevant: u64,
}

impl Effects {
    /// Appends `other`.
    pub fn extend(&mut self, other: Self) {
        self.outbound.extend(other.outbound);
        self.requests.extend(other.requests);
        self.committed.extend(other.committed);
        self.faults.extend(other.faults);
        self.malformed.extend(other.malformed);
        self.irrelevant += other.irrelevant;
    }
}

/// What happened to one submitted transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// New.
    Accepted,
    /// Already pending or recently committed.
    Duplicate,
}

/// Why a submission was refused (nothing of it was accepted).
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// A transaction is invalid.
    #[error("transaction {index}: {reason}")]
    Invalid {
        /// Its position in the request.
        index: usize,
        /// Why.
        reason: String,
    },
    /// Too many transactions in one request.
    #[error("{count} transactions in one request exceed the limit of {max}")]
    TooMany {
        /// Count.
        count: usize,
        /// Limit.
        max: usize,
    },
    /// The client's source has `quota` transactions pending already.
    #[error(
        "this client has {pending} transactions pending, the most one source may have ({quota}); \
         retry once some have committed"
    )]
    QuotaExceeded {
        /// Pending from the source, before this request.
        pending: usize,
        /// The per-source limit.
        quota: usize,
    },
    /// The pending buffer is full.
    #[error("the pending buffer is full ({capacity} transactions); retry later")]
    BufferFull {
        /// Capacity.
        capacity: usize,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The replica stopped before the transactions were durable; they may or may not have been
    /// accepted (resubmitting is safe: duplicates are suppressed).
    #[error("the replica is shutting down")]
    ShuttingDown,
}

/// Tunables of the component.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest accepted payload from a peer.
    pub max_payload_bytes: usize,
    /// Most transactions per submission.
    pub max_submit: usize,
    /// Save a checkpoint (and truncate the WAL) every this many epochs.
    pub checkpoint_every: u64,
    /// Most transactions one client source (IPv4 address or IPv6 /64) may have pending; 0 for
    /// no limit (see [`Quotas`]).
    pub max_pending_per_source: usize,
}

/// Whom a submission is counted against in [`Quotas`]: the authenticated client if the API
/// authenticates clients (a bearer token's name, a client certificate), else its source.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// An IPv4 address or IPv6 /64 ([`beat_telemetry::api::source_of`]).
    Source(IpAddr),
    /// An authenticated client.
    Principal(beat_telemetry::auth::Principal),
}

impl From<IpAddr> for ClientKey {
    fn from(ip: IpAddr) -> Self {
        Self::Source(ip)
    }
}

/// The per-source quota of the pending buffer: one client cannot fill the buffer every client
/// shares. A source's accepted keys are recorded; they stop counting once they leave the buffer
/// (committed, whoever proposed them), which is checked lazily: when the source would exceed
/// its quota, and for all sources once twice the buffer's capacity of keys is recorded. Policy
/// of this replica's API, not of the protocol: nothing of it is logged, and a restart forgets
/// it (in the clients' favour).
#[derive(Debug, Default)]
struct Quotas {
    per_source: HashMap<ClientKey, Vec<Digest>>,
    recorded: usize,
}

impl Quotas {
    /// Drops `source`'s keys that left the buffer; returns how many still count.
    fn compact(&mut self, node: &BeatNode, source: &ClientKey) -> usize {
        let Some(keys) = self.per_source.get_mut(source) else {
            return 0;
        };
        let before = keys.len();
        keys.retain(|k| node.is_buffered(k));
        let left = keys.len();
        self.recorded -= before - left;
        if left == 0 {
            self.per_source.remove(source);
        }
        left
    }

    fn record(&mut self, node: &BeatNode, source: ClientKey, keys: impl Iterator<Item = Digest>) {
        let list = self.per_source.entry(source).or_default();
        let before = list.len();
        list.extend(keys);
        self.recorded += list.len() - before;
        if self.recorded > 2 * node.config().params.buffer_capacity {
            let sources: Vec<ClientKey> = self.per_source.keys().cloned().collect();
            for s in &sources {
                self.compact(node, s);
            }
        }
    }
}

/// The consensus component.
pub struct Component {
    node: BeatNode,
    store: Store,
    queue: SenderQueue,
    limits: Limits,
    /// Messages produced since the last saved checkpoint, re-sent when the gateway link comes
    /// back (the gateway may have lost its queue).
    sent_since_checkpoint: Vec<Outgoing<Message>>,
    committed_transactions: u64,
    faults_observed: u64,
    last_batch_digest: Option<Digest>,
    /// Committed batches awaiting their certificate (at most `certify_window`, the core's
    /// watermark), to hand to watchers with it.
    uncertified: BTreeMap<Epoch, Arc<Batch>>,
    quotas: Quotas,
}

impl Component {
    /// Opens the component: restores the last checkpoint, replays the write-ahead log, and
    /// returns the effects of the replay (messages to re-send, requests to re-issue).
    pub fn open(
        config: Config,
        store: Store,
        limits: Limits,
    ) -> Result<(Self, Effects), anyhow::Error> {
        let seed = store.proposal_seed()?;
        let checkpoint = store.checkpoint()?;
        let queue = SenderQueue::for_params(config.our_id, config.committee, &config.params);
        let (mut node, from) = match checkpoint {
            Some((cp, next)) => (BeatNode::from_checkpoint(config, seed, cp)?, Some(next)),
            None => (BeatNode::new(config, seed)?, None),
        };
        node.set_checkpoint_interval(limits.checkpoint_every);
        let mut component = Self {
            node,
            store,
            queue,
            limits,
            sent_since_checkpoint: Vec::new(),
            committed_transactions: 0,
            faults_observed: 0,
            last_batch_digest: None,
            uncertified: BTreeMap::new(),
            quotas: Quotas::default(),
        };
        let mut fx = Effects::default();
        let mut replayed = 0usize;
        if let Some(next) = from {
            let step = component.node.resume();
            component.absorb(step, &mut fx, next.saturating_sub(1))?;
        }
        for (seq, event) in component.store.wal_from(from.unwrap_or(0))? {
            let step = match event {
                WalEvent::Input(input) => component.node.handle_input(input),
                WalEvent::Message(from, message) => component.node.handle_message(from, message),
                WalEvent::Reply(reply) => component.node.handle_reply(reply),
            };
            replayed += 1;
            match step {
                Ok(step) => component.absorb(step, &mut fx, seq)?,
                // A logged event that fails on replay failed the same way the first time.
                Err(e) => tracing::debug!(error = %e, seq, "replayed event was refused again"),
            }
        }
        // Requests whose replies were lost with the process are asked again; replies already
        // logged were replayed above.
        fx.requests = component.node.pending_requests();
        component.queue.assume_peers_at(component.node.epoch());
        // Replayed outputs were stored before the crash; they are not new.
        fx.committed.clear();
        component.store.flush()?;
        tracing::info!(
            epoch = component.node.epoch().0,
            replayed,
            "consensus state restored"
        );
        Ok((component, fx))
    }

    /// The protocol core (read-only).
    pub fn node(&self) -> &BeatNode {
        &self.node
    }

    /// The store (read-only).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Transactions committed since start.
    pub fn committed_transactions(&self) -> u64 {
        self.committed_transactions
    }

    /// Faults attributed since start.
    pub fn faults_observed(&self) -> u64 {
        self.faults_observed
    }

    /// Digest of the last committed batch.
    pub fn last_batch_digest(&self) -> Option<Digest> {
        self.last_batch_digest
    }

    /// Submits client transactions not attributed to a client source (no quota).
    pub fn submit(
        &mut self,
        txs: Vec<Transaction>,
    ) -> Result<(Vec<(Digest, Admission)>, Effects), SubmitError> {
        self.submit_from(None, txs)
    }

    /// Submits client transactions from `source` (within its quota, [`Quotas`]): validated
    /// all-or-nothing, logged, then proposed.
    pub fn submit_from(
        &mut self,
        source: Option<ClientKey>,
        txs: Vec<Transaction>,
    ) -> Result<(Vec<(Digest, Admission)>, Effects), SubmitError> {
        if txs.len() > self.limits.max_submit {
            return Err(SubmitError::TooMany {
                count: txs.len(),
                max: self.limits.max_submit,
            });
        }
        // Cheap checks and the duplicate check first; only a transaction that is new is
        // verified (in BEAT2 a client signature and a ciphertext proof), and only once: the
        // core takes it as validated. The log holds the new ones as `Input::Submit`, whose
        // replay verifies them again.
        let invalid = |index: usize| {
            move |e: beat_core::buffer::TransactionError| SubmitError::Invalid {
                index,
                reason: e.to_string(),
            }
        };
        let mut receipts: Vec<(Digest, Admission)> = Vec::with_capacity(txs.len());
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
        let quota = self.limits.max_pending_per_source;
        let source = source.filter(|_| quota > 0 && !fresh.is_empty());
        if let Some(source) = &source {
            let recorded = self.quotas.per_source.get(source).map_or(0, Vec::len);
            let pending = if recorded + fresh.len() > quota {
                self.quotas.compact(&self.node, source)
            } else {
                recorded
            };
            if pending + fresh.len() > quota {
                return Err(SubmitError::QuotaExceeded { pending, quota });
            }
        }
        let capacity = self.node.config().params.buffer_capacity;
        if self.node.buffer_len() + fresh.len() > capacity {
            return Err(SubmitError::BufferFull { capacity });
        }
        let mut fx = Effects::default();
        if !fresh.is_empty() {
            let logged = Input::Submit(fresh.iter().map(|(_, tx)| tx.clone()).collect());
            let seq = self.store.append(&WalEvent::Input(logged))?;
            if let Some(source) = source {
                self.quotas
                    .record(&self.node, source, fresh.iter().map(|(k, _)| *k));
            }
            match self.node.submit_validated(fresh) {
                Ok(step) => self.absorb(step, &mut fx, seq)?,
                Err(CoreError::BufferFull { capacity }) => {
                    return Err(SubmitError::BufferFull { capacity });
                }
                Err(e) => {
                    return Err(SubmitError::Invalid {
                        index: 0,
                        reason: e.to_string(),
                    });
                }
            }
        }
        Ok((receipts, fx))
    }

    /// Handles a payload from peer `sender`.
    pub fn inbound(&mut self, sender: NodeId, payload: &[u8]) -> Result<Effects, StoreError> {
        let mut fx = Effects::default();
        let message = match wire::decode(payload, self.limits.max_payload_bytes) {
            Ok(m) => m,
            Err(e) => {
                fx.malformed.push((sender, e.to_string()));
                fx.faults
                    .push(Fault::new(sender, beat_core::FaultKind::MalformedMessage));
                self.faults_observed += 1;
                return Ok(fx);
            }
        };
        let released = self.queue.incoming(sender, &message);
        self.encode_outbound(released, &mut fx);
        // Relevance before the WAL: what the core would ignore is neither logged nor handled,
        // so a peer cannot fill the disk with stale or far-future traffic between checkpoints.
        if !self.node.is_relevant(sender, &message) {
            fx.irrelevant += 1;
            return Ok(fx);
        }
        let seq = self
            .store
            .append(&WalEvent::Message(sender, message.clone()))?;
        match self.node.handle_message(sender, message) {
            Ok(step) => self.absorb(step, &mut fx, seq)?,
            Err(e) => tracing::error!(error = %e, "protocol rejected a message locally"),
        }
        Ok(fx)
    }

    /// Handles a keystore reply.
    pub fn reply(&mut self, reply: Reply) -> Result<Effects, StoreError> {
        let mut fx = Effects::default();
        let seq = self.store.append(&WalEvent::Reply(reply.clone()))?;
        match self.node.handle_reply(reply) {
            Ok(step) => self.absorb(step, &mut fx, seq)?,
            Err(e) => tracing::error!(error = %e, "protocol rejected a reply locally"),
        }
        Ok(fx)
    }

    /// Reports that the replica made no progress for a while (N5' in the core): if f+1 peers
    /// announced later epochs, the event is logged and asks them for the committed batches; if
    /// a committed epoch is not certified, it asks peers for the certificate (C7).
    /// Returns `None` when there is nothing to catch up with (nothing is logged).
    pub fn stalled(&mut self) -> Result<Option<Effects>, StoreError> {
        if self.node.peers_ahead() < self.node.config().committee.f_plus_one()
            && !self.node.awaits_certificates()
        {
            return Ok(None);
        }
        let mut fx = Effects::default();
        let seq = self.store.append(&WalEvent::Input(Input::Stalled))?;
        match self.node.handle_input(Input::Stalled) {
            Ok(step) => self.absorb(step, &mut fx, seq)?,
            Err(e) => tracing::error!(error = %e, "protocol rejected a stall report locally"),
        }
        Ok(Some(fx))
    }

    /// Every message produced since the last checkpoint, for a gateway that reconnected.
    pub fn resend(&mut self) -> Effects {
        let mut fx = Effects::default();
        let messages = self.sent_since_checkpoint.clone();
        let ready = self.queue.outgoing(messages);
        self.encode_outbound(ready, &mut fx);
        fx
    }

    /// Makes everything logged so far durable. Call before performing effects.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.store.flush()
    }

    /// Flushes the store from another thread (the actor's pipelined group commit).
    pub fn flusher(&self) -> crate::store::Flusher {
        self.store.flusher()
    }

    fn encode_outbound(&self, ready: Vec<(NodeId, Message)>, fx: &mut Effects) {
        let mut last: Option<(Message, Bytes)> = None;
        for (to, message) in ready {
            let payload = match &last {
                Some((m, p)) if *m == message => p.clone(),
                _ => {
                    let p = Bytes::from(wire::encode(&message));
                    last = Some((message, p.clone()));
                    p
                }
            };
            fx.outbound.push((to, payload));
        }
    }

    /// Performs the storage part of a step and collects the rest as effects. `seq` is the WAL
    /// position of the event that produced it.
    fn absorb(&mut self, step: NodeStep, fx: &mut Effects, seq: u64) -> Result<(), StoreError> {
        let mut pending = vec![(step, seq)];
        while let Some((step, seq)) = pending.pop() {
            for output in step.outputs {
                match output {
                    Output::Committed(batch) => {
                        self.store.put_batch(&batch)?;
                        self.committed_transactions += batch.transaction_count() as u64;
                        // The certification step hashed it already.
                        self.last_batch_digest = self.node.last_batch_digest();
                        let batch = Arc::new(batch);
                        self.uncertified.insert(batch.epoch, batch.clone());
                        fx.committed.push(CommitEvent {
                            batch,
                            certificate: None,
                        });
                    }
                    Output::Certified(certificate) => {
                        self.store.put_certificate(&certificate)?;
                        let epoch = certificate.statement.epoch;
                        // Committed before the last checkpoint: read it back.
                        let batch = match self.uncertified.remove(&epoch) {
                            Some(b) => Some(b),
                            None => self.store.batch(epoch)?.map(Arc::new),
                        };
                        if let Some(batch) = batch {
                            fx.committed.push(CommitEvent {
                                batch,
                                certificate: Some(certificate),
                            });
                        }
                    }
                    Output::Stored {
                        epoch, fragments, ..
                    } => {
                        self.store.put_fragments(epoch, &fragments)?;
                    }
                    // The core emits one every `checkpoint_every` epochs (set at open).
                    Output::Checkpoint(checkpoint) => {
                        self.store.save_checkpoint(&checkpoint, seq + 1)?;
                        self.sent_since_checkpoint.clear();
                    }
                }
            }
            self.faults_observed += step.faults.len() as u64;
            fx.faults.extend(step.faults);
            for request in step.requests {
                match request {
                    // Served from storage right here: the reply is an event like any other.
                    Request::ReadCommitted { peer, from, count } => {
                        // Half the payload limit leaves room for the message's framing
                        // and for the encodings differing between store and wire.
                        let batches = self.store.batches_within(
                            from,
                            count as usize,
                            self.limits.max_payload_bytes / 2,
                        )?;
                        let reply = Reply::Committed { peer, batches };
                        let seq = self.store.append(&WalEvent::Reply(reply.clone()))?;
                        match self.node.handle_reply(reply) {
                            Ok(next) => pending.push((next, seq)),
                            Err(e) => {
                                tracing::error!(error = %e, "protocol rejected a reply locally")
                            }
                        }
                    }
                    other => fx.requests.push(other),
                }
            }
            self.sent_since_checkpoint
                .extend(step.messages.iter().cloned());
            let ready = self.queue.outgoing(step.messages);
            let mut more = Effects::default();
            self.encode_outbound(ready, &mut more);
            fx.extend(more);
        }
        Ok(())
    }

    /// The replica's epoch.
    pub fn epoch(&self) -> Epoch {
        self.node.epoch()
    }
}
