//! `beat-keystore`: the replica's keystore service.

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;

/// Holds one replica's secret key shares and performs secret-key operations.
#[derive(Parser)]
#[command(name = "beat-keystore", version)]
struct Cli {
    /// Configuration file (TOML); every key can be overridden with BEAT_KEYSTORE__<KEY>.
    #[arg(long, env = "BEAT_KEYSTORE_CONFIG")]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    beat_telemetry::service::main(
        "beat-keystore",
        beat_config::load::<beat_keystore::config::Config>("keystore", cli.config.as_deref()),
        |c| &c.log,
        beat_keystore::run,
    )
}
