//! Authentication and the wire protocol against real gateways: refused identities, committees,
//! indices and self-connections, oversized frames, stale incarnations, end-to-end Acks as a
//! peer sees them on the wire, and the attacker on the path and at the door: forged, injected
//! and relayed records, strangers that never prove an identity, and handshake floods.
#![allow(clippy::unwrap_used)]

mod common;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use beat_gateway::{
    link::{
        codec,
        handshake::{self, HandshakeError, LocalIdentity, Role, Secrets, Session},
    },
    signer::Signer,
};
use beat_proto::wire::v2::{Data, PeerFrame, peer_frame::Kind};
use beat_types::NodeId;
use bytes::Bytes;
use common::*;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const LIMIT: Duration = Duration::from_secs(60);

/// A test peer speaking the wire protocol by hand.
struct Rogue(Session);

fn secrets(seed: u8) -> Secrets {
    Secrets {
        nonce: [seed; 32],
        ephemeral: x25519_dalek::EphemeralSecret::random_from_rng(
            &mut <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(u64::from(
                seed,
            )),
        ),
    }
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
    let (reader, writer) = codec::framed(Box::new(tcp), codec::HANDSHAKE_MAX_FRAME);
    let local = LocalIdentity {
        me: NodeId(me),
        incarnation,
        committee_digest: keys.committee.digest(),
        identities: keys.committee.keys.identities.clone(),
        signer,
        responder_budget: Default::default(),
    };
    let role = Role::Initiator {
        expected: NodeId::from_index(target_replica),
    };
    let mut session = handshake::handshake(
        reader,
        writer,
        &local,
        role,
        secrets(7),
        Duration::from_secs(5),
    )
    .await?;
    session.reader.set_max_plaintext(16 << 20);
    session.writer.set_max_plaintext(16 << 20);
    Ok(Rogue(session))
}

impl Rogue {
    async fn send(&mut self, kind: Kind) {
        self.0
            .writer
            .send(&PeerFrame { kind: Some(kind) })
            .await
            .unwrap();
    }

