//! One authenticated connection: a read loop and a write loop on the same task.
//!
//! A dialled (outbound) connection writes this replica's Data frames, read by cursor from the
//! hub, and reads the peer's Acks; an accepted (inbound) connection reads the peer's Data and
//! writes our Acks. Both sides answer Ping with Pong and send Ping when idle; anything arriving
//! resets the idle timer, so a connection on which nothing arrives for `idle_timeout` is dead.

use std::sync::Arc;

use actix::MailboxError;
use beat_proto::wire::v2::{Ack, Data, PeerFrame, Ping, Pong, peer_frame::Kind};
use futures::FutureExt;
use tokio::{
    sync::{Notify, mpsc},
    time::{Instant, MissedTickBehavior},
};

use super::{
    context::Context,
    handshake::{PeerHello, Session},
    record::{RecordError, RecordReader, RecordWriter},
    status::LinkStatus,
};
use crate::{
    actors::{Direction, LinkDown, LinkUp, PeerAck, PullAck, PullOutbound, Receive},
    component::DataRefused,
    metrics::LinkCounters,
};

/// Most payload bytes pulled for one write batch (beyond the first frame).
const WRITE_BATCH_BYTES: usize = 1 << 20;

/// Why an authenticated connection ended.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Reading or writing a record failed (closed, oversized, forged or malformed, I/O). A
    /// record that does not open closes the link; it is not the claimed peer's fault (anyone
    /// on the path can corrupt bytes), so it is counted, never reported to consensus.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The peer broke the link protocol.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// Nothing arrived within the idle timeout.
    #[error("no traffic for {0:?}")]
    IdleTimeout(std::time::Duration),
    /// The connection was refused at registration: the peer's incarnation had already been
    /// replaced by a newer one.
    #[error("peer incarnation {0} was replaced by a newer one")]
    Stale(u64),
    /// The peer's incarnation was replaced by a newer one while this connection was up.
    #[error("peer incarnation {0} was superseded by a newer one")]
    Superseded(u64),
    /// The hub is gone (shutting down).
    #[error("hub unavailable: {0}")]
    Hub(#[from] MailboxError),
}

impl LinkError {
    /// The metric label (`beat_gateway_link_errors_total{reason}`).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Record(e) => e.reason(),
            Self::Protocol(_) => "protocol",
            Self::IdleTimeout(_) => "idle_timeout",
            Self::Stale(_) => "stale_incarnation",
            Self::Superseded(_) => "superseded",
            Self::Hub(_) => "shutdown",
        }
    }
}

/// An authenticated connection, ready to carry frames.
pub struct Established {
    /// The authenticated session: the peer and its sealed record channel.
    pub session: Session,
    /// Which way data flows.
    pub direction: Direction,
    /// The link's status entry.
    pub status: Arc<LinkStatus>,
}

/// Runs the connection until it fails, is replaced, or the gateway shuts down. `Ok` means it
/// was closed on purpose.
pub async fn run(ctx: Arc<Context>, conn: Established) -> Result<(), LinkError> {
    let Established {
        session:
            Session {
                peer,
                mut reader,
                mut writer,
            },
        direction,
        status,
    } = conn;
    let cancel = ctx.shutdown.child_token();
    let registration = ctx
        .hub
        .send(LinkUp {
            peer: peer.replica,
            transport: status.transport(),
            direction,
            incarnation: peer.incarnation,
            cancel: cancel.clone(),
        })
        .await?
        .map_err(|stale| LinkError::Stale(stale.0))?;
    if direction == Direction::Inbound {
        status.inbound_opened();
    }
    tracing::debug!(
        peer = peer.replica.0,
        transport = status.transport(),
        ?direction,
        "link up"
    );
    let (pongs_tx, pongs_rx) = mpsc::channel(16);
    let io = Io {
        ctx: &ctx,
        peer,
        direction,
        counters: status.counters(),
    };
    let result = tokio::select! {
        r = io.read_loop(&mut reader, pongs_tx, &registration.space) => r,
        r = io.write_loop(&mut writer, pongs_rx, &registration.wake) => r,
        () = cancel.cancelled() => Ok(()),
    };
    ctx.hub.do_send(LinkDown(registration.id));
    if direction == Direction::Inbound {
        status.inbound_closed();
    }
    if let Err(e) = &result {
        ctx.metrics
            .link_errors
            .with_label_values(&[status.transport(), e.reason()])
            .inc();
    }
    result
}

struct Io<'a> {
    ctx: &'a Context,
    peer: PeerHello,
    direction: Direction,
    counters: &'a LinkCounters,
}

