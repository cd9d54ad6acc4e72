//! Consensus over a real (private) Tor network: 4 replicas whose gateways run embedded arti
//! clients and onion services on a network of Debian `tor` daemons on loopback
//! (`e2e/networks/tor/tornet.py`: 3 directory authorities, 5 relays).
//!
//! 1. Tor only: no replica has TCP; every peer link is an arti → onion-service stream.
//! 2. Mixed: replica 3 runs Tor only and lists only its onion address; replicas 0–2 run TCP
//!    and Tor side by side (fan-out on both).
//! 3. Censorship: every replica runs TCP and Tor under a steady load. Clearnet is cut for every
//!    replica (iptables DROP on the peer ports): consensus goes on over Tor. Tor is cut too
//!    (DROP on every relay and authority port): no progress and no divergence, while the
//!    replicas still acknowledge new transactions. Both restored: progress resumes and every
//!    transaction acknowledged during the cut is committed everywhere, in one order. Needs
//!    root for iptables; without it this scenario prints a loud SKIPPED message.
//!
//! Each scenario offers a steady load and reports commit throughput and latency, then commits
//! a checked set of transactions everywhere, compares every replica's batches, and reads the
//! gateways' metrics to prove the links crossed Tor. The network comes up from the test,
//! bounded in time (`tornet.py up --timeout`, and every tor process dies after `--lifetime`
//! even if this test is killed), and goes down by process id when the test ends, pass or fail.
//!
//! Needs the `tor` binary (Debian package `tor`; `.ci/run` installs it). Without it the test
//! prints a loud SKIPPED message and passes.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::Context as _;
use beat_cli::{
    bench::LoadReport,
    cluster::{Cluster, ClusterSpec, Configure, KdfParams, ReplicaConfigs},
    layout::Service,
    monitor::AgreementTracker,
};
use beat_config::Endpoints;
use beat_e2e::{
    committed_everywhere, epochs,
    firewall::Cut,
    market_tx, scenario_dir, submit_spread,
    transports::{
        all_pairs, checked_commit, describe, expect_traffic, measure, per_peer, wait_links,
    },
};

const N: usize = 4;
const TORNET_BASE_PORT: u16 = 31_000;
const COMMIT_TIMEOUT: Duration = Duration::from_secs(240);
/// Offered load; the target over Tor alone is 500 tx/s.
const RATE: u64 = 600;

/// The directories that hold `tor` on Debian, besides `PATH` (`/usr/sbin` is not on every
/// user's `PATH`).
const TOR_DIRS: [&str; 2] = ["/usr/sbin", "/usr/bin"];

fn search_path() -> String {
    let mut path = std::env::var("PATH").unwrap_or_default();
    for d in TOR_DIRS {
        path.push(':');
        path.push_str(d);
    }
    path
}

fn tor_installed() -> bool {
    std::env::split_paths(&search_path())
        .any(|d| d.join("tor").is_file() && d.join("tor-gencert").is_file())
}

fn tornet_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("networks/tor/tornet.py")
}

/// A running private Tor network; dropping it stops every tor process it started, by PID.
struct TorNet {
    dir: PathBuf,
    arti_toml: PathBuf,
}

impl TorNet {
    fn up(dir: &Path) -> anyhow::Result<Self> {
        let started = tokio::time::Instant::now();
        // `timeout` bounds the harness itself; tornet.py bounds the wait for a usable network
        // (and stops what it started if it gives up), and `--lifetime` bounds every tor.
        let out = Command::new("timeout")
            .args(["-k", "10", "240", "python3"])
            .arg(tornet_script())
            .args(["up", "--fresh", "--no-client", "--timeout", "180"])
            .args(["--lifetime", "1800", "--base-port"])
            .arg(TORNET_BASE_PORT.to_string())
            .arg("--dir")
            .arg(dir)
            .env("PATH", search_path())
            .output()
            .context("cannot run e2e/networks/tor/tornet.py (python3 and coreutils timeout)")?;
        // From here on the network may be partly up: let Drop take it down whatever happens.
        let net = Self {
            dir: dir.to_owned(),
            arti_toml: dir.join("arti.toml"),
        };
        anyhow::ensure!(
            out.status.success(),
            "tornet.py up failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        anyhow::ensure!(
            net.arti_toml.is_file(),
            "tornet.py wrote no {}",
            net.arti_toml.display()
        );
        eprintln!(
            "private Tor network up in {:.1} s: {}",
            started.elapsed().as_secs_f64(),
            String::from_utf8_lossy(&out.stdout).trim()
        );
        Ok(net)
    }
}

