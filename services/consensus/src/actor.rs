//! The consensus actor: owns the [`Component`] and performs every effect only after the events
//! that caused it are durable.
//!
//! **One thread.** The actor runs on the service's runtime thread, beside the gateway link,
//! the keystore client and the gRPC servers, so an inbound batch reaches the core and its
//! messages reach the link without a cross-thread wake-up. (It had an arbiter thread of its
//! own until measured: on the 2-core bench box the shared thread lowered the p50 commit
//! latency by 5 % at 1,000 tx/s and 8 % at 20,000 tx/s, and changed nothing at 50,000 tx/s,
//! docs/benchmarks.md.) Only the WAL's `fdatasync` runs elsewhere, on the blocking pool.
//!
//! **Pipelined group commit.** Handlers log and process events at once and park the resulting
//! effects (outgoing messages, gateway acknowledgements, keystore requests, client receipts) in
//! a group. One flush (`fsync`) runs at a time on the blocking pool; when it completes, the
//! group it covered is performed and the next flush starts with everything that arrived in the
//! meantime. A group whose only effects are gateway acknowledgements lingers up to
//! [`ACK_LINGER`] for an urgent one to share its flush. So the actor never waits for the disk,
//! a burst of events shares one `fsync`, and no effect leaves the replica before its cause is
//! on disk — which is what makes a restarted replica unable to contradict what it sent (the WAL
//! replays to the same state).

use std::sync::Arc;

use actix::{
    Actor, ActorFutureExt as _, AsyncContext as _, Context, Handler, Message, MessageResult,
    ResponseFuture, WrapFuture as _,
};
use beat_core::{CommitCertificate, Reply, Request, epoch::StoredFragments};
use beat_crypto::Digest;
use beat_types::{Epoch, NodeId, Transaction};
use bytes::Bytes;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::{
    component::{Admission, CommitEvent, Component, Effects, SubmitError},
    metrics::Metrics,
    store::{Flusher, StoreError},
};

/// How long a group that only acknowledges peer messages to the gateway waits for an urgent
/// effect to start its flush.
///
/// Many peer messages change a replica's state without making it send anything (the second
/// of three ECHOs, a BVAL for a value already relayed). Their only effect is the gateway
/// acknowledgement, which merely lets the sender drop the frame from its retransmit queue.
/// Flushing for them at once cost an `fdatasync` and several thread wake-ups each; on a fast
/// disk the replica flushed for nearly every arriving peer batch (20 flushes per epoch at
/// 1,000 tx/s, 14 with the linger). Lingering lets the next urgent effect's flush cover them.
/// Nothing but those acknowledgements is delayed, and by at most this much (docs/benchmarks.md,
/// "Fewer flushes and wake-ups per message delay").
const ACK_LINGER: std::time::Duration = std::time::Duration::from_millis(2);

/// A client's receipts, released once durable.
type Receipts = (Vec<(Digest, Admission)>, Epoch);

/// Effects waiting for one flush.
#[derive(Default)]
struct Group {
    fx: Effects,
    acks: Vec<u64>,
    receipts: Vec<(oneshot::Sender<Receipts>, Receipts)>,
    /// Whether anything was logged or is to be performed (an empty group needs no flush).
    dirty: bool,
    /// Whether anything in it waits on the flush beyond gateway acknowledgements: messages,
    /// keystore requests, commits or receipts.
    urgent: bool,
}

/// What the actor does with the waiting group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    /// Nothing: the group is empty, a flush is running (its completion looks again), or a
    /// linger timer is armed (it will).
    Wait,
    /// Flush it now.
    Flush,
    /// Arm the linger timer: only acknowledgements wait, and an urgent effect arriving within
    /// [`ACK_LINGER`] will flush them with it.
    Linger,
}

impl Group {
    fn next(&self, flushing: bool, lingering: bool) -> Next {
        if flushing || !self.dirty {
            Next::Wait
        } else if self.urgent {
            Next::Flush
        } else if lingering {
            Next::Wait
        } else {
            Next::Linger
        }
    }

