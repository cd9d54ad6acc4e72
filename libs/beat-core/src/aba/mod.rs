//! Asynchronous binary agreement: MMR with a CONF round, TERM messages and the coin schedule
//! 1, 0, random (protocol reference §1.5, hbbft's formulation).
//!
//! # Algorithm
//!
//! Each instance decides one bit. In round `r` with estimate `est`:
//!
//! ```text
//! A1  multicast BVAL(r, est)
//! A2  on f+1 BVAL(r, b) not yet sent by me: multicast BVAL(r, b)
//! A3  on 2f+1 BVAL(r, b): bin_values ∪= {b}; if it was empty, multicast AUX(r, b)
//! A4  wait for n−f AUX(r, ·) senders whose values lie in bin_values; vals := those values
//! A5  coin schedule: r mod 3 = 0 → s = 1;  r mod 3 = 1 → s = 0;  r mod 3 = 2 → random:
//! A6      multicast CONF(r, vals); wait for n−f CONF(r, V) with V ⊆ bin_values;
//!         vals := union of those V
//! A7      release my coin share for (epoch, instance, r); s := coin from f+1 valid shares
//! A8  if vals = {b}: est := b; if b = s: decide b, multicast TERM(b), terminate
//!     else est := s
//! A9  r := r + 1
//! T1  on TERM(b) from j: count it as BVAL(b), AUX(b) and CONF({b}) from j in every later round
//! T2  on f+1 TERM(b): decide b, multicast TERM(b), terminate
//!
//! Liveness rules (obligations that outlive a round, a decision and the epoch):
//! R1  for every round r already left — and, once decided (or the epoch is over), for every
//!     round — keep counting BVAL(r, v) and relay it on f+1 as in A2; a decided replica need not
//!     relay its decision b (its TERM(b) stands for BVAL(b) in every round, T1)
//! R2  a coin share requested in A7 is multicast whenever the keystore returns it, even if the
//!     round was left or the instance decided meanwhile
//! ```
//!
//! Why R1: A4 waits for `n−f` AUX votes whose values are in `bin_values`. A replica that
//! voted AUX(v) first may be counted only by replicas that also have `v` in `bin_values`,
//! which takes `2f+1` BVAL(v); MMR guarantees this (BV-broadcast's "if one honest replica has
//! `v`, all eventually do") only because every honest replica keeps relaying BVAL on `f+1`. A
//! replica that decides or moves on first and then drops the round stops relaying, and a replica
//! still in it can wait for ever — one faulty replica that votes selectively arranges this with
//! a few seeds (`relay-starvation` in beat-sim). Why R2: a replica can combine `f+1` coin shares
//! before its own comes back from the keystore (a faulty replica may have sent its valid share
//! to it alone); replicas that were not sent the faulty share need the honest ones, all of them
//! if the faulty replicas withhold (`selective-coin-shares`).
//!
//! Safety comes from MMR's quorum intersections (if an honest replica has `vals = {b}`, every
//! honest replica's `vals` contains `b`, so all honest estimates become `b` when one decides).
//! Liveness needs the CONF round: without it a single Byzantine replica that learns the threshold
//! coin early (it holds f shares; one honest share completes it) can schedule messages so that
//! honest replicas never agree with the coin (HoneyBadgerBFT issue 59). With it, no honest
//! replica releases its share before n−f replicas have fixed their values. The deterministic
//! coins of rounds 0 and 1 cost no cryptography and decide most instances in round 0 or 1.
//!
//! # References
//!
//! Mostéfaoui, Moumen, Raynal, "Signature-free asynchronous Byzantine consensus with t < n/3
//! and O(n²) messages", PODC 2014. MacBrough, "Cobalt: BFT governance in open networks", 2018
//! (the CONF round). hbbft `binary_agreement` (TERM, coin schedule, PR #44: the coin covers only
//! the values committed to in CONF). amiller/HoneyBadgerBFT issue 59; initc3/HoneyBadgerBFT-Python
//! issue 57 (CONF carries the AUX-phase values, not `bin_values`).
//!
//! # Deviations
//!
//! * CONF is sent only in random-coin rounds: in rounds with a fixed coin nothing is gained by
//!   gating a coin that everybody already knows, and MMR's AUX-phase safety argument holds as is.
//! * `vals` in A4/A6 is computed over every message received so far rather than over one chosen
//!   quorum; it can only be a superset, which keeps every quorum-intersection argument intact.
//! * Rounds more than `max_future_rounds` ahead are dropped (bounded memory); honest replicas are
//!   never that far apart in practice, and TERM lets a lagging replica finish regardless.
//! * hbbft and HoneyBadgerBFT-Python drop the messages of rounds they have left and ignore
//!   everything after terminating; R1 and R2 replace that. What a decided instance keeps is its
//!   BVAL senders per round and its unanswered coin requests ([`AgreementRelay`], part of
//!   checkpoints); an epoch keeps its agreements this way for `catch_up_lag` epochs after the
//!   replica left it (module `epoch`), after which a replica still in it is brought forward by
//!   catch-up instead.

mod message;
mod state;

pub use message::{BoolSet, Message};
pub use state::{AbaOutput, AgreementRelay, BinaryAgreement, BvalRound};

#[cfg(test)]
mod tests;
