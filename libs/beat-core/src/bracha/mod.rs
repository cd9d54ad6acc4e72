//! Bracha's reliable broadcast (BEAT1, BEAT2).
//!
//! # Algorithm
//!
//! One instance per proposer and epoch. Every replica echoes the whole value; there is no
//! erasure coding and no Merkle work, which gives the lowest CPU cost and latency for small
//! contributions at the price of `O(n²|v|)` bits (BEAT paper §5).
//!
//! ```text
//! B1  proposer: multicast VAL(v)
//! B2  on the first VAL(v) from the proposer: multicast ECHO(v)
//! B3  on ⌈(n+f+1)/2⌉ ECHO(v), or on f+1 READY(h(v)): multicast READY(h(v)) (once)
//! B4  on 2f+1 READY(h) and some ECHO/VAL carrying v with h(v) = h: deliver v
//! ```
//!
//! Properties (n ≥ 3f+1): if an honest replica delivers `v`, every honest replica delivers `v`;
//! if the proposer is honest every honest replica delivers its value. A faulty proposer can only
//! make the instance deliver nothing, or one value everywhere.
//!
//! # References
//!
//! G. Bracha, "Asynchronous Byzantine agreement protocols", Information and Computation 75(2),
//! 1987. Duan, Reiter, Zhang, BEAT, CCS 2018, §5 (BEAT1).
//!
//! # Deviations
//!
//! READY carries only the digest of `v`; a replica that collected 2f+1 READYs waits for the value
//! from an ECHO, which at least f+1 honest replicas sent to everyone (B4). This is the usual
//! formulation and changes no message count.

mod message;
mod state;

pub use message::Message;
pub use state::{Bracha, digest};

#[cfg(test)]
mod tests;
