//! The hub actor: owns the [`Router`] and the registry of live connections. Connection tasks
//! and the gRPC shell talk to it by message; each handler forwards to the router and wakes the
//! tasks whose work changed.

use std::{collections::HashMap, sync::Arc};

use actix::{Actor, Context, Handler, Message, MessageResult};
use beat_proto::{
    gateway::v1::{Inbound, Outbound},
    wire::v2::Data,
};
use beat_types::NodeId;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use prometheus::{IntCounter, IntGauge};

use crate::{
    component::{AckAhead, BatchReceived, Router, StaleIncarnation, StreamId, SubmitError},
    metrics::Metrics,
};

/// Identifies one authenticated connection.
pub type ConnId = u64;

/// Which way a connection's data flows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// This replica dialled: carries our Data out and the peer's Acks back.
    Outbound,
    /// The peer dialled: carries its Data in and our Acks back.
    Inbound,
}

struct Registered {
    peer: NodeId,
    transport: &'static str,
    direction: Direction,
    incarnation: u64,
    wake: Arc<Notify>,
    cancel: CancellationToken,
}

/// One peer's metrics, resolved once.
struct PeerMetrics {
    queue_frames: IntGauge,
    dropped_frames: IntCounter,
    skipped_frames: IntCounter,
}

/// The hub.
pub struct Hub {
    router: Router,
    links: HashMap<ConnId, Registered>,
    next_link: ConnId,
    stream_wake: Option<Arc<Notify>>,
    space: Arc<Notify>,
    pending_deliveries: IntGauge,
    /// Per replica; `None` for this one.
    peers: Vec<Option<PeerMetrics>>,
    /// Per peer: whether its queue has been dropping frames since it last had room.
    dropping: Vec<bool>,
}

impl Hub {
    /// Wraps `router`.
    pub fn new(router: Router, metrics: &Metrics) -> Self {
        let n = router.n();
        let me = router.me().index();
        let peers = (0..n)
            .map(|i| {
                let label = [i.to_string()];
                (i != me).then(|| PeerMetrics {
                    queue_frames: metrics.queue_frames.with_label_values(&label),
                    dropped_frames: metrics.dropped_frames.with_label_values(&label),
                    skipped_frames: metrics.skipped_frames.with_label_values(&label),
                })
            })
            .collect();
        Self {
            router,
            links: HashMap::new(),
            next_link: 1,
            stream_wake: None,
            space: Arc::new(Notify::new()),
            pending_deliveries: metrics.pending_deliveries.clone(),
            peers,
            dropping: vec![false; n],
        }
    }

    fn wake(&self, peer: NodeId, direction: Direction) {
        self.links
            .values()
            .filter(|l| l.peer == peer && l.direction == direction)
            .for_each(|l| l.wake.notify_one());
    }

    fn wake_stream(&self) {
        if let Some(w) = &self.stream_wake {
            w.notify_one();
        }
    }

    fn update_queue(&mut self, peer: NodeId, dropped: usize) {
        let Some(metrics) = &self.peers[peer.index()] else {
            return;
        };
        let len = self.router.unacknowledged(peer);
        metrics.queue_frames.set(len as i64);
        if dropped > 0 {
            metrics.dropped_frames.inc_by(dropped as u64);
            if !std::mem::replace(&mut self.dropping[peer.index()], true) {
                tracing::warn!(
                    peer = peer.0,
                    dropped,
                    queued = len,
                    "outbound queue full, dropping the oldest frames"
                );
            }
        }
    }
}

impl Actor for Hub {
    type Context = Context<Self>;
}

// === connections ===

/// An authenticated connection starts. An inbound one may replace the peer's previous
/// incarnation (closing its connections) and always replaces the peer's older inbound
/// connection on the same transport.
#[derive(Message)]
#[rtype(result = "Result<Registration, StaleIncarnation>")]
pub struct LinkUp {
    /// The peer.
    pub peer: NodeId,
    /// The transport's name.
    pub transport: &'static str,
    /// Which way data flows.
    pub direction: Direction,
    /// The peer's incarnation from its Hello.
    pub incarnation: u64,
    /// Closes the connection.
    pub cancel: CancellationToken,
}

