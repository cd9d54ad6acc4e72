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
//! | `malformed-payloads` | faulty replicas hand honest replicas bytes that are no message: truncated, trailing bytes, unknown version, huge length claims, random, empty, over the limit |
//! | `equivocating-proposer` | faulty proposers send different proposals to different replicas |
//! | `bad-shards` | faulty replicas corrupt broadcast payloads (shards, proofs, echoes) sent to a subset |
//! | `bad-ciphertext` | faulty proposers propose malformed, relabelled or otherwise invalid contributions |
//! | `label-squatting` | BEAT2: faulty proposers propose junk ciphertexts under honest clients' next labels, to spend them |
//! | `non-codeword-dispersal` | BEAT3/4: faulty proposers corrupt one parity fragment and commit to it, so its hash matches but its fingerprint does not |
//! | `fingerprint-inconsistent` | BEAT3/4: faulty proposers alter one data fragment's fingerprint, for every replica or for some |
//! | `nonzero-padding` | BEAT3/4: faulty proposers disperse a codeword whose padding after the payload is not zero (bug 5) |
//! | `aba-equivocation` | faulty replicas send different agreement votes to different replicas, and conflicting ones to some |
//! | `aba-always-zero` | faulty replicas always vote 0 |
//! | `aba-opposite` | faulty replicas vote the opposite of their honest code |
//! | `wrong-coin-shares` | faulty replicas send invalid coin shares |
//! | `wrong-decryption-shares` | faulty replicas send decryption shares for a different ciphertext |
//! | `future-epoch-flood` | faulty replicas flood far-future epochs and lie about their epoch |
//! | `selective-coin-shares` | faulty replicas send valid coin shares to all honest replicas but one, keystore replies are late (R2) |
//! | `selective-decryption-shares` | faulty replicas send valid decryption shares to all honest replicas but one, keystore replies are late (R2) |
//! | `relay-starvation` | splits the honest replicas' votes on one agreement so that `f` of them decide before seeing the other value, which the rest can then only get from their relays (R1) |
//! | `partial-val` | faulty proposers' `Val` reaches only `n − f` replicas |
//! | `partial-val-k` | faulty proposers' `Val` reaches only `k = n − 2f` replicas |
//! | `silent-proposer` | faulty replicas take part in everything but never propose |
//! | `equivocating-echo` | faulty replicas send `Echo`/`Ready` for another (well-formed) value to half the replicas, both to one |
//! | `lagging-past-window` | one honest replica falls further behind than every window, then the load stops: it must catch up while the cluster is idle |
//! | `link-reset` | one honest replica lags and its gateway restarts now and then: in-flight messages to it are lost, peers re-send only what they sent since their last checkpoint |
//! | `exclude-proposer` | the scheduler keeps one honest proposer's broadcast last, epoch after epoch |
//! | `selective-commit-shares` | faulty replicas send valid commit shares and certificates to all honest replicas but one, whose are delivered last; keystore replies are late (C4, C5, C7) |
//! | `wrong-commit-shares` | faulty replicas sign a statement on another batch and send it to half the honest replicas, and move certificates to another epoch |
//! | `chaos` | composite: a seeded mixture of delay, drop, mutate, replay, duplicate, selective sends, late replies and crashes, chosen per message |
//!
//! The HoneyBadgerBFT issue-59 attack on binary agreement is a separate harness
//! ([`crate::aba_attack`]), because it schedules one agreement instance message by message.

mod agreement;
mod broadcast;
mod certificates;
mod chaos;
mod dispersal;
mod noise;
mod schedule;
mod selective;
mod shares;
mod squatting;
mod withholding;

pub use agreement::{AbaAlwaysZero, AbaEquivocation, AbaOpposite};
pub use broadcast::{BadCiphertext, BadShards, EquivocatingProposer};
pub use certificates::{SelectiveCommitShares, WrongCommitShares};
pub use chaos::Chaos;
pub use dispersal::DispersalAttack;
pub use noise::{FutureEpochFlood, Garbage, MalformedPayloads, Replay, Silent};
pub use schedule::{
    Benign, CrashRestart, ExcludeProposer, Fifo, FirstDelivery, Lagging, LaggingPastWindow,
    LinkReset, Partition,
};
pub use selective::{RelayStarvation, SelectiveCoinShares, SelectiveDecryptionShares};
pub use shares::{WrongCoinShares, WrongDecryptionShares};
pub use squatting::LabelSquatting;
pub use withholding::{EquivocatingEcho, PartialVal, Reach, SilentProposer};

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
    "malformed-payloads",
    "equivocating-proposer",
    "bad-shards",
    "bad-ciphertext",
    "label-squatting",
    "non-codeword-dispersal",
    "fingerprint-inconsistent",
    "nonzero-padding",
    "aba-equivocation",
    "aba-always-zero",
    "aba-opposite",
    "wrong-coin-shares",
    "wrong-decryption-shares",
    "future-epoch-flood",
    "selective-coin-shares",
    "selective-decryption-shares",
    "relay-starvation",
    "partial-val",
    "partial-val-k",
    "silent-proposer",
    "equivocating-echo",
    "lagging-past-window",
    "link-reset",
    "exclude-proposer",
    "selective-commit-shares",
    "wrong-commit-shares",
    "chaos",
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
        "malformed-payloads" => Box::new(MalformedPayloads),
        "equivocating-proposer" => Box::new(EquivocatingProposer::default()),
        "bad-shards" => Box::new(BadShards),
        "bad-ciphertext" => Box::new(BadCiphertext::default()),
        "label-squatting" => Box::new(LabelSquatting::default()),
        "non-codeword-dispersal" => Box::new(DispersalAttack::non_codeword()),
        "fingerprint-inconsistent" => Box::new(DispersalAttack::fingerprint_inconsistent()),
        "nonzero-padding" => Box::new(DispersalAttack::nonzero_padding()),
        "aba-equivocation" => Box::new(AbaEquivocation),
        "aba-always-zero" => Box::new(AbaAlwaysZero),
        "aba-opposite" => Box::new(AbaOpposite),
        "wrong-coin-shares" => Box::new(WrongCoinShares),
        "wrong-decryption-shares" => Box::new(WrongDecryptionShares::default()),
        "future-epoch-flood" => Box::new(FutureEpochFlood),
        "selective-coin-shares" => Box::new(SelectiveCoinShares),
        "selective-decryption-shares" => Box::new(SelectiveDecryptionShares),
        "relay-starvation" => Box::new(RelayStarvation::default()),
        "partial-val" => Box::new(PartialVal::new(Reach::Quorum)),
        "partial-val-k" => Box::new(PartialVal::new(Reach::DataShards)),
        "silent-proposer" => Box::new(SilentProposer),
        "equivocating-echo" => Box::new(EquivocatingEcho::default()),
        "lagging-past-window" => Box::new(LaggingPastWindow::default()),
        "link-reset" => Box::new(LinkReset::default()),
        "exclude-proposer" => Box::new(ExcludeProposer::default()),
        "selective-commit-shares" => Box::new(SelectiveCommitShares),
        "wrong-commit-shares" => Box::new(WrongCommitShares),
        "chaos" => Box::new(Chaos::default()),
        _ => return None,
    })
}
