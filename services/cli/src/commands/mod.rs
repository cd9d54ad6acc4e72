//! The subcommands, one module each: its arguments (`Args`) and its `run`.

pub mod address;
pub mod bench;
pub mod devnet;
pub mod health;
pub mod keygen;
pub mod market;
pub mod run;
pub mod status;
pub mod submit;
pub mod verify;
pub mod watch;

use std::path::PathBuf;

use anyhow::Context;

/// The runtime a command's asynchronous work runs on.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// The program local clusters run their services with: this executable, or `BEAT_SERVICE_PROGRAM`
/// when set (a wrapper that runs `beat` under a profiler, say; it gets `run <service> --config F`).
pub fn current_exe() -> anyhow::Result<PathBuf> {
    if let Some(program) = std::env::var_os("BEAT_SERVICE_PROGRAM") {
        return Ok(PathBuf::from(program));
    }
    std::env::current_exe().context("cannot locate the beat executable")
}
