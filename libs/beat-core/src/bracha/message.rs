//! Bracha broadcast messages.

use beat_crypto::Digest;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A Bracha broadcast message (paper names).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// The proposer's value (B1).
    Val(Bytes),
    /// An echo of the value (B2).
    Echo(Bytes),
    /// Readiness to deliver the value with this digest (B3).
    Ready(Digest),
}
