//! `WatchBatches`: committed batches (with their commit certificates) streamed to clients,
//! served off the consensus actor and within a memory budget.
//!
//! - **Off the actor.** History is read from the store through a [`BatchReader`] (shared
//!   index, `pread` outside any lock), one batch at a time, so a thousand watchers replaying
//!   from epoch 0 cost the protocol nothing but the page cache. Live epochs come from the
//!   actor's broadcast of commit events; a watcher that lags behind it goes back to storage.
//! - **Bounded memory.** A watcher produces its next response only when the previous one was
//!   handed over, and every response holds its encoded size against one budget of
//!   `memory_bytes` for all watchers until HTTP/2 has taken it off the server (it is released
//!   when the stream asks for the response after next: hyper keeps one response in the HTTP/2
//!   send queue and one waiting for flow-control capacity). Budget is taken *before* a
//!   response is built (from the stored length or an estimate), so watchers waiting for it
//!   hold no decoded batch. (tonic packs small responses into one HTTP/2 chunk of up to
//!   32 KiB, asking for several before hyper sees any: up to that much per watcher may be
//!   released early.)
//! - **Every open stream holds a reserve.** Besides its responses, an admitted watcher holds
//!   [`STREAM_RESERVE`] (32 KiB) of the budget for as long as its stream is open: what the
//!   responses' count cannot see — the chunk tonic encodes into before hyper asks (above), the
//!   HTTP/2 stream and the watcher's task. Without it 1,000 watchers that stopped reading held
//!   about 25 KiB each beyond the budget (e2e `abuse`, release build: consensus peaked at
//!   99–101 MiB); with it `memory_bytes` bounds all of a watcher's memory, and 16 MiB admits at
//!   most about 500 watchers however small their responses.
//! - **Idle watchers keep their last response counted.** A watcher at the live edge has asked
//!   for more; whether HTTP/2 has written its last response or holds it for a client that
//!   advertised a zero window is invisible from here (hyper asks for the next response right
//!   after queueing one), so it stays counted until the next one is asked for. Releasing it
//!   on a timer was tried: 1,000 watchers that stop reading then held 55 MiB the budget did
//!   not see (e2e `abuse`). The price: `memory_bytes` must cover one response per watcher
//!   that keeps up (16 MiB: about 80 watchers of 200 KB epochs). A new watcher is admitted
//!   only while its reserve and twice the largest response so far are free, so the watchers
//!   already served can always take their next response; beyond that, and beyond
//!   `max_watchers`, a watcher is refused with `RESOURCE_EXHAUSTED` (watch another replica, or
//!   fan out behind one).
//! - **Slow watchers are cut off.** A watcher whose stream hyper has not asked for a response
//!   for `slow_watcher_ms` since it took the last one (hyper waits for flow-control capacity:
//!   the client stopped reading) would hold its share of the budget for ever. A watchdog in
//!   its task notices — while it waits for a commit, for budget or to hand over a response —
//!   and its connection is closed ([`Connections::close`], counted as
//!   `beat_api_connections_refused_total{reason="watcher_slow"}` and
//!   `beat_watch_cut_total{reason="slow"}`): nothing sent on the stream could reach a client
//!   whose window is shut, and closing the connection is the only way to take back what HTTP/2
//!   queued for it. A watcher that cannot get budget within twice `slow_watcher_ms` (others
//!   hold it) is cut off the same way, not told: a client that stopped reading looks, from
//!   here, like one that keeps up whenever hyper has queued its last response and asked for
//!   the next (see below), and ending its stream normally would release the budget while
//!   HTTP/2 still holds that response. The client sees `UNAVAILABLE` and resumes from the
//!   epoch after its last response, here or at another replica.

use std::{
    collections::{BTreeMap, VecDeque},
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use beat_core::{Batch, CommitCertificate, Content};
use beat_crypto::Digest;
use beat_proto::consensus::v1::WatchBatchesResponse;
use beat_telemetry::{
    api::Connections,
    watch::{Ended, Taken, Watcher, history_then_live},
};
use beat_types::Epoch;
use futures::Stream;
use parking_lot::Mutex;
use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, mpsc};
use tonic::Status;

use crate::{component::CommitEvent, convert, store::BatchReader};

