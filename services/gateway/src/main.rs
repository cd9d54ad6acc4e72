//! `beat-gateway`: the replica's peer-link service.

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;

/// Keeps authenticated, reliable links to every other replica over every enabled transport.
#[derive(Parser)]
#[command(name = "beat-gateway", version)]
struct Cli {
    /// Configuration file (TOML); every key can be overridden with BEAT_GATEWAY__<KEY>.
    #[arg(long, env = "BEAT_GATEWAY_CONFIG")]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    beat_telemetry::service::main(
        "beat-gateway",
        beat_config::load::<beat_gateway::config::Config>("gateway", cli.config.as_deref()),
        |c| &c.log,
        beat_gateway::run,
    )
}
