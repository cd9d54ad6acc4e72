//! The public API limits against a real tonic server (the health service stands in for the
//! ordering and market APIs): a client that withholds the end of a request body is cut off at
//! the request timeout, one that announces an oversized message is refused before it sends it,
//! and a streaming response outlives the timeout.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

mod common;

use beat_telemetry::api::ApiLimits;
use bytes::Bytes;
use common::serve_with;

async fn serve(limits: ApiLimits) -> std::net::SocketAddr {
    serve_with(limits).await.0
}

/// Opens a raw HTTP/2 stream for `method` and sends `body` without ending the stream;
/// returns the gRPC status code the server answered with and how long it took.
async fn withheld(
    addr: std::net::SocketAddr,
    method: &str,
    body: &'static [u8],
) -> (i32, Duration) {
    let (response, started, _send) = open(addr, method, body).await;
    answer(response, started).await
}

type Pending = (
    h2::client::ResponseFuture,
    tokio::time::Instant,
    h2::SendStream<Bytes>,
);

/// Sends the start of a request (`body`, stream left open).
async fn open(addr: std::net::SocketAddr, method: &str, body: &'static [u8]) -> Pending {
    open_from([127, 0, 0, 1], addr, method, body).await
}

/// [`open`] from the loopback address `source`.
async fn open_from(
    source: [u8; 4],
    addr: std::net::SocketAddr,
    method: &str,
    body: &'static [u8],
) -> Pending {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(std::net::SocketAddr::from((source, 0)))
        .unwrap();
    let tcp = socket.connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let started = tokio::time::Instant::now();
    let (response, mut send) = client.send_request(request, false).unwrap();
    send.reserve_capacity(body.len());
    send.send_data(Bytes::from_static(body), false).unwrap();
    (response, started, send)
}

/// The gRPC status code of `response` and how long since `started`.
async fn answer(
    response: h2::client::ResponseFuture,
    started: tokio::time::Instant,
) -> (i32, Duration) {
    let response = tokio::time::timeout(Duration::from_secs(10), response)
        .await
        .expect("the server held the request past 10 s")
        .unwrap();
    let elapsed = started.elapsed();
    let code = |headers: &http::HeaderMap| {
        headers
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
    };
    if let Some(c) = code(response.headers()) {
        return (c, elapsed);
    }
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        chunk.unwrap();
    }
    let trailers = body.trailers().await.unwrap().unwrap_or_default();
    (code(&trailers).expect("no grpc-status"), elapsed)
}

#[tokio::test]
async fn a_withheld_body_is_cut_off_at_the_request_timeout() {
    let addr = serve(ApiLimits {
        request_timeout_ms: 500,
        ..ApiLimits::default()
    })
    .await;
    // A Check request announcing 100 bytes, of which 3 arrive.
    let (code, elapsed) = withheld(
        addr,
        "/grpc.health.v1.Health/Check",
        &[0, 0, 0, 0, 100, 1, 2, 3],
    )
    .await;
    assert_ne!(code, 0, "a withheld body was answered OK");
    assert!(
        elapsed >= Duration::from_millis(450),
        "cut before the timeout: {elapsed:?}"
    );
}

#[tokio::test]
async fn an_oversized_message_is_refused_from_its_length_prefix() {
    let addr = serve(ApiLimits {
        max_request_bytes: 4096,
        request_timeout_ms: 5_000,
        ..ApiLimits::default()
    })
    .await;
    // Announces 50 MB and sends nothing more: refused at once, not at the timeout.
    let fifty_mb: u32 = 50_000_000;
    let prefix: &'static [u8] = Box::leak(
        [&[0u8][..], &fifty_mb.to_be_bytes()[..]]
            .concat()
            .into_boxed_slice(),
    );
    let (code, elapsed) = withheld(addr, "/grpc.health.v1.Health/Check", prefix).await;
    assert!(
        code == tonic::Code::OutOfRange as i32 || code == tonic::Code::ResourceExhausted as i32,
        "code {code}"
    );
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
}

