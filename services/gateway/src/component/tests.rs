//! Unit tests of the component: no sockets, no tasks.

use beat_proto::{gateway::v1::Outbound, wire::v2::Data};
use beat_types::NodeId;
use bytes::Bytes;
use rand::RngExt;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::*;

const INC_A: u64 = 0xA;
const INC_B: u64 = 0xB;

fn limits() -> Limits {
    Limits {
        max_frame_bytes: 1 << 20,
        queue_max_frames: 1000,
        queue_max_bytes: 1 << 30,
        inbound_max_frames: 1000,
        inbound_max_bytes: 1 << 30,
        reorder_window: 64,
    }
}

fn payload(i: u64) -> Bytes {
    Bytes::from(format!("message {i}"))
}

fn to_all(i: u64) -> Outbound {
    Outbound {
        targets: vec![],
        payload: payload(i),
    }
}

fn sequences(frames: &[Data]) -> Vec<u64> {
    frames.iter().map(|d| d.sequence).collect()
}

/// Replica 0 of 4 with a Link stream attached.
fn router() -> (Router, StreamId) {
    let mut r = Router::new(NodeId(0), 4, INC_A, limits());
    let s = r.attach();
    (r, s)
}

// --- outbound ---

#[test]
fn sequences_start_at_one_per_peer_and_skip_self() {
    let (mut r, s) = router();
    let out = r.submit(s, (1..=3).map(to_all).collect()).unwrap();
    assert_eq!(out.queued, vec![false, true, true, true]);
    r.submit(
        s,
        vec![Outbound {
            targets: vec![2, 2],
            payload: payload(4),
        }],
    )
    .unwrap();
    let (frames, cursor) = r.outbound_frames(NodeId(1), 0, 100, usize::MAX);
    assert_eq!(sequences(&frames), vec![1, 2, 3]);
    assert_eq!(cursor, 4);
    assert!(
        frames
            .iter()
            .all(|d| d.incarnation == INC_A && d.floor == 1)
    );
    let (frames, _) = r.outbound_frames(NodeId(2), 0, 100, usize::MAX);
    assert_eq!(
        sequences(&frames),
        vec![1, 2, 3, 4],
        "a repeated target is sent once"
    );
    assert_eq!(frames[3].payload, payload(4));
    assert_eq!(r.unacknowledged(NodeId(0)), 0);
}

#[test]
fn cumulative_acks_remove_frames_and_raise_the_floor() {
    let mut q = OutboundQueue::new(INC_A, 100, usize::MAX);
    for i in 1..=5 {
        assert_eq!(q.push(payload(i)).sequence, i);
    }
    assert_eq!(q.acknowledge(3), Ok(3));
    assert_eq!(q.floor(), 4);
    assert_eq!(q.acknowledge(2), Ok(0), "an old ack removes nothing");
    assert_eq!(
        q.acknowledge(6),
        Err(AckAhead {
            acknowledged: 6,
            highest: 5
        })
    );
    let (frames, _) = q.frames_from(0, 10, usize::MAX);
    assert_eq!(sequences(&frames), vec![4, 5]);
    assert!(frames.iter().all(|d| d.floor == 4));
    assert_eq!(q.acknowledge(5), Ok(2));
    assert!(q.is_empty());
    assert_eq!(q.floor(), 6);
    assert_eq!(q.push(payload(6)).sequence, 6);
}

#[test]
fn a_new_connection_retransmits_every_unacknowledged_frame() {
    let (mut r, s) = router();
    r.submit(s, (1..=10).map(to_all).collect()).unwrap();
    // The first connection sends everything in two batches.
    let (first, cursor) = r.outbound_frames(NodeId(1), 0, 4, usize::MAX);
    assert_eq!(sequences(&first), vec![1, 2, 3, 4]);
    let (rest, cursor) = r.outbound_frames(NodeId(1), cursor, 100, usize::MAX);
    assert_eq!(sequences(&rest), (5..=10).collect::<Vec<_>>());
    assert_eq!(
        r.outbound_frames(NodeId(1), cursor, 100, usize::MAX).0,
        vec![]
    );
    // The peer acknowledged up to 6 before the connection broke.
    assert_eq!(r.peer_acknowledged(NodeId(1), INC_A, 6), Ok(6));
    // Acks addressed to another (previous) incarnation of this gateway change nothing.
    assert_eq!(r.peer_acknowledged(NodeId(1), INC_B, 9), Ok(0));
    assert_eq!(r.unacknowledged(NodeId(1)), 4);
    // A new connection (any transport) starts from cursor 0: exactly the unacknowledged set.
    let (again, _) = r.outbound_frames(NodeId(1), 0, 100, usize::MAX);
    assert_eq!(sequences(&again), vec![7, 8, 9, 10]);
    assert_eq!(again[0].payload, payload(7));
    // The batch byte bound cuts after the first frame that would exceed it.
    let (bounded, _) = r.outbound_frames(NodeId(1), 0, 100, payload(7).len() + 1);
    assert_eq!(sequences(&bounded), vec![7]);
}

