//! The tasks that make connections: one dial loop per peer and transport, one accept loop per
//! transport.

use std::sync::Arc;

use beat_types::NodeId;
use beat_types::backoff::Backoff;
use tokio::time::Instant;

use super::{
    admission::Admission,
    codec,
    connection::{self, Established},
    context::Context,
    handshake::{self, HandshakeError, Role, Session},
};
use crate::{
    actors::Direction,
    transport::{BoxConnection, Transport, TransportError},
};

/// Why a dial attempt failed.
#[derive(Debug, thiserror::Error)]
enum DialError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
}

/// Keeps one authenticated connection to `peer` over `transport` (at `endpoint`) up until
/// shutdown, redialling with jittered exponential backoff.
pub async fn dial_loop(
    ctx: Arc<Context>,
    transport: Arc<dyn Transport>,
    peer: NodeId,
    endpoint: String,
) {
    let Some(status) = ctx.table.get(peer, transport.name()) else {
        return;
    };
    let peer_label = peer.0.to_string();
    let reconnects = ctx
        .metrics
        .reconnects
        .with_label_values(&[peer_label.as_str(), transport.name()]);
    let mut backoff = Backoff::new(ctx.backoff.initial, ctx.backoff.max);
    let mut first = true;
    while !ctx.shutdown.is_cancelled() {
        if !std::mem::take(&mut first) {
            reconnects.inc();
        }
        status.connecting();
        let attempt = tokio::select! {
            r = dial(&ctx, transport.as_ref(), peer, &endpoint) => r,
            () = ctx.shutdown.cancelled() => return,
        };
        match attempt {
            Ok(session) => {
                status.up();
                let since = Instant::now();
                let conn = Established {
                    session,
                    direction: Direction::Outbound,
                    status: status.clone(),
                };
                let result = connection::run(ctx.clone(), conn).await;
                if let Err(e) = &result {
                    tracing::info!(error = %e, "link lost");
                }
                status.down(result.err().map(|e| e.to_string()));
                if since.elapsed() >= ctx.backoff.max {
                    backoff.reset();
                }
            }
            Err(DialError::Transport(TransportError::Unavailable(why))) => {
                tracing::debug!(%why, "transport unavailable");
                status.unavailable(why);
            }
            Err(e) => {
                if let DialError::Handshake(h) = &e {
                    record_handshake_failure(&ctx, h, &endpoint);
                } else {
                    tracing::debug!(error = %e, "dial failed");
                }
                status.down(Some(e.to_string()));
            }
        }
        let delay = backoff.next_delay();
        status.backoff(Instant::now() + delay);
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = ctx.shutdown.cancelled() => return,
        }
    }
}

async fn dial(
    ctx: &Context,
    transport: &dyn Transport,
    peer: NodeId,
    endpoint: &str,
) -> Result<Session, DialError> {
    let connection = transport.dial(endpoint).await?;
    Ok(authenticate(ctx, connection, Role::Initiator { expected: peer }).await?)
}

/// Runs the handshake on a fresh connection within the handshake timeout. Until the peer is
/// authenticated, frames are limited to [`codec::HANDSHAKE_MAX_FRAME`], so an unauthenticated
/// connection cannot make the gateway buffer a large frame.
async fn authenticate(
    ctx: &Context,
    connection: BoxConnection,
    role: Role,
) -> Result<Session, HandshakeError> {
    let (reader, writer) = codec::framed(connection, codec::HANDSHAKE_MAX_FRAME);
    let mut session = tokio::time::timeout(
        ctx.link.handshake_timeout,
        handshake::handshake(
            reader,
            writer,
            &ctx.identity,
            role,
            ctx.secrets(),
            ctx.link.hello_timeout,
        ),
    )
    .await
    .map_err(|_| HandshakeError::Timeout)??;
    session.reader.set_max_plaintext(ctx.link.max_frame_bytes);
    session.writer.set_max_plaintext(ctx.link.max_frame_bytes);
    Ok(session)
}

/// Accepts connections on `transport` until shutdown, admits each to the handshake within the
/// pending-handshake bounds ([`super::admission`]), and runs each authenticated one as the
/// peer's inbound link.
pub async fn accept_loop(ctx: Arc<Context>, transport: Arc<dyn Transport>) {
    let admission = Arc::new(Admission::new(
        ctx.link.max_pending_handshakes,
        ctx.link.max_pending_handshakes_per_source,
    ));
    let name = transport.name();
    loop {
        let accepted = tokio::select! {
            a = transport.accept() => a,
            () = ctx.shutdown.cancelled() => return,
        };
        let accepted = match accepted {
            Ok(a) => a,
            Err(e) => {
                // E.g. out of file descriptors: pause instead of spinning.
                tracing::warn!(transport = name, error = %e, "accept failed");
                tokio::select! {
                    () = tokio::time::sleep(ctx.backoff.initial) => continue,
                    () = ctx.shutdown.cancelled() => return,
                }
            }
        };
        let (ticket, evicted) = match admission.admit(accepted.source.as_deref()) {
            Ok(admitted) => admitted,
            Err(refused) => {
                drop(accepted.connection);
                record_handshake_failure(
                    &ctx,
                    &HandshakeError::Admission("source_limit"),
                    &accepted.remote,
                );
                tracing::debug!(remote = %accepted.remote, %refused, "connection refused");
                continue;
            }
        };
        if evicted {
            ctx.metrics
                .handshake_failures
                .with_label_values(&["evicted"])
                .inc();
        }
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let authenticated = tokio::select! {
                a = authenticate(&ctx, accepted.connection, Role::Responder) => a,
                () = ticket.evicted() => return,
                () = ctx.shutdown.cancelled() => return,
            };
            drop(ticket);
            let session = match authenticated {
                Ok(a) => a,
                Err(e) => return record_handshake_failure(&ctx, &e, &accepted.remote),
            };
            let peer = session.peer.replica;
            let Some(status) = ctx.table.get(peer, name) else {
                return;
            };
            let conn = Established {
                session,
                direction: Direction::Inbound,
                status,
            };
            match connection::run(ctx.clone(), conn).await {
                Err(connection::LinkError::Stale(incarnation)) => {
                    record_handshake_failure(
                        &ctx,
                        &HandshakeError::StaleIncarnation(incarnation),
                        &accepted.remote,
                    );
                }
                Err(e) => {
                    tracing::info!(peer = peer.0, transport = name, error = %e, "inbound link lost")
                }
                Ok(()) => {}
            }
        });
    }
}

fn record_handshake_failure(ctx: &Context, error: &HandshakeError, remote: &str) {
    ctx.metrics
        .handshake_failures
        .with_label_values(&[error.reason()])
        .inc();
    match error {
        // Peers restarting or not up yet.
        HandshakeError::Frame(_)
        | HandshakeError::Io(_)
        | HandshakeError::Timeout
        | HandshakeError::HelloTimeout(_)
        | HandshakeError::Admission(_)
        | HandshakeError::Signer(_) => {
            tracing::debug!(%remote, error = %error, "handshake failed");
        }
        _ => tracing::warn!(%remote, error = %error, reason = error.reason(), "handshake refused"),
    }
}
