//! A harness for in-process gateway clusters on 127.0.0.1: committees from the trusted dealer,
//! gateways with in-memory signers, fake consensus clients on the `Link` stream, a killable TCP
//! proxy, and a `/metrics` scraper.
#![allow(dead_code, clippy::unwrap_used, missing_docs)]

use std::{collections::BTreeMap, future::Future, net::SocketAddr, sync::Arc, time::Duration};

use beat_config::{CommitteeFile, Endpoints, ReplicaEntry};
use beat_crypto::{dealer::deal, identity::IdentityKeypair};
use beat_gateway::{
    Listeners,
    config::{BackoffConfig, Config, LinkConfig},
    signer::{InMemorySigner, Signer},
    transport::TcpTransport,
};
use beat_proto::gateway::v1::{
    InboundAck, LinkRequest, LinkResponse, Outbound, OutboundBatch, PeerStatus, PeersRequest,
    gateway_service_client::GatewayServiceClient, link_request, link_response,
};
use beat_telemetry::shutdown::Shutdown;
use beat_types::Params;
use beat_types::{Committee, NodeId};
use bytes::Bytes;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::{mpsc, watch},
    task::JoinHandle,
};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Streaming, transport::Channel};

/// Runs `test` on an actix system over a two-worker Tokio runtime, failing after `limit`.
pub fn run<F: Future<Output = ()>>(limit: Duration, test: F) {
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    };
    actix_rt::System::with_tokio_rt(runtime).block_on(async move {
        tokio::time::timeout(limit, test)
            .await
            .expect("test exceeded its time limit");
    });
}

/// Polls `check` every 20 ms until it holds or `limit` passes.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A committee of `n` with every replica's identity key.
pub struct Keys {
    pub committee: CommitteeFile,
    pub identities: Vec<Arc<IdentityKeypair>>,
}

/// Deals a committee of `n`; endpoints are filled in by [`Keys::with_endpoints`].
pub fn keys(n: usize, seed: u64) -> Keys {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let (keys, secrets) = deal(Committee::new(n).unwrap(), &mut rng).unwrap();
    let committee = CommitteeFile {
        format: 1,
        name: "gateway-test".into(),
        params: Params::default(),
        keys,
        replicas: (0..n)
            .map(|i| ReplicaEntry {
                id: NodeId::from_index(i),
                endpoints: Endpoints {
                    tcp: Some(format!("127.0.0.1:{}", 1 + i)),
                    ..Endpoints::default()
                },
            })
            .collect(),
    };
    Keys {
        committee,
        identities: secrets.into_iter().map(|s| Arc::new(s.identity)).collect(),
    }
}

/// Every replica's secrets of the committee [`keys`] deals with the same `seed`.
pub fn secrets(n: usize, seed: u64) -> Vec<beat_crypto::dealer::ReplicaSecrets> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    deal(Committee::new(n).unwrap(), &mut rng).unwrap().1
}

impl Keys {
    /// The committee with replica `i` at `endpoints[i]`.
    pub fn with_endpoints(&self, endpoints: &[SocketAddr]) -> CommitteeFile {
        let mut c = self.committee.clone();
        for (entry, addr) in c.replicas.iter_mut().zip(endpoints) {
            entry.endpoints.tcp = Some(addr.to_string());
        }
        c
    }

    /// A signer holding replica `i`'s identity key.
    pub fn signer(&self, i: usize) -> Arc<dyn Signer> {
        Arc::new(SharedKeySigner {
            keypair: self.identities[i].clone(),
            replica: NodeId::from_index(i),
            digest: self.committee.digest(),
        })
    }
}

/// An [`InMemorySigner`] over a shared key pair (the key pair is not `Clone`), so a restarted
/// gateway can sign with the same key.
struct SharedKeySigner {
    keypair: Arc<IdentityKeypair>,
    replica: NodeId,
    digest: beat_crypto::Digest,
}

impl Signer for SharedKeySigner {
    fn sign_handshake(
        &self,
        transcript: [u8; 32],
    ) -> futures::future::BoxFuture<
        '_,
        Result<beat_crypto::identity::IdentitySignature, beat_gateway::signer::SignerError>,
    > {
        let s = self.keypair.sign(
            beat_gateway::signer::HANDSHAKE_CONTEXT.as_bytes(),
            &transcript,
        );
        Box::pin(std::future::ready(Ok(s)))
    }

    fn public_keys(
        &self,
    ) -> futures::future::BoxFuture<
        '_,
        Result<beat_gateway::signer::SignerKeys, beat_gateway::signer::SignerError>,
    > {
        Box::pin(std::future::ready(Ok(beat_gateway::signer::SignerKeys {
            replica: self.replica,
            identity: self.keypair.public(),
            committee_digest: self.digest,
        })))
    }
}