#[test]
fn a_full_queue_drops_the_oldest_frames() {
    let mut q = OutboundQueue::new(INC_A, 3, usize::MAX);
    let dropped: Vec<usize> = (1..=5).map(|i| q.push(payload(i)).dropped).collect();
    assert_eq!(dropped, vec![0, 0, 0, 1, 1]);
    assert_eq!(q.len(), 3);
    assert_eq!(q.floor(), 3);
    // A connection that had sent only frame 1 jumps to the floor, and says so in the frame.
    let (frames, _) = q.frames_from(2, 10, usize::MAX);
    assert_eq!(sequences(&frames), vec![3, 4, 5]);
    assert!(frames.iter().all(|d| d.floor == 3));
    // The byte bound: 10-byte payloads, at most 25 bytes.
    let mut q = OutboundQueue::new(INC_A, 100, 25);
    for _ in 0..3 {
        q.push(Bytes::from_static(&[0; 10]));
    }
    assert_eq!((q.len(), q.bytes(), q.floor()), (2, 20, 2));
    // A single frame above the byte bound is still kept, alone.
    assert_eq!(q.push(Bytes::from_static(&[0; 30])).dropped, 2);
    assert_eq!(q.len(), 1);
}

#[test]
fn submissions_are_checked_before_anything_is_queued() {
    let (mut r, s) = router();
    let bad = |targets: Vec<u32>| Outbound {
        targets,
        payload: payload(0),
    };
    assert_eq!(
        r.submit(s, vec![to_all(1), bad(vec![4])]),
        Err(SubmitError::UnknownTarget { target: 4, n: 4 })
    );
    assert_eq!(
        r.submit(s, vec![bad(vec![1, 0])]),
        Err(SubmitError::SelfTarget(0))
    );
    let huge = Outbound {
        targets: vec![],
        payload: Bytes::from(vec![0; 1 << 20]),
    };
    assert!(matches!(
        r.submit(s, vec![huge]),
        Err(SubmitError::TooLarge { .. })
    ));
    assert_eq!(
        r.unacknowledged(NodeId(1)),
        0,
        "a refused batch queues nothing"
    );
    let newer = r.attach();
    assert_eq!(r.submit(s, vec![to_all(1)]), Err(SubmitError::Replaced));
    assert!(r.submit(newer, vec![to_all(1)]).is_ok());
}

// --- inbound ---

fn data(incarnation: u64, sequence: u64, floor: u64) -> Data {
    Data {
        incarnation,
        sequence,
        payload: payload(sequence),
        floor,
    }
}

fn drain(r: &mut Router, s: StreamId) -> Vec<(u32, Bytes, u64)> {
    r.next_inbound(s, usize::MAX, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|i| (i.sender, i.payload, i.delivery_id))
        .collect()
}

#[test]
fn interleaved_duplicates_from_several_transports_are_delivered_once_in_order() {
    // Three transports each carry every frame 1..=300 in order. The sender learns of the
    // receiver's acknowledgements late (its floor lags), connections break at random points
    // and restart from that floor, and the copies interleave at random.
    let mut rng = ChaCha20Rng::seed_from_u64(59);
    let (mut r, s) = router();
    r.admit(NodeId(2), INC_B).unwrap();
    let total = 300u64;
    let mut cursors = [1u64; 3];
    let mut delivered = Vec::new();
    let mut duplicates = 0;
    let mut floor = 1;
    while cursors.iter().any(|&c| c <= total) {
        let t = rng.random_range(0..3);
        if rng.random_range(0..20) == 0 {
            // The connection breaks; the next one starts again at the floor.
            cursors[t] = floor;
            continue;
        }
        if rng.random_range(0..10) == 0 {
            // An Ack reaches the sender.
            floor = r.ack_level(NodeId(2), INC_B).unwrap() + 1;
        }
        // A connection whose cursor fell below the floor jumps to it, as the queue does.
        cursors[t] = cursors[t].max(floor);
        if cursors[t] > total {
            continue;
        }
        let out = r
            .receive(NodeId(2), INC_B, data(INC_B, cursors[t], floor))
            .unwrap();
        assert!(!out.discarded);
        duplicates += usize::from(out.duplicate);
        cursors[t] += 1;
        for (sender, p, id) in drain(&mut r, s) {
            assert_eq!(sender, 2);
            delivered.push(p);
            r.acknowledge_deliveries(&[id]);
        }
    }
    assert_eq!(delivered, (1..=total).map(payload).collect::<Vec<_>>());
    assert!(
        duplicates > total as usize,
        "the run had {duplicates} duplicates"
    );
    assert_eq!(r.pending_deliveries(), 0);
}

