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
    let config: beat_consensus::config::Config =
        match beat_config::load("consensus", cli.config.as_deref()) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("beat-consensus: {e}");
                return ExitCode::from(2);
            }
        };
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("cannot create the Tokio runtime")
    };
    let system = actix_rt::System::with_tokio_rt(runtime);
    let result = system.block_on(async move {
        let _guard = beat_telemetry::logging::init("beat-consensus", &config.log)?;
        beat_consensus::run(config).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("beat-consensus: {e:#}");
            ExitCode::FAILURE
        }
    }
}