/// A signer with a fresh, unrelated key claiming to be replica `i`.
pub fn impostor_signer(keys: &Keys, i: usize, seed: u64) -> Arc<dyn Signer> {
    let keypair = IdentityKeypair::generate(&mut ChaCha20Rng::seed_from_u64(seed));
    Arc::new(InMemorySigner::new(
        keypair,
        NodeId::from_index(i),
        keys.committee.digest(),
    ))
}

/// Test timers: fast pings, short timeouts, quick redials.
pub fn config(replica: usize) -> Config {
    Config {
        replica: replica as u32,
        link: LinkConfig {
            handshake_timeout: Duration::from_secs(3),
            ping_interval: Duration::from_millis(200),
            idle_timeout: Duration::from_secs(3),
            ..LinkConfig::default()
        },
        backoff: BackoffConfig {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(300),
        },
        ..Config::default()
    }
}

/// A running gateway.
pub struct Node {
    pub replica: usize,
    pub grpc: SocketAddr,
    pub ops: SocketAddr,
    pub peer: SocketAddr,
    pub shutdown: Shutdown,
    pub task: JoinHandle<anyhow::Result<()>>,
}

/// Binds `127.0.0.1:port`, retrying while a previous listener on it is going away.
pub async fn bind(addr: SocketAddr) -> TcpListener {
    for _ in 0..100 {
        if let Ok(l) = TcpListener::bind(addr).await {
            return l;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("cannot bind {addr}");
}

/// Starts a gateway on `peer_listener` with `config`, `committee` and `signer`.
pub async fn start(
    config: Config,
    committee: CommitteeFile,
    signer: Arc<dyn Signer>,
    peer_listener: TcpListener,
) -> Node {
    let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ops = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (grpc_addr, ops_addr) = (grpc.local_addr().unwrap(), ops.local_addr().unwrap());
    let peer = peer_listener.local_addr().unwrap();
    let shutdown = Shutdown::default();
    let replica = config.replica as usize;
    let transport = TcpTransport::new(peer_listener, Duration::from_secs(1));
    let listeners = Listeners {
        grpc: grpc.into(),
        ops,
        transports: vec![Arc::new(transport)],
    };
    // On the actix arbiter, as in the binary: the hub is an actor.
    let task = actix_rt::spawn(beat_gateway::serve(
        config,
        committee,
        signer,
        listeners,
        shutdown.clone(),
    ));
    Node {
        replica,
        grpc: grpc_addr,
        ops: ops_addr,
        peer,
        shutdown,
        task,
    }
}

impl Node {
    /// Stops the gateway and waits for it.
    pub async fn stop(self) {
        self.shutdown.trigger();
        self.task.await.unwrap().unwrap();
    }

    pub async fn client(&self) -> GatewayServiceClient<Channel> {
        loop {
            if let Ok(c) = GatewayServiceClient::connect(format!("http://{}", self.grpc)).await {
                return c.max_decoding_message_size(64 << 20);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn peers(&self) -> Vec<PeerStatus> {
        self.client()
            .await
            .peers(PeersRequest {})
            .await
            .unwrap()
            .into_inner()
            .peers
    }

    /// The sum of every sample of `metric` whose labels contain all of `labels`
    /// (e.g. `reason="signature"`).
    pub async fn metric(&self, metric: &str, labels: &[&str]) -> f64 {
        scrape(self.ops, metric, labels).await
    }

    pub async fn http_status(&self, path: &str) -> u16 {
        let text = http_get(self.ops, path).await;
        text.split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }
}

/// `n` peer listeners on fresh loopback ports, and their addresses.
pub async fn listeners(n: usize) -> (Vec<TcpListener>, Vec<SocketAddr>) {
    let mut listeners = Vec::new();
    for _ in 0..n {
        listeners.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
    let addrs = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
    (listeners, addrs)
}

/// Starts a cluster of every replica of `keys` on fresh loopback ports.
pub async fn cluster(keys: &Keys) -> Vec<Node> {
    let (listeners, addrs) = listeners(keys.committee.replicas.len()).await;
    let committee = keys.with_endpoints(&addrs);
    let mut nodes = Vec::new();
    for (i, l) in listeners.into_iter().enumerate() {
        nodes.push(start(config(i), committee.clone(), keys.signer(i), l).await);
    }
    nodes
}

pub async fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

pub async fn scrape(addr: SocketAddr, metric: &str, labels: &[&str]) -> f64 {
    let text = http_get(addr, "/metrics").await;
    text.lines()
        .filter(|l| {
            l.starts_with(metric)
                && l[metric.len()..].starts_with(['{', ' '])
                && labels.iter().all(|want| l.contains(want))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

// === fake consensus ===

/// One payload as a fake consensus sees it: who sent it and its per-sender number.
pub fn payload(sender: usize, number: u32) -> Bytes {
    let mut b = Vec::with_capacity(8);
    b.extend_from_slice(&(sender as u32).to_be_bytes());
    b.extend_from_slice(&number.to_be_bytes());
    Bytes::from(b)
}

pub fn parse(payload: &[u8]) -> (usize, u32) {
    let sender = u32::from_be_bytes(payload[..4].try_into().unwrap()) as usize;
    let number = u32::from_be_bytes(payload[4..8].try_into().unwrap());
    (sender, number)
}

/// A consensus service's end of the `Link` stream.
pub struct Consensus {
    requests: mpsc::Sender<LinkRequest>,
    pub responses: Streaming<LinkResponse>,
}

/// A payload received: (sender, payload, delivery id).
pub type Delivery = (u32, Bytes, u64);

impl Consensus {
    pub async fn connect(node: &Node) -> Self {
        let (requests, rx) = mpsc::channel(64);
        let responses = node
            .client()
            .await
            .link(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        Self {
            requests,
            responses,
        }
    }

    pub async fn send(&self, targets: Vec<u32>, payloads: Vec<Bytes>) {
        let messages = payloads
            .into_iter()
            .map(|payload| Outbound {
                targets: targets.clone(),
                payload,
            })
            .collect();
        self.requests
            .send(LinkRequest {
                kind: Some(link_request::Kind::Outbound(OutboundBatch { messages })),
            })
            .await
            .unwrap();
    }

    pub async fn ack(&self, delivery_ids: Vec<u64>) {
        self.requests
            .send(LinkRequest {
                kind: Some(link_request::Kind::Ack(InboundAck { delivery_ids })),
            })
            .await
            .unwrap();
    }

    /// The next inbound batch.
    pub async fn next(&mut self) -> Result<Vec<Delivery>, tonic::Status> {
        match self.responses.message().await? {
            Some(LinkResponse {
                kind: Some(link_response::Kind::Inbound(batch)),
            }) => Ok(batch
                .messages
                .into_iter()
                .map(|m| (m.sender, m.payload, m.delivery_id))
                .collect()),
            Some(_) => Ok(vec![]),
            None => Err(tonic::Status::cancelled("stream ended")),
        }
    }

    /// Receives until `count` payloads arrived, acknowledging each batch if `ack`.
    pub async fn receive(&mut self, count: usize, ack: bool) -> Vec<Delivery> {
        let mut out = Vec::new();
        while out.len() < count {
            let batch = self.next().await.unwrap();
            if ack {
                self.ack(batch.iter().map(|d| d.2).collect()).await;
            }
            out.extend(batch);
        }
        out
    }
}

/// Checks that `received` holds, per sender, exactly `0..expected[sender]` in order.
pub fn assert_exactly_once_in_order(
    me: usize,
    received: &[Delivery],
    expected: &BTreeMap<usize, u32>,
) {
    let mut per_sender: BTreeMap<usize, Vec<u32>> = BTreeMap::new();
    for (sender, p, _) in received {
        let (origin, number) = parse(p);
        assert_eq!(
            origin, *sender as usize,
            "replica {me}: authenticated sender mismatch"
        );
        per_sender.entry(origin).or_default().push(number);
    }
    for (sender, count) in expected {
        let got = per_sender.remove(sender).unwrap_or_default();
        assert_eq!(
            got,
            (0..*count).collect::<Vec<_>>(),
            "replica {me}: payloads from {sender} lost, duplicated or reordered"
        );
    }
    assert!(
        per_sender.is_empty(),
        "replica {me}: unexpected senders {per_sender:?}"
    );
}

// === a killable TCP proxy ===

/// Forwards connections to `target`; [`Proxy::kill`] resets every connection it carries.
pub struct Proxy {
    pub addr: SocketAddr,
    kill: watch::Sender<u64>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (kill, _) = watch::channel(0u64);
        let kills = kill.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut killed = kills.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = killed.changed() => {
                            // Reset rather than close, as a dying middlebox would.
                            let _ = inbound.set_zero_linger();
                            let _ = outbound.set_zero_linger();
                        }
                    }
                });
            }
        });
        Self { addr, kill }
    }

    /// Resets every connection currently carried.
    pub fn kill(&self) {
        self.kill.send_modify(|k| *k += 1);
    }
}
