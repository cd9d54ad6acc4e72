//! `grpc.health.v1` and server reflection for every gRPC server.
//!
//! Reflection is served in both `v1` and `v1alpha` (grpcurl 1.8 only speaks `v1alpha`) and
//! includes the health service's own descriptors.

use tonic::service::RoutesBuilder;
use tonic_health::server::HealthReporter;

/// Starts a route table with the health service and both reflection services. The service adds
/// its own services to the returned builder and serves `builder.routes()`.
pub fn standard_routes() -> anyhow::Result<(HealthReporter, RoutesBuilder)> {
    let (reporter, health) = tonic_health::server::health_reporter();
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(beat_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(beat_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let mut routes = RoutesBuilder::default();
    routes
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);
    Ok((reporter, routes))
}

/// The connections a gRPC server accepts on `listener`, with `TCP_NODELAY` set.
///
/// The services' streams carry many small messages (protocol messages, keystore replies,
/// acknowledgements) whose latency is the protocol's: with Nagle's algorithm a small write
/// waits for the peer's (delayed) ACK of the previous one, which added tens of milliseconds
/// to every hop of an epoch. `tonic`'s own `serve(addr)` sets nodelay from
/// `Server::tcp_nodelay`, but a server on a pre-bound listener must ask here.
pub fn incoming(listener: tokio::net::TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(std::time::Duration::from_secs(60)))
}
