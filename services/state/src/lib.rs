//! The BEAT state service: the reference application DataFeed → MarketBatch → BEAT →
//! MarketState.
//!
//! Market events (venue quotes and trades, orders and cancels for a replicated order book) come
//! from gRPC clients (`Publish`) and from a synthetic feed; each event becomes one transaction
//! submitted to the replica's consensus service (TDH2-encrypted by the client in BEAT2). The
//! service streams the committed batches back, applies them deterministically to a
//! sled-backed market state whose hash is identical at every honest replica, and serves
//! queries and per-epoch subscriptions.
//!
//! Three rings:
//! - pure: [`market::MarketState`] (the state machine and its hash chain) and
//!   [`feed::Feed`] (the generator and the bounded MarketBatch queue);
//! - components: [`applier::Applier`] (state + [`store::Store`], one atomic write per epoch)
//!   and [`encode::TxEncoder`] (with the BEAT2 client key of [`client_key`]);
//! - shells: [`actors::ApplierActor`] and [`actors::FeedActor`], the consensus tasks in
//!   [`pipeline`], and the tonic service [`grpc::MarketGrpc`].
//!
//! The service must not reorder, drop or invent committed transactions, and must never start
//! from a store it cannot read: a corrupt store is an error, not a reset.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod actors;
pub mod applier;
pub mod client_key;
pub mod config;
pub mod consensus;
pub mod encode;
pub mod error;
pub mod feed;
pub mod grpc;
pub mod market;
pub mod metrics;
pub mod pipeline;
pub mod store;

use std::sync::Arc;

use actix::{Actor, Arbiter};
use anyhow::Context as _;
use beat_config::CommitteeFile;
use beat_proto::state::v1::market_service_server::MarketServiceServer;
use beat_telemetry::{Health, shutdown::Shutdown};
use tokio::{
    net::TcpListener,
    sync::{Notify, broadcast},
};

use crate::{
    actors::{ApplierActor, FeedActor, Stop},
    applier::Applier,
    config::Config,
    consensus::Consensus,
    encode::TxEncoder,
    feed::{Feed, FeedGenerator, feed_seed, feed_source},
    grpc::MarketGrpc,
    metrics::{Connectivity, Metrics},
    pipeline::FeedSubmitter,
    store::Store,
};

/// Live epoch reports buffered per `WatchState` subscriber before it must catch up from the
/// store.
const LIVE_REPORTS: usize = 256;

