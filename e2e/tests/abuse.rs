//! The ordering API under abuse, on a 4-replica cluster of real processes: 10,000 idle
//! connections, 20 clients announcing 50 MB requests, 20 clients each withholding the end of a
//! request just under the 4 MiB limit, and 1,000 watchers of the history from epoch 0 — all
//! against replica 0's consensus at once, while an honest client submits through a connection
//! it opened before. The honest transactions must commit at every replica, and the abuse may
//! add at most [`GROWTH_CEILING_KIB`] to replica 0's consensus resident memory: the sum of the
//! limits that bound it (16 MiB of watch memory — responses and each open stream's 32 KiB
//! reserve —, 16 MiB of request bodies in flight, 1,024 connections). The figures are printed
//! (docs/benchmarks.md has them with the absolute sizes of a debug and a release build).

use std::{net::SocketAddr, time::Duration};

use beat_e2e::{committed_everywhere, committee_of, market_tx, scenario_dir, submit_spread};
use beat_proto::consensus::v1::{self as cpb, ordering_service_client::OrderingServiceClient};
use beat_provision::layout::Service;
use beat_testkit::cluster::{Cluster, ClusterSpec};
use bytes::Bytes;

const N: usize = 4;
const BASE_PORT: u16 = beat_e2e::ports::CLUSTER_A;
/// How much the abuse may add to consensus's resident memory.
const GROWTH_CEILING_KIB: u64 = 80 * 1024;

fn spec() -> (ClusterSpec, std::path::PathBuf) {
    let dir = scenario_dir("abuse");
    let mut spec = ClusterSpec::new(&dir, env!("CARGO_BIN_EXE_beat-e2e"));
    beat_e2e::register_market_source(&mut spec);
    spec.replicas = N;
    spec.base_port = BASE_PORT;
    spec.params.batch_size = 2000;
    spec.kdf = beat_testkit::cluster::KdfParams::insecure_fast_for_tests();
    spec.log_filter = "info,sled=warn,h2=warn,tower=warn,hyper=warn,actix_server=warn".into();
    (spec, dir)
}

fn vm_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Opens `count` TCP connections from `sources` loopback addresses and keeps them silent.
async fn idle_flood(target: SocketAddr, sources: u8, count: usize) -> Vec<tokio::net::TcpStream> {
    let mut held = Vec::with_capacity(count);
    for k in 0..count {
        let source = 1 + (k % usize::from(sources)) as u8;
        let Ok(socket) = tokio::net::TcpSocket::new_v4() else {
            continue;
        };
        if socket
            .bind(SocketAddr::from(([127, 0, 2, source], 0)))
            .is_err()
        {
            continue;
        }
        if let Ok(Ok(c)) =
            tokio::time::timeout(Duration::from_secs(2), socket.connect(target)).await
        {
            held.push(c);
        }
    }
    held
}