    fn add(&mut self, fx: Effects, acks: Vec<u64>) {
        self.urgent |= !fx.messages.is_empty()
            || !fx.requests.is_empty()
            || !fx.committed.is_empty()
            || !self.receipts.is_empty();
        self.fx.extend(fx);
        self.acks.extend(acks);
        self.dirty = true;
    }
}

/// Commands for the gateway link task.
#[derive(Debug)]
pub enum LinkCommand {
    /// Payloads to send.
    Outbound(Vec<(NodeId, Bytes)>),
    /// Inbound deliveries now durable here.
    Ack(Vec<u64>),
}

/// The consensus actor.
pub struct ConsensusActor {
    component: Component,
    link: mpsc::UnboundedSender<LinkCommand>,
    keystore: mpsc::UnboundedSender<KeystoreJob>,
    committed: broadcast::Sender<Arc<CommitEvent>>,
    metrics: Metrics,
    last_commit: Option<std::time::Instant>,
    /// The last epoch seen started early (pipelining), for the metric.
    last_started_early: Option<Epoch>,
    flusher: Flusher,
    /// Effects of events logged since the running flush started.
    waiting: Group,
    /// Whether a flush is running (its group is held by the flush future).
    flushing: bool,
    /// Whether a timer will flush the waiting group although it is not urgent.
    lingering: bool,
    /// How long without a new epoch counts as stalled (catch-up when idle).
    stall_after: std::time::Duration,
    /// The epoch seen at the last stall check.
    epoch_at_last_check: Epoch,
}

impl ConsensusActor {
    /// Wraps a component; `initial` are the effects of its recovery.
    pub fn new(
        component: Component,
        link: mpsc::UnboundedSender<LinkCommand>,
        keystore: mpsc::UnboundedSender<KeystoreJob>,
        committed: broadcast::Sender<Arc<CommitEvent>>,
        metrics: Metrics,
        stall_after: std::time::Duration,
    ) -> Self {
        let flusher = component.flusher();
        let epoch_at_last_check = component.epoch();
        Self {
            component,
            link,
            keystore,
            committed,
            metrics,
            last_commit: None,
            last_started_early: None,
            flusher,
            waiting: Group::default(),
            flushing: false,
            lingering: false,
            stall_after,
            epoch_at_last_check,
        }
    }

    /// Runs every `stall_after`: a replica whose epoch did not move since the last check while
    /// f+1 peers are ahead asks them for the committed batches (N5'). With load, epochs move
    /// and this does nothing; idle, nobody else would ever make it catch up.
    fn check_stall(&mut self, ctx: &mut Context<Self>) {
        let epoch = self.component.epoch();
        let moved = epoch != self.epoch_at_last_check;
        self.epoch_at_last_check = epoch;
        if moved {
            return;
        }
        match self.component.stalled() {
            Ok(Some(fx)) => {
                tracing::info!(
                    epoch = epoch.0,
                    "no progress while peers are ahead; catching up"
                );
                self.commit(fx, Vec::new(), ctx);
            }
            Ok(None) => {}
            Err(e) => fatal(&e),
        }
    }

    /// Parks `fx` and `acks` until the events logged so far are durable.
    fn commit(&mut self, fx: Effects, acks: Vec<u64>, ctx: &mut Context<Self>) {
        self.waiting.add(fx, acks);
        self.start_flush(ctx);
    }