#[test]
fn frames_ahead_of_a_gap_wait_and_a_raised_floor_skips_the_gap() {
    let mut w = InboundWindow::new(INC_B, 8);
    assert_eq!(w.receive(3, 1, payload(3)).deliver, vec![]);
    assert!(w.receive(3, 1, payload(3)).duplicate);
    assert!(w.receive(20, 1, payload(20)).beyond_window);
    let got = w.receive(1, 1, payload(1)).deliver;
    assert_eq!(got, vec![(1, payload(1))]);
    let got = w.receive(2, 1, payload(2)).deliver;
    assert_eq!(got, vec![(2, payload(2)), (3, payload(3))]);
    // The sender dropped 4..=6 from its full queue: frame 7 carries floor 7.
    w.receive(5, 4, payload(5));
    let r = w.receive(7, 7, payload(7));
    assert_eq!(r.deliver, vec![(5, payload(5)), (7, payload(7))]);
    assert_eq!(r.skipped, 2, "4 and 6 were abandoned");
    assert!(w.receive(6, 4, payload(6)).duplicate);
    // Nothing acknowledged yet, so the level stays at 0; then it rises cumulatively.
    assert_eq!(w.ack_level(), 0);
    w.acknowledge(2);
    assert_eq!(w.ack_level(), 0);
    w.acknowledge(1);
    assert_eq!(w.ack_level(), 2);
    w.acknowledge(3);
    w.acknowledge(7);
    assert_eq!(w.ack_level(), 4, "5 still unacknowledged");
    w.acknowledge(5);
    assert_eq!(w.ack_level(), 7);
}

#[test]
fn a_restarted_receiver_starts_at_the_senders_floor() {
    let (mut r, s) = router();
    r.admit(NodeId(3), INC_B).unwrap();
    // Our previous process acknowledged up to 41; the sender retransmits from 42, possibly
    // with a later frame arriving first on another transport.
    r.receive(NodeId(3), INC_B, data(INC_B, 43, 42)).unwrap();
    assert_eq!(drain(&mut r, s), vec![]);
    r.receive(NodeId(3), INC_B, data(INC_B, 42, 42)).unwrap();
    let got: Vec<Bytes> = drain(&mut r, s).into_iter().map(|d| d.1).collect();
    assert_eq!(got, vec![payload(42), payload(43)]);
    assert_eq!(r.ack_level(NodeId(3), INC_B), Some(41));
}

#[test]
fn acks_to_peers_follow_consensus_acknowledgements_only() {
    let (mut r, s) = router();
    r.admit(NodeId(1), INC_B).unwrap();
    for i in 1..=3 {
        let out = r.receive(NodeId(1), INC_B, data(INC_B, i, 1)).unwrap();
        assert_eq!(out.delivered, 1);
    }
    let ids: Vec<u64> = drain(&mut r, s).into_iter().map(|d| d.2).collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(
        r.ack_level(NodeId(1), INC_B),
        Some(0),
        "delivered is not acknowledged"
    );
    let ack = r.acknowledge_deliveries(&[ids[1]]);
    assert_eq!(ack.released, 1);
    assert_eq!(ack.senders, vec![], "a gap keeps the cumulative level");
    assert_eq!(r.ack_level(NodeId(1), INC_B), Some(0));
    let ack = r.acknowledge_deliveries(&[ids[0], 999]);
    assert_eq!(ack.released, 1, "an unknown identifier is ignored");
    assert_eq!(ack.senders, vec![NodeId(1)]);
    assert_eq!(r.ack_level(NodeId(1), INC_B), Some(2));
    assert_eq!(
        r.ack_level(NodeId(1), INC_A),
        None,
        "not a current incarnation"
    );
}

