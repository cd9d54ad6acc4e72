//! What the API tests share: a real server within given limits.

use beat_telemetry::api::{ApiLimits, limited_incoming};

/// Serves health and reflection on a loopback port within `limits` (and who may call them);
/// returns the address and the registry its metrics are in.
pub async fn serve_with(limits: ApiLimits) -> (std::net::SocketAddr, prometheus::Registry) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let registry = prometheus::Registry::new();
    let (incoming, _connections) = limited_incoming(listener, &limits, &registry).unwrap();
    let (_reporter, routes) = beat_telemetry::grpc::standard_routes(&[]).unwrap();
    let mut server = limits.server(&registry, addr).unwrap();
    tokio::spawn(async move {
        server
            .add_routes(routes.routes())
            .serve_with_incoming(incoming)
            .await
            .unwrap();
    });
    (addr, registry)
}
