//! One symbol's limit order book with price-time priority.
//!
//! Each side maps a price to a level; a level maps a *priority* (a state-wide counter assigned
//! when the order comes to rest, so lower is earlier) to the resting order. Matching walks the
//! opposite side best price first and, within a price, earliest first; a trade executes at the
//! resting (maker) order's price. Only `BTreeMap`s, so iteration order — and therefore every
//! encoding and hash — is canonical.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::event::Side;

/// Identifies an order: its source and the source's identifier for it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OrderKey {
    /// The publishing source.
    pub source: String,
    /// The source's identifier.
    pub order_id: String,
}

impl std::fmt::Display for OrderKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.source, self.order_id)
    }
}

/// A resting order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resting {
    /// Which order.
    pub key: OrderKey,
    /// Unfilled quantity (> 0).
    pub remaining: u64,
}

/// The orders resting at one price, by priority.
pub type Level = BTreeMap<u64, Resting>;

/// One match between an incoming order and a resting one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fill {
    /// The resting order.
    pub maker: OrderKey,
    /// The execution price (the maker's).
    pub price: i64,
    /// The executed quantity.
    pub quantity: u64,
    /// Whether the maker is now completely filled (and gone from the book).
    pub maker_filled: bool,
}

/// An aggregated price level, for queries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LevelView {
    /// Price.
    pub price: i64,
    /// Total resting quantity.
    pub quantity: u64,
    /// Resting orders.
    pub orders: u32,
}

/// A limit order book.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Book {
    bids: BTreeMap<i64, Level>,
    asks: BTreeMap<i64, Level>,
}

impl Book {
    /// Matches an incoming order of `side` for `quantity` against the opposite side, best price
    /// first and earliest first within a price, while the price satisfies `limit` (`None`: any
    /// price, a market order). Returns the fills and the unfilled quantity.
    pub fn execute(&mut self, side: Side, limit: Option<i64>, quantity: u64) -> (Vec<Fill>, u64) {
        let mut fills = Vec::new();
        let mut remaining = quantity;
        while remaining > 0 {
            let entry = match side {
                Side::Buy => self.asks.first_entry(),
                Side::Sell => self.bids.last_entry(),
            };
            let Some(mut level) = entry else { break };
            let price = *level.key();
            let crosses = match (side, limit) {
                (_, None) => true,
                (Side::Buy, Some(l)) => price <= l,
                (Side::Sell, Some(l)) => price >= l,
            };
            if !crosses {
                break;
            }
            let orders = level.get_mut();
            while remaining > 0 {
                let Some(mut first) = orders.first_entry() else {
                    break;
                };
                let maker = first.get_mut();
                let traded = remaining.min(maker.remaining);
                maker.remaining -= traded;
                remaining -= traded;
                let maker_filled = maker.remaining == 0;
                let key = if maker_filled {
                    first.remove().key
                } else {
                    maker.key.clone()
                };
                fills.push(Fill {
                    maker: key,
                    price,
                    quantity: traded,
                    maker_filled,
                });
            }
            if orders.is_empty() {
                level.remove();
            }
        }
        (fills, remaining)
    }

    /// Rests an order at `price` with `priority` (unique and increasing across the state).
    pub fn insert(&mut self, side: Side, price: i64, priority: u64, key: OrderKey, quantity: u64) {
        self.side_mut(side).entry(price).or_default().insert(
            priority,
            Resting {
                key,
                remaining: quantity,
            },
        );
    }

    /// Removes a resting order; returns it if it was there.
    pub fn remove(&mut self, side: Side, price: i64, priority: u64) -> Option<Resting> {
        let levels = self.side_mut(side);
        let level = levels.get_mut(&price)?;
        let order = level.remove(&priority);
        if level.is_empty() {
            levels.remove(&price);
        }
        order
    }

    /// The highest bid.
    pub fn best_bid(&self) -> Option<i64> {
        self.bids.keys().next_back().copied()
    }

    /// The lowest ask.
    pub fn best_ask(&self) -> Option<i64> {
        self.asks.keys().next().copied()
    }

    /// Up to `depth` levels of `side`, best first.
    pub fn depth(&self, side: Side, depth: usize) -> Vec<LevelView> {
        let view = |(price, level): (&i64, &Level)| LevelView {
            price: *price,
            quantity: level.values().map(|o| o.remaining).sum(),
            orders: u32::try_from(level.len()).unwrap_or(u32::MAX),
        };
        match side {
            Side::Buy => self.bids.iter().rev().take(depth).map(view).collect(),
            Side::Sell => self.asks.iter().take(depth).map(view).collect(),
        }
    }

    /// Every resting order as `(side, price, priority, order)`, for rebuilding indexes.
    pub fn resting(&self) -> impl Iterator<Item = (Side, i64, u64, &Resting)> {
        side_orders(Side::Buy, &self.bids).chain(side_orders(Side::Sell, &self.asks))
    }

    /// Returns `true` if no order rests.
    pub fn is_empty(&self) -> bool {
        self.bids.is_empty() && self.asks.is_empty()
    }

    fn side_mut(&mut self, side: Side) -> &mut BTreeMap<i64, Level> {
        match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        }
    }
}

fn side_orders(
    side: Side,
    levels: &BTreeMap<i64, Level>,
) -> impl Iterator<Item = (Side, i64, u64, &Resting)> {
    levels.iter().flat_map(move |(price, level)| {
        level
            .iter()
            .map(move |(priority, order)| (side, *price, *priority, order))
    })
}
