//! Consensus over a real (private) Tor network alone: 4 replicas whose gateways run embedded
//! arti clients and onion services on a network of Debian `tor` daemons on loopback
//! (`e2e/networks/tor/tornet.py`: 3 directory authorities, 5 relays). No replica has TCP or
//! I2P; every peer link is an arti → onion-service stream.
//!
//! The scenario offers a steady load and reports commit throughput and latency (the issue's
//! target over Tor alone: 500 tx/s, median under 2 s), then commits a checked set of
//! transactions everywhere, compares every replica's batches, and reads the gateways' metrics
//! to prove the links crossed Tor. Mixed transports and censorship (clearnet, Tor and I2P cut
//! in turn) are `tests/censorship.rs`. The network comes up from the test, bounded in time, and
//! goes down by process id when the test ends, pass or fail (`beat_e2e::networks`).
//!
//! Needs the `tor` binary (Debian package `tor`; `.ci/run` installs it). Without it the test
//! prints a loud SKIPPED message and passes.

use std::{path::Path, time::Duration};

use beat_e2e::{
    networks::{TorNet, tor_installed},
    scenario_dir,
    transports::{Mix, steady, transport_spec, with_cluster},
};

const N: usize = 4;
const TORNET_BASE_PORT: u16 = 31_000;
const BASE_PORT: u16 = 32_000;
/// Offered load; the target over Tor alone is 500 tx/s.
const RATE: u64 = 600;

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
    let beat = Path::new(env!("CARGO_BIN_EXE_beat-e2e"));
    let net_dir = scenario_dir("tornet");
    let net = TorNet::up(&net_dir, TORNET_BASE_PORT)?;
    let mixes = [Mix::TOR; N];
    let mut spec = transport_spec(
        beat,
        "tor-only",
        BASE_PORT,
        &mixes,
        Some(&net.arti_toml),
        None,
    )
    .await?;
    spec.params.batch_size = 3000;
    let report = with_cluster(spec, async |cluster| {
        steady(
            cluster,
            "tor-only",
            &mixes,
            RATE,
            2_000,
            Duration::from_secs(180),
            Duration::from_secs(240),
        )
        .await
    })
    .await?;
    eprintln!(
        "transport mix | committed tx/s | p50 ms | p99 ms\ntor only (4 replicas) | {:.0} | {:.0} \
         | {:.0}",
        report.throughput_tps, report.latency_ms.p50, report.latency_ms.p99
    );
    drop(net);
    let _ = std::fs::remove_dir_all(net_dir);
    Ok(())
}
