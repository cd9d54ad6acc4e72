//! Consensus configuration (`beat-consensus --config consensus.toml`, overridable with
//! `BEAT_CONSENSUS__*`).

use std::{net::SocketAddr, path::PathBuf};

use beat_telemetry::logging::LogConfig;
use serde::{Deserialize, Serialize};

/// The consensus service's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// This replica's index.
    pub replica: u32,
    /// The committee file.
    pub committee: PathBuf,
    /// Directory of the store (write-ahead log, checkpoints, committed batches).
    pub data_dir: PathBuf,
    /// Ordering API listen address.
    pub grpc_listen: SocketAddr,
    /// Ops HTTP listen address (`/metrics`, `/healthz`, `/readyz`).
    pub ops_listen: SocketAddr,
    /// The replica's keystore, its consensus socket (`unix:/path`; `http://host:port` for
    /// development).
    pub keystore_endpoint: String,
    /// The replica's gateway API (`unix:/path`; `http://host:port` for development).
    pub gateway_endpoint: String,
    /// Largest accepted payload from a peer, in bytes.
    pub max_payload_bytes: usize,
    /// Most transactions per Submit request.
    pub max_submit_transactions: usize,
    /// Most transactions one client source (an IPv4 address or an IPv6 /64) may have in the
    /// pending buffer at once; 0 for no limit. Loopback clients are not limited (the
    /// replica's own state service, or a service-mesh sidecar speaking for many clients:
    /// limit those in the mesh).
    pub max_pending_per_source: usize,
    /// Largest gRPC message to or from the gateway, and largest response to a client, in
    /// bytes (a batch in `WatchBatches` can be large). Client requests are limited by
    /// `api.max_request_bytes`.
    pub max_grpc_message_bytes: usize,
    /// Limits of the ordering API (connections, request size, timeouts).
    pub api: beat_telemetry::api::ApiLimits,
    /// Limits of `WatchBatches` (watchers, their memory, slow-watcher cutoff).
    pub watch: crate::watch::WatchLimits,
    /// Save a checkpoint and truncate the write-ahead log every this many epochs. While
    /// pipelining, these epochs are also the barriers: each one starts only once the epoch
    /// before it is committed (module `beat_core::node`, P5).
    pub checkpoint_every_epochs: u64,
    /// Start epoch e+1's broadcasts and agreements once n − f of e's broadcasts are delivered,
    /// while e agrees, decrypts and commits (module `beat_core::node`, P1–P5). A local setting: replicas that
    /// pipeline and replicas that do not run together. A change takes effect at the replica's
    /// next checkpoint. Off by default: measured, it lowers the p50 by ≈ 8 % where message
    /// delay dominates, and raises it where the machine's CPU is saturated (docs/benchmarks.md,
    /// "Pipelined epochs").
    pub pipelining: bool,
    /// Longest reconnect backoff to the gateway and keystore, in milliseconds.
    pub max_backoff_ms: u64,
    /// Ask peers that announced later epochs for the committed batches once this replica has
    /// made no progress for this long, in milliseconds (catch-up when idle, N5' in the core).
    pub stall_catch_up_ms: u64,
    /// Logging.
    pub log: LogConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            replica: 0,
            committee: PathBuf::from("committee.json"),
            data_dir: PathBuf::from("data/consensus"),
            grpc_listen: SocketAddr::from(([127, 0, 0, 1], 7100)),
            ops_listen: SocketAddr::from(([127, 0, 0, 1], 9100)),
            keystore_endpoint: "unix:run/keystore-consensus.sock".to_owned(),
            gateway_endpoint: "unix:run/gateway.sock".to_owned(),
            max_payload_bytes: 16 << 20,
            max_submit_transactions: 10_000,
            max_pending_per_source: 12_500,
            max_grpc_message_bytes: 64 << 20,
            api: beat_telemetry::api::ApiLimits::default(),
            watch: crate::watch::WatchLimits::default(),
            checkpoint_every_epochs: 8,
            pipelining: false,
            max_backoff_ms: 5_000,
            stall_catch_up_ms: 2_000,
            log: LogConfig::default(),
        }
    }
}

impl Config {
    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), String> {
        for (name, url) in [
            ("keystore_endpoint", &self.keystore_endpoint),
            ("gateway_endpoint", &self.gateway_endpoint),
        ] {
            let unix = url.strip_prefix(beat_telemetry::local::UNIX);
            if unix.is_some_and(str::is_empty)
                || (unix.is_none() && !(url.starts_with("http://") || url.starts_with("https://")))
            {
                return Err(format!(
                    "{name} must be unix:/path or an http:// or https:// URL, got {url:?}"
                ));
            }
        }
        if self.max_submit_transactions == 0 || self.checkpoint_every_epochs == 0 {
            return Err(
                "max_submit_transactions and checkpoint_every_epochs must be at least 1".to_owned(),
            );
        }
        if self.stall_catch_up_ms == 0 {
            return Err("stall_catch_up_ms must be at least 1".to_owned());
        }
        self.api.validate()?;
        self.watch.validate()?;
        if self.max_payload_bytes < 1024 {
            return Err("max_payload_bytes must be at least 1024".to_owned());
        }
        Ok(())
    }
}
