//! AVID broadcast messages.

use beat_crypto::{Digest, merkle::MerkleProof};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// An AVID broadcast message (paper names).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// The recipient's shard from the proposer (V1).
    Val {
        /// Merkle root committing to all shards.
        root: Digest,
        /// Proof that `shard` is leaf `proof.index` under `root`.
        proof: MerkleProof,
        /// The shard.
        shard: Bytes,
    },
    /// The sender's own shard, echoed to everyone (V2).
    Echo {
        /// Merkle root.
        root: Digest,
        /// Proof for the sender's index.
        proof: MerkleProof,
        /// The shard.
        shard: Bytes,
    },
    /// Readiness to deliver the value with this root (V4).
    Ready(Digest),
}
