//! AVID erasure-coded reliable broadcast (BEAT0): Cachin–Tessaro's asynchronous verifiable
//! information dispersal, as HoneyBadgerBFT uses it for reliable broadcast.
//!
//! # Algorithm
//!
//! With `k = n − 2f` data shards (protocol reference, "erasure code" decision):
//!
//! ```text
//! V1  proposer: shards s_0..s_{n−1} := RS(frame(v)); h := MerkleRoot(shards);
//!     send VAL(h, proof_j, s_j) to each replica j
//! V2  on the first VAL from the proposer whose proof shows index = me: multicast ECHO(h, proof_i, s_i)
//! V3  on ECHO from j: the proof must show index j and verify; one ECHO per sender
//! V4  on n−f ECHO(h) or f+1 READY(h): multicast READY(h) (once)
//! V5  on 2f+1 READY(h) and k ECHOs for h: decode from k shards, RE-ENCODE, recompute the root;
//!     root = h → deliver v; otherwise deliver ⊥ (the proposer was faulty)
//! ```
//!
//! Each replica sends `O(|v|/k)` shard bytes to everyone instead of `|v|`, so the broadcast costs
//! `O(n|v| + λn² log n)` bits in total (BEAT paper §4) against Bracha's `O(n²|v|)`. The
//! re-encoding check in V5 makes the outcome the same at every honest replica whichever `k`
//! shards it decodes from: a proposer that commits to shards that are not a codeword gets ⊥
//! everywhere (amiller/HoneyBadgerBFT issue 65; protocol reference pitfall 6).
//!
//! Every shard's leaf hash is computed once: V2 and V3 keep the hash their proof check
//! computed with the shard (`merkle::VerifiedLeaf`), and V5's root recomputation reuses it for
//! each re-encoded shard equal to a verified one (all `k` decoded from, since the code is MDS),
//! hashing only the other `n − k`. A replica's own ECHO is recorded with the hash its VAL
//! check computed rather than verified a second time.
//!
//! # References
//!
//! Cachin, Tessaro, "Asynchronous verifiable information dispersal", SRDS 2005. Miller et al.,
//! HoneyBadgerBFT, CCS 2016, Fig. 2. Duan, Reiter, Zhang, BEAT, CCS 2018, §4 (BEAT0).
//!
//! # Deviations
//!
//! None in the message flow. The proposer does not sign VAL (the BEAT prototype signs VAL and
//! ECHO with ECDSA); links are authenticated by the transport, which is what the papers assume.

mod message;
mod state;

pub use message::Message;
pub use state::{Avid, AvidOutput};

#[cfg(test)]
mod tests;
