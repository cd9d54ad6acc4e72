//! Gateways signing their handshakes through real keystore services over gRPC.
#![allow(clippy::unwrap_used)]

mod common;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use beat_crypto::dealer::ReplicaSecrets;
use beat_gateway::signer::{KeystoreSigner, Signer};
use beat_keystore::component::Keystore;
use beat_telemetry::shutdown::Shutdown;
use beat_types::NodeId;
use common::*;

/// Starts replica `secrets.node`'s keystore service on a fresh port; returns its endpoint.
async fn keystore(keys: &Keys, secrets: ReplicaSecrets, shutdown: Shutdown) -> String {
    let replica = secrets.node;
    let keystore = Keystore::new(
        secrets,
        Arc::new(keys.committee.keys.clone()),
        keys.committee.digest(),
        replica,
    )
    .unwrap();
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = grpc.local_addr().unwrap();
    let ops = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = beat_keystore::config::Config {
        replica: replica.0,
        ..Default::default()
    };
    actix_rt::spawn(beat_keystore::serve(
        config,
        keystore,
        vec![(grpc.into(), beat_keystore::Caller::Gateway)],
        ops,
        shutdown,
    ));
    format!("http://{addr}")
}

fn signer(endpoint: &str) -> Arc<dyn Signer> {
    Arc::new(KeystoreSigner::new(endpoint, Duration::from_secs(2)).unwrap())
}

/// Replicas 0 and 1 sign through their own keystores and talk; replica 2's gateway points at
/// replica 1's keystore, so it is never ready and every peer refuses it. Replica 0's gateway
/// starts before its keystore and becomes ready only once the keystore answers.
#[test]
fn n3_handshakes_signed_by_the_keystore_service() {
    run(Duration::from_secs(60), async {
        let keys = keys(3, 21);
        let mut secrets = secrets(3, 21).into_iter();
        let (s0, s1) = (secrets.next().unwrap(), secrets.next().unwrap());
        let stop_keystores = Shutdown::default();
        let ks1 = keystore(&keys, s1, stop_keystores.clone()).await;
        // Replica 0's keystore address is bound now and served later. The listener is kept
        // rather than dropped and bound again: a freed ephemeral port can be taken meanwhile
        // (by any outgoing connection, or by the gateway's own dial to it connecting to
        // itself), which made the later bind fail. Until it is served, connections wait in
        // the backlog unanswered, so the gateway still sees no keystore.
        let reserved = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        reserved.set_nonblocking(true).unwrap();
        let ks0_addr: SocketAddr = reserved.local_addr().unwrap();
        let ks0 = format!("http://{ks0_addr}");

        let (listeners, addrs) = listeners(3).await;
        let committee = keys.with_endpoints(&addrs);
        let endpoints = [&ks0, &ks1, &ks1];
        let mut nodes = Vec::new();
        for (i, l) in listeners.into_iter().enumerate() {
            nodes.push(start(config(i), committee.clone(), signer(endpoints[i]), l).await);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            nodes[0].http_status("/readyz").await,
            503,
            "ready without a keystore"
        );
        // Now replica 0's keystore comes up on the address its gateway was told.
        let keystore0 = Keystore::new(
            s0,
            Arc::new(keys.committee.keys.clone()),
            keys.committee.digest(),
            NodeId(0),
        )
        .unwrap();
        let grpc = tokio::net::TcpListener::from_std(reserved).unwrap();
        let ops = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        actix_rt::spawn(beat_keystore::serve(
            beat_keystore::config::Config::default(),
            keystore0,
            vec![(grpc.into(), beat_keystore::Caller::Gateway)],
            ops,
            stop_keystores.clone(),
        ));
        for node in &nodes[..2] {
            eventually("readiness", Duration::from_secs(10), || async {
                node.http_status("/readyz").await == 200
            })
            .await;
        }
        let mut c1 = Consensus::connect(&nodes[1]).await;
        let c0 = Consensus::connect(&nodes[0]).await;
        c0.send(vec![], vec![payload(0, 0)]).await;
        let got = c1.receive(1, true).await;
        assert_eq!((got[0].0, parse(&got[0].1)), (0, (0, 0)));
        eventually("refusals of replica 2", Duration::from_secs(10), || async {
            nodes[0]
                .metric(
                    "beat_gateway_handshake_failures_total",
                    &["reason=\"signature\""],
                )
                .await
                >= 1.0
        })
        .await;
        assert_eq!(nodes[2].http_status("/readyz").await, 503);
        for node in nodes {
            node.stop().await;
        }
        stop_keystores.trigger();
    });
}
