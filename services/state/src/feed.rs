//! DataFeed and MarketBatch: a synthetic market-data feed and the bounded queue that turns its
//! events into batches for consensus. Pure: the RNG is seeded, there is no clock (the actor
//! calls [`Feed::on_tick`] every `batch_interval`) and no I/O.
//!
//! The generator random-walks a mid-price per symbol and emits venue quotes and trades around
//! it, limit orders on both sides within `spread` of the mid (so buys and sells cross and the
//! replicated book trades), market orders, and cancels of its own earlier orders. Every event
//! carries the feed's source name and a fresh sequence number, so resubmitting an event is
//! idempotent.

use std::{collections::VecDeque, sync::Arc};

use beat_crypto::{hash::Hasher, identity::IdentityKeypair};
use beat_proto::state::v1 as pb;
use pb::market_event::Event as E;
use rand::{RngExt as _, SeedableRng as _};
use rand_chacha::ChaCha20Rng;

use crate::config::FeedConfig;

/// How many of its own order identifiers the generator remembers to cancel.
const REMEMBERED_ORDERS: usize = 1024;

/// The feed's source name: unique per replica and per start of the service, so a restarted feed
/// never reuses a `(source, sequence)` that is still within the duplicate window. It is a run of
/// the source [`feed_owner`] registers ([`crate::market::sources`]).
pub fn feed_source(replica: u32, start: u64) -> String {
    format!("{}:s{start}", feed_owner(replica))
}

/// The name under which replica `replica`'s feed key is registered in `market.sources`.
pub fn feed_owner(replica: u32) -> String {
    format!("feed-r{replica}")
}

/// The generator seed for `(base seed, replica, start)`.
pub fn feed_seed(base: u64, replica: u32, start: u64) -> [u8; 32] {
    let mut h = Hasher::new(b"_BEAT_STATE_FEED_SEED");
    h.u64(base).u64(u64::from(replica)).u64(start);
    h.finish().0
}

/// Generates synthetic market events.
pub struct FeedGenerator {
    source: String,
    next_sequence: u64,
    next_order: u64,
    rng: ChaCha20Rng,
    mids: Vec<(String, i64)>,
    open_orders: VecDeque<String>,
    config: FeedConfig,
    /// Signs every event, if set.
    key: Option<Arc<IdentityKeypair>>,
}

impl FeedGenerator {
    /// A generator for `config` (validated) publishing as `source`.
    pub fn new(config: &FeedConfig, source: String, seed: [u8; 32]) -> Self {
        Self {
            source,
            next_sequence: 0,
            next_order: 0,
            rng: ChaCha20Rng::from_seed(seed),
            mids: config
                .symbols
                .iter()
                .map(|s| (s.clone(), config.initial_price))
                .collect(),
            open_orders: VecDeque::new(),
            config: config.clone(),
            key: None,
        }
    }

    /// Signs every event with `key` (the source's registered key).
    #[must_use]
    pub fn signed_by(mut self, key: Arc<IdentityKeypair>) -> Self {
        self.key = Some(key);
        self
    }

    /// The source name on every event.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Generates `count` events.
    pub fn generate(&mut self, count: usize) -> Vec<pb::MarketEvent> {
        (0..count).map(|_| self.next_event()).collect()
    }

    /// Generates one event.
    pub fn next_event(&mut self) -> pb::MarketEvent {
        let symbol_index = self.rng.random_range(0..self.mids.len());
        let mid = self.step_mid(symbol_index);
        let symbol = self.mids[symbol_index].0.clone();
        let m = &self.config.mix;
        let (quotes, trades, orders) = (
            u64::from(m.quotes),
            u64::from(m.trades),
            u64::from(m.orders),
        );
        let total = quotes + trades + orders + u64::from(m.cancels);
        let pick = self.rng.random_range(0..total);
        let event = if pick < quotes {
            self.quote(symbol, mid)
        } else if pick < quotes + trades {
            self.trade(symbol, mid)
        } else if pick < quotes + trades + orders || self.open_orders.is_empty() {
            self.order(symbol, mid)
        } else {
            self.cancel()
        };
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let mut event = pb::MarketEvent {
            source: self.source.clone(),
            sequence,
            event: Some(event),
            ..Default::default()
        };
        if let Some(key) = &self.key {
            crate::market::sources::sign(&mut event, key);
        }
        event
    }

    fn step_mid(&mut self, index: usize) -> i64 {
        let v = self.config.volatility;
        let step = self.rng.random_range(-v..=v);
        let floor = self.config.spread + 1;
        let ceiling = crate::market::event::MAX_PRICE / 2;
        let mid = &mut self.mids[index].1;
        *mid = (*mid + step).clamp(floor, ceiling);
        *mid
    }

