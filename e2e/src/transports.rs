//! Helpers for the transport scenarios (`tests/tor.rs`, `tests/i2pd.rs`, `tests/i2p.rs`,
//! `tests/censorship.rs`): a cluster whose replicas run chosen transport mixes, gateway metrics
//! per peer and transport, waiting for links, a measured load, a checked commit with agreement,
//! and the steady-load scenario they share.

use std::{
    collections::HashSet,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::Context as _;
use beat_cli::bench::{LoadOptions, LoadReport, run_load};
use beat_config::Endpoints;
use beat_provision::layout::Service;
use beat_testkit::{
    cluster::{Cluster, ClusterSpec, Configure, KdfParams, ReplicaConfigs},
    monitor::AgreementTracker,
};

use crate::{
    batches_until, check_same_order, committee_of, market_tx,
    networks::{i2p_address, tor_address},
    scenario_dir, submit_all,
};

/// Which transports a replica runs, and lists in the committee file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mix {
    /// Clearnet TCP links.
    pub tcp: bool,
    /// Tor: an onion service for inbound, arti circuits for outbound.
    pub tor: bool,
    /// I2P: a SAM v3 STREAM session on the replica's own SAM bridge.
    pub i2p: bool,
}

impl Mix {
    /// Tor only.
    pub const TOR: Self = Self {
        tcp: false,
        tor: true,
        i2p: false,
    };
    /// I2P only.
    pub const I2P: Self = Self {
        tcp: false,
        tor: false,
        i2p: true,
    };
    /// All three transports at once.
    pub const ALL: Self = Self {
        tcp: true,
        tor: true,
        i2p: true,
    };

    /// Whether the replica runs `transport` (`"tcp"`, `"tor"` or `"i2p"`, the metrics' label).
    pub fn has(self, transport: &str) -> bool {
        match transport {
            "tcp" => self.tcp,
            "tor" => self.tor,
            "i2p" => self.i2p,
            _ => false,
        }
    }
}

/// The transport labels of the gateway's metrics.
pub const TRANSPORTS: [&str; 3] = ["tcp", "tor", "i2p"];

/// SAM session options for the private i2pd network: one-hop tunnels, three of them each way
/// (fewer leave new sessions unreachable on a network this small; e2e/networks/i2pd/README.md),
/// ECIES and ElGamal LeaseSets.
pub const I2PD_SESSION_OPTIONS: [(&str, &str); 5] = [
    ("inbound.length", "1"),
    ("outbound.length", "1"),
    ("inbound.quantity", "3"),
    ("outbound.quantity", "3"),
    ("i2cp.leaseSetEncType", "4,0"),
];

/// The I2P side of a transport cluster: replica `i` uses bridge `sam[i]`.
pub struct I2pSetup<'a> {
    /// SAM bridge addresses (`host:port`), one per replica.
    pub sam: &'a [String],
    /// Extra SAM session options (tunnel lengths and counts) for every replica.
    pub options: &'a [(&'a str, &'a str)],
}

fn tor_dir(cluster_dir: &Path, i: usize) -> PathBuf {
    cluster_dir.join(format!("replica-{i}")).join("tor")
}

fn i2p_key(cluster_dir: &Path, i: usize) -> PathBuf {
    cluster_dir
        .join(format!("replica-{i}"))
        .join("i2p")
        .join("destination.key")
}

