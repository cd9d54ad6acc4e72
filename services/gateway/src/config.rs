//! Gateway configuration (`beat-gateway --config gateway.toml`, overridable with
//! `BEAT_GATEWAY__*`, e.g. `BEAT_GATEWAY__TCP__LISTEN=0.0.0.0:7000`).
//!
//! `gateway.example.toml` next to `Cargo.toml` documents every key with its default.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use beat_telemetry::{local::ListenAddr, logging::LogConfig};
use serde::{Deserialize, Serialize};

/// The gateway's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// This replica's index.
    pub replica: u32,
    /// The committee file (public keys and every replica's endpoints).
    pub committee: PathBuf,
    /// Where the gateway API listens: a Unix socket (`unix:/path`) in a directory only this
    /// replica's services can enter. Only the replica's own consensus service calls it (the
    /// `Link` stream carries every peer message); anyone who can connect could take it over.
    pub grpc_listen: ListenAddr,
    /// Ops HTTP listen address (`/metrics`, `/healthz`, `/readyz`).
    pub ops_listen: SocketAddr,
    /// The keystore that signs handshake transcripts.
    pub keystore: KeystoreConfig,
    /// Clearnet TCP transport.
    pub tcp: TcpConfig,
    /// Tor transport.
    pub tor: TorConfig,
    /// I2P transport.
    pub i2p: I2pConfig,
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
    /// The keystore's gateway socket (`unix:/path`; `http://host:port` for development).
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

/// The Tor transport: an embedded arti client with an onion service, or an external tor
/// reached through SOCKS5 (see [`crate::transport::TorTransport`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TorConfig {
    /// Whether to use Tor at all.
    pub enabled: bool,
    /// arti's state: guards and the onion service's identity key (which fixes its address).
    /// Relative paths are relative to the working directory. Keep it on persistent storage.
    pub state_dir: PathBuf,
    /// arti's directory cache.
    pub cache_dir: PathBuf,
    /// An extra arti configuration file (arti's TOML), merged under the storage settings:
    /// e.g. a private Tor network's `[tor_network]` authorities and fallback caches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arti_config: Option<PathBuf>,
    /// Run an onion service for inbound peers (embedded mode).
    pub onion_service: bool,
    /// The onion service's nickname: its keys live under this name in the state directory.
    pub nickname: String,
    /// The virtual port in this replica's committee endpoint `<address>.onion:<port>`.
    pub onion_port: u16,
    /// External mode: an operator's tor SOCKS5 proxy (`host:port`); arti is not started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socks5: Option<String>,
    /// External mode: where the operator's tor forwards its onion service (`HiddenServicePort`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// Deadline for establishing one connection (a first onion-service connection fetches a
    /// descriptor and builds a rendezvous circuit: seconds, more on the public network).
    /// Through the embedded client, a dial still pending after a quarter of this gets a
    /// second, independent attempt beside it (`transport::tor`).
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Introduction requests per second the onion service asks its introduction points to
    /// pass on (Tor's `DOS_PARAMS`, enforced by the introduction points); a committee of a
    /// few dozen replicas that redial now and then needs far less.
    pub intro_rate: u32,
    /// Burst of introduction requests above `intro_rate`.
    pub intro_burst: u32,
    /// Most rendezvous circuits being completed at once (each costs circuit building); further
    /// requests wait in arti's bounded queue.
    pub max_rendezvous: usize,
    /// Most streams a client may open on one rendezvous circuit before Tor tears it down (a
    /// peer's gateway opens one per connection).
    pub max_streams_per_circuit: u32,
}

/// The I2P transport: a STREAM session on a SAM v3.1 bridge (see
/// [`crate::transport::I2pTransport`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct I2pConfig {
    /// Whether to use I2P at all.
    pub enabled: bool,
    /// The SAM bridge (`host:port`; i2pd and Java I2P listen on 7656).
    pub sam: String,
    /// The private destination (created through the bridge on first use, mode 0600). It
    /// fixes this replica's I2P address: keep it on persistent storage.
    pub key_file: PathBuf,
    /// Extra `SESSION CREATE` options, e.g. `"inbound.length" = "1"`.
    pub options: std::collections::BTreeMap<String, String>,
    /// Deadline for establishing one stream (I2P tunnels take seconds).
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Deadline for creating a session (the bridge builds tunnels first).
    #[serde(with = "humantime_serde")]
    pub session_timeout: Duration,
}