/// The limits of `WatchBatches` (module docs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WatchLimits {
    /// Most watchers at once.
    pub max_watchers: usize,
    /// Encoded responses held for all watchers at once, and each open stream's reserve of
    /// [`STREAM_RESERVE`], in bytes.
    pub memory_bytes: usize,
    /// A watcher that takes no response (or gets no budget) for this long is cut off, in
    /// milliseconds.
    pub slow_watcher_ms: u64,
}

impl Default for WatchLimits {
    fn default() -> Self {
        Self {
            max_watchers: 1024,
            memory_bytes: 16 << 20,
            slow_watcher_ms: 15_000,
        }
    }
}

impl WatchLimits {
    /// Checks the limits.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_watchers == 0 || self.slow_watcher_ms == 0 {
            return Err("watch: max_watchers and slow_watcher_ms must be at least 1".to_owned());
        }
        if self.memory_bytes < 1 << 20 {
            return Err("watch: memory_bytes must be at least 1 MiB".to_owned());
        }
        Ok(())
    }
}

/// `beat_watch_*`.
#[derive(Clone)]
struct WatchMetrics {
    watchers: IntGauge,
    buffered: IntGauge,
    cut: IntCounterVec,
}

/// Budget is counted in KiB (a semaphore's permits are a `u32`).
const UNIT: usize = 1024;

/// The budget an open stream holds besides its responses (module docs).
pub const STREAM_RESERVE: usize = 32 * 1024;

/// Serves `WatchBatches` (module docs).
#[derive(Clone)]
pub struct Watchers {
    reader: BatchReader,
    committed: broadcast::Sender<Arc<CommitEvent>>,
    connections: Connections,
    limits: WatchLimits,
    active: Arc<AtomicUsize>,
    memory: Arc<Semaphore>,
    units: usize,
    /// The largest response so far, in budget units.
    largest: Arc<AtomicUsize>,
    metrics: WatchMetrics,
}

/// The response stream of one watcher.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchBatchesResponse, Status>> + Send>>;

impl Watchers {
    /// Watchers of `reader`'s batches and of the live `committed` events, within `limits`;
    /// slow ones are cut off through `connections`; metrics in `registry`.
    pub fn new(
        reader: BatchReader,
        committed: broadcast::Sender<Arc<CommitEvent>>,
        connections: Connections,
        limits: WatchLimits,
        registry: &Registry,
    ) -> prometheus::Result<Self> {
        let metrics = WatchMetrics {
            watchers: IntGauge::new("beat_watch_watchers", "WatchBatches streams open")?,
            buffered: IntGauge::new(
                "beat_watch_buffered_bytes",
                "Encoded WatchBatches responses held for watchers and the open streams' \
                 reserves (the memory budget in use)",
            )?,
            cut: IntCounterVec::new(
                Opts::new(
                    "beat_watch_cut_total",
                    "Watchers ended by a limit (slow: took nothing for slow_watcher_ms; \
                     budget: got no memory budget in time; max_watchers, admission: refused \
                     at the start)",
                ),
                &["reason"],
            )?,
        };
        registry.register(Box::new(metrics.watchers.clone()))?;
        registry.register(Box::new(metrics.buffered.clone()))?;
        registry.register(Box::new(metrics.cut.clone()))?;
        let units = (limits.memory_bytes / UNIT).min(Semaphore::MAX_PERMITS);
        Ok(Self {
            reader,
            committed,
            connections,
            active: Arc::new(AtomicUsize::new(0)),
            memory: Arc::new(Semaphore::new(units)),
            units,
            largest: Arc::new(AtomicUsize::new(1)),
            limits,
            metrics,
        })
    }

