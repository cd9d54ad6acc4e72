//! Local misuse of the protocol API.
//!
//! Nothing a remote replica sends can produce one of these: remote misbehaviour is a
//! [`crate::Fault`] in the returned step.

use beat_types::{Epoch, NodeId};

/// A local misuse of the protocol API or an invalid configuration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The configuration is inconsistent.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The node's own identifier is not a committee member.
    #[error("node {0} is not a member of the committee")]
    NotAMember(NodeId),
    /// A transaction was rejected before entering the buffer.
    #[error("transaction rejected: {0}")]
    InvalidTransaction(#[from] crate::buffer::TransactionError),
    /// The transaction buffer is full; the caller should push back on its client.
    #[error("transaction buffer full ({capacity} transactions)")]
    BufferFull {
        /// Buffer capacity.
        capacity: usize,
    },
    /// A checkpoint could not be restored.
    #[error("cannot restore checkpoint at epoch {epoch}: {reason}")]
    BadCheckpoint {
        /// The checkpoint's epoch.
        epoch: Epoch,
        /// What was wrong.
        reason: String,
    },
}
