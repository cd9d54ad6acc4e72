//! The `beat.state.v1.MarketService` implementation: validates requests, forwards them to the
//! actors or to consensus, converts the answers.

use std::sync::Arc;

use actix::Addr;
use beat_proto::{
    consensus::v1::Admission,
    state::v1::{
        self as pb, GetBookRequest, GetBookResponse, GetStateRequest, GetStateResponse,
        PublishRequest, PublishResponse, StatusRequest, StatusResponse, WatchStateRequest,
        WatchStateResponse, market_service_server::MarketService,
    },
};
use beat_telemetry::{
    shutdown::Shutdown,
    watch::{Ended, Taken, Watcher, history_then_live},
};
use bytes::Bytes;
use tokio::{
    sync::{broadcast, mpsc},
    task::JoinSet,
};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::{
    actors::{ApplierActor, GetBook, GetProgress, GetSymbols, SymbolsView},
    config::MAX_PUBLISH_EVENTS,
    consensus::Consensus,
    encode::TxEncoder,
    error::StateServiceError,
    market::{EpochReport, LevelView, event::Event, event::is_valid_symbol},
    metrics::Connectivity,
    store::Store,
};

/// Book depth when the request says 0.
pub const DEFAULT_DEPTH: u32 = 10;
/// Largest book depth.
pub const MAX_DEPTH: u32 = 1000;
/// Reports read from the store per step while a watcher catches up.
/// Watchers open now, given back when a stream ends.
#[derive(Clone, Debug, Default)]
pub struct WatchSlots(Arc<std::sync::atomic::AtomicUsize>);

struct WatchSlot(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for WatchSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl WatchSlots {
    fn take(&self, max: usize) -> Option<WatchSlot> {
        use std::sync::atomic::Ordering::Relaxed;
        self.0
            .fetch_update(Relaxed, Relaxed, |n| (n < max).then_some(n + 1))
            .ok()
            .map(|_| WatchSlot(self.0.clone()))
    }
}

/// The gRPC shell.
pub struct MarketGrpc {
    /// The market state.
    pub applier: Addr<ApplierActor>,
    /// Consensus, for `Publish`.
    pub consensus: Consensus,
    /// Encodes published events.
    pub encoder: Arc<TxEncoder>,
    /// The store, for the retained epoch reports.
    pub store: Store,
    /// Live epoch reports.
    pub reports: broadcast::Sender<Arc<EpochReport>>,
    /// Whether consensus is reachable.
    pub connectivity: Connectivity,
    /// This replica.
    pub replica: u32,
    /// Whether the synthetic feed runs.
    pub feed_running: bool,
    /// Ends `WatchState` streams.
    pub shutdown: Shutdown,
    /// The `WatchState` streams in progress.
    pub watchers: Watchers,
    /// Their limits.
    pub watch: crate::config::WatchConfig,
    /// How many are open.
    pub watch_slots: WatchSlots,
    /// The API's connections, to cut off a watcher that stopped reading.
    pub connections: beat_telemetry::api::Connections,
    /// The market's source registry: `Publish` refuses what the applier would skip.
    pub sources: Arc<std::collections::BTreeMap<String, beat_crypto::identity::IdentityPublicKey>>,
}

/// The `WatchState` streams in progress, so that shutdown can end them all (and with them
/// their handles on the store) before the service returns.
#[derive(Clone, Default)]
pub struct Watchers(Arc<parking_lot::Mutex<JoinSet<()>>>);

impl Watchers {
    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let mut set = self.0.lock();
        // Reap finished streams so the set does not grow.
        while set.try_join_next().is_some() {}
        set.spawn(task);
    }

    /// Ends every stream and waits for them.
    pub async fn stop(&self) {
        let mut set = std::mem::take(&mut *self.0.lock());
        set.shutdown().await;
    }
}

fn levels(levels: Vec<LevelView>) -> Vec<pb::Level> {
    levels
        .into_iter()
        .map(|l| pb::Level {
            price: l.price,
            quantity: l.quantity,
            orders: l.orders,
        })
        .collect()
}

fn hash_bytes(digest: beat_crypto::Digest) -> Bytes {
    Bytes::copy_from_slice(digest.as_bytes())
}

fn report_to_proto(report: &EpochReport) -> WatchStateResponse {
    WatchStateResponse {
        epoch: report.epoch,
        state_hash: hash_bytes(report.state_hash),
        events: report.events,
        executions: report
            .executions
            .iter()
            .map(|e| pb::Execution {
                symbol: e.symbol.clone(),
                price: e.price,
                quantity: e.quantity,
                taker: e.taker.to_string(),
                maker: e.maker.to_string(),
                self_trade: e.is_self_trade(),
            })
            .collect(),
        rejected: report.rejected_total(),
    }
}

