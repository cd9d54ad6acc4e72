//! The state service over loopback gRPC against an in-process fake consensus.
#![allow(clippy::unwrap_used)]

mod common;

use std::{os::unix::fs::PermissionsExt as _, time::Duration};

use beat_core::Delivery;
use beat_proto::state::v1::{
    self as pb, GetBookRequest, GetStateRequest, PublishRequest, StatusRequest, WatchStateRequest,
    market_event::Event as E,
};
use beat_state::config::{Config, FeedConfig};
use beat_types::Variant;
use common::*;
use tokio::net::TcpListener;
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

const SYM: &str = "BTC-USD";

fn order(
    source: &str,
    seq: u64,
    id: &str,
    side: pb::Side,
    price: i64,
    qty: u64,
) -> pb::MarketEvent {
    pb::MarketEvent {
        source: source.into(),
        sequence: seq,
        event: Some(E::Order(pb::NewOrder {
            order_id: id.into(),
            symbol: SYM.into(),
            side: side as i32,
            price,
            quantity: qty,
        })),
        signature: Default::default(),
    }
}

fn quote(seq: u64, bid: i64, ask: i64) -> pb::MarketEvent {
    pb::MarketEvent {
        source: "venue".into(),
        sequence: seq,
        event: Some(E::Quote(pb::Quote {
            symbol: SYM.into(),
            bid_price: bid,
            bid_size: 1,
            ask_price: ask,
            ask_size: 1,
        })),
        signature: Default::default(),
    }
}

fn cancel(source: &str, seq: u64, id: &str) -> pb::MarketEvent {
    pb::MarketEvent {
        source: source.into(),
        sequence: seq,
        event: Some(E::Cancel(pb::CancelOrder {
            order_id: id.into(),
        })),
        signature: Default::default(),
    }
}

async fn start_fake(beat2: bool) -> FakeHandle {
    let keys = beat2.then(|| {
        let (file, secrets) = committee(Variant::Beat2, Delivery::Full);
        (file.keys.encryption, secrets)
    });
    FakeConsensus::start(TcpListener::bind("127.0.0.1:0").await.unwrap(), keys).await
}

async fn state_after(
    client: &mut pb::market_service_client::MarketServiceClient<tonic::transport::Channel>,
    events: u64,
) -> pb::GetStateResponse {
    eventually("events to be applied", Duration::from_secs(20), || {
        let mut c = client.clone();
        async move {
            let s = c.get_state(GetStateRequest {}).await.unwrap().into_inner();
            (s.events_applied >= events).then_some(s)
        }
    })
    .await
}