/// A cluster spec (in a fresh scenario directory `name`) whose replica `i` runs `mixes[i]`:
/// onion identities and I2P destinations are created first, so the committee file lists every
/// transport a replica runs and only those. Keystore, gateway and consensus services; the
/// caller may adjust the rest (batch size, log filter) before preparing it.
pub async fn transport_spec(
    beat: &Path,
    name: &str,
    base_port: u16,
    mixes: &[Mix],
    arti_toml: Option<&Path>,
    i2p: Option<I2pSetup<'_>>,
) -> anyhow::Result<ClusterSpec> {
    let dir = scenario_dir(name);
    std::fs::create_dir_all(&dir)?;
    let dir = dir.canonicalize()?;
    let mut endpoints = Vec::new();
    for (i, mix) in mixes.iter().enumerate() {
        let tor = match (mix.tor, arti_toml) {
            (false, _) => None,
            (true, Some(arti)) => Some(tor_address(beat, &tor_dir(&dir, i), arti)?),
            (true, None) => anyhow::bail!("replica {i} runs Tor but there is no Tor network"),
        };
        let i2p_endpoint = match (mix.i2p, &i2p) {
            (false, _) => None,
            (true, Some(setup)) => {
                let sam = setup
                    .sam
                    .get(i)
                    .context("fewer SAM bridges than replicas")?;
                Some(i2p_address(beat, &i2p_key(&dir, i), sam, 60).await?)
            }
            (true, None) => anyhow::bail!("replica {i} runs I2P but there is no I2P network"),
        };
        endpoints.push(Endpoints {
            tcp: mix
                .tcp
                .then(|| format!("127.0.0.1:{}", base_port + i as u16)),
            tor,
            i2p: i2p_endpoint,
        });
    }
    let mut spec = ClusterSpec::new(&dir, beat);
    crate::register_market_source(&mut spec);
    spec.replicas = mixes.len();
    spec.base_port = base_port;
    spec.kdf = KdfParams::insecure_fast_for_tests();
    spec.services = vec![Service::Keystore, Service::Gateway, Service::Consensus];
    spec.log_filter =
        "info,sled=warn,h2=warn,tower=warn,hyper=warn,actix_server=warn,tor_=warn,arti_=warn"
            .into();
    spec.endpoints = Some(endpoints);
    let mixes = mixes.to_vec();
    let arti_toml = arti_toml.map(Path::to_owned);
    let sam: Vec<String> = i2p.as_ref().map(|s| s.sam.to_vec()).unwrap_or_default();
    let options: Vec<(String, String)> = i2p
        .as_ref()
        .map(|s| {
            s.options
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        })
        .unwrap_or_default();
    spec.configure = Some(Configure(Arc::new(
        move |i: usize, c: &mut ReplicaConfigs| {
            let mix = mixes[i];
            c.gateway.tcp.enabled = mix.tcp;
            c.gateway.tor.enabled = mix.tor;
            if let (true, Some(arti)) = (mix.tor, &arti_toml) {
                let tor = tor_dir(&dir, i);
                c.gateway.tor.state_dir = tor.join("state");
                c.gateway.tor.cache_dir = tor.join("cache");
                c.gateway.tor.arti_config = Some(arti.clone());
            }
            c.gateway.i2p.enabled = mix.i2p;
            if mix.i2p {
                c.gateway.i2p.sam = sam[i].clone();
                c.gateway.i2p.key_file = i2p_key(&dir, i);
                for (k, v) in &options {
                    c.gateway.i2p.options.insert(k.clone(), v.clone());
                }
            }
        },
    )));
    Ok(spec)
}

/// Puts replica `replica` of a [`transport_spec`] behind an operator's own tor, the gateway's
/// external mode: its committee endpoint becomes the C tor client's first onion service, it
/// dials through that client's SOCKS5 port, and it listens on `listen`, where the client
/// forwards the onion service (`HiddenServicePort`). The other replicas keep embedded arti.
pub fn behind_external_tor(
    spec: &mut ClusterSpec,
    replica: usize,
    client: &crate::networks::TorClient,
    listen: SocketAddr,
) -> anyhow::Result<()> {
    let onion = client
        .onions
        .first()
        .context("the C tor client has no onion service")?
        .clone();
    let endpoints = spec.endpoints.as_mut().context("no endpoints")?;
    endpoints.get_mut(replica).context("no such replica")?.tor = Some(onion);
    let embedded = spec
        .configure
        .take()
        .context("no transport configuration")?;
    let socks = client.socks.clone();
    spec.configure = Some(Configure(Arc::new(move |i, c| {
        (embedded.0)(i, c);
        if i == replica {
            c.gateway.tor.socks5 = Some(socks.clone());
            c.gateway.tor.listen = Some(listen);
        }
    })));
    Ok(())
}

