//! The BEAT consensus service.
//!
//! Runs one replica's protocol core ([`beat_core::BeatNode`]) and exposes the ordering API
//! (`beat.consensus.v1.OrderingService`). Secret-key operations go to the replica's keystore;
//! peer messages travel through the replica's gateway.
//!
//! # Durability
//!
//! Every event — a client submission, a peer message, a keystore reply — is appended to a
//! write-ahead log before the core processes it, and the log is flushed before any effect
//! leaves the process: messages to peers, acknowledgements of peer messages to the gateway, and
//! answers to `Submit`. After a crash, [`component::Component::open`] restores the last
//! checkpoint, resumes it and replays the log, which rebuilds the core exactly — so the replica
//! re-sends only messages it had sent before and never equivocates, and every transaction
//! acknowledged to a client is still pending or committed.
//!
//! Three rings: [`component::Component`] (synchronous, testable without actix),
//! [`actor::ConsensusActor`] (owns the component, on the service's one runtime thread), and the
//! tonic and link shells ([`grpc`], [`link`], [`keystore`]).
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod actor;
pub mod component;
pub mod config;
pub mod convert;
pub mod grpc;
pub mod keystore;
pub mod link;
pub mod metrics;
pub mod segments;
pub mod store;
pub mod watch;
pub use beat_core::wire;

use std::{
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use actix::Actor;
use anyhow::Context;
use beat_config::CommitteeFile;
use beat_proto::consensus::v1::ordering_service_server::OrderingServiceServer;
use beat_telemetry::{Health, shutdown::Shutdown};
use beat_types::NodeId;
use tokio::{net::TcpListener, sync::broadcast};

use crate::{
    actor::{ConsensusActor, Recovered},
    component::{Component, Limits},
    config::Config,
    grpc::{Info, OrderingGrpc},
    store::Store,
};

/// Serves the replica on the given listeners until `shutdown` triggers. Must run inside an
/// actix `System`.
pub async fn serve(
    config: Config,
    committee: CommitteeFile,
    grpc: TcpListener,
    ops: std::net::TcpListener,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let registry = beat_telemetry::metrics::registry();
    let metrics = metrics::Metrics::new(&registry)?;
    let grpc_addr = grpc.local_addr()?;
    let (incoming, connections) =
        beat_telemetry::api::limited_incoming(grpc, &config.api, &registry)?;
    // Built now, so that bad TLS or token files stop the service before it opens anything.
    let mut api_server = config.api.server(&registry, grpc_addr)?;
    let api_registry = registry.clone();
    let health = Health::default();
    let (_, ops_server) = beat_telemetry::ops::serve_listener(ops, registry, health.clone())?;
    let ops_handle = ops_server.handle();
    tokio::spawn(ops_server);

    let core = beat_core::Config {
        our_id: NodeId(config.replica),
        committee: committee.committee(),
        committee_digest: committee.digest(),
        keys: committee.public_keys(),
        params: committee.params.clone(),
    };
    core.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    let info = Info {
        replica: core.our_id,
        n: core.committee.n(),
        f: core.committee.f(),
        variant: core.params.variant,
    };
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    let store = Store::open(&config.data_dir)
        .with_context(|| format!("cannot open the store in {}", config.data_dir.display()))?;
    let limits = Limits {
        max_payload_bytes: config.max_payload_bytes,
        max_submit: config.max_submit_transactions,
        checkpoint_every: config.checkpoint_every_epochs,
        pipelining: config.pipelining,
        max_pending_per_source: config.max_pending_per_source,
    };
    let reader = store.batch_reader();
    let (component, recovered) = Component::open(core, store, limits)?;

    let (link_tx, link_rx) = tokio::sync::mpsc::unbounded_channel();
    let (keystore_tx, keystore_rx) = tokio::sync::mpsc::unbounded_channel();
    let (committed, _) = broadcast::channel(1024);
    let actor = ConsensusActor::new(
        component,
        link_tx,
        keystore_tx,
        committed.clone(),
        metrics.clone(),
        Duration::from_millis(config.stall_catch_up_ms),
    );
    // On this thread, with the link and the servers: no cross-thread hop per message (actor.rs).
    let addr = actor.start();
    addr.do_send(Recovered(recovered));

    let gateway_connected = Arc::new(AtomicBool::new(false));
    let keystore_connected = Arc::new(AtomicBool::new(false));
    let backoff = Duration::from_millis(config.max_backoff_ms);
    let link_task = tokio::spawn(link::run(
        link::LinkTask {
            endpoint: config.gateway_endpoint.clone(),
            actor: addr.clone(),
            connected: gateway_connected.clone(),
            metrics: metrics.clone(),
            max_message: config.max_grpc_message_bytes,
            max_backoff: backoff,
            shutdown: shutdown.clone(),
        },
        link_rx,
    ));
    let keystore_task = tokio::spawn(keystore::run(
        config.keystore_endpoint.clone(),
        addr.clone(),
        keystore_rx,
        keystore_connected.clone(),
        metrics.clone(),
        backoff,
        shutdown.clone(),
    ));

    let watchers = watch::Watchers::new(
        reader.clone(),
        committed,
        connections,
        config.watch.clone(),
        &api_registry,
    )?;
    let service = OrderingGrpc {
        actor: addr,
        watchers,
        reader,
        info,
        gateway_connected,
        keystore_connected,
    };
    let (reporter, mut routes) = beat_telemetry::grpc::standard_routes(&[<OrderingServiceServer<
        OrderingGrpc,
    > as tonic::server::NamedService>::NAME])?;
    routes.add_service(
        OrderingServiceServer::new(service)
            .max_decoding_message_size(config.api.max_request_bytes)
            .max_encoding_message_size(config.max_grpc_message_bytes),
    );
    reporter
        .set_serving::<OrderingServiceServer<OrderingGrpc>>()
        .await;
    health.set_ready(true);
    tracing::info!(replica = config.replica, grpc = %grpc_addr, "consensus ready");
    let stop = shutdown.clone();
    let result = api_server
        .add_routes(routes.routes())
        .serve_with_incoming_shutdown(incoming, async move { stop.wait().await })
        .await;
    health.set_ready(false);
    shutdown.trigger();
    let _ = link_task.await;
    let _ = keystore_task.await;
    ops_handle.stop(true).await;
    result.context("gRPC server failed")
}

/// Binds the configured addresses and serves until SIGTERM/SIGINT.
pub async fn run(config: Config) -> anyhow::Result<()> {
    config.validate().map_err(anyhow::Error::msg)?;
    let committee = CommitteeFile::load(&config.committee)?;
    let grpc = TcpListener::bind(config.grpc_listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.grpc_listen))?;
    let ops = beat_telemetry::ops::bind(config.ops_listen)?;
    let shutdown = Shutdown::on_signal();
    serve(config, committee, grpc, ops, shutdown).await
}
