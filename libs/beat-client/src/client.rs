//! A client of a committee: several replicas, failover with jittered backoff, idempotent
//! submission, BEAT2 sealing, and a verified watch that resumes from the last verified epoch.
//!
//! - **Submission is idempotent.** A transaction is named by its key (its digest; in BEAT2 its
//!   label: client key and request id), and the committee orders a key once within its
//!   duplicate-suppression window, whichever replicas it was submitted to. So a submission
//!   that failed or timed out — maybe after the replica made it durable — is simply sent again,
//!   to the next replica: [`Client::submit`] retries transient failures (`UNAVAILABLE`,
//!   `RESOURCE_EXHAUSTED`, `DEADLINE_EXCEEDED`, a broken connection) up to `attempts` times,
//!   rotating through the replicas with [`beat_types::backoff::Backoff`] between rounds, and
//!   returns at once on a permanent refusal (`INVALID_ARGUMENT`, `UNAUTHENTICATED`, …).
//! - **BEAT2 sealing** ([`Sealer`]): encryption under the committee key with a label naming the
//!   client's Ed25519 key and a request id, signed by that key (`beat_core::client`). The
//!   request id is the idempotency key: sealing the same request id twice gives two ciphertexts
//!   of one request, ordered once.
//! - **Verified watch** ([`Client::watch`]): certified batches from one replica at a time, each
//!   checked against the committee file ([`crate::verify::ChainVerifier`]). When the stream
//!   ends, fails, stalls past `watch_stall`, or serves something that does not verify (the
//!   error is reported, and that replica is left), the watch moves to the next replica and
//!   resumes right after the last verified epoch, continuing the same chain, so no epoch is
//!   skipped or repeated and no replica's word is taken for anything.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use beat_client::{client::{Client, ClientConfig}, verify::CommitteeInfo};
//! use futures::StreamExt as _;
//!
//! let mut client = Client::new(ClientConfig::new(vec![
//!     "http://127.0.0.1:17100".into(),
//!     "http://127.0.0.1:17101".into(),
//! ]))?;
//! let submitted = client.submit(&[b"hello".to_vec()]).await?;
//! println!("accepted by {} in epoch {}", submitted.endpoint, submitted.epoch);
//! let committee = CommitteeInfo::load(std::path::Path::new(".devnet/committee.json"))?;
//! let mut watch = client.watch(committee, 0);
//! while let Some(batch) = watch.next().await {
//!     let batch = batch?;
//!     println!("epoch {} verified by {}", batch.verified.epoch, batch.endpoint);
//! }
//! # Ok(()) }
//! ```

use std::{sync::Arc, time::Duration};

use beat_config::CommitteeFile;
use beat_core::client::{seal_client_bundle, seal_client_transaction};
use beat_crypto::{identity::IdentityKeypair, tdh2};
use beat_proto::consensus::v1::{self as pb, ordering_service_client::OrderingServiceClient};
use beat_types::{Epoch, Variant, backoff::Backoff};
use bytes::Bytes;
use futures::Stream;
use tokio::sync::mpsc;
use tonic::Code;

use crate::{
    connect::{ApiChannel, ClientAuth, ConnectError},
    verify::{ChainVerifier, CommitteeInfo, Verified, VerifyError},
};

/// How a [`Client`] reaches the committee and how hard it tries.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Ordering API endpoints of the replicas to use, in order of preference.
    pub endpoints: Vec<String>,
    /// TLS and credentials for them.
    pub auth: ClientAuth,
    /// Each call's deadline.
    pub request_timeout: Duration,
    /// Most attempts of one submission, over all replicas.
    pub attempts: u32,
    /// First delay after a round of failures, doubling up to `backoff_max` (jittered).
    pub backoff_initial: Duration,
    /// Largest delay.
    pub backoff_max: Duration,
    /// A watch that receives nothing for this long moves to the next replica.
    pub watch_stall: Duration,
}

impl ClientConfig {
    /// Defaults for `endpoints`: 10 s calls, 8 attempts, 100 ms to 5 s backoff, 30 s stall.
    pub fn new(endpoints: Vec<String>) -> Self {
        Self {
            endpoints,
            auth: ClientAuth::default(),
            request_timeout: Duration::from_secs(10),
            attempts: 8,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            watch_stall: Duration::from_secs(30),
        }
    }
}

