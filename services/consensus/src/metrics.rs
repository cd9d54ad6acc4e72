//! Consensus metrics.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// The consensus service's metrics.
#[derive(Clone)]
pub struct Metrics {
    /// `beat_consensus_epochs_total`.
    pub epochs: IntCounter,
    /// `beat_consensus_certified_epochs_total`: epochs this replica holds a commit certificate
    /// for (trails `epochs_total` by at most `certify_window`).
    pub certified: IntCounter,
    /// `beat_consensus_epoch`: the lowest uncommitted epoch.
    pub epoch: IntGauge,
    /// `beat_consensus_epoch_latency_seconds`: time between consecutive commits.
    pub epoch_latency: Histogram,
    /// `beat_consensus_committed_transactions_total`.
    pub committed: IntCounter,
    /// `beat_consensus_buffered_transactions`.
    pub buffered: IntGauge,
    /// `beat_consensus_pipelining_period_epochs`: the barrier (and checkpoint) period this
    /// replica pipelines under, 0 while it runs one epoch at a time (a changed setting takes
    /// effect at the next checkpoint).
    pub pipelined_every: IntGauge,
    /// `beat_consensus_epochs_started_early_total`: epochs started before the previous one
    /// committed (pipelining, ADR 0010).
    pub started_early: IntCounter,
    /// `beat_consensus_submitted_transactions_total{admission}`.
    pub submitted: IntCounterVec,
    /// `beat_consensus_faults_total{peer, kind}`: misbehaviour attributed to each peer, for
    /// alerting on one replica.
    pub faults: IntCounterVec,
    /// `beat_consensus_messages_dropped_total{reason}`: peer messages dropped before the WAL
    /// (`irrelevant`: outside the epoch window or nothing new; `malformed`: did not decode).
    pub dropped: IntCounterVec,
    /// `beat_consensus_messages_received_total`.
    pub received: IntCounter,
    /// `beat_consensus_messages_sent_total`.
    pub sent: IntCounter,
    /// `beat_consensus_wal_flush_seconds`.
    pub flush: Histogram,
    /// `beat_consensus_gateway_connected`.
    pub gateway_connected: IntGauge,
    /// `beat_consensus_keystore_connected`.
    pub keystore_connected: IntGauge,
}

impl Metrics {
    /// Creates and registers the metrics.
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let m = Self {
            epochs: IntCounter::new("beat_consensus_epochs_total", "Epochs committed")?,
            certified: IntCounter::new(
                "beat_consensus_certified_epochs_total",
                "Epochs certified (commit certificate formed or received)",
            )?,
            epoch: IntGauge::new("beat_consensus_epoch", "Lowest uncommitted epoch")?,
            epoch_latency: Histogram::with_opts(
                HistogramOpts::new(
                    "beat_consensus_epoch_latency_seconds",
                    "Time between consecutive epoch commits",
                )
                .buckets(prometheus::exponential_buckets(0.005, 2.0, 14)?),
            )?,
            committed: IntCounter::new(
                "beat_consensus_committed_transactions_total",
                "Transactions committed",
            )?,
            buffered: IntGauge::new(
                "beat_consensus_buffered_transactions",
                "Transactions pending in the buffer",
            )?,
            pipelined_every: IntGauge::new(
                "beat_consensus_pipelining_period_epochs",
                "Barrier period of pipelined epochs in effect (0: not pipelining)",
            )?,
            started_early: IntCounter::new(
                "beat_consensus_epochs_started_early_total",
                "Epochs started before the previous one committed",
            )?,
            submitted: IntCounterVec::new(
                Opts::new(
                    "beat_consensus_submitted_transactions_total",
                    "Transactions submitted by clients",
                ),
                &["admission"],
            )?,
            faults: IntCounterVec::new(
                Opts::new(
                    "beat_consensus_faults_total",
                    "Misbehaviour attributed to peers",
                ),
                &["peer", "kind"],
            )?,
            dropped: IntCounterVec::new(
                Opts::new(
                    "beat_consensus_messages_dropped_total",
                    "Peer messages dropped before the write-ahead log",
                ),
                &["reason"],
            )?,
            received: IntCounter::new(
                "beat_consensus_messages_received_total",
                "Messages received from peers",
            )?,
            sent: IntCounter::new(
                "beat_consensus_messages_sent_total",
                "Messages sent to peers",
            )?,
            flush: Histogram::with_opts(
                HistogramOpts::new(
                    "beat_consensus_wal_flush_seconds",
                    "Write-ahead log flush latency",
                )
                .buckets(prometheus::exponential_buckets(0.0001, 2.0, 16)?),
            )?,
            gateway_connected: IntGauge::new(
                "beat_consensus_gateway_connected",
                "1 if the gateway link is up",
            )?,
            keystore_connected: IntGauge::new(
                "beat_consensus_keystore_connected",
                "1 if the keystore answers",
            )?,
        };
        registry.register(Box::new(m.epochs.clone()))?;
        registry.register(Box::new(m.certified.clone()))?;
        registry.register(Box::new(m.epoch.clone()))?;
        registry.register(Box::new(m.epoch_latency.clone()))?;
        registry.register(Box::new(m.committed.clone()))?;
        registry.register(Box::new(m.buffered.clone()))?;
        registry.register(Box::new(m.pipelined_every.clone()))?;
        registry.register(Box::new(m.started_early.clone()))?;
        registry.register(Box::new(m.submitted.clone()))?;
        registry.register(Box::new(m.faults.clone()))?;
        registry.register(Box::new(m.dropped.clone()))?;
        registry.register(Box::new(m.received.clone()))?;
        registry.register(Box::new(m.sent.clone()))?;
        registry.register(Box::new(m.flush.clone()))?;
        registry.register(Box::new(m.gateway_connected.clone()))?;
        registry.register(Box::new(m.keystore_connected.clone()))?;
        Ok(m)
    }
}
