//! A 4-replica cluster whose public APIs (ordering and market) require TLS, a client
//! certificate from the committee's CA and a bearer token (`beat devnet --tls`): each replica's
//! state service feeds its consensus service over that boundary, a client with the issued
//! credentials submits and reads back the agreed order, and every client missing one of the
//! three is refused — on both APIs of every replica.

use std::{collections::HashSet, time::Duration};

use beat_cli::api::use_client_auth;
use beat_client::connect::{ClientAuth, market, ordering};
use beat_e2e::{
    batches_until, check_same_order, committee_of, market_tx, scenario_dir, states_at_least,
    submit_all,
};
use beat_proto::{consensus::v1 as cpb, state::v1 as spb};
use beat_testkit::cluster::{Cluster, ClusterSpec, FeedSpec};

const N: usize = 4;
const BASE_PORT: u16 = beat_e2e::ports::CLUSTER_A;
const TIMEOUT: Duration = Duration::from_secs(180);

/// The status code an ordering and a market call as `auth` get (`None`: answered).
async fn codes(
    ordering_url: &str,
    market_url: &str,
    auth: &ClientAuth,
) -> [Option<tonic::Code>; 2] {
    let o = match ordering(ordering_url, auth) {
        Ok(mut c) => c
            .status(cpb::StatusRequest {})
            .await
            .err()
            .map(|s| s.code()),
        Err(_) => Some(tonic::Code::InvalidArgument),
    };
    let m = match market(market_url, auth) {
        Ok(mut c) => c
            .get_state(spb::GetStateRequest {})
            .await
            .err()
            .map(|s| s.code()),
        Err(_) => Some(tonic::Code::InvalidArgument),
    };
    [o, m]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_clients_with_certificate_and_token_reach_a_tls_committee() -> anyhow::Result<()> {
    let dir = scenario_dir("tls");
    let mut spec = ClusterSpec::new(&dir, env!("CARGO_BIN_EXE_beat-e2e"));
    beat_e2e::register_market_source(&mut spec);
    spec.replicas = N;
    spec.base_port = BASE_PORT;
    spec.tls = true;
    spec.kdf = beat_testkit::cluster::KdfParams::insecure_fast_for_tests();
    spec.feed = Some(FeedSpec {
        events_per_second: 50,
        symbols: vec!["BTC-USD".to_owned()],
    });
    let mut cluster = Cluster::prepare(spec)?;
    cluster.start_all()?;
    cluster.wait_all_ready(Duration::from_secs(60)).await?;
    let full = cluster.client_auth();
    use_client_auth(full.clone());

    // The issued client submits to two replicas and reads the same order from all four.
    let txs: Vec<Vec<u8>> = (0..400).map(|k| market_tx("tls", k)).collect();
    submit_all(&cluster.ordering_endpoint(0), &txs[..200], 100).await?;
    submit_all(&cluster.ordering_endpoint(1), &txs[200..], 100).await?;
    let wanted: HashSet<Vec<u8>> = txs.iter().cloned().collect();
    let mut per_replica = Vec::new();
    for i in 0..N {
        per_replica.push(
            batches_until(
                &cluster.ordering_endpoint(i),
                &committee_of(&cluster),
                0,
                &wanted,
                TIMEOUT,
            )
            .await?,
        );
    }
    check_same_order(&per_replica)?;
    // The state services reached their consensus services over mTLS with their own tokens:
    // the feed's events and the client's were applied everywhere.
    let market_urls: Vec<String> = (0..N).map(|i| cluster.market_endpoint(i)).collect();
    let states = states_at_least(&market_urls, 1, TIMEOUT).await?;
    for (i, s) in states.iter().enumerate() {
        anyhow::ensure!(s.events_applied > 0, "replica {i} applied no market event");
    }

    // Everyone missing a piece is refused, on both APIs of every replica.
    let no_token = ClientAuth {
        token_file: None,
        ..full.clone()
    };
    let no_cert = ClientAuth {
        cert_file: None,
        key_file: None,
        ..full.clone()
    };
    let forged = dir.join("forged.token");
    std::fs::write(&forged, "0123456789abcdef")?;
    let wrong_token = ClientAuth {
        token_file: Some(forged),
        ..full.clone()
    };
    for i in 0..N {
        let (o, m) = (cluster.ordering_endpoint(i), cluster.market_endpoint(i));
        assert_eq!(
            codes(&o, &m, &full).await,
            [None, None],
            "replica {i}: the issued client"
        );
        assert_eq!(
            codes(&o, &m, &no_token).await,
            [Some(tonic::Code::Unauthenticated); 2],
            "replica {i}: no token"
        );
        assert_eq!(
            codes(&o, &m, &wrong_token).await,
            [Some(tonic::Code::Unauthenticated); 2],
            "replica {i}: a wrong token"
        );
        for (what, auth, url) in [
            ("no client certificate", &no_cert, (o.clone(), m.clone())),
            (
                "plaintext",
                &ClientAuth::default(),
                (
                    o.replacen("https", "http", 1),
                    m.replacen("https", "http", 1),
                ),
            ),
        ] {
            let [a, b] = codes(&url.0, &url.1, auth).await;
            assert!(
                a.is_some() && b.is_some() && a != Some(tonic::Code::Unauthenticated),
                "replica {i}: {what} must fail at the transport, got {a:?} {b:?}"
            );
        }
    }
    // The state services are still applying (their credentials were not revoked by any of it).
    let before = states.iter().filter_map(|s| s.epoch).max().unwrap_or(0);
    states_at_least(&market_urls, before + 1, TIMEOUT).await?;
    cluster.stop_all(Duration::from_secs(5));
    Ok(())
}
