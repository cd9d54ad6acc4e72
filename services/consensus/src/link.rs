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
use bytes::Bytes;
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
                                messages: pack(messages),
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

/// Packs payloads for the gateway. A broadcast reaches the actor as one payload per peer, all
/// sharing one encoding (`component::encode`); a run of them becomes one [`Outbound`] naming
/// every target, so the payload crosses the local gRPC hop once instead of `n − 1` times (the
/// gateway queues it for each target, sharing the bytes).
///
/// Each peer's order is kept: only consecutive entries merge, and a target already in the run
/// starts a new entry (the gateway sends a payload once per distinct target, so merging a
/// repeated send would drop it).
fn pack(messages: Vec<(NodeId, Bytes)>) -> Vec<Outbound> {
    let mut out: Vec<Outbound> = Vec::with_capacity(messages.len());
    for (to, payload) in messages {
        if let Some(last) = out.last_mut()
            && shares_encoding(&last.payload, &payload)
            && !last.targets.contains(&to.0)
        {
            last.targets.push(to.0);
            continue;
        }
        out.push(Outbound {
            targets: vec![to.0],
            payload,
        });
    }
    out
}

/// Whether two payloads are views of the same bytes (one encoding shared by a broadcast).
/// Comparing the allocation, not the contents, keeps packing O(1) per entry; equal payloads
/// encoded separately stay separate entries, which is only less compact.
fn shares_encoding(a: &Bytes, b: &Bytes) -> bool {
    a.len() == b.len() && a.as_ptr() == b.as_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flatten(packed: &[Outbound]) -> Vec<(u32, Bytes)> {
        packed
            .iter()
            .flat_map(|o| o.targets.iter().map(|t| (*t, o.payload.clone())))
            .collect()
    }

    #[test]
    fn a_broadcast_crosses_the_link_once() {
        let echo = Bytes::from_static(b"echo");
        let val = Bytes::from(vec![7u8; 3]);
        let messages = vec![
            (NodeId(1), echo.clone()),
            (NodeId(2), echo.clone()),
            (NodeId(3), echo),
            (NodeId(2), val),
        ];
        let packed = pack(messages.clone());
        assert_eq!(packed.len(), 2);
        assert_eq!(packed[0].targets, vec![1, 2, 3]);
        assert_eq!(packed[1].targets, vec![2]);
        let expected: Vec<(u32, Bytes)> = messages.into_iter().map(|(t, p)| (t.0, p)).collect();
        assert_eq!(flatten(&packed), expected);
    }

    #[test]
    fn equal_contents_in_separate_encodings_stay_apart() {
        let a = Bytes::from(vec![1u8; 8]);
        let b = Bytes::from(vec![1u8; 8]);
        let packed = pack(vec![(NodeId(1), a), (NodeId(2), b)]);
        assert_eq!(packed.len(), 2);
    }

    #[test]
    fn a_repeated_target_or_an_interleaved_payload_starts_a_new_entry() {
        let a = Bytes::from(vec![1u8; 8]);
        let b = Bytes::from(vec![2u8; 8]);
        let messages = vec![
            (NodeId(1), a.clone()),
            (NodeId(1), a.clone()),
            (NodeId(2), b),
            (NodeId(3), a),
        ];
        let packed = pack(messages.clone());
        let targets: Vec<Vec<u32>> = packed.iter().map(|o| o.targets.clone()).collect();
        assert_eq!(targets, vec![vec![1], vec![1], vec![2], vec![3]]);
        let expected: Vec<(u32, Bytes)> = messages.into_iter().map(|(t, p)| (t.0, p)).collect();
        assert_eq!(flatten(&packed), expected);
    }

    proptest::proptest! {
        /// Whatever the sequence, every peer receives exactly its payloads, in order.
        #[test]
        fn every_peer_sees_its_payloads_in_order(
            picks in proptest::collection::vec((1u32..4, 0usize..3), 0..40),
        ) {
            let pool: Vec<Bytes> = (0..3u8).map(|i| Bytes::from(vec![i; 4])).collect();
            let messages: Vec<(NodeId, Bytes)> =
                picks.iter().map(|&(t, p)| (NodeId(t), pool[p].clone())).collect();
            let packed = pack(messages.clone());
            for peer in 1u32..4 {
                let sent: Vec<*const u8> = messages
                    .iter()
                    .filter(|(t, _)| t.0 == peer)
                    .map(|(_, p)| p.as_ptr())
                    .collect();
                let got: Vec<*const u8> = packed
                    .iter()
                    .filter(|o| o.targets.contains(&peer))
                    .flat_map(|o| o.targets.iter().filter(|t| **t == peer).map(|_| o.payload.as_ptr()))
                    .collect();
                proptest::prop_assert_eq!(sent, got);
            }
        }
    }
}
