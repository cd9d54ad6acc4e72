//! Dispersal messages.

use beat_crypto::{
    Digest,
    avid_fp::{Fpcc, Fragment},
};
use serde::{Deserialize, Serialize};

/// An AVID-FP dispersal message (paper names).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// The recipient's fragments and the cross-checksum, from the proposer (D1).
    Val {
        /// The fingerprinted cross-checksum.
        fpcc: Fpcc,
        /// The fragments the recipient holds.
        fragments: Vec<Fragment>,
    },
    /// The cross-checksum, echoed by a replica that verified its fragments (D2).
    Echo(Fpcc),
    /// Readiness to complete the dispersal with this cross-checksum digest (D4).
    Ready(Digest),
}