impl Drop for TorNet {
    fn drop(&mut self) {
        let result = Command::new("timeout")
            .args(["-k", "5", "60", "python3"])
            .arg(tornet_script())
            .args(["down", "--grace", "5", "--dir"])
            .arg(&self.dir)
            .env("PATH", search_path())
            .output();
        match result {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!(
                "tornet.py down failed ({}): {}",
                o.status,
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => eprintln!("cannot run tornet.py down: {e}"),
        }
    }
}

/// Which transports a replica runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mix {
    TorOnly,
    TcpAndTor,
}

fn tor_dir(cluster_dir: &Path, i: usize) -> PathBuf {
    cluster_dir.join(format!("replica-{i}")).join("tor")
}

/// Creates replica `i`'s onion-service identity with `beat tor-address` and returns the
/// endpoint it prints.
fn tor_address(cluster_dir: &Path, i: usize, arti_toml: &Path) -> anyhow::Result<String> {
    let dir = tor_dir(cluster_dir, i);
    std::fs::create_dir_all(&dir)?;
    let out = Command::new(env!("CARGO_BIN_EXE_beat-e2e"))
        .arg("tor-address")
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .arg("--arti-config")
        .arg(arti_toml)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "beat tor-address failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let endpoint = String::from_utf8(out.stdout)?.trim().to_owned();
    anyhow::ensure!(
        endpoint.ends_with(".onion:7000"),
        "unexpected endpoint {endpoint:?}"
    );
    Ok(endpoint)
}

fn spec(
    name: &str,
    base_port: u16,
    mixes: [Mix; N],
    arti_toml: &Path,
) -> anyhow::Result<ClusterSpec> {
    let dir = scenario_dir(name);
    std::fs::create_dir_all(&dir)?;
    let dir = dir.canonicalize()?;
    let mut spec = ClusterSpec::new(&dir, env!("CARGO_BIN_EXE_beat-e2e"));
    spec.replicas = N;
    spec.base_port = base_port;
    spec.params.batch_size = 3000;
    spec.kdf = KdfParams::insecure_fast_for_tests();
    spec.services = vec![Service::Keystore, Service::Gateway, Service::Consensus];
    spec.log_filter =
        "info,sled=warn,h2=warn,tower=warn,hyper=warn,actix_server=warn,tor_=warn,arti_=warn"
            .into();
    let mut endpoints = Vec::new();
    for (i, mix) in mixes.iter().enumerate() {
        let tor = tor_address(&dir, i, arti_toml)?;
        endpoints.push(Endpoints {
            tcp: (*mix == Mix::TcpAndTor).then(|| format!("127.0.0.1:{}", base_port + i as u16)),
            tor: Some(tor),
            i2p: None,
        });
    }
    spec.endpoints = Some(endpoints);
    let (cluster_dir, arti_toml) = (dir, arti_toml.to_owned());
    spec.configure = Some(Configure(std::sync::Arc::new(
        move |i: usize, c: &mut ReplicaConfigs| {
            let tor = tor_dir(&cluster_dir, i);
            c.gateway.tcp.enabled = mixes[i] == Mix::TcpAndTor;
            c.gateway.tor.enabled = true;
            c.gateway.tor.state_dir = tor.join("state");
            c.gateway.tor.cache_dir = tor.join("cache");
            c.gateway.tor.arti_config = Some(arti_toml.clone());
        },
    )));
    Ok(spec)
}