/// A registered connection.
pub struct Registration {
    /// Its identifier, for [`LinkDown`].
    pub id: ConnId,
    /// Notified when the connection has frames to send.
    pub wake: Arc<Notify>,
    /// Notified when inbound budget is released.
    pub space: Arc<Notify>,
}

impl Handler<LinkUp> for Hub {
    type Result = Result<Registration, StaleIncarnation>;

    fn handle(&mut self, msg: LinkUp, _: &mut Context<Self>) -> Self::Result {
        if msg.direction == Direction::Inbound {
            self.router.admit(msg.peer, msg.incarnation)?;
            self.links
                .values()
                .filter(|l| l.peer == msg.peer && l.direction == Direction::Inbound)
                .filter(|l| l.transport == msg.transport || l.incarnation != msg.incarnation)
                .for_each(|l| l.cancel.cancel());
        }
        let id = self.next_link;
        self.next_link += 1;
        let wake = Arc::new(Notify::new());
        wake.notify_one(); // a new connection retransmits (or re-acknowledges) at once
        self.links.insert(
            id,
            Registered {
                peer: msg.peer,
                transport: msg.transport,
                direction: msg.direction,
                incarnation: msg.incarnation,
                wake: wake.clone(),
                cancel: msg.cancel,
            },
        );
        Ok(Registration {
            id,
            wake,
            space: self.space.clone(),
        })
    }
}

/// A connection ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct LinkDown(pub ConnId);

impl Handler<LinkDown> for Hub {
    type Result = ();

    fn handle(&mut self, msg: LinkDown, _: &mut Context<Self>) {
        self.links.remove(&msg.0);
    }
}

/// The next Data frames for a dialled connection at `cursor`.
#[derive(Message)]
#[rtype(result = "(Vec<Data>, u64)")]
pub struct PullOutbound {
    /// The peer.
    pub peer: NodeId,
    /// The connection's cursor (0 for a new connection).
    pub cursor: u64,
    /// Most frames.
    pub max_frames: usize,
    /// Most payload bytes (beyond the first frame).
    pub max_bytes: usize,
}

impl Handler<PullOutbound> for Hub {
    type Result = MessageResult<PullOutbound>;

    fn handle(&mut self, msg: PullOutbound, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.router.outbound_frames(
            msg.peer,
            msg.cursor,
            msg.max_frames,
            msg.max_bytes,
        ))
    }
}

/// The acknowledgement level for an inbound connection of `incarnation`.
#[derive(Message)]
#[rtype(result = "Option<u64>")]
pub struct PullAck {
    /// The peer.
    pub peer: NodeId,
    /// The connection's incarnation.
    pub incarnation: u64,
}

impl Handler<PullAck> for Hub {
    type Result = Option<u64>;

    fn handle(&mut self, msg: PullAck, _: &mut Context<Self>) -> Self::Result {
        self.router.ack_level(msg.peer, msg.incarnation)
    }
}

/// Data frames arrived on an inbound connection of `incarnation`.
#[derive(Message)]
#[rtype(result = "BatchReceived")]
pub struct Receive {
    /// The sender.
    pub peer: NodeId,
    /// The connection's incarnation.
    pub incarnation: u64,
    /// The frames, in arrival order.
    pub frames: Vec<Data>,
}

impl Handler<Receive> for Hub {
    type Result = MessageResult<Receive>;

    fn handle(&mut self, msg: Receive, _: &mut Context<Self>) -> Self::Result {
        let out = self
            .router
            .receive_batch(msg.peer, msg.incarnation, msg.frames);
        if let Some(metrics) = self.peers[msg.peer.index()]
            .as_ref()
            .filter(|_| out.skipped > 0)
        {
            metrics.skipped_frames.inc_by(out.skipped);
            tracing::info!(
                peer = msg.peer.0,
                skipped = out.skipped,
                "sender abandoned frames"
            );
        }
        if out.delivered > 0 {
            self.pending_deliveries
                .set(self.router.pending_deliveries() as i64);
            self.wake_stream();
        }
        MessageResult(out)
    }
}

