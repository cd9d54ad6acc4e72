//! The replicated market state and its per-epoch transition.

use std::collections::{BTreeMap, BTreeSet, btree_map::Entry};

use beat_crypto::{
    Digest,
    hash::{Hasher, hash},
};
use serde::{Deserialize, Serialize};

use super::{
    MarketParams,
    book::{Book, LevelView, OrderKey},
    event::{self, Body, Event, RejectReason, Side},
};

/// Domain-separation tag of the genesis hash.
pub const GENESIS_DST: &[u8] = b"_BEAT_STATE_GENESIS";
/// Domain-separation tag of the per-epoch hash.
pub const EPOCH_DST: &[u8] = b"_BEAT_STATE_EPOCH";
/// Domain-separation tag of the state-body digest.
pub const BODY_DST: &[u8] = b"_BEAT_STATE_BODY";
/// Version of the [`Snapshot`] encoding: 2 added the market's source registry to the
/// parameters and the per-source sequence floors to the body.
pub const SNAPSHOT_FORMAT: u32 = 2;

/// Per-symbol statistics. Sums are exact integers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SymbolStats {
    /// Last trade price (book or venue); 0 before the first trade.
    pub last_price: i64,
    /// Σ quantity over every trade.
    pub volume: u128,
    /// Σ price × quantity over every trade.
    pub turnover: u128,
    /// Trades (book executions and venue prints).
    pub trades: u64,
    /// Book executions whose taker and maker have the same source.
    pub self_trades: u64,
    /// Last venue quote mid-price, `⌊(bid + ask) / 2⌋`; 0 before the first quote.
    pub quote_mid: i64,
}

impl SymbolStats {
    fn record_trade(&mut self, price: i64, quantity: u64) {
        self.last_price = price;
        self.volume = self.volume.saturating_add(u128::from(quantity));
        // Validation keeps prices positive.
        let price = u128::from(price.unsigned_abs());
        self.turnover = self
            .turnover
            .saturating_add(price.saturating_mul(u128::from(quantity)));
        self.trades = self.trades.saturating_add(1);
    }

    /// Volume-weighted average price, `⌊turnover / volume⌋`; 0 before the first trade.
    pub fn vwap(&self) -> i64 {
        match self.turnover.checked_div(self.volume) {
            Some(v) => i64::try_from(v).unwrap_or(i64::MAX),
            None => 0,
        }
    }
}

/// One symbol: its book and statistics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SymbolMarket {
    /// The replicated order book.
    pub book: Book,
    /// Statistics.
    pub stats: SymbolStats,
}

/// A trade executed by the replicated book.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Execution {
    /// Symbol.
    pub symbol: String,
    /// Price (the maker's).
    pub price: i64,
    /// Quantity.
    pub quantity: u64,
    /// The aggressing order.
    pub taker: OrderKey,
    /// The resting order.
    pub maker: OrderKey,
}

impl Execution {
    /// Whether taker and maker have the same source.
    pub fn is_self_trade(&self) -> bool {
        self.taker.source == self.maker.source
    }
}

/// What applying one epoch did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochReport {
    /// The epoch.
    pub epoch: u64,
    /// Events applied.
    pub events: u32,
    /// Events skipped, by reason.
    pub rejected: BTreeMap<RejectReason, u32>,
    /// Trades executed by the book, in order.
    pub executions: Vec<Execution>,
    /// The state hash after the epoch.
    pub state_hash: Digest,
}

impl EpochReport {
    /// Events skipped in total.
    pub fn rejected_total(&self) -> u32 {
        self.rejected.values().sum()
    }
}

/// Where a resting order is, to cancel it by key. Derived from the books, never encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Location {
    symbol: String,
    side: Side,
    price: i64,
    priority: u64,
}

