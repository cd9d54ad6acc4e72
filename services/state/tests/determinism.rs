//! Determinism of the market state machine: the state hash is a pure function of the committed
//! history, sensitive to every event, and unaffected by a snapshot/restore in between.
//!
//! Bounded in time by the case count (each case applies at most 8 epochs of 24 events).
#![allow(clippy::unwrap_used)]

use beat_crypto::Digest;
use beat_proto::state::v1::{self as pb, market_event::Event as E};
use beat_state::market::{MarketParams, MarketState, Snapshot};
use proptest::{prelude::*, strategy::ValueTree};
use prost::Message as _;

fn event() -> impl Strategy<Value = Vec<u8>> {
    let source = prop::sample::select(vec!["a", "b", "c"]);
    let symbol = prop::sample::select(vec!["X", "Y"]);
    let order_id = (0..6u8).prop_map(|i| format!("o{i}"));
    let body = prop_oneof![
        5 => (order_id.clone(), symbol.clone(), prop::bool::ANY, prop_oneof![1 => Just(0i64), 6 => 95..=105i64], 1..=5u64)
            .prop_map(|(order_id, symbol, buy, price, quantity)| {
                let side = if buy { pb::Side::Buy } else { pb::Side::Sell };
                Some(E::Order(pb::NewOrder { order_id, symbol: symbol.to_owned(), side: side as i32, price, quantity }))
            }),
        2 => order_id.prop_map(|order_id| Some(E::Cancel(pb::CancelOrder { order_id }))),
        1 => (symbol.clone(), 95..=105i64, 1..=5u64).prop_map(|(s, price, quantity)| {
            Some(E::Trade(pb::TradePrint { symbol: s.to_owned(), price, quantity }))
        }),
        1 => (symbol, 95..=100i64, 0..=5i64).prop_map(|(s, bid, spread)| {
            Some(E::Quote(pb::Quote { symbol: s.to_owned(), bid_price: bid, bid_size: 1, ask_price: bid + spread, ask_size: 1 }))
        }),
        // Invalid: zero quantity.
        1 => Just(Some(E::Trade(pb::TradePrint { symbol: "X".into(), price: 100, quantity: 0 }))),
    ];
    prop_oneof![
        12 => (source, 0..30u64, body).prop_map(|(source, sequence, event)| {
            pb::MarketEvent { source: source.to_owned(), sequence, event , signature: Default::default() }.encode_to_vec()
        }),
        1 => prop::collection::vec(any::<u8>(), 0..12),
    ]
}

fn batches() -> impl Strategy<Value = Vec<Vec<Vec<u8>>>> {
    prop::collection::vec(prop::collection::vec(event(), 0..24), 1..8)
}

fn hashes(params: &MarketParams, batches: &[Vec<Vec<u8>>]) -> Vec<Digest> {
    let mut state = MarketState::new(params.clone());
    batches
        .iter()
        .enumerate()
        .map(|(e, b)| state.apply_batch(e as u64, b).unwrap().state_hash)
        .collect()
}

fn params() -> MarketParams {
    MarketParams {
        // Short enough that duplicates expire within a case.
        dedup_window_epochs: 3,
        ..MarketParams::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn the_same_batches_give_the_same_reports_and_hashes(batches in batches()) {
        let params = params();
        let mut a = MarketState::new(params.clone());
        let mut b = MarketState::new(params);
        for (e, batch) in batches.iter().enumerate() {
            let ra = a.apply_batch(e as u64, batch).unwrap();
            let rb = b.apply_batch(e as u64, batch).unwrap();
            prop_assert_eq!(&ra, &rb);
            prop_assert_eq!(a.snapshot(), b.snapshot());
        }
    }

    #[test]
    fn a_batch_differing_in_one_event_changes_this_and_every_later_hash(
        batches in batches(),
        which in any::<prop::sample::Index>(),
        position in any::<prop::sample::Index>(),
    ) {
        let params = params();
        let target = which.index(batches.len());
        let mut changed = batches.clone();
        // A valid, never otherwise used event, replacing or (in an empty batch) added.
        let fresh = pb::MarketEvent {
            source: "z".into(),
            sequence: 1_000,
            event: Some(E::Trade(pb::TradePrint { symbol: "X".into(), price: 100, quantity: 1 })),
            signature: Default::default(),
        }
        .encode_to_vec();
        match changed[target].len() {
            0 => changed[target].push(fresh),
            n => changed[target][position.index(n)] = fresh,
        }
        let original = hashes(&params, &batches);
        let modified = hashes(&params, &changed);
        for (e, (x, y)) in original.iter().zip(&modified).enumerate() {
            if e < target {
                prop_assert_eq!(x, y, "epoch {} precedes the change", e);
            } else {
                prop_assert_ne!(x, y, "epoch {} follows the change", e);
            }
        }
    }

    #[test]
    fn snapshot_restore_and_continue_equals_an_uninterrupted_run(
        batches in batches(),
        split in any::<prop::sample::Index>(),
    ) {
        let params = params();
        let split = split.index(batches.len() + 1);
        let uninterrupted = hashes(&params, &batches);
        let mut first = MarketState::new(params.clone());
        let mut resumed_hashes = Vec::new();
        for (e, batch) in batches[..split].iter().enumerate() {
            resumed_hashes.push(first.apply_batch(e as u64, batch).unwrap().state_hash);
        }
        // Through the stored encoding, as the store does it.
        let bytes = postcard::to_allocvec(&first.snapshot()).unwrap();
        let snapshot: Snapshot = postcard::from_bytes(&bytes).unwrap();
        let mut resumed = MarketState::restore(params, &snapshot).unwrap();
        prop_assert_eq!(resumed.state_hash(), first.state_hash());
        for (e, batch) in batches.iter().enumerate().skip(split) {
            let r = resumed.apply_batch(e as u64, batch).unwrap();
            let f = first.apply_batch(e as u64, batch).unwrap();
            prop_assert_eq!(&r, &f);
            resumed_hashes.push(r.state_hash);
        }
        prop_assert_eq!(resumed_hashes, uninterrupted);
        prop_assert_eq!(resumed.snapshot(), first.snapshot());
    }
}

#[test]
fn generated_histories_exercise_the_book() {
    // Guards the strategies above against silently generating only rejections.
    use proptest::test_runner::{Config, TestRunner};
    let mut runner = TestRunner::new(Config::default());
    let (mut executions, mut applied, mut rejected) = (0, 0, 0);
    for _ in 0..32 {
        let batches = batches().new_tree(&mut runner).unwrap().current();
        let mut state = MarketState::new(params());
        for (e, b) in batches.iter().enumerate() {
            let r = state.apply_batch(e as u64, b).unwrap();
            executions += r.executions.len();
            applied += r.events;
            rejected += r.rejected_total();
        }
    }
    assert!(
        executions > 10 && applied > 100 && rejected > 10,
        "{executions} {applied} {rejected}"
    );
}
