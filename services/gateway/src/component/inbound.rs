//! The receive window for one sender incarnation: de-duplication, in-order delivery and the
//! end-to-end acknowledgement level.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

/// What the window did with one Data frame.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Received {
    /// Frames now deliverable to consensus, in sequence order.
    pub deliver: Vec<(u64, Bytes)>,
    /// The frame had been received before (or was abandoned by the sender's floor).
    pub duplicate: bool,
    /// The frame arrived too far ahead of the next expected sequence and was not kept.
    pub beyond_window: bool,
    /// Sequences the sender abandoned that this window was still waiting for.
    pub skipped: u64,
}

/// The receive state for Data frames of one sender incarnation.
///
/// Frames arrive on every transport, so the same sequence typically arrives several times and
/// the copies interleave. Everything below `next_expected` has been delivered (or abandoned by
/// the sender) and is a duplicate; a frame ahead of `next_expected` waits in a bounded reorder
/// buffer; the sender's floor (see `wire.proto`) moves `next_expected` past sequences it will
/// never send again.
///
/// The acknowledgement sent back to the sender is cumulative and end-to-end: it covers a
/// sequence only once consensus has acknowledged that delivery and every earlier one.
#[derive(Debug)]
pub struct InboundWindow {
    incarnation: u64,
    next_expected: u64,
    reorder: BTreeMap<u64, Bytes>,
    reorder_window: u64,
    unacknowledged: BTreeSet<u64>,
}

impl InboundWindow {
    /// Creates the window for `incarnation`, expecting sequence 1 first.
    pub fn new(incarnation: u64, reorder_window: u64) -> Self {
        Self {
            incarnation,
            next_expected: 1,
            reorder: BTreeMap::new(),
            reorder_window,
            unacknowledged: BTreeSet::new(),
        }
    }

    /// The sender incarnation this window belongs to.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// Whether a frame with `sequence` and `floor` would be kept (delivered or buffered) rather
    /// than discarded as a duplicate.
    pub fn would_keep(&self, sequence: u64, floor: u64) -> bool {
        sequence >= self.next_expected.max(floor) && !self.reorder.contains_key(&sequence)
    }

    /// Whether a frame with `sequence` and `floor` would be delivered at once.
    pub fn is_next(&self, sequence: u64, floor: u64) -> bool {
        sequence == self.next_expected.max(floor)
    }

    /// Handles frame `sequence` whose sender holds nothing below `floor`.
    ///
    /// Both come from the peer. Sequence `u64::MAX` is never used (a sender would need 2⁶⁴
    /// frames to reach it), so `next_expected` never overflows whatever a peer sends: a frame
    /// claiming it is dropped as beyond the window.
    pub fn receive(&mut self, sequence: u64, floor: u64, payload: Bytes) -> Received {
        let mut out = Received::default();
        if floor > self.next_expected {
            out.skipped = self.skip_to(floor, &mut out);
            // Frames buffered at and after the new floor may now be next: deliver them, or a
            // buffered `floor` would wait for ever (its resend is a duplicate of the buffered
            // copy). Found by `beat-fuzz run --target receive-window`.
            self.drain_reorder(&mut out);
        }
        if sequence == u64::MAX {
            out.beyond_window = true;
            return out;
        }
        if sequence < self.next_expected || self.reorder.contains_key(&sequence) {
            out.duplicate = true;
            return out;
        }
        if sequence > self.next_expected {
            if sequence - self.next_expected > self.reorder_window {
                out.beyond_window = true;
            } else {
                self.reorder.insert(sequence, payload);
            }
            return out;
        }
        self.deliver(sequence, payload, &mut out);
        self.drain_reorder(&mut out);
        out
    }

    /// Delivers the buffered frames that continue the delivered sequence.
    fn drain_reorder(&mut self, out: &mut Received) {
        while let Some(entry) = self.reorder.first_entry() {
            if *entry.key() != self.next_expected {
                break;
            }
            let payload = entry.remove();
            self.deliver(self.next_expected, payload, out);
        }
    }

    /// Delivers buffered frames below `floor` and moves past the rest. Returns how many
    /// sequences were skipped without delivery.
    fn skip_to(&mut self, floor: u64, out: &mut Received) -> u64 {
        let mut skipped = 0;
        while self.next_expected < floor {
            match self.reorder.first_entry() {
                Some(entry) if *entry.key() < floor => {
                    let sequence = *entry.key();
                    skipped += sequence - self.next_expected;
                    let payload = entry.remove();
                    self.deliver(sequence, payload, out);
                }
                _ => {
                    skipped = skipped.saturating_add(floor - self.next_expected);
                    self.next_expected = floor;
                }
            }
        }
        skipped
    }

    fn deliver(&mut self, sequence: u64, payload: Bytes, out: &mut Received) {
        self.unacknowledged.insert(sequence);
        // `receive` refuses `u64::MAX`, and `skip_to` delivers only buffered (accepted) ones.
        self.next_expected = sequence.saturating_add(1);
        out.deliver.push((sequence, payload));
    }

    /// Records that consensus acknowledged the delivery of `sequence`.
    pub fn acknowledge(&mut self, sequence: u64) {
        self.unacknowledged.remove(&sequence);
    }

    /// The cumulative acknowledgement to send: every sequence up to it was acknowledged by
    /// consensus or abandoned by the sender.
    pub fn ack_level(&self) -> u64 {
        match self.unacknowledged.first() {
            Some(first) => first - 1,
            None => self.next_expected - 1,
        }
    }

    /// Drops the frames buffered ahead of the gap (the sender still holds them). Returns the
    /// frames and payload bytes released.
    pub fn clear_reorder(&mut self) -> (usize, usize) {
        let released = self.buffered();
        self.reorder.clear();
        released
    }

    /// Frames and payload bytes waiting in the reorder buffer.
    pub fn buffered(&self) -> (usize, usize) {
        (
            self.reorder.len(),
            self.reorder.values().map(Bytes::len).sum(),
        )
    }
}
