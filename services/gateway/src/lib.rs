//! The BEAT gateway service.
//!
//! Owns every peer link of one replica. It authenticates peers with the `beat.wire.v2`
//! handshake, an X25519 key exchange signed with each replica's Ed25519 identity (in the
//! committee file; the key itself stays in the keystore, which signs handshake transcripts),
//! seals every later frame with the keys it agrees ([`link::record`]), sends every outbound consensus message on
//! every enabled transport, retransmits until the peer's consensus has acknowledged it, drops
//! duplicates, and gives the local consensus service one ordered stream per sender over
//! `beat.gateway.v1.GatewayService/Link`. It never interprets payloads.
//!
//! Three rings: [`component::Router`] (synchronous bookkeeping: sequences, acknowledgements,
//! de-duplication, deliveries), [`actors::Hub`] (the actor owning it), and the shells: socket
//! tasks in [`link`] over the [`transport::Transport`]s, and the tonic service in [`grpc`].
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod actors;
pub mod component;
pub mod config;
pub mod grpc;
pub mod link;
pub mod metrics;
pub mod signer;
pub mod transport;

use std::{sync::Arc, time::Duration};

use actix::Actor;
use anyhow::Context as _;
use beat_config::CommitteeFile;
use beat_proto::gateway::v1::gateway_service_server::GatewayServiceServer;
use beat_telemetry::{Health, shutdown::Shutdown};
use beat_types::NodeId;
use parking_lot::Mutex;
use rand::rngs::SysRng;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{
    actors::Hub,
    component::{Limits, Router},
    config::Config,
    grpc::GatewayGrpc,
    link::{
        Context, LinkTable,
        handshake::{LocalIdentity, ResponderBudget},
        supervisor,
    },
    signer::{KeystoreSigner, Signer},
    transport::{I2pTransport, TcpTransport, TorTransport, Transport, peer_endpoint},
};

/// The name of the `grpc.health.v1` service that reports readiness (for Kubernetes gRPC
/// probes); the ops port's `/readyz` says the same.
pub const READINESS: &str = "readiness";

/// The sockets the gateway serves on, bound by the caller (port 0 in tests).
pub struct Listeners {
    /// The gateway API for consensus (a Unix socket in production).
    pub grpc: beat_telemetry::local::Listener,
    /// The ops HTTP port.
    pub ops: std::net::TcpListener,
    /// Every enabled transport, each with its inbound listener.
    pub transports: Vec<Arc<dyn Transport>>,
}

/// Serves the gateway until `shutdown` triggers. Must run inside an actix `System` (the hub
/// is an actor on the current arbiter).
pub async fn serve(
    config: Config,
    committee: CommitteeFile,
    signer: Arc<dyn Signer>,
    listeners: Listeners,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let n = committee.committee().n();
    let me = NodeId(config.replica);
    anyhow::ensure!(
        me.index() < n,
        "replica {me} is not in the committee of {n} replicas"
    );
    anyhow::ensure!(!listeners.transports.is_empty(), "no transport is enabled");
    let registry = beat_telemetry::metrics::registry();
    let metrics = metrics::Metrics::new(&registry)?;
    let health = Health::default();
    let mut rng = ChaCha20Rng::try_from_rng(&mut SysRng)
        .map_err(|e| anyhow::anyhow!("the operating system has no randomness: {e}"))?;
    let incarnation = rng.next_u64();
    let router = Router::new(me, n, incarnation, Limits::from_config(&config));
    let hub = Hub::new(router, &metrics).start();

    let stop = CancellationToken::new();
    {
        let (stop, shutdown) = (stop.clone(), shutdown.clone());
        tokio::spawn(async move {
            shutdown.wait().await;
            stop.cancel();
        });
    }
    let names: Vec<&'static str> = listeners.transports.iter().map(|t| t.name()).collect();
    let table = LinkTable::new(me, n, &names, &metrics);
    let ctx = Arc::new(Context {
        identity: LocalIdentity {
            me,
            incarnation,
            committee_digest: committee.digest(),
            identities: committee.keys.identities.clone(),
            signer: signer.clone(),
            responder_budget: Arc::new(ResponderBudget::default()),
        },
        link: config.link.clone(),
        backoff: config.backoff.clone(),
        hub: hub.clone(),
        metrics: metrics.clone(),
        table: table.clone(),
        rng: Mutex::new(rng),
        shutdown: stop.clone(),
    });
    spawn_links(&ctx, &listeners.transports, &committee);

    let (reporter, mut routes) = beat_telemetry::grpc::standard_routes(&[<GatewayServiceServer<
        GatewayGrpc,
    > as tonic::server::NamedService>::NAME])?;
    let service = GatewayGrpc {
        hub,
        table,
        me,
        n,
        batches: config.consensus.clone(),
        shutdown: stop.clone(),
    };
    routes.add_service(
        GatewayServiceServer::new(service)
            .max_decoding_message_size(config.consensus.max_message_bytes)
            .max_encoding_message_size(config.consensus.max_message_bytes),
    );
    reporter
        .set_serving::<GatewayServiceServer<GatewayGrpc>>()
        .await;
    reporter
        .set_service_status(READINESS, tonic_health::ServingStatus::NotServing)
        .await;
    let ops_server = {
        let (_, server) =
            beat_telemetry::ops::serve_listener(listeners.ops, registry, health.clone())?;
        server
    };
    let ops_handle = ops_server.handle();
    tokio::spawn(ops_server);
    tokio::spawn(become_ready(
        signer,
        (
            me,
            committee.digest(),
            committee.keys.identities[me.index()],
        ),
        health.clone(),
        reporter.clone(),
        stop.clone(),
    ));
    tracing::info!(
        replica = me.0,
        incarnation = format_args!("{incarnation:016x}"),
        grpc = %listeners.grpc.describe(),
        transports = ?names,
        "gateway started"
    );
    let result = tonic::transport::Server::builder()
        .add_routes(routes.routes())
        .serve_with_incoming_shutdown(listeners.grpc.incoming(), async move {
            shutdown.wait().await;
        })
        .await;
    stop.cancel();
    health.set_ready(false);
    ops_handle.stop(true).await;
    result.context("gRPC server failed")
}

