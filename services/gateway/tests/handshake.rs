//! Authentication and the wire protocol against real gateways: refused identities, committees,
//! indices and self-connections, oversized frames, stale incarnations, and end-to-end Acks as
//! a peer sees them on the wire.
#![allow(clippy::unwrap_used)]

mod common;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use beat_gateway::{
    link::{
        codec::{self, FrameReader, FrameWriter},
        handshake::{self, HandshakeError, LocalIdentity, PeerHello, Role},
    },
    signer::Signer,
};
use beat_proto::wire::v1::{Data, PeerFrame, peer_frame::Kind};
use beat_types::NodeId;
use bytes::Bytes;
use common::*;
use futures::SinkExt;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const LIMIT: Duration = Duration::from_secs(60);

/// A test peer speaking the wire protocol by hand.
struct Rogue {
    reader: FrameReader,
    writer: FrameWriter,
    hello: PeerHello,
}

async fn rogue(
    target: SocketAddr,
    target_replica: usize,
    keys: &Keys,
    me: u32,
    signer: Arc<dyn Signer>,
    incarnation: u64,
) -> Result<Rogue, HandshakeError> {
    let tcp = TcpStream::connect(target).await.unwrap();
    let (mut reader, mut writer) = codec::framed(Box::new(tcp), 16 << 20);
    let local = LocalIdentity {
        me: NodeId(me),
        incarnation,
        committee_digest: keys.committee.digest(),
        identities: keys.committee.keys.identities.clone(),
        signer,
    };
    let role = Role::Initiator {
        expected: NodeId::from_index(target_replica),
    };
    let hello = handshake::handshake(&mut reader, &mut writer, &local, role, [7; 32]).await?;
    Ok(Rogue {
        reader,
        writer,
        hello,
    })
}

impl Rogue {
    async fn send(&mut self, kind: Kind) {
        self.writer
            .send(codec::encode(&PeerFrame { kind: Some(kind) }))
            .await
            .unwrap();
    }

    /// The next frame that is not a Ping (answering Pings), or `None` if the gateway closed
    /// the connection or `wait` passed.
    async fn next(&mut self, wait: Duration) -> Option<Kind> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let raw = tokio::time::timeout_at(deadline, codec::next_raw(&mut self.reader))
                .await
                .ok()?
                .ok()?;
            match codec::decode(raw.freeze()).unwrap().kind.unwrap() {
                Kind::Ping(p) => {
                    self.send(Kind::Pong(beat_proto::wire::v1::Pong { nonce: p.nonce }))
                        .await;
                }
                other => return Some(other),
            }
        }
    }

    /// Whether the gateway closed the connection within `wait`.
    async fn closed_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, codec::next_raw(&mut self.reader)).await {
                Err(_) => return false,
                Ok(Err(_)) => return true,
                Ok(Ok(_)) => {}
            }
        }
    }
}

fn data(incarnation: u64, sequence: u64, payload: Bytes) -> Kind {
    Kind::Data(Data {
        incarnation,
        sequence,
        payload,
        floor: 1,
    })
}

/// Replica 3 runs with a key that is not its committee identity: every other gateway refuses
/// its proof, no payload crosses in either direction, and replica 3 never becomes ready.
#[test]
fn n4_an_impostor_identity_key_is_refused_both_ways() {
    run(LIMIT, async {
        let keys = keys(4, 11);
        let (listeners, addrs) = listeners(4).await;
        let committee = keys.with_endpoints(&addrs);
        let mut nodes = Vec::new();
        for (i, l) in listeners.into_iter().enumerate() {
            let signer = if i == 3 {
                impostor_signer(&keys, 3, 99)
            } else {
                keys.signer(i)
            };
            nodes.push(start(config(i), committee.clone(), signer, l).await);
        }
        for node in &nodes[..3] {
            eventually("signature refusals", Duration::from_secs(10), || async {
                node.metric(
                    "beat_gateway_handshake_failures_total",
                    &["reason=\"signature\""],
                )
                .await
                    >= 2.0
            })
            .await;
        }
        let c3 = Consensus::connect(&nodes[3]).await;
        let c1 = Consensus::connect(&nodes[1]).await;
        let mut c0 = Consensus::connect(&nodes[0]).await;
        c3.send(vec![], vec![payload(3, 0)]).await;
        c1.send(vec![0], vec![payload(1, 0)]).await;
        let got = c0.receive(1, true).await;
        assert_eq!(parse(&got[0].1), (1, 0));
        let extra = tokio::time::timeout(Duration::from_millis(500), c0.next()).await;
        assert!(
            extra.is_err(),
            "a payload from the impostor arrived: {extra:?}"
        );
        let p3 = nodes[0]
            .peers()
            .await
            .into_iter()
            .find(|p| p.replica == 3)
            .unwrap();
        let t = &p3.transports[0];
        assert_eq!(t.connects, 0, "{p3:?}");
        assert!(!t.inbound_up, "{p3:?}");
        assert!(t.last_error.contains("proof"), "{p3:?}");
        assert_eq!(nodes[3].http_status("/readyz").await, 503);
        assert_eq!(nodes[0].http_status("/readyz").await, 200);
        for node in nodes {
            node.stop().await;
        }
    });
}