    /// The next frame that is not a Ping (answering Pings), or `None` if the gateway closed
    /// the connection or `wait` passed.
    async fn next(&mut self, wait: Duration) -> Option<Kind> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let (frame, _) = tokio::time::timeout_at(deadline, self.0.reader.next())
                .await
                .ok()?
                .ok()?;
            match frame.kind.unwrap() {
                Kind::Ping(p) => {
                    self.send(Kind::Pong(beat_proto::wire::v2::Pong { nonce: p.nonce }))
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
            match tokio::time::timeout_at(deadline, self.0.reader.next()).await {
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
        // Each refuses the other as responder (an initiator learns nothing: the responder
        // closes without a word, so its dial fails with a closed connection).
        eventually("committee refusals", Duration::from_secs(10), || async {
            let p2 = nodes[0]
                .peers()
                .await
                .into_iter()
                .find(|p| p.replica == 2)
                .unwrap();
            p2.transports[0].last_error.contains("closed by the peer")
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
        assert_eq!(r.0.peer.replica, NodeId(0));
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

        // After authentication, an oversized frame (beyond the limit plus the 16-byte tag)
        // closes the connection too.
        let mut r = rogue(addr, 0, &keys, 3, keys.signer(3), INC).await.unwrap();
        let inner = r.0.writer.get_mut();
        inner
            .write_all(&((16u32 << 20) + 17).to_be_bytes())
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

/// Counts the signatures a gateway asks for.
struct CountingSigner {
    inner: Arc<dyn Signer>,
    calls: Arc<std::sync::atomic::AtomicUsize>,
}

impl Signer for CountingSigner {
    fn sign_handshake(
        &self,
        transcript: [u8; 32],
    ) -> futures::future::BoxFuture<
        '_,
        Result<beat_crypto::identity::IdentitySignature, beat_gateway::signer::SignerError>,
    > {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.sign_handshake(transcript)
    }

    fn public_keys(
        &self,
    ) -> futures::future::BoxFuture<
        '_,
        Result<beat_gateway::signer::SignerKeys, beat_gateway::signer::SignerError>,
    > {
        self.inner.public_keys()
    }
}

/// Replica 0 alone (its peers run nowhere, so it never dials anyone successfully), with a
/// signer that counts.
async fn lone_node(keys: &Keys) -> (Node, SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let nowhere = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let committee = keys.with_endpoints(&[addr, nowhere(9), nowhere(10), nowhere(11)]);
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let signer = Arc::new(CountingSigner {
        inner: keys.signer(0),
        calls: calls.clone(),
    });
    (
        start(config(0), committee, signer, listener).await,
        addr,
        calls,
    )
}

/// The responder says nothing and signs nothing until the initiator has proven a committee
/// identity: a silent connection gets no byte and is closed at the hello deadline; a stranger
/// who sends a well-formed Hello (the committee digest is public) gets the responder's Hello
/// but no Proof, and the responder's keystore is never asked to sign.
#[test]
fn n4_a_responder_signs_nothing_for_a_stranger() {
    run(LIMIT, async {
        let keys = keys(4, 16);
        let (node, addr, calls) = lone_node(&keys).await;

        let mut silent = TcpStream::connect(addr).await.unwrap();
        let started = tokio::time::Instant::now();
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), silent.read_to_end(&mut got))
            .await
            .expect("a silent connection was kept past the hello deadline")
            .unwrap();
        assert!(got.is_empty(), "the responder spoke first: {got:?}");
        assert!(started.elapsed() >= Duration::from_secs(2));
        // At least one: under CI load another dial (the node's own, to a peer that is not
        // there) may time out too; what matters is that the silent connection was counted.
        eventually(
            "the hello-timeout count",
            Duration::from_secs(15),
            || async {
                node.metric(
                    "beat_gateway_handshake_failures_total",
                    &["reason=\"hello_timeout\""],
                )
                .await
                    >= 1.0
            },
        )
        .await;

        // A stranger claiming replica 3 with a key that is not replica 3's.
        let err = rogue(addr, 0, &keys, 3, impostor_signer(&keys, 3, 77), 5)
            .await
            .err()
            .expect("a stranger completed a handshake");
        assert!(
            matches!(err, HandshakeError::Frame(_) | HandshakeError::Io(_)),
            "{err}"
        );
        eventually("the signature refusal", Duration::from_secs(5), || async {
            node.metric(
                "beat_gateway_handshake_failures_total",
                &["reason=\"signature\""],
            )
            .await
                == 1.0
        })
        .await;
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 0);

        // The real replica 3 gets the responder's proof: one signature.
        let r = rogue(addr, 0, &keys, 3, keys.signer(3), 5).await.unwrap();
        assert_eq!(r.0.peer.replica, NodeId(0));
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
        node.stop().await;
    });
}

/// An attacker on the path relays the handshake unchanged, so both sides accept, and then
/// rewrites one bit of the first record: the gateway closes the link, counts a forged record
/// and delivers nothing of it. A frame injected into an established link (as a v1 peer would
/// send it, unsealed) is refused the same way. Afterwards the honest peer's data flows.
#[test]
fn n4_an_on_path_attacker_cannot_rewrite_or_inject_records() {
    run(LIMIT, async {
        let keys = keys(4, 17);
        let (node, addr, _) = lone_node(&keys).await;
        let mut c0 = Consensus::connect(&node).await;
        const INC: u64 = 0x4444;

        // The tampering proxy: flips a bit in the third frame the client sends (Hello and
        // Proof pass unchanged; the third is the first sealed record).
        let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy_addr = proxy.local_addr().unwrap();
        tokio::spawn(async move {
            let (client, _) = proxy.accept().await.unwrap();
            let server = TcpStream::connect(addr).await.unwrap();
            let (mut client_read, mut client_write) = client.into_split();
            let (mut server_read, mut server_write) = server.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
            });
            for frame in 0.. {
                let mut len = [0; 4];
                if client_read.read_exact(&mut len).await.is_err() {
                    return;
                }
                let mut body = vec![0; u32::from_be_bytes(len) as usize];
                if client_read.read_exact(&mut body).await.is_err() {
                    return;
                }
                if frame == 2 {
                    body[0] ^= 0x01;
                }
                if server_write.write_all(&len).await.is_err()
                    || server_write.write_all(&body).await.is_err()
                {
                    return;
                }
            }
        });
        let mut r = rogue(proxy_addr, 0, &keys, 3, keys.signer(3), INC)
            .await
            .expect("the relayed handshake completes: the proxy changed nothing yet");
        r.send(data(INC, 1, payload(3, 0))).await;
        assert!(r.closed_within(Duration::from_secs(5)).await);
        eventually(
            "the forged-record count",
            Duration::from_secs(5),
            || async {
                node.metric(
                    "beat_gateway_link_errors_total",
                    &["transport=\"tcp\"", "reason=\"forged_record\""],
                )
                .await
                    == 1.0
            },
        )
        .await;

        // Injection: an unsealed Data frame on an established link.
        let mut r = rogue(addr, 0, &keys, 3, keys.signer(3), INC).await.unwrap();
        let plain = codec::encode(&PeerFrame {
            kind: Some(data(INC, 1, payload(3, 1))),
        });
        let inner = r.0.writer.get_mut();
        inner
            .write_all(&(plain.len() as u32).to_be_bytes())
            .await
            .unwrap();
        inner.write_all(&plain).await.unwrap();
        assert!(r.closed_within(Duration::from_secs(5)).await);
        eventually(
            "the second forged record",
            Duration::from_secs(5),
            || async {
                node.metric(
                    "beat_gateway_link_errors_total",
                    &["transport=\"tcp\"", "reason=\"forged_record\""],
                )
                .await
                    == 2.0
            },
        )
        .await;

        // Neither reached consensus: the first payload it sees is the honest one.
        let mut r = rogue(addr, 0, &keys, 3, keys.signer(3), INC).await.unwrap();
        r.send(data(INC, 1, payload(3, 9))).await;
        let got = c0.receive(1, true).await;
        assert_eq!(parse(&got[0].1), (3, 9));
        node.stop().await;
    });
}

/// A handshake flood (200 idle connections) from many sources holds no slot for long: one source gets at most its
/// share, the rest are evicted oldest first, and an honest peer dialling in the middle of the
/// flood still completes its handshake.
#[test]
fn n4_a_handshake_flood_does_not_keep_a_peer_out() {
    run(LIMIT, async {
        let keys = keys(4, 18);
        let (node, addr, _) = lone_node(&keys).await;
        let mut flood = Vec::new();
        // Ten loopback sources with 20 idle connections each: 200 attempts against 64 slots
        // and a share of 16 per source.
        for source in 2..12u8 {
            for _ in 0..20 {
                let socket = tokio::net::TcpSocket::new_v4().unwrap();
                socket
                    .bind(SocketAddr::from(([127, 0, 0, source], 0)))
                    .unwrap();
                flood.push(socket.connect(addr).await.unwrap());
            }
        }
        eventually("the flood is refused", Duration::from_secs(5), || async {
            node.metric(
                "beat_gateway_handshake_failures_total",
                &["reason=\"source_limit\""],
            )
            .await
                >= 40.0
                && node
                    .metric(
                        "beat_gateway_handshake_failures_total",
                        &["reason=\"evicted\""],
                    )
                    .await
                    >= 96.0
        })
        .await;
        let r = tokio::time::timeout(
            Duration::from_secs(5),
            rogue(addr, 0, &keys, 3, keys.signer(3), 6),
        )
        .await
        .expect("the honest handshake waited for the flood")
        .expect("the honest handshake failed during the flood");
        assert_eq!(r.0.peer.replica, NodeId(0));
        drop(flood);
        node.stop().await;
    });
}

/// A committee member (here: holding replica 3's real key, as a Byzantine replica does) that
/// handshakes again and again gets 30 answers and then none for a while: it cannot spend this
/// replica's keystore signatures at will, and the budget is its own — replica 2's handshake is
/// answered at once meanwhile.
#[test]
fn n4_a_peer_that_handshakes_in_a_loop_uses_up_only_its_own_budget() {
    run(LIMIT, async {
        let keys = keys(4, 19);
        let (node, addr, calls) = lone_node(&keys).await;
        let mut answered = 0usize;
        let mut refused = 0u32;
        for i in 0..40 {
            match rogue(addr, 0, &keys, 3, keys.signer(3), 100 + i).await {
                Ok(_) => answered += 1,
                Err(_) => refused += 1,
            }
        }
        // The default budget: 30 at once, then 2 per second (a slow run may earn a few more).
        assert!((30..=36).contains(&answered), "{answered} answered");
        assert_eq!(answered + refused as usize, 40);
        eventually("the budget refusals", Duration::from_secs(5), || async {
            node.metric(
                "beat_gateway_handshake_failures_total",
                &["reason=\"responder_budget\""],
            )
            .await
                == f64::from(refused)
        })
        .await;
        // A refused handshake costs no signature.
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), answered);
        let r = rogue(addr, 0, &keys, 2, keys.signer(2), 7)
            .await
            .expect("replica 2 was refused for replica 3's loop");
        assert_eq!(r.0.peer.replica, NodeId(0));
        node.stop().await;
    });
}
