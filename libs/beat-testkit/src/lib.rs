//! The local-cluster harness that `beat devnet`, `beat bench` and the end-to-end tests share.
//!
//! - [`cluster::Cluster`] lays out a committee (through `beat-provision`), writes every
//!   service's configuration and starts, kills and restarts each service of each replica as its
//!   own process, as a pod would;
//! - [`monitor::AgreementTracker`] follows every replica's committed batches and market state
//!   through the public APIs and reports any two replicas that disagree about an epoch;
//!   [`monitor::statuses`] asks every replica for its status;
//! - [`delay::spawn_delay_relay`] puts a fixed network delay between replicas on loopback.
//!
//! Nothing here is linked into a replica: the crate drives the `beat` command line (or a test
//! binary with the same command line) from outside.

pub mod cluster;
pub mod delay;
pub mod monitor;
