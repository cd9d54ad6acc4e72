//! The `beat.consensus.v1.OrderingService` implementation.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use actix::Addr;
use std::collections::BTreeMap;

use beat_core::{Batch, CommitCertificate};
use beat_proto::consensus::v1::{
    self as pb, GetBatchRequest, GetBatchResponse, ReadFragmentRequest, ReadFragmentResponse,
    StatusRequest, StatusResponse, SubmitRequest, SubmitResponse, WatchBatchesRequest,
    WatchBatchesResponse, ordering_service_server::OrderingService,
};
use beat_types::{Epoch, NodeId, Transaction, Variant};
use bytes::Bytes;
use futures::Stream;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::{
    actor::{ConsensusActor, ReadBatches, ReadFragments, Submit},
    component::{Admission, CommitEvent, SubmitError},
    convert,
};

/// Static facts about the replica.
#[derive(Clone, Debug)]
pub struct Info {
    /// This replica.
    pub replica: NodeId,
    /// Committee size.
    pub n: usize,
    /// Tolerated faults.
    pub f: usize,
    /// Variant.
    pub variant: Variant,
}

/// The gRPC shell.
pub struct OrderingGrpc {
    /// The actor.
    pub actor: Addr<ConsensusActor>,
    /// Committed and certified batches, live.
    pub committed: broadcast::Sender<Arc<CommitEvent>>,
    /// Static facts.
    pub info: Info,
    /// Gateway link state.
    pub gateway_connected: Arc<AtomicBool>,
    /// Keystore state.
    pub keystore_connected: Arc<AtomicBool>,
}

fn unavailable(e: actix::MailboxError) -> Status {
    Status::unavailable(format!("consensus is shutting down: {e}"))
}

impl From<SubmitError> for Status {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::Invalid { .. } | SubmitError::TooMany { .. } => {
                Self::invalid_argument(e.to_string())
            }
            SubmitError::BufferFull { .. } => Self::resource_exhausted(e.to_string()),
            SubmitError::Store(_) => Self::internal(e.to_string()),
            SubmitError::ShuttingDown => Self::unavailable(e.to_string()),
        }
    }
}

type BatchStream = Pin<Box<dyn Stream<Item = Result<WatchBatchesResponse, Status>> + Send>>;

type WatchSender = mpsc::Sender<Result<WatchBatchesResponse, Status>>;

/// The watcher went away, or the replica failed to serve it (it was told).
struct WatchEnded;

/// Most certified epochs a certified watcher holds while waiting for an earlier epoch's
/// certificate (certificates form at most `certify_window` epochs out of order).
const MAX_AHEAD: usize = 64;

/// One `WatchBatches` stream: the next epoch to send and, for a certified watcher, certified
/// epochs that arrived before it.
struct Watch {
    next: Epoch,
    certified: bool,
    actor: Addr<ConsensusActor>,
    ahead: BTreeMap<Epoch, (Arc<Batch>, CommitCertificate)>,
}

impl Watch {
    async fn send(
        &mut self,
        tx: &WatchSender,
        batch: &Batch,
        certificate: Option<&CommitCertificate>,
    ) -> Result<(), WatchEnded> {
        tx.send(Ok(WatchBatchesResponse {
            batch: Some(convert::batch(batch)),
            certificate: certificate.map(convert::certificate),
        }))
        .await
        .map_err(|_| WatchEnded)?;
        self.next = self.next.next();
        self.ahead = self.ahead.split_off(&self.next);
        Ok(())
    }

    /// Sends what storage holds from `next` on (for a certified watcher: up to the first epoch
    /// not certified yet), then what waited in `ahead`.
    async fn send_stored(&mut self, tx: &WatchSender) -> Result<(), WatchEnded> {
        loop {
            let (batches, current) = match self
                .actor
                .send(ReadBatches {
                    from: self.next,
                    count: 64,
                })
                .await
            {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    let _ = tx.send(Err(Status::internal(e.to_string()))).await;
                    return Err(WatchEnded);
                }
                Err(e) => {
                    let _ = tx.send(Err(unavailable(e))).await;
                    return Err(WatchEnded);
                }
            };
            let mut stopped = batches.is_empty();
            for b in &batches {
                if b.batch.epoch != self.next || (self.certified && b.certificate.is_none()) {
                    stopped = true;
                    break;
                }
                self.send(tx, &b.batch, b.certificate.as_ref()).await?;
            }
            if stopped || self.next >= current {
                break;
            }
        }
        self.drain_ahead(tx).await
    }

    async fn drain_ahead(&mut self, tx: &WatchSender) -> Result<(), WatchEnded> {
        while let Some((batch, certificate)) = self.ahead.remove(&self.next) {
            self.send(tx, &batch, Some(&certificate)).await?;
        }
        Ok(())
    }

    /// A live commit or certification.
    async fn on_event(
        &mut self,
        event: Arc<CommitEvent>,
        tx: &WatchSender,
    ) -> Result<(), WatchEnded> {
        let epoch = event.batch.epoch;
        if epoch < self.next || (self.certified && event.certificate.is_none()) {
            return Ok(());
        }
        if epoch == self.next {
            self.send(tx, &event.batch, event.certificate.as_ref())
                .await?;
            return self.drain_ahead(tx).await;
        }
        // An epoch after the next one: the next one was missed, or (certified) is certified
        // later than this one. Keep this one and look in storage.
        if let Some(certificate) = event.certificate
            && self.ahead.len() < MAX_AHEAD
        {
            self.ahead.insert(epoch, (event.batch.clone(), certificate));
        }
        self.send_stored(tx).await
    }
}

