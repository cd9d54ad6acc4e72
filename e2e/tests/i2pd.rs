//! Consensus over a real (private) I2P network of Debian `i2pd` routers: 4 replicas whose
//! gateways reach each other only through I2P, each through the SAM v3.1 bridge of its own
//! router.
//!
//! The network is `e2e/networks/i2pd/i2pdnet.py`: 8 i2pd 2.45.1 routers (3 floodfills, 4 with
//! SAM, 1 plain) in a private network namespace that has only `lo` (i2pd refuses router
//! connections from 127/8; see that directory's README), with the SAM bridges forwarded to
//! 127.0.0.1. `up` returns once every SAM router has a session and streams between them echo;
//! every router dies by itself after `--lifetime`, and the test stops them by process id when
//! it ends, pass or fail.
//!
//! Each replica's destination is created through its bridge with `beat i2p-address`
//! (SIGNATURE_TYPE=7) before the key ceremony, so the committee file carries it. The scenario
//! offers a steady load, reports commit throughput and latency, commits a checked set of
//! transactions everywhere, compares every replica's batches, and reads the gateways' metrics to
//! prove the links are I2P streams.
//!
//! Needs `i2pd` (Debian package; `.ci/run` installs it), `nsenter` and root or unprivileged
//! user namespaces. Without `i2pd` the test prints a loud SKIPPED message and passes.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::Context as _;
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

const N: usize = 4;
/// The cluster's ports (`base + 100·k + i`).
const BASE_PORT: u16 = 44_000;
/// The network's ports: SAM bridges at `+32 + i`, web consoles at `+64 + i` on 127.0.0.1.
const I2PDNET_BASE_PORT: u16 = 29_000;
const COMMIT_TIMEOUT: Duration = Duration::from_secs(300);
/// Offered load; the target over I2P alone is 200 tx/s.
const RATE: u64 = 300;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("networks/i2pd/i2pdnet.py")
}

fn i2pd_installed() -> bool {
    ["/usr/sbin", "/usr/bin"]
        .iter()
        .any(|d| Path::new(d).join("i2pd").is_file())
}

/// A running private i2pd network; dropping it stops every process it started, by PID.
struct I2pdNet {
    dir: PathBuf,
    sam: Vec<String>,
}

impl I2pdNet {
    fn up(dir: &Path) -> anyhow::Result<Self> {
        let started = tokio::time::Instant::now();
        let out = Command::new("timeout")
            .args(["-k", "10", "300", "python3"])
            .arg(script())
            .args(["up", "--sam", "4", "--timeout", "240", "--lifetime", "1800"])
            .arg("--base-port")
            .arg(I2PDNET_BASE_PORT.to_string())
            .arg("--dir")
            .arg(dir)
            .output()
            .context("cannot run e2e/networks/i2pd/i2pdnet.py (python3 and coreutils timeout)")?;
        let mut net = Self {
            dir: dir.to_owned(),
            sam: Vec::new(),
        };
        anyhow::ensure!(
            out.status.success(),
            "i2pdnet.py up failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.join("network.json")).context("i2pdnet.py wrote no network.json")?,
        )?;
        for bridge in json["sam"]
            .as_array()
            .context("network.json has no sam list")?
        {
            let host = bridge["host"].as_str().context("sam host")?;
            let port = bridge["port"].as_u64().context("sam port")?;
            net.sam.push(format!("{host}:{port}"));
        }
        anyhow::ensure!(net.sam.len() >= N, "only {} SAM bridges", net.sam.len());
        eprintln!(
            "private I2P network (i2pd) up in {:.1} s; SAM bridges {:?}",
            started.elapsed().as_secs_f64(),
            net.sam
        );
        Ok(net)
    }
}

impl Drop for I2pdNet {
    fn drop(&mut self) {
        let result = Command::new("timeout")
            .args(["-k", "5", "60", "python3"])
            .arg(script())
            .args(["down", "--grace", "5", "--dir"])
            .arg(&self.dir)
            .output();
        match result {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!(
                "i2pdnet.py down failed ({}): {}",
                o.status,
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => eprintln!("cannot run i2pdnet.py down: {e}"),
        }
    }
}

fn key_file(cluster_dir: &Path, i: usize) -> PathBuf {
    cluster_dir
        .join(format!("replica-{i}"))
        .join("i2p")
        .join("destination.key")
}

/// Creates replica `i`'s destination through its bridge with `beat i2p-address`.
async fn i2p_address(key: &Path, sam: &str) -> anyhow::Result<String> {
    let mut last = String::new();
    for _ in 0..30 {
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
async fn n4_over_a_private_i2pd_network() -> anyhow::Result<()> {
    if !i2pd_installed() {
        eprintln!(
            "\n\
             ******************************************************************************\n\
             *** SKIPPED n4_over_a_private_i2pd_network: no `i2pd` binary in /usr/sbin or   \n\
             *** /usr/bin. Install the Debian package `i2pd` (.ci/run does) to run consensus\n\
             *** over a private I2P network.                                                \n\
             ******************************************************************************\n"
        );
        return Ok(());
    }
    let net_dir = scenario_dir("i2pdnet");
    let net = I2pdNet::up(&net_dir)?;
    let sam = net.sam.clone();

    let dir = scenario_dir("i2pd-only");
    std::fs::create_dir_all(&dir)?;
    let dir = dir.canonicalize()?;
    let mut endpoints = Vec::new();
    for (i, bridge) in sam.iter().take(N).enumerate() {
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
            // One-hop tunnels, three of them each way (fewer leave new sessions unreachable
            // on a network this small; e2e/networks/i2pd/README.md), ECIES and ElGamal.
            for (k, v) in [
                ("inbound.length", "1"),
                ("outbound.length", "1"),
                ("inbound.quantity", "3"),
                ("outbound.quantity", "3"),
                ("i2cp.leaseSetEncType", "4,0"),
            ] {
                c.gateway.i2p.options.insert(k.to_owned(), v.to_owned());
            }
        },
    )));
    let mut cluster = Cluster::prepare(spec)?;
    cluster.start_all()?;
    let result = async {
        cluster.wait_all_ready(Duration::from_secs(120)).await?;
        let pairs = all_pairs(N);
        let took = wait_links(&cluster, "i2p", &pairs, Duration::from_secs(300)).await?;
        eprintln!(
            "i2pd-only: all 12 i2p links up {:.1} s after start",
            took.as_secs_f64()
        );
        let ordering: Vec<String> = (0..N).map(|i| cluster.ordering_endpoint(i)).collect();
        let tracker = AgreementTracker::start(ordering, Vec::new(), 0);
        let report = measure(&cluster, RATE).await?;
        eprintln!("i2pd-only: {}", describe(&report));
        anyhow::ensure!(
            report.submit_errors == 0 && report.measured_committed > 0,
            "load failed: {report:?}"
        );
        checked_commit(&cluster, "i2pd-only", 1_000, COMMIT_TIMEOUT).await?;
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
            "i2pd-only: agreement on {} epochs at all replicas, 1,000 checked transactions in \
             the same order everywhere, i2p traffic on all 12 directed links",
            agreement.batch_epochs_all_agree
        );
        eprintln!(
            "transport mix | committed tx/s | p50 ms | p99 ms\ni2p only (i2pd, 4 replicas) | \
             {:.0} | {:.0} | {:.0}",
            report.throughput_tps, report.latency_ms.p50, report.latency_ms.p99
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
        let _ = std::fs::remove_dir_all(&net_dir);
    } else {
        eprintln!("i2pd-only: logs kept in {}", dir.display());
    }
    result
}