/// The ordered pairs `(replica, peer)` that both run `transport`.
pub fn pairs_over(mixes: &[Mix], transport: &str) -> Vec<(usize, usize)> {
    all_pairs(mixes.len())
        .into_iter()
        .filter(|&(i, p)| mixes[i].has(transport) && mixes[p].has(transport))
        .collect()
}

/// Starts the cluster of `spec`, runs `body` on it, stops it, and removes its directory when
/// `body` succeeded (keeps it, and says where, when not).
pub async fn with_cluster<T>(
    spec: ClusterSpec,
    body: impl AsyncFnOnce(&mut Cluster) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let dir = spec.dir.clone();
    let mut cluster = Cluster::prepare(spec)?;
    cluster.start_all()?;
    let result = body(&mut cluster).await;
    cluster.stop_all(Duration::from_secs(10));
    drop(cluster);
    match &result {
        Ok(_) => {
            let _ = std::fs::remove_dir_all(&dir);
        }
        Err(_) => eprintln!("logs kept in {}", dir.display()),
    }
    result
}

/// The steady-load scenario every transport mix runs: waits until every link the mixes allow
/// is up (`links_timeout` for the slowest transport), offers `rate` tx/s ([`measure`]),
/// commits `checked` transactions everywhere in one order ([`checked_commit`]), checks that
/// no replica diverged and that every link carried traffic over every transport both ends run
/// and none over a transport either end lacks, and that no process exited.
pub async fn steady(
    cluster: &mut Cluster,
    name: &str,
    mixes: &[Mix],
    rate: u64,
    checked: u64,
    links_timeout: Duration,
    commit_timeout: Duration,
) -> anyhow::Result<LoadReport> {
    cluster.wait_all_ready(Duration::from_secs(120)).await?;
    for transport in TRANSPORTS {
        let pairs = pairs_over(mixes, transport);
        if pairs.is_empty() {
            continue;
        }
        let took = wait_links(cluster, transport, &pairs, links_timeout).await?;
        eprintln!(
            "{name}: {} {transport} links up {:.1} s after start",
            pairs.len(),
            took.as_secs_f64()
        );
    }
    let ordering: Vec<String> = (0..cluster.n())
        .map(|i| cluster.ordering_endpoint(i))
        .collect();
    let tracker = AgreementTracker::start(ordering, Vec::new(), 0, cluster.client_auth());
    let report = measure(cluster, rate).await?;
    eprintln!("{name}: {}", describe(&report));
    anyhow::ensure!(
        report.submit_errors == 0 && report.measured_committed > 0,
        "load failed: {report:?}"
    );
    checked_commit(cluster, name, checked, commit_timeout).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let agreement = tracker.stop();
    anyhow::ensure!(
        agreement.divergences.is_empty() && agreement.batch_epochs_all_agree > 0,
        "agreement: {agreement:?}"
    );
    expect_transports(cluster, mixes).await?;
    eprintln!(
        "{name}: agreement on {} epochs at all replicas, {checked} checked transactions in the \
         same order everywhere, traffic on every link over every transport both ends run",
        agreement.batch_epochs_all_agree
    );
    let exited = cluster.reap_exited();
    anyhow::ensure!(exited.is_empty(), "processes exited: {exited:?}");
    Ok(report)
}

/// Every pair of replicas that both run a transport exchanged bytes over it, and no replica
/// sent a byte over a transport the peer does not run (or reports the transport at all when it
/// does not run it itself).
pub async fn expect_transports(cluster: &Cluster, mixes: &[Mix]) -> anyhow::Result<()> {
    for transport in TRANSPORTS {
        expect_traffic(cluster, transport, &pairs_over(mixes, transport)).await?;
        for (i, mix) in mixes.iter().enumerate() {
            let sent = per_peer(cluster, i, "beat_gateway_bytes_sent_total", transport).await?;
            if !mix.has(transport) {
                anyhow::ensure!(
                    sent.is_empty(),
                    "replica {i} does not run {transport} but reports {transport} traffic {sent:?}"
                );
                continue;
            }
            for (p, v) in &sent {
                anyhow::ensure!(
                    mixes[*p].has(transport) || *v == 0.0,
                    "replica {i} sent {v} bytes over {transport} to replica {p}, which does not \
                     run it"
                );
            }
        }
    }
    Ok(())
}

