//! A 4-replica cluster of real processes (4 services each, talking gRPC over loopback):
//! ordering and market state agree everywhere, a crashed replica recovers from its WAL and
//! catches up, two crashed replicas stop progress without divergence, and bad requests get the
//! documented status codes.
//!
//! Every check goes through the public APIs, like a client would. An [`AgreementTracker`] runs
//! for the whole scenario and compares every epoch's batch digest and state hash across all
//! replicas, restarts included.

use std::{collections::HashSet, time::Duration};

use beat_cli::api::{market_client, ordering_client};
use beat_e2e::{
    batches_until, committee_of, epochs, market_event_totals, market_tx, ports, scenario_dir,
    states_at_least, submit_all,
};
use beat_proto::{consensus::v1 as cpb, state::v1 as spb};
use beat_testkit::{
    cluster::{Cluster, ClusterSpec},
    monitor::AgreementTracker,
};
use bytes::Bytes;

const N: usize = 4;
const COMMIT_TIMEOUT: Duration = Duration::from_secs(180);

fn spec(name: &str, base_port: u16) -> (ClusterSpec, std::path::PathBuf) {
    let dir = scenario_dir(name);
    let mut spec = ClusterSpec::new(&dir, env!("CARGO_BIN_EXE_beat-e2e"));
    beat_e2e::register_market_source(&mut spec);
    spec.replicas = N;
    spec.base_port = base_port;
    spec.params.batch_size = 2000;
    spec.kdf = beat_crypto_kdf_fast();
    spec.log_filter = "info,sled=warn,h2=warn,tower=warn,hyper=warn,actix_server=warn".into();
    (spec, dir)
}

/// Keystores for tests: the cheapest Argon2 parameters (the production default costs 64 MiB
/// and ~100 ms per replica start).
fn beat_crypto_kdf_fast() -> beat_testkit::cluster::KdfParams {
    beat_testkit::cluster::KdfParams::insecure_fast_for_tests()
}

fn txs(source: &str, range: std::ops::Range<u64>) -> Vec<Vec<u8>> {
    range.map(|k| market_tx(source, k)).collect()
}