#[tonic::async_trait]
impl OrderingService for OrderingGrpc {
    async fn submit(
        &self,
        request: Request<SubmitRequest>,
    ) -> Result<Response<SubmitResponse>, Status> {
        let txs: Vec<Transaction> = request
            .into_inner()
            .transactions
            .into_iter()
            .map(|b| Transaction::new(b.to_vec()))
            .collect();
        if txs.is_empty() {
            return Err(Status::invalid_argument("no transactions"));
        }
        let (receipts, epoch) = self.actor.send(Submit(txs)).await.map_err(unavailable)??;
        Ok(Response::new(SubmitResponse {
            receipts: receipts
                .into_iter()
                .map(|(key, admission)| pb::Receipt {
                    key: Bytes::copy_from_slice(key.as_bytes()),
                    admission: match admission {
                        Admission::Accepted => pb::Admission::Accepted,
                        Admission::Duplicate => pb::Admission::Duplicate,
                    } as i32,
                })
                .collect(),
            epoch: epoch.0,
        }))
    }

    type WatchBatchesStream = BatchStream;

    async fn watch_batches(
        &self,
        request: Request<WatchBatchesRequest>,
    ) -> Result<Response<Self::WatchBatchesStream>, Status> {
        let request = request.into_inner();
        let mut watch = Watch {
            next: Epoch(request.from_epoch),
            certified: request.certified,
            actor: self.actor.clone(),
            ahead: BTreeMap::new(),
        };
        let mut live = self.committed.subscribe();
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            // History first (the subscription above already buffers what commits meanwhile).
            if watch.send_stored(&tx).await.is_err() {
                return;
            }
            // Then live; a missed or out-of-order epoch sends the watcher back to storage.
            loop {
                let event = match live.recv().await {
                    Ok(event) => event,
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        if watch.send_stored(&tx).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if watch.on_event(event, &tx).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn get_batch(
        &self,
        request: Request<GetBatchRequest>,
    ) -> Result<Response<GetBatchResponse>, Status> {
        let epoch = Epoch(request.into_inner().epoch);
        let (batches, _) = self
            .actor
            .send(ReadBatches {
                from: epoch,
                count: 1,
            })
            .await
            .map_err(unavailable)?
            .map_err(|e| Status::internal(e.to_string()))?;
        match batches.first() {
            Some(b) if b.batch.epoch == epoch => Ok(Response::new(GetBatchResponse {
                batch: Some(convert::batch(&b.batch)),
                certificate: b.certificate.as_ref().map(convert::certificate),
            })),
            _ => Err(Status::not_found(format!("epoch {epoch} is not committed"))),
        }
    }

    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let s = self
            .actor
            .send(crate::actor::Status)
            .await
            .map_err(unavailable)?;
        Ok(Response::new(StatusResponse {
            replica: self.info.replica.0,
            n: self.info.n as u32,
            f: self.info.f as u32,
            variant: convert::variant(self.info.variant) as i32,
            epoch: s.epoch.0,
            buffered: s.buffered as u64,
            committed_transactions: s.committed_transactions,
            faults_observed: s.faults_observed,
            peers: s
                .peers
                .iter()
                .map(|(p, e)| pb::PeerEpoch {
                    replica: p.0,
                    epoch: e.0,
                })
                .collect(),
            keystore_connected: self.keystore_connected.load(Ordering::Acquire),
            gateway_connected: self.gateway_connected.load(Ordering::Acquire),
            last_batch_digest: s
                .last_batch_digest
                .map(|d| Bytes::copy_from_slice(d.as_bytes()))
                .unwrap_or_default(),
        }))
    }

    async fn read_fragment(
        &self,
        request: Request<ReadFragmentRequest>,
    ) -> Result<Response<ReadFragmentResponse>, Status> {
        let r = request.into_inner();
        if r.proposer as usize >= self.info.n {
            return Err(Status::invalid_argument(format!(
                "proposer {} is not a replica",
                r.proposer
            )));
        }
        let stored = self
            .actor
            .send(ReadFragments {
                epoch: Epoch(r.epoch),
                proposer: NodeId(r.proposer),
            })
            .await
            .map_err(unavailable)?
            .map_err(|e| Status::internal(e.to_string()))?
            .ok_or_else(|| Status::not_found("no fragment stored for this epoch and proposer"))?;
        convert::read_fragment_response(&stored)
            .map(Response::new)
            .ok_or_else(|| Status::not_found("this replica holds no fragment of that dispersal"))
    }
}
