//! Misbehaviour attributed to a replica.
//!
//! A fault is evidence that the named replica deviated from the protocol. Honest replicas never
//! produce one: reordering, duplication and retransmission of honest messages are handled
//! silently (identical duplicates are ignored), and every check below is one an honest sender
//! always passes. The simulator checks this after every delivery (invariant `FLT-1`).

use std::fmt;

use beat_types::{Epoch, NodeId};
use serde::{Deserialize, Serialize};

/// Observed misbehaviour by `node`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// The replica that misbehaved.
    pub node: NodeId,
    /// The epoch the evidence belongs to, when it belongs to one.
    pub epoch: Option<Epoch>,
    /// What it did.
    pub kind: FaultKind,
}

impl Fault {
    /// A fault outside any epoch context; the epoch layer fills the epoch in.
    pub fn new(node: NodeId, kind: FaultKind) -> Self {
        Self {
            node,
            epoch: None,
            kind,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.epoch {
            Some(e) => write!(f, "node {} in epoch {}: {:?}", self.node, e, self.kind),
            None => write!(f, "node {}: {:?}", self.node, self.kind),
        }
    }
}

/// The kinds of misbehaviour the protocol detects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FaultKind {
    // --- transport / framing ---
    /// A message could not be decoded or violated a size limit (reported by the component).
    MalformedMessage,

    // --- reliable broadcast and dispersal ---
    /// A `Val` for a broadcast instance came from someone other than its proposer.
    ValueFromNonProposer,
    /// The proposer sent two different `Val`s to the same replica.
    ConflictingVal,
    /// Two different `Echo`s from the same replica in one instance.
    ConflictingEcho,
    /// Two different `Ready`s from the same replica in one instance.
    ConflictingReady,
    /// A broadcast value or shard exceeded the configured size limit.
    OversizedValue,
    /// A Merkle proof did not verify, or a shard's index did not match its sender (AVID).
    InvalidShard,
    /// A fragment did not verify against its fingerprinted cross-checksum (AVID-FP).
    InvalidFragment,
    /// A fingerprinted cross-checksum had the wrong shape (AVID-FP).
    InvalidCrossChecksum,
    /// The proposer's broadcast does not decode to a value: AVID's re-encoding check failed
    /// (shards off the codeword or a non-canonical framing). All honest replicas reach this
    /// verdict together. An agreed AVID-FP dispersal always decodes (its value is the first
    /// `payload_len` bytes of the codeword its cross-checksum fixes), so BEAT3/BEAT4 report it
    /// only if the Reed–Solomon codec itself refuses verified fragments.
    UndecodableValue,

    // --- binary agreement ---
    /// Two different `Aux` values from the same replica in one round.
    ConflictingAux,
    /// Two different `Conf` sets from the same replica in one round.
    ConflictingConf,
    /// A `Conf` with an empty value set.
    InvalidConf,
    /// `Term` for both values from the same replica.
    ConflictingTerm,
    /// A coin share for a round whose coin is fixed by the schedule.
    UnexpectedCoinShare,
    /// A coin share that does not verify against the sender's key share.
    InvalidCoinShare,
    /// Two different coin shares from the same replica in one round.
    ConflictingCoinShare,

    // --- threshold decryption ---
    /// A decryption share that does not verify.
    InvalidDecryptionShare,
    /// Two different decryption shares from the same replica for the same ciphertext.
    ConflictingDecryptionShare,
    /// Decryption shares for a proposer outside the agreed subset, or the wrong number of them.
    UnexpectedDecryptionShares,
    /// The proposer's ciphertext is malformed, invalid or carries the wrong label.
    InvalidCiphertext,
    /// The proposer's ciphertext does not decrypt under its committed key.
    UndecryptableCiphertext,
    /// The proposer's decrypted contribution is not a well-formed list of transactions, or a
    /// BEAT2 contribution contains an invalid client ciphertext.
    MalformedContribution,

    // --- catch-up ---
    /// Two different batches for the same epoch from the same replica.
    ConflictingCatchUp,

    // --- commit certificates ---
    /// A commit-certificate share that does not verify against the sender's key share.
    InvalidCommitShare,
    /// Two different commit-certificate shares from the same replica for one epoch.
    ConflictingCommitShare,
    /// A commit certificate whose signature does not verify, or that names another committee.
    InvalidCertificate,
}

impl FaultKind {
    /// The reason a client sees for a contribution rejected with this fault: the value of
    /// `beat.common.v1.RejectReason` (1 undecodable, 2 invalid ciphertext, 3 undecryptable,
    /// 4 malformed). Part of the batch digest.
    pub fn reject_code(self) -> u32 {
        match self {
            Self::UndecodableValue => 1,
            Self::InvalidCiphertext => 2,
            Self::UndecryptableCiphertext => 3,
            _ => 4,
        }
    }

    /// The fault a reject code stands for in a batch ([`Self::reject_code`]'s inverse on the
    /// codes: 4 stands for every other kind, as `MalformedContribution`).
    pub fn from_reject_code(code: u32) -> Option<Self> {
        Some(match code {
            1 => Self::UndecodableValue,
            2 => Self::InvalidCiphertext,
            3 => Self::UndecryptableCiphertext,
            4 => Self::MalformedContribution,
            _ => return None,
        })
    }
}