/// Runs one scenario on a fresh cluster; returns the load report.
async fn scenario(
    name: &str,
    base_port: u16,
    mixes: [Mix; N],
    net: &TorNet,
) -> anyhow::Result<LoadReport> {
    let spec = spec(name, base_port, mixes, &net.arti_toml)?;
    let dir = spec.dir.clone();
    let mut cluster = Cluster::prepare(spec)?;
    cluster.start_all()?;
    let result = async {
        cluster.wait_all_ready(Duration::from_secs(60)).await?;
        // Every replica dials every other over Tor (replica 3's peers reach it only there).
        let all_pairs = all_pairs(N);
        let took = wait_links(&cluster, "tor", &all_pairs, Duration::from_secs(180)).await?;
        eprintln!(
            "{name}: all 12 tor links up {:.1} s after start",
            took.as_secs_f64()
        );
        let ordering: Vec<String> = (0..N).map(|i| cluster.ordering_endpoint(i)).collect();
        let tracker = AgreementTracker::start(ordering, Vec::new(), 0);
        let report = measure(&cluster, RATE).await?;
        eprintln!("{name}: {}", describe(&report));
        anyhow::ensure!(
            report.submit_errors == 0 && report.measured_committed > 0,
            "load failed: {report:?}"
        );
        checked_commit(&cluster, name, 2_000, COMMIT_TIMEOUT).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let agreement = tracker.stop();
        anyhow::ensure!(
            agreement.divergences.is_empty(),
            "divergences: {:?}",
            agreement.divergences
        );
        anyhow::ensure!(
            agreement.batch_epochs_all_agree > 0,
            "no epoch reported identically by all replicas: {agreement:?}"
        );
        expect_traffic(&cluster, "tor", &all_pairs).await?;
        for (i, mix) in mixes.iter().enumerate() {
            let tcp = per_peer(&cluster, i, "beat_gateway_bytes_sent_total", "tcp").await?;
            let tcp_bytes: f64 = tcp.iter().map(|(_, v)| v).sum();
            match mix {
                Mix::TorOnly => anyhow::ensure!(
                    tcp.is_empty(),
                    "replica {i} runs Tor only but reports tcp traffic {tcp:?}"
                ),
                // A TCP+Tor replica also sent to the others that have TCP, never to a
                // Tor-only one.
                Mix::TcpAndTor => {
                    anyhow::ensure!(tcp_bytes > 0.0, "replica {i} sent nothing over tcp");
                    for (p, v) in &tcp {
                        anyhow::ensure!(
                            mixes[*p] == Mix::TcpAndTor || *v == 0.0,
                            "replica {i} sent {v} bytes over tcp to Tor-only replica {p}"
                        );
                    }
                }
            }
        }
        eprintln!(
            "{name}: agreement on {} epochs at all replicas, 2,000 checked transactions in the \
             same order everywhere, tor traffic on all 12 directed links",
            agreement.batch_epochs_all_agree
        );
        let exited = cluster.reap_exited();
        anyhow::ensure!(exited.is_empty(), "processes exited: {exited:?}");
        Ok(report)
    }
    .await;
    cluster.stop_all(Duration::from_secs(10));
    drop(cluster);
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(dir);
    } else {
        eprintln!("{name}: logs kept in {}", dir.display());
    }
    result
}

/// Sum over peers of a gateway's per-transport counter, per replica.
async fn totals(cluster: &Cluster, metric: &str, transport: &str) -> anyhow::Result<Vec<f64>> {
    let mut out = Vec::new();
    for i in 0..cluster.n() {
        out.push(
            per_peer(cluster, i, metric, transport)
                .await?
                .iter()
                .map(|(_, v)| v)
                .sum(),
        );
    }
    Ok(out)
}

