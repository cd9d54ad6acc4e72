//! The router: every peer's outbound queue and receive window, and the deliveries to consensus.

use std::collections::{BTreeMap, VecDeque};

use beat_proto::{
    gateway::v1::{Inbound, Outbound},
    wire::v2::{Data, PeerFrame, peer_frame},
};
use beat_types::NodeId;
use bytes::Bytes;

use super::{
    Limits,
    inbound::InboundWindow,
    outbound::{AckAhead, OutboundQueue},
};

/// How many retired incarnations of each peer are remembered (and refused).
const RETIRED_INCARNATIONS: usize = 16;

/// Identifies one `Link` stream from consensus.
pub type StreamId = u64;

/// Why consensus's outbound payload was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// A target is not a replica of the committee.
    #[error("target {target} is not a replica (committee of {n})")]
    UnknownTarget {
        /// The target.
        target: u32,
        /// Committee size.
        n: usize,
    },
    /// A target is this replica.
    #[error("target {0} is this replica")]
    SelfTarget(u32),
    /// The payload does not fit in one peer frame.
    #[error("payload of {len} bytes does not fit in a frame of at most {max_frame} bytes")]
    TooLarge {
        /// Payload length.
        len: usize,
        /// The frame limit.
        max_frame: usize,
    },
    /// The stream was replaced by a newer one.
    #[error("the Link stream was replaced by a newer one")]
    Replaced,
}

/// Why a Data frame from a peer was not taken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DataRefused {
    /// The sender's inbound budget is used up; retry once consensus acknowledges.
    #[error("inbound budget of the sender is used up")]
    Full,
    /// The connection belongs to an incarnation of the sender that was replaced by a newer one.
    #[error("sender incarnation {0} was replaced by a newer one")]
    Retired(u64),
    /// The frame breaks the link protocol.
    #[error("protocol violation: {0}")]
    Protocol(String),
}

/// A sender incarnation that was replaced by a newer one and may not come back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("incarnation {0} of this peer was replaced by a newer one")]
pub struct StaleIncarnation(pub u64);

/// What [`Router::submit`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Submitted {
    /// Per replica: whether frames were queued to it.
    pub queued: Vec<bool>,
    /// Per replica: how many old frames were dropped because its queue was full.
    pub dropped: Vec<usize>,
}

/// What [`Router::receive`] did with one Data frame.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReceiveOutcome {
    /// How many payloads became deliverable to consensus.
    pub delivered: usize,
    /// The frame was a duplicate.
    pub duplicate: bool,
    /// The frame was ahead of a gap and could not be kept (outside the reorder window or over
    /// budget).
    pub discarded: bool,
    /// Sequences abandoned by the sender that were skipped.
    pub skipped: u64,
}

/// What [`Router::receive_batch`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct BatchReceived {
    /// How many frames, from the front, were taken (duplicates and discarded ones included).
    pub accepted: usize,
    /// Payloads that became deliverable.
    pub delivered: usize,
    /// Sequences abandoned by the sender that were skipped.
    pub skipped: u64,
    /// Why the frame after the accepted ones was not taken, if one was not.
    pub refused: Option<DataRefused>,
}

/// What [`Router::acknowledge_deliveries`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Acknowledged {
    /// Senders whose acknowledgement level rose (their inbound connections should send Ack).
    pub senders: Vec<NodeId>,
    /// Deliveries released (unknown identifiers are ignored).
    pub released: usize,
}

#[derive(Debug)]
struct Pending {
    sender: NodeId,
    incarnation: u64,
    sequence: u64,
    payload: Bytes,
}

#[derive(Debug)]
struct Peer {
    outbound: OutboundQueue,
    inbound: Option<InboundWindow>,
    retired: VecDeque<u64>,
    /// Frames and bytes held for this sender: pending deliveries plus the reorder buffer.
    held_frames: usize,
    held_bytes: usize,
}

#[derive(Debug)]
struct Stream {
    id: StreamId,
    /// The highest delivery identifier sent on this stream.
    cursor: u64,
}