/// What can go wrong, by what the caller should do about it.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The configuration cannot work (no endpoints, bad URI, unreadable credentials).
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// No endpoints were given.
    #[error("no replica endpoints")]
    NoEndpoints,
    /// A replica refused the request for a reason retrying will not change.
    #[error("{endpoint} refused the request: {} ({})", status.message(), status.code())]
    Refused {
        /// The replica.
        endpoint: String,
        /// Its answer.
        status: tonic::Status,
    },
    /// Every attempt failed transiently.
    #[error("no replica took the request in {attempts} attempts; the last failure: {last}")]
    Exhausted {
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// A replica served history that does not verify against the committee file. The watch
    /// goes on with the next replica.
    #[error("{endpoint} served a batch that does not verify: {error}")]
    Unverifiable {
        /// The replica.
        endpoint: String,
        /// Why.
        error: VerifyError,
    },
    /// BEAT2 sealing failed.
    #[error("cannot seal the transaction: {0}")]
    Seal(String),
}

/// Whether a failure is worth another attempt (at another replica): back-pressure,
/// unavailability, timeouts and transport failures (which tonic reports as `UNKNOWN` or
/// `CANCELLED`).
pub fn is_transient(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::ResourceExhausted
            | Code::DeadlineExceeded
            | Code::Aborted
            | Code::Unknown
            | Code::Cancelled
    )
}

/// One submission's outcome.
#[derive(Clone, Debug)]
pub struct Submitted {
    /// One receipt per transaction, in order.
    pub receipts: Vec<pb::Receipt>,
    /// The replica's epoch when it took them.
    pub epoch: u64,
    /// The replica that took them.
    pub endpoint: String,
    /// Attempts it took (1 if the first replica took them).
    pub attempts: u32,
}

/// A verified batch and who served it.
#[derive(Clone, Debug)]
pub struct WatchedBatch {
    /// The batch, decoded and verified, with its chain link.
    pub verified: Verified,
    /// The replica that served it.
    pub endpoint: String,
}

#[derive(Clone)]
struct Replica {
    endpoint: String,
    ordering: OrderingServiceClient<ApiChannel>,
}

/// A client of several replicas (module docs).
#[derive(Clone)]
pub struct Client {
    replicas: Arc<[Replica]>,
    config: ClientConfig,
    /// The replica tried first next time: the last one that answered.
    current: usize,
}

impl Client {
    /// Lazily connecting clients of every endpoint (nothing is dialled yet).
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        if config.endpoints.is_empty() {
            return Err(ClientError::NoEndpoints);
        }
        let replicas = config
            .endpoints
            .iter()
            .map(|e| {
                Ok(Replica {
                    endpoint: e.clone(),
                    ordering: crate::connect::ordering(e, &config.auth)?,
                })
            })
            .collect::<Result<Vec<_>, ConnectError>>()?;
        Ok(Self {
            replicas: replicas.into(),
            config,
            current: 0,
        })
    }

    /// The replica tried first.
    pub fn endpoint(&self) -> &str {
        &self.replicas[self.current].endpoint
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(self.config.backoff_initial, self.config.backoff_max)
    }

    /// Submits `transactions` (sealed already, in BEAT2), retrying transient failures at the
    /// next replica (module docs). Every receipt says `ACCEPTED` or `DUPLICATE`; both mean the
    /// committee has the transaction.
    pub async fn submit(&mut self, transactions: &[Vec<u8>]) -> Result<Submitted, ClientError> {
        let request = pb::SubmitRequest {
            transactions: transactions.iter().cloned().map(Bytes::from).collect(),
        };
        let mut backoff = self.backoff();
        let mut last = String::new();
        let n = self.replicas.len();
        for attempt in 1..=self.config.attempts.max(1) {
            let replica = &self.replicas[self.current];
            let mut ordering = replica.ordering.clone();
            let mut call = tonic::Request::new(request.clone());
            call.set_timeout(self.config.request_timeout);
            match ordering.submit(call).await {
                Ok(r) => {
                    let r = r.into_inner();
                    return Ok(Submitted {
                        receipts: r.receipts,
                        epoch: r.epoch,
                        endpoint: replica.endpoint.clone(),
                        attempts: attempt,
                    });
                }
                Err(status) if is_transient(status.code()) => {
                    last = format!(
                        "{}: {} ({})",
                        replica.endpoint,
                        status.message(),
                        status.code()
                    );
                    self.current = (self.current + 1) % n;
                    // A pause after every full round, not between replicas of one round.
                    if attempt % n as u32 == 0 {
                        tokio::time::sleep(backoff.next_delay()).await;
                    }
                }
                Err(status) => {
                    return Err(ClientError::Refused {
                        endpoint: replica.endpoint.clone(),
                        status,
                    });
                }
            }
        }
        Err(ClientError::Exhausted {
            attempts: self.config.attempts.max(1),
            last,
        })
    }

    /// A replica's status, from the first replica that answers.
    pub async fn status(&mut self) -> Result<(String, pb::StatusResponse), ClientError> {
        let mut last = String::new();
        for _ in 0..self.replicas.len() {
            let replica = &self.replicas[self.current];
            let mut call = tonic::Request::new(pb::StatusRequest {});
            call.set_timeout(self.config.request_timeout);
            match replica.ordering.clone().status(call).await {
                Ok(r) => return Ok((replica.endpoint.clone(), r.into_inner())),
                Err(s) => {
                    last = format!("{}: {}", replica.endpoint, s.message());
                    self.current = (self.current + 1) % self.replicas.len();
                }
            }
        }
        Err(ClientError::Exhausted {
            attempts: self.replicas.len() as u32,
            last,
        })
    }

    /// Certified batches from epoch `from` on, each verified against `committee`, from
    /// whichever replica serves them (module docs). The stream ends only when dropped; its
    /// errors are reports (a replica that served an unverifiable batch), after which it goes
    /// on with the next replica.
    pub fn watch(
        &self,
        committee: CommitteeInfo,
        from: u64,
    ) -> impl Stream<Item = Result<WatchedBatch, ClientError>> + Send + 'static {
        let (tx, rx) = mpsc::channel(16);
        let chain = if from == 0 {
            ChainVerifier::from_genesis(committee)
        } else {
            ChainVerifier::from_anywhere(committee)
        };
        tokio::spawn(watch_task(self.clone(), chain, Epoch(from), tx));
        tokio_stream::wrappers::ReceiverStream::new(rx)
    }
}