    /// Starts a flush covering the waiting group unless one is running. A storage failure
    /// stops the replica: continuing on a store it cannot trust could make it equivocate.
    fn start_flush(&mut self, ctx: &mut Context<Self>) {
        match self.waiting.next(self.flushing, self.lingering) {
            Next::Wait => return,
            Next::Linger => {
                self.lingering = true;
                ctx.run_later(ACK_LINGER, |act, ctx| {
                    act.lingering = false;
                    act.waiting.urgent |= act.waiting.dirty;
                    act.start_flush(ctx);
                });
                return;
            }
            Next::Flush => {}
        }
        self.flushing = true;
        let group = std::mem::take(&mut self.waiting);
        let flusher = self.flusher.clone();
        let histogram = self.metrics.flush.clone();
        let flush = tokio::task::spawn_blocking(move || {
            let _timer = histogram.start_timer();
            flusher.flush()
        });
        ctx.spawn(flush.into_actor(self).map(move |result, act, ctx| {
            match result {
                Ok(Ok(())) => {}
                Ok(Err(e)) => fatal(&e),
                Err(e) => fatal(&StoreError::Corrupt(format!("flush task failed: {e}"))),
            }
            act.flushing = false;
            act.perform(group.fx, group.acks);
            for (tx, receipts) in group.receipts {
                let _ = tx.send(receipts);
            }
            act.start_flush(ctx);
        }));
    }

    fn perform(&mut self, fx: Effects, acks: Vec<u64>) {
        if !fx.messages.is_empty() {
            self.metrics.sent.inc_by(fx.messages.len() as u64);
            let _ = self.link.send(LinkCommand::Outbound(fx.messages));
        }
        if !acks.is_empty() {
            let _ = self.link.send(LinkCommand::Ack(acks));
        }
        // Every keystore request carries the replica's latest certificate: the keystore signs
        // only within a window of it (module `beat_core::signing`). It is read after the
        // step that made the requests, so it covers them.
        let horizon = self.component.node().latest_certificate().copied();
        for request in fx.requests {
            let _ = self.keystore.send(KeystoreJob { request, horizon });
        }
        if fx.irrelevant > 0 {
            self.metrics
                .dropped
                .with_label_values(&["irrelevant"])
                .inc_by(fx.irrelevant);
        }
        for e in fx.refused {
            tracing::error!(error = %e, "protocol refused a logged event locally");
        }
        for (peer, reason) in fx.malformed {
            self.metrics.dropped.with_label_values(&["malformed"]).inc();
            tracing::warn!(peer = peer.0, %reason, "dropped a malformed message");
        }
        for fault in fx.faults {
            self.metrics
                .faults
                .with_label_values(&[&fault.node.0.to_string(), &format!("{:?}", fault.kind)])
                .inc();
            tracing::warn!(%fault, "peer misbehaved");
        }
        for event in fx.committed {
            if event.certificate.is_some() {
                self.metrics.certified.inc();
                let _ = self.committed.send(Arc::new(event));
                continue;
            }
            let batch = &event.batch;
            self.metrics.epochs.inc();
            self.metrics
                .committed
                .inc_by(batch.transaction_count() as u64);
            #[allow(clippy::disallowed_methods)] // metrics only: time between commits
            let now = std::time::Instant::now();
            if let Some(prev) = self.last_commit.replace(now) {
                self.metrics
                    .epoch_latency
                    .observe((now - prev).as_secs_f64());
            }
            tracing::debug!(
                epoch = batch.epoch.0,
                transactions = batch.transaction_count(),
                "committed"
            );
            let _ = self.committed.send(Arc::new(event));
        }
        self.metrics.epoch.set(self.component.epoch().0 as i64);
        let node = self.component.node();
        self.metrics.buffered.set(node.buffer_len() as i64);
        self.metrics
            .pipelined_every
            .set(node.pipelined_every().map_or(0, |p| p as i64));
        if let Some(next) = node.started_next()
            && self.last_started_early < Some(next)
        {
            self.last_started_early = Some(next);
            self.metrics.started_early.inc();
        }
    }
}

/// Stops the process on a storage failure. Nothing the failed write covered was acknowledged
/// (receipts and peer acks leave only after a successful flush), and continuing on a store that
/// may have lost a record could make the replica equivocate after a restart.
fn fatal(e: &StoreError) -> ! {
    tracing::error!(error = %e, "storage failure; stopping the replica");
    eprintln!("beat-consensus: storage failure: {e}");
    std::process::exit(70);
}

