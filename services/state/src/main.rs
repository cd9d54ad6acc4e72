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
    let config: beat_state::config::Config = match beat_config::load("state", cli.config.as_deref())
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("beat-state: {e}");
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
        let _guard = beat_telemetry::logging::init("beat-state", &config.log)?;
        beat_state::run(config).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("beat-state: {e:#}");
            ExitCode::FAILURE
        }
    }
}
