//! One epoch: the common subset of the replicas' proposals, then (where the variant encrypts)
//! threshold decryption of the agreed ciphertexts.
//!
//! # Algorithm (BEAT paper §4, HoneyBadgerBFT Fig. 1)
//!
//! ```text
//! E1  propose: BEAT0/1 encrypt the sampled transactions under label (epoch, me);
//!     BEAT2 propose client ciphertexts as they are; BEAT3/4 disperse (optionally encrypted)
//! E2  run the common subset on the proposals → S = {(j, v_j)}, |S| ≥ n − f
//! E3  once every earlier epoch is committed, for each j ∈ S in order:
//!       BEAT0/1: v_j must parse as a ciphertext that verifies under label (epoch, j);
//!                otherwise j is faulty and contributes nothing (every honest replica agrees)
//!       BEAT2:   v_j must decode as at most ⌈B/n⌉ client transactions (module `client`):
//!                each must be a TDH2 ciphertext under a client label (client key, request
//!                id), signed by that client, with a valid validity proof — exactly the
//!                admission check. One that fails makes j faulty (MalformedContribution), is
//!                dropped and spends no label; each one that verifies and whose label was not
//!                ordered before (in an earlier epoch, or earlier in this one) is a slot, and
//!                its label is spent whether or not it then decrypts
//! E4  threshold-decrypt every slot (module `decrypt`)
//! E5  decode the plaintexts; the contributions in proposer order are the epoch's outcome
//! ```
//!
//! E3 waits for the previous epoch because BEAT2's duplicate suppression depends on what was
//! committed before. The label is BEAT2's duplicate-suppression key; without the client's
//! signature a faulty proposer could order junk under honest clients' predictable labels and so
//! censor their requests (docs/wire.md §3).
//!
//! When the replica leaves the epoch (it committed it, or catch-up carried it past), the epoch
//! is *retired* rather than dropped: its binary agreements keep relaying BVAL votes and its
//! unanswered keystore requests stay pending, so that late shares are still released (rules R1
//! and R2 of module `aba`; `retired.rs`). Broadcast, decryption and retrieval state is dropped:
//! everything they ask of this replica was sent once, when it was due.
//!
//! BEAT3/BEAT4 deliver either commitments only (each replica keeps its verified fragments; the
//! batch carries the agreed commitments) or full batches, retrieved after agreement:
//!
//! ```text
//! R1  multicast my verified fragments of every agreed dispersal
//! R2  accept a fragment only from its holder, for an agreed dispersal, if it verifies against
//!     the agreed cross-checksum (otherwise the sender is faulty)
//! R3  decode each dispersal from k verified fragments: its value is the first payload_len
//!     bytes of the decoded data (the padding after them is not checked; see Deviations)
//! ```
//!
//! # Deviations
//!
//! * R3 does not reject a dispersal whose padding is not zero (the protocol reference's
//!   pitfall 6). With AVID-FP the identity of a dispersal is its cross-checksum, which fixes
//!   the data codeword; the value is defined as that codeword's first `payload_len` bytes, so
//!   that full delivery, a client's full read of stored fragments and a BEAT4 partial read of
//!   one group always return the same bytes (issue 12, bug 5; the reasoning is in
//!   `beat_crypto::avid_fp`, *Deviations*). Every agreed dispersal therefore decodes: `k`
//!   honest replicas verified their fragments before it could complete.

mod message;
mod retired;
mod retrieval;
mod state;

pub use message::EpochMessage;
pub(crate) use retired::{RetiredEpoch, RetiredSnapshot};
pub use state::StoredFragments;
pub(crate) use state::{EpochOutcome, EpochState, label_key, verified_client_transaction};
