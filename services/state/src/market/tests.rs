//! Table-driven tests of the order book, validation and statistics.

use beat_proto::state::v1 as pb;
use pb::market_event::Event as E;
use prost::Message as _;

use super::*;

const SYM: &str = "BTC-USD";

fn tx(source: &str, sequence: u64, event: Option<E>) -> Vec<u8> {
    pb::MarketEvent {
        source: source.to_owned(),
        sequence,
        event,
        signature: Default::default(),
    }
    .encode_to_vec()
}

fn order(source: &str, seq: u64, id: &str, side: pb::Side, price: i64, qty: u64) -> Vec<u8> {
    tx(
        source,
        seq,
        Some(E::Order(pb::NewOrder {
            order_id: id.to_owned(),
            symbol: SYM.to_owned(),
            side: side as i32,
            price,
            quantity: qty,
        })),
    )
}

fn buy(seq: u64, id: &str, price: i64, qty: u64) -> Vec<u8> {
    order("s1", seq, id, pb::Side::Buy, price, qty)
}

fn sell(seq: u64, id: &str, price: i64, qty: u64) -> Vec<u8> {
    order("s2", seq, id, pb::Side::Sell, price, qty)
}

fn cancel(source: &str, seq: u64, id: &str) -> Vec<u8> {
    tx(
        source,
        seq,
        Some(E::Cancel(pb::CancelOrder {
            order_id: id.to_owned(),
        })),
    )
}

fn trade(seq: u64, symbol: &str, price: i64, quantity: u64) -> Vec<u8> {
    tx(
        "venue",
        seq,
        Some(E::Trade(pb::TradePrint {
            symbol: symbol.to_owned(),
            price,
            quantity,
        })),
    )
}

fn quote(seq: u64, symbol: &str, bid: i64, ask: i64) -> Vec<u8> {
    tx(
        "venue",
        seq,
        Some(E::Quote(pb::Quote {
            symbol: symbol.to_owned(),
            bid_price: bid,
            bid_size: 1,
            ask_price: ask,
            ask_size: 1,
        })),
    )
}

/// `(price, quantity, taker, maker)`.
type Exec = (i64, u64, &'static str, &'static str);
/// `(price, quantity, orders)`.
type Lvl = (i64, u64, u32);

struct BookCase {
    desc: &'static str,
    events: Vec<Vec<u8>>,
    expect_executions: Vec<Exec>,
    expect_bids: Vec<Lvl>,
    expect_asks: Vec<Lvl>,
    expect_rejected: Vec<(RejectReason, u32)>,
}

fn levels(levels: &[LevelView]) -> Vec<Lvl> {
    levels
        .iter()
        .map(|l| (l.price, l.quantity, l.orders))
        .collect()
}

