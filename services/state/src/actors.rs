//! The actors: [`ApplierActor`] owns the [`Applier`] (on its own arbiter thread, so applying and
//! `fsync`ing an epoch never blocks the I/O threads) and [`FeedActor`] owns the [`Feed`] and
//! ticks it every batch interval. Each handler forwards to its component in a few lines.

use std::{sync::Arc, time::Duration};

use actix::{Actor, ActorContext, AsyncContext, Context, Handler, Message, MessageResponse};
use beat_crypto::Digest;
use beat_proto::{common::v1::Batch, state::v1 as pb};
use tokio::sync::{Notify, broadcast};

use crate::{
    applier::{Applied, Applier, ApplyError},
    feed::Feed,
    market::{EpochReport, LevelView, SymbolView},
    metrics::{DROPPED_REFUSED, Metrics},
};

/// Stops an actor.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Stop;

// === impl ApplierActor ===

/// Owns the applier; publishes every applied epoch's report to live watchers.
pub struct ApplierActor {
    /// The component.
    pub applier: Applier,
    /// Metrics.
    pub metrics: Metrics,
    /// Live epoch reports, for `WatchState`.
    pub reports: broadcast::Sender<Arc<EpochReport>>,
}

impl Actor for ApplierActor {
    type Context = Context<Self>;
}

impl Handler<Stop> for ApplierActor {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// Applies one committed batch.
#[derive(Message)]
#[rtype(result = "Result<(), ApplyError>")]
pub struct ApplyBatch(pub Batch);

impl Handler<ApplyBatch> for ApplierActor {
    type Result = Result<(), ApplyError>;

    fn handle(&mut self, msg: ApplyBatch, _: &mut Context<Self>) -> Self::Result {
        let timer = self.metrics.apply_seconds.start_timer();
        if let Applied::Epoch(report) = self.applier.process_batch(&msg.0)? {
            timer.observe_duration();
            self.metrics.record_epoch(&report);
            // No receiver is fine: nobody is watching.
            let _ = self.reports.send(report);
        }
        Ok(())
    }
}

/// The epoch to apply next.
#[derive(Message)]
#[rtype(result = "u64")]
pub struct NextEpoch;

impl Handler<NextEpoch> for ApplierActor {
    type Result = u64;

    fn handle(&mut self, _: NextEpoch, _: &mut Context<Self>) -> u64 {
        self.applier.state().next_epoch()
    }
}

/// The applied epoch, state hash and event total.
#[derive(Clone, Copy, Debug, PartialEq, Eq, MessageResponse)]
pub struct Progress {
    /// The last applied epoch.
    pub applied_epoch: Option<u64>,
    /// The state hash after it.
    pub state_hash: Digest,
    /// Events applied since genesis.
    pub events_applied: u64,
}

/// Asks for the [`Progress`].
#[derive(Message)]
#[rtype(result = "Progress")]
pub struct GetProgress;

impl Handler<GetProgress> for ApplierActor {
    type Result = Progress;

    fn handle(&mut self, _: GetProgress, _: &mut Context<Self>) -> Progress {
        let state = self.applier.state();
        Progress {
            applied_epoch: state.applied_epoch(),
            state_hash: state.state_hash(),
            events_applied: state.events_applied(),
        }
    }
}

/// One symbol's book.
#[derive(Debug, MessageResponse)]
pub struct BookView {
    /// When.
    pub progress: Progress,
    /// Bids, best first.
    pub bids: Vec<LevelView>,
    /// Asks, best first.
    pub asks: Vec<LevelView>,
}

/// Asks for one symbol's book, best levels first.
#[derive(Message)]
#[rtype(result = "BookView")]
pub struct GetBook {
    /// Symbol.
    pub symbol: String,
    /// Levels per side.
    pub depth: usize,
}

impl Handler<GetBook> for ApplierActor {
    type Result = BookView;

    fn handle(&mut self, msg: GetBook, ctx: &mut Context<Self>) -> BookView {
        let (bids, asks) = self.applier.state().book(&msg.symbol, msg.depth);
        let progress = self.handle(GetProgress, ctx);
        BookView {
            progress,
            bids,
            asks,
        }
    }
}

/// Every symbol's statistics.
#[derive(Debug, MessageResponse)]
pub struct SymbolsView {
    /// When.
    pub progress: Progress,
    /// By symbol.
    pub symbols: Vec<SymbolView>,
}

/// Asks for every symbol's statistics.
#[derive(Message)]
#[rtype(result = "SymbolsView")]
pub struct GetSymbols;

impl Handler<GetSymbols> for ApplierActor {
    type Result = SymbolsView;

    fn handle(&mut self, _: GetSymbols, ctx: &mut Context<Self>) -> SymbolsView {
        let progress = self.handle(GetProgress, ctx);
        let symbols = self.applier.state().symbols();
        SymbolsView { progress, symbols }
    }
}

// === impl FeedActor ===

/// Owns the synthetic feed and its queue.
pub struct FeedActor {
    /// The component.
    pub feed: Feed,
    /// How often to tick.
    pub interval: Duration,
    /// Metrics.
    pub metrics: Metrics,
    /// Wakes the submitter when events are queued.
    pub queued: Arc<Notify>,
}

impl FeedActor {
    fn on_tick(&mut self) {
        let tick = self.feed.on_tick();
        self.metrics.feed_events.inc_by(tick.generated as u64);
        if tick.dropped > 0 {
            self.metrics
                .feed_dropped
                .with_label_values(&[crate::metrics::DROPPED_QUEUE_FULL])
                .inc_by(tick.dropped as u64);
        }
        self.metrics.feed_queue.set(self.feed.pending() as i64);
        if tick.generated > 0 {
            self.queued.notify_one();
        }
    }
}

impl Actor for FeedActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        tracing::info!(source = self.feed.source(), "synthetic feed started");
        ctx.run_interval(self.interval, |actor, _| actor.on_tick());
    }
}

impl Handler<Stop> for FeedActor {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// Takes up to `.0` queued events for one `Submit`.
#[derive(Message)]
#[rtype(result = "Vec<pb::MarketEvent>")]
pub struct TakeBatch(pub usize);

impl Handler<TakeBatch> for FeedActor {
    type Result = Vec<pb::MarketEvent>;

    fn handle(&mut self, msg: TakeBatch, _: &mut Context<Self>) -> Self::Result {
        self.feed.take(msg.0)
    }
}

/// Releases taken events: acknowledged by consensus, or (`refused`) given up on.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Release {
    /// How many.
    pub count: usize,
    /// Whether consensus refused them rather than accepting them.
    pub refused: bool,
}

impl Handler<Release> for FeedActor {
    type Result = ();

    fn handle(&mut self, msg: Release, _: &mut Context<Self>) {
        self.feed.acknowledge(msg.count);
        if msg.refused {
            let dropped = self
                .metrics
                .feed_dropped
                .with_label_values(&[DROPPED_REFUSED]);
            dropped.inc_by(msg.count as u64);
        }
        self.metrics.feed_queue.set(self.feed.pending() as i64);
    }
}
