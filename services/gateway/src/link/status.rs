//! What `Peers` reports about each link: state, backoff, last error, counters.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use beat_proto::gateway::v1::{LinkState, TransportStatus};
use beat_types::NodeId;
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::metrics::{LinkCounters, Metrics};

#[derive(Debug)]
struct Dial {
    state: LinkState,
    retry_at: Option<Instant>,
    last_error: String,
}

/// The state of one transport's links to one peer.
pub struct LinkStatus {
    transport: &'static str,
    dial: Mutex<Dial>,
    connects: AtomicU64,
    inbound: AtomicUsize,
    counters: LinkCounters,
    up_gauge: prometheus::IntGauge,
}

impl LinkStatus {
    /// The transport's name.
    pub fn transport(&self) -> &'static str {
        self.transport
    }

    /// The frame and byte counters of this link.
    pub fn counters(&self) -> &LinkCounters {
        &self.counters
    }

    /// Dialling or handshaking.
    pub fn connecting(&self) {
        let mut d = self.dial.lock();
        d.state = LinkState::Connecting;
        d.retry_at = None;
    }

    /// The transport cannot be used now.
    pub fn unavailable(&self, error: String) {
        let mut d = self.dial.lock();
        d.state = LinkState::Unavailable;
        d.last_error = error;
    }

    /// Authenticated.
    pub fn up(&self) {
        self.connects.fetch_add(1, Ordering::Relaxed);
        self.dial.lock().state = LinkState::Up;
        self.up_gauge.set(1);
    }

    /// The dialled connection ended or failed; `error` says why, if it was an error.
    pub fn down(&self, error: Option<String>) {
        let mut d = self.dial.lock();
        if let Some(e) = error {
            d.last_error = e;
        }
        if d.state == LinkState::Up {
            self.up_gauge.set(0);
        }
        d.state = LinkState::Backoff;
    }

    /// Waiting until `retry_at` to dial again.
    pub fn backoff(&self, retry_at: Instant) {
        let mut d = self.dial.lock();
        if d.state != LinkState::Unavailable {
            d.state = LinkState::Backoff;
        }
        d.retry_at = Some(retry_at);
    }

    /// One of the peer's connections to us is up.
    pub fn inbound_opened(&self) {
        self.inbound.fetch_add(1, Ordering::Relaxed);
    }

    /// One of the peer's connections to us ended.
    pub fn inbound_closed(&self) {
        self.inbound.fetch_sub(1, Ordering::Relaxed);
    }

    /// The `Peers` entry.
    pub fn snapshot(&self, now: Instant) -> TransportStatus {
        let d = self.dial.lock();
        let backoff = match (d.state, d.retry_at) {
            (LinkState::Backoff | LinkState::Unavailable, Some(at)) => {
                at.saturating_duration_since(now)
            }
            _ => Duration::ZERO,
        };
        TransportStatus {
            transport: self.transport.to_owned(),
            state: d.state as i32,
            backoff_ms: u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX),
            last_error: d.last_error.clone(),
            frames_sent: self.counters.frames_sent.get(),
            bytes_sent: self.counters.bytes_sent.get(),
            frames_received: self.counters.frames_received.get(),
            bytes_received: self.counters.bytes_received.get(),
            connects: self.connects.load(Ordering::Relaxed),
            inbound_up: self.inbound.load(Ordering::Relaxed) > 0,
        }
    }
}

/// Every link's status, by peer and transport.
#[derive(Clone)]
pub struct LinkTable {
    links: Arc<HashMap<(NodeId, &'static str), Arc<LinkStatus>>>,
    transports: Arc<Vec<&'static str>>,
}

impl LinkTable {
    /// A table for every peer of replica `me` in a committee of `n`, over `transports`.
    pub fn new(me: NodeId, n: usize, transports: &[&'static str], metrics: &Metrics) -> Self {
        let mut links = HashMap::new();
        for peer in (0..n).map(NodeId::from_index).filter(|p| *p != me) {
            for &transport in transports {
                let label = peer.0.to_string();
                let up_gauge = metrics
                    .link_up
                    .with_label_values(&[label.as_str(), transport]);
                up_gauge.set(0);
                links.insert(
                    (peer, transport),
                    Arc::new(LinkStatus {
                        transport,
                        dial: Mutex::new(Dial {
                            state: LinkState::Connecting,
                            retry_at: None,
                            last_error: String::new(),
                        }),
                        connects: AtomicU64::new(0),
                        inbound: AtomicUsize::new(0),
                        counters: metrics.link(&label, transport),
                        up_gauge,
                    }),
                );
            }
        }
        Self {
            links: Arc::new(links),
            transports: Arc::new(transports.to_vec()),
        }
    }

    /// The status of the link to `peer` over `transport`.
    pub fn get(&self, peer: NodeId, transport: &'static str) -> Option<Arc<LinkStatus>> {
        self.links.get(&(peer, transport)).cloned()
    }

    /// Every transport's status for `peer`, in configuration order.
    pub fn peer(&self, peer: NodeId, now: Instant) -> Vec<TransportStatus> {
        self.transports
            .iter()
            .filter_map(|t| self.links.get(&(peer, *t)))
            .map(|s| s.snapshot(now))
            .collect()
    }
}
