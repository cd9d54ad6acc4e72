//! Gateway metrics. `peer` is a replica index, `transport` a transport name.

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

/// The gateway's metrics.
#[derive(Clone)]
pub struct Metrics {
    /// `beat_gateway_link_up{peer,transport}`: 1 while the connection this replica dials is
    /// authenticated.
    pub link_up: IntGaugeVec,
    /// `beat_gateway_frames_sent_total{peer,transport}`: frames written, both connections.
    pub frames_sent: IntCounterVec,
    /// `beat_gateway_bytes_sent_total{peer,transport}`: bytes written, with framing.
    pub bytes_sent: IntCounterVec,
    /// `beat_gateway_frames_received_total{peer,transport}`: frames read after authentication.
    pub frames_received: IntCounterVec,
    /// `beat_gateway_bytes_received_total{peer,transport}`: bytes read, with framing.
    pub bytes_received: IntCounterVec,
    /// `beat_gateway_reconnects_total{peer,transport}`: dial attempts after a failed attempt
    /// or a lost link.
    pub reconnects: IntCounterVec,
    /// `beat_gateway_queue_frames{peer}`: Data frames waiting for the peer's acknowledgement.
    pub queue_frames: IntGaugeVec,
    /// `beat_gateway_dropped_frames_total{peer}`: unacknowledged frames dropped from a full
    /// queue.
    pub dropped_frames: IntCounterVec,
    /// `beat_gateway_handshake_failures_total{reason}`: refused or failed handshakes.
    pub handshake_failures: IntCounterVec,
    /// `beat_gateway_link_errors_total{transport,reason}`: authenticated connections closed
    /// because of an error (`oversized_frame`, `malformed_frame`, `protocol`, `idle_timeout`,
    /// `io`, `stale_incarnation`, `replaced`).
    pub link_errors: IntCounterVec,
    /// `beat_gateway_skipped_frames_total{peer}`: inbound sequences the sender abandoned.
    pub skipped_frames: IntCounterVec,
    /// `beat_gateway_pending_deliveries`: deliveries waiting for consensus's acknowledgement.
    pub pending_deliveries: IntGauge,
}

/// The per-link counters, resolved once per connection.
#[derive(Clone)]
pub struct LinkCounters {
    /// Frames written.
    pub frames_sent: IntCounter,
    /// Bytes written.
    pub bytes_sent: IntCounter,
    /// Frames read.
    pub frames_received: IntCounter,
    /// Bytes read.
    pub bytes_received: IntCounter,
}

impl Metrics {
    /// Creates and registers the metrics.
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let link = ["peer", "transport"];
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok::<_, prometheus::Error>(c)
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(g.clone()))?;
            Ok::<_, prometheus::Error>(g)
        };
        let pending_deliveries = IntGauge::new(
            "beat_gateway_pending_deliveries",
            "Deliveries to consensus waiting for its acknowledgement",
        )?;
        registry.register(Box::new(pending_deliveries.clone()))?;
        Ok(Self {
            link_up: gauge(
                "beat_gateway_link_up",
                "Whether the dialled link to the peer is authenticated",
                &link,
            )?,
            frames_sent: counter(
                "beat_gateway_frames_sent_total",
                "Frames written to peers",
                &link,
            )?,
            bytes_sent: counter(
                "beat_gateway_bytes_sent_total",
                "Bytes written to peers, with framing",
                &link,
            )?,
            frames_received: counter(
                "beat_gateway_frames_received_total",
                "Frames read from authenticated peers",
                &link,
            )?,
            bytes_received: counter(
                "beat_gateway_bytes_received_total",
                "Bytes read from authenticated peers, with framing",
                &link,
            )?,
            reconnects: counter(
                "beat_gateway_reconnects_total",
                "Dial attempts after a failed attempt or a lost link",
                &link,
            )?,
            queue_frames: gauge(
                "beat_gateway_queue_frames",
                "Data frames waiting for the peer's acknowledgement",
                &["peer"],
            )?,
            dropped_frames: counter(
                "beat_gateway_dropped_frames_total",
                "Unacknowledged frames dropped from a full outbound queue",
                &["peer"],
            )?,
            handshake_failures: counter(
                "beat_gateway_handshake_failures_total",
                "Peer handshakes refused or failed",
                &["reason"],
            )?,
            link_errors: counter(
                "beat_gateway_link_errors_total",
                "Authenticated peer connections closed because of an error",
                &["transport", "reason"],
            )?,
            skipped_frames: counter(
                "beat_gateway_skipped_frames_total",
                "Inbound sequences abandoned by their sender",
                &["peer"],
            )?,
            pending_deliveries,
        })
    }

    /// The counters of the link to `peer` over `transport`.
    pub fn link(&self, peer: &str, transport: &str) -> LinkCounters {
        let labels = [peer, transport];
        LinkCounters {
            frames_sent: self.frames_sent.with_label_values(&labels),
            bytes_sent: self.bytes_sent.with_label_values(&labels),
            frames_received: self.frames_received.with_label_values(&labels),
            bytes_received: self.bytes_received.with_label_values(&labels),
        }
    }
}
