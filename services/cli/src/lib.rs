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
//! The library exists so tests can drive the same code: [`cluster::Cluster`] starts, kills and
//! restarts replica processes; [`monitor::AgreementTracker`] checks agreement through the public
//! APIs; [`main`] is the whole command line.

pub mod bench;
pub mod client;
pub mod cluster;
pub mod devnet;
pub mod health;
pub mod keygen;
pub mod layout;
pub mod monitor;
pub mod run;
pub mod tls;
pub mod verify;

mod cli;
mod commands;

pub use cli::main;
