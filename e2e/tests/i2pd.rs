//! Consensus over a real (private) I2P network of Debian `i2pd` routers alone: 4 replicas whose
//! gateways reach each other only through I2P, each through the SAM v3.1 bridge of its own
//! router.
//!
//! The network is `e2e/networks/i2pd/i2pdnet.py`: 8 i2pd 2.45.1 routers (3 floodfills, 4 with
//! SAM, 1 plain) in a private network namespace that has only `lo` (i2pd refuses router
//! connections from 127/8; see that directory's README), with the SAM bridges forwarded to
//! 127.0.0.1. `up` returns once every SAM router has a session and streams between them echo;
//! every router dies by itself after `--lifetime`, and the test stops them by process id when
//! it ends, pass or fail (`beat_e2e::networks`).
//!
//! Each replica's destination is created through its bridge with `beat i2p-address`
//! (SIGNATURE_TYPE=7) before the key ceremony, so the committee file carries it. The scenario
//! offers a steady load, reports commit throughput and latency (the target over I2P
//! alone: 200 tx/s), commits a checked set of transactions everywhere, compares every replica's
//! batches, and reads the gateways' metrics to prove the links are I2P streams and no TCP byte
//! moved.
//!
//! Needs `i2pd` (Debian package; `.ci/run` installs it), `nsenter` and root or unprivileged
//! user namespaces. Without `i2pd` or a network namespace the test prints a loud SKIPPED
//! message saying which is missing, and passes.

use std::{path::Path, time::Duration};

use beat_e2e::{
    networks::{I2pdNet, i2pd_network_possible},
    scenario_dir,
    transports::{I2PD_SESSION_OPTIONS, I2pSetup, Mix, steady, transport_spec, with_cluster},
};

const N: usize = 4;
/// The cluster's ports (`base + 100·k + i`).
const BASE_PORT: u16 = beat_e2e::ports::CLUSTER_A;
/// The network's ports: SAM bridges at `+32 + i`, web consoles at `+64 + i` on 127.0.0.1.
const I2PDNET_BASE_PORT: u16 = beat_e2e::ports::I2PD_NET;
/// Offered load; the target over I2P alone is 200 tx/s.
const RATE: u64 = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n4_over_a_private_i2pd_network() -> anyhow::Result<()> {
    if let Err(why) = i2pd_network_possible() {
        eprintln!(
            "\n\
             ******************************************************************************\n\
             *** SKIPPED n4_over_a_private_i2pd_network: {why}\n\
             *** It runs consensus over a private I2P network of i2pd routers.\n\
             ******************************************************************************\n"
        );
        return Ok(());
    }
    let beat = Path::new(env!("CARGO_BIN_EXE_beat-e2e"));
    let net_dir = scenario_dir("i2pdnet");
    let net = I2pdNet::up(&net_dir, I2PDNET_BASE_PORT, N)?;
    let mixes = [Mix::I2P; N];
    let i2p = I2pSetup {
        sam: &net.sam,
        options: &I2PD_SESSION_OPTIONS,
    };
    let mut spec = transport_spec(beat, "i2pd-only", BASE_PORT, &mixes, None, Some(i2p)).await?;
    spec.params.batch_size = 1000;
    let report = with_cluster(spec, async |cluster| {
        steady(
            cluster,
            "i2pd-only",
            &mixes,
            RATE,
            1_000,
            Duration::from_secs(300),
            Duration::from_secs(300),
        )
        .await
    })
    .await?;
    eprintln!(
        "transport mix | committed tx/s | p50 ms | p99 ms\ni2p only (i2pd, 4 replicas) | {:.0} | \
         {:.0} | {:.0}",
        report.throughput_tps, report.latency_ms.p50, report.latency_ms.p99
    );
    drop(net);
    let _ = std::fs::remove_dir_all(net_dir);
    Ok(())
}
