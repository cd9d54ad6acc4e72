//! `beat-consensus`: one replica's consensus service.

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;

/// Runs the BEAT protocol for one replica and serves the ordering API.
#[derive(Parser)]
#[command(name = "beat-consensus", version)]
struct Cli {
    /// Configuration file (TOML); every key can be overridden with BEAT_CONSENSUS__<KEY>.
    #[arg(long, env = "BEAT_CONSENSUS_CONFIG")]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    beat_telemetry::service::main(
        "beat-consensus",
        beat_config::load::<beat_consensus::config::Config>("consensus", cli.config.as_deref()),
        |c| &c.log,
        beat_consensus::run,
    )
}