#[test]
fn order_book_cases() {
    use pb::Side::{Buy, Sell};
    let cases = vec![
        BookCase {
            desc: "non-crossing limit orders rest on both sides",
            events: vec![buy(1, "b", 100, 10), sell(1, "a", 101, 5)],
            expect_executions: vec![],
            expect_bids: vec![(100, 10, 1)],
            expect_asks: vec![(101, 5, 1)],
            expect_rejected: vec![],
        },
        BookCase {
            desc: "price priority: the lowest ask fills first, at the maker's price",
            events: vec![
                sell(1, "a", 103, 1),
                sell(2, "b", 101, 1),
                sell(3, "c", 102, 1),
                buy(1, "x", 102, 3),
            ],
            expect_executions: vec![(101, 1, "s1/x", "s2/b"), (102, 1, "s1/x", "s2/c")],
            expect_bids: vec![(102, 1, 1)],
            expect_asks: vec![(103, 1, 1)],
            expect_rejected: vec![],
        },
        BookCase {
            desc: "time priority within a level",
            events: vec![
                sell(1, "a", 100, 2),
                sell(2, "b", 100, 2),
                buy(1, "x", 100, 3),
            ],
            expect_executions: vec![(100, 2, "s1/x", "s2/a"), (100, 1, "s1/x", "s2/b")],
            expect_bids: vec![],
            expect_asks: vec![(100, 1, 1)],
            expect_rejected: vec![],
        },
        BookCase {
            desc: "partial fills across levels, remainder rests at the limit",
            events: vec![
                sell(1, "a", 100, 1),
                sell(2, "b", 101, 2),
                sell(3, "c", 102, 5),
                buy(1, "x", 101, 10),
            ],
            expect_executions: vec![(100, 1, "s1/x", "s2/a"), (101, 2, "s1/x", "s2/b")],
            expect_bids: vec![(101, 7, 1)],
            expect_asks: vec![(102, 5, 1)],
            expect_rejected: vec![],
        },
        BookCase {
            desc: "a sell hits the highest bid first",
            events: vec![
                buy(1, "a", 99, 1),
                buy(2, "b", 100, 1),
                buy(3, "c", 97, 1),
                sell(1, "x", 98, 3),
            ],
            expect_executions: vec![(100, 1, "s2/x", "s1/b"), (99, 1, "s2/x", "s1/a")],
            expect_bids: vec![(97, 1, 1)],
            expect_asks: vec![(98, 1, 1)],
            expect_rejected: vec![],
        },
        BookCase {
            desc: "a market order sweeps any price and its remainder rests nowhere",
            events: vec![
                sell(1, "a", 100, 1),
                sell(2, "b", 105, 1),
                buy(1, "m", 0, 5),
            ],
            expect_executions: vec![(100, 1, "s1/m", "s2/a"), (105, 1, "s1/m", "s2/b")],
            expect_bids: vec![],
            expect_asks: vec![],
            expect_rejected: vec![],
        },
        BookCase {
            desc: "a market order against an empty side does nothing",
            events: vec![sell(1, "m", 0, 3), buy(1, "b", 50, 1)],
            expect_executions: vec![],
            expect_bids: vec![(50, 1, 1)],
            expect_asks: vec![],
            expect_rejected: vec![],
        },
        BookCase {
            desc: "levels aggregate quantity and count orders",
            events: vec![buy(1, "a", 100, 1), buy(2, "b", 100, 4), buy(3, "c", 99, 2)],
            expect_executions: vec![],
            expect_bids: vec![(100, 5, 2), (99, 2, 1)],
            expect_asks: vec![],
            expect_rejected: vec![],
        },
        BookCase {
            desc: "a cancelled order leaves the book and no longer matches",
            events: vec![
                sell(1, "a", 100, 1),
                cancel("s2", 2, "a"),
                buy(1, "x", 100, 1),
            ],
            expect_executions: vec![],
            expect_bids: vec![(100, 1, 1)],
            expect_asks: vec![],
            expect_rejected: vec![],
        },
        BookCase {
            desc: "cancelling another source's order or an unknown order is skipped",
            events: vec![
                buy(1, "a", 100, 1),
                cancel("s2", 1, "a"),
                cancel("s1", 2, "zz"),
            ],
            expect_executions: vec![],
            expect_bids: vec![(100, 1, 1)],
            expect_asks: vec![],
            expect_rejected: vec![(RejectReason::UnknownOrder, 2)],
        },
        BookCase {
            desc: "a partially filled order can be cancelled",
            events: vec![
                sell(1, "a", 100, 5),
                buy(1, "x", 100, 2),
                cancel("s2", 2, "a"),
            ],
            expect_executions: vec![(100, 2, "s1/x", "s2/a")],
            expect_bids: vec![],
            expect_asks: vec![],
            expect_rejected: vec![],
        },
        BookCase {
            desc: "a self-trade executes",
            events: vec![
                order("s1", 1, "a", Sell, 100, 1),
                order("s1", 2, "b", Buy, 100, 1),
            ],
            expect_executions: vec![(100, 1, "s1/b", "s1/a")],
            expect_bids: vec![],
            expect_asks: vec![],
            expect_rejected: vec![],
        },
        BookCase {
            desc: "an identifier of a resting order cannot be reused, of a filled one can",
            events: vec![
                buy(1, "a", 100, 1),
                buy(2, "a", 99, 1),
                sell(1, "x", 100, 1),
                buy(3, "a", 98, 1),
            ],
            expect_executions: vec![(100, 1, "s2/x", "s1/a")],
            expect_bids: vec![(98, 1, 1)],
            expect_asks: vec![],
            expect_rejected: vec![(RejectReason::DuplicateOrderId, 1)],
        },
        BookCase {
            desc: "a repeated (source, sequence) is skipped even with another body",
            events: vec![buy(1, "a", 100, 1), buy(1, "b", 100, 1)],
            expect_executions: vec![],
            expect_bids: vec![(100, 1, 1)],
            expect_asks: vec![],
            expect_rejected: vec![(RejectReason::DuplicateSequence, 1)],
        },
    ];
    for case in cases {
        let mut state = MarketState::new(MarketParams::default());
        let report = state.apply_batch(0, &case.events).unwrap();
        let executions: Vec<_> = report
            .executions
            .iter()
            .map(|e| {
                assert_eq!(e.symbol, SYM, "{}", case.desc);
                (
                    e.price,
                    e.quantity,
                    e.taker.to_string(),
                    e.maker.to_string(),
                )
            })
            .collect();
        let expected: Vec<_> = case
            .expect_executions
            .iter()
            .map(|&(p, q, t, m)| (p, q, t.to_owned(), m.to_owned()))
            .collect();
        assert_eq!(executions, expected, "{}", case.desc);
        let (bids, asks) = state.book(SYM, 100);
        assert_eq!(levels(&bids), case.expect_bids, "{}: bids", case.desc);
        assert_eq!(levels(&asks), case.expect_asks, "{}: asks", case.desc);
        let rejected: Vec<_> = report.rejected.into_iter().collect();
        assert_eq!(rejected, case.expect_rejected, "{}: rejected", case.desc);
        let total_rejected: u32 = case.expect_rejected.iter().map(|r| r.1).sum();
        assert_eq!(
            report.events as usize + total_rejected as usize,
            case.events.len(),
            "{}",
            case.desc
        );
        // Statistics follow the executions.
        if let Some(market) = state.symbol(SYM) {
            let volume: u64 = expected.iter().map(|e| e.1).sum();
            assert_eq!(market.stats.volume, u128::from(volume), "{}", case.desc);
            assert_eq!(market.stats.trades, expected.len() as u64, "{}", case.desc);
            let self_trades = report.executions.iter().filter(|e| e.is_self_trade());
            assert_eq!(market.stats.self_trades, self_trades.count() as u64);
            assert_eq!(market.book.best_bid(), bids.first().map(|l| l.price));
            assert_eq!(market.book.best_ask(), asks.first().map(|l| l.price));
        }
    }
}

