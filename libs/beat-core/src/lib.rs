//! The BEAT0–BEAT4 protocols as a pure, deterministic state machine.
//!
//! This crate is the innermost ring of the architecture. It has **no I/O, no clock and no
//! global RNG**: every entry point takes its inputs (and an RNG where randomness is needed) and
//! returns a [`Step`] of messages to send, outputs, faults and keystore requests. It never holds
//! a secret key. A remote replica can only ever cause a [`Fault`] in a step — never an `Err`, a
//! panic, or unbounded memory use.
//!
//! Sub-protocols are separate modules, each a state machine with its own module docs citing the
//! papers: [`bracha`] reliable broadcast, [`aba`] binary agreement.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::panic))]

pub mod aba;
pub mod acs;
pub mod avid;
mod batch;
pub mod bracha;
pub mod broadcast;
pub mod buffer;
pub mod certificate;
pub mod client;
pub mod codec;
mod config;
pub mod decrypt;
pub mod dispersal;
pub mod epoch;
mod error;
mod fault;
pub mod node;
pub mod replica;
mod request;
pub mod sender_queue;
pub mod signing;
mod step;
pub mod wire;

pub use batch::{Batch, Content, Contribution, StoredCommitment};
pub use certificate::{CertificateError, CommitCertificate, CommitStatement, CommittedBatch};
pub use config::{Config, Delivery, Params, PublicKeys};
pub use error::Error;
pub use fault::{Fault, FaultKind};
pub use node::{
    BeatNode, Checkpoint, Input, Message, NodeStep, Output, ProposalSeed, UnpipelinedCheckpoint,
};
pub use request::{CiphertextSlot, CoinId, DecryptionItem, Reply, Request};
pub use step::{Outgoing, Step, Target};

#[cfg(test)]
mod testing;