/// Starts a Submit whose gRPC message announces `announced` bytes, sends `sent` of them and
/// withholds the rest; returns the stream handles (dropping them ends the request).
async fn withheld_submit(
    source: [u8; 4],
    target: SocketAddr,
    announced: u32,
    sent: usize,
) -> anyhow::Result<(h2::client::ResponseFuture, h2::SendStream<Bytes>)> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    let tcp = socket.connect(target).await?;
    let (client, connection) = h2::client::handshake(tcp).await?;
    tokio::spawn(connection);
    let mut client = client.ready().await?;
    let request = http::Request::builder()
        .method("POST")
        .uri(format!(
            "http://{target}/beat.consensus.v1.OrderingService/Submit"
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())?;
    let (response, mut send) = client.send_request(request, false)?;
    let mut body = vec![0u8];
    body.extend_from_slice(&announced.to_be_bytes());
    body.resize(5 + sent, 0x0a);
    send.reserve_capacity(body.len());
    send.send_data(Bytes::from(body), false)?;
    Ok((response, send))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consensus_holds_under_connection_body_and_watch_abuse() -> anyhow::Result<()> {
    let (spec, dir) = spec();
    let mut cluster = Cluster::prepare(spec)?;
    cluster.start_all()?;
    cluster.wait_all_ready(Duration::from_secs(60)).await?;
    let all: Vec<String> = (0..N).map(|i| cluster.ordering_endpoint(i)).collect();
    let target: SocketAddr = cluster.ports(0).consensus();
    let pid = cluster
        .pid(0, Service::Consensus)
        .ok_or_else(|| anyhow::anyhow!("replica 0's consensus pid"))?;

    // Warm up, then the honest client opens its connection before the abuse starts.
    let warm: Vec<Vec<u8>> = (0..2_000).map(|k| market_tx("warm", k)).collect();
    submit_spread(&all, &warm, 500).await?;
    let committee = committee_of(&cluster);
    let next = committed_everywhere(&all, &committee, 0, &warm, Duration::from_secs(120)).await?;
    let before = vm_kib(pid, "VmRSS:");
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{target}"))?
        .connect()
        .await?;
    let mut honest = OrderingServiceClient::new(channel.clone());

    // 1,000 watchers of the whole history, on 10 connections of 100 streams.
    let mut watchers = Vec::new();
    for _ in 0..10 {
        let c = tonic::transport::Endpoint::from_shared(format!("http://{target}"))?
            .connect()
            .await?;
        for _ in 0..100 {
            let mut client = OrderingServiceClient::new(c.clone());
            watchers.push(tokio::spawn(async move {
                let r = match client
                    .watch_batches(cpb::WatchBatchesRequest {
                        from_epoch: 0,
                        certified: false,
                    })
                    .await
                {
                    Ok(r) => r,
                    Err(s) if s.code() == tonic::Code::ResourceExhausted => return None,
                    Err(_) => return Some(0u64),
                };
                let mut stream = r.into_inner();
                let mut got = 0;
                // Read the history, then stay subscribed without reading further.
                while got < 2 {
                    match stream.message().await {
                        Ok(Some(_)) => got += 1,
                        _ => break,
                    }
                }
                tokio::time::sleep(Duration::from_secs(60)).await;
                Some(got)
            }));
        }
    }

    tokio::time::sleep(Duration::from_secs(2)).await;
    let with_watchers = vm_kib(pid, "VmRSS:");
    // 20 clients announce 50 MB: refused from the length prefix.
    let mut refused_at_prefix = 0;
    for k in 0..20 {
        let (response, _send) =
            withheld_submit([127, 0, 4, k + 1], target, 50_000_000, 1024).await?;
        if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(5), response).await
            && r.headers().get("grpc-status").is_some_and(|s| s != "0")
        {
            refused_at_prefix += 1;
        }
    }
    // 20 clients, from 20 addresses, each send 4 MiB − 1 KiB of a 4 MiB − 16 request and
    // withhold the rest.
    let mut withheld = Vec::new();
    for k in 0..20 {
        withheld.push(
            withheld_submit([127, 0, 3, k + 1], target, (4 << 20) - 16, (4 << 20) - 1024).await?,
        );
    }
    let with_bodies = vm_kib(pid, "VmRSS:");
    // 10,000 idle connections from 40 addresses.
    let idle = idle_flood(target, 40, 10_000).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = vm_kib(pid, "VmRSS:");
    let ops = cluster.ports(0).ops(Service::Consensus);
    let text = beat_telemetry::probe::metrics(ops)
        .await
        .ok_or_else(|| anyhow::anyhow!("replica 0's consensus metrics"))?;
    let metric = |series: &str| beat_telemetry::probe::metric_value(&text, series).unwrap_or(0.0);
    let open = metric("beat_api_connections_open");
    let over_cap = metric("beat_api_connections_refused_total{reason=\"max_connections\"}");
    let over_budget = metric("beat_api_requests_over_inflight_budget_total");

    // Meanwhile the honest client's transactions commit. While the withheld bodies hold the
    // in-flight budget it is told RESOURCE_EXHAUSTED and retries, as the client library does;
    // the stalled bodies give the budget back at the stall timeout (5 s).
    let load: Vec<Vec<u8>> = (0..2_000).map(|k| market_tx("honest", k)).collect();
    let submitting = tokio::time::Instant::now();
    let mut retries = 0u32;
    for part in load.chunks(500) {
        loop {
            let request = cpb::SubmitRequest {
                transactions: part.iter().cloned().map(Bytes::from).collect(),
            };
            match honest.submit(request).await {
                Ok(_) => break,
                Err(s) if s.code() == tonic::Code::ResourceExhausted => {
                    retries += 1;
                    anyhow::ensure!(
                        submitting.elapsed() < Duration::from_secs(30),
                        "the honest client was refused for 30 s: {s}"
                    );
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(s) => return Err(s.into()),
            }
        }
    }
    let accepted_after = submitting.elapsed();
    // The idle connections are closed at the first-byte deadline (10 s), the withheld requests
    // at the request timeout (30 s); afterwards new connections are served again.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let still_open = {
        let mut open = 0;
        for c in &idle {
            let mut buf = [0u8; 1];
            if matches!(c.try_read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
            {
                open += 1;
            }
        }
        open
    };
    committed_everywhere(&all, &committee, next, &load, Duration::from_secs(120)).await?;
    let peak = vm_kib(pid, "VmHWM:");
    let refused_watchers = watchers.iter().filter(|w| w.is_finished()).count();
    let text = beat_telemetry::probe::metrics(ops)
        .await
        .unwrap_or_default();
    let metric = |series: &str| beat_telemetry::probe::metric_value(&text, series).unwrap_or(0.0);
    let buffered_after = metric("beat_watch_buffered_bytes");
    let (cut_slow, cut_budget, cut_admission) = (
        metric("beat_watch_cut_total{reason=\"slow\"}"),
        metric("beat_watch_cut_total{reason=\"budget\"}"),
        metric("beat_watch_cut_total{reason=\"admission\"}"),
    );
    eprintln!(
        "abuse: consensus RSS {} MiB before, {} MiB with the watchers, {} MiB with the bodies, \
         {} MiB with the idle connections, peak {} MiB; {} of 10,000 idle \
         connections connected, {open} held by the server and {over_cap} closed at the cap, \
         {still_open} still open after 12 s; {refused_at_prefix}/20 50-MB requests refused at \
         the prefix; {over_budget} of 20 withheld 4-MiB bodies refused by the in-flight \
         budget; of 1,000 watchers {refused_watchers} ended early; watchers refused at \
         admission {cut_admission} (the honest one's retries included), cut off for want of \
         budget {cut_budget}, cut off as slow {cut_slow}, watch memory held at the end {buffered_after} bytes; the honest client's 2,000 transactions \
         accepted after {accepted_after:.1?} and {retries} retries and committed at all {N} \
         replicas",
        before / 1024,
        with_watchers / 1024,
        with_bodies / 1024,
        during / 1024,
        peak / 1024,
        idle.len()
    );
    anyhow::ensure!(refused_at_prefix == 20, "{refused_at_prefix}/20 refused");
    anyhow::ensure!(open <= 4096.0, "{open} connections held past the cap");
    anyhow::ensure!(
        over_budget >= 1.0,
        "the withheld bodies never reached the budget"
    );
    anyhow::ensure!(
        cut_slow + cut_budget >= 1.0,
        "no watcher that stopped reading was cut off"
    );
    anyhow::ensure!(
        still_open == 0,
        "{still_open} idle connections outlived the deadline"
    );
    anyhow::ensure!(
        peak.saturating_sub(before) <= GROWTH_CEILING_KIB,
        "consensus grew from {} MiB to a peak of {} MiB resident",
        before / 1024,
        peak / 1024
    );
    drop(withheld);
    for w in watchers {
        w.abort();
    }
    let exited = cluster.reap_exited();
    anyhow::ensure!(exited.is_empty(), "processes exited: {exited:?}");
    cluster.stop_all(Duration::from_secs(10));
    drop(cluster);
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}