    fn quantity(&mut self) -> u64 {
        self.rng.random_range(1..=self.config.max_quantity)
    }

    fn around(&mut self, mid: i64) -> i64 {
        let s = self.config.spread;
        (mid + self.rng.random_range(-s..=s)).max(1)
    }

    fn quote(&mut self, symbol: String, mid: i64) -> E {
        let half = self.rng.random_range(1..=self.config.spread);
        E::Quote(pb::Quote {
            symbol,
            bid_price: (mid - half).max(1),
            bid_size: self.quantity(),
            ask_price: mid + half,
            ask_size: self.quantity(),
        })
    }

    fn trade(&mut self, symbol: String, mid: i64) -> E {
        E::Trade(pb::TradePrint {
            symbol,
            price: self.around(mid),
            quantity: self.quantity(),
        })
    }

    fn order(&mut self, symbol: String, mid: i64) -> E {
        let side = if self.rng.random_bool(0.5) {
            pb::Side::Buy
        } else {
            pb::Side::Sell
        };
        let market = self.rng.random_range(0..100) < self.config.mix.market_order_percent;
        let price = if market { 0 } else { self.around(mid) };
        let order_id = format!("o{}", self.next_order);
        self.next_order += 1;
        if !market {
            if self.open_orders.len() == REMEMBERED_ORDERS {
                self.open_orders.pop_front();
            }
            self.open_orders.push_back(order_id.clone());
        }
        E::Order(pb::NewOrder {
            order_id,
            symbol,
            side: side as i32,
            price,
            quantity: self.quantity(),
        })
    }

    /// Cancels a remembered order (it may have filled since: then the cancel is skipped by the
    /// state machine as `unknown_order`, like any late cancel).
    fn cancel(&mut self) -> E {
        let index = self.rng.random_range(0..self.open_orders.len());
        let order_id = self
            .open_orders
            .remove(index)
            .expect("index is within the queue");
        E::Cancel(pb::CancelOrder { order_id })
    }
}

/// What one tick did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tick {
    /// Events generated and queued.
    pub generated: usize,
    /// Events not generated because the queue was full.
    pub dropped: usize,
}

/// The feed: the generator, its pace and the bounded queue of events not yet acknowledged by
/// consensus (MarketBatch).
pub struct Feed {
    generator: FeedGenerator,
    queue: VecDeque<pb::MarketEvent>,
    in_flight: usize,
    max_queue: usize,
    /// Events due per tick, in thousandths.
    due_per_tick_milli: u64,
    carry_milli: u64,
}

impl Feed {
    /// A feed for `config` (validated).
    pub fn new(config: &FeedConfig, generator: FeedGenerator) -> Self {
        let interval_ms = u64::try_from(config.batch_interval.as_millis()).unwrap_or(u64::MAX);
        Self {
            generator,
            queue: VecDeque::new(),
            in_flight: 0,
            max_queue: config.max_queue,
            due_per_tick_milli: u64::from(config.events_per_second).saturating_mul(interval_ms),
            carry_milli: 0,
        }
    }

    /// The source name of the feed's events.
    pub fn source(&self) -> &str {
        self.generator.source()
    }

    /// Generates the events due in one batch interval. When the queue (including the batch in
    /// flight) is full, the newest events are not generated at all: the consensus service is
    /// not keeping up, and nothing already queued is ever dropped.
    pub fn on_tick(&mut self) -> Tick {
        let due_milli = self.carry_milli + self.due_per_tick_milli;
        self.carry_milli = due_milli % 1000;
        let due = usize::try_from(due_milli / 1000).unwrap_or(usize::MAX);
        let room = self.max_queue.saturating_sub(self.pending());
        let generated = due.min(room);
        self.queue.extend(self.generator.generate(generated));
        Tick {
            generated,
            dropped: due - generated,
        }
    }

    /// Takes up to `max` queued events for submission; they count as pending until
    /// [`Self::acknowledge`]d.
    pub fn take(&mut self, max: usize) -> Vec<pb::MarketEvent> {
        let n = max.min(self.queue.len());
        self.in_flight += n;
        self.queue.drain(..n).collect()
    }

    /// Releases `count` taken events (acknowledged by consensus, or given up).
    pub fn acknowledge(&mut self, count: usize) {
        self.in_flight = self.in_flight.saturating_sub(count);
    }

