//! Test fixtures: an in-process fake consensus (`OrderingService`), committees, configurations
//! and a harness that runs the state service over loopback.
#![allow(clippy::unwrap_used, dead_code)]

use std::{
    collections::{BTreeMap, HashSet},
    future::Future,
    net::SocketAddr,
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use beat_config::{CommitteeFile, Endpoints, ReplicaEntry};
use beat_core::{Delivery, Params, client::ClientTransaction};
use beat_crypto::{
    Digest,
    dealer::{ReplicaSecrets, deal},
    hash::hash,
    tdh2,
};
use beat_proto::{
    common::v1::{Batch, Contribution, TransactionList, contribution::Content},
    consensus::v1::{
        Admission, GetBatchRequest, GetBatchResponse, ReadFragmentRequest, ReadFragmentResponse,
        Receipt, StatusRequest, StatusResponse, SubmitRequest, SubmitResponse, WatchBatchesRequest,
        WatchBatchesResponse,
        ordering_service_server::{OrderingService, OrderingServiceServer},
    },
    state::v1::{MarketEvent, market_service_client::MarketServiceClient},
};
use beat_state::{
    config::{Config, ConsensusConfig, StoreConfig},
    market::{MarketParams, MarketState},
};
use beat_telemetry::shutdown::Shutdown;
use beat_types::{Committee, NodeId, Variant};
use bytes::Bytes;
use parking_lot::Mutex;
use prost::Message as _;
use rand::SeedableRng as _;
use rand_chacha::ChaCha20Rng;
use tokio::{
    net::TcpListener,
    sync::{broadcast, mpsc},
};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, transport::Channel};

/// Every test body runs under this bound.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(90);

/// Runs an async test body in an actix system, failing it after [`TEST_TIMEOUT`].
pub fn run_bounded<F: Future<Output = ()>>(body: F) {
    actix_rt::System::new().block_on(async move {
        tokio::time::timeout(TEST_TIMEOUT, body)
            .await
            .expect("test timed out");
    });
}

/// Polls `check` every 20 ms until it returns `Some`, for at most `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A fresh temporary directory.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("beat-state-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A 4-replica committee file and its secrets.
pub fn committee(variant: Variant, delivery: Delivery) -> (CommitteeFile, Vec<ReplicaSecrets>) {
    let c = Committee::new(4).unwrap();
    let (keys, secrets) = deal(c, &mut ChaCha20Rng::seed_from_u64(11)).unwrap();
    let file = CommitteeFile {
        format: 1,
        name: "test".into(),
        params: Params {
            variant,
            delivery,
            ..Params::default()
        },
        keys,
        replicas: (0..4)
            .map(|i| ReplicaEntry {
                id: NodeId(i),
                endpoints: Endpoints {
                    tcp: Some(format!("127.0.0.1:{}", 7000 + i)),
                    ..Endpoints::default()
                },
            })
            .collect(),
    };
    (file, secrets)
}

/// A configuration for a test: store in `dir`, consensus at `consensus`, fast retries.
pub fn config(dir: &std::path::Path, consensus: SocketAddr) -> Config {
    Config {
        consensus: ConsensusConfig {
            endpoint: format!("http://{consensus}"),
            connect_timeout: Duration::from_millis(500),
            request_timeout: Duration::from_secs(5),
            backoff_initial: Duration::from_millis(20),
            backoff_max: Duration::from_millis(200),
            ..ConsensusConfig::default()
        },
        store: StoreConfig {
            path: dir.join("state.db"),
            client_key: dir.join("state-client.key"),
            ..StoreConfig::default()
        },
        ..Config::default()
    }
}

/// A free loopback port (bound and released).
pub async fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

// === the fake consensus ===

struct Inner {
    pending: Vec<Bytes>,
    keys: HashSet<Vec<u8>>,
    history: Vec<Batch>,
    watch_requests: Vec<u64>,
    submits: usize,
    refuse_next: usize,
}

/// An in-process ordering service: accepts transactions (suppressing duplicates by digest, or, in
/// BEAT2, by the label of a verified client transaction), cuts a one-contribution batch from the pending ones every 20 ms, and
/// streams batches from any epoch. In BEAT2 it decrypts with f + 1 of the committee's shares.
#[derive(Clone)]
pub struct FakeConsensus {
    inner: Arc<Mutex<Inner>>,
    live: broadcast::Sender<Batch>,
    decrypt: Option<Arc<(tdh2::PublicKey, Vec<ReplicaSecrets>)>>,
    stop: Shutdown,
}