/// Submits `txs` round-robin over `replicas` in requests of 500.
async fn submit_spread(
    cluster: &Cluster,
    replicas: &[usize],
    txs: &[Vec<u8>],
) -> anyhow::Result<()> {
    let chunks: Vec<_> = txs.chunks(500).collect();
    let mut set = tokio::task::JoinSet::new();
    for (k, part) in chunks.into_iter().enumerate() {
        let ep = cluster.ordering_endpoint(replicas[k % replicas.len()]);
        let part = part.to_vec();
        set.spawn(async move { submit_all(&ep, &part, 500).await });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok(())
}

/// Waits until every replica in `replicas` has committed all of `txs`, verified against the
/// committee; checks their batches agree; returns the next epoch after the last one holding any
/// of them.
async fn committed_everywhere(
    cluster: &Cluster,
    replicas: &[usize],
    from_epoch: u64,
    txs: &[Vec<u8>],
) -> anyhow::Result<u64> {
    let endpoints: Vec<String> = replicas
        .iter()
        .map(|&i| cluster.ordering_endpoint(i))
        .collect();
    beat_e2e::committed_everywhere(
        &endpoints,
        &committee_of(cluster),
        from_epoch,
        txs,
        COMMIT_TIMEOUT,
    )
    .await
}

/// Market services of `replicas` reach `epoch` and report the same state hash there (no feed
/// runs, so once the cluster is quiet they all rest at the same epoch).
async fn same_market_state(
    cluster: &Cluster,
    replicas: &[usize],
    epoch: u64,
) -> anyhow::Result<spb::GetStateResponse> {
    let eps: Vec<String> = replicas
        .iter()
        .map(|&i| cluster.market_endpoint(i))
        .collect();
    let states = states_at_least(&eps, epoch, COMMIT_TIMEOUT).await?;
    // They may be at different epochs if one is still applying; wait for quiet and re-read.
    let max_epoch = states.iter().filter_map(|s| s.epoch).max().unwrap_or(epoch);
    let states = states_at_least(&eps, max_epoch, COMMIT_TIMEOUT).await?;
    let first = &states[0];
    for (k, s) in states.iter().enumerate() {
        anyhow::ensure!(
            s.epoch == first.epoch && s.state_hash == first.state_hash,
            "replica {} market state at epoch {:?} differs from replica {} at epoch {:?}",
            replicas[k],
            s.epoch,
            replicas[0],
            first.epoch
        );
    }
    Ok(first.clone())
}

/// Every submitted event was applied or rejected (cancels of filled orders are rejected, by
/// every replica alike), and most were applied.
async fn expect_events(
    cluster: &Cluster,
    state: &spb::GetStateResponse,
    submitted: u64,
) -> anyhow::Result<()> {
    let through = state.epoch.unwrap_or(0);
    let (applied, rejected) =
        market_event_totals(&cluster.market_endpoint(0), through, COMMIT_TIMEOUT).await?;
    anyhow::ensure!(
        applied == state.events_applied
            && applied + rejected == submitted
            && applied * 10 >= submitted * 8,
        "{applied} events applied and {rejected} rejected of {submitted} submitted (GetState says {})",
        state.events_applied
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_replicas_agree_recover_and_stall_safely() -> anyhow::Result<()> {
    let (spec, dir) = spec("cluster", ports::CLUSTER_A);
    let mut cluster = Cluster::prepare(spec)?;
    cluster.start_all()?;
    cluster.wait_all_ready(Duration::from_secs(60)).await?;
    let all: Vec<usize> = (0..N).collect();
    let ordering: Vec<String> = all.iter().map(|&i| cluster.ordering_endpoint(i)).collect();
    let market: Vec<String> = all.iter().map(|&i| cluster.market_endpoint(i)).collect();
    let tracker =
        AgreementTracker::start(ordering.clone(), market.clone(), 0, cluster.client_auth());

    // Phase 1: 10,000 market events through the ordering API of all four replicas.
    let phase1 = txs("e2e", 0..10_000);
    submit_spread(&cluster, &all, &phase1).await?;
    let next = committed_everywhere(&cluster, &all, 0, &phase1).await?;
    let state1 = same_market_state(&cluster, &all, next - 1).await?;
    eprintln!(
        "phase 1: 10,000 transactions committed by all 4 replicas in epochs 0..{next}; \
         state hash {} after {} events",
        state1
            .state_hash
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
        state1.events_applied
    );
    expect_events(&cluster, &state1, 10_000).await?;

    // Phase 2: crash replica 3 (SIGKILL of all its services); the other three keep going.
    cluster.kill_replica(3)?;
    let phase2 = txs("e2e", 10_000..12_000);
    submit_spread(&cluster, &[0, 1, 2], &phase2).await?;
    let next2 = committed_everywhere(&cluster, &[0, 1, 2], next, &phase2).await?;
    eprintln!(
        "phase 2: with replica 3 down, 2,000 more committed by replicas 0-2 (epochs {next}..{next2})"
    );

    // Phase 3: restart it; it recovers from its WAL and catches up on what it missed.
    cluster.start_replica(3)?;
    cluster
        .wait_replica_ready(3, Duration::from_secs(60))
        .await?;
    let phase3 = txs("e2e", 12_000..12_500);
    submit_spread(&cluster, &all, &phase3).await?;
    let mut both = phase2.clone();
    both.extend(phase3.iter().cloned());
    let next3 = committed_everywhere(&cluster, &all, next, &both).await?;
    let state3 = same_market_state(&cluster, &all, next3 - 1).await?;
    expect_events(&cluster, &state3, 12_500).await?;
    eprintln!(
        "phase 3: replica 3 restarted, caught up and committed 500 more; states agree at epoch {:?}",
        state3.epoch
    );

    // Phase 4: crash two replicas. n − f = 3 are needed, so nothing commits, and nothing
    // diverges; transactions acknowledged meanwhile are durable and commit later.
    let before = epochs(&ordering[..2]).await?;
    cluster.kill_replica(2)?;
    cluster.kill_replica(3)?;
    let phase4 = txs("e2e", 12_500..13_000);
    submit_spread(&cluster, &[0, 1], &phase4).await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let during = epochs(&ordering[..2]).await?;
    anyhow::ensure!(
        during == before,
        "with two of four replicas down the others committed epochs: {before:?} → {during:?}"
    );
    eprintln!("phase 4: two replicas down, epochs stay at {during:?}");

    // Phase 5: restore both; progress resumes and the held transactions commit everywhere.
    cluster.start_replica(2)?;
    cluster.start_replica(3)?;
    cluster
        .wait_replica_ready(2, Duration::from_secs(60))
        .await?;
    cluster
        .wait_replica_ready(3, Duration::from_secs(60))
        .await?;
    let next5 = committed_everywhere(&cluster, &all, next3, &phase4).await?;
    let state5 = same_market_state(&cluster, &all, next5 - 1).await?;
    expect_events(&cluster, &state5, 13_000).await?;
    eprintln!("phase 5: restored; 500 held transactions committed everywhere by epoch {next5}");

    // Every replica serves the whole history with commit certificates that a client holding
    // only the committee file verifies (digests recomputed, signatures, the chain from genesis)
    // — also replica 3, which crashed twice and adopted epochs through catch-up.
    let committee = dir.join("committee.json");
    for (i, ep) in ordering.iter().enumerate() {
        let report = beat_cli::verify::live(
            &committee,
            ep,
            0,
            Some(next5),
            false,
            Duration::from_secs(30),
            false,
        )
        .await
        .map_err(|e| e.context(format!("replica {i}'s certified history")))?;
        eprintln!("certificates: replica {i}: {}", report.summary());
    }

    // The keystores' signing horizon followed the certificates and never refused an honest
    // request — across crashes of whole replicas, keystores included (a restarted keystore
    // starts at frontier 0 and learns from the next certificate presented).
    for i in all.iter().copied() {
        let addr = cluster
            .ports(i)
            .ops(beat_provision::layout::Service::Keystore);
        let text = beat_telemetry::probe::metrics(addr)
            .await
            .ok_or_else(|| anyhow::anyhow!("replica {i}'s keystore metrics"))?;
        let value =
            |series: &str| beat_telemetry::probe::metric_value(&text, series).unwrap_or(0.0);
        let frontier = value("beat_keystore_signing_frontier");
        for reason in ["horizon", "equivocation", "certificate"] {
            let refused = value(&format!(
                "beat_keystore_refusals_total{{operation=\"{reason}\"}}"
            ));
            anyhow::ensure!(
                refused == 0.0,
                "replica {i}'s keystore refused {refused} requests ({reason})"
            );
        }
        anyhow::ensure!(
            frontier >= next5.saturating_sub(8) as f64,
            "replica {i}'s keystore frontier {frontier} lags the committed epoch {next5}"
        );
        eprintln!("keystore {i}: signing frontier {frontier}, no refusals");
    }

    // Whole run: every epoch's batch and state hash identical at every replica that reported it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let report = tracker.stop();
    anyhow::ensure!(
        report.divergences.is_empty(),
        "divergences: {:?}",
        report.divergences
    );
    anyhow::ensure!(
        report.batch_epochs_all_agree >= next5 - 1,
        "only {} epochs reported identically by all replicas (of {next5})",
        report.batch_epochs_all_agree
    );
    let exited = cluster.reap_exited();
    anyhow::ensure!(exited.is_empty(), "processes exited: {exited:?}");
    cluster.stop_all(Duration::from_secs(10));
    drop(cluster);
    // The stopped replicas' stores verify offline too.
    for i in [0, 3] {
        let data = beat_provision::layout::replica_dir(&dir, i).join("consensus");
        let report = beat_cli::verify::stored(&committee, &data, false)
            .map_err(|e| e.context(format!("replica {i}'s stored history")))?;
        anyhow::ensure!(
            report.verified >= next5.saturating_sub(4),
            "replica {i} stored only {} certified epochs of {next5}",
            report.verified
        );
    }
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_documented_status_codes() -> anyhow::Result<()> {
    let (mut spec, dir) = spec("bad-requests", ports::CLUSTER_B);
    spec.params.max_transaction_bytes = 1024;
    let mut cluster = Cluster::prepare(spec)?;
    cluster.start_all()?;
    cluster.wait_all_ready(Duration::from_secs(60)).await?;
    outsiders_reach_no_internal_api(&dir, ports::CLUSTER_B).await?;
    let mut ordering = ordering_client(&cluster.ordering_endpoint(0))?;
    let mut market = market_client(&cluster.market_endpoint(0))?;
    let submit = |txs: Vec<Vec<u8>>| cpb::SubmitRequest {
        transactions: txs.into_iter().map(Bytes::from).collect(),
    };
    let code = |r: Result<_, tonic::Status>| {
        r.err()
            .map(|s: tonic::Status| (s.code(), s.message().to_owned()))
    };

    // Nothing to order.
    let (c, m) =
        code(ordering.submit(submit(vec![])).await.map(|_| ())).expect("empty Submit must fail");
    assert_eq!(c, tonic::Code::InvalidArgument, "{m}");
    // An empty transaction, and one above max_transaction_bytes: named by index.
    let (c, m) = code(
        ordering
            .submit(submit(vec![b"ok".to_vec(), vec![]]))
            .await
            .map(|_| ()),
    )
    .expect("empty tx");
    assert_eq!(c, tonic::Code::InvalidArgument, "{m}");
    assert!(
        m.contains('1'),
        "the message should name transaction 1: {m}"
    );
    let (c, m) = code(
        ordering
            .submit(submit(vec![vec![7; 1025]]))
            .await
            .map(|_| ()),
    )
    .expect("oversized tx");
    assert_eq!(c, tonic::Code::InvalidArgument, "{m}");
    // More transactions than one request may carry.
    let many = (0..10_001u32).map(|k| k.to_le_bytes().to_vec()).collect();
    let (c, m) = code(ordering.submit(submit(many)).await.map(|_| ())).expect("too many");
    assert_eq!(c, tonic::Code::InvalidArgument, "{m}");
    // Requests above the API's limit (api.max_request_bytes, 4 MiB) are refused by the codec
    // from the length prefix: just above it, and far above it.
    for mib in [5, 70] {
        let huge = (0..mib).map(|_| vec![1u8; 1 << 20]).collect();
        let (c, m) = code(ordering.submit(submit(huge)).await.map(|_| ())).expect("huge message");
        assert!(
            matches!(c, tonic::Code::ResourceExhausted | tonic::Code::OutOfRange),
            "{mib} MiB: {c:?}: {m}"
        );
    }
    // Asking for an epoch that is not committed.
    let (c, m) = code(
        ordering
            .get_batch(cpb::GetBatchRequest { epoch: 1 << 40 })
            .await
            .map(|_| ()),
    )
    .expect("future epoch");
    assert_eq!(c, tonic::Code::NotFound, "{m}");
    // A market event without a body, and an order with zero quantity (both signed by their
    // registered source), and a valid event without a signature.
    let sign = |mut e: spb::MarketEvent| {
        beat_state::market::sources::sign(&mut e, beat_e2e::market_key());
        e
    };
    let empty_event = sign(spb::MarketEvent {
        source: "e2e".into(),
        sequence: 1,
        event: None,
        signature: Default::default(),
    });
    let (c, m) = code(
        market
            .publish(spb::PublishRequest {
                events: vec![empty_event],
            })
            .await
            .map(|_| ()),
    )
    .expect("empty event");
    assert_eq!(c, tonic::Code::InvalidArgument, "{m}");
    assert!(m.starts_with("events[0].event:"), "{m}");
    let zero = sign(spb::MarketEvent {
        source: "e2e".into(),
        sequence: 2,
        event: Some(spb::market_event::Event::Order(spb::NewOrder {
            order_id: "o".into(),
            symbol: "BTC-USD".into(),
            side: spb::Side::Buy as i32,
            price: 10,
            quantity: 0,
        })),
        signature: Default::default(),
    });
    let (c, m) = code(
        market
            .publish(spb::PublishRequest {
                events: vec![zero.clone()],
            })
            .await
            .map(|_| ()),
    )
    .expect("zero quantity");
    assert_eq!(c, tonic::Code::InvalidArgument, "{m}");
    assert!(m.starts_with("events[0].order.quantity:"), "{m}");
    let unsigned = spb::MarketEvent {
        signature: Default::default(),
        ..zero
    };
    let (c, m) = code(
        market
            .publish(spb::PublishRequest {
                events: vec![unsigned],
            })
            .await
            .map(|_| ()),
    )
    .expect("unsigned");
    assert_eq!(c, tonic::Code::InvalidArgument, "{m}");
    assert!(m.starts_with("events[0].signature:"), "{m}");

    // None of that disturbed the replica: a good request is still ordered.
    let good = vec![market_tx("e2e-after-bad", 0)];
    submit_all(&cluster.ordering_endpoint(0), &good, 1).await?;
    let wanted: HashSet<Vec<u8>> = good.into_iter().collect();
    let committee = committee_of(&cluster);
    batches_until(
        &cluster.ordering_endpoint(1),
        &committee,
        0,
        &wanted,
        COMMIT_TIMEOUT,
    )
    .await?;
    let exited = cluster.reap_exited();
    anyhow::ensure!(exited.is_empty(), "processes exited: {exited:?}");
    cluster.stop_all(Duration::from_secs(10));
    drop(cluster);
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

/// The keystore and the gateway's internal API have no TCP port, their sockets sit in a
/// private directory, and each keystore socket serves only its caller's methods.
async fn outsiders_reach_no_internal_api(dir: &std::path::Path, base: u16) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;

    use beat_proto::keystore::v1::{
        CreateDecryptionSharesRequest, SignCoinSharesRequest, SignHandshakeRequest,
        keystore_service_client::KeystoreServiceClient,
    };
    for i in 0..N {
        // The ports the keystore (base+300+i) and gateway API (base+200+i) used to take.
        for port in [base + 200 + i as u16, base + 300 + i as u16] {
            let open = tokio::net::TcpStream::connect(("127.0.0.1", port)).await;
            anyhow::ensure!(
                open.is_err(),
                "replica {i}: something listens on port {port}"
            );
        }
        let sockets = beat_provision::layout::Sockets::of(dir, i);
        let beat_telemetry::local::ListenAddr::Unix(path) = &sockets.gateway else {
            anyhow::bail!("the gateway API is not on a Unix socket");
        };
        let run = path.parent().expect("socket directory");
        let mode = std::fs::metadata(run)?.permissions().mode() & 0o777;
        anyhow::ensure!(mode == 0o700, "{} has mode {mode:o}", run.display());
        let timeout = Duration::from_secs(5);
        let gateway_side =
            beat_telemetry::local::connect(&sockets.keystore_gateway.endpoint(), timeout).await?;
        let consensus_side =
            beat_telemetry::local::connect(&sockets.keystore_consensus.endpoint(), timeout).await?;
        let mut gateway_side = KeystoreServiceClient::new(gateway_side);
        let mut consensus_side = KeystoreServiceClient::new(consensus_side);
        let denied = gateway_side
            .sign_coin_shares(SignCoinSharesRequest {
                coins: vec![],
                horizon: None,
            })
            .await
            .expect_err("coin shares on the gateway's socket");
        anyhow::ensure!(denied.code() == tonic::Code::PermissionDenied, "{denied}");
        let denied = gateway_side
            .create_decryption_shares(CreateDecryptionSharesRequest {
                epoch: 0,
                items: vec![],
                horizon: None,
            })
            .await
            .expect_err("decryption shares on the gateway's socket");
        anyhow::ensure!(denied.code() == tonic::Code::PermissionDenied, "{denied}");
        let denied = consensus_side
            .sign_handshake(SignHandshakeRequest {
                context: "beat/peer-handshake/v2".into(),
                transcript: Bytes::from(vec![0u8; 32]),
            })
            .await
            .expect_err("handshake signatures on the consensus socket");
        anyhow::ensure!(denied.code() == tonic::Code::PermissionDenied, "{denied}");
        // On its own socket, consensus gets no coin share far past the certified horizon:
        // a compromised consensus process cannot stockpile future coins.
        let refused = consensus_side
            .sign_coin_shares(SignCoinSharesRequest {
                coins: vec![beat_proto::keystore::v1::CoinId {
                    epoch: 1 << 40,
                    instance: 0,
                    round: 2,
                }],
                horizon: None,
            })
            .await
            .expect_err("a coin share far past the signing horizon");
        anyhow::ensure!(
            refused.code() == tonic::Code::FailedPrecondition,
            "{refused}"
        );
    }
    Ok(())
}