/// Peer-link protocol limits and timers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinkConfig {
    /// Largest frame accepted or sent (bytes, without the 4-byte length); a larger one closes
    /// the connection.
    pub max_frame_bytes: usize,
    /// Deadline for the whole handshake (Hellos and Proofs, including the keystore's
    /// signature).
    #[serde(with = "humantime_serde")]
    pub handshake_timeout: Duration,
    /// Deadline for the peer's first frame (its Hello): a connection that sends nothing gives
    /// up its admission slot after this.
    #[serde(with = "humantime_serde")]
    pub hello_timeout: Duration,
    /// How often each side sends Ping.
    #[serde(with = "humantime_serde")]
    pub ping_interval: Duration,
    /// A connection on which nothing arrives for this long is closed.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Most inbound handshakes in progress at once per transport; a connection beyond it
    /// evicts the oldest pending one.
    pub max_pending_handshakes: usize,
    /// Most inbound handshakes in progress at once from one source (a TCP peer's IP address,
    /// an I2P destination); a connection beyond it is closed at once. Tor gives no source, so
    /// only the per-transport limit applies there.
    pub max_pending_handshakes_per_source: usize,
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
            grpc_listen: ListenAddr::Unix(PathBuf::from("run/gateway.sock")),
            ops_listen: SocketAddr::from(([127, 0, 0, 1], 9200)),
            keystore: KeystoreConfig::default(),
            tcp: TcpConfig::default(),
            tor: TorConfig::default(),
            i2p: I2pConfig::default(),
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
            endpoint: "unix:run/keystore-gateway.sock".to_owned(),
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

impl Default for TorConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            state_dir: PathBuf::from("tor/state"),
            cache_dir: PathBuf::from("tor/cache"),
            arti_config: None,
            onion_service: true,
            nickname: "beat-gateway".to_owned(),
            onion_port: 7000,
            socks5: None,
            listen: None,
            connect_timeout: Duration::from_secs(60),
            intro_rate: 10,
            intro_burst: 100,
            max_rendezvous: 16,
            max_streams_per_circuit: 4,
        }
    }
}

impl Default for I2pConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            sam: "127.0.0.1:7656".to_owned(),
            key_file: PathBuf::from("i2p/destination.key"),
            options: std::collections::BTreeMap::new(),
            connect_timeout: Duration::from_secs(120),
            session_timeout: Duration::from_secs(300),
        }
    }
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self {
            max_frame_bytes: 16 << 20,
            handshake_timeout: Duration::from_secs(10),
            hello_timeout: Duration::from_secs(3),
            ping_interval: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(20),
            max_pending_handshakes: 64,
            max_pending_handshakes_per_source: 16,
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
        if !self.tcp.enabled && !self.tor.enabled && !self.i2p.enabled {
            return Err(
                "no transport is enabled (tcp, tor and i2p all have enabled = false)".to_owned(),
            );
        }
        if self.i2p.enabled
            && (self.i2p.connect_timeout.is_zero() || self.i2p.session_timeout.is_zero())
        {
            return Err("i2p.connect_timeout and i2p.session_timeout must be positive".to_owned());
        }
        if self.tor.enabled {
            let tor = &self.tor;
            if tor.connect_timeout.is_zero() {
                return Err("tor.connect_timeout must be positive".to_owned());
            }
            if tor.intro_rate == 0
                || tor.intro_burst < tor.intro_rate
                || tor.max_rendezvous == 0
                || tor.max_streams_per_circuit == 0
            {
                return Err(
                    "tor.intro_rate, tor.max_rendezvous and tor.max_streams_per_circuit \
                     must be at least 1, and tor.intro_burst at least tor.intro_rate"
                        .to_owned(),
                );
            }
            if tor.onion_port == 0 {
                return Err("tor.onion_port must be a port number".to_owned());
            }
            if tor.socks5.is_none() && tor.listen.is_some() {
                return Err(
                    "tor.listen is only for the external mode (tor.socks5); the embedded mode \
                     serves peers through its own onion service"
                        .to_owned(),
                );
            }
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
        if link.hello_timeout.is_zero() || link.hello_timeout > link.handshake_timeout {
            return Err(
                "link.hello_timeout must be positive and at most link.handshake_timeout".to_owned(),
            );
        }
        if link.max_pending_handshakes == 0
            || link.max_pending_handshakes_per_source == 0
            || link.batch_frames == 0
        {
            return Err(
                "link.max_pending_handshakes, link.max_pending_handshakes_per_source \
                 and link.batch_frames must be at least 1"
                    .to_owned(),
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
        c.tor.enabled = true;
        assert_eq!(c.validate(), Ok(()));
        c.tor.listen = Some(SocketAddr::from(([127, 0, 0, 1], 7010)));
        assert!(c.validate().is_err());
        c.tor.socks5 = Some("127.0.0.1:9050".to_owned());
        assert_eq!(c.validate(), Ok(()));
        c.tor.connect_timeout = Duration::ZERO;
        assert!(c.validate().is_err());
        let mut c = Config::default();
        c.tcp.enabled = false;
        c.i2p.enabled = true;
        assert_eq!(c.validate(), Ok(()));
        c.i2p.session_timeout = Duration::ZERO;
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
