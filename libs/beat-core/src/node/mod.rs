//! [`BeatNode`]: epochs, the transaction buffer, duplicate suppression and catch-up.
//!
//! # Algorithm
//!
//! ```text
//! N1  transactions submitted locally enter the buffer (duplicates of pending or recently
//!     committed ones are ignored)
//! N2  a replica proposes in its current epoch e once it has pending transactions, or once any
//!     message for e arrived (someone else started e): a random sample of ⌈B/n⌉ of the first B
//! N3  messages for epoch e are processed; messages for (e, e + max_future_epochs] are queued
//!     raw, bounded per sender, and processed in arrival order when their epoch starts; later
//!     ones are dropped (the sender's queue holds them back, module `sender_queue`); agreement
//!     votes for the last `catch_up_lag` epochs left go to their relaying agreements (R1, module
//!     `aba`), anything older is ignored
//! N3' keystore replies are handled whatever the epoch: a share requested for an epoch already
//!     left is multicast for that epoch (R2); the requests of left epochs stay pending (and
//!     are re-issued after a restart) until answered
//! N4  when epoch e has an outcome (and every earlier epoch is committed), remove duplicates —
//!     within the batch and against the last `dedup_window_epochs` — commit it, drop its
//!     transactions from the buffer (commitments-only delivery: the transactions of my own
//!     contribution, if it is included — the only ones I can see), retire e (keep what it
//!     still owes others: relaying agreements and unanswered share requests, module
//!     `epoch::retired`), announce EpochStarted(e+1) and continue with e+1
//! N5  catch-up (module `catch_up`) may commit e from f+1 matching answers instead; it is asked
//!     for when f+1 peers announce epochs at least `catch_up_lag` ahead
//! N5' or, when the host reports no progress for a while (`Input::Stalled`, from a timer), when
//!     f+1 peers announce any later epoch: in an idle cluster nobody moves further ahead, so a
//!     replica left one or two epochs behind (its messages lost with a peer's restart) would
//!     otherwise wait for ever
//! ```
//!
//! Idle replicas run no epochs: an epoch starts only when someone has something to order.
//!
//! # Pipelined epochs (ADR 0010)
//!
//! ```text
//! P1  a pipelining replica in epoch e starts e+1 early once n − f of e's broadcasts are
//!     delivered here (or e's subset is fixed), e+1 is not a barrier (P5), the watermark
//!     would let e+1 commit (P4), and it has a reason to propose in e+1 (N2): transactions it
//!     does not hold for e, or a message for e+1; starting e+1 processes the messages queued
//!     for it (N3) in arrival order, then proposes. The trigger is a function of the events
//!     since the checkpoint, so replay decides as before; the arguments below hold for any
//!     trigger that keeps depth 2 (an earlier one, "subset fixed", measured no gain)
//! P2  e+1 runs its broadcasts and binary agreements (and asks for their coin shares) as the
//!     current epoch does; its E3 — decryption shares, retrieval, BEAT2's plan against the
//!     committed labels — waits until e is committed and e+1 is current. Depth 2: at most e
//!     and e+1 are live, and epochs commit strictly in order (N4)
//! P3  a replica's own proposal holds its transactions in the buffer until its epoch ends; a
//!     proposal samples only what is not held (so e+1 does not repeat e's proposal), and what
//!     e does not commit is released and proposed again. With nothing held the sample is the
//!     unpipelined one
//! P4  the keystore horizon: e+1 starts only if certify_window lets it commit, so every coin
//!     request stays below frontier + W (module `signing`, K1)
//! P5  barriers: while pipelining under period p, checkpoints fall on multiples of p and no
//!     such epoch starts early, so on entering a checkpoint epoch nothing of it exists and no
//!     proposal is in flight. The checkpoint records p (or that the replica does not pipeline);
//!     a restored replica keeps that mode until its next checkpoint, where a change of setting
//!     is adopted and recorded. A new replica records its setting in a genesis checkpoint
//! ```
//!
//! Agreement and total order are per-epoch properties of ACS and of the in-order commit, which
//! P1–P5 leave alone; censorship resilience holds because decryption shares are requested only
//! for the current epoch, after its subset is fixed; replay makes the pipelining decisions made
//! before a crash because they depend only on the events since the checkpoint and the mode it
//! recorded. Pipelining is a local setting: the messages are the unpipelined protocol's, sent
//! sooner, and replicas that pipeline run with replicas that do not.
//!
//! # Restarts
//!
//! The node is a pure function of its events (inputs, messages, replies) and a secret
//! [`ProposalSeed`]. At every epoch boundary it outputs a [`Checkpoint`] of its whole state. A
//! service that logs every event before processing it (write-ahead) can therefore rebuild the
//! node exactly after a crash — [`BeatNode::from_checkpoint`], [`BeatNode::resume`], replay the
//! later events in order — and the rebuilt node sends exactly the messages it had sent before,
//! so a restart never makes an honest replica equivocate. A pipelining replica checkpoints only
//! at its barriers (P5), where no later epoch holds state.

mod catch_up;
mod certify;
mod message;
mod state;
mod window;

pub use message::Message;
pub use state::{
    BeatNode, Checkpoint, Input, NodeStep, Output, ProposalSeed, UnpipelinedCheckpoint,
};

#[cfg(test)]
mod tests;