/// The canonical state. Its postcard encoding is what the state hash covers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct StateBody {
    /// Every symbol seen, by name.
    symbols: BTreeMap<String, SymbolMarket>,
    /// `(source, sequence)` pairs ordered in each epoch of the retention window.
    recent: BTreeMap<u64, BTreeSet<(String, u64)>>,
    /// With a source registry: per source, the highest sequence that has left the retention
    /// window. A signed event at or below it is a replay ([`RejectReason::StaleSequence`]).
    floors: BTreeMap<String, u64>,
    /// The priority the next resting order gets.
    next_priority: u64,
    /// Events applied since genesis.
    events_applied: u64,
    /// Events skipped since genesis.
    events_rejected: u64,
}

/// A stored state: the canonical body plus the hash chain it belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// [`SNAPSHOT_FORMAT`].
    pub format: u32,
    /// The parameters the state was computed with.
    pub params: MarketParams,
    /// The last applied epoch.
    pub applied_epoch: Option<u64>,
    /// The hash before that epoch (the genesis hash for epoch 0).
    pub previous_hash: Digest,
    /// The hash after it.
    pub state_hash: Digest,
    /// The postcard encoding of the state body.
    pub body: Vec<u8>,
}

/// Why a snapshot cannot be restored.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Unknown format version.
    #[error(
        "the snapshot has format {0}, this release reads format {SNAPSHOT_FORMAT}; the market \
         state is derived from the ordered history: move this store aside and restart to \
         recompute it from epoch 0"
    )]
    Format(u32),
    /// Written with other market parameters.
    #[error("snapshot was computed with market parameters {stored:?}, configured {configured:?}")]
    Params {
        /// In the snapshot.
        stored: Box<MarketParams>,
        /// Configured.
        configured: Box<MarketParams>,
    },
    /// The body does not decode.
    #[error("snapshot body does not decode: {0}")]
    Body(postcard::Error),
    /// The hash chain does not match the body.
    #[error("snapshot hash does not match its body")]
    Hash,
}

/// Local misuse of [`MarketState::apply_batch`].
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("epoch {got} applied out of order (expected {expected})")]
pub struct OutOfOrder {
    /// The next epoch.
    pub expected: u64,
    /// The epoch offered.
    pub got: u64,
}

/// One symbol's statistics and top of book, for queries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SymbolView {
    /// Symbol.
    pub symbol: String,
    /// Statistics.
    pub stats: SymbolStats,
    /// Best bid in the replicated book.
    pub best_bid: Option<i64>,
    /// Best ask in the replicated book.
    pub best_ask: Option<i64>,
}

/// The deterministic market state machine. No I/O: transactions in, report and hash out.
///
/// # State hash
///
/// With `H(dst; p₁, …, pₖ)` = SHA-256 over `le64(|dst|) ‖ dst ‖ le64(|p₁|) ‖ p₁ ‖ … ‖ le64(|pₖ|)
/// ‖ pₖ` (`beat_crypto::hash::hash_parts`):
///
/// - `genesis = H("_BEAT_STATE_GENESIS"; postcard(params))`, so replicas configured with
///   different market parameters disagree from the start;
/// - after epoch `e`: `hash_e = H("_BEAT_STATE_EPOCH"; hash_{e-1}, le64(e), body_digest_e)`
///   with `hash_{-1} = genesis` and `body_digest_e = H("_BEAT_STATE_BODY"; postcard(body_e))`,
///   where `body_e` is the whole state after `e`: every symbol's book (levels and resting orders
///   by priority) and statistics, the `(source, sequence)` pairs of the retention window and the
///   per-source sequence floors, the next order priority and the applied and rejected event
///   totals — all in `BTreeMap` order.
///
/// So the hash is a pure function of the parameters and the committed batches, and equal hashes
/// at an epoch mean equal states and equal histories of states.
#[derive(Clone, Debug)]
pub struct MarketState {
    params: MarketParams,
    applied_epoch: Option<u64>,
    previous_hash: Digest,
    state_hash: Digest,
    body: StateBody,
    orders: BTreeMap<OrderKey, Location>,
}

