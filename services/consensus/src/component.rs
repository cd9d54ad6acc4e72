//! The consensus component: the replica host of the core ring ([`beat_core::replica`]) over
//! this service's segment-file store, plus what is policy of this service rather than of the
//! protocol: per-client quotas, counters, and the encoded payloads the gateway carries.
//! Synchronous; the actor shell performs the effects after [`Component::flush`].

use std::{collections::HashMap, net::IpAddr};

use beat_core::{
    BeatNode, Config, Message, Reply,
    replica::{AdmissionError, Ready, Replica, Settings},
};
use beat_crypto::Digest;
use beat_types::{Epoch, NodeId, Transaction};
use bytes::Bytes;

use crate::{
    store::{Store, StoreError},
    wire,
};

pub use beat_core::replica::{Admission, CommitEvent};

/// What processing produced, to perform after the store is flushed: the replica host's
/// [`Ready`] with every message encoded for the gateway (`(recipient, payload)`).
pub type Effects = Ready<Bytes>;

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

impl From<AdmissionError> for SubmitError {
    fn from(e: AdmissionError) -> Self {
        match e {
            AdmissionError::Invalid { index, reason } => Self::Invalid { index, reason },
            AdmissionError::TooMany { count, max } => Self::TooMany { count, max },
            AdmissionError::BufferFull { capacity } => Self::BufferFull { capacity },
        }
    }
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
    /// Run pipelined epochs (module `beat_core::node`, P1–P5).
    pub pipelining: bool,
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

/// The consensus component: the replica host ([`Replica`]) over the segment-file store, with
/// this service's per-client quotas and counters.
pub struct Component {
    replica: Replica<Store>,
    limits: Limits,
    committed_transactions: u64,
    faults_observed: u64,
    last_batch_digest: Option<Digest>,
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
        let settings = Settings {
            max_payload_bytes: limits.max_payload_bytes,
            checkpoint_every: limits.checkpoint_every,
            pipelining: limits.pipelining,
        };
        let (replica, recovery) = Replica::open(config, seed, store, settings)?;
        let mut component = Self {
            replica,
            limits,
            committed_transactions: 0,
            faults_observed: 0,
            last_batch_digest: None,
            quotas: Quotas::default(),
        };
        let fx = component.effects(recovery.ready);
        component.replica.log().flush()?;
        tracing::info!(
            epoch = component.epoch().0,
            replayed = recovery.events,
            refused = recovery.refused,
            "consensus state restored"
        );
        Ok((component, fx))
    }

    /// The protocol core (read-only).
    pub fn node(&self) -> &BeatNode {
        self.replica.node()
    }

    /// The store (read-only).
    pub fn store(&self) -> &Store {
        self.replica.log()
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

    /// Submits client transactions from `source` (within its quota, [`Quotas`]): admitted
    /// all-or-nothing by the replica ([`Replica::admit`]), counted against the source, logged,
    /// then proposed.
    pub fn submit_from(
        &mut self,
        source: Option<ClientKey>,
        txs: Vec<Transaction>,
    ) -> Result<(Vec<(Digest, Admission)>, Effects), SubmitError> {
        let submission = self.replica.admit(txs, self.limits.max_submit)?;
        let quota = self.limits.max_pending_per_source;
        let fresh = submission.fresh_len();
        if let Some(source) = source.filter(|_| quota > 0 && fresh > 0) {
            let node = self.replica.node();
            let recorded = self.quotas.per_source.get(&source).map_or(0, Vec::len);
            let pending = if recorded + fresh > quota {
                self.quotas.compact(node, &source)
            } else {
                recorded
            };
            if pending + fresh > quota {
                return Err(SubmitError::QuotaExceeded { pending, quota });
            }
            self.quotas.record(node, source, submission.fresh_keys());
        }
        let (receipts, ready) = self.replica.submit(submission)?;
        Ok((receipts, self.effects(ready)))
    }

    /// Handles a payload from peer `sender`.
    pub fn inbound(&mut self, sender: NodeId, payload: &[u8]) -> Result<Effects, StoreError> {
        let ready = self.replica.inbound(sender, payload)?;
        Ok(self.effects(ready))
    }

    /// Handles a keystore reply.
    pub fn reply(&mut self, reply: Reply) -> Result<Effects, StoreError> {
        let ready = self.replica.reply(reply)?;
        Ok(self.effects(ready))
    }

    /// Reports that the replica made no progress for a while ([`Replica::stalled`]). Returns
    /// `None` when there is nothing to catch up with (nothing is logged).
    pub fn stalled(&mut self) -> Result<Option<Effects>, StoreError> {
        Ok(self.replica.stalled()?.map(|ready| self.effects(ready)))
    }

    /// Every message produced since the last checkpoint, for a gateway that reconnected.
    pub fn resend(&mut self) -> Effects {
        let ready = self.replica.resend(None);
        self.effects(ready)
    }

    /// Makes everything logged so far durable. Call before performing effects.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.replica.log().flush()
    }

    /// Flushes the store from another thread (the actor's pipelined group commit).
    pub fn flusher(&self) -> crate::store::Flusher {
        self.replica.log().flusher()
    }

    /// Turns what the replica produced into this service's effects: payloads encoded once per
    /// message (a broadcast repeats the same message to every peer) and counters updated.
    fn effects(&mut self, ready: Ready) -> Effects {
        let mut newly_committed = false;
        for event in ready.committed.iter().filter(|c| c.certificate.is_none()) {
            self.committed_transactions += event.batch.transaction_count() as u64;
            newly_committed = true;
        }
        if newly_committed {
            // The certification step hashed it already.
            self.last_batch_digest = self.replica.node().last_batch_digest();
        }
        self.faults_observed += ready.faults.len() as u64;
        ready.map_messages(encode)
    }

    /// The replica's epoch.
    pub fn epoch(&self) -> Epoch {
        self.replica.epoch()
    }
}

/// Encodes messages for the gateway, once per run of equal messages (a broadcast).
fn encode(messages: Vec<(NodeId, Message)>) -> Vec<(NodeId, Bytes)> {
    let mut out = Vec::with_capacity(messages.len());
    let mut last: Option<(Message, Bytes)> = None;
    for (to, message) in messages {
        let payload = match &last {
            Some((m, p)) if *m == message => p.clone(),
            _ => {
                let p = Bytes::from(wire::encode(&message));
                last = Some((message, p.clone()));
                p
            }
        };
        out.push((to, payload));
    }
    out
}
