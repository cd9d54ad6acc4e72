//! The outbound queue to one peer: sequencing, cumulative acknowledgements and the bound.

use std::collections::VecDeque;

use beat_proto::wire::v2::Data;
use bytes::Bytes;

/// Data frames to one peer that the peer has not acknowledged yet.
///
/// Sequences are assigned from 1 and the queue always holds a contiguous range
/// `floor..next_sequence`: acknowledgements and drops both remove from the front. A connection
/// reads the queue through a cursor (the next sequence it will send), so every transport to the
/// peer sends every frame, and a new connection starts at [`Self::floor`], which retransmits
/// everything unacknowledged.
#[derive(Debug)]
pub struct OutboundQueue {
    incarnation: u64,
    next_sequence: u64,
    frames: VecDeque<Bytes>,
    bytes: usize,
    max_frames: usize,
    max_bytes: usize,
}

/// What [`OutboundQueue::push`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pushed {
    /// The new frame's sequence.
    pub sequence: u64,
    /// How many of the oldest frames were dropped to make room.
    pub dropped: usize,
}

/// An acknowledgement of frames that were never sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("acknowledgement of sequence {acknowledged}, but only {highest} were sent")]
pub struct AckAhead {
    /// The acknowledged sequence.
    pub acknowledged: u64,
    /// The highest sequence assigned so far.
    pub highest: u64,
}

impl OutboundQueue {
    /// Creates an empty queue for frames of `incarnation`, bounded by `max_frames` and
    /// `max_bytes` of payload (a single frame larger than `max_bytes` is still kept alone).
    pub fn new(incarnation: u64, max_frames: usize, max_bytes: usize) -> Self {
        Self {
            incarnation,
            next_sequence: 1,
            frames: VecDeque::new(),
            bytes: 0,
            max_frames: max_frames.max(1),
            max_bytes,
        }
    }

    /// Appends a frame, dropping the oldest frames while a bound is exceeded.
    pub fn push(&mut self, payload: Bytes) -> Pushed {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.bytes += payload.len();
        self.frames.push_back(payload);
        let mut dropped = 0;
        while self.frames.len() > 1
            && (self.frames.len() > self.max_frames || self.bytes > self.max_bytes)
        {
            self.pop_front();
            dropped += 1;
        }
        Pushed { sequence, dropped }
    }

    /// Removes every frame up to and including `sequence`. Returns how many were removed;
    /// acknowledging an already acknowledged (or dropped) sequence removes nothing.
    pub fn acknowledge(&mut self, sequence: u64) -> Result<usize, AckAhead> {
        if sequence >= self.next_sequence {
            return Err(AckAhead {
                acknowledged: sequence,
                highest: self.next_sequence - 1,
            });
        }
        let mut removed = 0;
        while self.floor() <= sequence {
            self.pop_front();
            removed += 1;
        }
        Ok(removed)
    }

    /// The lowest sequence still held (the next one to be assigned when the queue is empty):
    /// where a new connection starts sending.
    pub fn floor(&self) -> u64 {
        self.next_sequence - self.frames.len() as u64
    }

    /// Frames from `cursor` on, at most `max_frames` of them and, beyond the first, at most
    /// `max_bytes` of payload. A cursor below the floor (frames acknowledged or dropped since)
    /// moves up to it. Returns the frames and the cursor after them.
    pub fn frames_from(
        &self,
        cursor: u64,
        max_frames: usize,
        max_bytes: usize,
    ) -> (Vec<Data>, u64) {
        let floor = self.floor();
        let mut cursor = cursor.max(floor);
        let mut out = Vec::new();
        let mut bytes = 0;
        let start = (cursor - floor) as usize;
        for payload in self.frames.iter().skip(start).take(max_frames) {
            if !out.is_empty() && bytes + payload.len() > max_bytes {
                break;
            }
            bytes += payload.len();
            out.push(Data {
                incarnation: self.incarnation,
                sequence: cursor,
                payload: payload.clone(),
                floor,
            });
            cursor += 1;
        }
        (out, cursor)
    }

    /// Frames held.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether no frame is held.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Payload bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn pop_front(&mut self) {
        if let Some(front) = self.frames.pop_front() {
            self.bytes -= front.len();
        }
    }
}