/// The peer acknowledged our Data frames up to `sequence` of `incarnation`.
#[derive(Message)]
#[rtype(result = "Result<(), AckAhead>")]
pub struct PeerAck {
    /// The peer.
    pub peer: NodeId,
    /// The acknowledged incarnation (ours, unless stale).
    pub incarnation: u64,
    /// The cumulative sequence.
    pub sequence: u64,
}

impl Handler<PeerAck> for Hub {
    type Result = Result<(), AckAhead>;

    fn handle(&mut self, msg: PeerAck, _: &mut Context<Self>) -> Self::Result {
        if self
            .router
            .peer_acknowledged(msg.peer, msg.incarnation, msg.sequence)?
            > 0
        {
            self.dropping[msg.peer.index()] = false;
            self.update_queue(msg.peer, 0);
        }
        Ok(())
    }
}

// === the Link stream ===

/// A new `Link` stream from consensus replaces the current one.
#[derive(Message)]
#[rtype(result = "(StreamId, Arc<Notify>)")]
pub struct Attach;

impl Handler<Attach> for Hub {
    type Result = MessageResult<Attach>;

    fn handle(&mut self, _: Attach, _: &mut Context<Self>) -> Self::Result {
        self.wake_stream(); // the replaced stream finds out and ends
        let id = self.router.attach();
        let wake = Arc::new(Notify::new());
        wake.notify_one(); // pending deliveries go out at once
        self.stream_wake = Some(wake.clone());
        MessageResult((id, wake))
    }
}

/// A `Link` stream ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Detach(pub StreamId);

impl Handler<Detach> for Hub {
    type Result = ();

    fn handle(&mut self, msg: Detach, _: &mut Context<Self>) {
        if self.router.is_current(msg.0) {
            self.stream_wake = None;
        }
        self.router.detach(msg.0);
    }
}

/// Consensus sends payloads.
#[derive(Message)]
#[rtype(result = "Result<(), SubmitError>")]
pub struct Submit {
    /// The stream they came on.
    pub stream: StreamId,
    /// The payloads.
    pub batch: Vec<Outbound>,
}

impl Handler<Submit> for Hub {
    type Result = Result<(), SubmitError>;

    fn handle(&mut self, msg: Submit, _: &mut Context<Self>) -> Self::Result {
        let submitted = self.router.submit(msg.stream, msg.batch)?;
        for i in (0..submitted.queued.len()).filter(|&i| submitted.queued[i]) {
            let peer = NodeId::from_index(i);
            self.update_queue(peer, submitted.dropped[i]);
            self.wake(peer, Direction::Outbound);
        }
        Ok(())
    }
}

/// Consensus acknowledges deliveries.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ConsensusAck(pub Vec<u64>);

impl Handler<ConsensusAck> for Hub {
    type Result = ();

    fn handle(&mut self, msg: ConsensusAck, _: &mut Context<Self>) {
        let acknowledged = self.router.acknowledge_deliveries(&msg.0);
        for &sender in &acknowledged.senders {
            self.wake(sender, Direction::Inbound);
        }
        if acknowledged.released > 0 {
            self.pending_deliveries
                .set(self.router.pending_deliveries() as i64);
            self.space.notify_waiters();
        }
    }
}

/// The next inbound batch for a stream.
#[derive(Message)]
#[rtype(result = "Result<Vec<Inbound>, SubmitError>")]
pub struct PullInbound {
    /// The stream.
    pub stream: StreamId,
    /// Most payloads.
    pub max_frames: usize,
    /// Most payload bytes (beyond the first).
    pub max_bytes: usize,
}

impl Handler<PullInbound> for Hub {
    type Result = Result<Vec<Inbound>, SubmitError>;

    fn handle(&mut self, msg: PullInbound, _: &mut Context<Self>) -> Self::Result {
        self.router
            .next_inbound(msg.stream, msg.max_frames, msg.max_bytes)
    }
}

/// Per replica, the Data frames waiting for its acknowledgement.
#[derive(Message)]
#[rtype(result = "Vec<u64>")]
pub struct Unacknowledged;

impl Handler<Unacknowledged> for Hub {
    type Result = Vec<u64>;

    fn handle(&mut self, _: Unacknowledged, _: &mut Context<Self>) -> Self::Result {
        (0..self.router.n())
            .map(|i| self.router.unacknowledged(NodeId::from_index(i)) as u64)
            .collect()
    }
}