/// Waits until no replica reports a `transport` link up.
async fn wait_links_down(
    cluster: &Cluster,
    transport: &str,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    let started = tokio::time::Instant::now();
    loop {
        let up: f64 = totals(cluster, "beat_gateway_link_up", transport)
            .await?
            .iter()
            .sum();
        if up == 0.0 {
            return Ok(started.elapsed());
        }
        anyhow::ensure!(
            started.elapsed() < timeout,
            "{up} {transport} links still up {timeout:?} after the cut"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// What the censorship scenario measured.
struct Censorship {
    all_up: LoadReport,
    clearnet_cut: LoadReport,
    restored: LoadReport,
    links_down_after: Duration,
    recovered_after: Duration,
}

/// Scenario 3 (see the module documentation).
async fn censorship(net: &TorNet) -> anyhow::Result<Censorship> {
    const BASE: u16 = 41_000;
    let name = "censorship";
    let spec = spec(name, BASE, [Mix::TcpAndTor; N], &net.arti_toml)?;
    let dir = spec.dir.clone();
    let mut cluster = Cluster::prepare(spec)?;
    cluster.start_all()?;
    let result = async {
        cluster.wait_all_ready(Duration::from_secs(60)).await?;
        let pairs = all_pairs(N);
        wait_links(&cluster, "tcp", &pairs, Duration::from_secs(60)).await?;
        let took = wait_links(&cluster, "tor", &pairs, Duration::from_secs(180)).await?;
        eprintln!(
            "{name}: tcp and tor links up ({:.1} s for tor)",
            took.as_secs_f64()
        );
        let ordering: Vec<String> = (0..N).map(|i| cluster.ordering_endpoint(i)).collect();
        let tracker = AgreementTracker::start(ordering.clone(), Vec::new(), 0);

        let all_up = measure(&cluster, RATE).await?;
        eprintln!("{name}: all transports up: {}", describe(&all_up));

        // 1. The censor blocks clearnet (the peer ports) for everyone.
        let clearnet = Cut::ports("clearnet", BASE, BASE + N as u16 - 1)?;
        let tor_before = totals(&cluster, "beat_gateway_bytes_received_total", "tor").await?;
        let clearnet_cut = measure(&cluster, RATE).await?;
        eprintln!("{name}: clearnet cut: {}", describe(&clearnet_cut));
        anyhow::ensure!(
            clearnet_cut.submit_errors == 0 && clearnet_cut.throughput_tps > 0.5 * RATE as f64,
            "consensus did not go on over Tor with clearnet cut: {clearnet_cut:?}"
        );
        let tor_after = totals(&cluster, "beat_gateway_bytes_received_total", "tor").await?;
        for i in 0..N {
            anyhow::ensure!(
                tor_after[i] > tor_before[i],
                "replica {i} received nothing over tor while clearnet was cut"
            );
        }
        let links_down_after = wait_links_down(&cluster, "tcp", Duration::from_secs(60)).await?;
        eprintln!(
            "{name}: every tcp link reported down {:.1} s after the cut measurement",
            links_down_after.as_secs_f64()
        );

        // 2. Tor too: every relay and authority port (tornet: OR ports base.., dir ports
        //    base+32..).
        let tor = Cut::ports("tor", TORNET_BASE_PORT, TORNET_BASE_PORT + 63)?;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let stalled_at = epochs(&ordering).await?;
        let during: Vec<Vec<u8>> = (0..400).map(|k| market_tx("during-cut", k)).collect();
        // Acknowledged although nothing can be ordered now.
        submit_spread(&ordering, &during, 100).await?;
        tokio::time::sleep(Duration::from_secs(20)).await;
        let still = epochs(&ordering).await?;
        anyhow::ensure!(
            still == stalled_at,
            "progress with every transport cut: epochs {stalled_at:?} -> {still:?}"
        );
        eprintln!("{name}: every transport cut: epochs stay at {still:?} for 20 s");

        // 3. Both restored.
        let restored_at = tokio::time::Instant::now();
        tor.restore();
        clearnet.restore();
        let from = still.iter().copied().min().unwrap_or(0);
        committed_everywhere(&ordering, from, &during, COMMIT_TIMEOUT).await?;
        let recovered_after = restored_at.elapsed();
        eprintln!(
            "{name}: restored; the 400 transactions acknowledged during the cut committed \
             everywhere in one order {:.1} s later",
            recovered_after.as_secs_f64()
        );
        let restored = measure(&cluster, RATE).await?;
        eprintln!("{name}: restored: {}", describe(&restored));
        tokio::time::sleep(Duration::from_secs(1)).await;
        let agreement = tracker.stop();
        anyhow::ensure!(
            agreement.divergences.is_empty(),
            "divergences: {:?}",
            agreement.divergences
        );
        let exited = cluster.reap_exited();
        anyhow::ensure!(exited.is_empty(), "processes exited: {exited:?}");
        Ok(Censorship {
            all_up,
            clearnet_cut,
            restored,
            links_down_after,
            recovered_after,
        })
    }
    .await;
    cluster.stop_all(Duration::from_secs(10));
    drop(cluster);
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(dir);
    } else {
        eprintln!("{name}: logs kept in {}", dir.display());
    }
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n4_over_a_private_tor_network() -> anyhow::Result<()> {
    if !tor_installed() {
        eprintln!(
            "\n\
             ******************************************************************************\n\
             *** SKIPPED n4_over_a_private_tor_network: no `tor`/`tor-gencert` binary in   \n\
             *** PATH, /usr/sbin or /usr/bin. Install the Debian package `tor` (.ci/run     \n\
             *** does) to run consensus over a private Tor network.                         \n\
             ******************************************************************************\n"
        );
        return Ok(());
    }
    let net_dir = scenario_dir("tornet");
    let net = TorNet::up(&net_dir)?;
    let tor_only = scenario(
        "tor-only",
        32_000,
        [Mix::TorOnly, Mix::TorOnly, Mix::TorOnly, Mix::TorOnly],
        &net,
    )
    .await?;
    let mixed = scenario(
        "tor-mixed",
        35_000,
        [Mix::TcpAndTor, Mix::TcpAndTor, Mix::TcpAndTor, Mix::TorOnly],
        &net,
    )
    .await?;
    let censored = match Cut::available() {
        Ok(()) => Some(censorship(&net).await?),
        Err(why) => {
            eprintln!(
                "\n\
                 ******************************************************************************\n\
                 *** SKIPPED the censorship scenario: {why}\n\
                 *** It needs root and iptables to cut clearnet and Tor on loopback.\n\
                 ******************************************************************************\n"
            );
            None
        }
    };
    let mut rows = vec![
        ("tor only (4 replicas)", &tor_only),
        ("tcp+tor, replica 3 tor only", &mixed),
    ];
    if let Some(c) = &censored {
        rows.push(("tcp+tor, all transports up", &c.all_up));
        rows.push(("tcp+tor, clearnet cut", &c.clearnet_cut));
        rows.push(("tcp+tor, after both restored", &c.restored));
        eprintln!(
            "censorship: tcp links seen down {:.1} s after the clearnet measurement; \
             recovery from the full cut {:.1} s",
            c.links_down_after.as_secs_f64(),
            c.recovered_after.as_secs_f64()
        );
    }
    eprintln!("transport mix                     | committed tx/s | p50 ms | p99 ms");
    for (label, r) in rows {
        eprintln!(
            "{label:<33} | {:>14.0} | {:>6.0} | {:>6.0}",
            r.throughput_tps, r.latency_ms.p50, r.latency_ms.p99
        );
    }
    drop(net);
    let _ = std::fs::remove_dir_all(net_dir);
    Ok(())
}