impl MarketState {
    /// The empty state before epoch 0.
    pub fn new(params: MarketParams) -> Self {
        let genesis = Self::genesis_hash(&params);
        Self {
            params,
            applied_epoch: None,
            previous_hash: genesis,
            state_hash: genesis,
            body: StateBody::default(),
            orders: BTreeMap::new(),
        }
    }

    /// The hash before the first epoch.
    pub fn genesis_hash(params: &MarketParams) -> Digest {
        hash(GENESIS_DST, &encode(params))
    }

    /// The parameters.
    pub fn params(&self) -> &MarketParams {
        &self.params
    }

    /// The last applied epoch.
    pub fn applied_epoch(&self) -> Option<u64> {
        self.applied_epoch
    }

    /// The epoch to apply next.
    pub fn next_epoch(&self) -> u64 {
        self.applied_epoch.map_or(0, |e| e + 1)
    }

    /// The hash after the last applied epoch (the genesis hash before the first).
    pub fn state_hash(&self) -> Digest {
        self.state_hash
    }

    /// Events applied since genesis.
    pub fn events_applied(&self) -> u64 {
        self.body.events_applied
    }

    /// Events skipped since genesis.
    pub fn events_rejected(&self) -> u64 {
        self.body.events_rejected
    }

    /// Resting orders across every book.
    pub fn resting_orders(&self) -> usize {
        self.orders.len()
    }

    /// One symbol's market.
    pub fn symbol(&self, symbol: &str) -> Option<&SymbolMarket> {
        self.body.symbols.get(symbol)
    }

    /// Up to `depth` levels per side of `symbol`'s book, best first (empty for an unknown
    /// symbol).
    pub fn book(&self, symbol: &str, depth: usize) -> (Vec<LevelView>, Vec<LevelView>) {
        self.symbol(symbol).map_or_else(Default::default, |m| {
            (
                m.book.depth(Side::Buy, depth),
                m.book.depth(Side::Sell, depth),
            )
        })
    }

    /// Every symbol's statistics and top of book, sorted by symbol.
    pub fn symbols(&self) -> Vec<SymbolView> {
        self.body
            .symbols
            .iter()
            .map(|(symbol, m)| SymbolView {
                symbol: symbol.clone(),
                stats: m.stats.clone(),
                best_bid: m.book.best_bid(),
                best_ask: m.book.best_ask(),
            })
            .collect()
    }

    /// Applies the committed transactions of `epoch`, which must be [`Self::next_epoch`].
    /// Malformed and invalid events are skipped and counted; nothing a transaction contains can
    /// make this fail.
    pub fn apply_batch<T: AsRef<[u8]>>(
        &mut self,
        epoch: u64,
        transactions: &[T],
    ) -> Result<EpochReport, OutOfOrder> {
        self.apply_batch_with_snapshot(epoch, transactions)
            .map(|(report, _)| report)
    }

