//! The `beat.gateway.v1.GatewayService` implementation: the `Link` stream to consensus and
//! `Peers`.

use actix::{Addr, MailboxError};
use beat_proto::gateway::v1::{
    InboundBatch, LinkRequest, LinkResponse, PeerStatus, PeersRequest, PeersResponse,
    gateway_service_server::GatewayService, link_request, link_response,
};
use beat_types::NodeId;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use crate::{
    actors::{Attach, ConsensusAck, Detach, Hub, PullInbound, Submit, Unacknowledged},
    component::{StreamId, SubmitError},
    config::ConsensusStreamConfig,
    link::LinkTable,
};

/// Inbound batches buffered towards consensus before the gateway waits for it.
const RESPONSE_BUFFER: usize = 4;

/// The gRPC shell.
pub struct GatewayGrpc {
    /// The hub.
    pub hub: Addr<Hub>,
    /// Link states.
    pub table: LinkTable,
    /// This replica.
    pub me: NodeId,
    /// Committee size.
    pub n: usize,
    /// Batch sizes towards consensus.
    pub batches: ConsensusStreamConfig,
    /// Ends every `Link` stream at shutdown (a graceful server shutdown waits for them).
    pub shutdown: CancellationToken,
}

impl From<SubmitError> for Status {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::UnknownTarget { .. }
            | SubmitError::SelfTarget(_)
            | SubmitError::TooLarge { .. } => Self::invalid_argument(e.to_string()),
            SubmitError::Replaced => Self::aborted(e.to_string()),
        }
    }
}

fn unavailable(e: MailboxError) -> Status {
    Status::unavailable(format!("gateway is shutting down: {e}"))
}

type Responses = mpsc::Sender<Result<LinkResponse, Status>>;

#[tonic::async_trait]
impl GatewayService for GatewayGrpc {
    type LinkStream = ReceiverStream<Result<LinkResponse, Status>>;

    async fn link(
        &self,
        request: Request<Streaming<LinkRequest>>,
    ) -> Result<Response<Self::LinkStream>, Status> {
        let (stream, wake) = self.hub.send(Attach).await.map_err(unavailable)?;
        tracing::info!(stream, "consensus attached");
        let (tx, rx) = mpsc::channel(RESPONSE_BUFFER);
        tokio::spawn(read_requests(
            self.hub.clone(),
            stream,
            request.into_inner(),
            tx.clone(),
            self.shutdown.clone(),
        ));
        let pump = Pump {
            hub: self.hub.clone(),
            stream,
            batches: self.batches.clone(),
            shutdown: self.shutdown.clone(),
        };
        tokio::spawn(async move { pump.run(tx, &wake).await });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn peers(&self, _: Request<PeersRequest>) -> Result<Response<PeersResponse>, Status> {
        let unacknowledged = self.hub.send(Unacknowledged).await.map_err(unavailable)?;
        let now = tokio::time::Instant::now();
        let peers = (0..self.n)
            .map(NodeId::from_index)
            .filter(|p| *p != self.me)
            .map(|p| PeerStatus {
                replica: p.0,
                transports: self.table.peer(p, now),
                unacknowledged: unacknowledged.get(p.index()).copied().unwrap_or(0),
            })
            .collect();
        Ok(Response::new(PeersResponse {
            replica: self.me.0,
            peers,
        }))
    }
}

/// Forwards consensus's payloads and acknowledgements to the hub until the request stream ends
/// or a batch is refused.
async fn read_requests(
    hub: Addr<Hub>,
    stream: StreamId,
    mut requests: Streaming<LinkRequest>,
    responses: Responses,
    shutdown: CancellationToken,
) {
    loop {
        let next = tokio::select! {
            m = requests.message() => m,
            () = shutdown.cancelled() => break,
        };
        let kind = match next {
            Ok(Some(request)) => request.kind,
            Ok(None) => break,
            Err(status) => {
                tracing::debug!(%status, stream, "Link request stream failed");
                break;
            }
        };
        let result = match kind {
            Some(link_request::Kind::Outbound(batch)) => hub
                .send(Submit {
                    stream,
                    batch: batch.messages,
                })
                .await
                .map_err(unavailable)
                .and_then(|r| r.map_err(Status::from)),
            Some(link_request::Kind::Ack(ack)) => hub
                .send(ConsensusAck(ack.delivery_ids))
                .await
                .map_err(unavailable),
            // A request kind from a newer protocol version.
            None => Ok(()),
        };
        if let Err(status) = result {
            tracing::warn!(%status, stream, "refusing consensus's Link stream");
            let _ = responses.send(Err(status)).await;
            break;
        }
    }
    hub.do_send(Detach(stream));
}

/// Sends pending deliveries to consensus as they appear.
struct Pump {
    hub: Addr<Hub>,
    stream: StreamId,
    batches: ConsensusStreamConfig,
    shutdown: CancellationToken,
}

impl Pump {
    async fn run(self, responses: Responses, wake: &tokio::sync::Notify) {
        loop {
            let pulled = self
                .hub
                .send(PullInbound {
                    stream: self.stream,
                    max_frames: self.batches.max_batch_frames,
                    max_bytes: self.batches.max_batch_bytes,
                })
                .await;
            let batch = match pulled {
                Ok(Ok(batch)) => batch,
                Ok(Err(replaced)) => {
                    tracing::info!(stream = self.stream, "Link stream replaced by a newer one");
                    let _ = responses.send(Err(replaced.into())).await;
                    break;
                }
                Err(_) => break,
            };
            let idle = batch.is_empty();
            let response = LinkResponse {
                kind: Some(link_response::Kind::Inbound(InboundBatch {
                    messages: batch,
                })),
            };
            let go_on = tokio::select! {
                () = wake.notified(), if idle => true,
                sent = responses.send(Ok(response)), if !idle => sent.is_ok(),
                () = responses.closed() => false,
                () = self.shutdown.cancelled() => {
                    let _ = responses.try_send(Err(Status::unavailable("gateway is shutting down")));
                    false
                }
            };
            if !go_on {
                break;
            }
        }
        self.hub.do_send(Detach(self.stream));
    }
}
