//! The asynchronous common subset (Ben-Or, Kelmer, Rabin; as used by HoneyBadgerBFT and BEAT).
//!
//! # Algorithm
//!
//! ```text
//! S1  broadcast my proposal in my broadcast instance
//! S2  on broadcast_j delivering v_j: if ABA_j has no input yet, input 1
//! S3  on ABA_j deciding: if at least n−f ABAs decided 1, input 0 to every ABA without input
//! S4  once all n ABAs decided: S := {j : ABA_j = 1}; wait until broadcast_j delivered for every
//!     j ∈ S; output {(j, v_j) : j ∈ S}
//! ```
//!
//! `|S| ≥ n − f`, and at least `n − 2f` members of `S` are honest. The wait in S4 is mandatory
//! (protocol reference, pitfall 7): ABA_j = 1 implies some honest replica delivered `v_j`, so
//! every honest replica eventually delivers it too.
//!
//! # References
//!
//! Ben-Or, Kelmer, Rabin, "Asynchronous secure computations with optimal resilience", PODC 1994.
//! Miller et al., "The Honey Badger of BFT protocols", CCS 2016, §4.4.
//!
//! # Deviations
//!
//! Once ABA_j decides 0, broadcast_j's state is dropped and its messages ignored
//! (hbbft issue 313): no honest replica will ever need its value.

mod state;

pub use state::{Subset, SubsetMessage, SubsetOutput};

#[cfg(test)]
mod tests;
