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
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    /// Base port.
    pub base: u16,
    /// Replica index.
    pub replica: u16,
}

impl Ports {
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
            Service::State => 24,
        })
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