/// The gateway's bookkeeping, without sockets, clocks or tasks.
///
/// * Outbound: consensus payloads go into one [`OutboundQueue`] per target; connections read
///   them by cursor ([`Self::outbound_frames`]) and the peer's cumulative Acks remove them.
/// * Inbound: Data frames go through the sender's [`InboundWindow`]; deliverable payloads get a
///   delivery identifier and stay pending until consensus acknowledges them, so a new `Link`
///   stream receives them again. The Ack sent to a peer covers only acknowledged deliveries.
#[derive(Debug)]
pub struct Router {
    me: NodeId,
    incarnation: u64,
    limits: Limits,
    peers: Vec<Peer>,
    pending: BTreeMap<u64, Pending>,
    next_delivery: u64,
    stream: Option<Stream>,
    next_stream: StreamId,
}

// === impl Router ===

impl Router {
    /// Creates the router of replica `me` in a committee of `n`, sending as `incarnation`.
    pub fn new(me: NodeId, n: usize, incarnation: u64, limits: Limits) -> Self {
        let peers = (0..n)
            .map(|_| Peer {
                outbound: OutboundQueue::new(
                    incarnation,
                    limits.queue_max_frames,
                    limits.queue_max_bytes,
                ),
                inbound: None,
                retired: VecDeque::new(),
                held_frames: 0,
                held_bytes: 0,
            })
            .collect();
        Self {
            me,
            incarnation,
            limits,
            peers,
            pending: BTreeMap::new(),
            next_delivery: 1,
            stream: None,
            next_stream: 1,
        }
    }

    /// This replica.
    pub fn me(&self) -> NodeId {
        self.me
    }

    /// Committee size.
    pub fn n(&self) -> usize {
        self.peers.len()
    }

    // --- consensus → peers ---

    /// Queues a batch of consensus payloads. The whole batch is checked first, so a refused
    /// batch queues nothing.
    pub fn submit(
        &mut self,
        stream: StreamId,
        batch: Vec<Outbound>,
    ) -> Result<Submitted, SubmitError> {
        if !self.is_current(stream) {
            return Err(SubmitError::Replaced);
        }
        let n = self.n();
        for message in &batch {
            for &target in &message.targets {
                if target as usize >= n {
                    return Err(SubmitError::UnknownTarget { target, n });
                }
                if target == self.me.0 {
                    return Err(SubmitError::SelfTarget(target));
                }
            }
            let len = message.payload.len();
            if data_frame_len(&message.payload) > self.limits.max_frame_bytes {
                return Err(SubmitError::TooLarge {
                    len,
                    max_frame: self.limits.max_frame_bytes,
                });
            }
        }
        let mut out = Submitted {
            queued: vec![false; n],
            dropped: vec![0; n],
        };
        for message in batch {
            let mut targets = vec![message.targets.is_empty(); n];
            for &t in &message.targets {
                targets[t as usize] = true;
            }
            targets[self.me.index()] = false;
            for (peer, _) in targets.iter().enumerate().filter(|(_, t)| **t) {
                let pushed = self.peers[peer].outbound.push(message.payload.clone());
                out.queued[peer] = true;
                out.dropped[peer] += pushed.dropped;
            }
        }
        Ok(out)
    }

    /// The next frames a connection to `peer` at `cursor` sends, and its new cursor. A new
    /// connection passes `0` and so retransmits everything unacknowledged.
    pub fn outbound_frames(
        &self,
        peer: NodeId,
        cursor: u64,
        max_frames: usize,
        max_bytes: usize,
    ) -> (Vec<Data>, u64) {
        self.peers[peer.index()]
            .outbound
            .frames_from(cursor, max_frames, max_bytes)
    }

    /// Applies the peer's cumulative Ack. Acks of another incarnation (a previous process of
    /// this gateway) are ignored.
    pub fn peer_acknowledged(
        &mut self,
        peer: NodeId,
        incarnation: u64,
        sequence: u64,
    ) -> Result<usize, AckAhead> {
        if incarnation != self.incarnation {
            return Ok(0);
        }
        self.peers[peer.index()].outbound.acknowledge(sequence)
    }