#[test]
fn a_new_link_stream_gets_every_unacknowledged_delivery_again() {
    let (mut r, s) = router();
    r.admit(NodeId(1), INC_B).unwrap();
    r.admit(NodeId(2), INC_B).unwrap();
    for i in 1..=3 {
        r.receive(NodeId(1), INC_B, data(INC_B, i, 1)).unwrap();
        r.receive(NodeId(2), INC_B, data(INC_B, i, 1)).unwrap();
    }
    let first = drain(&mut r, s);
    assert_eq!(first.len(), 6);
    assert_eq!(r.next_inbound(s, 10, usize::MAX), Ok(vec![]));
    r.acknowledge_deliveries(&[first[0].2, first[1].2]);
    let s2 = r.attach();
    assert_eq!(
        r.next_inbound(s, 10, usize::MAX),
        Err(SubmitError::Replaced)
    );
    let again = drain(&mut r, s2);
    assert_eq!(
        again,
        first[2..].to_vec(),
        "same payloads, same ids, same order"
    );
    // Bounded batches.
    let s3 = r.attach();
    assert_eq!(r.next_inbound(s3, 3, usize::MAX).unwrap().len(), 3);
    assert_eq!(r.next_inbound(s3, 3, 1).unwrap().len(), 1);
    r.detach(s3);
    assert!(!r.is_current(s3));
}

#[test]
fn the_inbound_budget_stops_a_sender_until_consensus_acknowledges() {
    let mut l = limits();
    l.inbound_max_frames = 3;
    let mut r = Router::new(NodeId(0), 4, INC_A, l);
    let s = r.attach();
    r.admit(NodeId(1), INC_B).unwrap();
    // Frames ahead of the gap fill the buffer, then in-order frames take precedence.
    r.receive(NodeId(1), INC_B, data(INC_B, 5, 1)).unwrap();
    r.receive(NodeId(1), INC_B, data(INC_B, 6, 1)).unwrap();
    for i in 1..=3 {
        assert_eq!(
            r.receive(NodeId(1), INC_B, data(INC_B, i, 1))
                .unwrap()
                .delivered,
            1
        );
    }
    assert_eq!(
        r.receive(NodeId(1), INC_B, data(INC_B, 4, 1)),
        Err(DataRefused::Full)
    );
    let out = r.receive(NodeId(1), INC_B, data(INC_B, 7, 1)).unwrap();
    assert!(out.discarded, "no room ahead of the gap");
    // Duplicates need no room.
    assert!(
        r.receive(NodeId(1), INC_B, data(INC_B, 2, 1))
            .unwrap()
            .duplicate
    );
    let ids: Vec<u64> = drain(&mut r, s).into_iter().map(|d| d.2).collect();
    r.acknowledge_deliveries(&ids[..1]);
    assert_eq!(
        r.receive(NodeId(1), INC_B, data(INC_B, 4, 1))
            .unwrap()
            .delivered,
        1
    );
    // The other senders have their own budgets.
    r.admit(NodeId(2), INC_B).unwrap();
    assert_eq!(
        r.receive(NodeId(2), INC_B, data(INC_B, 1, 1))
            .unwrap()
            .delivered,
        1
    );
}

#[test]
fn a_replaced_incarnation_is_refused_and_its_deliveries_still_complete() {
    let (mut r, s) = router();
    assert_eq!(r.admit(NodeId(1), INC_A), Ok(None));
    r.receive(NodeId(1), INC_A, data(INC_A, 1, 1)).unwrap();
    assert_eq!(r.admit(NodeId(1), INC_B), Ok(Some(INC_A)));
    assert_eq!(r.admit(NodeId(1), INC_A), Err(StaleIncarnation(INC_A)));
    assert_eq!(
        r.receive(NodeId(1), INC_A, data(INC_A, 2, 1)),
        Err(DataRefused::Retired(INC_A))
    );
    assert!(matches!(
        r.receive(NodeId(1), INC_B, data(INC_A, 1, 1)),
        Err(DataRefused::Protocol(_))
    ));
    assert!(matches!(
        r.receive(NodeId(1), INC_B, data(INC_B, 1, 2)),
        Err(DataRefused::Protocol(_))
    ));
    // The new incarnation numbers from 1 again.
    r.receive(NodeId(1), INC_B, data(INC_B, 1, 1)).unwrap();
    let got = drain(&mut r, s);
    assert_eq!(got.len(), 2);
    r.acknowledge_deliveries(&[got[0].2, got[1].2]);
    assert_eq!(r.pending_deliveries(), 0);
    assert_eq!(r.ack_level(NodeId(1), INC_B), Some(1));
}