#[test]
fn invalid_events_are_skipped_with_their_reason() {
    use RejectReason as R;
    let with_order = |f: fn(&mut pb::NewOrder)| {
        let mut o = pb::NewOrder {
            order_id: "o".into(),
            symbol: SYM.into(),
            side: pb::Side::Buy as i32,
            price: 100,
            quantity: 1,
        };
        f(&mut o);
        tx("s1", 9, Some(E::Order(o)))
    };
    let cases: Vec<(&str, Vec<u8>, RejectReason, &str)> = vec![
        (
            "garbage",
            vec![0xff, 0xff, 0xff],
            R::Malformed,
            "transaction",
        ),
        ("no body", tx("s1", 1, None), R::MissingEvent, "event"),
        ("empty source", buy_from("", 1), R::InvalidSource, "source"),
        (
            "slash in source",
            buy_from("a/b", 1),
            R::InvalidSource,
            "source",
        ),
        (
            "long source",
            buy_from(&"a".repeat(65), 1),
            R::InvalidSource,
            "source",
        ),
        (
            "lower-case symbol",
            trade(1, "btc-usd", 100, 1),
            R::InvalidSymbol,
            "trade.symbol",
        ),
        (
            "empty symbol",
            quote(1, "", 100, 101),
            R::InvalidSymbol,
            "quote.symbol",
        ),
        (
            "long symbol",
            trade(1, &"A".repeat(33), 100, 1),
            R::InvalidSymbol,
            "trade.symbol",
        ),
        (
            "unspecified side",
            with_order(|o| o.side = 0),
            R::InvalidSide,
            "order.side",
        ),
        (
            "unknown side",
            with_order(|o| o.side = 7),
            R::InvalidSide,
            "order.side",
        ),
        (
            "negative price",
            with_order(|o| o.price = -1),
            R::InvalidPrice,
            "order.price",
        ),
        (
            "price too high",
            with_order(|o| o.price = event::MAX_PRICE + 1),
            R::InvalidPrice,
            "order.price",
        ),
        (
            "zero quantity order",
            with_order(|o| o.quantity = 0),
            R::InvalidQuantity,
            "order.quantity",
        ),
        (
            "quantity too high",
            with_order(|o| o.quantity = event::MAX_QUANTITY + 1),
            R::InvalidQuantity,
            "order.quantity",
        ),
        (
            "empty order id",
            with_order(|o| o.order_id.clear()),
            R::InvalidOrderId,
            "order.order_id",
        ),
        (
            "order id with a space",
            with_order(|o| o.order_id = "a b".into()),
            R::InvalidOrderId,
            "order.order_id",
        ),
        (
            "zero quantity trade",
            trade(1, SYM, 100, 0),
            R::InvalidQuantity,
            "trade.quantity",
        ),
        (
            "zero price trade",
            trade(1, SYM, 0, 1),
            R::InvalidPrice,
            "trade.price",
        ),
        (
            "zero bid",
            quote(1, SYM, 0, 1),
            R::InvalidPrice,
            "quote.bid_price",
        ),
        (
            "crossed quote",
            quote(1, SYM, 102, 101),
            R::CrossedQuote,
            "quote.bid_price",
        ),
        (
            "empty cancel id",
            cancel("s1", 1, ""),
            R::InvalidOrderId,
            "cancel.order_id",
        ),
    ];
    for (desc, bytes, reason, field) in cases {
        let rejection = event::decode(&bytes).unwrap_err();
        assert_eq!(
            (rejection.reason, rejection.field),
            (reason, field),
            "{desc}"
        );
        let mut state = MarketState::new(MarketParams::default());
        let report = state.apply_batch(0, &[bytes]).unwrap();
        assert_eq!(report.events, 0, "{desc}");
        assert_eq!(report.rejected.get(&reason), Some(&1), "{desc}");
        assert!(state.symbols().is_empty(), "{desc}: no symbol created");
        assert_eq!(state.events_rejected(), 1);
    }
}

