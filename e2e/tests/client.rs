//! The client library against a 4-replica cluster of processes: a submission fails over past a
//! dead endpoint and a replica that stops, resubmitting the same transactions is idempotent, and
//! a verified watch keeps a gap-free, verified chain while the replica serving it is killed.

use std::{collections::HashSet, time::Duration};

use beat_client::{
    client::{Client, ClientConfig},
    verify::CommitteeInfo,
};
use beat_e2e::{market_tx, scenario_dir};
use beat_provision::layout::Service;
use beat_testkit::cluster::{Cluster, ClusterSpec};
use futures::StreamExt as _;

const N: usize = 4;
const BASE_PORT: u16 = beat_e2e::ports::CLUSTER_A;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_idempotent_resubmission_and_a_watch_that_survives_its_replica()
-> anyhow::Result<()> {
    let dir = scenario_dir("client");
    let mut spec = ClusterSpec::new(&dir, env!("CARGO_BIN_EXE_beat-e2e"));
    beat_e2e::register_market_source(&mut spec);
    spec.replicas = N;
    spec.base_port = BASE_PORT;
    spec.kdf = beat_testkit::cluster::KdfParams::insecure_fast_for_tests();
    spec.services = vec![Service::Keystore, Service::Gateway, Service::Consensus];
    let mut cluster = Cluster::prepare(spec)?;
    cluster.start_all()?;
    cluster.wait_all_ready(Duration::from_secs(60)).await?;

    // Nothing listens on the first endpoint: the client moves on to replica 0.
    let mut config = ClientConfig::new(vec![
        "http://127.0.0.1:1".to_owned(),
        cluster.ordering_endpoint(0),
        cluster.ordering_endpoint(1),
    ]);
    config.backoff_initial = Duration::from_millis(20);
    config.backoff_max = Duration::from_millis(200);
    config.watch_stall = Duration::from_secs(5);
    let mut client = Client::new(config)?;
    let first: Vec<Vec<u8>> = (0..200).map(|k| market_tx("client", k)).collect();
    let submitted = client.submit(&first).await?;
    anyhow::ensure!(
        submitted.attempts >= 2,
        "the dead endpoint was skipped: {submitted:?}"
    );
    anyhow::ensure!(submitted.endpoint == cluster.ordering_endpoint(0));
    // The same transactions again, now at replica 1: one key each, so nothing is ordered twice.
    client.submit(&first).await?;

    // A verified watch from genesis, served by replica 0 first.
    let committee = CommitteeInfo::load(&dir.join("committee.json"))?;
    let mut watch = Box::pin(client.watch(committee, 0));
    let mut seen: Vec<u64> = Vec::new();
    let mut transactions: Vec<Vec<u8>> = Vec::new();
    let mut endpoints = HashSet::new();
    let mut killed = false;
    let wanted: HashSet<Vec<u8>> = first.iter().cloned().collect();
    let second: Vec<Vec<u8>> = (200..400).map(|k| market_tx("client", k)).collect();
    let all: HashSet<Vec<u8>> = first.iter().chain(&second).cloned().collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while transactions.iter().filter(|t| all.contains(*t)).count() < all.len() {
        let item = tokio::time::timeout_at(deadline, watch.next())
            .await
            .map_err(|_| anyhow::anyhow!("watch stalled at {:?}", seen.last()))?
            .ok_or_else(|| anyhow::anyhow!("the watch ended"))?;
        let batch = item?; // no replica here serves anything unverifiable
        seen.push(batch.verified.epoch.0);
        endpoints.insert(batch.endpoint.clone());
        transactions.extend(
            batch
                .verified
                .batch
                .transactions()
                .map(|t| t.as_bytes().to_vec()),
        );
        if !killed && wanted.iter().all(|t| transactions.contains(t)) {
            // Kill the replica the watch follows; submit the rest through the client, which
            // fails over past it too.
            let serving = (0..N)
                .find(|&i| cluster.ordering_endpoint(i) == batch.endpoint)
                .expect("a cluster endpoint");
            cluster.kill(serving, Service::Consensus)?;
            killed = true;
            client.submit(&second).await?;
        }
    }
    anyhow::ensure!(killed && endpoints.len() >= 2, "served by {endpoints:?}");
    // Gap-free and in order across the switch, and every transaction committed once.
    anyhow::ensure!(
        seen.windows(2).all(|w| w[1] == w[0] + 1) && seen.first() == Some(&0),
        "epochs {seen:?}"
    );
    let ours: Vec<&Vec<u8>> = transactions.iter().filter(|t| all.contains(*t)).collect();
    let distinct: HashSet<&Vec<u8>> = ours.iter().copied().collect();
    anyhow::ensure!(
        ours.len() == distinct.len() && distinct.len() == all.len(),
        "{} of ours committed, {} distinct, {} submitted",
        ours.len(),
        distinct.len(),
        all.len()
    );
    cluster.stop_all(Duration::from_secs(5));
    Ok(())
}
