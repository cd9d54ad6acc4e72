//! Replica-to-replica messages.

use beat_crypto::bls;
use beat_types::Epoch;
use serde::{Deserialize, Serialize};

use crate::{
    aba,
    acs::SubsetMessage,
    certificate::{CommitCertificate, CommittedBatch},
    epoch::EpochMessage,
};

/// A message between replicas. This is the whole node-to-node protocol; its postcard encoding
/// is the payload the gateway carries (see `docs/wire.md`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// A message of one epoch.
    Epoch {
        /// The epoch.
        epoch: Epoch,
        /// The message.
        message: EpochMessage,
    },
    /// The sender entered this epoch. Sender-side queues use it to release messages they held
    /// back; catch-up uses it to notice that a replica fell behind.
    EpochStarted(Epoch),
    /// Asks for committed batches from `from` on.
    CatchUpRequest {
        /// First epoch wanted.
        from: Epoch,
        /// Most epochs wanted.
        count: u32,
    },
    /// Committed batches, in epoch order, each with its certificate if the sender had one.
    CatchUpResponse(Vec<CommittedBatch>),
    /// The sender's share of the commit certificate of `epoch` (module `certify`, C2).
    CommitShare {
        /// The committed epoch.
        epoch: Epoch,
        /// The threshold BLS share on the epoch's chain link, as encoded: decoded only if this
        /// replica combines or verifies it (module `certify`, C3).
        share: bls::EncodedShare,
        /// The sender may lack others' shares for this epoch: a replica that holds the
        /// certificate, or forms it, sends it (C4, C5).
        wants: bool,
    },
    /// A commit certificate (module `certify`, C4 and C5).
    Certificate(CommitCertificate),
}

impl Message {
    /// The epoch an epoch message belongs to; `None` for control messages, which are never held
    /// back.
    pub fn epoch(&self) -> Option<Epoch> {
        match self {
            Self::Epoch { epoch, .. } => Some(*epoch),
            _ => None,
        }
    }

    /// Returns `true` for a binary-agreement BVAL vote: the one kind of message a replica still
    /// needs for an epoch it has left, because it keeps relaying them (R1, module `aba`).
    pub fn is_agreement_vote(&self) -> bool {
        matches!(
            self,
            Self::Epoch {
                message: EpochMessage::Subset(SubsetMessage::Agreement {
                    message: aba::Message::BVal { .. },
                    ..
                }),
                ..
            }
        )
    }
}
