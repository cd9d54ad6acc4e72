//! Server reflection lists the services a server serves, health and reflection, and nothing
//! else from `proto/` — in both `v1` and `v1alpha`.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use futures::StreamExt as _;
use tonic_reflection::pb::{v1, v1alpha};

const ORDERING: &str = "beat.consensus.v1.OrderingService";

async fn serve(served: &'static [&'static str]) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_reporter, routes) = beat_telemetry::grpc::standard_routes(served).unwrap();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_routes(routes.routes())
            .serve_with_incoming(beat_telemetry::grpc::incoming(listener))
            .await
            .unwrap();
    });
    addr
}

async fn channel(addr: std::net::SocketAddr) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// `async fn $name(addr) -> BTreeSet<String>`: the services listed by reflection in package
/// `$pb` (`v1` and `v1alpha` generate the same API under different types).
macro_rules! list_services {
    ($name:ident, $pb:ident) => {
        async fn $name(addr: std::net::SocketAddr) -> BTreeSet<String> {
            use $pb::{
                ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
                server_reflection_request::MessageRequest,
                server_reflection_response::MessageResponse,
            };
            let mut client = ServerReflectionClient::new(channel(addr).await);
            let request = ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::ListServices(String::new())),
            };
            let mut replies = client
                .server_reflection_info(futures::stream::iter([request]))
                .await
                .unwrap()
                .into_inner();
            let reply = replies.next().await.unwrap().unwrap();
            match reply.message_response.unwrap() {
                MessageResponse::ListServicesResponse(list) => {
                    list.service.into_iter().map(|s| s.name).collect()
                }
                other => panic!("unexpected reply {other:?}"),
            }
        }
    };
}

list_services!(list_v1, v1);
list_services!(list_v1alpha, v1alpha);

#[tokio::test]
async fn reflection_lists_only_what_the_server_serves() {
    let addr = serve(&[ORDERING]).await;
    let expected: BTreeSet<String> = [
        ORDERING,
        beat_telemetry::grpc::HEALTH_SERVICE,
        beat_telemetry::grpc::REFLECTION_SERVICES[0],
        beat_telemetry::grpc::REFLECTION_SERVICES[1],
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(list_v1(addr).await, expected);
    assert_eq!(list_v1alpha(addr).await, expected);

    // A server of no API of its own lists health and reflection only.
    let bare = serve(&[]).await;
    let listed = list_v1(bare).await;
    assert!(
        !listed.iter().any(|s| s.starts_with("beat.")),
        "a bare server advertises {listed:?}"
    );
}