impl Actor for ConsensusActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.stall_after, |act, ctx| act.check_stall(ctx));
    }
}

/// Effects left over from recovery, to perform once the actor runs.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Recovered(pub Effects);

impl Handler<Recovered> for ConsensusActor {
    type Result = ();

    fn handle(&mut self, msg: Recovered, _: &mut Context<Self>) {
        self.perform(msg.0, Vec::new());
    }
}

/// Client transactions.
#[derive(Message)]
#[rtype(result = "Result<(Vec<(Digest, Admission)>, Epoch), SubmitError>")]
pub struct Submit(
    pub Vec<Transaction>,
    pub Option<crate::component::ClientKey>,
);

impl Handler<Submit> for ConsensusActor {
    type Result = ResponseFuture<Result<Receipts, SubmitError>>;

    fn handle(&mut self, msg: Submit, ctx: &mut Context<Self>) -> Self::Result {
        let (receipts, fx) = match self.component.submit_from(msg.1, msg.0) {
            Ok(r) => r,
            // The WAL append failed: the client gets no answer and the replica stops.
            Err(SubmitError::Store(e)) => fatal(&e),
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        for (_, a) in &receipts {
            let label = match a {
                Admission::Accepted => "accepted",
                Admission::Duplicate => "duplicate",
            };
            self.metrics.submitted.with_label_values(&[label]).inc();
        }
        // The receipts acknowledge durability: they leave with the group's flush.
        let (tx, rx) = oneshot::channel();
        let epoch = self.component.epoch();
        self.waiting.receipts.push((tx, (receipts, epoch)));
        self.commit(fx, Vec::new(), ctx);
        Box::pin(async move { rx.await.map_err(|_| SubmitError::ShuttingDown) })
    }
}

/// Payloads from peers, with their gateway delivery identifiers.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Inbound(pub Vec<(NodeId, Bytes, u64)>);

impl Handler<Inbound> for ConsensusActor {
    type Result = ();

    fn handle(&mut self, msg: Inbound, ctx: &mut Context<Self>) {
        let mut fx = Effects::default();
        let mut acks = Vec::with_capacity(msg.0.len());
        self.metrics.received.inc_by(msg.0.len() as u64);
        for (sender, payload, delivery) in msg.0 {
            match self.component.inbound(sender, &payload) {
                Ok(more) => fx.extend(more),
                Err(e) => fatal(&e),
            }
            acks.push(delivery);
        }
        self.commit(fx, acks, ctx);
    }
}

/// A keystore request with the certificate that moves the keystore's signing horizon.
#[derive(Debug)]
pub struct KeystoreJob {
    /// The request.
    pub request: Request,
    /// The replica's latest commit certificate when the request was made.
    pub horizon: Option<CommitCertificate>,
}

/// Replies from the keystore.
#[derive(Message)]
#[rtype(result = "()")]
pub struct KeystoreReplies(pub Vec<Reply>);

impl Handler<KeystoreReplies> for ConsensusActor {
    type Result = ();

    fn handle(&mut self, msg: KeystoreReplies, ctx: &mut Context<Self>) {
        let mut fx = Effects::default();
        for reply in msg.0 {
            match self.component.reply(reply) {
                Ok(more) => fx.extend(more),
                Err(e) => fatal(&e),
            }
        }
        self.commit(fx, Vec::new(), ctx);
    }
}

/// The gateway link (re)connected: re-send what it may have lost.
#[derive(Message)]
#[rtype(result = "()")]
pub struct LinkUp;

impl Handler<LinkUp> for ConsensusActor {
    type Result = ();