/// A gateway whose committee file has other consensus parameters (so another digest) is
/// refused.
#[test]
fn n3_a_foreign_committee_digest_is_refused() {
    run(LIMIT, async {
        let keys = keys(3, 12);
        let mut nodes = cluster(&keys).await;
        let mut foreign = keys.with_endpoints(&[nodes[0].peer, nodes[1].peer, nodes[2].peer]);
        foreign.params.batch_size += 1;
        assert_ne!(foreign.digest(), keys.committee.digest());
        // Replica 2 restarts, on the same address, with the foreign committee.
        let old = nodes.pop().unwrap();
        let addr = old.peer;
        old.stop().await;
        let stranger = start(config(2), foreign, keys.signer(2), bind(addr).await).await;
        eventually("committee refusals", Duration::from_secs(10), || async {
            let p2 = nodes[0]
                .peers()
                .await
                .into_iter()
                .find(|p| p.replica == 2)
                .unwrap();
            p2.transports[0].last_error.contains("another committee")
                && nodes[0]
                    .metric(
                        "beat_gateway_handshake_failures_total",
                        &["reason=\"committee\""],
                    )
                    .await
                    >= 1.0
                && stranger
                    .metric(
                        "beat_gateway_handshake_failures_total",
                        &["reason=\"committee\""],
                    )
                    .await
                    >= 1.0
        })
        .await;
        stranger.stop().await;
        for node in nodes {
            node.stop().await;
        }
    });
}

/// Replica 0's committee file swaps the endpoints of replicas 1 and 2 (endpoints are not part
/// of the digest): when it dials "1" it reaches 2, which proves it is 2, and replica 0 refuses.
/// The links 1 and 2 dial to 0 are correct, so their payloads still reach 0.
#[test]
fn n3_a_dialled_peer_claiming_another_index_is_refused() {
    run(LIMIT, async {
        let keys = keys(3, 13);
        let (listeners, addrs) = listeners(3).await;
        let committee = keys.with_endpoints(&addrs);
        let swapped = keys.with_endpoints(&[addrs[0], addrs[2], addrs[1]]);
        let mut nodes = Vec::new();
        for (i, l) in listeners.into_iter().enumerate() {
            let view = if i == 0 {
                swapped.clone()
            } else {
                committee.clone()
            };
            nodes.push(start(config(i), view, keys.signer(i), l).await);
        }
        eventually(
            "wrong-replica refusals",
            Duration::from_secs(10),
            || async {
                nodes[0]
                    .metric(
                        "beat_gateway_handshake_failures_total",
                        &["reason=\"wrong_replica\""],
                    )
                    .await
                    >= 2.0
            },
        )
        .await;
        for p in nodes[0].peers().await {
            let t = &p.transports[0];
            assert_eq!(t.connects, 0, "{p:?}");
            assert!(t.last_error.contains("claims replica"), "{p:?}");
        }
        let mut c0 = Consensus::connect(&nodes[0]).await;
        let c1 = Consensus::connect(&nodes[1]).await;
        c1.send(vec![0], vec![payload(1, 0)]).await;
        let got = c0.receive(1, true).await;
        assert_eq!((got[0].0, parse(&got[0].1)), (1, (1, 0)));
        for node in nodes {
            node.stop().await;
        }
    });
}

/// A committee entry pointing at this gateway's own listener, and a peer claiming an index
/// outside the committee, are both refused.
#[test]
fn n3_self_connections_and_unknown_replicas_are_refused() {
    run(LIMIT, async {
        let keys = keys(3, 14);
        let (mut listeners, addrs) = listeners(3).await;
        let view = keys.with_endpoints(&[addrs[0], addrs[0], addrs[2]]);
        let node = start(config(0), view, keys.signer(0), listeners.remove(0)).await;
        eventually(
            "self-connection refusals",
            Duration::from_secs(10),
            || async {
                node.metric(
                    "beat_gateway_handshake_failures_total",
                    &["reason=\"self_connection\""],
                )
                .await
                    >= 2.0
            },
        )
        .await;
        let err = rogue(node.peer, 0, &keys, 9, keys.signer(2), 5).await.err();
        assert!(err.is_some(), "an unknown replica completed a handshake");
        eventually(
            "the unknown-replica refusal",
            Duration::from_secs(5),
            || async {
                node.metric(
                    "beat_gateway_handshake_failures_total",
                    &["reason=\"unknown_replica\""],
                )
                .await
                    == 1.0
            },
        )
        .await;
        node.stop().await;
    });
}

