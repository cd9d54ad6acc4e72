//! Admission of inbound connections to the handshake.
//!
//! Until a peer has proven a committee identity it costs the gateway a task, a socket and a
//! few kilobytes; an attacker who opens many connections and sends nothing must not keep
//! honest peers out. Three bounds, per transport:
//!
//! - **per source** (a TCP peer's IP address, an I2P destination): at most
//!   `max_pending_handshakes_per_source` handshakes at once; one more is closed at once;
//! - **in all**: at most `max_pending_handshakes`; one more *evicts the oldest pending*
//!   handshake, so a flood cannot hold the slots for a whole timeout while honest peers,
//!   whose handshakes finish in a round trip or two, still get through;
//! - **in time**: the peer's Hello must arrive within `hello_timeout` and the handshake
//!   finish within `handshake_timeout` (enforced by the caller).
//!
//! Tor connections carry no source (they all arrive through the onion service), so only the
//! overall bound applies to them; the onion service's own limits ([`crate::transport`])
//! bound the rendezvous work before that.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

/// Why a connection was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Its source has the most pending handshakes allowed already.
    #[error("too many pending handshakes from this source")]
    SourceLimit,
}

/// The pending handshakes of one transport.
#[derive(Debug)]
pub struct Admission {
    max_total: usize,
    max_per_source: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next: u64,
    /// By admission order, so the first entry is the oldest.
    pending: BTreeMap<u64, Pending>,
    per_source: HashMap<String, usize>,
}

#[derive(Debug)]
struct Pending {
    source: Option<String>,
    evict: CancellationToken,
}

/// A pending handshake's slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Ticket {
    admission: Arc<Admission>,
    id: u64,
    evicted: CancellationToken,
}

impl Admission {
    /// Bounds of `max_total` pending handshakes, `max_per_source` from one source.
    pub fn new(max_total: usize, max_per_source: usize) -> Self {
        Self {
            max_total: max_total.max(1),
            max_per_source: max_per_source.max(1),
            inner: Mutex::default(),
        }
    }

    /// Admits a connection from `source`, evicting the oldest pending handshake if every slot
    /// is taken. Returns the slot and whether a handshake was evicted.
    pub fn admit(self: &Arc<Self>, source: Option<&str>) -> Result<(Ticket, bool), Refused> {
        let mut inner = self.inner.lock();
        if let Some(source) = source
            && inner.per_source.get(source).copied().unwrap_or(0) >= self.max_per_source
        {
            return Err(Refused::SourceLimit);
        }
        let mut evicted = false;
        if inner.pending.len() >= self.max_total
            && let Some((_, oldest)) = inner.pending.pop_first()
        {
            inner.release_source(oldest.source.as_deref());
            oldest.evict.cancel();
            evicted = true;
        }
        let id = inner.next;
        inner.next += 1;
        let evict = CancellationToken::new();
        if let Some(source) = source {
            *inner.per_source.entry(source.to_owned()).or_default() += 1;
        }
        inner.pending.insert(
            id,
            Pending {
                source: source.map(str::to_owned),
                evict: evict.clone(),
            },
        );
        Ok((
            Ticket {
                admission: self.clone(),
                id,
                evicted: evict,
            },
            evicted,
        ))
    }

    /// Pending handshakes now.
    pub fn pending(&self) -> usize {
        self.inner.lock().pending.len()
    }
}

impl Inner {
    fn release_source(&mut self, source: Option<&str>) {
        let Some(source) = source else { return };
        if let Some(count) = self.per_source.get_mut(source) {
            *count -= 1;
            if *count == 0 {
                self.per_source.remove(source);
            }
        }
    }
}

impl Ticket {
    /// Completes when a newer connection evicted this one.
    pub async fn evicted(&self) {
        self.evicted.cancelled().await;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut inner = self.admission.inner.lock();
        if let Some(pending) = inner.pending.remove(&self.id) {
            inner.release_source(pending.source.as_deref());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_gets_at_most_its_share() {
        let a = Arc::new(Admission::new(10, 2));
        let t1 = a.admit(Some("10.0.0.1")).unwrap();
        let _t2 = a.admit(Some("10.0.0.1")).unwrap();
        assert_eq!(a.admit(Some("10.0.0.1")).unwrap_err(), Refused::SourceLimit);
        // Other sources, and sourceless connections, are not affected.
        let _t3 = a.admit(Some("10.0.0.2")).unwrap();
        let _t4 = a.admit(None).unwrap();
        drop(t1);
        assert!(a.admit(Some("10.0.0.1")).is_ok());
    }

    #[test]
    fn a_full_table_evicts_the_oldest() {
        let a = Arc::new(Admission::new(3, 2));
        let (first, _) = a.admit(Some("10.0.0.1")).unwrap();
        let (_second, _) = a.admit(Some("10.0.0.1")).unwrap();
        let (_third, _) = a.admit(None).unwrap();
        assert!(!first.evicted.is_cancelled());
        let (_fourth, evicted) = a.admit(Some("10.0.0.2")).unwrap();
        assert!(evicted);
        assert!(first.evicted.is_cancelled());
        assert_eq!(a.pending(), 3);
        // The evicted slot's source share was released at eviction; dropping the evicted
        // ticket later releases nothing twice.
        drop(first);
        assert_eq!(a.pending(), 3);
        let (_fifth, _) = a.admit(Some("10.0.0.1")).unwrap();
        let (_sixth, _) = a.admit(Some("10.0.0.1")).unwrap();
        assert_eq!(a.admit(Some("10.0.0.1")).unwrap_err(), Refused::SourceLimit);
    }

    #[test]
    fn finished_handshakes_free_their_slots() {
        let a = Arc::new(Admission::new(2, 2));
        for _ in 0..100 {
            let (t, evicted) = a.admit(Some("10.0.0.1")).unwrap();
            assert!(!evicted);
            drop(t);
        }
        assert_eq!(a.pending(), 0);
    }
}