    /// Starts a watcher from `from` (only certified epochs if `certified`) for the client at
    /// `peer`.
    pub fn watch(
        &self,
        from: Epoch,
        certified: bool,
        peer: Option<SocketAddr>,
    ) -> Result<WatchStream, Status> {
        let taken = self
            .active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limits.max_watchers).then_some(n + 1)
            })
            .is_ok();
        if !taken {
            self.metrics.cut.with_label_values(&["max_watchers"]).inc();
            return Err(Status::resource_exhausted(format!(
                "this replica serves {} watchers already; retry later or watch another replica",
                self.limits.max_watchers
            )));
        }
        let reserve = STREAM_RESERVE / UNIT;
        let margin = self.largest.load(Ordering::Acquire).saturating_mul(2);
        let needed = margin.saturating_add(reserve).min(self.units);
        let reserved = if self.memory.available_permits() < needed {
            None
        } else {
            self.memory
                .clone()
                .try_acquire_many_owned(reserve as u32)
                .ok()
        };
        let Some(reserved) = reserved else {
            self.active.fetch_sub(1, Ordering::AcqRel);
            self.metrics.cut.with_label_values(&["admission"]).inc();
            return Err(Status::resource_exhausted(
                "the watchers of this replica hold its watch memory; retry later or watch \
                 another replica",
            ));
        };
        self.metrics.watchers.inc();
        let slot = WatcherSlot {
            active: self.active.clone(),
            gauge: self.metrics.watchers.clone(),
        };
        let (tx, rx) = mpsc::channel(1);
        let progress = Arc::new(Mutex::new(Progress {
            last_poll: tokio::time::Instant::now(),
            waiting: true,
        }));
        let mut producer = Producer {
            watchers: self.clone(),
            progress: progress.clone(),
            next: from,
            certified,
            peer,
            ahead: BTreeMap::new(),
            tx,
        };
        let live = self.committed.subscribe();
        tokio::spawn(async move { producer.run(live).await });
        Ok(Box::pin(Delivered {
            rx,
            progress,
            held: VecDeque::new(),
            reserved: Some(reserved),
            memory: self.memory.clone(),
            units: self.units,
            buffered: self.metrics.buffered.clone(),
            _slot: slot,
        }))
    }
}

/// A watcher's place in the count, given back when its stream is dropped.
struct WatcherSlot {
    active: Arc<AtomicUsize>,
    gauge: IntGauge,
}

impl Drop for WatcherSlot {
    fn drop(&mut self) {
        self.active.fetch_sub(1, Ordering::AcqRel);
        self.gauge.dec();
    }
}

type Item = (
    Result<WatchBatchesResponse, Status>,
    Option<OwnedSemaphorePermit>,
);

/// The stream hyper polls: yields responses and holds each one's budget until the response
/// after next is asked for (module docs).
struct Delivered {
    rx: mpsc::Receiver<Item>,
    progress: Arc<Mutex<Progress>>,
    held: VecDeque<OwnedSemaphorePermit>,
    /// The stream's reserve ([`STREAM_RESERVE`]), given back when it is dropped.
    reserved: Option<OwnedSemaphorePermit>,
    memory: Arc<Semaphore>,
    units: usize,
    buffered: IntGauge,
    _slot: WatcherSlot,
}

impl Delivered {
    fn report(&self) {
        let used = self.units.saturating_sub(self.memory.available_permits()) * UNIT;
        self.buffered.set(i64::try_from(used).unwrap_or(i64::MAX));
    }
}

impl Stream for Delivered {
    type Item = Result<WatchBatchesResponse, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // Asked for another response: the one before the last is off the server.
        while self.held.len() > 1 {
            self.held.pop_front();
        }
        let this = &mut *self;
        let out = match this.rx.poll_recv(cx) {
            Poll::Ready(Some((item, permit))) => {
                if let Some(p) = permit {
                    this.held.push_back(p);
                }
                Poll::Ready(Some(item))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        };
        *this.progress.lock() = Progress {
            last_poll: tokio::time::Instant::now(),
            waiting: out.is_pending(),
        };
        self.report();
        out
    }
}

impl Drop for Delivered {
    fn drop(&mut self) {
        self.held.clear();
        self.reserved = None;
        self.report();
    }
}

/// What a watcher's task sees of its stream.
#[derive(Clone, Copy, Debug)]
struct Progress {
    /// When hyper last asked for a response.
    last_poll: tokio::time::Instant,
    /// Whether that found none ready (hyper waits for us: the client keeps up). If not, hyper
    /// took a response and has not come back: it waits for the client's window.
    waiting: bool,
}

/// One watcher's task: the next epoch to send and, for a certified watcher, certified epochs
/// that arrived before it.
struct Producer {
    watchers: Watchers,
    progress: Arc<Mutex<Progress>>,
    next: Epoch,
    certified: bool,
    peer: Option<SocketAddr>,
    ahead: BTreeMap<Epoch, (Arc<Batch>, Digest, CommitCertificate)>,
    tx: mpsc::Sender<Item>,
}