impl Io<'_> {
    async fn read_loop(
        &self,
        reader: &mut RecordReader,
        pongs: mpsc::Sender<u64>,
        space: &Notify,
    ) -> Result<(), LinkError> {
        let idle = self.ctx.link.idle_timeout;
        let mut batch = Vec::new();
        loop {
            let record = tokio::time::timeout(idle, reader.next())
                .await
                .map_err(|_| LinkError::IdleTimeout(idle))??;
            let mut ack = self.take(record, &mut batch, &pongs)?;
            // Whatever else has arrived already goes to the hub in the same message.
            while batch.len() < self.ctx.link.batch_frames {
                let Some(record) = reader.next().now_or_never() else {
                    break;
                };
                ack = self.take(record?, &mut batch, &pongs)?.or(ack);
            }
            if let Some(ack) = ack {
                self.ctx
                    .hub
                    .send(PeerAck {
                        peer: self.peer.replica,
                        incarnation: ack.incarnation,
                        sequence: ack.sequence,
                    })
                    .await?
                    .map_err(|e| LinkError::Protocol(e.to_string()))?;
            }
            if !batch.is_empty() {
                self.receive(std::mem::take(&mut batch), space).await?;
            }
        }
    }

    /// Decodes one frame: Data joins `batch`, an Ack is returned (Acks are cumulative, so only
    /// the latest matters), a Ping is answered.
    fn take(
        &self,
        (frame, wire_bytes): (PeerFrame, usize),
        batch: &mut Vec<Data>,
        pongs: &mpsc::Sender<u64>,
    ) -> Result<Option<Ack>, LinkError> {
        self.counters.frames_received.inc();
        self.counters.bytes_received.inc_by(wire_bytes as u64);
        match (frame.kind, self.direction) {
            (Some(Kind::Data(data)), Direction::Inbound) => batch.push(data),
            (Some(Kind::Ack(ack)), Direction::Outbound) => return Ok(Some(ack)),
            // A full queue means the writer is behind on Pongs already; the peer's idle timer
            // is reset by whatever else we send.
            (Some(Kind::Ping(ping)), _) => drop(pongs.try_send(ping.nonce)),
            (Some(Kind::Pong(_)), _) => {}
            (kind, direction) => {
                return Err(LinkError::Protocol(format!(
                    "unexpected {} on an {direction:?} connection",
                    kind_name(kind.as_ref())
                )));
            }
        }
        Ok(None)
    }

    /// Hands Data frames to the hub, waiting while the sender's inbound budget is used up
    /// (which stops reading and so pushes back on the sender through the transport).
    async fn receive(&self, mut frames: Vec<Data>, space: &Notify) -> Result<(), LinkError> {
        loop {
            // Register for the wake-up before asking, so a release in between is not missed.
            let released = space.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            let receive = Receive {
                peer: self.peer.replica,
                incarnation: self.peer.incarnation,
                frames: frames.clone(),
            };
            let out = self.ctx.hub.send(receive).await?;
            frames.drain(..out.accepted);
            match out.refused {
                None => return Ok(()),
                Some(DataRefused::Full) => released.await,
                Some(DataRefused::Retired(incarnation)) => {
                    return Err(LinkError::Superseded(incarnation));
                }
                Some(DataRefused::Protocol(e)) => return Err(LinkError::Protocol(e)),
            }
        }
    }

    async fn write_loop(
        &self,
        writer: &mut RecordWriter,
        mut pongs: mpsc::Receiver<u64>,
        wake: &Notify,
    ) -> Result<(), LinkError> {
        let link = &self.ctx.link;
        let mut ping =
            tokio::time::interval_at(Instant::now() + link.ping_interval, link.ping_interval);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut cursor = 0;
        let mut acknowledged = 0;
        loop {
            let frames = match self.direction {
                Direction::Outbound => {
                    let (data, next) = self
                        .ctx
                        .hub
                        .send(PullOutbound {
                            peer: self.peer.replica,
                            cursor,
                            max_frames: link.batch_frames,
                            max_bytes: WRITE_BATCH_BYTES,
                        })
                        .await?;
                    cursor = next;
                    data.into_iter().map(Kind::Data).collect()
                }
                Direction::Inbound => {
                    let level = self
                        .ctx
                        .hub
                        .send(PullAck {
                            peer: self.peer.replica,
                            incarnation: self.peer.incarnation,
                        })
                        .await?;
                    match level {
                        Some(sequence) if sequence > acknowledged => {
                            acknowledged = sequence;
                            vec![Kind::Ack(Ack {
                                incarnation: self.peer.incarnation,
                                sequence,
                            })]
                        }
                        _ => vec![],
                    }
                }
            };
            if frames.is_empty() {
                let frame = tokio::select! {
                    () = wake.notified() => continue,
                    nonce = pongs.recv() => match nonce {
                        Some(nonce) => Kind::Pong(Pong { nonce }),
                        None => continue,
                    },
                    _ = ping.tick() => Kind::Ping(Ping { nonce: self.ctx.random_u64() }),
                };
                self.write(writer, [frame]).await?;
                continue;
            }
            let pending_pongs = std::iter::from_fn(|| pongs.try_recv().ok())
                .map(|nonce| Kind::Pong(Pong { nonce }));
            let batch: Vec<Kind> = frames.into_iter().chain(pending_pongs).collect();
            self.write(writer, batch).await?;
        }
    }

    /// Writes and flushes `frames`. There is no write timeout: a peer that is alive but not
    /// reading (its consensus is behind) still sends Pings, and a dead one is found by the read
    /// loop's idle timeout, which ends this write too.
    async fn write(
        &self,
        writer: &mut RecordWriter,
        frames: impl IntoIterator<Item = Kind>,
    ) -> Result<(), LinkError> {
        for kind in frames {
            let wire_bytes = writer.feed(&PeerFrame { kind: Some(kind) }).await?;
            self.counters.frames_sent.inc();
            self.counters.bytes_sent.inc_by(wire_bytes as u64);
        }
        Ok(writer.flush().await?)
    }
}

fn kind_name(kind: Option<&Kind>) -> &'static str {
    match kind {
        None => "empty frame",
        Some(Kind::Hello(_)) => "Hello",
        Some(Kind::Proof(_)) => "Proof",
        Some(Kind::Data(_)) => "Data",
        Some(Kind::Ack(_)) => "Ack",
        Some(Kind::Ping(_)) => "Ping",
        Some(Kind::Pong(_)) => "Pong",
    }
}
