//! Keystore metrics.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};

/// The keystore's metrics.
#[derive(Clone)]
pub struct Metrics {
    /// `beat_keystore_operations_total{operation}`: secret-key operations performed.
    pub operations: IntCounterVec,
    /// `beat_keystore_refusals_total{operation}`: operations refused (by operation, or by
    /// policy: `horizon`, `equivocation`, `certificate`, `handshake_rate`, `caller`).
    pub refusals: IntCounterVec,
    /// `beat_keystore_signing_frontier`: one past the highest certified epoch presented.
    pub signing_frontier: IntGauge,
    /// `beat_keystore_certificate_checks_total`: presented certificates checked (a pairing
    /// each); the others were left unchecked because the frontier did not need them yet.
    pub certificate_checks: prometheus::IntCounter,
    /// `beat_keystore_request_seconds{rpc}`: request latency.
    pub latency: HistogramVec,
}

impl Metrics {
    /// Creates and registers the metrics.
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let operations = IntCounterVec::new(
            Opts::new(
                "beat_keystore_operations_total",
                "Secret-key operations performed",
            ),
            &["operation"],
        )?;
        let refusals = IntCounterVec::new(
            Opts::new(
                "beat_keystore_refusals_total",
                "Secret-key operations refused",
            ),
            &["operation"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new("beat_keystore_request_seconds", "Keystore request latency")
                .buckets(prometheus::exponential_buckets(0.0001, 2.0, 16)?),
            &["rpc"],
        )?;
        registry.register(Box::new(operations.clone()))?;
        registry.register(Box::new(refusals.clone()))?;
        let signing_frontier = IntGauge::new(
            "beat_keystore_signing_frontier",
            "One past the highest certified epoch presented: shares are signed up to it plus the window",
        )?;
        let certificate_checks = prometheus::IntCounter::new(
            "beat_keystore_certificate_checks_total",
            "Presented commit certificates checked (one pairing each) to move the signing frontier",
        )?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(signing_frontier.clone()))?;
        registry.register(Box::new(certificate_checks.clone()))?;
        Ok(Self {
            operations,
            refusals,
            signing_frontier,
            certificate_checks,
            latency,
        })
    }
}
