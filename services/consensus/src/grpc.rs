//! The `beat.consensus.v1.OrderingService` implementation.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use actix::Addr;
use beat_proto::consensus::v1::{
    self as pb, GetBatchRequest, GetBatchResponse, ReadFragmentRequest, ReadFragmentResponse,
    StatusRequest, StatusResponse, SubmitRequest, SubmitResponse, WatchBatchesRequest,
    ordering_service_server::OrderingService,
};
use beat_types::{Epoch, NodeId, Transaction, Variant};
use bytes::Bytes;
use tonic::{Request, Response, Status};

use crate::{
    actor::{ConsensusActor, ReadFragments, Submit},
    component::{Admission, ClientKey, SubmitError},
    convert,
    store::BatchReader,
    watch::{WatchStream, Watchers},
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
    /// The watchers of committed batches.
    pub watchers: Watchers,
    /// Committed batches, read off the actor.
    pub reader: BatchReader,
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
            SubmitError::BufferFull { .. } | SubmitError::QuotaExceeded { .. } => {
                Self::resource_exhausted(e.to_string())
            }
            SubmitError::Store(_) => Self::internal(e.to_string()),
            SubmitError::ShuttingDown => Self::unavailable(e.to_string()),
        }
    }
}

#[tonic::async_trait]
impl OrderingService for OrderingGrpc {
    async fn submit(
        &self,
        request: Request<SubmitRequest>,
    ) -> Result<Response<SubmitResponse>, Status> {
        // Whom the request counts against in the pending buffer's quota: the authenticated
        // client if there is one, else its source. Loopback clients are the replica's own
        // services (the state service's feed) or a mesh sidecar speaking for many clients: not
        // one client, so not limited as one.
        let source = request
            .remote_addr()
            .map(|a| beat_telemetry::api::source_of(a.ip()))
            .filter(|ip| !ip.is_loopback())
            .map(|ip| {
                request
                    .extensions()
                    .get::<beat_telemetry::auth::Principal>()
                    .cloned()
                    .map_or(ClientKey::Source(ip), ClientKey::Principal)
            });
        let txs: Vec<Transaction> = request
            .into_inner()
            .transactions
            .into_iter()
            .map(|b| Transaction::new(b.to_vec()))
            .collect();
        if txs.is_empty() {
            return Err(Status::invalid_argument("no transactions"));
        }
        let (receipts, epoch) = self
            .actor
            .send(Submit(txs, source))
            .await
            .map_err(unavailable)??;
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

    type WatchBatchesStream = WatchStream;

    async fn watch_batches(
        &self,
        request: Request<WatchBatchesRequest>,
    ) -> Result<Response<Self::WatchBatchesStream>, Status> {
        let peer = request.remote_addr();
        let request = request.into_inner();
        let stream = self
            .watchers
            .watch(Epoch(request.from_epoch), request.certified, peer)?;
        Ok(Response::new(stream))
    }

    async fn get_batch(
        &self,
        request: Request<GetBatchRequest>,
    ) -> Result<Response<GetBatchResponse>, Status> {
        let epoch = Epoch(request.into_inner().epoch);
        let batches = self
            .reader
            .batches_within(epoch, 1, 0)
            .map_err(|e| Status::internal(e.to_string()))?;
        match batches.first() {
            Some(b) if b.batch.epoch == epoch => Ok(Response::new(GetBatchResponse {
                batch: Some(convert::batch(&b.batch, &b.batch.digest())),
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
