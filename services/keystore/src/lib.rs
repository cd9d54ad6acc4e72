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
//! [`grpc::KeystoreGrpc`] (the tonic shell).
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod actors;
pub mod component;
pub mod config;
pub mod grpc;
pub mod metrics;

use std::sync::Arc;

use actix::SyncArbiter;
use anyhow::Context;
use beat_config::CommitteeFile;
use beat_crypto::{
    dealer::ReplicaSecrets,
    keystore_file::{self, KdfParams, Passphrase},
};
use beat_proto::keystore::v1::keystore_service_server::KeystoreServiceServer;
use beat_telemetry::{Health, shutdown::Shutdown};
use beat_types::NodeId;
use tokio::net::TcpListener;

use crate::{actors::SignerActor, component::Keystore, config::Config, grpc::KeystoreGrpc};

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
        (Some(path), _) => Passphrase::from_file(path)?,
        (None, Some(var)) => Passphrase::from_env(var)?,
        (None, None) => anyhow::bail!("no passphrase source configured"),
    };
    let file = std::fs::read(&config.keystore_file).with_context(|| {
        format!(
            "cannot read keystore file {}",
            config.keystore_file.display()
        )
    })?;
    let payload = keystore_file::open_with_kdf_ceiling(&passphrase, &file, &KDF_CEILING)
        .with_context(|| {
            format!(
                "cannot open keystore file {}",
                config.keystore_file.display()
            )
        })?;
    let secrets: ReplicaSecrets = postcard::from_bytes(&payload)
        .context("keystore file payload is not a replica's secrets")?;
    Keystore::new(
        secrets,
        Arc::new(committee.keys.clone()),
        committee.digest(),
        NodeId(config.replica),
    )
    .map_err(anyhow::Error::msg)
}

/// Serves the keystore on the given listeners until `shutdown` triggers. Must run inside an
/// actix `System` (the signer pool is a `SyncArbiter`).
pub async fn serve(
    config: Config,
    keystore: Keystore,
    grpc: TcpListener,
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
    let service = KeystoreGrpc {
        signer,
        keystore: keystore.clone(),
        metrics,
        max_batch: config.max_batch,
        threads: config.signer_threads,
    };
    let (reporter, mut routes) = beat_telemetry::grpc::standard_routes()?;
    routes.add_service(
        KeystoreServiceServer::new(service)
            .max_decoding_message_size(256 << 20)
            .max_encoding_message_size(256 << 20),
    );
    reporter
        .set_serving::<KeystoreServiceServer<KeystoreGrpc>>()
        .await;
    let ops_server = {
        let (_, server) = beat_telemetry::ops::serve_listener(ops, registry, health.clone())?;
        server
    };
    let ops_handle = ops_server.handle();
    tokio::spawn(ops_server);
    health.set_ready(true);
    tracing::info!(
        replica = keystore.replica().0,
        identity = %keystore.identity(),
        grpc = %grpc.local_addr()?,
        "keystore ready"
    );
    let stop = shutdown.clone();
    let result = tonic::transport::Server::builder()
        .add_routes(routes.routes())
        .serve_with_incoming_shutdown(beat_telemetry::grpc::incoming(grpc), async move {
            stop.wait().await
        })
        .await;
    health.set_ready(false);
    ops_handle.stop(true).await;
    result.context("gRPC server failed")
}

/// Binds the configured addresses and serves until SIGTERM/SIGINT.
pub async fn run(config: Config) -> anyhow::Result<()> {
    config.validate().map_err(anyhow::Error::msg)?;
    let keystore = load(&config)?;
    let grpc = TcpListener::bind(config.grpc_listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.grpc_listen))?;
    let ops = std::net::TcpListener::bind(config.ops_listen)
        .with_context(|| format!("cannot listen on {}", config.ops_listen))?;
    let shutdown = Shutdown::default();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        beat_telemetry::shutdown::signal().await;
        trigger.trigger();
    });
    serve(config, keystore, grpc, ops, shutdown).await
}
