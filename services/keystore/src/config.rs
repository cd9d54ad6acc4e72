//! Keystore configuration (`beat-keystore --config keystore.toml`, overridable with
//! `BEAT_KEYSTORE__*`).

use std::{net::SocketAddr, path::PathBuf};

use beat_telemetry::{local::ListenAddr, logging::LogConfig};
use serde::{Deserialize, Serialize};

/// The keystore's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// This replica's index.
    pub replica: u32,
    /// The committee file.
    pub committee: PathBuf,
    /// The encrypted keystore file written by `beat keygen`.
    pub keystore_file: PathBuf,
    /// A file holding the passphrase (one line). Preferred over `passphrase_env`.
    pub passphrase_file: Option<PathBuf>,
    /// The name of an environment variable holding the passphrase. The passphrase is never
    /// taken from the command line, where `ps` and shell history would show it.
    pub passphrase_env: Option<String>,
    /// Where the consensus service calls (coin and decryption shares, public keys): a Unix
    /// socket (`unix:/path`) in a directory only this replica's services can enter. Each
    /// caller has its own socket, which serves only that caller's methods.
    pub consensus_listen: ListenAddr,
    /// Where the gateway calls (handshake signatures, public keys).
    pub gateway_listen: ListenAddr,
    /// Ops HTTP listen address (`/metrics`, `/healthz`, `/readyz`).
    pub ops_listen: SocketAddr,
    /// Threads performing secret-key operations.
    pub signer_threads: usize,
    /// Most items in one request.
    pub max_batch: usize,
    /// Handshake signatures per second, sustained (the gateway asks one per peer link it
    /// forms; a token bucket refuses more with `RESOURCE_EXHAUSTED`, so that a flood from the
    /// gateway's socket cannot occupy the signer threads the consensus service needs). The
    /// gateway keeps each peer to a far smaller budget of its own, so no peer can use this one
    /// up for the others.
    pub handshake_signatures_per_second: u32,
    /// Handshake signatures in a burst above the sustained rate.
    pub handshake_burst: u32,
    /// Logging.
    pub log: LogConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            replica: 0,
            committee: PathBuf::from("committee.json"),
            keystore_file: PathBuf::from("keystore.bin"),
            passphrase_file: None,
            passphrase_env: Some("BEAT_KEYSTORE_PASSPHRASE".to_owned()),
            consensus_listen: ListenAddr::Unix(PathBuf::from("run/keystore-consensus.sock")),
            gateway_listen: ListenAddr::Unix(PathBuf::from("run/keystore-gateway.sock")),
            ops_listen: SocketAddr::from(([127, 0, 0, 1], 9300)),
            signer_threads: 2,
            max_batch: 65_536,
            handshake_signatures_per_second: 200,
            handshake_burst: 400,
            log: LogConfig::default(),
        }
    }
}

impl Config {
    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), String> {
        if self.passphrase_file.is_none() && self.passphrase_env.is_none() {
            return Err("set passphrase_file or passphrase_env".to_owned());
        }
        if self.signer_threads == 0 || self.signer_threads > 256 {
            return Err("signer_threads must be in 1..=256".to_owned());
        }
        if self.consensus_listen == self.gateway_listen {
            return Err(
                "consensus_listen and gateway_listen must differ: each caller gets its own socket"
                    .to_owned(),
            );
        }
        if self.handshake_signatures_per_second == 0 || self.handshake_burst == 0 {
            return Err(
                "handshake_signatures_per_second and handshake_burst must be at least 1".to_owned(),
            );
        }
        if self.max_batch == 0 {
            return Err("max_batch must be at least 1".to_owned());
        }
        Ok(())
    }
}