/// About the encoded size of `batch`'s response (an upper estimate: the protobuf framing of
/// each transaction, contribution and label, plus the certificate).
fn estimate(batch: &Batch) -> usize {
    let contributions: usize = batch
        .contributions
        .iter()
        .map(|c| match &c.content {
            Content::Transactions(txs) => txs.iter().map(|t| t.len() + 6).sum::<usize>() + 16,
            Content::Rejected(_) | Content::Stored(_) => 64,
        })
        .sum();
    contributions + 40 * batch.ordered_labels.len() + 512
}

/// About the encoded size of a response whose batch is stored in `len` bytes (postcard frames
/// a transaction in fewer bytes than protobuf; a certificate is stored apart).
fn stored_estimate(len: usize) -> usize {
    len + len / 8 + 512
}

/// Most certified epochs a certified watcher keeps while waiting for an earlier epoch's
/// certificate (certificates form at most `certify_window` epochs out of order); they are
/// shared with the broadcast, not copies.
const MAX_AHEAD: usize = 64;

impl Watcher for Producer {
    type Item = Arc<CommitEvent>;

    async fn catch_up(&mut self) -> Result<(), Ended> {
        self.send_stored().await
    }

    async fn take(&mut self, event: Arc<CommitEvent>) -> Result<Taken, Ended> {
        self.on_event(event).await
    }

    async fn wait<T: Send>(&self, next: impl Future<Output = T> + Send) -> Result<T, Ended> {
        self.guarded(next).await
    }
}

impl Producer {
    /// History first (the subscription already buffers what commits meanwhile), then live.
    async fn run(&mut self, live: broadcast::Receiver<Arc<CommitEvent>>) {
        history_then_live(self, live).await;
    }

    fn slow(&self) -> Duration {
        Duration::from_millis(self.watchers.limits.slow_watcher_ms)
    }

    /// Whether the client stopped taking responses `slow` ago (see [`Progress`]).
    fn stuck(&self) -> bool {
        let p = *self.progress.lock();
        !p.waiting && p.last_poll.elapsed() >= self.slow()
    }

    /// Cuts the watcher off by closing its connection (module docs), for `reason`: `slow`
    /// (it took nothing) or `budget` (it got none in time).
    fn cut(&self, reason: &'static str) -> Ended {
        let w = &self.watchers;
        w.metrics.cut.with_label_values(&[reason]).inc();
        tracing::info!(
            peer = ?self.peer,
            epoch = %self.next,
            reason,
            "cutting a watcher off; closing its connection"
        );
        if let Some(peer) = self.peer {
            w.connections.close(peer, &format!("watcher_{reason}"));
        }
        Ended
    }

    /// Runs `fut`, checking meanwhile that the client still takes responses and is still
    /// there (a watcher that went away ends now, not at the next commit).
    async fn guarded<T>(&self, fut: impl Future<Output = T>) -> Result<T, Ended> {
        tokio::pin!(fut);
        let tick = (self.slow() / 4).max(Duration::from_millis(50));
        loop {
            tokio::select! {
                out = &mut fut => return Ok(out),
                () = self.tx.closed() => return Err(Ended),
                () = tokio::time::sleep(tick) => {
                    if self.stuck() {
                        return Err(self.cut("slow"));
                    }
                }
            }
        }
    }

    /// Ends the watcher with `status` if it can still be delivered.
    fn tell(&self, status: Status) -> Ended {
        let _ = self.tx.try_send((Err(status), None));
        Ended
    }

    /// Takes budget for a response of about `bytes` (before building it: a thousand
    /// watchers must not each hold a decoded batch while they wait).
    async fn budget(&self, bytes: usize) -> Result<OwnedSemaphorePermit, Ended> {
        let w = &self.watchers;
        let units = bytes.div_ceil(UNIT).clamp(1, w.units);
        w.largest.fetch_max(units, Ordering::AcqRel);
        let acquire = w
            .memory
            .clone()
            .acquire_many_owned(u32::try_from(units).unwrap_or(u32::MAX));
        match self
            .guarded(tokio::time::timeout(self.slow() * 2, acquire))
            .await?
        {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(Ended),
            Err(_) => Err(self.cut("budget")),
        }
    }

    /// Sends a live batch; `digest` is its digest, hashed once by the certification step.
    async fn send(
        &mut self,
        batch: &Batch,
        digest: &Digest,
        certificate: Option<&CommitCertificate>,
    ) -> Result<(), Ended> {
        let permit = self.budget(estimate(batch)).await?;
        self.send_with(permit, batch, digest, certificate).await
    }

