//! Gateway configuration (`beat-gateway --config gateway.toml`, overridable with
//! `BEAT_GATEWAY__*`, e.g. `BEAT_GATEWAY__TCP__LISTEN=0.0.0.0:7000`).
//!
//! `gateway.example.toml` next to `Cargo.toml` documents every key with its default.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use beat_telemetry::logging::LogConfig;
use serde::{Deserialize, Serialize};

/// The gateway's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// This replica's index.
    pub replica: u32,
    /// The committee file (public keys and every replica's endpoints).
    pub committee: PathBuf,
    /// gRPC listen address of the gateway API. Keep it on localhost: only the replica's own
    /// consensus service calls it.
    pub grpc_listen: SocketAddr,
    /// Ops HTTP listen address (`/metrics`, `/healthz`, `/readyz`).
    pub ops_listen: SocketAddr,
    /// The keystore that signs handshake transcripts.
    pub keystore: KeystoreConfig,
    /// Clearnet TCP transport.
    pub tcp: TcpConfig,
    /// Peer-link protocol limits and timers.
    pub link: LinkConfig,
    /// Per-peer outbound queues.
    pub queue: QueueConfig,
    /// Inbound buffering per sender.
    pub inbound: InboundConfig,
    /// Reconnection backoff.
    pub backoff: BackoffConfig,
    /// The `Link` stream to consensus.
    pub consensus: ConsensusStreamConfig,
    /// Logging.
    pub log: LogConfig,
}

/// Where the keystore is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeystoreConfig {
    /// The keystore's gRPC endpoint.
    pub endpoint: String,
    /// Deadline of one keystore call.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

/// The clearnet TCP transport.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TcpConfig {
    /// Whether to use TCP at all.
    pub enabled: bool,
    /// Where peers connect to (the committee file lists the address they dial).
    pub listen: SocketAddr,
    /// Deadline for establishing a TCP connection.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
}

/// Peer-link protocol limits and timers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinkConfig {
    /// Largest frame accepted or sent (bytes, without the 4-byte length); a larger one closes
    /// the connection.
    pub max_frame_bytes: usize,
    /// Deadline for the Hello/Proof handshake.
    #[serde(with = "humantime_serde")]
    pub handshake_timeout: Duration,
    /// How often each side sends Ping.
    #[serde(with = "humantime_serde")]
    pub ping_interval: Duration,
    /// A connection on which nothing arrives for this long is closed.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Most inbound handshakes in progress at once; further connections wait.
    pub max_pending_handshakes: usize,
    /// Most frames written to a socket before flushing, or read from it before handing them
    /// to the hub.
    pub batch_frames: usize,
}

/// Per-peer outbound queues of unacknowledged Data frames. When a queue is full the oldest
/// frame is dropped (consensus recovers lost messages through catch-up).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// Most frames per peer.
    pub max_frames: usize,
    /// Most payload bytes per peer.
    pub max_bytes: usize,
}

/// Inbound buffering per sender: frames delivered to consensus but not yet acknowledged, plus
/// frames that arrived ahead of a gap. When a sender's budget is used up, the gateway stops
/// reading from that sender until consensus acknowledges.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InboundConfig {
    /// Most frames held per sender.
    pub max_frames: usize,
    /// Most payload bytes held per sender.
    pub max_bytes: usize,
    /// How far ahead of the next expected sequence a frame may arrive and be kept.
    pub reorder_window: u64,
}

/// Jittered exponential backoff between dial attempts, per peer and transport.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackoffConfig {
    /// First delay.
    #[serde(with = "humantime_serde")]
    pub initial: Duration,
    /// Largest delay.
    #[serde(with = "humantime_serde")]
    pub max: Duration,
}

/// The `Link` stream to consensus.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsensusStreamConfig {
    /// Most payloads in one InboundBatch.
    pub max_batch_frames: usize,
    /// Most payload bytes in one InboundBatch (a single larger payload still goes alone).
    pub max_batch_bytes: usize,
    /// Largest gRPC message accepted or sent on the gateway API.
    pub max_message_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            replica: 0,
            committee: PathBuf::from("committee.json"),
            grpc_listen: SocketAddr::from(([127, 0, 0, 1], 7200)),
            ops_listen: SocketAddr::from(([127, 0, 0, 1], 9200)),
            keystore: KeystoreConfig::default(),
            tcp: TcpConfig::default(),
            link: LinkConfig::default(),
            queue: QueueConfig::default(),
            inbound: InboundConfig::default(),
            backoff: BackoffConfig::default(),
            consensus: ConsensusStreamConfig::default(),
            log: LogConfig::default(),
        }
    }
}

