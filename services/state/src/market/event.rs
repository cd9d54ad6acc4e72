//! Market events: decoding a consensus transaction into a typed, validated [`Event`].
//!
//! Validation here is *stateless*: it depends on the event alone, so the gRPC shell can refuse a
//! malformed `Publish` with the same rules the state machine applies after ordering. The
//! stateful checks (duplicate `(source, sequence)`, duplicate or unknown order, limits) live in
//! [`super::MarketState`].

use std::fmt;

use beat_proto::state::v1 as pb;
use prost::Message as _;
use serde::{Deserialize, Serialize};

/// The highest price, in ticks. With [`MAX_QUANTITY`] it keeps every notional below 2⁸⁰, so the
/// `u128` turnover sums cannot overflow in any realistic history.
pub const MAX_PRICE: i64 = 1_000_000_000_000;
/// The highest quantity of one order, trade or quote side, in lots.
pub const MAX_QUANTITY: u64 = 1_000_000_000_000;
/// The longest source name.
pub const MAX_SOURCE_LEN: usize = 64;
/// The longest order identifier.
pub const MAX_ORDER_ID_LEN: usize = 64;
/// The longest symbol.
pub const MAX_SYMBOL_LEN: usize = 32;

/// Why an event was skipped. The names are stable: they label
/// `beat_state_events_rejected_total{reason}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RejectReason {
    /// The transaction is not a protobuf `MarketEvent`.
    Malformed,
    /// No quote, trade, order or cancel is set.
    MissingEvent,
    /// The source name is empty, too long or has characters outside `[A-Za-z0-9._:-]`.
    InvalidSource,
    /// The symbol does not have the symbol format.
    InvalidSymbol,
    /// An order's side is unspecified or unknown.
    InvalidSide,
    /// A price is negative, zero where a positive price is required, or above [`MAX_PRICE`].
    InvalidPrice,
    /// A quantity is zero where it must be positive, or above [`MAX_QUANTITY`].
    InvalidQuantity,
    /// The order identifier is empty, too long or not printable ASCII.
    InvalidOrderId,
    /// A quote's bid is above its ask.
    CrossedQuote,
    /// The `(source, sequence)` was already ordered within the retention window.
    DuplicateSequence,
    /// The source already has a resting order with this identifier.
    DuplicateOrderId,
    /// The source has no resting order with this identifier.
    UnknownOrder,
    /// A new symbol would exceed `max_symbols`.
    SymbolLimit,
    /// A new resting order would exceed `max_resting_orders`.
    OrderLimit,
    /// The market has a source registry and no registered name owns the event's source.
    UnknownSource,
    /// The market has a source registry and the event carries no signature.
    Unsigned,
    /// The signature is malformed or does not verify under the source's registered key.
    BadSignature,
    /// The market has a source registry and the sequence is at or below the highest one of
    /// its source that has left the retention window: a replay of an old signed event, or an
    /// event of the source ordered more than `dedup_window_epochs` after a later one.
    StaleSequence,
}

impl RejectReason {
    /// Every reason, for pre-registering metric labels.
    pub const ALL: [Self; 18] = [
        Self::Malformed,
        Self::MissingEvent,
        Self::InvalidSource,
        Self::InvalidSymbol,
        Self::InvalidSide,
        Self::InvalidPrice,
        Self::InvalidQuantity,
        Self::InvalidOrderId,
        Self::CrossedQuote,
        Self::DuplicateSequence,
        Self::DuplicateOrderId,
        Self::UnknownOrder,
        Self::SymbolLimit,
        Self::OrderLimit,
        Self::UnknownSource,
        Self::Unsigned,
        Self::BadSignature,
        Self::StaleSequence,
    ];