/// Replica 3 (played by the test) sends Data by hand: the gateway delivers it, Acks only what
/// consensus acknowledged (cumulatively), drops duplicates, closes on a foreign incarnation
/// and an oversized frame, and refuses an incarnation that a newer one replaced.
#[test]
fn n4_the_wire_protocol_as_a_peer_sees_it() {
    run(LIMIT, async {
        let keys = keys(4, 15);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Replicas 1 to 3 run nowhere (nothing listens on these ports).
        let nowhere = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let committee = keys.with_endpoints(&[addr, nowhere(9), nowhere(10), nowhere(11)]);
        let node = start(config(0), committee, keys.signer(0), listener).await;
        let mut c0 = Consensus::connect(&node).await;

        // Before authentication, frames are limited to 1 KiB: a larger length prefix closes
        // the connection.
        let mut raw = TcpStream::connect(addr).await.unwrap();
        raw.write_all(&2048u32.to_be_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), raw.read_to_end(&mut buf))
            .await
            .expect("the gateway did not close the connection");
        eventually(
            "the pre-handshake oversize count",
            Duration::from_secs(5),
            || async {
                node.metric(
                    "beat_gateway_handshake_failures_total",
                    &["reason=\"oversized_frame\""],
                )
                .await
                    == 1.0
            },
        )
        .await;

        const INC: u64 = 0x3333;
        let mut r = rogue(addr, 0, &keys, 3, keys.signer(3), INC).await.unwrap();
        assert_eq!(r.hello.replica, NodeId(0));
        r.send(data(INC, 1, payload(3, 0))).await;
        r.send(data(INC, 2, payload(3, 1))).await;
        let got = c0.receive(2, false).await;
        assert_eq!(
            got.iter().map(|d| (d.0, parse(&d.1))).collect::<Vec<_>>(),
            vec![(3, (3, 0)), (3, (3, 1))]
        );
        // Delivered is not acknowledged.
        assert_eq!(r.next(Duration::from_millis(400)).await, None);
        // Consensus acknowledges the second only: the cumulative Ack cannot move yet.
        c0.ack(vec![got[1].2]).await;
        assert_eq!(r.next(Duration::from_millis(400)).await, None);
        c0.ack(vec![got[0].2]).await;
        let ack = r.next(Duration::from_secs(5)).await;
        let Some(Kind::Ack(ack)) = ack else {
            panic!("expected an Ack, got {ack:?}")
        };
        assert_eq!((ack.incarnation, ack.sequence), (INC, 2));
        // A duplicate is dropped; the next sequence is delivered.
        r.send(data(INC, 2, payload(3, 1))).await;
        r.send(data(INC, 3, payload(3, 2))).await;
        let got = c0.receive(1, true).await;
        assert_eq!(parse(&got[0].1), (3, 2));

        // Data of another incarnation on this connection breaks the protocol.
        r.send(data(INC + 1, 4, payload(3, 3))).await;
        assert!(r.closed_within(Duration::from_secs(5)).await);
        eventually(
            "the protocol error count",
            Duration::from_secs(5),
            || async {
                node.metric("beat_gateway_link_errors_total", &["reason=\"protocol\""])
                    .await
                    == 1.0
            },
        )
        .await;

        // After authentication, an oversized frame closes the connection too.
        let mut r = rogue(addr, 0, &keys, 3, keys.signer(3), INC).await.unwrap();
        let inner = r.writer.get_mut();
        inner
            .write_all(&(16u32 << 20 | 1).to_be_bytes())
            .await
            .unwrap();
        inner.write_all(&[0; 1024]).await.unwrap();
        assert!(r.closed_within(Duration::from_secs(5)).await);
        eventually("the oversize count", Duration::from_secs(5), || async {
            node.metric(
                "beat_gateway_link_errors_total",
                &["transport=\"tcp\"", "reason=\"oversized_frame\""],
            )
            .await
                == 1.0
        })
        .await;

        // A new incarnation of replica 3 replaces the old one, whose connections then close
        // and which is refused from then on.
        let mut old = rogue(addr, 0, &keys, 3, keys.signer(3), INC).await.unwrap();
        let mut new = rogue(addr, 0, &keys, 3, keys.signer(3), INC + 7)
            .await
            .unwrap();
        assert!(old.closed_within(Duration::from_secs(5)).await);
        new.send(data(INC + 7, 1, payload(3, 100))).await;
        let got = c0.receive(1, true).await;
        assert_eq!(parse(&got[0].1), (3, 100));
        let mut stale = rogue(addr, 0, &keys, 3, keys.signer(3), INC).await.unwrap();
        assert!(stale.closed_within(Duration::from_secs(5)).await);
        eventually(
            "the stale-incarnation refusal",
            Duration::from_secs(5),
            || async {
                node.metric(
                    "beat_gateway_handshake_failures_total",
                    &["reason=\"stale_incarnation\""],
                )
                .await
                    == 1.0
            },
        )
        .await;
        node.stop().await;
    });
}