impl Default for KeystoreConfig {
    fn default() -> Self {
        Self {
            endpoint: "http://127.0.0.1:7300".to_owned(),
            timeout: Duration::from_secs(5),
        }
    }
}

impl Default for TcpConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([0, 0, 0, 0], 7000)),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self {
            max_frame_bytes: 16 << 20,
            handshake_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(20),
            max_pending_handshakes: 64,
            batch_frames: 256,
        }
    }
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            max_frames: 65_536,
            max_bytes: 256 << 20,
        }
    }
}

impl Default for InboundConfig {
    fn default() -> Self {
        Self {
            max_frames: 65_536,
            max_bytes: 256 << 20,
            reorder_window: 4096,
        }
    }
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
        }
    }
}

impl Default for ConsensusStreamConfig {
    fn default() -> Self {
        Self {
            max_batch_frames: 1024,
            max_batch_bytes: 4 << 20,
            max_message_bytes: 64 << 20,
        }
    }
}

impl Config {
    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), String> {
        if !self.tcp.enabled {
            return Err("no transport is enabled (tcp.enabled = false)".to_owned());
        }
        let link = &self.link;
        if link.max_frame_bytes < 1024 || link.max_frame_bytes > (u32::MAX as usize) {
            return Err("link.max_frame_bytes must be in 1024..=4294967295".to_owned());
        }
        if link.ping_interval.is_zero() || link.idle_timeout <= link.ping_interval {
            return Err(
                "link.ping_interval must be positive and shorter than link.idle_timeout".to_owned(),
            );
        }
        if link.handshake_timeout.is_zero() || self.tcp.connect_timeout.is_zero() {
            return Err(
                "link.handshake_timeout and tcp.connect_timeout must be positive".to_owned(),
            );
        }
        if link.max_pending_handshakes == 0 || link.batch_frames == 0 {
            return Err(
                "link.max_pending_handshakes and link.batch_frames must be at least 1".to_owned(),
            );
        }
        if self.queue.max_frames == 0 || self.queue.max_bytes < link.max_frame_bytes {
            return Err(
                "queue.max_frames must be at least 1 and queue.max_bytes at least link.max_frame_bytes"
                    .to_owned(),
            );
        }
        if self.inbound.max_frames == 0 || self.inbound.max_bytes < link.max_frame_bytes {
            return Err(
                "inbound.max_frames must be at least 1 and inbound.max_bytes at least link.max_frame_bytes"
                    .to_owned(),
            );
        }
        if self.backoff.initial.is_zero() || self.backoff.max < self.backoff.initial {
            return Err("backoff.initial must be positive and at most backoff.max".to_owned());
        }
        let consensus = &self.consensus;
        if consensus.max_batch_frames == 0 || consensus.max_batch_bytes == 0 {
            return Err(
                "consensus.max_batch_frames and consensus.max_batch_bytes must be at least 1"
                    .to_owned(),
            );
        }
        if consensus.max_message_bytes < link.max_frame_bytes + 1024 {
            return Err(
                "consensus.max_message_bytes must exceed link.max_frame_bytes by at least 1024"
                    .to_owned(),
            );
        }
        if self.keystore.timeout.is_zero() {
            return Err("keystore.timeout must be positive".to_owned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_nonsense_does_not() {
        assert_eq!(Config::default().validate(), Ok(()));
        let mut c = Config::default();
        c.link.idle_timeout = c.link.ping_interval;
        assert!(c.validate().is_err());
        let mut c = Config::default();
        c.queue.max_bytes = 10;
        assert!(c.validate().is_err());
        let mut c = Config::default();
        c.backoff.max = Duration::from_millis(1);
        assert!(c.validate().is_err());
        let mut c = Config::default();
        c.tcp.enabled = false;
        assert!(c.validate().is_err());
    }

    #[test]
    fn example_file_is_the_defaults() {
        let text = include_str!("../gateway.example.toml");
        let parsed: Config = toml_like(text);
        assert_eq!(parsed, Config::default());
    }

    /// Parses the example file through the same figment layering the binary uses.
    fn toml_like(text: &str) -> Config {
        let dir = std::env::temp_dir().join(format!("beat-gateway-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("gateway.toml");
        std::fs::write(&path, text).expect("write example");
        let config = beat_config::load::<Config>("gateway-example-test", Some(&path))
            .expect("the example file parses");
        let _ = std::fs::remove_dir_all(&dir);
        config
    }
}
