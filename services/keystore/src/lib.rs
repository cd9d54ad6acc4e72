//! The BEAT keystore service.
//!
//! Holds one replica's secret key shares — the Ed25519 identity, the threshold BLS coin share and
//! the TDH2 decryption share — loaded from a passphrase-encrypted keystore file, and performs
//! secret-key operations for the replica's consensus and gateway services in batches. It never
//! returns a secret, and it releases a decryption share only for a ciphertext that verifies and
//! carries its expected label.
//!
//! Three rings: [`component::Keystore`] (synchronous, the secrets and the operations),
//! [`actors::SignerActor`] (a `SyncArbiter` pool running them off the I/O threads), and
//! [`grpc::KeystoreGrpc`] (the tonic shell). [`file`](mod@file) reads and writes the keystore
//! file and reads its passphrase (`beat_crypto` only defines the format and does no I/O).
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod actors;
pub mod component;
pub mod config;
pub mod file;
pub mod grpc;
pub mod metrics;

use std::sync::Arc;

use actix::SyncArbiter;
use anyhow::Context;
use beat_config::CommitteeFile;
use beat_crypto::{dealer::ReplicaSecrets, keystore_file::KdfParams};
use beat_proto::keystore::v1::keystore_service_server::KeystoreServiceServer;
use beat_telemetry::{
    Health,
    local::{self, Listener},
    shutdown::Shutdown,
};
use beat_types::NodeId;

pub use crate::grpc::Caller;
use crate::{
    actors::SignerActor,
    component::Keystore,
    config::Config,
    grpc::{Guarded, KeystoreGrpc},
};

/// The highest key-derivation cost the loader accepts: far above what `beat keygen` writes, far
/// below what a hostile file could demand (minutes of CPU and gigabytes of memory).
const KDF_CEILING: KdfParams = KdfParams {
    m_cost_kib: 1024 * 1024,
    t_cost: 16,
    p_cost: 8,
};

/// Reads the passphrase, decrypts the keystore file and checks it against the committee.
pub fn load(config: &Config) -> anyhow::Result<Keystore> {
    let committee = CommitteeFile::load(&config.committee)?;
    let passphrase = match (&config.passphrase_file, &config.passphrase_env) {
        (Some(path), _) => file::passphrase_from_file(path)?,
        (None, Some(var)) => file::passphrase_from_env(var)?,
        (None, None) => anyhow::bail!("no passphrase source configured"),
    };
    let path = &config.keystore_file;
    let payload =
        file::open_file_with_kdf_ceiling(path, &passphrase, &KDF_CEILING).map_err(|error| {
            match error {
                file::FileError::Io { source, .. } => anyhow::Error::new(source)
                    .context(format!("cannot read keystore file {}", path.display())),
                other => anyhow::Error::new(other)
                    .context(format!("cannot open keystore file {}", path.display())),
            }
        })?;
    let secrets: ReplicaSecrets = postcard::from_bytes(&payload)
        .context("keystore file payload is not a replica's secrets")?;
    Keystore::new(
        secrets,
        Arc::new(committee.keys.clone()),
        committee.digest(),
        NodeId(config.replica),
    )
    .map(|k| k.with_params(&committee.params))
    .map_err(anyhow::Error::msg)
}

/// Serves the keystore until `shutdown` triggers: on each listener the methods its caller may
/// use ([`Caller`]), no reflection (nobody needs to discover the keystore's API), and the
/// health checks on the ops port. Must run inside an actix `System` (the signer pool is a
/// `SyncArbiter`).
pub async fn serve(
    config: Config,
    keystore: Keystore,
    listeners: Vec<(Listener, Caller)>,
    ops: std::net::TcpListener,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let registry = beat_telemetry::metrics::registry();
    let metrics = metrics::Metrics::new(&registry)?;
    let health = Health::default();
    let keystore = Arc::new(keystore);
    let shared = keystore.clone();
    let signer = SyncArbiter::start(config.signer_threads, move || SignerActor {
        keystore: shared.clone(),
    });
    let service = Arc::new(KeystoreGrpc {
        signer,
        policy: parking_lot::Mutex::new(keystore.signing_policy()),
        keystore: keystore.clone(),
        metrics,
        max_batch: config.max_batch,
        threads: config.signer_threads,
        handshakes: parking_lot::Mutex::new(beat_telemetry::limit::TokenBucket::new(
            config.handshake_signatures_per_second,
            config.handshake_burst,
        )),
    });
    let ops_server = {
        let (_, server) = beat_telemetry::ops::serve_listener(ops, registry, health.clone())?;
        server
    };
    let ops_handle = ops_server.handle();
    tokio::spawn(ops_server);
    let mut servers = tokio::task::JoinSet::new();
    let mut described = Vec::new();
    for (listener, caller) in listeners {
        described.push(format!("{caller:?}: {}", listener.describe()));
        let guarded = KeystoreServiceServer::new(Guarded::new(service.clone(), caller))
            .max_decoding_message_size(256 << 20)
            .max_encoding_message_size(256 << 20);
        let stop = shutdown.clone();
        servers.spawn(
            tonic::transport::Server::builder()
                .add_service(guarded)
                .serve_with_incoming_shutdown(
                    listener.incoming(),
                    async move { stop.wait().await },
                ),
        );
    }
    health.set_ready(true);
    tracing::info!(
        replica = keystore.replica().0,
        identity = %keystore.identity(),
        listeners = ?described,
        "keystore ready"
    );
    let mut result = Ok(());
    while let Some(done) = servers.join_next().await {
        let failed = match done {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => anyhow::Error::new(e).context("gRPC server failed"),
            Err(e) => anyhow::Error::new(e).context("gRPC server task failed"),
        };
        // One socket failing takes the keystore down: its callers cannot work half-served.
        shutdown.trigger();
        if result.is_ok() {
            result = Err(failed);
        }
    }
    health.set_ready(false);
    ops_handle.stop(true).await;
    result
}

/// Binds the configured addresses and serves until SIGTERM/SIGINT.
pub async fn run(config: Config) -> anyhow::Result<()> {
    config.validate().map_err(anyhow::Error::msg)?;
    let keystore = load(&config)?;
    let mut listeners = Vec::new();
    for (addr, caller) in [
        (&config.consensus_listen, Caller::Consensus),
        (&config.gateway_listen, Caller::Gateway),
    ] {
        let listener = local::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        listeners.push((listener, caller));
    }
    let ops = beat_telemetry::ops::bind(config.ops_listen)?;
    let shutdown = Shutdown::on_signal();
    serve(config, keystore, listeners, ops, shutdown).await
}