    /// The snake-case name used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::MissingEvent => "missing_event",
            Self::InvalidSource => "invalid_source",
            Self::InvalidSymbol => "invalid_symbol",
            Self::InvalidSide => "invalid_side",
            Self::InvalidPrice => "invalid_price",
            Self::InvalidQuantity => "invalid_quantity",
            Self::InvalidOrderId => "invalid_order_id",
            Self::CrossedQuote => "crossed_quote",
            Self::DuplicateSequence => "duplicate_sequence",
            Self::DuplicateOrderId => "duplicate_order_id",
            Self::UnknownOrder => "unknown_order",
            Self::SymbolLimit => "symbol_limit",
            Self::OrderLimit => "order_limit",
            Self::UnknownSource => "unknown_source",
            Self::Unsigned => "unsigned",
            Self::BadSignature => "bad_signature",
            Self::StaleSequence => "stale_sequence",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stateless validation failure: the reason and the offending field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// Why.
    pub reason: RejectReason,
    /// The field path inside `MarketEvent`, e.g. `order.quantity`.
    pub field: &'static str,
    /// What is wrong with it.
    pub problem: &'static str,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.problem)
    }
}

const fn reject(reason: RejectReason, field: &'static str, problem: &'static str) -> Rejection {
    Rejection {
        reason,
        field,
        problem,
    }
}

/// Buy or sell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Side {
    /// Buy.
    Buy,
    /// Sell.
    Sell,
}

impl Side {
    /// The protobuf value.
    pub fn to_proto(self) -> pb::Side {
        match self {
            Self::Buy => pb::Side::Buy,
            Self::Sell => pb::Side::Sell,
        }
    }
}

/// A validated event body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// A venue quote.
    Quote {
        /// Symbol.
        symbol: String,
        /// Bid price.
        bid: i64,
        /// Ask price (≥ bid).
        ask: i64,
    },
    /// A venue trade print.
    Trade {
        /// Symbol.
        symbol: String,
        /// Price (> 0).
        price: i64,
        /// Quantity (> 0).
        quantity: u64,
    },
    /// A new order for the replicated book.
    Order {
        /// The order's identifier within its source.
        order_id: String,
        /// Symbol.
        symbol: String,
        /// Side.
        side: Side,
        /// Limit price; `None` for a market order.
        limit: Option<i64>,
        /// Quantity (> 0).
        quantity: u64,
    },
    /// Cancels a resting order of the same source.
    Cancel {
        /// The order's identifier.
        order_id: String,
    },
}

/// A validated event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The publishing source.
    pub source: String,
    /// Its sequence number within the source.
    pub sequence: u64,
    /// What happened.
    pub body: Body,
}

/// Returns `true` for a symbol: 1 to [`MAX_SYMBOL_LEN`] characters from `[A-Z0-9._/-]`,
/// starting with an upper-case letter or digit (`BTC-USD`, `ES.Z5`, `EUR/USD`).
pub fn is_valid_symbol(symbol: &str) -> bool {
    let bytes = symbol.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_SYMBOL_LEN
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b"._/-".contains(b))
}

/// Returns `true` for a source name: 1 to [`MAX_SOURCE_LEN`] characters from `[A-Za-z0-9._:-]`
/// (no `/`, which separates source and order in execution records).
pub fn is_valid_source(source: &str) -> bool {
    !source.is_empty()
        && source.len() <= MAX_SOURCE_LEN
        && source
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
}

fn is_valid_order_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ORDER_ID_LEN && id.bytes().all(|b| b.is_ascii_graphic())
}

fn symbol(symbol: String, field: &'static str) -> Result<String, Rejection> {
    if is_valid_symbol(&symbol) {
        Ok(symbol)
    } else {
        Err(reject(
            RejectReason::InvalidSymbol,
            field,
            "must be 1-32 characters from [A-Z0-9._/-] starting with a letter or digit",
        ))
    }
}

fn positive_price(price: i64, field: &'static str) -> Result<i64, Rejection> {
    if (1..=MAX_PRICE).contains(&price) {
        Ok(price)
    } else {
        Err(reject(
            RejectReason::InvalidPrice,
            field,
            "must be in 1..=1000000000000 ticks",
        ))
    }
}

