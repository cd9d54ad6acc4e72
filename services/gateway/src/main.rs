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
    let config: beat_gateway::config::Config =
        match beat_config::load("gateway", cli.config.as_deref()) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("beat-gateway: {e}");
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
        let _guard = beat_telemetry::logging::init("beat-gateway", &config.log)?;
        beat_gateway::run(config).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("beat-gateway: {e:#}");
            ExitCode::FAILURE
        }
    }
}
