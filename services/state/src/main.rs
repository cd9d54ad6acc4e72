//! `beat-state`: the replica's market-data state service.

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;

/// Applies the committed market events of one replica and serves the market state.
#[derive(Parser)]
#[command(name = "beat-state", version)]
struct Cli {
    /// Configuration file (TOML); every key can be overridden with BEAT_STATE__<KEY>.
    #[arg(long, env = "BEAT_STATE_CONFIG")]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    beat_telemetry::service::main(
        "beat-state",
        beat_config::load::<beat_state::config::Config>("state", cli.config.as_deref()),
        |c| &c.log,
        beat_state::run,
    )
}
