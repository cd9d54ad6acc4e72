//! Crash recovery with the sled store: reopening resumes from the next epoch with the same
//! state, and a damaged store is refused rather than reset.
#![allow(clippy::unwrap_used)]

mod common;

use beat_proto::{
    common::v1::{
        Batch, Contribution, RejectReason, StoredCommitment, TransactionList, contribution::Content,
    },
    state::v1::{self as pb, market_event::Event as E},
};
use beat_state::{
    applier::{Applied, Applier, ApplyError},
    config::{FlushPolicy, StoreConfig},
    market::{MarketParams, MarketState, Snapshot},
    store::{Store, StoreError},
};
use bytes::Bytes;
use common::temp_dir;
use prost::Message as _;

fn order(seq: u64, side: pb::Side, price: i64) -> Bytes {
    Bytes::from(
        pb::MarketEvent {
            source: "s".into(),
            sequence: seq,
            event: Some(E::Order(pb::NewOrder {
                order_id: format!("o{seq}"),
                symbol: "X".into(),
                side: side as i32,
                price,
                quantity: 2,
            })),
            signature: Default::default(),
        }
        .encode_to_vec(),
    )
}

/// Epoch `e`: one resting order per side from proposer 0, a rejected contribution from proposer
/// 1 and a crossing order from proposer 2.
fn batch(epoch: u64) -> Batch {
    let list = |txs: Vec<Bytes>| Some(Content::Transactions(TransactionList { transactions: txs }));
    Batch {
        epoch,
        contributions: vec![
            Contribution {
                proposer: 0,
                content: list(vec![
                    order(3 * epoch, pb::Side::Buy, 100 - epoch as i64),
                    order(3 * epoch + 1, pb::Side::Sell, 110 + epoch as i64),
                ]),
            },
            Contribution {
                proposer: 1,
                content: Some(Content::Rejected(RejectReason::Undecodable as i32)),
            },
            Contribution {
                proposer: 2,
                content: list(vec![order(
                    3 * epoch + 2,
                    pb::Side::Buy,
                    110 + epoch as i64,
                )]),
            },
        ],
        ordered_labels: Vec::new(),
        digest: Bytes::new(),
    }
}

fn store_config(dir: &std::path::Path) -> StoreConfig {
    StoreConfig {
        path: dir.join("db"),
        report_history: 3,
        ..StoreConfig::default()
    }
}

fn open(config: &StoreConfig) -> Result<Applier, StoreError> {
    Applier::open(Store::open(config)?, &MarketParams::default())
}

fn reference_hashes(epochs: u64) -> Vec<beat_crypto::Digest> {
    let mut state = MarketState::new(MarketParams::default());
    (0..epochs)
        .map(|e| {
            let b = batch(e);
            let (txs, _) = beat_state::applier::transactions(&b);
            state.apply_batch(e, &txs).unwrap().state_hash
        })
        .collect()
}