/// Follows the certified history (see [`Client::watch`]) until the receiver goes away.
async fn watch_task(
    mut client: Client,
    mut chain: ChainVerifier,
    mut next: Epoch,
    tx: mpsc::Sender<Result<WatchedBatch, ClientError>>,
) {
    let mut backoff = client.backoff();
    let mut failures = 0usize;
    loop {
        let replica = client.replicas[client.current].clone();
        let served = follow(&replica, &mut chain, &mut next, &client.config, &tx).await;
        match served {
            Follow::ReceiverGone => return,
            Follow::Progress => {
                backoff.reset();
                failures = 0;
            }
            Follow::Failed(report) => {
                if let Some(e) = report
                    && tx.send(Err(e)).await.is_err()
                {
                    return;
                }
                failures += 1;
            }
        }
        client.current = (client.current + 1) % client.replicas.len();
        if failures >= client.replicas.len() {
            failures = 0;
            tokio::select! {
                () = tokio::time::sleep(backoff.next_delay()) => {}
                () = tx.closed() => return,
            }
        }
    }
}

enum Follow {
    /// Some batches were verified before the stream ended.
    Progress,
    /// Nothing verified; maybe a report for the caller.
    Failed(Option<ClientError>),
    ReceiverGone,
}

/// Streams from one replica until it ends, fails, stalls or serves something unverifiable.
async fn follow(
    replica: &Replica,
    chain: &mut ChainVerifier,
    next: &mut Epoch,
    config: &ClientConfig,
    tx: &mpsc::Sender<Result<WatchedBatch, ClientError>>,
) -> Follow {
    let mut ordering = replica.ordering.clone();
    let request = pb::WatchBatchesRequest {
        from_epoch: next.0,
        certified: true,
    };
    let mut stream = match ordering.watch_batches(request).await {
        Ok(s) => s.into_inner(),
        Err(_) => return Follow::Failed(None),
    };
    let mut progressed = false;
    let ended = |progressed: bool| {
        if progressed {
            Follow::Progress
        } else {
            Follow::Failed(None)
        }
    };
    loop {
        let message = tokio::select! {
            m = tokio::time::timeout(config.watch_stall, stream.message()) => m,
            () = tx.closed() => return Follow::ReceiverGone,
        };
        let message = match message {
            Ok(Ok(Some(m))) => m,
            // Ended, failed or stalled: try the next replica.
            Ok(Ok(None) | Err(_)) | Err(_) => return ended(progressed),
        };
        let unverifiable = |error| {
            Follow::Failed(Some(ClientError::Unverifiable {
                endpoint: replica.endpoint.clone(),
                error,
            }))
        };
        let Some(batch) = message.batch else {
            return unverifiable(VerifyError::Uncertified(*next));
        };
        // A replica that starts elsewhere than asked (skipping epochs, or repeating them) is
        // not followed: the chain must continue exactly.
        if batch.epoch != next.0 {
            return unverifiable(VerifyError::OutOfOrder {
                expected: *next,
                got: Epoch(batch.epoch),
            });
        }
        let Some(certificate) = message.certificate else {
            return unverifiable(VerifyError::Uncertified(Epoch(batch.epoch)));
        };
        match chain.verify(&batch, &certificate) {
            Ok(verified) => {
                *next = verified.epoch.next();
                progressed = true;
                let item = WatchedBatch {
                    verified,
                    endpoint: replica.endpoint.clone(),
                };
                if tx.send(Ok(item)).await.is_err() {
                    return Follow::ReceiverGone;
                }
            }
            Err(error) => return unverifiable(error),
        }
    }
}

