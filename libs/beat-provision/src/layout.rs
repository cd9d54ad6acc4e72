//! Where a local cluster's replicas listen and keep their files.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

/// The four services of a replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    /// Peer links.
    Gateway,
    /// Secret keys.
    Keystore,
    /// The protocol.
    Consensus,
    /// The market pipeline.
    State,
}

impl Service {
    /// All four, in start order (dependencies first).
    pub const ALL: [Self; 4] = [Self::Keystore, Self::Gateway, Self::Consensus, Self::State];

    /// The service's name (`beat run <name>`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Gateway => "gateway",
            Self::Keystore => "keystore",
            Self::Consensus => "consensus",
            Self::State => "state",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.name() == s)
    }
}

/// Ports of replica `i` on loopback: `base + 100·k + i` for the k-th port kind.
///
/// A cluster of `n` replicas uses `base ..= base + span(n) - 1` ([`Ports::span`]). Lay it out
/// below Linux's ephemeral range (32768–60999 by default, [`ephemeral_range`]): a port in that
/// range may be taken by any outgoing connection on the machine, including the cluster's own,
/// just before the service that should listen on it binds it.
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    /// Base port.
    pub base: u16,
    /// Replica index.
    pub replica: u16,
}

impl Ports {
    /// The highest port kind (the state service's ops port).
    const LAST_KIND: u16 = 24;

    /// How many consecutive ports from the base a cluster of `replicas` (at most 99) uses.
    pub const fn span(replicas: u16) -> u32 {
        100 * Self::LAST_KIND as u32 + replicas as u32
    }

    fn port(&self, kind: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.base + 100 * kind + self.replica))
    }

    /// Peer links (gateway TCP listener), also the committee file's `tcp` endpoint.
    pub fn peer(&self) -> SocketAddr {
        self.port(0)
    }

    /// The ordering API (consensus gRPC) — what clients use.
    pub fn consensus(&self) -> SocketAddr {
        self.port(1)
    }

    // Kinds 2 and 3 were the gateway API and the keystore, now Unix sockets ([`Sockets`]).

    /// A delay relay in front of the peer port, which the committee file then names instead
    /// (`beat bench --peer-delay`).
    pub fn peer_relay(&self) -> SocketAddr {
        self.port(6)
    }

    /// The market API (state gRPC).
    pub fn state(&self) -> SocketAddr {
        self.port(4)
    }

    /// The ops HTTP port of `service`.
    pub fn ops(&self, service: Service) -> SocketAddr {
        self.port(match service {
            Service::Consensus => 21,
            Service::Gateway => 22,
            Service::Keystore => 23,
            Service::State => Self::LAST_KIND,
        })
    }
}

/// The machine's ephemeral port range, `(first, last)`, from which the kernel picks the local
/// port of outgoing connections (Linux: `/proc/sys/net/ipv4/ip_local_port_range`); `None` where
/// it cannot be read.
pub fn ephemeral_range() -> Option<(u16, u16)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = text.split_whitespace().map(str::parse::<u16>);
    match (it.next(), it.next()) {
        (Some(Ok(first)), Some(Ok(last))) => Some((first, last)),
        _ => None,
    }
}

/// The files of replica `i` under a cluster directory.
pub fn replica_dir(root: &Path, i: usize) -> PathBuf {
    root.join(format!("replica-{i}"))
}

/// The Unix sockets of a replica's internal APIs, in `<replica dir>/run` (mode `0700`: only
/// the user running the devnet can connect). Each caller of the keystore has its own socket.
#[derive(Clone, Debug)]
pub struct Sockets {
    /// The keystore, for consensus (coin and decryption shares).
    pub keystore_consensus: beat_telemetry::local::ListenAddr,
    /// The keystore, for the gateway (handshake signatures).
    pub keystore_gateway: beat_telemetry::local::ListenAddr,
    /// The gateway's internal API, for consensus (and `beat status`).
    pub gateway: beat_telemetry::local::ListenAddr,
}

impl Sockets {
    /// The sockets of replica `i` of the devnet in `root`.
    pub fn of(root: &Path, i: usize) -> Self {
        use beat_telemetry::local::ListenAddr::Unix;
        let run = replica_dir(root, i).join("run");
        Self {
            keystore_consensus: Unix(run.join("keystore-consensus.sock")),
            keystore_gateway: Unix(run.join("keystore-gateway.sock")),
            gateway: Unix(run.join("gateway.sock")),
        }
    }
}
