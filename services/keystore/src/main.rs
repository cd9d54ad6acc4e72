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
    let config: beat_keystore::config::Config =
        match beat_config::load("keystore", cli.config.as_deref()) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("beat-keystore: {e}");
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
        let _guard = beat_telemetry::logging::init("beat-keystore", &config.log)?;
        beat_keystore::run(config).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("beat-keystore: {e:#}");
            ExitCode::FAILURE
        }
    }
}
