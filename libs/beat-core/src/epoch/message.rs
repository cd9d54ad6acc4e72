//! Epoch messages.

use beat_crypto::{avid_fp::Fragment, tdh2::DecryptionShare};
use beat_types::NodeId;
use serde::{Deserialize, Serialize};

use crate::{CiphertextSlot, acs::SubsetMessage};

/// A message within one epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EpochMessage {
    /// Common subset: broadcast and agreement.
    Subset(SubsetMessage),
    /// All of the sender's decryption shares for the epoch (E4, D2).
    DecryptionShares(Vec<(CiphertextSlot, DecryptionShare)>),
    /// BEAT3/BEAT4 full delivery: the sender's verified fragments of the agreed dispersals, by
    /// proposer (R1).
    Fragments(Vec<(NodeId, Fragment)>),
}

impl EpochMessage {
    /// An estimate of the message's size in bytes, for queue accounting.
    pub fn weight(&self) -> usize {
        use crate::{acs::SubsetMessage, avid, bracha, broadcast::BroadcastMessage, dispersal};
        const BASE: usize = 64;
        match self {
            Self::Subset(SubsetMessage::Broadcast { message, .. }) => {
                BASE + match message {
                    BroadcastMessage::Bracha(
                        bracha::Message::Val(v) | bracha::Message::Echo(v),
                    ) => v.len(),
                    BroadcastMessage::Avid(
                        avid::Message::Val { shard, proof, .. }
                        | avid::Message::Echo { shard, proof, .. },
                    ) => shard.len() + 32 * proof.siblings.len(),
                    BroadcastMessage::Dispersal(dispersal::Message::Val { fpcc, fragments }) => {
                        fpcc_weight(fpcc)
                            + fragments.iter().map(|f| f.bytes.len() + 8).sum::<usize>()
                    }
                    BroadcastMessage::Dispersal(dispersal::Message::Echo(fpcc)) => {
                        fpcc_weight(fpcc)
                    }
                    BroadcastMessage::Bracha(bracha::Message::Ready(_))
                    | BroadcastMessage::Avid(avid::Message::Ready(_))
                    | BroadcastMessage::Dispersal(dispersal::Message::Ready(_)) => 32,
                }
            }
            Self::Subset(SubsetMessage::Agreement { .. }) => BASE + 48,
            Self::DecryptionShares(shares) => BASE + shares.len() * (DecryptionShare::LEN + 8),
            Self::Fragments(fragments) => {
                BASE + fragments
                    .iter()
                    .map(|(_, f)| f.bytes.len() + 8)
                    .sum::<usize>()
            }
        }
    }
}

fn fpcc_weight(fpcc: &beat_crypto::avid_fp::Fpcc) -> usize {
    16 + 32 * fpcc.fragment_hashes.len() + 16 * fpcc.fingerprints.len()
}