fn buy_from(source: &str, seq: u64) -> Vec<u8> {
    order(source, seq, "o", pb::Side::Buy, 100, 1)
}

#[test]
fn symbol_and_order_limits_skip_whole_events() {
    let params = MarketParams {
        max_symbols: 1,
        max_resting_orders: 1,
        ..MarketParams::default()
    };
    let mut state = MarketState::new(params);
    let report = state
        .apply_batch(
            0,
            &[
                buy(1, "a", 100, 1),
                trade(1, "ETH-USD", 10, 1),
                buy(2, "b", 99, 1),
                // A market order never rests, so the order limit does not apply to it.
                sell(1, "m", 0, 1),
            ],
        )
        .unwrap();
    assert_eq!(report.rejected.get(&RejectReason::SymbolLimit), Some(&1));
    assert_eq!(report.rejected.get(&RejectReason::OrderLimit), Some(&1));
    assert_eq!(report.executions.len(), 1);
    assert_eq!(state.symbols().len(), 1);
    assert_eq!(state.resting_orders(), 0);
}

#[test]
fn vwap_is_exact_and_rounds_down() {
    let mut state = MarketState::new(MarketParams::default());
    state
        .apply_batch(
            0,
            &[
                trade(1, SYM, 100, 3),
                trade(2, SYM, 101, 1),
                sell(1, "a", 99, 2),
                buy(1, "b", 99, 2),
            ],
        )
        .unwrap();
    let stats = &state.symbol(SYM).unwrap().stats;
    assert_eq!(stats.turnover, 300 + 101 + 198);
    assert_eq!(stats.volume, 6);
    assert_eq!(stats.vwap(), 99, "599 / 6 = 99.83 rounds down");
    assert_eq!(stats.last_price, 99);
    assert_eq!(stats.trades, 3);

    // Extreme values: a float average would lose the low-order unit.
    let (p, q) = (event::MAX_PRICE, event::MAX_QUANTITY);
    state
        .apply_batch(
            1,
            &[
                trade(3, "X", p, q),
                trade(4, "X", p, q),
                trade(5, "X", 1, 1),
            ],
        )
        .unwrap();
    let stats = &state.symbol("X").unwrap().stats;
    let turnover = 2 * (p as u128) * u128::from(q) + 1;
    let volume = 2 * u128::from(q) + 1;
    assert_eq!((stats.turnover, stats.volume), (turnover, volume));
    assert_eq!(stats.vwap() as u128, turnover / volume);
    assert_eq!(stats.vwap(), 999_999_999_999);
    assert_eq!(stats.last_price, 1);
}

