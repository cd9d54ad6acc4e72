//! Consensus over a real (private) I2P network: 4 replicas whose gateways reach each other only
//! through I2P, each through its own SAM v3 bridge on its own router.
//!
//! The network is `beat-i2pnet` (e2e/networks/i2p): emissary routers in this test process on
//! loopback with a random network ID — floodfills, relays and one SAM router per replica.
//! Every replica's destination is created through its bridge with `beat i2p-address`
//! (SIGNATURE_TYPE=7) before the key ceremony, so the committee file carries it. The scenario
//! offers a steady load, reports commit throughput and latency, commits a checked set of
//! transactions everywhere, compares every replica's batches, and reads the gateways' metrics
//! to prove the links are I2P streams. The routers stop when the test ends, pass or fail.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use beat_cli::{
    cluster::{Cluster, ClusterSpec, Configure, KdfParams, ReplicaConfigs},
    layout::Service,
    monitor::AgreementTracker,
};
use beat_config::Endpoints;
use beat_e2e::{
    scenario_dir,
    transports::{
        all_pairs, checked_commit, describe, expect_traffic, measure, per_peer, wait_links,
    },
};
use beat_i2pnet::{I2pNet, Shape};

const N: usize = 4;
const BASE_PORT: u16 = 38_000;
const COMMIT_TIMEOUT: Duration = Duration::from_secs(300);
/// Offered load; the target over I2P alone is 200 tx/s.
const RATE: u64 = 300;

fn key_file(cluster_dir: &Path, i: usize) -> PathBuf {
    cluster_dir
        .join(format!("replica-{i}"))
        .join("i2p")
        .join("destination.key")
}

/// Creates replica `i`'s destination through its bridge with `beat i2p-address`, retrying
/// while the young network cannot answer yet.
async fn i2p_address(key: &Path, sam: &str) -> anyhow::Result<String> {
    let mut last = String::new();
    for _ in 0..60 {
        let out = Command::new(env!("CARGO_BIN_EXE_beat-e2e"))
            .arg("i2p-address")
            .arg("--sam")
            .arg(sam)
            .arg("--key-file")
            .arg(key)
            .output()?;
        if out.status.success() {
            return Ok(String::from_utf8(out.stdout)?.trim().to_owned());
        }
        last = String::from_utf8_lossy(&out.stderr).into_owned();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    anyhow::bail!("beat i2p-address against {sam} kept failing: {last}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fails today: on the emissary 0.4 network all 12 I2P links come up in ~20 s and 4 \
            epochs commit, then the streams stall (links dropped after 20 s without traffic) and \
            progress stops; run with --ignored, see docs/transports.md (the same scenario on \
            i2pd, tests/i2pd.rs, passes)"]
async fn n4_over_a_private_i2p_network() -> anyhow::Result<()> {
    let net_id = 0x40 | (std::process::id() % 0x3f) as u8;
    let net = I2pNet::start(
        Shape {
            floodfills: 2,
            relays: 3,
            sam_routers: N,
        },
        net_id,
    )
    .await?;
    let sam: Vec<String> = net
        .sam_endpoints()
        .iter()
        .map(ToString::to_string)
        .collect();
    eprintln!("private I2P network (net id {net_id}) started; SAM bridges {sam:?}");

    let dir = scenario_dir("i2p-only");
    std::fs::create_dir_all(&dir)?;
    let dir = dir.canonicalize()?;
    let mut endpoints = Vec::new();
    for (i, bridge) in sam.iter().enumerate() {
        let destination = i2p_address(&key_file(&dir, i), bridge).await?;
        endpoints.push(Endpoints {
            tcp: None,
            tor: None,
            i2p: Some(destination),
        });
    }
    let mut spec = ClusterSpec::new(&dir, env!("CARGO_BIN_EXE_beat-e2e"));
    spec.replicas = N;
    spec.base_port = BASE_PORT;
    spec.params.batch_size = 1000;
    spec.kdf = KdfParams::insecure_fast_for_tests();
    spec.services = vec![Service::Keystore, Service::Gateway, Service::Consensus];
    spec.endpoints = Some(endpoints);
    let cluster_dir = dir.clone();
    spec.configure = Some(Configure(std::sync::Arc::new(
        move |i: usize, c: &mut ReplicaConfigs| {
            c.gateway.tcp.enabled = false;
            c.gateway.i2p.enabled = true;
            c.gateway.i2p.sam = sam[i].clone();
            c.gateway.i2p.key_file = key_file(&cluster_dir, i);
        },
    )));
    let mut cluster = Cluster::prepare(spec)?;
    cluster.start_all()?;
    let result = async {
        cluster.wait_all_ready(Duration::from_secs(60)).await?;
        let pairs = all_pairs(N);
        let took = wait_links(&cluster, "i2p", &pairs, Duration::from_secs(300)).await?;
        eprintln!(
            "i2p-only: all 12 i2p links up {:.1} s after start",
            took.as_secs_f64()
        );
        let ordering: Vec<String> = (0..N).map(|i| cluster.ordering_endpoint(i)).collect();
        let tracker = AgreementTracker::start(ordering, Vec::new(), 0);
        let report = measure(&cluster, RATE).await?;
        eprintln!("i2p-only: {}", describe(&report));
        anyhow::ensure!(
            report.submit_errors == 0 && report.measured_committed > 0,
            "load failed: {report:?}"
        );
        checked_commit(&cluster, "i2p-only", 1_000, COMMIT_TIMEOUT).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let agreement = tracker.stop();
        anyhow::ensure!(
            agreement.divergences.is_empty() && agreement.batch_epochs_all_agree > 0,
            "agreement: {agreement:?}"
        );
        expect_traffic(&cluster, "i2p", &pairs).await?;
        for i in 0..N {
            let tcp = per_peer(&cluster, i, "beat_gateway_bytes_sent_total", "tcp").await?;
            anyhow::ensure!(tcp.is_empty(), "replica {i} reports tcp traffic {tcp:?}");
        }
        eprintln!(
            "i2p-only: agreement on {} epochs at all replicas, 1,000 checked transactions in \
             the same order everywhere, i2p traffic on all 12 directed links",
            agreement.batch_epochs_all_agree
        );
        let exited = cluster.reap_exited();
        anyhow::ensure!(exited.is_empty(), "processes exited: {exited:?}");
        Ok(())
    }
    .await;
    cluster.stop_all(Duration::from_secs(10));
    drop(cluster);
    drop(net);
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!("i2p-only: logs kept in {}", dir.display());
    }
    result
}
