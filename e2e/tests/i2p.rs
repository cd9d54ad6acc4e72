//! Consensus over a real (private) I2P network: 4 replicas whose gateways reach each other only
//! through I2P, each through its own SAM v3 bridge on its own router.
//!
//! The network is `beat-i2pnet` (e2e/networks/i2p): emissary routers in this test process on
//! loopback with a random network ID — floodfills, relays and one SAM router per replica.
//! Every replica's destination is created through its bridge with `beat i2p-address`
//! (SIGNATURE_TYPE=7) before the key ceremony, so the committee file carries it. The scenario
//! is the steady-load one of every transport mix (`beat_e2e::transports::steady`). The routers
//! stop when the test ends, pass or fail. The same scenario on i2pd routers is `tests/i2pd.rs`.

use std::{path::Path, time::Duration};

use beat_e2e::transports::{I2pSetup, Mix, steady, transport_spec, with_cluster};
use beat_i2pnet::{I2pNet, Shape};

const N: usize = 4;
const BASE_PORT: u16 = 38_000;
/// Offered load; the target over I2P alone is 200 tx/s.
const RATE: u64 = 300;

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

    let beat = Path::new(env!("CARGO_BIN_EXE_beat-e2e"));
    let mixes = [Mix::I2P; N];
    let i2p = I2pSetup {
        sam: &sam,
        options: &[],
    };
    let mut spec = transport_spec(beat, "i2p-only", BASE_PORT, &mixes, None, Some(i2p)).await?;
    spec.params.batch_size = 1000;
    let result = with_cluster(spec, async |cluster| {
        steady(
            cluster,
            "i2p-only",
            &mixes,
            RATE,
            1_000,
            Duration::from_secs(300),
            Duration::from_secs(300),
        )
        .await
    })
    .await;
    drop(net);
    result.map(drop)
}