#[test]
fn quotes_set_the_floored_mid() {
    let mut state = MarketState::new(MarketParams::default());
    state
        .apply_batch(0, &[quote(1, SYM, 100, 103), quote(2, "ETH-USD", 7, 7)])
        .unwrap();
    assert_eq!(state.symbol(SYM).unwrap().stats.quote_mid, 101);
    assert_eq!(state.symbol("ETH-USD").unwrap().stats.quote_mid, 7);
    assert_eq!(state.symbol(SYM).unwrap().stats.trades, 0);
}

#[test]
fn duplicates_are_remembered_for_the_window_only() {
    let params = MarketParams {
        dedup_window_epochs: 2,
        ..MarketParams::default()
    };
    let mut state = MarketState::new(params);
    let t = trade(7, SYM, 100, 1);
    let dup = |r: &EpochReport| r.rejected.get(&RejectReason::DuplicateSequence).copied();
    assert_eq!(
        dup(&state.apply_batch(0, std::slice::from_ref(&t)).unwrap()),
        None
    );
    assert_eq!(
        dup(&state.apply_batch(1, std::slice::from_ref(&t)).unwrap()),
        Some(1)
    );
    // Epoch 0 left the two-epoch window.
    assert_eq!(
        dup(&state.apply_batch(2, std::slice::from_ref(&t)).unwrap()),
        None
    );
    assert_eq!(dup(&state.apply_batch(3, &[t]).unwrap()), Some(1));
    assert_eq!(state.symbol(SYM).unwrap().stats.trades, 2);
}

#[test]
fn epochs_apply_in_order_only() {
    let mut state = MarketState::new(MarketParams::default());
    assert_eq!(
        state.apply_batch::<Vec<u8>>(1, &[]).unwrap_err(),
        OutOfOrder {
            expected: 0,
            got: 1
        }
    );
    let genesis = state.state_hash();
    state.apply_batch::<Vec<u8>>(0, &[]).unwrap();
    assert_ne!(
        state.state_hash(),
        genesis,
        "an empty epoch still advances the chain"
    );
    assert!(state.apply_batch::<Vec<u8>>(0, &[]).is_err());
    assert_eq!(state.next_epoch(), 1);
}