/// Serves the market on the given listeners until `shutdown` triggers (or the store fails).
/// Must run inside an actix `System` on a Tokio runtime.
///
/// Refuses to start if the configuration is invalid, the committee delivers commitments only,
/// the store is corrupt or was written with other market parameters, or (BEAT2) the client key
/// file is corrupt. It is ready (`/readyz`,
/// gRPC health) once the store is open, whether or not consensus is reachable yet.
pub async fn serve(
    config: Config,
    committee: CommitteeFile,
    grpc: TcpListener,
    ops: std::net::TcpListener,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    config.validate().map_err(anyhow::Error::msg)?;
    let grpc_addr = grpc.local_addr()?;
    let needs_client_key = TxEncoder::needs_client_key(&committee)?;
    let store = Store::open(&config.store)?;
    // After the store: its lock keeps a second instance from racing to create the key.
    let client = needs_client_key
        .then(|| client_key::load_or_create(&config.store.client_key))
        .transpose()?;
    let encoder = Arc::new(TxEncoder::for_committee(&committee, client)?);
    let applier = Applier::open(store.clone(), &config.market)?;
    let registry = beat_telemetry::metrics::registry();
    let metrics = Metrics::new(&registry)?;
    let (incoming, connections) =
        beat_telemetry::api::limited_incoming(grpc, &config.api, &registry)?;
    // Built now, so that bad TLS or token files stop the service before it opens anything.
    let mut api_server = config.api.server(&registry, grpc_addr)?;
    if let Some(epoch) = applier.state().applied_epoch() {
        metrics
            .applied_epoch
            .set(i64::try_from(epoch).unwrap_or(i64::MAX));
    }
    let connectivity = Connectivity::new(metrics.consensus_connected.clone());
    let consensus =
        Consensus::new(&config.consensus).context("consensus.endpoint or consensus.auth")?;
    let feed_start = match config.feed.enabled {
        true => Some(store.next_feed_start()?),
        false => None,
    };
    let feed_key = feed_key(&config)?;
    if config.market.sources.is_empty() {
        tracing::warn!(
            "market.sources is empty: an open market, where anyone who can publish can publish \
             as any source (register the sources' keys for production; docs/security.md)"
        );
    }
    let health = Health::default();
    let (reporter, mut routes) = beat_telemetry::grpc::standard_routes(&[<MarketServiceServer<
        MarketGrpc,
    > as tonic::server::NamedService>::NAME])?;
    let (_, ops_server) = beat_telemetry::ops::serve_listener(ops, registry, health.clone())?;
    tracing::info!(
        replica = config.replica,
        variant = committee.params.variant.as_str(),
        applied_epoch = ?applier.state().applied_epoch(),
        state_hash = %applier.state().state_hash(),
        store = %store.path().display(),
        "market state loaded"
    );

    // The applier gets its own thread: applying and flushing an epoch is blocking work.
    // (Starting actors in arbiters of their own also lets `serve` run on any Tokio task.)
    let arbiter = Arbiter::new();
    let (reports, _) = broadcast::channel(LIVE_REPORTS);
    let applier = {
        let (metrics, reports) = (metrics.clone(), reports.clone());
        ApplierActor::start_in_arbiter(&arbiter.handle(), move |_| ApplierActor {
            applier,
            metrics,
            reports,
        })
    };
    let watcher = tokio::spawn(pipeline::watch_batches(
        consensus.clone(),
        applier.clone(),
        consensus::backoff(&config.consensus),
        connectivity.clone(),
        shutdown.clone(),
    ));
    let feed = feed_start.map(|start| {
        let source = feed_source(config.replica, start);
        let seed = feed_seed(config.feed.seed, config.replica, start);
        let mut generator = FeedGenerator::new(&config.feed, source, seed);
        if let Some(key) = &feed_key {
            generator = generator.signed_by(key.clone());
        }
        let queued = Arc::new(Notify::new());
        let actor = FeedActor {
            feed: Feed::new(&config.feed, generator),
            interval: config.feed.batch_interval,
            metrics: metrics.clone(),
            queued: queued.clone(),
        };
        // Its own thread too, so that `serve` needs no actix arbiter of its caller's.
        let arbiter = Arbiter::new();
        let actor = FeedActor::start_in_arbiter(&arbiter.handle(), move |_| actor);
        let submitter = FeedSubmitter {
            consensus: consensus.clone(),
            feed: actor.clone(),
            encoder: encoder.clone(),
            queued,
            max_batch_events: config.feed.max_batch_events,
            backoff: consensus::backoff(&config.consensus),
            metrics: metrics.clone(),
        };
        let submitter = tokio::spawn(submitter.run(shutdown.clone()));
        (actor, arbiter, submitter)
    });

    let watchers = grpc::Watchers::default();
    let service = MarketGrpc {
        applier: applier.clone(),
        consensus,
        encoder,
        store: store.clone(),
        reports,
        connectivity,
        replica: config.replica,
        feed_running: feed.is_some(),
        shutdown: shutdown.clone(),
        watchers: watchers.clone(),
        sources: Arc::new(config.market.sources.clone()),
        watch: config.watch.clone(),
        watch_slots: grpc::WatchSlots::default(),
        connections,
    };
    routes.add_service(
        MarketServiceServer::new(service).max_decoding_message_size(config.api.max_request_bytes),
    );
    reporter
        .set_serving::<MarketServiceServer<MarketGrpc>>()
        .await;
    let ops_handle = ops_server.handle();
    tokio::spawn(ops_server);
    health.set_ready(true);
    tracing::info!(grpc = %grpc_addr, "state service ready");
    let stop = shutdown.clone();
    let served = api_server
        .add_routes(routes.routes())
        .serve_with_incoming_shutdown(incoming, async move { stop.wait().await })
        .await;

    // Tear down in dependency order, so that the store is closed (and its lock released) when
    // this returns.
    health.set_ready(false);
    shutdown.trigger();
    watchers.stop().await;
    let watched = watcher.await;
    if let Some((actor, feed_arbiter, submitter)) = feed {
        let _ = submitter.await;
        stop_in(actor, feed_arbiter).await;
    }
    stop_in(applier, arbiter).await;
    let flushed = store.flush();
    drop(store);
    ops_handle.stop(true).await;
    served.context("gRPC server failed")?;
    watched.context("batch watcher panicked")??;
    flushed?;
    Ok(())
}

/// Stops an actor, then the arbiter thread it runs on, and waits for the thread to end (so
/// that everything the actor owned is dropped).
async fn stop_in<A>(actor: actix::Addr<A>, arbiter: Arbiter)
where
    A: Actor<Context = actix::Context<A>> + actix::Handler<Stop>,
{
    let _ = actor.send(Stop).await;
    drop(actor);
    arbiter.stop();
    let _ = tokio::task::spawn_blocking(move || arbiter.join()).await;
}

/// The feed's signing key: required, and registered as [`feed::feed_owner`], when the market
/// has a source registry; optional otherwise.
fn feed_key(
    config: &Config,
) -> anyhow::Result<Option<Arc<beat_crypto::identity::IdentityKeypair>>> {
    if !config.feed.enabled {
        return Ok(None);
    }
    let owner = feed::feed_owner(config.replica);
    let Some(path) = &config.feed.key_file else {
        if config.market.sources.is_empty() {
            return Ok(None);
        }
        anyhow::bail!(
            "the market has a source registry, so the feed must sign: set feed.key_file and \
             register its public key as market.sources.{owner}"
        );
    };
    let key = client_key::load_or_create(path)?;
    if !config.market.sources.is_empty() && config.market.sources.get(&owner) != Some(&key.public())
    {
        anyhow::bail!(
            "the feed's key {} ({}) is not registered as market.sources.{owner}: every event it \
             publishes would be skipped",
            key.public(),
            path.display()
        );
    }
    Ok(Some(Arc::new(key)))
}

/// Loads the committee, binds the configured addresses and serves until SIGTERM/SIGINT.
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