/// A running fake consensus.
pub struct FakeHandle {
    /// The service (to inspect and steer it).
    pub fake: FakeConsensus,
    /// Its address.
    pub addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl FakeHandle {
    /// Stops the server and its streams.
    pub async fn stop(self) {
        self.fake.stop.trigger();
        self.server.await.unwrap();
    }
}

impl FakeConsensus {
    /// Starts one on `listener`; `beat2` gives it the keys to decrypt client ciphertexts.
    pub async fn start(
        listener: TcpListener,
        beat2: Option<(tdh2::PublicKey, Vec<ReplicaSecrets>)>,
    ) -> FakeHandle {
        let fake = Self {
            inner: Arc::new(Mutex::new(Inner {
                pending: Vec::new(),
                keys: HashSet::new(),
                history: Vec::new(),
                watch_requests: Vec::new(),
                submits: 0,
                refuse_next: 0,
            })),
            live: broadcast::channel(1024).0,
            decrypt: beat2.map(Arc::new),
            stop: Shutdown::default(),
        };
        let addr = listener.local_addr().unwrap();
        let cutter = fake.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(20)) => cutter.cut_epoch(),
                    _ = cutter.stop.wait() => return,
                }
            }
        });
        let service = fake.clone();
        let stop = fake.stop.clone();
        let server = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(OrderingServiceServer::new(service))
                .serve_with_incoming_shutdown(
                    beat_telemetry::grpc::incoming(listener),
                    async move { stop.wait().await },
                )
                .await
                .unwrap();
        });
        FakeHandle { fake, addr, server }
    }

    /// Answers the next `n` submits with RESOURCE_EXHAUSTED.
    pub fn refuse_next(&self, n: usize) {
        self.inner.lock().refuse_next = n;
    }

    /// The committed batches.
    pub fn history(&self) -> Vec<Batch> {
        self.inner.lock().history.clone()
    }

    /// The `from_epoch` of every WatchBatches call, in order.
    pub fn watch_requests(&self) -> Vec<u64> {
        self.inner.lock().watch_requests.clone()
    }

    /// Successful and refused Submit calls.
    pub fn submits(&self) -> usize {
        self.inner.lock().submits
    }

    /// Every committed event, decoded.
    pub fn committed_events(&self) -> Vec<MarketEvent> {
        self.history()
            .iter()
            .flat_map(transactions)
            .map(|t| MarketEvent::decode(t.as_ref()).unwrap())
            .collect()
    }

    fn cut_epoch(&self) {
        let mut inner = self.inner.lock();
        if inner.pending.is_empty() {
            return;
        }
        let transactions = std::mem::take(&mut inner.pending);
        let epoch = inner.history.len() as u64;
        let batch = Batch {
            epoch,
            contributions: vec![Contribution {
                proposer: 0,
                content: Some(Content::Transactions(TransactionList { transactions })),
            }],
            ordered_labels: Vec::new(),
            digest: Bytes::from(vec![0; 32]),
        };
        inner.history.push(batch.clone());
        let _ = self.live.send(batch);
    }

    /// The duplicate-suppression key and the plaintext of a transaction.
    fn admit(&self, tx: &Bytes) -> Result<(Vec<u8>, Bytes), Status> {
        let Some(keys) = &self.decrypt else {
            return Ok((hash(b"fake", tx).0.to_vec(), tx.clone()));
        };
        let (key, secrets) = &**keys;
        let parsed = ClientTransaction::from_bytes(tx)
            .and_then(|parsed| parsed.verify(key).map(|()| parsed))
            .map_err(|e| Status::invalid_argument(format!("not a client transaction: {e}")))?;
        let ct = parsed.ciphertext();
        let shares: BTreeMap<_, _> = secrets[..2]
            .iter()
            .map(|s| {
                let share = s.decryption.decryption_share(key, ct, ct.label()).unwrap();
                (s.node, share)
            })
            .collect();
        let plain = key
            .combine_verified(ct, &shares)
            .unwrap()
            .map_err(|_| Status::invalid_argument("undecryptable"))?;
        Ok((ct.label().to_vec(), Bytes::from(plain)))
    }
}

/// The transactions of a batch.
pub fn transactions(batch: &Batch) -> Vec<Bytes> {
    batch
        .contributions
        .iter()
        .flat_map(|c| match &c.content {
            Some(Content::Transactions(l)) => l.transactions.clone(),
            _ => Vec::new(),
        })
        .collect()
}

/// The state hash after each batch, computed by a fresh [`MarketState`].
pub fn replay(batches: &[Batch]) -> Vec<Digest> {
    let mut state = MarketState::new(MarketParams::default());
    batches
        .iter()
        .map(|b| {
            state
                .apply_batch(b.epoch, &transactions(b))
                .unwrap()
                .state_hash
        })
        .collect()
}

type BatchStream = ReceiverStream<Result<WatchBatchesResponse, Status>>;