/// Seals client transactions for a committee: as is in BEAT0/1/3/4, encrypted under the
/// committee key with a label naming the client and a request id, and signed, in BEAT2.
pub struct Sealer {
    mode: Option<(Arc<tdh2::PublicKey>, Arc<IdentityKeypair>)>,
}

impl Sealer {
    /// For `committee`; `identity` is the client's Ed25519 key, required for BEAT2.
    pub fn for_committee(
        committee: &CommitteeFile,
        identity: Option<Arc<IdentityKeypair>>,
    ) -> Result<Self, ClientError> {
        if committee.params.variant != Variant::Beat2 {
            return Ok(Self { mode: None });
        }
        let identity = identity.ok_or_else(|| {
            ClientError::Seal("a BEAT2 committee needs a client identity key".to_owned())
        })?;
        Ok(Self {
            mode: Some((committee.public_keys().encryption, identity)),
        })
    }

    /// Whether sealing encrypts (BEAT2).
    pub fn encrypts(&self) -> bool {
        self.mode.is_some()
    }

    /// The transaction for `plain` as request `request` of this client (the idempotency key in
    /// BEAT2; ignored otherwise, where the bytes are the key).
    pub fn seal(
        &self,
        request: u64,
        plain: &[u8],
        rng: &mut (impl rand_core::CryptoRng + ?Sized),
    ) -> Result<Vec<u8>, ClientError> {
        match &self.mode {
            None => Ok(plain.to_vec()),
            Some((encryption, identity)) => {
                seal_client_transaction(identity, encryption, request, plain, rng)
                    .map(beat_types::Transaction::into_vec)
                    .map_err(|e| ClientError::Seal(e.to_string()))
            }
        }
    }