    /// Like [`Self::apply_batch`], also returning the snapshot after the epoch (the body is
    /// encoded once, for both the hash and the snapshot).
    pub fn apply_batch_with_snapshot<T: AsRef<[u8]>>(
        &mut self,
        epoch: u64,
        transactions: &[T],
    ) -> Result<(EpochReport, Snapshot), OutOfOrder> {
        let expected = self.next_epoch();
        if epoch != expected {
            return Err(OutOfOrder {
                expected,
                got: epoch,
            });
        }
        // Forget the pairs ordered more than `window` epochs ago; with a registry, what leaves
        // the window raises its source's floor, so it can never be ordered again.
        let keep_from = (epoch + 1).saturating_sub(self.params.dedup_window_epochs);
        let kept = self.body.recent.split_off(&keep_from);
        let expired = std::mem::replace(&mut self.body.recent, kept);
        if !self.params.sources.is_empty() {
            for (source, sequence) in expired.into_values().flatten() {
                let floor = self.body.floors.entry(source).or_insert(sequence);
                *floor = (*floor).max(sequence);
            }
        }
        let mut events = 0u32;
        let mut rejected = BTreeMap::new();
        let mut executions = Vec::new();
        for tx in transactions {
            match self.apply_transaction(epoch, tx.as_ref(), &mut executions) {
                Ok(()) => {
                    events += 1;
                    self.body.events_applied += 1;
                }
                Err(reason) => {
                    *rejected.entry(reason).or_insert(0u32) += 1;
                    self.body.events_rejected += 1;
                }
            }
        }
        let body = encode(&self.body);
        self.previous_hash = self.state_hash;
        self.state_hash = chain(&self.previous_hash, epoch, &body);
        self.applied_epoch = Some(epoch);
        let report = EpochReport {
            epoch,
            events,
            rejected,
            executions,
            state_hash: self.state_hash,
        };
        Ok((report, self.snapshot_with_body(body)))
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot_with_body(encode(&self.body))
    }

    fn snapshot_with_body(&self, body: Vec<u8>) -> Snapshot {
        Snapshot {
            format: SNAPSHOT_FORMAT,
            params: self.params.clone(),
            applied_epoch: self.applied_epoch,
            previous_hash: self.previous_hash,
            state_hash: self.state_hash,
            body,
        }
    }

    /// Restores a snapshot taken with `params`, checking its format, parameters and hash chain.
    pub fn restore(params: MarketParams, snapshot: &Snapshot) -> Result<Self, SnapshotError> {
        if snapshot.format != SNAPSHOT_FORMAT {
            return Err(SnapshotError::Format(snapshot.format));
        }
        if snapshot.params != params {
            return Err(SnapshotError::Params {
                stored: Box::new(snapshot.params.clone()),
                configured: Box::new(params),
            });
        }
        let expected = match snapshot.applied_epoch {
            None => Self::genesis_hash(&params),
            Some(epoch) => chain(&snapshot.previous_hash, epoch, &snapshot.body),
        };
        if expected != snapshot.state_hash {
            return Err(SnapshotError::Hash);
        }
        let body: StateBody = postcard::from_bytes(&snapshot.body).map_err(SnapshotError::Body)?;
        // Before the first epoch the hash covers no body: it must be the empty one.
        if snapshot.applied_epoch.is_none() && body != StateBody::default() {
            return Err(SnapshotError::Hash);
        }
        let mut orders = BTreeMap::new();
        for (symbol, market) in &body.symbols {
            for (side, price, priority, order) in market.book.resting() {
                let location = Location {
                    symbol: symbol.clone(),
                    side,
                    price,
                    priority,
                };
                orders.insert(order.key.clone(), location);
            }
        }
        Ok(Self {
            params,
            applied_epoch: snapshot.applied_epoch,
            previous_hash: snapshot.previous_hash,
            state_hash: snapshot.state_hash,
            body,
            orders,
        })
    }