#[test]
fn parameters_are_part_of_the_genesis_hash() {
    let other = MarketParams {
        dedup_window_epochs: 65,
        ..MarketParams::default()
    };
    assert_ne!(
        MarketState::genesis_hash(&MarketParams::default()),
        MarketState::genesis_hash(&other)
    );
}

#[test]
fn restored_state_cancels_and_matches_like_the_original() {
    let mut state = MarketState::new(MarketParams::default());
    state
        .apply_batch(0, &[buy(1, "a", 100, 5), sell(1, "b", 105, 5)])
        .unwrap();
    let mut restored = MarketState::restore(MarketParams::default(), &state.snapshot()).unwrap();
    assert_eq!(restored.resting_orders(), 2, "order index rebuilt");
    let next = [cancel("s1", 2, "a"), buy(3, "c", 105, 2)];
    let a = state.apply_batch(1, &next).unwrap();
    let b = restored.apply_batch(1, &next).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.executions.len(), 1);
    assert!(a.rejected.is_empty());

    let mut tampered = state.snapshot();
    tampered.body[0] ^= 1;
    assert!(matches!(
        MarketState::restore(MarketParams::default(), &tampered),
        Err(SnapshotError::Hash)
    ));
    let mut fresh = MarketState::new(MarketParams::default()).snapshot();
    fresh.body = state.snapshot().body;
    assert!(
        matches!(
            MarketState::restore(MarketParams::default(), &fresh),
            Err(SnapshotError::Hash)
        ),
        "a genesis snapshot carries the empty body"
    );
    let other = MarketParams {
        max_symbols: 3,
        ..MarketParams::default()
    };
    assert!(matches!(
        MarketState::restore(other, &state.snapshot()),
        Err(SnapshotError::Params { .. })
    ));
}

/// With a source registry, nobody can cancel another source's orders, publish as another venue
/// or burn another source's sequence numbers — even when the forged events are ordered
/// (submitted to consensus directly): every replica skips them, before the duplicate check.
#[test]
fn forged_events_are_skipped_and_consume_nothing_of_the_victims() {
    use beat_crypto::identity::IdentityKeypair;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng as _;

    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let (alice, bob, venue) = (
        IdentityKeypair::generate(&mut rng),
        IdentityKeypair::generate(&mut rng),
        IdentityKeypair::generate(&mut rng),
    );
    let params = MarketParams {
        sources: [("s1", &alice), ("s2", &bob), ("venue", &venue)]
            .into_iter()
            .map(|(n, k)| (n.to_owned(), k.public()))
            .collect(),
        ..MarketParams::default()
    };
    let signed = |tx: Vec<u8>, key: &IdentityKeypair| {
        let mut event = pb::MarketEvent::decode(tx.as_slice()).unwrap();
        sources::sign(&mut event, key);
        event.encode_to_vec()
    };
    let mut state = MarketState::new(params.clone());
    // Alice rests an order; bob, the venue and a stranger try to interfere.
    let forged = [
        signed(buy(1, "a1", 100, 5), &alice),
        // Bob cancels alice's order under her name, signing with his key.
        signed(cancel("s1", 2, "a1"), &bob),
        // An unsigned cancel under her name.
        cancel("s1", 3, "a1"),
        // A trade print as the venue, signed by bob.
        signed(trade(1, SYM, 1, 1), &bob),
        // Bob's own events under an unregistered name.
        signed(order("mallory", 1, "m1", pb::Side::Sell, 100, 5), &bob),
    ];
    let report = state.apply_batch(0, &forged).unwrap();
    assert_eq!(report.rejected.get(&RejectReason::BadSignature), Some(&2));
    assert_eq!(report.rejected.get(&RejectReason::Unsigned), Some(&1));
    assert_eq!(report.rejected.get(&RejectReason::UnknownSource), Some(&1));
    assert_eq!(state.resting_orders(), 1, "alice's order still rests");
    assert_eq!(
        state.symbol(SYM).map(|m| m.stats.trades),
        Some(0),
        "no forged trade print"
    );
    // Alice's own sequence numbers 2 and 3 were not consumed by the forgeries: her real cancel
    // with sequence 2 applies.
    let genuine = [signed(cancel("s1", 2, "a1"), &alice)];
    let report = state.apply_batch(1, &genuine).unwrap();
    assert_eq!(report.rejected_total(), 0);
    assert_eq!(state.resting_orders(), 0);
    // A replica that replays the same history computes the same state.
    let mut replay = MarketState::new(params);
    replay.apply_batch(0, &forged).unwrap();
    replay.apply_batch(1, &genuine).unwrap();
    assert_eq!(replay.state_hash(), state.state_hash());
    // The registry is part of the genesis hash.
    assert_ne!(
        MarketState::genesis_hash(&MarketParams::default()),
        MarketState::genesis_hash(replay.params())
    );
}

