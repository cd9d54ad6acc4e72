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
