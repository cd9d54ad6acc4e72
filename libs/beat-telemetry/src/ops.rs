//! The ops HTTP port: `/metrics`, `/healthz` (liveness) and `/readyz` (readiness).

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use actix_web::{App, HttpResponse, HttpServer, web};
use prometheus::Registry;

/// Liveness and readiness, shared between a service's parts and its probes.
///
/// Readiness means "can do its job now" (store open, keys loaded, dependencies reachable) —
/// never "a quorum of peers is up", or a cluster starting in parallel would never become ready.
#[derive(Clone, Debug)]
pub struct Health {
    live: Arc<AtomicBool>,
    ready: Arc<AtomicBool>,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            live: Arc::new(AtomicBool::new(true)),
            ready: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl Health {
    /// Marks the service ready or not.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// Marks the service live or not (a failed liveness check restarts the container).
    pub fn set_live(&self, live: bool) {
        self.live.store(live, Ordering::Release);
    }

    /// Whether the service is ready.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Whether the service is live.
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }
}

/// Binds the ops listener of a service (health probes and metrics), with the address in the
/// error.
pub fn bind(addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    use anyhow::Context as _;
    std::net::TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))
}

/// Serves the ops endpoints on `addr`. Returns the bound address (useful with port 0) and the
/// server to spawn; stop it through its handle.
pub fn serve(
    addr: SocketAddr,
    registry: Registry,
    health: Health,
) -> anyhow::Result<(SocketAddr, actix_web::dev::Server)> {
    serve_listener(bind(addr)?, registry, health)
}

/// Like [`serve`], on an already bound listener.
pub fn serve_listener(
    listener: std::net::TcpListener,
    registry: Registry,
    health: Health,
) -> anyhow::Result<(SocketAddr, actix_web::dev::Server)> {
    let registry = web::Data::new(registry);
    let health = web::Data::new(health);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(registry.clone())
            .app_data(health.clone())
            .route("/metrics", web::get().to(metrics))
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(2)
    .listen(listener)?;
    let bound = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| anyhow::anyhow!("ops server bound no address"))?;
    Ok((bound, server.run()))
}

async fn metrics(registry: web::Data<Registry>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(crate::metrics::encode(&registry))
}

async fn healthz(health: web::Data<Health>) -> HttpResponse {
    if health.is_live() {
        HttpResponse::Ok().body("ok\n")
    } else {
        HttpResponse::ServiceUnavailable().body("not live\n")
    }
}

async fn readyz(health: web::Data<Health>) -> HttpResponse {
    if health.is_ready() {
        HttpResponse::Ok().body("ready\n")
    } else {
        HttpResponse::ServiceUnavailable().body("not ready\n")
    }
}
