//! Real gateways on loopback with fake consensus clients: delivery, retransmission across
//! broken connections and restarts, consensus reconnects, and `Peers`.
#![allow(clippy::unwrap_used)]

mod common;

use std::{collections::BTreeMap, time::Duration};

use beat_proto::gateway::v1::LinkState;
use common::*;

const LIMIT: Duration = Duration::from_secs(90);

/// Every consensus sends `per_sender` payloads to all others in batches; every other consensus
/// receives each exactly once, in order per sender.
#[test]
fn n4_every_payload_reaches_every_peer_once_in_order() {
    run(LIMIT, async {
        let keys = keys(4, 1);
        let nodes = cluster(&keys).await;
        let mut consensus = Vec::new();
        for node in &nodes {
            consensus.push(Consensus::connect(node).await);
        }
        let per_sender = 600u32;
        for (i, c) in consensus.iter().enumerate() {
            for chunk in (0..per_sender).collect::<Vec<_>>().chunks(50) {
                c.send(vec![], chunk.iter().map(|&k| payload(i, k)).collect())
                    .await;
            }
        }
        // Targeted payloads reach only their targets: replica 0 sends one to replica 2 alone.
        consensus[0]
            .send(vec![2], vec![payload(0, per_sender)])
            .await;
        let mut handles = Vec::new();
        for (i, mut c) in consensus.into_iter().enumerate() {
            let count = 3 * per_sender as usize + usize::from(i == 2);
            handles.push(tokio::spawn(async move {
                let got = c.receive(count, true).await;
                (i, got, c)
            }));
        }
        let mut clients = Vec::new();
        for h in handles {
            let (i, got, c) = h.await.unwrap();
            let expected: BTreeMap<usize, u32> = (0..4)
                .filter(|&s| s != i)
                .map(|s| (s, per_sender + u32::from(s == 0 && i == 2)))
                .collect();
            assert_exactly_once_in_order(i, &got, &expected);
            clients.push(c);
        }
        // Nothing more arrives, and every queue drains once the acks are through.
        for node in &nodes {
            eventually("queues to drain", Duration::from_secs(10), || async {
                node.peers().await.iter().all(|p| p.unacknowledged == 0)
            })
            .await;
        }
        for c in &mut clients {
            let extra = tokio::time::timeout(Duration::from_millis(300), c.next()).await;
            assert!(extra.is_err(), "unexpected extra delivery: {extra:?}");
        }
        // Peers: every link up both ways, with traffic counted.
        let peers = nodes[1].peers().await;
        assert_eq!(
            peers.iter().map(|p| p.replica).collect::<Vec<_>>(),
            vec![0, 2, 3]
        );
        for p in &peers {
            let [tcp] = p.transports.as_slice() else {
                panic!("{p:?}")
            };
            assert_eq!(tcp.transport, "tcp");
            assert_eq!(tcp.state, LinkState::Up as i32, "{p:?}");
            assert!(tcp.inbound_up, "{p:?}");
            assert_eq!(tcp.connects, 1, "{p:?}");
            assert!(tcp.frames_sent >= u64::from(per_sender), "{p:?}");
            assert!(tcp.frames_received > 0 && tcp.bytes_received > tcp.frames_received);
        }
        assert_eq!(
            nodes[1]
                .metric("beat_gateway_link_up", &["peer=\"3\"", "transport=\"tcp\""])
                .await,
            1.0
        );
        assert_eq!(
            nodes[1]
                .metric("beat_gateway_dropped_frames_total", &[])
                .await,
            0.0
        );
        assert_eq!(nodes[1].http_status("/readyz").await, 200);
        for node in nodes {
            node.stop().await;
        }
    });
}

