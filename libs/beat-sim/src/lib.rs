//! A seeded, deterministic, adversarial simulator for the BEAT protocol core.
//!
//! [`net::VirtualNet`] runs `n` real [`beat_core::BeatNode`]s with real threshold cryptography
//! over a virtual network that delivers one message per crank, in an order chosen by a named
//! [`adversary::Adversary`] (see the adversary model in that module). After every delivery the
//! [`invariants::Checker`] checks agreement, total order, validity, duplicate freedom, fault
//! attribution and memory bounds — and, for commitments-only storage, that every committed
//! commitment can be read back from the fragments honest replicas stored ([`storage`]); at
//! the end it checks liveness and censorship resilience.
//! Everything random derives from one seed, so a failing run is reproduced exactly by its seed.
//!
//! ```no_run
//! use beat_sim::scenario::Scenario;
//! use beat_types::Variant;
//!
//! let report = Scenario::new(Variant::Beat0, 4, "equivocating-proposer", 17).run()?;
//! assert!(report.violations.is_empty());
//! # Ok::<(), anyhow::Error>(())
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod aba_attack;
pub mod adversaries;
pub mod adversary;
pub mod invariants;
pub mod keystore;
pub mod net;
pub mod profile;
pub mod scenario;
pub mod storage;
pub mod sweep;