    /// Data frames waiting for `peer`'s acknowledgement.
    pub fn unacknowledged(&self, peer: NodeId) -> usize {
        self.peers[peer.index()].outbound.len()
    }

    // --- peers → consensus ---

    /// Records that `peer` authenticated a connection carrying its data as `incarnation`.
    /// A new incarnation replaces the current one (the peer's gateway restarted); a replaced
    /// incarnation is refused from then on. Returns the replaced incarnation, if any.
    pub fn admit(
        &mut self,
        peer: NodeId,
        incarnation: u64,
    ) -> Result<Option<u64>, StaleIncarnation> {
        let p = &mut self.peers[peer.index()];
        if p.retired.contains(&incarnation) {
            return Err(StaleIncarnation(incarnation));
        }
        let current = p.inbound.as_ref().map(InboundWindow::incarnation);
        if current == Some(incarnation) {
            return Ok(None);
        }
        if let Some(old) = p.inbound.take() {
            let (frames, bytes) = old.buffered();
            p.held_frames -= frames;
            p.held_bytes -= bytes;
            if p.retired.len() == RETIRED_INCARNATIONS {
                p.retired.pop_front();
            }
            p.retired.push_back(old.incarnation());
        }
        p.inbound = Some(InboundWindow::new(incarnation, self.limits.reorder_window));
        Ok(current)
    }

    /// Handles a Data frame from `peer` on a connection authenticated as `incarnation`.
    pub fn receive(
        &mut self,
        peer: NodeId,
        incarnation: u64,
        data: Data,
    ) -> Result<ReceiveOutcome, DataRefused> {
        let limits = self.limits;
        let p = &mut self.peers[peer.index()];
        let Some(window) = p
            .inbound
            .as_mut()
            .filter(|w| w.incarnation() == incarnation)
        else {
            return Err(DataRefused::Retired(incarnation));
        };
        if data.incarnation != incarnation {
            return Err(DataRefused::Protocol(format!(
                "data of incarnation {} on a connection of incarnation {incarnation}",
                data.incarnation
            )));
        }
        if data.sequence == 0 || data.floor > data.sequence {
            return Err(DataRefused::Protocol(format!(
                "sequence {} with floor {}",
                data.sequence, data.floor
            )));
        }
        let len = data.payload.len();
        let over = |frames: usize, bytes: usize| {
            frames + 1 > limits.inbound_max_frames || bytes + len > limits.inbound_max_bytes
        };
        let mut outcome = ReceiveOutcome::default();
        if window.would_keep(data.sequence, data.floor) && over(p.held_frames, p.held_bytes) {
            if !window.is_next(data.sequence, data.floor) {
                outcome.discarded = true;
                return Ok(outcome);
            }
            // Room for the next in-order frame comes first: drop frames buffered ahead of a gap
            // (the sender still holds them and sends them again after a reconnect).
            let (frames, bytes) = window.clear_reorder();
            p.held_bytes -= bytes;
            p.held_frames -= frames;
            if over(p.held_frames, p.held_bytes) {
                return Err(DataRefused::Full);
            }
        }
        let received = window.receive(data.sequence, data.floor, data.payload);
        let incarnation = window.incarnation();
        if !received.duplicate && !received.beyond_window {
            // Kept: buffered or delivered. Frames delivered from the buffer stay held, as
            // pending deliveries, so only the new frame changes the sender's holdings.
            p.held_frames += 1;
            p.held_bytes += len;
        }
        outcome.duplicate = received.duplicate;
        outcome.discarded = received.beyond_window;
        outcome.skipped = received.skipped;
        outcome.delivered = received.deliver.len();
        for (sequence, payload) in received.deliver {
            self.pending.insert(
                self.next_delivery,
                Pending {
                    sender: peer,
                    incarnation,
                    sequence,
                    payload,
                },
            );
            self.next_delivery += 1;
        }
        Ok(outcome)
    }

