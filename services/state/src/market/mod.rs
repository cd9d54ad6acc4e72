//! MarketState: the deterministic market state machine every honest replica computes.
//!
//! One consensus transaction is one protobuf `MarketEvent`. [`MarketState::apply_batch`]
//! applies an epoch's committed transactions in order:
//!
//! 1. decode and validate the event statelessly ([`event`]); a malformed or invalid event is
//!    skipped and counted by [`RejectReason`];
//! 2. skip it if its `(source, sequence)` was already ordered within the last
//!    `dedup_window_epochs` epochs, otherwise remember the pair; with a source registry, also
//!    skip it if its sequence is at or below its source's *floor* — the highest sequence of
//!    that source that has left the window — so a signed event can never be ordered twice, not
//!    even by replaying it long after (the floor costs one entry per source or feed run ever
//!    seen; an honest event ordered more than the window after a later event of its own source
//!    is skipped as `stale_sequence`);
//! 3. apply it: a venue quote sets the symbol's quote mid; a venue trade print updates last
//!    price, volume, turnover (hence VWAP) and trade count; an order is matched against the
//!    symbol's book with price-time priority ([`book`]) and its remainder rests if it is a limit
//!    order; a cancel removes a resting order of the same source.
//!
//! Integer arithmetic only (prices in ticks, quantities in lots, sums in `u128`), `BTreeMap`s
//! only, no clock, no randomness and no I/O: the state — and the hash chain documented on
//! [`MarketState`] — is a pure function of the parameters and the committed history.
//!
//! # Deviations
//!
//! - Order identifiers must be unique among a source's *resting* orders; a filled or cancelled
//!   order's identifier may be reused.
//! - A self-trade (taker and maker of the same source) executes like any other and is recorded
//!   (`Execution::is_self_trade`, `SymbolStats::self_trades`).
//! - An order is checked against `max_resting_orders` before matching, so an order is applied
//!   whole or not at all.

pub mod book;
pub mod event;
pub mod sources;
mod state;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
pub use state::{
    BODY_DST, EPOCH_DST, EpochReport, Execution, GENESIS_DST, MarketState, OutOfOrder,
    SNAPSHOT_FORMAT, Snapshot, SnapshotError, SymbolMarket, SymbolStats, SymbolView,
};

pub use self::{
    book::{LevelView, OrderKey},
    event::{RejectReason, Rejection, Side},
};

/// Parameters of the state machine. Every replica must use the same ones: they are part of the
/// genesis hash, so a mismatch shows in the very first state hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MarketParams {
    /// For how many epochs an ordered `(source, sequence)` is remembered to skip duplicates.
    pub dedup_window_epochs: u64,
    /// Most symbols; an event for a new symbol beyond it is skipped (`symbol_limit`).
    pub max_symbols: usize,
    /// Most resting orders across all books; a limit order beyond it is skipped
    /// (`order_limit`).
    pub max_resting_orders: usize,
    /// Who may publish as which source: source name → the owner's Ed25519 public key (hex).
    /// Empty: an open market, where anyone may publish as anyone ([`sources`]).
    pub sources: std::collections::BTreeMap<String, beat_crypto::identity::IdentityPublicKey>,
}

impl Default for MarketParams {
    fn default() -> Self {
        Self {
            // The consensus default for its own duplicate suppression.
            dedup_window_epochs: 64,
            max_symbols: 1024,
            max_resting_orders: 1_000_000,
            sources: std::collections::BTreeMap::new(),
        }
    }
}

impl MarketParams {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), String> {
        if self.dedup_window_epochs == 0 || self.dedup_window_epochs > 1_000_000 {
            return Err("market.dedup_window_epochs must be in 1..=1000000".to_owned());
        }
        if self.max_symbols == 0 {
            return Err("market.max_symbols must be at least 1".to_owned());
        }
        if self.max_resting_orders == 0 {
            return Err("market.max_resting_orders must be at least 1".to_owned());
        }
        sources::validate(&self.sources)
    }
}
