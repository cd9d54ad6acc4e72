//! Applying one epoch of 1,000 market events: an open market against one whose sources are
//! registered, where every event's Ed25519 signature is verified (docs/wire.md §7).
//!
//! `cargo bench -p beat-state --bench apply`

use beat_crypto::identity::IdentityKeypair;
use beat_proto::state::v1 as pb;
use beat_state::market::{MarketParams, MarketState, sources};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use prost::Message as _;

const EVENTS: u64 = 1_000;

fn batch(key: Option<&IdentityKeypair>) -> Vec<Vec<u8>> {
    (0..EVENTS)
        .map(|k| {
            let mut event = pb::MarketEvent {
                source: "venue:bench".to_owned(),
                sequence: k,
                event: Some(pb::market_event::Event::Quote(pb::Quote {
                    symbol: "BTC-USD".to_owned(),
                    bid_price: 9_990 + (k % 5) as i64,
                    bid_size: 1,
                    ask_price: 10_005,
                    ask_size: 1,
                })),
                signature: Default::default(),
            };
            if let Some(key) = key {
                sources::sign(&mut event, key);
            }
            event.encode_to_vec()
        })
        .collect()
}

fn apply(c: &mut Criterion) {
    let key = IdentityKeypair::from_secret_bytes([3; 32]);
    let registry = MarketParams {
        sources: [("venue".to_owned(), key.public())].into(),
        ..MarketParams::default()
    };
    let mut group = c.benchmark_group("apply_1000_quotes");
    group.sample_size(20);
    for (name, params, txs) in [
        ("open_market", MarketParams::default(), batch(None)),
        ("signed_sources", registry, batch(Some(&key))),
    ] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || MarketState::new(params.clone()),
                |mut state| state.apply_batch(0, &txs).expect("a first epoch applies"),
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, apply);
criterion_main!(benches);
