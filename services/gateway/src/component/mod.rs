//! The gateway's synchronous component: sequencing, acknowledgements, retransmission,
//! de-duplication and delivery bookkeeping, with no sockets, tasks or clocks.
//!
//! [`OutboundQueue`] holds one peer's unacknowledged Data frames; [`InboundWindow`] turns one
//! sender incarnation's interleaved, duplicated frames into an in-order delivery and an
//! end-to-end acknowledgement level; [`Router`] owns one of each per peer plus the deliveries
//! to consensus that are waiting for its acknowledgement. The actors in [`crate::actors`]
//! forward to a `Router` and the connection tasks in [`crate::link`] move its frames.

mod inbound;
mod outbound;
mod router;
#[cfg(test)]
mod tests;

pub use inbound::{InboundWindow, Received};
pub use outbound::{AckAhead, OutboundQueue, Pushed};
pub use router::{
    Acknowledged, BatchReceived, DataRefused, ReceiveOutcome, Router, StaleIncarnation, StreamId,
    SubmitError, Submitted, data_frame_len,
};

use crate::config::Config;

/// The bounds the component enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest encoded peer frame.
    pub max_frame_bytes: usize,
    /// Most frames in one peer's outbound queue.
    pub queue_max_frames: usize,
    /// Most payload bytes in one peer's outbound queue.
    pub queue_max_bytes: usize,
    /// Most frames held per sender (pending deliveries plus reorder buffer).
    pub inbound_max_frames: usize,
    /// Most payload bytes held per sender.
    pub inbound_max_bytes: usize,
    /// How far ahead of the next expected sequence a frame is kept.
    pub reorder_window: u64,
}

impl Limits {
    /// The limits of a configuration.
    pub fn from_config(config: &Config) -> Self {
        Self {
            max_frame_bytes: config.link.max_frame_bytes,
            queue_max_frames: config.queue.max_frames,
            queue_max_bytes: config.queue.max_bytes,
            inbound_max_frames: config.inbound.max_frames,
            inbound_max_bytes: config.inbound.max_bytes,
            reorder_window: config.inbound.reorder_window,
        }
    }
}