/// Sum over peers of a gateway's per-transport counter, per replica.
pub async fn totals(cluster: &Cluster, metric: &str, transport: &str) -> anyhow::Result<Vec<f64>> {
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

/// Waits until no replica reports a `transport` link up; returns how long it took.
pub async fn wait_links_down(
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

/// Every ordered pair `(replica, peer)` of distinct replicas among `n`.
pub fn all_pairs(n: usize) -> Vec<(usize, usize)> {
    (0..n)
        .flat_map(|i| (0..n).filter(move |&p| p != i).map(move |p| (i, p)))
        .collect()
}

/// A gateway's `metric{peer=..,transport=..}` samples for one transport, as (peer, value).
pub async fn per_peer(
    cluster: &Cluster,
    i: usize,
    metric: &str,
    transport: &str,
) -> anyhow::Result<Vec<(usize, f64)>> {
    let text = fetch_metrics(cluster.ports(i).ops(Service::Gateway)).await?;
    let wanted = format!("transport=\"{transport}\"");
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(metric) else {
            continue;
        };
        if !rest.starts_with('{') || !rest.contains(&wanted) {
            continue;
        }
        let peer = rest
            .split("peer=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("no peer label in {line:?}"))?;
        let value: f64 = rest
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no value in {line:?}"))?;
        out.push((peer, value));
    }
    Ok(out)
}

/// `GET /metrics` from an ops port.
pub async fn fetch_metrics(addr: SocketAddr) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await?;
    let mut body = String::new();
    s.read_to_string(&mut body).await?;
    Ok(body)
}

/// Every pair `(replica, peer)` has carried bytes over `transport` in both directions.
pub async fn expect_traffic(
    cluster: &Cluster,
    transport: &str,
    pairs: &[(usize, usize)],
) -> anyhow::Result<()> {
    for &(i, peer) in pairs {
        for metric in [
            "beat_gateway_bytes_sent_total",
            "beat_gateway_bytes_received_total",
        ] {
            let bytes: f64 = per_peer(cluster, i, metric, transport)
                .await?
                .iter()
                .filter(|(p, _)| *p == peer)
                .map(|(_, v)| v)
                .sum();
            anyhow::ensure!(
                bytes > 0.0,
                "replica {i}: {metric} for peer {peer} over {transport} is {bytes}"
            );
        }
    }
    Ok(())
}

/// Waits until every `(replica, peer)` link over `transport` is up
/// (`beat_gateway_link_up == 1`); returns how long it took.
pub async fn wait_links(
    cluster: &Cluster,
    transport: &str,
    pairs: &[(usize, usize)],
    timeout: Duration,
) -> anyhow::Result<Duration> {
    let started = tokio::time::Instant::now();
    loop {
        let mut missing = Vec::new();
        for &(i, peer) in pairs {
            let up = per_peer(cluster, i, "beat_gateway_link_up", transport)
                .await
                .unwrap_or_default()
                .iter()
                .any(|&(p, v)| p == peer && v >= 1.0);
            if !up {
                missing.push((i, peer));
            }
        }
        if missing.is_empty() {
            return Ok(started.elapsed());
        }
        if started.elapsed() >= timeout {
            let mut why = String::new();
            for &(i, peer) in &missing {
                why.push_str(&format!(
                    "\n  replica {i} → {peer}: {}",
                    link_report(cluster, i, peer, transport).await
                ));
            }
            anyhow::bail!(
                "{transport} links (replica, peer) {missing:?} not up after {timeout:?}; the dialling gateways say:{why}"
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// What replica `i`'s gateway reports of its `transport` link to `peer` (its `Peers` RPC on
/// the local socket): the dialled link's state, whether an inbound one is up, how often it
/// connected, and the last error. Makes a link failure in CI readable without the kept logs.
pub async fn link_report(cluster: &Cluster, i: usize, peer: usize, transport: &str) -> String {
    use beat_proto::gateway::v1::{
        LinkState, PeersRequest, gateway_service_client::GatewayServiceClient,
    };
    let endpoint = beat_provision::layout::Sockets::of(cluster.dir(), i)
        .gateway
        .endpoint();
    let channel = match beat_telemetry::local::lazy_channel(&endpoint, Duration::from_secs(2), true)
    {
        Ok(c) => c,
        Err(e) => return format!("no channel to {endpoint}: {e}"),
    };
    let peers = match GatewayServiceClient::new(channel)
        .peers(PeersRequest {})
        .await
    {
        Ok(r) => r.into_inner().peers,
        Err(status) => return format!("Peers failed: {}", status.message()),
    };
    let Some(t) = peers
        .iter()
        .filter(|p| p.replica as usize == peer)
        .flat_map(|p| p.transports.iter())
        .find(|t| t.transport == transport)
    else {
        return format!("no {transport} link to {peer} listed");
    };
    let state = LinkState::try_from(t.state).map_or("?", |s| s.as_str_name());
    format!(
        "dialled link {state} (retry in {} ms), inbound {}, {} connects, last error: {}",
        t.backoff_ms,
        if t.inbound_up { "up" } else { "down" },
        t.connects,
        if t.last_error.is_empty() {
            "none"
        } else {
            &t.last_error
        }
    )
}

/// Offers `rate` tx/s of 250-byte transactions to every replica, round-robin, for a 5 s
/// warm-up and a 20 s measured window; commits are watched at replica 0.
pub async fn measure(cluster: &Cluster, rate: u64) -> anyhow::Result<LoadReport> {
    let endpoints: Vec<String> = (0..cluster.n())
        .map(|i| cluster.ordering_endpoint(i))
        .collect();
    run_load(LoadOptions {
        watch: endpoints[0].clone(),
        endpoints,
        committee: None,
        rate,
        duration: Duration::from_secs(20),
        warmup: Duration::from_secs(5),
        tx_bytes: 250,
        max_in_flight: 64,
        drain: Duration::from_secs(60),
    })
    .await
}

/// One line for a load report.
pub fn describe(report: &LoadReport) -> String {
    format!(
        "offered {} tx/s, committed {:.0} tx/s, latency p50 {:.0} ms p90 {:.0} ms p99 {:.0} ms \
         max {:.0} ms, {} epochs, shed {}, submit errors {}",
        report.offered_rate,
        report.throughput_tps,
        report.latency_ms.p50,
        report.latency_ms.p90,
        report.latency_ms.p99,
        report.latency_ms.max,
        report.epochs,
        report.shed,
        report.submit_errors
    )
}

/// Submits `count` market transactions spread over every replica, waits until every replica
/// committed all of them, and checks their batches agree.
pub async fn checked_commit(
    cluster: &Cluster,
    source: &str,
    count: u64,
    timeout: Duration,
) -> anyhow::Result<()> {
    let n = cluster.n();
    let txs: Vec<Vec<u8>> = (0..count).map(|k| market_tx(source, k)).collect();
    for (k, part) in txs.chunks(250).enumerate() {
        submit_all(&cluster.ordering_endpoint(k % n), part, 250).await?;
    }
    let wanted: HashSet<Vec<u8>> = txs.iter().cloned().collect();
    let committee = committee_of(cluster);
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let (ep, wanted) = (cluster.ordering_endpoint(i), wanted.clone());
        let committee = committee.clone();
        set.spawn(async move { (i, batches_until(&ep, &committee, 0, &wanted, timeout).await) });
    }
    let mut per_replica = Vec::new();
    while let Some(r) = set.join_next().await {
        let (i, batches) = r?;
        per_replica.push(batches.map_err(|e| e.context(format!("replica {i}")))?);
    }
    check_same_order(&per_replica)
}
