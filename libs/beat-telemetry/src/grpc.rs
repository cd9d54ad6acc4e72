//! `grpc.health.v1` and server reflection for every gRPC server.
//!
//! Reflection is served in both `v1` and `v1alpha` (grpcurl 1.8 only speaks `v1alpha`) and
//! lists exactly the services that server serves — its own, health and reflection — not
//! every package in `proto/` (a state server does not advertise the ordering API).

use tonic::service::RoutesBuilder;
use tonic_health::server::HealthReporter;

/// The health service's name.
pub const HEALTH_SERVICE: &str = "grpc.health.v1.Health";
/// The reflection services' names.
pub const REFLECTION_SERVICES: [&str; 2] = [
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// Starts a route table with the health service and both reflection services, which list
/// `served` (the fully qualified names of the services the caller will add, e.g.
/// `<OrderingServiceServer<T> as tonic::server::NamedService>::NAME`) besides health and
/// reflection. The service adds its own services to the returned builder and serves
/// `builder.routes()`.
pub fn standard_routes(served: &[&str]) -> anyhow::Result<(HealthReporter, RoutesBuilder)> {
    let (reporter, health) = tonic_health::server::health_reporter();
    let configure = || {
        served
            .iter()
            .copied()
            .chain([HEALTH_SERVICE])
            .chain(REFLECTION_SERVICES)
            .fold(
                tonic_reflection::server::Builder::configure()
                    .register_encoded_file_descriptor_set(beat_proto::FILE_DESCRIPTOR_SET)
                    .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET),
                |builder, name| builder.with_service_name(name),
            )
    };
    let reflection_v1 = configure().build_v1()?;
    let reflection_v1alpha = configure().build_v1alpha()?;
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
