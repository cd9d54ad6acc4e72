//! `beat run <service>`: one service of a replica in the foreground (what containers run).

use std::{path::PathBuf, process::ExitCode};

use crate::{cli::ServiceArg, run::run_service};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The service.
    #[arg(env = "BEAT_SERVICE")]
    service: ServiceArg,
    /// Configuration file (TOML); keys can be overridden with BEAT_<SERVICE>__<KEY>.
    #[arg(long, short, env = "BEAT_CONFIG")]
    config: Option<PathBuf>,
}

/// Runs the service until it stops; its exit code.
pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    Ok(run_service(a.service.into(), a.config.as_deref()))
}
