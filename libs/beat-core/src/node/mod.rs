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
//! # Restarts
//!
//! The node is a pure function of its events (inputs, messages, replies) and a secret
//! [`ProposalSeed`]. At every epoch boundary it outputs a [`Checkpoint`] of its whole state. A
//! service that logs every event before processing it (write-ahead) can therefore rebuild the
//! node exactly after a crash — [`BeatNode::from_checkpoint`], [`BeatNode::resume`], replay the
//! later events in order — and the rebuilt node sends exactly the messages it had sent before,
//! so a restart never makes an honest replica equivocate.

mod catch_up;
mod certify;
mod message;
mod state;
mod window;

pub use message::Message;
pub use state::{BeatNode, Checkpoint, Input, NodeStep, Output, ProposalSeed};

#[cfg(test)]
mod tests;
