//! Identifiers, committees and quorum arithmetic shared by every BEAT crate.
//!
//! This crate owns the vocabulary the rest of the workspace speaks: [`NodeId`], [`Epoch`],
//! [`Committee`] (with every threshold the BEAT sub-protocols use), [`Variant`] and
//! [`Transaction`], and the one retry [`backoff::Backoff`] of services and clients. It has no
//! cryptography, no I/O and no dependencies beyond `serde`, `thiserror` and `getrandom` (the
//! backoff's jitter seed), so that every ring of the architecture can depend on it.
//!
//! # Quorum arithmetic
//!
//! A committee of `n` replicas tolerates `f = ⌊(n−1)/3⌋` Byzantine replicas. The sub-protocols
//! use five thresholds, kept distinct because they differ whenever `n ≠ 3f+1` (protocol
//! reference, pitfall 11):
//!
//! | method | value | used for |
//! |---|---|---|
//! | [`Committee::f_plus_one`] | f+1 | coin and decryption thresholds, READY amplification, TERM, catch-up |
//! | [`Committee::two_f_plus_one`] | 2f+1 | deliver on READY, `bin_values` in binary agreement |
//! | [`Committee::quorum`] | n−f | AUX/CONF quorums, AVID READY after ECHO, ACS input 0 |
//! | [`Committee::data_shards`] | n−2f | Reed–Solomon data shards (k) |
//! | [`Committee::echo_threshold`] | ⌈(n+f+1)/2⌉ | Bracha READY after ECHO |
//!
//! ```
//! use beat_types::Committee;
//!
//! let c = Committee::new(7)?;
//! assert_eq!((c.n(), c.f()), (7, 2));
//! assert_eq!(c.f_plus_one(), 3);
//! assert_eq!(c.quorum(), 5);
//! assert_eq!(c.data_shards(), 3);
//! # Ok::<(), beat_types::CommitteeError>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::panic))]

pub mod backoff;
mod committee;
mod ids;
mod params;
mod transaction;
mod variant;

pub use committee::{Committee, CommitteeError, MAX_COMMITTEE_SIZE};
pub use ids::{Epoch, NodeId};
pub use params::{Delivery, Params, ParamsError};
pub use transaction::Transaction;
pub use variant::{Variant, VariantParseError};
