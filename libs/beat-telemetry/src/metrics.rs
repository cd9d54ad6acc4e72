//! Prometheus metrics.
//!
//! Metric names follow `beat_<service>_<thing>_<unit>` (Prometheus naming rules: base units,
//! `_total` for counters).

use prometheus::{Registry, process_collector::ProcessCollector};

/// A registry with the process collector (`process_cpu_seconds_total`, memory, fds).
pub fn registry() -> Registry {
    let registry = Registry::new();
    // Registration of a fresh collector on a fresh registry cannot clash.
    let _ = registry.register(Box::new(ProcessCollector::for_self()));
    registry
}

/// Encodes every metric in the text exposition format.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    let encoder = prometheus::TextEncoder::new();
    if encoder.encode_utf8(&registry.gather(), &mut out).is_err() {
        out.clear();
    }
    out
}