/// Starts the accept loop of every transport and a dial loop per peer and transport.
fn spawn_links(ctx: &Arc<Context>, transports: &[Arc<dyn Transport>], committee: &CommitteeFile) {
    for transport in transports {
        let name = transport.name();
        tokio::spawn(
            supervisor::accept_loop(ctx.clone(), transport.clone())
                .instrument(tracing::info_span!("gateway.accept", transport = name)),
        );
        for entry in committee
            .replicas
            .iter()
            .filter(|r| r.id != ctx.identity.me)
        {
            let Some(status) = ctx.table.get(entry.id, name) else {
                continue;
            };
            let Some(endpoint) = peer_endpoint(&entry.endpoints, name) else {
                status.unavailable("the committee file lists no endpoint".to_owned());
                continue;
            };
            let span = tracing::info_span!("gateway.dial", peer = entry.id.0, transport = name);
            let dial = supervisor::dial_loop(
                ctx.clone(),
                transport.clone(),
                entry.id,
                endpoint.to_owned(),
            );
            tokio::spawn(dial.instrument(span));
        }
    }
}

/// Marks the gateway ready (ops `/readyz` and the gRPC `readiness` health service) once the
/// keystore confirms this replica's identity; the peer listeners are bound already.
async fn become_ready(
    signer: Arc<dyn Signer>,
    expected: (
        NodeId,
        beat_crypto::Digest,
        beat_crypto::identity::IdentityPublicKey,
    ),
    health: Health,
    reporter: tonic_health::server::HealthReporter,
    stop: CancellationToken,
) {
    tokio::select! {
        () = wait_for_keystore(signer.as_ref(), expected) => {
            health.set_ready(true);
            reporter.set_service_status(READINESS, tonic_health::ServingStatus::Serving).await;
            tracing::info!("ready: the keystore holds this replica's identity");
        }
        () = stop.cancelled() => {}
    }
}

/// Returns once the signer confirms this replica, committee and identity key; until then,
/// asks again every second. A keystore that holds another replica's key is reported as an
/// error, since only a configuration change fixes it.
async fn wait_for_keystore(
    signer: &dyn Signer,
    (me, digest, identity): (
        NodeId,
        beat_crypto::Digest,
        beat_crypto::identity::IdentityPublicKey,
    ),
) {
    let mut reported = false;
    loop {
        match signer.public_keys().await {
            Ok(keys)
                if keys.replica == me
                    && keys.committee_digest == digest
                    && keys.identity == identity =>
            {
                return;
            }
            Ok(keys) => {
                if !std::mem::replace(&mut reported, true) {
                    tracing::error!(
                        keystore_replica = keys.replica.0,
                        replica = me.0,
                        same_committee = keys.committee_digest == digest,
                        same_identity = keys.identity == identity,
                        "the keystore holds keys for another replica or committee"
                    );
                }
            }
            Err(e) => tracing::debug!(error = %e, "keystore not answering yet"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Loads the committee, binds the configured addresses and serves until SIGTERM/SIGINT.
pub async fn run(config: Config) -> anyhow::Result<()> {
    config.validate().map_err(anyhow::Error::msg)?;
    let committee = CommitteeFile::load(&config.committee)?;
    let signer = KeystoreSigner::new(&config.keystore.endpoint, config.keystore.timeout)?;
    let grpc = beat_telemetry::local::bind(&config.grpc_listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.grpc_listen))?;
    let ops = beat_telemetry::ops::bind(config.ops_listen)?;
    let mut transports: Vec<Arc<dyn Transport>> = Vec::new();
    if config.tcp.enabled {
        let listener = TcpListener::bind(config.tcp.listen)
            .await
            .with_context(|| format!("cannot listen for peers on {}", config.tcp.listen))?;
        transports.push(Arc::new(TcpTransport::new(
            listener,
            config.tcp.connect_timeout,
        )));
    }
    if config.tor.enabled {
        let tor = TorTransport::start(&config.tor)
            .await
            .context("cannot start the Tor transport")?;
        tracing::info!(transport = ?tor, "tor transport started");
        transports.push(Arc::new(tor));
    }
    if config.i2p.enabled {
        let i2p = I2pTransport::start(&config.i2p)
            .await
            .context("cannot start the I2P transport")?;
        transports.push(Arc::new(i2p));
    }
    let shutdown = Shutdown::on_signal();
    let listeners = Listeners {
        grpc,
        ops,
        transports,
    };
    serve(config, committee, Arc::new(signer), listeners, shutdown).await
}