    async fn send_with(
        &mut self,
        permit: OwnedSemaphorePermit,
        batch: &Batch,
        digest: &Digest,
        certificate: Option<&CommitCertificate>,
    ) -> Result<(), Ended> {
        let response = WatchBatchesResponse {
            batch: Some(convert::batch(batch, digest)),
            certificate: certificate.map(convert::certificate),
        };
        self.guarded(self.tx.send((Ok(response), Some(permit))))
            .await?
            .map_err(|_| Ended)?;
        self.next = self.next.next();
        self.ahead = self.ahead.split_off(&self.next);
        Ok(())
    }

    /// Sends what storage holds from `next` on (for a certified watcher: up to the first epoch
    /// not certified yet), one batch at a time, then what waited in `ahead`.
    async fn send_stored(&mut self) -> Result<(), Ended> {
        while let Some(len) = self.watchers.reader.stored_len(self.next) {
            let permit = self.budget(stored_estimate(len)).await?;
            let read = self.watchers.reader.batches_within(self.next, 1, 0);
            let stored = match read {
                Ok(mut batches) => batches.pop(),
                Err(e) => {
                    tracing::error!(error = %e, "a watcher could not read the store");
                    return Err(self.tell(Status::internal(e.to_string())));
                }
            };
            let Some(stored) = stored else { break };
            if stored.batch.epoch != self.next || (self.certified && stored.certificate.is_none()) {
                break;
            }
            // Read back from storage: hashed here (catch-up, not the live path).
            let digest = stored.batch.digest();
            self.send_with(permit, &stored.batch, &digest, stored.certificate.as_ref())
                .await?;
        }
        self.drain_ahead().await
    }

    async fn drain_ahead(&mut self) -> Result<(), Ended> {
        while let Some((batch, digest, certificate)) = self.ahead.remove(&self.next) {
            self.send(&batch, &digest, Some(&certificate)).await?;
        }
        Ok(())
    }

    /// A live commit or certification.
    async fn on_event(&mut self, event: Arc<CommitEvent>) -> Result<Taken, Ended> {
        let epoch = event.batch.epoch;
        if epoch < self.next || (self.certified && event.certificate.is_none()) {
            return Ok(Taken::Done);
        }
        if epoch == self.next {
            self.send(&event.batch, &event.digest, event.certificate.as_ref())
                .await?;
            self.drain_ahead().await?;
            return Ok(Taken::Done);
        }
        // An epoch after the next one: the next one was missed, or (certified) is certified
        // later than this one. Keep this one and look in storage.
        if let Some(certificate) = &event.certificate
            && self.ahead.len() < MAX_AHEAD
        {
            self.ahead
                .insert(epoch, (event.batch.clone(), event.digest, *certificate));
        }
        Ok(Taken::Gap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    /// Watchers of an empty store within `memory_bytes`, and the store's directory.
    async fn watchers(memory_bytes: usize) -> (Watchers, std::path::PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("beat-watch-{}-{memory_bytes}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let registry = Registry::new();
        let (_, connections) = beat_telemetry::api::limited_incoming(
            listener,
            &beat_telemetry::api::ApiLimits::default(),
            &registry,
        )
        .unwrap();
        let limits = WatchLimits {
            memory_bytes,
            ..WatchLimits::default()
        };
        let (committed, _) = broadcast::channel(4);
        let watchers = Watchers::new(
            store.batch_reader(),
            committed,
            connections,
            limits,
            &registry,
        )
        .unwrap();
        (watchers, dir)
    }

    #[tokio::test]
    async fn every_open_stream_holds_its_reserve_of_the_budget() {
        let (watchers, dir) = watchers(1 << 20).await;
        // 1 MiB holds 32 reserves of 32 KiB; a new watcher also needs twice the largest
        // response (1 KiB so far) free, so the 32nd is refused.
        let mut open = Vec::new();
        let refused = loop {
            match watchers.watch(Epoch(0), false, None) {
                Ok(stream) => open.push(stream),
                Err(status) => break status,
            }
            assert!(open.len() <= 32, "admitted past the budget");
        };
        assert_eq!(open.len(), 31);
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        // A closed stream gives its reserve back (and sets the gauge).
        drop(open.pop());
        assert_eq!(
            watchers.metrics.buffered.get(),
            (30 * STREAM_RESERVE) as i64
        );
        assert!(watchers.watch(Epoch(0), false, None).is_ok());
        let _ = std::fs::remove_dir_all(dir);
    }
}
