//! The named adversaries.
//!
//! | name | what it does |
//! |---|---|
//! | `benign` | random delivery order; faulty replicas behave honestly |
//! | `fifo` | oldest message first |
//! | `first-delivery` | always delivers to the lowest-numbered replica first (starves high ids) |
//! | `lagging` | delays everything to and from one honest replica as long as the bound allows |
//! | `partition` | splits the honest replicas in two halves and delays cross traffic maximally |
//! | `crash-restart` | crashes honest replicas at random moments and recovers them from checkpoint + write-ahead log |
//! | `silent` | faulty replicas send nothing |
//! | `replay` | faulty replicas re-send messages they eavesdropped, as their own, to random replicas |
//! | `garbage` | faulty replicas inject random well-typed messages with bogus contents |
//! | `equivocating-proposer` | faulty proposers send different proposals to different replicas |
//! | `bad-shards` | faulty replicas corrupt broadcast payloads (shards, proofs, echoes) sent to a subset |
//! | `bad-ciphertext` | faulty proposers propose malformed, relabelled or otherwise invalid contributions |
//! | `non-codeword-dispersal` | BEAT3/4: faulty proposers corrupt one parity fragment and commit to it, so its hash matches but its fingerprint does not |
//! | `fingerprint-inconsistent` | BEAT3/4: faulty proposers alter one data fragment's fingerprint, for every replica or for some |
//! | `nonzero-padding` | BEAT3/4: faulty proposers disperse a codeword whose padding after the payload is not zero (bug 5) |
//! | `aba-equivocation` | faulty replicas send different agreement votes to different replicas, and conflicting ones to some |
//! | `aba-always-zero` | faulty replicas always vote 0 |
//! | `aba-opposite` | faulty replicas vote the opposite of their honest code |
//! | `wrong-coin-shares` | faulty replicas send invalid coin shares |
//! | `wrong-decryption-shares` | faulty replicas send decryption shares for a different ciphertext |
//! | `future-epoch-flood` | faulty replicas flood far-future epochs and lie about their epoch |
//!
//! The HoneyBadgerBFT issue-59 attack on binary agreement is a separate harness
//! ([`crate::aba_attack`]), because it schedules one agreement instance message by message.

mod agreement;
mod broadcast;
mod dispersal;
mod noise;
mod schedule;
mod shares;

pub use agreement::{AbaAlwaysZero, AbaEquivocation, AbaOpposite};
pub use broadcast::{BadCiphertext, BadShards, EquivocatingProposer};
pub use dispersal::DispersalAttack;
pub use noise::{FutureEpochFlood, Garbage, Replay, Silent};
pub use schedule::{Benign, CrashRestart, Fifo, FirstDelivery, Lagging, Partition};
pub use shares::{WrongCoinShares, WrongDecryptionShares};

use crate::adversary::Adversary;

/// Every adversary name accepted by [`by_name`] (the issue-59 harness is `issue59`).
pub const NAMES: &[&str] = &[
    "benign",
    "fifo",
    "first-delivery",
    "lagging",
    "partition",
    "crash-restart",
    "silent",
    "replay",
    "garbage",
    "equivocating-proposer",
    "bad-shards",
    "bad-ciphertext",
    "non-codeword-dispersal",
    "fingerprint-inconsistent",
    "nonzero-padding",
    "aba-equivocation",
    "aba-always-zero",
    "aba-opposite",
    "wrong-coin-shares",
    "wrong-decryption-shares",
    "future-epoch-flood",
];

/// Creates the adversary called `name`.
pub fn by_name(name: &str) -> Option<Box<dyn Adversary>> {
    Some(match name {
        "benign" | "random-reorder" => Box::new(Benign),
        "fifo" => Box::new(Fifo),
        "first-delivery" => Box::new(FirstDelivery),
        "lagging" => Box::new(Lagging::default()),
        "partition" => Box::new(Partition::default()),
        "crash-restart" => Box::new(CrashRestart::default()),
        "silent" => Box::new(Silent),
        "replay" => Box::new(Replay),
        "garbage" => Box::new(Garbage),
        "equivocating-proposer" => Box::new(EquivocatingProposer::default()),
        "bad-shards" => Box::new(BadShards),
        "bad-ciphertext" => Box::new(BadCiphertext::default()),
        "non-codeword-dispersal" => Box::new(DispersalAttack::non_codeword()),
        "fingerprint-inconsistent" => Box::new(DispersalAttack::fingerprint_inconsistent()),
        "nonzero-padding" => Box::new(DispersalAttack::nonzero_padding()),
        "aba-equivocation" => Box::new(AbaEquivocation),
        "aba-always-zero" => Box::new(AbaAlwaysZero),
        "aba-opposite" => Box::new(AbaOpposite),
        "wrong-coin-shares" => Box::new(WrongCoinShares),
        "wrong-decryption-shares" => Box::new(WrongDecryptionShares::default()),
        "future-epoch-flood" => Box::new(FutureEpochFlood),
        _ => return None,
    })
}