#[tonic::async_trait]
impl OrderingService for FakeConsensus {
    async fn submit(
        &self,
        request: Request<SubmitRequest>,
    ) -> Result<Response<SubmitResponse>, Status> {
        let txs = request.into_inner().transactions;
        {
            let mut inner = self.inner.lock();
            inner.submits += 1;
            if inner.refuse_next > 0 {
                inner.refuse_next -= 1;
                return Err(Status::resource_exhausted("pending buffer is full"));
            }
        }
        let admitted = txs
            .iter()
            .map(|t| self.admit(t))
            .collect::<Result<Vec<_>, _>>()?;
        let mut inner = self.inner.lock();
        let receipts = admitted
            .into_iter()
            .map(|(key, plain)| {
                let admission = if inner.keys.insert(key.clone()) {
                    inner.pending.push(plain);
                    Admission::Accepted
                } else {
                    Admission::Duplicate
                };
                Receipt {
                    key: Bytes::from(key),
                    admission: admission as i32,
                }
            })
            .collect();
        Ok(Response::new(SubmitResponse {
            receipts,
            epoch: inner.history.len() as u64,
        }))
    }

    type WatchBatchesStream = BatchStream;

    async fn watch_batches(
        &self,
        request: Request<WatchBatchesRequest>,
    ) -> Result<Response<BatchStream>, Status> {
        let from = request.into_inner().from_epoch;
        let mut live = self.live.subscribe();
        let history: Vec<Batch> = {
            let mut inner = self.inner.lock();
            inner.watch_requests.push(from);
            inner.history.iter().skip(from as usize).cloned().collect()
        };
        let (tx, rx) = mpsc::channel(16);
        let stop = self.stop.clone();
        tokio::spawn(async move {
            let mut next = from;
            for batch in history {
                next = batch.epoch + 1;
                let item = WatchBatchesResponse {
                    batch: Some(batch),
                    certificate: None,
                };
                if tx.send(Ok(item)).await.is_err() {
                    return;
                }
            }
            loop {
                let batch = tokio::select! {
                    b = live.recv() => b,
                    _ = stop.wait() => return,
                    _ = tx.closed() => return,
                };
                match batch {
                    Ok(b) if b.epoch < next => {}
                    Ok(b) => {
                        next = b.epoch + 1;
                        let item = WatchBatchesResponse {
                            batch: Some(b),
                            certificate: None,
                        };
                        if tx.send(Ok(item)).await.is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn get_batch(
        &self,
        request: Request<GetBatchRequest>,
    ) -> Result<Response<GetBatchResponse>, Status> {
        let epoch = request.into_inner().epoch as usize;
        let batch = self.inner.lock().history.get(epoch).cloned();
        Ok(Response::new(GetBatchResponse {
            batch,
            certificate: None,
        }))
    }

    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        Ok(Response::new(StatusResponse::default()))
    }

    async fn read_fragment(
        &self,
        _: Request<ReadFragmentRequest>,
    ) -> Result<Response<ReadFragmentResponse>, Status> {
        Err(Status::unimplemented("the fake stores no fragments"))
    }
}

// === the state service under test ===

/// A running state service.
pub struct StateHandle {
    /// gRPC address.
    pub addr: SocketAddr,
    /// Ops address.
    pub ops: SocketAddr,
    /// Stops it.
    pub shutdown: Shutdown,
    /// Its result.
    pub server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl StateHandle {
    /// Starts the service on loopback.
    pub async fn start(config: Config, committee: CommitteeFile) -> Self {
        let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = grpc.local_addr().unwrap();
        let ops = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let ops_addr = ops.local_addr().unwrap();
        let shutdown = Shutdown::default();
        let server = tokio::spawn(beat_state::serve(
            config,
            committee,
            grpc,
            ops,
            shutdown.clone(),
        ));
        Self {
            addr,
            ops: ops_addr,
            shutdown,
            server,
        }
    }

    /// A connected client.
    pub async fn client(&self) -> MarketServiceClient<Channel> {
        let url = format!("http://{}", self.addr);
        eventually(
            "the state service to accept connections",
            Duration::from_secs(10),
            || {
                let url = url.clone();
                async move { MarketServiceClient::connect(url).await.ok() }
            },
        )
        .await
    }

    /// Stops the service and returns its result.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.trigger();
        self.server.await.unwrap()
    }

    /// `GET path` on the ops port: (status line, body).
    pub async fn ops_get(&self, path: &str) -> (String, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(self.ops).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
        (
            head.lines().next().unwrap_or_default().to_owned(),
            body.to_owned(),
        )
    }
}

/// The value of an unlabelled metric (or of one label set given as `{k="v"}`).
pub fn metric(exposition: &str, name: &str) -> Option<f64> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}