#[test]
fn a_batch_is_taken_in_order_up_to_the_first_refused_frame() {
    let mut l = limits();
    l.inbound_max_frames = 3;
    let mut r = Router::new(NodeId(0), 4, INC_A, l);
    let s = r.attach();
    r.admit(NodeId(1), INC_B).unwrap();
    let frames: Vec<Data> = [1, 1, 2, 3, 4, 5].map(|i| data(INC_B, i, 1)).to_vec();
    let out = r.receive_batch(NodeId(1), INC_B, frames.clone());
    assert_eq!(
        (out.accepted, out.delivered, out.refused),
        (4, 3, Some(DataRefused::Full)),
        "1, its duplicate, 2 and 3 fit; 4 does not"
    );
    let ids: Vec<u64> = drain(&mut r, s).into_iter().map(|d| d.2).collect();
    r.acknowledge_deliveries(&ids);
    let out = r.receive_batch(NodeId(1), INC_B, frames[out.accepted..].to_vec());
    assert_eq!((out.accepted, out.delivered, out.refused), (2, 2, None));
    // A protocol violation stops the batch too.
    let bad = vec![data(INC_B, 6, 1), data(INC_A, 7, 1), data(INC_B, 8, 1)];
    let out = r.receive_batch(NodeId(1), INC_B, bad);
    assert_eq!(out.accepted, 1);
    assert!(matches!(out.refused, Some(DataRefused::Protocol(_))));
}

#[test]
fn crafted_sequences_and_floors_at_the_top_of_the_range_neither_panic_nor_redeliver() {
    let mut w = InboundWindow::new(1, 64);
    // A floor at the very top moves the window there; the last sequence is never accepted.
    let r = w.receive(u64::MAX, u64::MAX, payload(1));
    assert!(r.deliver.is_empty() && r.beyond_window, "{r:?}");
    assert_eq!(r.skipped, u64::MAX - 1);
    let r = w.receive(u64::MAX, u64::MAX, payload(1));
    assert!(r.deliver.is_empty(), "{r:?}");
    assert_eq!(w.ack_level(), u64::MAX - 1);
    // The one below it is delivered once, and only once.
    let mut w = InboundWindow::new(1, 64);
    let r = w.receive(u64::MAX - 1, u64::MAX - 1, payload(2));
    assert_eq!(r.deliver.len(), 1);
    for _ in 0..3 {
        let r = w.receive(u64::MAX - 1, u64::MAX - 1, payload(2));
        assert!(r.deliver.is_empty() && r.duplicate, "{r:?}");
        let r = w.receive(u64::MAX, u64::MAX, payload(3));
        assert!(r.deliver.is_empty(), "{r:?}");
    }
}

/// Found by `beat-fuzz` (receive-window): frames buffered ahead of a gap, then a floor that
/// moves the window onto them (the sender gave up the frames of the gap). The buffered frames
/// were left in the reorder buffer with `next_expected` equal to the first of them; a resend
/// of that frame was a duplicate of the buffered copy and later frames only queued behind it,
/// so the link stalled for good. They are delivered when the floor moves.
#[test]
fn frames_buffered_at_a_new_floor_are_delivered_when_it_moves() {
    let mut w = InboundWindow::new(1, 64);
    for s in [5, 6, 8] {
        let r = w.receive(s, 1, payload(s));
        assert!(r.deliver.is_empty(), "{r:?}");
    }
    // The sender abandoned 1..=4: its floor is 5. Any frame carrying it releases 5 and 6.
    let r = w.receive(9, 5, payload(9));
    let delivered: Vec<u64> = r.deliver.iter().map(|(s, _)| *s).collect();
    assert_eq!(delivered, vec![5, 6]);
    assert_eq!(r.skipped, 4);
    // A resend of 5 is a duplicate now; 7 releases 8 and 9.
    assert!(w.receive(5, 5, payload(5)).duplicate);
    let r = w.receive(7, 5, payload(7));
    let delivered: Vec<u64> = r.deliver.iter().map(|(s, _)| *s).collect();
    assert_eq!(delivered, vec![7, 8, 9]);
}
