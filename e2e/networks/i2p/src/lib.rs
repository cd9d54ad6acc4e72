//! A private I2P network for end-to-end tests, in-process: a few emissary routers on loopback
//! (some floodfill, the others plain relays) plus one router per SAM client with a SAM v3
//! bridge. The network has a random network ID, so it can never talk to the real I2P network,
//! and every router address is 127.0.0.1 (`allow_local`, `insecure_tunnels`).
//!
//! The routers run as tasks on the caller's Tokio runtime and stop when [`I2pNet`] is dropped.
//! Nothing here is used by the product: gateways reach the bridges over SAM like any other.
#![forbid(unsafe_code)]

use std::net::{Ipv4Addr, SocketAddr};

use anyhow::Context as _;
use emissary_core::{Config, Ntcp2Config, SamConfig, TransitConfig, router::Router};
use emissary_util::runtime::tokio::Runtime;
use tokio::task::JoinHandle;

/// The shape of the network.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Floodfill routers (the network database).
    pub floodfills: usize,
    /// Plain relay routers.
    pub relays: usize,
    /// Routers with a SAM bridge, one per client.
    pub sam_routers: usize,
}

/// A running private I2P network; dropping it stops every router.
pub struct I2pNet {
    sam: Vec<SocketAddr>,
    routers: Vec<JoinHandle<()>>,
}

impl I2pNet {
    /// Starts the routers. Each router learns the router infos of the ones started before it
    /// (as a reseed would give it); floodfills come first so every later router knows them.
    /// Tunnels take a while to build after this returns: clients should retry.
    pub async fn start(shape: Shape, net_id: u8) -> anyhow::Result<Self> {
        anyhow::ensure!(
            shape.floodfills >= 1 && shape.sam_routers >= 1,
            "a network needs a floodfill and a SAM router"
        );
        let mut infos: Vec<Vec<u8>> = Vec::new();
        let mut routers = Vec::new();
        let mut sam = Vec::new();
        let total = shape.floodfills + shape.relays + shape.sam_routers;
        for i in 0..total {
            let floodfill = i < shape.floodfills;
            let with_sam = i >= shape.floodfills + shape.relays;
            // NTCP2 static key and IV: distinct per router and per network.
            let seed = (i as u8).wrapping_mul(37) ^ net_id;
            let config = Config {
                net_id: Some(net_id),
                floodfill,
                insecure_tunnels: true,
                allow_local: true,
                caps: Some(if floodfill { "XfR" } else { "XR" }.to_owned()),
                ntcp2: Some(Ntcp2Config {
                    port: 0,
                    ipv4: true,
                    ipv4_host: Some(Ipv4Addr::LOCALHOST),
                    ipv6: false,
                    ipv6_host: None,
                    iv: [seed; 16],
                    key: [seed.wrapping_add(1); 32],
                    publish: true,
                    ml_kem: None,
                    disable_pq: false,
                }),
                routers: infos.clone(),
                samv3_config: with_sam.then(|| SamConfig {
                    tcp_port: 0,
                    udp_port: 0,
                    host: "127.0.0.1".to_owned(),
                }),
                transit: Some(TransitConfig {
                    max_tunnels: Some(5000),
                }),
                ..Default::default()
            };
            let (router, _events, info) = Router::<Runtime>::new(config, None, None)
                .await
                .map_err(|e| anyhow::anyhow!("router {i}: {e:?}"))?;
            if with_sam {
                sam.push(
                    router
                        .protocol_address_info()
                        .sam_tcp
                        .with_context(|| format!("router {i} has no SAM listener"))?,
                );
            }
            infos.push(info);
            routers.push(tokio::spawn(router));
        }
        Ok(Self { sam, routers })
    }

    /// The SAM v3 TCP bridges, one per SAM router.
    pub fn sam_endpoints(&self) -> &[SocketAddr] {
        &self.sam
    }
}

impl Drop for I2pNet {
    fn drop(&mut self) {
        for r in &self.routers {
            r.abort();
        }
    }
}
