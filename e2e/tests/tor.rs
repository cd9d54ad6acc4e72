//! Consensus over a real (private) Tor network alone: 4 replicas on a network of Debian `tor`
//! daemons on loopback (`e2e/networks/tor/tornet.py`: 3 directory authorities, 5 relays, and
//! one C tor client). No replica has TCP or I2P; every peer link is an onion-service stream.
//!
//! 1. **Embedded arti.** Every gateway runs its own arti client and onion service; every link
//!    is arti → arti onion service.
//! 2. **An operator's own tor.** Replicas 0–2 as above; replica 3 runs the gateway's external
//!    mode: outbound through the C tor client's SOCKS5 port, inbound from that tor's onion
//!    service (`HiddenServicePort`) to the gateway's `tor.listen`, no arti. Its links are C tor
//!    → arti onion service one way and arti → C tor onion service the other.
//!
//! Each cluster offers a steady load and reports commit throughput and latency (the issue's
//! target over Tor alone: 500 tx/s, median under 2 s), then commits a checked set of
//! transactions everywhere, compares every replica's batches, and reads the gateways' metrics
//! to prove the links crossed Tor. Mixed transports and censorship (clearnet, Tor and I2P cut
//! in turn) are `tests/censorship.rs`. The network comes up from the test, bounded in time, and
//! goes down by process id when the test ends, pass or fail (`beat_e2e::networks`).
//!
//! Needs the `tor` binary (Debian package `tor`; `.ci/run` installs it). Without it the test
//! prints a loud SKIPPED message and passes.

use std::{net::SocketAddr, path::Path, time::Duration};

use anyhow::Context as _;
use beat_e2e::{
    networks::{TorNet, tor_installed},
    scenario_dir,
    transports::{Mix, behind_external_tor, steady, transport_spec, with_cluster},
};

const N: usize = 4;
const TORNET_BASE_PORT: u16 = beat_e2e::ports::TOR_NET;
const BASE_PORT: u16 = beat_e2e::ports::CLUSTER_A;
const EXTERNAL_BASE_PORT: u16 = beat_e2e::ports::CLUSTER_B;
/// Where the C tor client forwards replica 3's onion service in scenario 2 (the gateway's
/// `tor.listen`), outside both clusters' port ranges.
const EXTERNAL_LISTEN_PORT: u16 = beat_e2e::ports::TOR_ONION_FORWARD;
/// The virtual port of that onion service, as in the committee file.
const EXTERNAL_ONION_PORT: u16 = 7000;
/// Offered load; the target over Tor alone is 500 tx/s.
const RATE: u64 = 600;
const LINKS_TIMEOUT: Duration = Duration::from_secs(180);
const COMMIT_TIMEOUT: Duration = Duration::from_secs(240);

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
    let net = TorNet::up_with_client(
        &net_dir,
        TORNET_BASE_PORT,
        &[(EXTERNAL_ONION_PORT, EXTERNAL_LISTEN_PORT)],
    )?;
    let mixes = [Mix::TOR; N];

    // 1. Embedded arti everywhere.
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
    let arti = with_cluster(spec, async |cluster| {
        steady(
            cluster,
            "tor-only",
            &mixes,
            RATE,
            2_000,
            LINKS_TIMEOUT,
            COMMIT_TIMEOUT,
        )
        .await
    })
    .await?;

    // 2. Replica 3 behind the C tor client (the gateway's external mode).
    let client = net
        .client
        .clone()
        .context("the network has no C tor client")?;
    let onion = client
        .onions
        .first()
        .context("the C tor client has no onion service")?
        .clone();
    let mut spec = transport_spec(
        beat,
        "tor-external",
        EXTERNAL_BASE_PORT,
        &mixes,
        Some(&net.arti_toml),
        None,
    )
    .await?;
    spec.params.batch_size = 3000;
    let listen = SocketAddr::from(([127, 0, 0, 1], EXTERNAL_LISTEN_PORT));
    behind_external_tor(&mut spec, N - 1, &client, listen)?;
    eprintln!(
        "tor-external: replica {} dials through {} and is reached at {onion}",
        N - 1,
        client.socks
    );
    let external = with_cluster(spec, async |cluster| {
        steady(
            cluster,
            "tor-external",
            &mixes,
            RATE,
            1_000,
            LINKS_TIMEOUT,
            COMMIT_TIMEOUT,
        )
        .await
    })
    .await?;

    eprintln!("transport mix | committed tx/s | p50 ms | p99 ms");
    for (label, r) in [
        ("tor only, arti everywhere", &arti),
        ("tor only, replica 3 via an external C tor", &external),
    ] {
        eprintln!(
            "{label} | {:.0} | {:.0} | {:.0}",
            r.throughput_tps, r.latency_ms.p50, r.latency_ms.p99
        );
    }
    drop(net);
    let _ = std::fs::remove_dir_all(net_dir);
    Ok(())
}
