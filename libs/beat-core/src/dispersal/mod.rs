//! AVID-FP verifiable dispersal as the broadcast of BEAT3 and BEAT4.
//!
//! # Algorithm
//!
//! With `k = n − 2f` data fragments (module `beat_crypto::avid_fp`):
//!
//! ```text
//! D1  proposer: (fpcc, fragments) := Disperse(v); send each replica VAL(fpcc, its fragments)
//!     (BEAT4: the holders of local parities get those too)
//! D2  on the first VAL from the proposer: check the cross-checksum's shape and every fragment
//!     addressed to me against it; if all verify, store them and multicast ECHO(fpcc)
//! D3  on ECHO(fpcc) (one per sender): count it under digest(fpcc)
//! D4  on n−f ECHOs for d, or f+1 READY(d): multicast READY(d) (once)
//! D5  on 2f+1 READY(d) and fpcc for d known: the dispersal is complete; deliver fpcc and my
//!     verified fragments (possibly none, if the proposer skipped me)
//! ```
//!
//! A READY from an honest replica follows `n − f` ECHOs, at least `n − 2f = k` of them from
//! honest replicas that verified their fragment before echoing — so once any honest replica
//! completes, `k` verified fragments exist and any reader can decode, the same value from any
//! `k` of them (the fingerprints pin one codeword; the value is its first `payload_len`
//! bytes). Only the cross-checksum (`O(n)` hashes) is echoed, so the proposal's data crosses
//! the network once (BEAT paper §6).
//!
//! # References
//!
//! Hendricks, Ganger, Reiter, "Verifying distributed erasure-coded data", PODC 2007. Duan,
//! Reiter, Zhang, BEAT, CCS 2018, §6–7 (BEAT3, BEAT4).
//!
//! # Deviations
//!
//! * READY needs `n − f` ECHOs, not `2f + 1`: with `n > 3f + 1`, `2f + 1` ECHOs would not
//!   guarantee `k = n − 2f` honest fragment holders. Both coincide when `n = 3f + 1`.
//! * Retrieval for full delivery (every replica decoding every agreed contribution) is done by
//!   the epoch after agreement: each replica sends its verified fragments to everyone.
//! * The dispersed value is the first `payload_len` bytes of the codeword the cross-checksum
//!   fixes; whether the padding after them is zero is not checked, by servers (D2) or by
//!   readers (the protocol reference's pitfall 6 asks readers to reject non-canonical
//!   padding). A server sees only its own fragments, and a BEAT4 partial read only its
//!   group's, so the check cannot be made consistently without reading the padding's
//!   fragments; ignoring the padding makes every reader agree (issue 12, bug 5; see
//!   `beat_crypto::avid_fp`, *Deviations*).
//! * A replica that completes the dispersal before its own VAL arrives (2f+1 READYs and the
//!   cross-checksum from ECHOs can overtake it) does not store the late fragment. The protocol
//!   guarantees `k` honest holders regardless, which is what retrieval needs; a production
//!   storage deployment that wants every replica to hold its fragment would add a repair step.

mod message;
mod state;

pub use message::Message;
pub use state::{Dispersal, Dispersed};

#[cfg(test)]
mod tests;