    fn handle(&mut self, _: LinkUp, ctx: &mut Context<Self>) {
        // Some of these messages may stem from events whose flush is still pending: they go
        // out with the next group, never before their cause is durable.
        let fx = self.component.resend();
        self.commit(fx, Vec::new(), ctx);
    }
}

/// A status snapshot.
#[derive(Clone, Debug)]
pub struct StatusInfo {
    /// Lowest uncommitted epoch.
    pub epoch: Epoch,
    /// Pending transactions.
    pub buffered: usize,
    /// Transactions committed since start.
    pub committed_transactions: u64,
    /// Faults attributed since start.
    pub faults_observed: u64,
    /// Peers' announced epochs.
    pub peers: Vec<(NodeId, Epoch)>,
    /// Digest of the last committed batch.
    pub last_batch_digest: Option<Digest>,
}

/// Asks for the status.
#[derive(Message)]
#[rtype(result = "StatusInfo")]
pub struct Status;

impl Handler<Status> for ConsensusActor {
    type Result = MessageResult<Status>;

    fn handle(&mut self, _: Status, _: &mut Context<Self>) -> Self::Result {
        let node = self.component.node();
        MessageResult(StatusInfo {
            epoch: node.epoch(),
            buffered: node.buffer_len(),
            committed_transactions: self.component.committed_transactions(),
            faults_observed: self.component.faults_observed(),
            peers: node.peer_epochs().iter().map(|(p, e)| (*p, *e)).collect(),
            last_batch_digest: self.component.last_batch_digest(),
        })
    }
}

/// Reads stored fragments.
#[derive(Message)]
#[rtype(result = "Result<Option<StoredFragments>, StoreError>")]
pub struct ReadFragments {
    /// Epoch.
    pub epoch: Epoch,
    /// Proposer.
    pub proposer: NodeId,
}

impl Handler<ReadFragments> for ConsensusActor {
    type Result = Result<Option<StoredFragments>, StoreError>;

    fn handle(&mut self, msg: ReadFragments, _: &mut Context<Self>) -> Self::Result {
        self.component.store().fragments(msg.epoch, msg.proposer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(messages: usize, acks: usize, receipts: bool) -> Group {
        let mut g = Group::default();
        if receipts {
            let (tx, _rx) = oneshot::channel();
            g.receipts.push((tx, (Vec::new(), Epoch(0))));
        }
        let fx = Effects {
            messages: (0..messages)
                .map(|_| (NodeId(1), Bytes::from_static(b"m")))
                .collect(),
            ..Effects::default()
        };
        g.add(fx, (0..acks as u64).collect());
        g
    }

    #[test]
    fn only_acknowledgements_linger_and_anything_urgent_flushes_at_once() {
        assert_eq!(Group::default().next(false, false), Next::Wait);
        assert_eq!(group(0, 3, false).next(false, false), Next::Linger);
        assert_eq!(group(0, 3, false).next(false, true), Next::Wait);
        assert_eq!(group(1, 3, false).next(false, false), Next::Flush);
        assert_eq!(group(1, 0, false).next(false, true), Next::Flush);
        assert_eq!(group(0, 0, true).next(false, false), Next::Flush);
        // A running flush looks again when it completes.
        assert_eq!(group(1, 3, true).next(true, false), Next::Wait);
        // An urgent batch joining lingering acknowledgements takes them with it.
        let mut g = group(0, 2, false);
        assert_eq!(g.next(false, false), Next::Linger);
        let fx = Effects {
            requests: vec![Request::CoinShare(beat_core::CoinId {
                epoch: Epoch(0),
                instance: NodeId(0),
                round: 0,
            })],
            ..Effects::default()
        };
        g.add(fx, vec![7]);
        assert_eq!(g.next(false, true), Next::Flush);
        assert_eq!(g.acks, vec![0, 1, 7]);
        // Commits are urgent: watchers and clients wait on them.
        let mut g = group(0, 1, false);
        let fx = Effects {
            committed: vec![CommitEvent {
                batch: Arc::new(beat_core::Batch {
                    epoch: Epoch(0),
                    contributions: Vec::new(),
                    ordered_labels: Vec::new(),
                }),
                digest: Digest::default(),
                certificate: None,
            }],
            ..Effects::default()
        };
        g.add(fx, Vec::new());
        assert_eq!(g.next(false, false), Next::Flush);
    }
}