#[tokio::test]
async fn a_watch_outlives_the_request_timeout() {
    let addr = serve(ApiLimits {
        request_timeout_ms: 300,
        ..ApiLimits::default()
    })
    .await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let mut watch = health
        .watch(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    watch.message().await.unwrap().unwrap();
    // Nothing changes, so nothing arrives; what matters is that the stream is still open
    // well past the timeout.
    let next = tokio::time::timeout(Duration::from_secs(1), watch.message()).await;
    assert!(next.is_err(), "the watch ended: {next:?}");
}

/// Many clients each withholding the end of a large body cannot add up past the server's
/// in-flight budget: the one that would exceed it is refused with RESOURCE_EXHAUSTED, and the
/// budget comes back when the withheld requests time out.
#[tokio::test]
async fn request_bodies_in_flight_share_one_budget() {
    let (addr, registry) = serve_with(ApiLimits {
        max_request_bytes: 64 << 10,
        max_inflight_request_bytes: 64 << 10,
        max_inflight_request_bytes_per_ip: 64 << 10,
        request_timeout_ms: 1_500,
        ..ApiLimits::default()
    })
    .await;
    let method = "/grpc.health.v1.Health/Check";
    let first = open(addr, method, partial()).await;
    let second = open(addr, method, partial()).await;
    // Both fit (50,010 of 65,536); a third would not.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (code, elapsed) = withheld(addr, method, partial()).await;
    assert_eq!(code, tonic::Code::ResourceExhausted as i32, "third");
    assert!(elapsed < Duration::from_millis(1_000), "{elapsed:?}");
    let refused = beat_telemetry::metrics::encode(&registry);
    assert!(
        refused.contains("beat_api_requests_over_inflight_budget_total 1"),
        "{refused}"
    );
    // The first two are cut at the request timeout, and their bytes come back.
    let (a, _) = answer(first.0, first.1).await;
    let (b, _) = answer(second.0, second.1).await;
    assert!(a != 0 && b != 0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let text = beat_telemetry::metrics::encode(&registry);
    assert!(text.contains("beat_api_inflight_request_bytes 0"), "{text}");
    let (code, _) = withheld(addr, method, partial()).await;
    assert_ne!(
        code,
        tonic::Code::ResourceExhausted as i32,
        "after the budget came back"
    );
}

/// Announces 60,000 bytes and sends 25,000 of them (25,005 with the prefix).
fn partial() -> &'static [u8] {
    let mut body = vec![0u8];
    body.extend_from_slice(&60_000u32.to_be_bytes());
    body.extend(std::iter::repeat_n(0x0a, 25_000));
    Box::leak(body.into_boxed_slice())
}

/// One source cannot take the whole budget: past its share it is refused while another
/// source's request still fits.
#[tokio::test]
async fn one_source_gets_only_its_share_of_the_budget() {
    let (addr, _registry) = serve_with(ApiLimits {
        max_request_bytes: 64 << 10,
        max_inflight_request_bytes_per_ip: 64 << 10,
        max_inflight_request_bytes: 256 << 10,
        request_timeout_ms: 5_000,
        ..ApiLimits::default()
    })
    .await;
    let method = "/grpc.health.v1.Health/Check";
    let _first = open_from([127, 0, 3, 1], addr, method, partial()).await;
    let _second = open_from([127, 0, 3, 1], addr, method, partial()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (response, started, _third) = open_from([127, 0, 3, 1], addr, method, partial()).await;
    let (code, elapsed) = answer(response, started).await;
    assert_eq!(
        code,
        tonic::Code::ResourceExhausted as i32,
        "third from one source"
    );
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    // Another source's request is received (and cut later by the timeout, not refused now).
    let (response, started, _other) = open_from([127, 0, 3, 2], addr, method, partial()).await;
    let early = tokio::time::timeout(Duration::from_millis(1_000), answer(response, started)).await;
    assert!(early.is_err(), "another source was refused: {early:?}");
}

/// A body that stops arriving fails at the stall timeout, well before the request timeout,
/// and gives its bytes back.
#[tokio::test]
async fn a_stalled_body_fails_at_the_stall_timeout_and_gives_its_bytes_back() {
    let (addr, registry) = serve_with(ApiLimits {
        max_request_bytes: 64 << 10,
        body_stall_timeout_ms: 300,
        request_timeout_ms: 20_000,
        ..ApiLimits::default()
    })
    .await;
    let (code, elapsed) = withheld(addr, "/grpc.health.v1.Health/Check", partial()).await;
    assert_eq!(code, tonic::Code::DeadlineExceeded as i32);
    assert!(
        elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let text = beat_telemetry::metrics::encode(&registry);
    assert!(text.contains("beat_api_inflight_request_bytes 0"), "{text}");
}