    /// Events queued or in flight.
    pub fn pending(&self) -> usize {
        self.queue.len() + self.in_flight
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::market::{MarketParams, MarketState, event::Event};

    fn config() -> FeedConfig {
        FeedConfig {
            enabled: true,
            events_per_second: 1000,
            batch_interval: Duration::from_millis(100),
            max_batch_events: 100,
            max_queue: 250,
            ..FeedConfig::default()
        }
    }

    #[test]
    fn generator_is_reproducible_from_its_seed_and_differs_per_replica() {
        let c = config();
        let mut a = FeedGenerator::new(&c, feed_source(0, 0), feed_seed(1, 0, 0));
        let mut b = FeedGenerator::new(&c, feed_source(0, 0), feed_seed(1, 0, 0));
        let mut other = FeedGenerator::new(&c, feed_source(1, 0), feed_seed(1, 1, 0));
        let (x, y) = (a.generate(200), b.generate(200));
        assert_eq!(x, y);
        let z = other.generate(200);
        assert_ne!(
            x.iter().map(|e| &e.event).collect::<Vec<_>>(),
            z.iter().map(|e| &e.event).collect::<Vec<_>>()
        );
        assert_ne!(feed_seed(1, 0, 0), feed_seed(1, 0, 1), "restarts reseed");
        assert_ne!(feed_source(0, 1), feed_source(0, 2));
    }

    #[test]
    fn generated_events_are_valid_sequenced_and_make_the_book_trade() {
        let c = config();
        let mut g = FeedGenerator::new(&c, feed_source(3, 7), feed_seed(9, 3, 7));
        let events = g.generate(2000);
        let mut kinds = [0usize; 4];
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e.source, "feed-r3:s7");
            assert_eq!(e.sequence, i as u64);
            let valid = Event::try_from(e.clone()).unwrap();
            let kind = match valid.body {
                crate::market::event::Body::Quote { .. } => 0,
                crate::market::event::Body::Trade { .. } => 1,
                crate::market::event::Body::Order { .. } => 2,
                crate::market::event::Body::Cancel { .. } => 3,
            };
            kinds[kind] += 1;
        }
        assert!(
            kinds.iter().all(|&k| k > 0),
            "every kind appears: {kinds:?}"
        );
        let txs: Vec<Vec<u8>> = events.iter().map(prost::Message::encode_to_vec).collect();
        let mut state = MarketState::new(MarketParams::default());
        let report = state.apply_batch(0, &txs).unwrap();
        assert!(
            report.executions.len() > 100,
            "orders around the mid cross: {} executions",
            report.executions.len()
        );
        // Only cancels of already filled orders can be skipped.
        let skipped: Vec<_> = report.rejected.keys().collect();
        assert!(
            skipped
                .iter()
                .all(|r| **r == crate::market::RejectReason::UnknownOrder),
            "{skipped:?}"
        );
        for s in state.symbols() {
            if let (Some(bid), Some(ask)) = (s.best_bid, s.best_ask) {
                assert!(bid < ask, "the book never stays crossed");
            }
        }
    }

    #[test]
    fn feed_paces_events_and_bounds_its_queue() {
        let c = config();
        let g = FeedGenerator::new(&c, feed_source(0, 0), feed_seed(0, 0, 0));
        let mut feed = Feed::new(&c, g);
        // 1000/s × 100 ms = 100 per tick.
        assert_eq!(
            feed.on_tick(),
            Tick {
                generated: 100,
                dropped: 0
            }
        );
        let taken = feed.take(60);
        assert_eq!(taken.len(), 60);
        assert_eq!(taken[0].sequence, 0);
        assert_eq!(
            feed.pending(),
            100,
            "taken events stay pending until acknowledged"
        );
        assert_eq!(feed.on_tick().generated, 100);
        // 200 pending, room for 50 more.
        assert_eq!(
            feed.on_tick(),
            Tick {
                generated: 50,
                dropped: 50
            }
        );
        feed.acknowledge(60);
        assert_eq!(feed.pending(), 190);
        let rest = feed.take(1000);
        assert_eq!(rest.len(), 190);
        assert_eq!(rest[0].sequence, 60, "queue order is generation order");

        // Fractional rates carry over between ticks: 15/s × 100 ms = 1.5 per tick.
        let slow = FeedConfig {
            events_per_second: 15,
            ..c
        };
        let g = FeedGenerator::new(&slow, feed_source(0, 0), feed_seed(0, 0, 0));
        let mut feed = Feed::new(&slow, g);
        let total: usize = (0..10).map(|_| feed.on_tick().generated).sum();
        assert_eq!(total, 15);
    }
}