#[test]
fn reopening_resumes_from_the_next_epoch_with_the_same_state() {
    for flush in [FlushPolicy::EveryEpoch, FlushPolicy::Background] {
        let dir = temp_dir(&format!("recovery-{flush:?}"));
        let config = StoreConfig {
            flush,
            ..store_config(&dir)
        };
        let reference = reference_hashes(8);
        let mut applier = open(&config).unwrap();
        for e in 0..5 {
            let Applied::Epoch(report) = applier.process_batch(&batch(e)).unwrap() else {
                panic!("epoch {e} not applied");
            };
            assert_eq!(report.state_hash, reference[e as usize]);
            assert_eq!(report.events, 3);
            assert_eq!(report.executions.len(), 1);
        }
        let resting = applier.state().resting_orders();
        applier.store().flush().unwrap();
        drop(applier);

        let mut applier = open(&config).unwrap();
        assert_eq!(applier.state().applied_epoch(), Some(4));
        assert_eq!(applier.state().next_epoch(), 5);
        assert_eq!(applier.state().state_hash(), reference[4]);
        assert_eq!(applier.state().events_applied(), 15);
        assert_eq!(applier.state().resting_orders(), resting);
        // The stream may resume with overlap; earlier epochs change nothing, later ones wait.
        assert!(matches!(
            applier.process_batch(&batch(3)).unwrap(),
            Applied::AlreadyApplied
        ));
        assert!(matches!(
            applier.process_batch(&batch(6)),
            Err(ApplyError::Gap {
                expected: 5,
                got: 6
            })
        ));
        for e in 5..8 {
            applier.process_batch(&batch(e)).unwrap();
        }
        assert_eq!(applier.state().state_hash(), reference[7]);

        // Only the last `report_history` reports are kept.
        let store = applier.store();
        assert_eq!(store.oldest_report().unwrap(), Some(5));
        let epochs: Vec<_> = store
            .reports(0, 10)
            .unwrap()
            .iter()
            .map(|r| r.epoch)
            .collect();
        assert_eq!(epochs, [5, 6, 7]);
        assert_eq!(store.reports(6, 1).unwrap()[0].state_hash, reference[6]);
        drop(applier);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn the_feed_start_counter_survives_restarts() {
    let dir = temp_dir("starts");
    let config = store_config(&dir);
    let store = Store::open(&config).unwrap();
    assert_eq!(store.next_feed_start().unwrap(), 0);
    assert_eq!(store.next_feed_start().unwrap(), 1);
    drop(store);
    assert_eq!(Store::open(&config).unwrap().next_feed_start().unwrap(), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn stored_commitments_are_not_mistaken_for_transactions() {
    let mut b = batch(0);
    b.contributions.push(Contribution {
        proposer: 3,
        content: Some(Content::Stored(StoredCommitment {
            commitment: Bytes::from(vec![1; 32]),
            payload_len: 10,
        })),
    });
    let (txs, undelivered) = beat_state::applier::transactions(&b);
    assert_eq!((txs.len(), undelivered), (3, 1));
}

/// Applies two epochs, then lets `damage` modify the raw sled database.
fn damaged(name: &str, damage: impl FnOnce(&sled::Db)) -> (std::path::PathBuf, StoreConfig) {
    let dir = temp_dir(name);
    let config = store_config(&dir);
    let mut applier = open(&config).unwrap();
    applier.process_batch(&batch(0)).unwrap();
    applier.process_batch(&batch(1)).unwrap();
    drop(applier);
    let db = sled::open(&config.path).unwrap();
    damage(&db);
    db.flush().unwrap();
    drop(db);
    (dir, config)
}

fn refused(config: &StoreConfig) -> String {
    match open(config) {
        Ok(_) => panic!("a damaged store was opened"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_damaged_store_is_refused_never_reset() {
    let (dir, config) = damaged("garbage", |db| {
        db.insert(b"snapshot", &b"not a snapshot"[..]).unwrap();
    });
    let e = refused(&config);
    assert!(
        e.contains("corrupt") && e.contains("refusing to start"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);

    // A snapshot of an earlier format (format 1 had no source registry and no sequence
    // floors): refused with what to do, never misread.
    let (dir, config) = damaged("format1", |db| {
        let bytes = db.get(b"snapshot").unwrap().unwrap();
        let mut old = vec![1u8];
        old.extend_from_slice(&bytes[1..]);
        db.insert(b"snapshot", old).unwrap();
    });
    let e = refused(&config);
    assert!(
        e.contains("format 1") && e.contains("recompute it from epoch 0"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);

    let (dir, config) = damaged("flipped", |db| {
        let bytes = db.get(b"snapshot").unwrap().unwrap();
        let mut snapshot: Snapshot = postcard::from_bytes(&bytes).unwrap();
        let last = snapshot.body.len() - 1;
        snapshot.body[last] ^= 1;
        db.insert(b"snapshot", postcard::to_allocvec(&snapshot).unwrap())
            .unwrap();
    });
    let e = refused(&config);
    assert!(e.contains("hash does not match"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);

    let (dir, config) = damaged("unmarked", |db| {
        db.remove(b"format").unwrap();
    });
    assert!(refused(&config).contains("without a format marker"));
    let _ = std::fs::remove_dir_all(&dir);

    let (dir, config) = damaged("orphans", |db| {
        db.remove(b"snapshot").unwrap();
    });
    assert!(refused(&config).contains("reports without a snapshot"));
    let _ = std::fs::remove_dir_all(&dir);

    // Other market parameters would compute other hashes: refused, not reinterpreted.
    let (dir, config) = damaged("params", |_| {});
    let other = MarketParams {
        dedup_window_epochs: 7,
        ..MarketParams::default()
    };
    let e = Applier::open(Store::open(&config).unwrap(), &other)
        .err()
        .unwrap();
    assert!(matches!(e, StoreError::Mismatch { .. }), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_corrupt_store_stops_the_service_at_start() {
    let (dir, config) = damaged("service", |db| {
        db.insert(b"snapshot", &b"x"[..]).unwrap();
    });
    common::run_bounded(async move {
        let (committee, _) =
            common::committee(beat_types::Variant::Beat0, beat_core::Delivery::Full);
        let mut cfg = common::config(&dir, common::free_addr().await);
        cfg.store = config;
        let state = common::StateHandle::start(cfg, committee).await;
        let e = state.server.await.unwrap().unwrap_err();
        assert!(format!("{e:#}").contains("corrupt"), "{e:#}");
        let _ = std::fs::remove_dir_all(&dir);
    });
}