    fn apply_transaction(
        &mut self,
        epoch: u64,
        transaction: &[u8],
        executions: &mut Vec<Execution>,
    ) -> Result<(), RejectReason> {
        let Event {
            source,
            sequence,
            body,
        } = event::decode_checked(transaction, &self.params.sources).map_err(|r| r.reason)?;
        // A valid event consumes its (source, sequence) whether or not it then applies, so a
        // resubmission is ordered once and has no effect.
        if self
            .body
            .floors
            .get(&source)
            .is_some_and(|&floor| sequence <= floor)
        {
            return Err(RejectReason::StaleSequence);
        }
        let pair = (source, sequence);
        if self.body.recent.values().any(|seen| seen.contains(&pair)) {
            return Err(RejectReason::DuplicateSequence);
        }
        self.body
            .recent
            .entry(epoch)
            .or_default()
            .insert(pair.clone());
        let (source, _) = pair;
        let symbols = &mut self.body.symbols;
        let max_symbols = self.params.max_symbols;
        match body {
            Body::Quote { symbol, bid, ask } => {
                // bid ≤ ask, both positive: no overflow.
                market(symbols, max_symbols, symbol)?.stats.quote_mid = bid + (ask - bid) / 2;
            }
            Body::Trade {
                symbol,
                price,
                quantity,
            } => market(symbols, max_symbols, symbol)?
                .stats
                .record_trade(price, quantity),
            Body::Order {
                order_id,
                symbol,
                side,
                limit,
                quantity,
            } => {
                let key = OrderKey { source, order_id };
                self.new_order(key, symbol, side, limit, quantity, executions)?;
            }
            Body::Cancel { order_id } => {
                let key = OrderKey { source, order_id };
                let location = self.orders.remove(&key).ok_or(RejectReason::UnknownOrder)?;
                let removed = self.body.symbols.get_mut(&location.symbol).and_then(|m| {
                    m.book
                        .remove(location.side, location.price, location.priority)
                });
                debug_assert!(removed.is_some(), "order index out of sync with the book");
            }
        }
        Ok(())
    }

    fn new_order(
        &mut self,
        key: OrderKey,
        symbol: String,
        side: Side,
        limit: Option<i64>,
        quantity: u64,
        executions: &mut Vec<Execution>,
    ) -> Result<(), RejectReason> {
        if self.orders.contains_key(&key) {
            return Err(RejectReason::DuplicateOrderId);
        }
        // Checked up front so that an order is either applied whole or not at all.
        if limit.is_some() && self.orders.len() >= self.params.max_resting_orders {
            return Err(RejectReason::OrderLimit);
        }
        let priority = self.body.next_priority;
        let market = market(
            &mut self.body.symbols,
            self.params.max_symbols,
            symbol.clone(),
        )?;
        let (fills, remaining) = market.book.execute(side, limit, quantity);
        for fill in fills {
            market.stats.record_trade(fill.price, fill.quantity);
            let execution = Execution {
                symbol: symbol.clone(),
                price: fill.price,
                quantity: fill.quantity,
                taker: key.clone(),
                maker: fill.maker,
            };
            if execution.is_self_trade() {
                market.stats.self_trades += 1;
            }
            if fill.maker_filled {
                self.orders.remove(&execution.maker);
            }
            executions.push(execution);
        }
        // A market order's remainder rests nowhere.
        if let (Some(price), true) = (limit, remaining > 0) {
            market
                .book
                .insert(side, price, priority, key.clone(), remaining);
            self.body.next_priority += 1;
            let location = Location {
                symbol,
                side,
                price,
                priority,
            };
            self.orders.insert(key, location);
        }
        Ok(())
    }
}

/// The symbol's market, created if new and the symbol limit allows.
fn market(
    symbols: &mut BTreeMap<String, SymbolMarket>,
    max_symbols: usize,
    symbol: String,
) -> Result<&mut SymbolMarket, RejectReason> {
    let full = symbols.len() >= max_symbols;
    match symbols.entry(symbol) {
        Entry::Occupied(e) => Ok(e.into_mut()),
        Entry::Vacant(_) if full => Err(RejectReason::SymbolLimit),
        Entry::Vacant(e) => Ok(e.insert(SymbolMarket::default())),
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing plain structs of integers, strings and maps into a Vec cannot fail.
    postcard::to_allocvec(value).expect("postcard encodes in-memory state")
}

/// `H("_BEAT_STATE_EPOCH"; previous, le64(epoch), H("_BEAT_STATE_BODY"; body))`.
fn chain(previous: &Digest, epoch: u64, body: &[u8]) -> Digest {
    let body_digest = hash(BODY_DST, body);
    let mut h = Hasher::new(EPOCH_DST);
    h.part(previous.as_bytes())
        .u64(epoch)
        .part(body_digest.as_bytes());
    h.finish()
}