    /// BEAT2 only: `plains` (1 to [`MAX_BUNDLE_TRANSACTIONS`](beat_core::client::MAX_BUNDLE_TRANSACTIONS) non-empty transactions) sealed
    /// as one bundle, request `request` of this client: one ciphertext, label and signature for
    /// all of them, which the committee orders once and commits in this order. Each replica
    /// spends about as much on a bundle as on one transaction, so a client with many
    /// transactions to send should bundle them. Other variants have no bundles: there is
    /// nothing to amortise.
    pub fn seal_bundle(
        &self,
        request: u64,
        plains: &[&[u8]],
        rng: &mut (impl rand_core::CryptoRng + ?Sized),
    ) -> Result<Vec<u8>, ClientError> {
        let Some((encryption, identity)) = &self.mode else {
            return Err(ClientError::Seal(
                "bundles exist only in BEAT2 committees".to_owned(),
            ));
        };
        seal_client_bundle(identity, encryption, request, plains, rng)
            .map(beat_types::Transaction::into_vec)
            .map_err(|e| ClientError::Seal(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;

    use beat_core::certificate::CommitStatement;
    use beat_proto::consensus::v1::ordering_service_server::{
        OrderingService, OrderingServiceServer,
    };
    use futures::StreamExt as _;
    use tonic::{Request, Response, Status};

    use super::*;
    use crate::verify::tests::{certify, committee, link, proto_batch};

    /// A replica that serves a certified history, altering one epoch's batch if told to, and
    /// refuses submissions as overloaded.
    struct Fake {
        history: Vec<pb::WatchBatchesResponse>,
        alter: Option<u64>,
    }

    type Watch = Pin<Box<dyn Stream<Item = Result<pb::WatchBatchesResponse, Status>> + Send>>;

    #[tonic::async_trait]
    impl OrderingService for Fake {
        async fn submit(
            &self,
            _: Request<pb::SubmitRequest>,
        ) -> Result<Response<pb::SubmitResponse>, Status> {
            Err(Status::resource_exhausted("the pending buffer is full"))
        }

        type WatchBatchesStream = Watch;

        async fn watch_batches(
            &self,
            request: Request<pb::WatchBatchesRequest>,
        ) -> Result<Response<Watch>, Status> {
            let from = request.into_inner().from_epoch;
            let alter = self.alter;
            let items: Vec<_> = self
                .history
                .iter()
                .filter(|r| r.batch.as_ref().is_some_and(|b| b.epoch >= from))
                .cloned()
                .map(move |mut r| {
                    if let Some(b) = r.batch.as_mut()
                        && Some(b.epoch) == alter
                    {
                        b.contributions.truncate(1);
                    }
                    Ok(r)
                })
                .collect();
            // Then the stream stays open, as at a live edge.
            let stream = futures::stream::iter(items).chain(futures::stream::pending());
            Ok(Response::new(Box::pin(stream)))
        }

        async fn get_batch(
            &self,
            _: Request<pb::GetBatchRequest>,
        ) -> Result<Response<pb::GetBatchResponse>, Status> {
            Err(Status::unimplemented("fake"))
        }

        async fn status(
            &self,
            _: Request<pb::StatusRequest>,
        ) -> Result<Response<pb::StatusResponse>, Status> {
            Err(Status::unimplemented("fake"))
        }

        async fn read_fragment(
            &self,
            _: Request<pb::ReadFragmentRequest>,
        ) -> Result<Response<pb::ReadFragmentResponse>, Status> {
            Err(Status::unimplemented("fake"))
        }
    }

    async fn serve(fake: Fake) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(OrderingServiceServer::new(fake))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn a_lying_replica_is_reported_and_the_watch_resumes_at_the_next_without_a_gap() {
        let c = committee();
        let mut history = Vec::new();
        let mut previous = CommitStatement::genesis(c.info.digest);
        for epoch in 0..6 {
            let tx = format!("tx-{epoch}");
            let batch = proto_batch(epoch, &[tx.as_bytes()]);
            let certificate = certify(&c, &batch, previous);
            previous = link(&c, &batch, previous);
            history.push(pb::WatchBatchesResponse {
                batch: Some(batch),
                certificate: Some(certificate),
            });
        }
        let liar = serve(Fake {
            history: history.clone(),
            alter: Some(3),
        })
        .await;
        let honest = serve(Fake {
            history,
            alter: None,
        })
        .await;
        let mut config = ClientConfig::new(vec![liar.clone(), honest.clone()]);
        config.backoff_initial = Duration::from_millis(10);
        config.backoff_max = Duration::from_millis(20);
        let client = Client::new(config).unwrap();

        let mut watch = Box::pin(client.watch(c.info.clone(), 0));
        let mut got = Vec::new();
        let mut reports = Vec::new();
        while got.len() < 6 {
            match tokio::time::timeout(Duration::from_secs(10), watch.next())
                .await
                .expect("the watch stalled")
                .expect("the watch ended")
            {
                Ok(b) => got.push((b.verified.epoch.0, b.endpoint)),
                Err(e) => reports.push(e),
            }
        }
        let epochs: Vec<u64> = got.iter().map(|(e, _)| *e).collect();
        assert_eq!(
            epochs,
            [0, 1, 2, 3, 4, 5],
            "gap-free, in order, nothing twice"
        );
        assert!(got[..3].iter().all(|(_, e)| *e == liar));
        assert!(got[3..].iter().all(|(_, e)| *e == honest));
        assert!(
            matches!(&reports[..], [ClientError::Unverifiable { endpoint, .. }] if *endpoint == liar),
            "{reports:?}"
        );

        // Both replicas refuse submissions as overloaded: every attempt is made, then the
        // client says so.
        let mut config = ClientConfig::new(vec![liar, honest]);
        config.attempts = 4;
        config.backoff_initial = Duration::from_millis(1);
        let mut client = Client::new(config).unwrap();
        match client.submit(&[b"x".to_vec()]).await {
            Err(ClientError::Exhausted { attempts: 4, last }) => {
                assert!(last.contains("pending buffer is full"), "{last}")
            }
            other => panic!("{other:?}"),
        }
    }
}
