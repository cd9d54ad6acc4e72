//! Helpers for the transport scenarios (`tests/tor.rs`, `tests/i2p.rs`): gateway metrics per
//! peer and transport, waiting for links, a measured load, and a checked commit with agreement.

use std::{collections::HashSet, net::SocketAddr, time::Duration};

use anyhow::Context as _;
use beat_cli::{
    bench::{LoadOptions, LoadReport, run_load},
    cluster::Cluster,
    layout::Service,
};

use crate::{batches_until, check_same_order, market_tx, submit_all};

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
        anyhow::ensure!(
            started.elapsed() < timeout,
            "{transport} links (replica, peer) {missing:?} not up after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
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
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let (ep, wanted) = (cluster.ordering_endpoint(i), wanted.clone());
        set.spawn(async move { (i, batches_until(&ep, 0, &wanted, timeout).await) });
    }
    let mut per_replica = Vec::new();
    while let Some(r) = set.join_next().await {
        let (i, batches) = r?;
        per_replica.push(batches.map_err(|e| e.context(format!("replica {i}")))?);
    }
    check_same_order(&per_replica)
}