/// Every peer link runs through a proxy that resets all its connections several times while
/// payloads flow: frames in flight are lost and retransmitted, frames whose Ack was lost arrive
/// twice and are dropped, and each consensus still gets everything exactly once, in order.
#[test]
fn n4_connections_reset_mid_stream_lose_and_duplicate_nothing() {
    run(LIMIT, async {
        let keys = keys(4, 2);
        let mut listeners = Vec::new();
        let mut proxies = Vec::new();
        for _ in 0..4 {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            proxies.push(Proxy::start(l.local_addr().unwrap()).await);
            listeners.push(l);
        }
        let committee = keys.with_endpoints(&proxies.iter().map(|p| p.addr).collect::<Vec<_>>());
        let mut nodes = Vec::new();
        for (i, l) in listeners.into_iter().enumerate() {
            nodes.push(start(config(i), committee.clone(), keys.signer(i), l).await);
        }
        let per_sender = 3000u32;
        let mut receivers = Vec::new();
        let mut senders = Vec::new();
        for (i, node) in nodes.iter().enumerate() {
            let mut c = Consensus::connect(node).await;
            let (tx, rx) = tokio::sync::mpsc::channel::<Vec<bytes::Bytes>>(4);
            // Each consensus sends from its own task while receiving.
            senders.push(tx);
            let handle = tokio::spawn(async move {
                let mut rx = rx;
                let mut got = Vec::new();
                let want = 3 * per_sender as usize;
                loop {
                    tokio::select! {
                        Some(batch) = rx.recv() => c.send(vec![], batch).await,
                        batch = c.next(), if got.len() < want => {
                            let batch = batch.unwrap();
                            c.ack(batch.iter().map(|d| d.2).collect()).await;
                            got.extend(batch);
                        }
                        else => break,
                    }
                    if got.len() >= want && rx.is_closed() && rx.is_empty() {
                        break;
                    }
                }
                (i, got)
            });
            receivers.push(handle);
        }
        for round in 0..30u32 {
            for (i, tx) in senders.iter().enumerate() {
                let batch = (round * 100..(round + 1) * 100)
                    .map(|k| payload(i, k))
                    .collect();
                tx.send(batch).await.unwrap();
            }
            if round % 8 == 4 {
                for p in &proxies {
                    p.kill();
                }
            }
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
        drop(senders);
        for h in receivers {
            let (i, got) = h.await.unwrap();
            let expected = (0..4)
                .filter(|&s| s != i)
                .map(|s| (s, per_sender))
                .collect();
            assert_exactly_once_in_order(i, &got, &expected);
        }
        let mut reconnects = 0.0;
        for node in &nodes {
            reconnects += node.metric("beat_gateway_reconnects_total", &[]).await;
        }
        assert!(
            reconnects >= 12.0,
            "the resets forced redials: {reconnects}"
        );
        for node in nodes {
            node.stop().await;
        }
    });
}

/// Consensus at replica 1 receives payloads but acknowledges only some, then its `Link` stream
/// is replaced: the new stream gets exactly the unacknowledged ones again (same delivery ids),
/// the old stream is aborted, and the sender's queue drains only once they are acknowledged.
#[test]
fn n3_a_reconnecting_consensus_gets_the_unacknowledged_deliveries_again() {
    run(LIMIT, async {
        let keys = keys(3, 3);
        let nodes = cluster(&keys).await;
        let sender = Consensus::connect(&nodes[0]).await;
        let mut first = Consensus::connect(&nodes[1]).await;
        sender
            .send(vec![1], (0..10).map(|k| payload(0, k)).collect())
            .await;
        let got = first.receive(10, false).await;
        let acked: Vec<u64> = got[..4].iter().map(|d| d.2).collect();
        first.ack(acked).await;
        eventually(
            "the first acks to reach the sender",
            Duration::from_secs(10),
            || async { nodes[0].peers().await[0].unacknowledged == 6 },
        )
        .await;
        let mut second = Consensus::connect(&nodes[1]).await;
        let again = second.receive(6, false).await;
        assert_eq!(again, got[4..].to_vec());
        let old = first.next().await;
        assert_eq!(old.unwrap_err().code(), tonic::Code::Aborted);
        // Delivered twice, still unacknowledged: the sender keeps them.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(nodes[0].peers().await[0].unacknowledged, 6);
        second.ack(again.iter().map(|d| d.2).collect()).await;
        eventually(
            "the sender's queue to drain",
            Duration::from_secs(10),
            || async { nodes[0].peers().await[0].unacknowledged == 0 },
        )
        .await;
        // New payloads flow on the new stream.
        sender.send(vec![], vec![payload(0, 10)]).await;
        let next = second.receive(1, true).await;
        assert_eq!(parse(&next[0].1), (0, 10));
        for node in nodes {
            node.stop().await;
        }
    });
}

/// Replica 2's consensus never acknowledges; its gateway restarts (new incarnation, empty
/// state) on the same address. The senders retransmit everything unacknowledged to the new
/// process, which delivers it exactly once; frames sent while it was down arrive too.
#[test]
fn n3_a_restarted_gateway_receives_every_unacknowledged_frame_again() {
    run(LIMIT, async {
        let keys = keys(3, 4);
        let mut nodes = cluster(&keys).await;
        let c0 = Consensus::connect(&nodes[0]).await;
        let mut c2 = Consensus::connect(&nodes[2]).await;
        c0.send(vec![2], (0..20).map(|k| payload(0, k)).collect())
            .await;
        assert_eq!(c2.receive(20, false).await.len(), 20);
        let old = nodes.remove(2);
        let (addr, committee) = (
            old.peer,
            keys.with_endpoints(&[nodes[0].peer, nodes[1].peer, old.peer]),
        );
        old.stop().await;
        c0.send(vec![2], (20..30).map(|k| payload(0, k)).collect())
            .await;
        let listener = bind(addr).await;
        let restarted = start(config(2), committee, keys.signer(2), listener).await;
        let mut c2 = Consensus::connect(&restarted).await;
        let got = c2.receive(30, true).await;
        let expected = [(0, 30)].into_iter().collect();
        assert_exactly_once_in_order(2, &got, &expected);
        eventually(
            "the sender's queue to drain",
            Duration::from_secs(10),
            || async { nodes[0].peers().await.iter().all(|p| p.unacknowledged == 0) },
        )
        .await;
        let peer2 = nodes[0]
            .peers()
            .await
            .into_iter()
            .find(|p| p.replica == 2)
            .unwrap();
        assert!(peer2.transports[0].connects >= 2, "{peer2:?}");
        restarted.stop().await;
        for node in nodes {
            node.stop().await;
        }
    });
}

/// Replica 2 is down: replica 0 keeps redialling with backoff and `Peers` says so, with the
/// last error; a bounded queue drops its oldest frames and counts them.
#[test]
fn n3_a_missing_peer_is_reported_and_its_queue_stays_bounded() {
    run(LIMIT, async {
        let keys = keys(3, 5);
        let (mut listeners, addrs) = listeners(3).await;
        let committee = keys.with_endpoints(&addrs);
        drop(listeners.pop()); // replica 2 never starts: connections are refused
        let mut nodes = Vec::new();
        for (i, l) in listeners.into_iter().enumerate() {
            let mut config = config(i);
            config.queue.max_frames = 100;
            nodes.push(start(config, committee.clone(), keys.signer(i), l).await);
        }
        let c0 = Consensus::connect(&nodes[0]).await;
        c0.send(vec![2], (0..150).map(|k| payload(0, k)).collect())
            .await;
        eventually(
            "the link to 2 to report its failures",
            Duration::from_secs(10),
            || async {
                let p = nodes[0]
                    .peers()
                    .await
                    .into_iter()
                    .find(|p| p.replica == 2)
                    .unwrap();
                let t = &p.transports[0];
                p.unacknowledged == 100
                    && t.state != LinkState::Up as i32
                    && !t.last_error.is_empty()
                    && t.connects == 0
            },
        )
        .await;
        assert_eq!(
            nodes[0]
                .metric("beat_gateway_dropped_frames_total", &["peer=\"2\""])
                .await,
            50.0
        );
        assert_eq!(
            nodes[0]
                .metric("beat_gateway_queue_frames", &["peer=\"2\""])
                .await,
            100.0
        );
        eventually("redials of 2", Duration::from_secs(10), || async {
            nodes[0]
                .metric("beat_gateway_reconnects_total", &["peer=\"2\""])
                .await
                >= 2.0
        })
        .await;
        assert_eq!(
            nodes[0]
                .metric("beat_gateway_link_up", &["peer=\"2\""])
                .await,
            0.0
        );
        // Readiness does not depend on peers.
        assert_eq!(nodes[0].http_status("/readyz").await, 200);
        for node in nodes {
            node.stop().await;
        }
    });
}

/// Replica 1 holds at most 10 unacknowledged frames per sender: with its consensus not
/// acknowledging, the gateway stops reading from replica 0 after 10 (replica 0 keeps the rest
/// queued), and everything follows, once and in order, as consensus catches up.
#[test]
fn n3_a_lagging_consensus_pushes_back_on_the_sender() {
    run(LIMIT, async {
        let keys = keys(3, 6);
        let (listeners, addrs) = listeners(3).await;
        let committee = keys.with_endpoints(&addrs);
        let mut nodes = Vec::new();
        for (i, l) in listeners.into_iter().enumerate() {
            let mut config = config(i);
            config.inbound.max_frames = 10;
            nodes.push(start(config, committee.clone(), keys.signer(i), l).await);
        }
        let c0 = Consensus::connect(&nodes[0]).await;
        let mut c1 = Consensus::connect(&nodes[1]).await;
        c0.send(vec![1], (0..200).map(|k| payload(0, k)).collect())
            .await;
        let mut got = c1.receive(10, false).await;
        let more = tokio::time::timeout(Duration::from_millis(500), c1.next()).await;
        assert!(more.is_err(), "delivered beyond the budget: {more:?}");
        assert!(nodes[0].peers().await[0].unacknowledged >= 190);
        // Acknowledge in small steps; each release lets a few more through.
        while got.len() < 200 {
            let ids: Vec<u64> = got.iter().rev().take(10).map(|d| d.2).collect();
            c1.ack(ids).await;
            let batch = c1.next().await.unwrap();
            got.extend(batch);
        }
        c1.ack(got.iter().rev().take(10).map(|d| d.2).collect())
            .await;
        let expected = [(0, 200)].into_iter().collect();
        assert_exactly_once_in_order(1, &got, &expected);
        eventually(
            "the sender's queue to drain",
            Duration::from_secs(10),
            || async { nodes[0].peers().await[0].unacknowledged == 0 },
        )
        .await;
        for node in nodes {
            node.stop().await;
        }
    });
}