fn quantity(quantity: u64, field: &'static str, allow_zero: bool) -> Result<u64, Rejection> {
    if quantity == 0 && !allow_zero {
        return Err(reject(
            RejectReason::InvalidQuantity,
            field,
            "must be positive",
        ));
    }
    if quantity > MAX_QUANTITY {
        return Err(reject(
            RejectReason::InvalidQuantity,
            field,
            "must be at most 1000000000000 lots",
        ));
    }
    Ok(quantity)
}

fn order_id(id: String, field: &'static str) -> Result<String, Rejection> {
    if is_valid_order_id(&id) {
        Ok(id)
    } else {
        Err(reject(
            RejectReason::InvalidOrderId,
            field,
            "must be 1-64 printable ASCII characters",
        ))
    }
}

impl TryFrom<pb::MarketEvent> for Event {
    type Error = Rejection;

    /// Validates an event statelessly.
    fn try_from(event: pb::MarketEvent) -> Result<Self, Rejection> {
        use pb::market_event::Event as E;
        if !is_valid_source(&event.source) {
            return Err(reject(
                RejectReason::InvalidSource,
                "source",
                "must be 1-64 characters from [A-Za-z0-9._:-]",
            ));
        }
        let body = match event.event {
            None => {
                return Err(reject(
                    RejectReason::MissingEvent,
                    "event",
                    "one of quote, trade, order or cancel must be set",
                ));
            }
            Some(E::Quote(q)) => {
                let bid = positive_price(q.bid_price, "quote.bid_price")?;
                let ask = positive_price(q.ask_price, "quote.ask_price")?;
                quantity(q.bid_size, "quote.bid_size", true)?;
                quantity(q.ask_size, "quote.ask_size", true)?;
                if bid > ask {
                    return Err(reject(
                        RejectReason::CrossedQuote,
                        "quote.bid_price",
                        "must not exceed ask_price",
                    ));
                }
                Body::Quote {
                    symbol: symbol(q.symbol, "quote.symbol")?,
                    bid,
                    ask,
                }
            }
            Some(E::Trade(t)) => Body::Trade {
                price: positive_price(t.price, "trade.price")?,
                quantity: quantity(t.quantity, "trade.quantity", false)?,
                symbol: symbol(t.symbol, "trade.symbol")?,
            },
            Some(E::Order(o)) => {
                let side = match pb::Side::try_from(o.side) {
                    Ok(pb::Side::Buy) => Side::Buy,
                    Ok(pb::Side::Sell) => Side::Sell,
                    _ => {
                        return Err(reject(
                            RejectReason::InvalidSide,
                            "order.side",
                            "must be SIDE_BUY or SIDE_SELL",
                        ));
                    }
                };
                let limit = match o.price {
                    0 => None,
                    p => Some(positive_price(p, "order.price")?),
                };
                Body::Order {
                    quantity: quantity(o.quantity, "order.quantity", false)?,
                    symbol: symbol(o.symbol, "order.symbol")?,
                    order_id: order_id(o.order_id, "order.order_id")?,
                    side,
                    limit,
                }
            }
            Some(E::Cancel(c)) => Body::Cancel {
                order_id: order_id(c.order_id, "cancel.order_id")?,
            },
        };
        Ok(Self {
            source: event.source,
            sequence: event.sequence,
            body,
        })
    }
}

/// Decodes and validates one transaction in an open market (no source registry).
pub fn decode(transaction: &[u8]) -> Result<Event, Rejection> {
    decode_checked(transaction, &std::collections::BTreeMap::new())
}

/// Decodes one transaction, checks its signature against `sources` ([`super::sources`]) and
/// validates it.
pub fn decode_checked(
    transaction: &[u8],
    sources: &std::collections::BTreeMap<String, beat_crypto::identity::IdentityPublicKey>,
) -> Result<Event, Rejection> {
    let event = pb::MarketEvent::decode(transaction).map_err(|_| {
        reject(
            RejectReason::Malformed,
            "transaction",
            "is not a protobuf MarketEvent",
        )
    })?;
    super::sources::check(sources, &event)?;
    Event::try_from(event)
}
