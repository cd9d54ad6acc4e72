//! Soak (not part of `scripts/test`; ~5 min): the external-tor cluster of `tests/tor.rs`
//! (replicas 0–2 on embedded arti, replica 3 behind the network's C tor) started afresh again
//! and again on one private Tor network, checking each time that all 12 links come up.
//!
//! It measures how long a fresh cluster takes to reach a full mesh over onion services, and
//! it is how the stuck-rendezvous redial bug was found and its fix measured
//! (docs/transports.md, "Known limits"): before the fix, 5 of 62 clusters never had all links
//! within 90 s; after it, every cluster did. Run it with
//!
//! ```text
//! BEAT_SOAK_CLUSTERS=45 cargo test -p beat-e2e --test tor_soak -- --ignored --nocapture
//! ```
//!
//! Needs the `tor` binary, as `tests/tor.rs` does.

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration};

use anyhow::Context as _;
use beat_e2e::{
    networks::{TorNet, tor_installed},
    scenario_dir,
    transports::{Mix, pairs_over, transport_spec, wait_links},
};
use beat_testkit::cluster::{Cluster, Configure};

const N: usize = 4;
const LINKS_TIMEOUT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak of several minutes; run with --ignored (see the module docs)"]
async fn fresh_external_tor_clusters_reach_a_full_mesh() -> anyhow::Result<()> {
    anyhow::ensure!(
        tor_installed(),
        "no `tor` binary: install the Debian package `tor`"
    );
    let beat = Path::new(env!("CARGO_BIN_EXE_beat-e2e"));
    let clusters: usize = std::env::var("BEAT_SOAK_CLUSTERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let net_dir = scenario_dir("tornet-soak");
    let forward = beat_e2e::ports::TOR_ONION_FORWARD;
    let net = TorNet::up_with_client(&net_dir, beat_e2e::ports::TOR_NET, &[(7000, forward)])?;
    let client = net.client.clone().context("no C tor client")?;
    let onion = client
        .onions
        .first()
        .context("the C tor client has no onion service")?
        .clone();
    let mixes = [Mix::TOR; N];
    let pairs = pairs_over(&mixes, "tor");
    let mut times = Vec::new();
    let mut failed = Vec::new();
    for k in 0..clusters {
        let mut spec = transport_spec(
            beat,
            &format!("tor-soak-{k}"),
            beat_e2e::ports::CLUSTER_B,
            &mixes,
            Some(&net.arti_toml),
            None,
        )
        .await?;
        // Every dial failure and hedged attempt in the kept logs of a failed round.
        spec.log_filter = format!(
            "{},beat_gateway::link=debug,beat_gateway::transport=debug",
            spec.log_filter
        );
        let endpoints = spec.endpoints.as_mut().context("no endpoints")?;
        endpoints[N - 1].tor = Some(onion.clone());
        let embedded = spec
            .configure
            .take()
            .context("no transport configuration")?;
        let socks = client.socks.clone();
        let listen = SocketAddr::from(([127, 0, 0, 1], forward));
        spec.configure = Some(Configure(Arc::new(move |i, c| {
            (embedded.0)(i, c);
            if i == N - 1 {
                c.gateway.tor.socks5 = Some(socks.clone());
                c.gateway.tor.listen = Some(listen);
            }
        })));
        let dir = spec.dir.clone();
        let mut cluster = Cluster::prepare(spec)?;
        cluster.start_all()?;
        cluster.wait_all_ready(Duration::from_secs(120)).await?;
        let result = wait_links(&cluster, "tor", &pairs, LINKS_TIMEOUT).await;
        cluster.stop_all(Duration::from_secs(5));
        drop(cluster);
        match result {
            Ok(took) => {
                eprintln!("cluster {k}: all links up in {:.1} s", took.as_secs_f64());
                times.push(took.as_secs_f64());
                let _ = std::fs::remove_dir_all(&dir);
            }
            Err(e) => {
                eprintln!("cluster {k}: {e}; logs kept in {}", dir.display());
                failed.push(k);
            }
        }
    }
    times.sort_by(f64::total_cmp);
    if let (Some(median), Some(max)) = (times.get(times.len() / 2), times.last()) {
        eprintln!(
            "{} of {clusters} clusters reached a full mesh within {LINKS_TIMEOUT:?}: median {median:.1} s, max {max:.1} s, {} over 10 s",
            times.len(),
            times.iter().filter(|&&t| t > 10.0).count()
        );
    }
    drop(net);
    anyhow::ensure!(
        failed.is_empty(),
        "clusters {failed:?} had links still down after {LINKS_TIMEOUT:?}"
    );
    let _ = std::fs::remove_dir_all(net_dir);
    Ok(())
}