#[tonic::async_trait]
impl MarketService for MarketGrpc {
    async fn publish(
        &self,
        request: Request<PublishRequest>,
    ) -> Result<Response<PublishResponse>, Status> {
        let events = request.into_inner().events;
        if events.is_empty() || events.len() > MAX_PUBLISH_EVENTS {
            return Err(StateServiceError::invalid(
                "events",
                format!(
                    "must hold 1..={MAX_PUBLISH_EVENTS} events, got {}",
                    events.len()
                ),
            )
            .into());
        }
        for (i, event) in events.iter().enumerate() {
            crate::market::sources::check(&self.sources, event)
                .and_then(|()| Event::try_from(event.clone()))
                .map_err(|r| {
                    StateServiceError::invalid(format!("events[{i}].{}", r.field), r.problem)
                })?;
        }
        let transactions = self
            .encoder
            .encode_all_blocking(events)
            .await
            .map_err(StateServiceError::from)?;
        let response = self
            .consensus
            .submit(transactions)
            .await
            .map_err(StateServiceError::from)?;
        let accepted = response
            .receipts
            .iter()
            .filter(|r| matches!(r.admission(), Admission::Accepted | Admission::Duplicate))
            .count();
        Ok(Response::new(PublishResponse {
            accepted: u32::try_from(accepted).unwrap_or(u32::MAX),
            epoch: response.epoch,
        }))
    }

    async fn get_book(
        &self,
        request: Request<GetBookRequest>,
    ) -> Result<Response<GetBookResponse>, Status> {
        let GetBookRequest { symbol, depth } = request.into_inner();
        if !is_valid_symbol(&symbol) {
            return Err(StateServiceError::invalid(
                "symbol",
                "must be 1-32 characters from [A-Z0-9._/-] starting with a letter or digit",
            )
            .into());
        }
        let depth = match depth {
            0 => DEFAULT_DEPTH,
            d if d > MAX_DEPTH => {
                return Err(StateServiceError::invalid(
                    "depth",
                    format!("must be at most {MAX_DEPTH}, got {d}"),
                )
                .into());
            }
            d => d,
        };
        let book = self
            .applier
            .send(GetBook {
                symbol: symbol.clone(),
                depth: depth as usize,
            })
            .await
            .map_err(StateServiceError::from)?;
        Ok(Response::new(GetBookResponse {
            symbol,
            bids: levels(book.bids),
            asks: levels(book.asks),
            epoch: book.progress.applied_epoch,
        }))
    }

    async fn get_state(
        &self,
        _: Request<GetStateRequest>,
    ) -> Result<Response<GetStateResponse>, Status> {
        let SymbolsView { progress, symbols } = self
            .applier
            .send(GetSymbols)
            .await
            .map_err(StateServiceError::from)?;
        Ok(Response::new(GetStateResponse {
            epoch: progress.applied_epoch,
            state_hash: hash_bytes(progress.state_hash),
            events_applied: progress.events_applied,
            symbols: symbols
                .into_iter()
                .map(|s| pb::SymbolState {
                    vwap: s.stats.vwap(),
                    symbol: s.symbol,
                    last_price: s.stats.last_price,
                    volume: u64::try_from(s.stats.volume).unwrap_or(u64::MAX),
                    trades: s.stats.trades,
                    best_bid: s.best_bid.unwrap_or(0),
                    best_ask: s.best_ask.unwrap_or(0),
                    quote_mid: s.stats.quote_mid,
                })
                .collect(),
        }))
    }

    type WatchStateStream = ReceiverStream<Result<WatchStateResponse, Status>>;

