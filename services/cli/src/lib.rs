//! `beat`: the operator CLI.
//!
//! - `beat devnet` — a local cluster doing the main job, with embedded defaults;
//! - `beat run <service>` — one service of a replica (what containers run);
//! - `beat health <service>` — the containers' health check (the service's `/readyz`);
//! - `beat keygen` — the trusted-dealer key ceremony;
//! - `beat submit | watch | status | market` — clients of the public APIs;
//! - `beat verify` — checks a replica's history (live or stored) against the committee file;
//! - `beat bench` — an open-loop load generator with latency histograms and memory figures.
//!
//! The key ceremony and the certificates are `beat-provision`'s; the local cluster that
//! `devnet` and `bench` run is `beat-testkit`'s. The library exists so tests can drive the same
//! code: [`main`] is the whole command line, [`api`] its public-API clients, [`bench`] the load
//! generator.

pub mod api;
pub mod bench;
pub mod client;
pub mod devnet;
pub mod health;
pub mod run;
pub mod verify;

mod cli;
mod commands;

pub use cli::main;
