//! The link to the replica's gateway: one bidirectional `Link` stream, reconnected with
//! jittered exponential backoff. Outbound payloads and acknowledgements flow from the actor;
//! inbound payloads flow to it (the actor's mailbox is the back-pressure).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use actix::Addr;
use beat_proto::gateway::v1::{
    InboundAck, LinkRequest, Outbound, OutboundBatch, gateway_service_client::GatewayServiceClient,
    link_request, link_response,
};
use beat_telemetry::shutdown::Shutdown;
use beat_types::NodeId;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::{
    actor::{ConsensusActor, Inbound, LinkCommand, LinkUp},
    metrics::Metrics,
};
use beat_types::backoff::Backoff;

/// Everything the link task needs.
pub struct LinkTask {
    /// The gateway's gRPC endpoint.
    pub endpoint: String,
    /// The consensus actor.
    pub actor: Addr<ConsensusActor>,
    /// Set while the link is up.
    pub connected: Arc<AtomicBool>,
    /// Metrics.
    pub metrics: Metrics,
    /// Largest gRPC message.
    pub max_message: usize,
    /// Longest reconnect backoff.
    pub max_backoff: Duration,
    /// Shutdown.
    pub shutdown: Shutdown,
}

/// Runs the gateway link until shutdown.
pub async fn run(task: LinkTask, mut commands: mpsc::UnboundedReceiver<LinkCommand>) {
    let LinkTask {
        endpoint,
        actor,
        connected,
        metrics,
        max_message,
        max_backoff,
        shutdown,
    } = task;
    let mut backoff = Backoff::new(Duration::from_millis(50), max_backoff);
    while !shutdown.is_triggered() {
        let channel = beat_telemetry::local::connect(&endpoint, Duration::from_secs(5)).await;
        let client = match channel.map(GatewayServiceClient::new) {
            Ok(c) => c
                .max_decoding_message_size(max_message)
                .max_encoding_message_size(max_message),
            Err(e) => {
                tracing::debug!(error = %e, %endpoint, "gateway not reachable");
                tokio::select! {
                    () = tokio::time::sleep(backoff.next_delay()) => continue,
                    () = shutdown.wait() => return,
                }
            }
        };
        let mut client = client;
        let (tx, rx) = mpsc::channel::<LinkRequest>(8);
        let mut inbound = match client.link(ReceiverStream::new(rx)).await {
            Ok(r) => r.into_inner(),
            Err(e) => {
                tracing::warn!(error = %e, "gateway refused the link");
                tokio::select! {
                    () = tokio::time::sleep(backoff.next_delay()) => continue,
                    () = shutdown.wait() => return,
                }
            }
        };
        backoff.reset();
        connected.store(true, Ordering::Release);
        metrics.gateway_connected.set(1);
        tracing::info!(%endpoint, "gateway link up");
        actor.do_send(LinkUp);
        loop {
            tokio::select! {
                command = commands.recv() => {
                    let Some(command) = command else { return };
                    let request = match command {
                        LinkCommand::Outbound(messages) => LinkRequest {
                            kind: Some(link_request::Kind::Outbound(OutboundBatch {
                                messages: messages
                                    .into_iter()
                                    .map(|(to, payload)| Outbound { targets: vec![to.0], payload })
                                    .collect(),
                            })),
                        },
                        LinkCommand::Ack(ids) => LinkRequest {
                            kind: Some(link_request::Kind::Ack(InboundAck { delivery_ids: ids })),
                        },
                    };
                    if tx.send(request).await.is_err() {
                        break;
                    }
                }
                message = inbound.message() => match message {
                    Ok(Some(response)) => {
                        if let Some(link_response::Kind::Inbound(batch)) = response.kind {
                            let messages = batch
                                .messages
                                .into_iter()
                                .map(|m| (NodeId(m.sender), m.payload, m.delivery_id))
                                .collect();
                            if actor.send(Inbound(messages)).await.is_err() {
                                return;
                            }
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "gateway link failed");
                        break;
                    }
                },
                () = shutdown.wait() => return,
            }
        }
        connected.store(false, Ordering::Release);
        metrics.gateway_connected.set(0);
        tracing::warn!(%endpoint, "gateway link down; reconnecting");
    }
}