    async fn watch_state(
        &self,
        request: Request<WatchStateRequest>,
    ) -> Result<Response<Self::WatchStateStream>, Status> {
        let peer = request.remote_addr();
        let from_epoch = request.into_inner().from_epoch;
        let slot = self
            .watch_slots
            .take(self.watch.max_watchers)
            .ok_or_else(|| {
                Status::resource_exhausted(format!(
                    "{} WatchState streams are open, the most this service serves; retry later",
                    self.watch.max_watchers
                ))
            })?;
        // Subscribe before reading the store: every report persisted after the read is then
        // also broadcast to this subscription.
        let live = self.reports.subscribe();
        let progress = self
            .applier
            .send(GetProgress)
            .await
            .map_err(StateServiceError::from)?;
        let applied = progress.applied_epoch.is_some_and(|e| from_epoch <= e);
        let oldest = self
            .store
            .oldest_report()
            .map_err(StateServiceError::from)?;
        if let (true, Some(oldest)) = (applied, oldest)
            && from_epoch < oldest
        {
            return Err(StateServiceError::OutOfRange {
                requested: from_epoch,
                oldest,
            }
            .into());
        }
        let (sender, receiver) = mpsc::channel(self.watch.buffered_reports);
        let watcher = StateWatcher {
            next: from_epoch,
            store: self.store.clone(),
            sender,
            chunk: self.watch.buffered_reports,
            slow: self.watch.slow_watcher,
            connections: self.connections.clone(),
            peer,
            shutdown: self.shutdown.clone(),
            _slot: slot,
        };
        self.watchers.spawn(watcher.run(live));
        Ok(Response::new(ReceiverStream::new(receiver)))
    }

    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let progress = self
            .applier
            .send(GetProgress)
            .await
            .map_err(StateServiceError::from)?;
        Ok(Response::new(StatusResponse {
            replica: self.replica,
            applied_epoch: progress.applied_epoch,
            state_hash: hash_bytes(progress.state_hash),
            events_applied: progress.events_applied,
            feed_running: self.feed_running,
            consensus_connected: self.connectivity.is_connected(),
        }))
    }
}

/// Streams one `WatchState` subscription: stored reports from `next` on, then live ones. When
/// it falls behind the live channel it catches up from the store again.
struct StateWatcher {
    next: u64,
    store: Store,
    sender: mpsc::Sender<Result<WatchStateResponse, Status>>,
    /// Ends the watch when the service stops.
    shutdown: Shutdown,
    /// Reports read from the store at a time.
    chunk: usize,
    /// How long a report may wait for the client.
    slow: std::time::Duration,
    connections: beat_telemetry::api::Connections,
    peer: Option<std::net::SocketAddr>,
    _slot: WatchSlot,
}

impl Watcher for StateWatcher {
    type Item = Arc<EpochReport>;

    async fn catch_up(&mut self) -> Result<(), Ended> {
        match self.send_stored().await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Ended),
            Err(status) => {
                let _ = self.sender.send(Err(status)).await;
                Err(Ended)
            }
        }
    }

    async fn take(&mut self, report: Arc<EpochReport>) -> Result<Taken, Ended> {
        if report.epoch < self.next {
            Ok(Taken::Done)
        } else if report.epoch > self.next {
            // Missed some (they are stored before they are broadcast): catch up.
            Ok(Taken::Gap)
        } else if self.send(&report).await {
            Ok(Taken::Done)
        } else {
            Err(Ended)
        }
    }

    async fn wait<T: Send>(&self, next: impl Future<Output = T> + Send) -> Result<T, Ended> {
        tokio::select! {
            r = next => Ok(r),
            _ = self.sender.closed() => Err(Ended),
            _ = self.shutdown.wait() => Err(Ended),
        }
    }
}

impl StateWatcher {
    /// Stored reports from `next` on, then live ones (subscribed before the first read); back
    /// to the store whenever it falls behind.
    async fn run(mut self, live: broadcast::Receiver<Arc<EpochReport>>) {
        history_then_live(&mut self, live).await;
    }

    /// Sends the stored reports from `next` on. Returns `false` if the client has gone.
    async fn send_stored(&mut self) -> Result<bool, Status> {
        loop {
            let reports = self
                .store
                .reports(self.next, self.chunk)
                .map_err(StateServiceError::from)?;
            if let Some(first) = reports.first()
                && first.epoch > self.next
            {
                return Err(StateServiceError::OutOfRange {
                    requested: self.next,
                    oldest: first.epoch,
                }
                .into());
            }
            for report in &reports {
                if !self.send(report).await {
                    return Ok(false);
                }
            }
            if reports.len() < self.chunk {
                return Ok(true);
            }
        }
    }

    /// Sends one report; `false` if the client has gone, or took nothing for `slow` (then its
    /// connection is closed: what HTTP/2 queued for it is only given back that way).
    async fn send(&mut self, report: &EpochReport) -> bool {
        self.next = report.epoch + 1;
        match tokio::time::timeout(self.slow, self.sender.send(Ok(report_to_proto(report)))).await {
            Ok(sent) => sent.is_ok(),
            Err(_) => {
                if let Some(peer) = self.peer {
                    self.connections.close(peer, "watcher_slow");
                }
                false
            }
        }
    }
}