/// With a source registry a signed event cannot be replayed once it has left the duplicate
/// window: its source's floor has risen past it. Later events of the source still apply, the
/// floor survives a snapshot, and an open market keeps no floors (anyone may publish as anyone).
#[test]
fn signed_events_cannot_be_replayed_after_the_window() {
    use beat_crypto::identity::IdentityKeypair;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng as _;

    let venue = IdentityKeypair::generate(&mut ChaCha20Rng::seed_from_u64(11));
    let registered = MarketParams {
        dedup_window_epochs: 2,
        sources: [("venue".to_owned(), venue.public())].into_iter().collect(),
        ..MarketParams::default()
    };
    let signed = |tx: Vec<u8>| {
        let mut event = pb::MarketEvent::decode(tx.as_slice()).unwrap();
        sources::sign(&mut event, &venue);
        event.encode_to_vec()
    };
    let (print5, print6, print9) = (
        signed(trade(5, SYM, 100, 1)),
        signed(trade(6, SYM, 100, 1)),
        signed(trade(9, SYM, 100, 1)),
    );
    let rejected = |r: &EpochReport, reason| r.rejected.get(&reason).copied().unwrap_or(0);

    let mut state = MarketState::new(registered.clone());
    state
        .apply_batch(0, &[print5.clone(), print9.clone()])
        .unwrap();
    let r = state.apply_batch(1, std::slice::from_ref(&print5)).unwrap();
    assert_eq!(rejected(&r, RejectReason::DuplicateSequence), 1);
    // Epoch 0 leaves the window: its sequences 5 and 9 raise the venue's floor to 9. Replaying
    // either is refused for good, and so is 6, ordered more than a window after 9.
    for epoch in 2..6 {
        let r = state
            .apply_batch(epoch, &[print5.clone(), print9.clone(), print6.clone()])
            .unwrap();
        assert_eq!(
            rejected(&r, RejectReason::StaleSequence),
            3,
            "epoch {epoch}"
        );
        assert_eq!(r.events, 0);
    }
    // The venue's later sequences apply.
    let r = state
        .apply_batch(6, &[signed(trade(10, SYM, 100, 1))])
        .unwrap();
    assert_eq!((r.events, r.rejected_total()), (1, 0));
    assert_eq!(state.symbol(SYM).unwrap().stats.trades, 3);
    // The floor is part of the state: a restored replica refuses the replay too.
    let mut restored = MarketState::restore(registered, &state.snapshot()).unwrap();
    let r = restored.apply_batch(7, &[print9]).unwrap();
    assert_eq!(rejected(&r, RejectReason::StaleSequence), 1);

    // An open market remembers pairs for the window only.
    let mut open = MarketState::new(MarketParams {
        dedup_window_epochs: 2,
        ..MarketParams::default()
    });
    let t = trade(5, SYM, 100, 1);
    for epoch in [0, 2, 4] {
        let r = open.apply_batch(epoch, std::slice::from_ref(&t)).unwrap();
        assert_eq!(r.events, 1, "epoch {epoch}");
        open.apply_batch(epoch + 1, &Vec::<Vec<u8>>::new()).unwrap();
    }
}