#[test]
fn published_events_are_ordered_applied_and_served() {
    run_bounded(async {
        let dir = temp_dir("publish");
        let fake = start_fake(false).await;
        let (committee, _) = committee(Variant::Beat0, Delivery::Full);
        let state = StateHandle::start(config(&dir, fake.addr), committee).await;
        let mut client = state.client().await;

        let published = client
            .publish(PublishRequest {
                events: vec![
                    order("alice", 1, "a1", pb::Side::Sell, 101, 5),
                    order("alice", 2, "a2", pb::Side::Sell, 102, 5),
                    order("bob", 1, "b1", pb::Side::Buy, 99, 3),
                    quote(1, 99, 103),
                ],
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(published.accepted, 4);
        let s = state_after(&mut client, 4).await;
        assert_eq!(s.symbols.len(), 1);
        assert_eq!((s.symbols[0].best_bid, s.symbols[0].best_ask), (99, 101));
        assert_eq!(s.symbols[0].quote_mid, 101);

        // A crossing buy trades through two levels.
        client
            .publish(PublishRequest {
                events: vec![order("bob", 2, "b2", pb::Side::Buy, 102, 7)],
            })
            .await
            .unwrap();
        let s = state_after(&mut client, 5).await;
        let sym = &s.symbols[0];
        assert_eq!((sym.trades, sym.volume, sym.last_price), (2, 7, 102));
        assert_eq!(sym.vwap, (101 * 5 + 102 * 2) / 7);
        let book = client
            .get_book(GetBookRequest {
                symbol: SYM.into(),
                depth: 0,
            })
            .await
            .unwrap()
            .into_inner();
        let levels = |l: &[pb::Level]| {
            l.iter()
                .map(|l| (l.price, l.quantity, l.orders))
                .collect::<Vec<_>>()
        };
        assert_eq!(levels(&book.bids), [(99, 3, 1)]);
        assert_eq!(levels(&book.asks), [(102, 3, 1)]);
        assert_eq!(book.epoch, s.epoch);

        // The hash is the one a fresh MarketState computes from the committed history.
        let history = fake.fake.history();
        assert_eq!(s.epoch, Some(history.len() as u64 - 1));
        let hashes = replay(&history);
        assert_eq!(s.state_hash.as_ref(), hashes.last().unwrap().as_bytes());
        let status = client.status(StatusRequest {}).await.unwrap().into_inner();
        assert_eq!(status.applied_epoch, s.epoch);
        assert_eq!(status.state_hash, s.state_hash);
        assert!(status.consensus_connected);
        assert!(!status.feed_running);

        // Republishing an applied event changes nothing.
        client
            .publish(PublishRequest {
                events: vec![order("bob", 2, "b2", pb::Side::Buy, 102, 7)],
            })
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let again = client
            .get_state(GetStateRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(again.state_hash, s.state_hash);

        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", state.addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut health = HealthClient::new(channel);
        let serving = health
            .check(HealthCheckRequest {
                service: "beat.state.v1.MarketService".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(serving.status(), ServingStatus::Serving);

        let (status_line, metrics) = state.ops_get("/metrics").await;
        assert!(status_line.contains("200"), "{status_line}");
        assert_eq!(
            metric(&metrics, "beat_state_events_applied_total"),
            Some(5.0)
        );
        assert_eq!(metric(&metrics, "beat_state_executions_total"), Some(2.0));
        assert_eq!(
            metric(&metrics, "beat_state_consensus_connected"),
            Some(1.0)
        );
        assert_eq!(
            metric(&metrics, "beat_state_applied_epoch"),
            s.epoch.map(|e| e as f64)
        );
        assert!(metrics.contains("beat_state_apply_seconds_bucket"));
        assert!(
            metrics.contains("beat_state_events_rejected_total{reason=\"duplicate_sequence\"}")
        );

        state.stop().await.unwrap();
        fake.stop().await;
        let _ = std::fs::remove_dir_all(&dir);
    });
}

#[test]
fn invalid_requests_get_invalid_argument_naming_the_field() {
    run_bounded(async {
        let dir = temp_dir("invalid");
        let fake = start_fake(false).await;
        let (committee, _) = committee(Variant::Beat1, Delivery::Full);
        let state = StateHandle::start(config(&dir, fake.addr), committee).await;
        let mut client = state.client().await;
        let publish = |events: Vec<pb::MarketEvent>| {
            let mut c = client.clone();
            async move { c.publish(PublishRequest { events }).await.unwrap_err() }
        };
        let e = publish(vec![]).await;
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(e.message().starts_with("events:"), "{}", e.message());
        let e = publish(vec![
            quote(1, 100, 101),
            order("alice", 1, "a", pb::Side::Buy, 100, 0),
        ])
        .await;
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(
            e.message().starts_with("events[1].order.quantity:"),
            "{}",
            e.message()
        );
        let e = publish(vec![order("al/ice", 1, "a", pb::Side::Buy, 100, 1)]).await;
        assert!(
            e.message().starts_with("events[0].source:"),
            "{}",
            e.message()
        );
        let e = publish(vec![quote(1, 100, 101); 10_001]).await;
        assert_eq!(e.code(), Code::InvalidArgument);
        assert_eq!(fake.fake.submits(), 0, "nothing invalid reaches consensus");

        let book = |symbol: &str, depth| {
            let mut c = client.clone();
            let symbol = symbol.to_owned();
            async move { c.get_book(GetBookRequest { symbol, depth }).await }
        };
        let e = book("btc usd", 5).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(e.message().starts_with("symbol:"), "{}", e.message());
        let e = book(SYM, 1001).await.unwrap_err();
        assert!(e.message().starts_with("depth:"), "{}", e.message());
        let empty = book("ETH-USD", 5).await.unwrap().into_inner();
        assert!(empty.bids.is_empty() && empty.asks.is_empty());
        assert_eq!(empty.epoch, None, "nothing applied yet");

        // Consensus back-pressure passes through.
        fake.fake.refuse_next(1);
        let e = client
            .publish(PublishRequest {
                events: vec![quote(1, 100, 101)],
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::ResourceExhausted);
        state.stop().await.unwrap();
        fake.stop().await;
        let _ = std::fs::remove_dir_all(&dir);
    });
}

#[test]
fn watch_state_streams_retained_history_then_live_epochs() {
    run_bounded(async {
        let dir = temp_dir("watch");
        let fake = start_fake(false).await;
        let (committee, _) = committee(Variant::Beat0, Delivery::Full);
        let mut cfg = config(&dir, fake.addr);
        cfg.store.report_history = 3;
        let state = StateHandle::start(cfg, committee).await;
        let mut client = state.client().await;
        // One epoch per publish: wait for each to apply.
        for i in 0..4u64 {
            client
                .publish(PublishRequest {
                    events: vec![
                        order("alice", 2 * i, &format!("s{i}"), pb::Side::Sell, 100, 1),
                        order("alice", 2 * i + 1, &format!("b{i}"), pb::Side::Buy, 100, 1),
                    ],
                })
                .await
                .unwrap();
            state_after(&mut client, 2 * (i + 1)).await;
        }
        let history = fake.fake.history();
        assert_eq!(history.len(), 4);
        let hashes = replay(&history);

        let e = client
            .watch_state(WatchStateRequest { from_epoch: 0 })
            .await
            .unwrap_err();
        assert_eq!(
            e.code(),
            Code::OutOfRange,
            "epoch 0 left the 3-epoch history"
        );
        let mut stream = client
            .watch_state(WatchStateRequest { from_epoch: 2 })
            .await
            .unwrap()
            .into_inner();
        for epoch in 2..4u64 {
            let r = stream.message().await.unwrap().unwrap();
            assert_eq!(r.epoch, epoch);
            assert_eq!(r.state_hash.as_ref(), hashes[epoch as usize].as_bytes());
            assert_eq!(r.events, 2);
            assert_eq!(r.executions.len(), 1);
            let x = &r.executions[0];
            assert_eq!(x.taker, format!("alice/b{epoch}"));
            assert_eq!(x.maker, format!("alice/s{epoch}"));
            assert!(x.self_trade);
        }
        let mut future = client
            .watch_state(WatchStateRequest { from_epoch: 5 })
            .await
            .unwrap()
            .into_inner();
        // Live: epoch 4 with a rejected event, then epoch 5.
        for (i, events) in [
            vec![quote(1, 100, 101), cancel("alice", 100, "nope")],
            vec![quote(2, 100, 103)],
        ]
        .into_iter()
        .enumerate()
        {
            client.publish(PublishRequest { events }).await.unwrap();
            state_after(&mut client, 9 + i as u64).await;
        }
        let r = stream.message().await.unwrap().unwrap();
        assert_eq!((r.epoch, r.events, r.rejected), (4, 1, 1));
        let r = stream.message().await.unwrap().unwrap();
        assert_eq!(r.epoch, 5);
        let f = future.message().await.unwrap().unwrap();
        assert_eq!(f.epoch, 5, "a future start waits for its epoch");
        assert_eq!(f.state_hash, r.state_hash);

        state.stop().await.unwrap();
        fake.stop().await;
        let _ = std::fs::remove_dir_all(&dir);
    });
}

#[test]
fn the_feed_submits_through_back_pressure_without_losing_events() {
    run_bounded(async {
        let dir = temp_dir("feed");
        let fake = start_fake(false).await;
        fake.fake.refuse_next(3);
        let (committee, _) = committee(Variant::Beat0, Delivery::Full);
        let cfg = Config {
            feed: FeedConfig {
                enabled: true,
                events_per_second: 2000,
                batch_interval: Duration::from_millis(20),
                max_batch_events: 50,
                ..FeedConfig::default()
            },
            ..config(&dir, fake.addr)
        };
        let state = StateHandle::start(cfg, committee).await;
        let mut client = state.client().await;
        let s = state_after(&mut client, 500).await;
        assert!(
            s.symbols.iter().any(|s| s.trades > 0),
            "the feed's orders trade"
        );
        let status = client.status(StatusRequest {}).await.unwrap().into_inner();
        assert!(status.feed_running);

        // Every committed feed event is one of a gap-free, duplicate-free prefix of the feed.
        let sequences: Vec<u64> = fake
            .fake
            .committed_events()
            .into_iter()
            .filter(|e| e.source == "feed-r0:s0")
            .map(|e| e.sequence)
            .collect();
        assert!(sequences.len() >= 500);
        let mut sorted = sequences.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..sequences.len() as u64).collect::<Vec<_>>());

        let (_, metrics) = state.ops_get("/metrics").await;
        let retries = metric(
            &metrics,
            "beat_state_consensus_retries_total{rpc=\"Submit\"}",
        );
        assert!(retries >= Some(3.0), "{retries:?}");
        assert!(metric(&metrics, "beat_state_feed_events_total") >= Some(500.0));
        assert!(metrics.contains("beat_state_feed_queue"));
        state.stop().await.unwrap();

        // A restarted feed publishes under a new source name.
        let (committee, _) = common::committee(Variant::Beat0, Delivery::Full);
        let cfg = Config {
            feed: FeedConfig {
                enabled: true,
                events_per_second: 500,
                batch_interval: Duration::from_millis(20),
                ..FeedConfig::default()
            },
            ..config(&dir, fake.addr)
        };
        let state = StateHandle::start(cfg, committee).await;
        let mut client = state.client().await;
        let before = client
            .get_state(GetStateRequest {})
            .await
            .unwrap()
            .into_inner();
        state_after(&mut client, before.events_applied + 50).await;
        let events = fake.fake.committed_events();
        assert!(events.iter().any(|e| e.source == "feed-r0:s1"));
        state.stop().await.unwrap();
        fake.stop().await;
        let _ = std::fs::remove_dir_all(&dir);
    });
}

#[test]
fn a_restart_resumes_from_the_next_epoch_with_the_same_state() {
    run_bounded(async {
        let dir = temp_dir("restart");
        let fake = start_fake(false).await;
        let (committee, _) = committee(Variant::Beat0, Delivery::Full);
        let state = StateHandle::start(config(&dir, fake.addr), committee.clone()).await;
        let mut client = state.client().await;
        for i in 0..3u64 {
            client
                .publish(PublishRequest {
                    events: vec![order(
                        "alice",
                        i,
                        &format!("o{i}"),
                        pb::Side::Buy,
                        90 + i as i64,
                        1,
                    )],
                })
                .await
                .unwrap();
            state_after(&mut client, i + 1).await;
        }
        let before = client
            .get_state(GetStateRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(before.epoch, Some(2));
        state.stop().await.unwrap();
        assert_eq!(fake.fake.watch_requests(), [0]);

        let state = StateHandle::start(config(&dir, fake.addr), committee).await;
        let mut client = state.client().await;
        let status = client.status(StatusRequest {}).await.unwrap().into_inner();
        assert_eq!(status.applied_epoch, Some(2));
        assert_eq!(status.state_hash, before.state_hash);
        eventually("the resumed watch", Duration::from_secs(10), || {
            let requests = fake.fake.watch_requests();
            async move { (requests == [0, 3]).then_some(()) }
        })
        .await;
        client
            .publish(PublishRequest {
                events: vec![order("bob", 0, "x", pb::Side::Sell, 91, 2)],
            })
            .await
            .unwrap();
        let after = state_after(&mut client, 4).await;
        assert_eq!(after.epoch, Some(3));
        let hashes = replay(&fake.fake.history());
        assert_eq!(after.state_hash.as_ref(), hashes[3].as_bytes());
        assert_eq!(
            after.symbols[0].trades, 2,
            "orders resting before the restart trade"
        );
        state.stop().await.unwrap();
        fake.stop().await;
        let _ = std::fs::remove_dir_all(&dir);
    });
}

#[test]
fn a_consensus_outage_is_reported_and_survived() {
    run_bounded(async {
        let dir = temp_dir("outage");
        let consensus_addr = free_addr().await;
        let (committee, _) = committee(Variant::Beat0, Delivery::Full);
        let state = StateHandle::start(config(&dir, consensus_addr), committee).await;
        let mut client = state.client().await;
        let status = client.status(StatusRequest {}).await.unwrap().into_inner();
        assert!(!status.consensus_connected);
        assert_eq!(status.applied_epoch, None);
        let (ready, _) = state.ops_get("/readyz").await;
        assert!(ready.contains("200"), "ready without consensus: {ready}");
        let e = client
            .publish(PublishRequest {
                events: vec![quote(1, 100, 101)],
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::Unavailable, "{e:?}");
        let (_, metrics) = state.ops_get("/metrics").await;
        assert_eq!(
            metric(&metrics, "beat_state_consensus_connected"),
            Some(0.0)
        );

        let fake =
            FakeConsensus::start(TcpListener::bind(consensus_addr).await.unwrap(), None).await;
        eventually("the reconnection", Duration::from_secs(10), || {
            let mut c = client.clone();
            async move {
                let s = c.status(StatusRequest {}).await.unwrap().into_inner();
                s.consensus_connected.then_some(())
            }
        })
        .await;
        client
            .publish(PublishRequest {
                events: vec![quote(1, 100, 101)],
            })
            .await
            .unwrap();
        state_after(&mut client, 1).await;

        // Consensus goes away again; the service keeps serving and notices.
        fake.stop().await;
        eventually("the disconnection", Duration::from_secs(10), || {
            let mut c = client.clone();
            async move {
                let s = c.status(StatusRequest {}).await.unwrap().into_inner();
                (!s.consensus_connected).then_some(())
            }
        })
        .await;
        state.stop().await.unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    });
}

#[test]
fn beat2_events_are_client_encrypted_and_ordered_once() {
    run_bounded(async {
        let dir = temp_dir("beat2");
        let fake = start_fake(true).await;
        let (committee, _) = committee(Variant::Beat2, Delivery::Full);
        let state = StateHandle::start(config(&dir, fake.addr), committee).await;
        let mut client = state.client().await;
        let events = vec![
            order("alice", 7, "a", pb::Side::Sell, 100, 2),
            order("bob", 3, "b", pb::Side::Buy, 100, 1),
        ];
        let r = client
            .publish(PublishRequest {
                events: events.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.accepted, 2);
        // A resubmission re-encrypts (a different ciphertext) under the same label.
        client
            .publish(PublishRequest {
                events: events.clone(),
            })
            .await
            .unwrap();
        let s = state_after(&mut client, 2).await;
        assert_eq!(s.symbols[0].trades, 1);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            fake.fake.committed_events().len(),
            2,
            "labels suppress the resubmission"
        );
        state.stop().await.unwrap();

        // The client key was created private, and a restarted service signs with it again:
        // its resubmissions carry the same labels.
        let key_file = dir.join("state-client.key");
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let key = std::fs::read(&key_file).unwrap();
        let (committee, _) = self::committee(Variant::Beat2, Delivery::Full);
        let state = StateHandle::start(config(&dir, fake.addr), committee).await;
        let mut client = state.client().await;
        client.publish(PublishRequest { events }).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            fake.fake.committed_events().len(),
            2,
            "labels suppress the resubmission after a restart"
        );
        state.stop().await.unwrap();
        assert_eq!(std::fs::read(&key_file).unwrap(), key, "the key is kept");

        // A damaged key file stops the service instead of being replaced.
        let mut damaged = key.clone();
        damaged[30] ^= 1;
        std::fs::write(&key_file, &damaged).unwrap();
        let (committee, _) = self::committee(Variant::Beat2, Delivery::Full);
        let state = StateHandle::start(config(&dir, fake.addr), committee).await;
        let e = state.server.await.unwrap().unwrap_err();
        let message = format!("{e:#}");
        assert!(
            message.contains("state-client.key") && message.contains("corrupt"),
            "{message}"
        );
        assert_eq!(std::fs::read(&key_file).unwrap(), damaged);
        fake.stop().await;
        let _ = std::fs::remove_dir_all(&dir);
    });
}

#[test]
fn start_up_refuses_commitments_only_committees_and_bad_configuration() {
    run_bounded(async {
        let dir = temp_dir("refuse");
        let addr = free_addr().await;
        for variant in [Variant::Beat3, Variant::Beat4] {
            let (committee, _) = committee(variant, Delivery::CommitmentsOnly);
            let state = StateHandle::start(config(&dir, addr), committee).await;
            let e = state.server.await.unwrap().unwrap_err();
            assert!(format!("{e:#}").contains("commitments_only"), "{e:#}");
        }
        let (committee, _) = committee(Variant::Beat3, Delivery::Full);
        let mut cfg = config(&dir, addr);
        cfg.feed.enabled = true;
        cfg.feed.symbols = vec!["lower".into()];
        let state = StateHandle::start(cfg, committee).await;
        let e = state.server.await.unwrap().unwrap_err();
        assert!(format!("{e:#}").contains("feed.symbols"), "{e:#}");
        let _ = std::fs::remove_dir_all(&dir);
    });
}

/// With a source registry, `Publish` refuses unsigned, wrongly signed and unregistered events
/// with `INVALID_ARGUMENT` naming the signature, before anything reaches consensus, and a
/// feed whose key is not registered does not start.
#[test]
fn a_registry_refuses_what_its_sources_did_not_sign() {
    use beat_crypto::identity::IdentityKeypair;
    use beat_state::market::sources;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng as _;

    run_bounded(async {
        let dir = temp_dir("registry");
        let fake = start_fake(false).await;
        let (committee, _) = committee(Variant::Beat0, Delivery::Full);
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let (alice, bob) = (
            IdentityKeypair::generate(&mut rng),
            IdentityKeypair::generate(&mut rng),
        );
        let mut cfg = config(&dir, fake.addr);
        cfg.market.sources = [("alice".to_owned(), alice.public())].into();
        // A feed without a registered key is refused at start.
        let mut with_feed = cfg.clone();
        with_feed.feed.enabled = true;
        with_feed.feed.key_file = Some(dir.join("feed.key"));
        with_feed.store.path = dir.join("feed-state.db");
        let err = beat_state::serve(
            with_feed,
            committee.clone(),
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
            std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
            beat_telemetry::shutdown::Shutdown::default(),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains("market.sources.feed-r0"), "{err}");

        let state = StateHandle::start(cfg, committee).await;
        let mut client = state.client().await;
        let signed = |mut e: pb::MarketEvent, key: &IdentityKeypair| {
            sources::sign(&mut e, key);
            e
        };
        let refused = |events: Vec<pb::MarketEvent>| {
            let mut c = client.clone();
            async move { c.publish(PublishRequest { events }).await.unwrap_err() }
        };
        for (events, what) in [
            (
                vec![order("alice", 1, "a", pb::Side::Buy, 100, 1)],
                "unsigned",
            ),
            (
                vec![signed(order("alice", 1, "a", pb::Side::Buy, 100, 1), &bob)],
                "signed by another key",
            ),
            (
                vec![signed(order("bob", 1, "b", pb::Side::Buy, 100, 1), &bob)],
                "an unregistered source",
            ),
        ] {
            let e = refused(events).await;
            assert_eq!(e.code(), Code::InvalidArgument, "{what}");
            assert!(
                e.message().starts_with("events[0].signature:"),
                "{what}: {}",
                e.message()
            );
        }
        assert_eq!(fake.fake.submits(), 0, "nothing forged reaches consensus");
        // Alice's own, signed, in her namespace: accepted and applied.
        client
            .publish(PublishRequest {
                events: vec![
                    signed(order("alice", 1, "a", pb::Side::Buy, 100, 1), &alice),
                    signed(
                        order("alice:desk-2", 1, "a", pb::Side::Sell, 100, 1),
                        &alice,
                    ),
                ],
            })
            .await
            .unwrap();
        let s = state_after(&mut client, 2).await;
        assert_eq!(s.events_applied, 2);
        state.stop().await.unwrap();
        fake.stop().await;
        let _ = std::fs::remove_dir_all(&dir);
    });
}

/// `WatchState` within its limits: at most `max_watchers` streams (a slot comes back when a
/// stream ends), and a client that stops taking reports is cut off by closing its connection.
#[test]
fn watchers_are_capped_and_one_that_stops_reading_is_cut_off() {
    run_bounded(async {
        let dir = temp_dir("watch-limits");
        let fake = start_fake(false).await;
        let (committee, _) = committee(Variant::Beat0, Delivery::Full);
        let mut cfg = config(&dir, fake.addr);
        cfg.watch.max_watchers = 2;
        cfg.watch.buffered_reports = 1;
        cfg.watch.slow_watcher = Duration::from_millis(300);
        let state = StateHandle::start(cfg, committee).await;
        let mut client = state.client().await;
        // A few epochs of history, one Publish each.
        for k in 0..6 {
            client
                .publish(PublishRequest {
                    events: vec![quote(k + 1, 100, 101)],
                })
                .await
                .unwrap();
            state_after(&mut client, k + 1).await;
        }

        // Two streams are served, a third is refused until one ends.
        let watch = |from_epoch| {
            let mut c = client.clone();
            async move { c.watch_state(WatchStateRequest { from_epoch }).await }
        };
        let first = watch(0).await.unwrap();
        let second = watch(0).await.unwrap();
        let third = watch(0).await.unwrap_err();
        assert_eq!(third.code(), Code::ResourceExhausted, "{third:?}");
        drop(first);
        let again = eventually("a slot to come back", Duration::from_secs(10), || {
            let w = watch(0);
            async move { w.await.ok() }
        })
        .await;
        drop((second, again));

        // A client that grants the server a 1-byte window and never reads: after the buffered
        // report, the next one waits past slow_watcher and the connection is closed.
        let slots_free = eventually("both slots back", Duration::from_secs(10), || {
            let w = watch(0);
            async move { w.await.ok() }
        })
        .await;
        drop(slots_free);
        let tcp = tokio::net::TcpStream::connect(state.addr).await.unwrap();
        let (h2_client, connection) = h2::client::Builder::new()
            .initial_window_size(1)
            .handshake::<_, bytes::Bytes>(tcp)
            .await
            .unwrap();
        let connection = tokio::spawn(connection);
        let mut h2_client = h2_client.ready().await.unwrap();
        let request = http::Request::builder()
            .method("POST")
            .uri(format!(
                "http://{}/beat.state.v1.MarketService/WatchState",
                state.addr
            ))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .unwrap();
        let (response, mut body) = h2_client.send_request(request, false).unwrap();
        // An empty WatchStateRequest (from epoch 0), never read back.
        body.send_data(bytes::Bytes::from_static(&[0, 0, 0, 0, 0]), true)
            .unwrap();
        let _response = response;
        let closed = tokio::time::timeout(Duration::from_secs(10), connection).await;
        assert!(
            closed.is_ok(),
            "the stalled watcher's connection was not closed"
        );
        let (_, metrics) = state.ops_get("/metrics").await;
        assert_eq!(
            metric(
                &metrics,
                "beat_api_connections_refused_total{reason=\"watcher_slow\"}"
            ),
            Some(1.0),
            "{metrics}"
        );
        state.stop().await.unwrap();
        fake.stop().await;
        let _ = std::fs::remove_dir_all(&dir);
    });
}