    /// Handles Data frames from one connection in order, stopping at the first one refused.
    pub fn receive_batch(
        &mut self,
        peer: NodeId,
        incarnation: u64,
        frames: impl IntoIterator<Item = Data>,
    ) -> BatchReceived {
        let mut out = BatchReceived::default();
        for data in frames {
            match self.receive(peer, incarnation, data) {
                Ok(outcome) => {
                    out.accepted += 1;
                    out.delivered += outcome.delivered;
                    out.skipped += outcome.skipped;
                }
                Err(refused) => {
                    out.refused = Some(refused);
                    break;
                }
            }
        }
        out
    }

    /// The acknowledgement level to send to `peer` on a connection of `incarnation`, if that
    /// incarnation is current.
    pub fn ack_level(&self, peer: NodeId, incarnation: u64) -> Option<u64> {
        self.peers[peer.index()]
            .inbound
            .as_ref()
            .filter(|w| w.incarnation() == incarnation)
            .map(InboundWindow::ack_level)
    }

    // --- the Link stream ---

    /// Starts a new `Link` stream, replacing the current one. The new stream receives every
    /// pending delivery again, oldest first.
    pub fn attach(&mut self) -> StreamId {
        let id = self.next_stream;
        self.next_stream += 1;
        self.stream = Some(Stream { id, cursor: 0 });
        id
    }

    /// Ends `stream` if it is the current one.
    pub fn detach(&mut self, stream: StreamId) {
        if self.is_current(stream) {
            self.stream = None;
        }
    }

    /// Whether `stream` is the current `Link` stream.
    pub fn is_current(&self, stream: StreamId) -> bool {
        self.stream.as_ref().is_some_and(|s| s.id == stream)
    }

    /// The next batch for `stream`: deliveries it has not been sent yet, at most `max_frames`
    /// and, beyond the first, at most `max_bytes` of payload.
    pub fn next_inbound(
        &mut self,
        stream: StreamId,
        max_frames: usize,
        max_bytes: usize,
    ) -> Result<Vec<Inbound>, SubmitError> {
        let Some(s) = self.stream.as_mut().filter(|s| s.id == stream) else {
            return Err(SubmitError::Replaced);
        };
        let mut out = Vec::new();
        let mut bytes = 0;
        for (&id, d) in self.pending.range(s.cursor + 1..).take(max_frames) {
            if !out.is_empty() && bytes + d.payload.len() > max_bytes {
                break;
            }
            bytes += d.payload.len();
            out.push(Inbound {
                sender: d.sender.0,
                payload: d.payload.clone(),
                delivery_id: id,
            });
            s.cursor = id;
        }
        Ok(out)
    }

    /// Consensus acknowledges deliveries (from any stream: an acknowledgement is durable
    /// whichever stream carried it).
    pub fn acknowledge_deliveries(&mut self, ids: &[u64]) -> Acknowledged {
        let mut out = Acknowledged::default();
        let before: Vec<Option<u64>> = self.peers.iter().map(Self::level).collect();
        for id in ids {
            let Some(d) = self.pending.remove(id) else {
                continue;
            };
            out.released += 1;
            let p = &mut self.peers[d.sender.index()];
            p.held_frames -= 1;
            p.held_bytes -= d.payload.len();
            if let Some(w) = p
                .inbound
                .as_mut()
                .filter(|w| w.incarnation() == d.incarnation)
            {
                w.acknowledge(d.sequence);
            }
        }
        for (i, p) in self.peers.iter().enumerate() {
            if Self::level(p) > before[i] {
                out.senders.push(NodeId::from_index(i));
            }
        }
        out
    }

    fn level(p: &Peer) -> Option<u64> {
        p.inbound.as_ref().map(InboundWindow::ack_level)
    }

    /// Deliveries waiting for consensus's acknowledgement.
    pub fn pending_deliveries(&self) -> usize {
        self.pending.len()
    }
}

/// The encoded size of a Data frame carrying `payload`, with every number at its widest.
pub fn data_frame_len(payload: &Bytes) -> usize {
    use prost::Message;
    PeerFrame {
        kind: Some(peer_frame::Kind::Data(Data {
            incarnation: u64::MAX,
            sequence: u64::MAX,
            payload: payload.clone(),
            floor: u64::MAX,
        })),
    }
    .encoded_len()
}
