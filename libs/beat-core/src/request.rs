//! Secret-key operations the protocol asks the keystore for, and the replies.
//!
//! The protocol core never holds a secret key: it emits a [`Request`] in a step and receives the
//! [`Reply`] through `handle_reply`. Verifying *other* replicas' shares needs only public keys
//! and happens in-process.

use std::sync::Arc;

use beat_crypto::{bls, tdh2};
use beat_types::{Epoch, NodeId};
use serde::{Deserialize, Serialize};

/// Identifies one common coin: binary agreement `instance` of `epoch`, `round`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CoinId {
    /// Epoch.
    pub epoch: Epoch,
    /// The binary agreement instance (named by the proposer whose contribution it decides).
    pub instance: NodeId,
    /// Agreement round.
    pub round: u32,
}

impl CoinId {
    /// The coin's unique name, the message the keystore signs (protocol reference, pitfall 4d:
    /// coin names are separated by epoch, instance and round).
    pub fn name(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.epoch.0.to_le_bytes());
        out[8..12].copy_from_slice(&self.instance.0.to_le_bytes());
        out[12..].copy_from_slice(&self.round.to_le_bytes());
        out
    }

    /// The hashed coin message (hash-to-G1 of the name).
    pub fn message(&self) -> bls::HashedMessage {
        bls::coin_message(&self.name())
    }
}

/// Names one ciphertext of an epoch: the `index`-th ciphertext of `proposer`'s contribution
/// (always 0 except in BEAT2, where each client transaction is its own ciphertext).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CiphertextSlot {
    /// The proposer whose contribution holds the ciphertext.
    pub proposer: NodeId,
    /// Position within the contribution.
    pub index: u32,
}

/// One ciphertext to produce a decryption share for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecryptionItem {
    /// Where the ciphertext sits.
    pub slot: CiphertextSlot,
    /// The ciphertext's header (the ciphertext with its body's digest in place of the body),
    /// already verified by the core. The keystore needs no more to check it and share it
    /// ([`tdh2::CiphertextHeader`]), so a contribution's body never crosses to the keystore.
    pub header: Arc<tdh2::CiphertextHeader>,
    /// The label the keystore must check before releasing a share.
    pub expected_label: Vec<u8>,
}

/// An operation the protocol needs from outside the core: a secret-key operation for the
/// keystore, or a read of committed history from storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Sign coin `id` with this replica's threshold BLS share. Reply: [`Reply::CoinShare`].
    CoinShare(CoinId),
    /// Produce decryption shares for `items`, all from `epoch`. The keystore must refuse any
    /// ciphertext that does not verify or does not carry its expected label. Reply:
    /// [`Reply::DecryptionShares`].
    DecryptionShares {
        /// Epoch.
        epoch: Epoch,
        /// The ciphertexts.
        items: Vec<DecryptionItem>,
    },
    /// Sign the commit statement with this replica's threshold BLS share (module
    /// `node::certify`, C1). Reply: [`Reply::CommitShare`].
    CommitShare(crate::certificate::CommitStatement),
    /// Read up to `count` committed batches starting at `from` from storage, to answer a
    /// lagging peer's catch-up request. Reply: [`Reply::Committed`]. The core keeps no history
    /// itself, so its memory stays bounded however far a peer falls behind.
    ReadCommitted {
        /// The peer to answer.
        peer: NodeId,
        /// First epoch.
        from: Epoch,
        /// Most epochs.
        count: u32,
    },
}

/// The keystore's answer to a [`Request`]. Serializable so that services can log it
/// (write-ahead) before handing it to the protocol.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// This replica's share of coin `id`.
    CoinShare {
        /// The coin.
        id: CoinId,
        /// The share.
        share: bls::SignatureShare,
    },
    /// This replica's decryption shares for `epoch`, one per requested item it accepted.
    DecryptionShares {
        /// Epoch.
        epoch: Epoch,
        /// The shares.
        shares: Vec<(CiphertextSlot, tdh2::DecryptionShare)>,
    },
    /// This replica's share of the commit certificate of `epoch`.
    CommitShare {
        /// The committed epoch.
        epoch: Epoch,
        /// The share.
        share: bls::SignatureShare,
    },
    /// Committed batches read for a peer's catch-up request, in epoch order, with the
    /// certificates storage holds.
    Committed {
        /// The peer to answer.
        peer: NodeId,
        /// The batches.
        batches: Vec<crate::CommittedBatch>,
    },
}
